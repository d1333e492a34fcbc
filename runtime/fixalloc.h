// fixalloc.h: a free-list allocator for fixed-size runtime structs (Go's mfixalloc.go).
//
// FixAlloc<T> carves T objects out of 64 KiB chunks of OS memory and keeps freed ones
// on a free list threaded through T::fixNext. Memory is never returned to the OS, so
// a stale pointer to a freed T still points at a T (the page->span map relies on this:
// an MSpan struct is recycled, never unmapped). Each T is constructed once, when it is
// first carved; a recycled T keeps its constructed members (e.g. a mutex) and is
// re-initialised by its owner. Not thread-safe: the heap lock guards every FixAlloc.
#pragma once

#include <cstddef>
#include <new>

#include "runtime/arena.h"

namespace spindle::runtime {

template <typename T>
class FixAlloc {
 public:
  static constexpr std::size_t kChunkBytes = 64 << 10;

  T* alloc() {
    ++inuse_;
    if (list_ != nullptr) {
      T* t = list_;
      list_ = t->fixNext;
      t->fixNext = nullptr;
      return t;
    }
    if (chunkLeft_ < sizeof(T)) {
      chunk_ = static_cast<char*>(sysAllocZeroed(kChunkBytes));
      chunkLeft_ = kChunkBytes;
      chunks_ += 1;
    }
    T* t = new (chunk_) T();
    constexpr std::size_t step = (sizeof(T) + alignof(T) - 1) / alignof(T) * alignof(T);
    chunk_ += step;
    chunkLeft_ = chunkLeft_ >= step ? chunkLeft_ - step : 0;
    return t;
  }
  void free(T* t) {
    --inuse_;
    t->fixNext = list_;
    list_ = t;
  }
  std::size_t inuse() const { return inuse_; }
  std::size_t chunks() const { return chunks_; }

 private:
  T* list_ = nullptr;
  char* chunk_ = nullptr;
  std::size_t chunkLeft_ = 0;
  std::size_t inuse_ = 0;
  std::size_t chunks_ = 0;
};

}  // namespace spindle::runtime
