#include "runtime/gcbits.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "runtime/arena.h"
#include "runtime/throw.h"

namespace spindle::runtime {

GCBitsArenas& gcBitsArenas() {
  static GCBitsArenas* arenas = new (sysAllocZeroed(sizeof(GCBitsArenas))) GCBitsArenas();
  return *arenas;
}

GCBitsArenas::Arena* GCBitsArenas::newArenaLocked() {
  Arena* a = free_;
  if (a != nullptr) {
    free_ = a->next;
    // Only the bytes handed out were ever written (`used` may overshoot the end).
    std::memset(a->data, 0, std::min<std::size_t>(a->used.load(std::memory_order_relaxed),
                                                  sizeof(a->data)));
  } else {
    a = static_cast<Arena*>(sysAllocZeroed(sizeof(Arena)));
    arenasAllocated_.fetch_add(1, std::memory_order_relaxed);
  }
  new (&a->used) std::atomic<std::uint32_t>(0);
  a->next = nullptr;
  return a;
}

std::uint8_t* GCBitsArenas::newMarkBits(std::size_t nelems, GCBitsCache* cache) {
  const std::uint32_t bytes = static_cast<std::uint32_t>(gcBitsBytes(nelems));
  if (cache == nullptr || bytes > kCacheChunk / 4) return bump(bytes);
  const std::uint64_t epoch = epoch_.load(std::memory_order_relaxed);
  if (cache->epoch == epoch && cache->end - cache->next >= std::ptrdiff_t{bytes}) {
    std::uint8_t* b = cache->next;
    cache->next += bytes;
    return b;
  }
  std::uint8_t* chunk = bump(kCacheChunk);
  cache->next = chunk + bytes;
  cache->end = chunk + kCacheChunk;
  cache->epoch = epoch;
  return chunk;
}

std::uint8_t* GCBitsArenas::bump(std::uint32_t bytes) {
  SPINDLE_CHECK(bytes <= sizeof(Arena::data), "gcBits request too large: {} bytes", bytes);
  // Fast path: bump in the current `next` arena without the lock.
  Arena* a = next_.load(std::memory_order_acquire);
  if (a != nullptr) {
    const std::uint32_t off = a->used.fetch_add(bytes, std::memory_order_relaxed);
    if (off + bytes <= sizeof(a->data)) return a->data + off;
  }
  std::lock_guard<std::mutex> g(lock_);
  a = next_.load(std::memory_order_relaxed);
  if (a != nullptr) {
    const std::uint32_t off = a->used.fetch_add(bytes, std::memory_order_relaxed);
    if (off + bytes <= sizeof(a->data)) return a->data + off;
  }
  Arena* fresh = newArenaLocked();
  fresh->used.store(bytes, std::memory_order_relaxed);
  fresh->next = a;
  // Release: publishes fresh's zeroed data and counter to lock-free bumpers.
  next_.store(fresh, std::memory_order_release);
  return fresh->data;
}

void GCBitsArenas::nextEpoch() {
  std::lock_guard<std::mutex> g(lock_);
  while (previous_ != nullptr) {
    Arena* a = previous_;
    previous_ = a->next;
    a->next = free_;
    free_ = a;
  }
  previous_ = current_;
  current_ = next_.load(std::memory_order_relaxed);
  epoch_.store(epoch_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  // Start the new epoch with an arena ready, so the Ps' first bits after the sweep
  // cycle begins come from the lock-free bump, not all at once through lock_.
  // Release: publishes the arena's zeroed data and counter.
  next_.store(newArenaLocked(), std::memory_order_release);
}

}  // namespace spindle::runtime
