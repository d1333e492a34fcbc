#include "runtime/arena.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "runtime/throw.h"

namespace spindle::runtime {

void* sysAllocZeroed(std::size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  SPINDLE_CHECK(p != MAP_FAILED, "out of memory: mmap of {} bytes failed: {}", bytes,
                std::strerror(errno));
  return p;
}

void sysFree(void* p, std::size_t bytes) { munmap(p, bytes); }

ArenaSpace::ArenaSpace(std::size_t maxArenas) : maxArenas_(maxArenas) {
  SPINDLE_CHECK(maxArenas > 0, "ArenaSpace: maxArenas must be positive");
  reservationBytes_ = (maxArenas + 1) * kArenaBytes;
  void* p = mmap(nullptr, reservationBytes_, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  SPINDLE_CHECK(p != MAP_FAILED, "heap reservation of {} bytes failed: {}", reservationBytes_,
                std::strerror(errno));
  reservation_ = reinterpret_cast<std::uintptr_t>(p);
  base_ = (reservation_ + kArenaBytes - 1) & ~(kArenaBytes - 1);
  arenas_ = static_cast<std::atomic<HeapArena*>*>(
      sysAllocZeroed(maxArenas * sizeof(std::atomic<HeapArena*>)));
}

ArenaSpace::~ArenaSpace() {
  const std::size_t n = committedPages_.load(std::memory_order_relaxed) / kPagesPerArena;
  for (std::size_t i = 0; i < n; ++i) {
    sysFree(arenas_[i].load(std::memory_order_relaxed), sizeof(HeapArena));
  }
  sysFree(arenas_, maxArenas_ * sizeof(std::atomic<HeapArena*>));
  munmap(reinterpret_cast<void*>(reservation_), reservationBytes_);
}

std::size_t ArenaSpace::grow(std::size_t npages, std::size_t* added) {
  const std::size_t have = committedPages_.load(std::memory_order_relaxed);
  const std::size_t first = have / kPagesPerArena;
  const std::size_t count = (npages + kPagesPerArena - 1) / kPagesPerArena;
  if (first + count > maxArenas_) {
    *added = 0;
    return SIZE_MAX;
  }
  void* at = reinterpret_cast<void*>(base_ + first * kArenaBytes);
  SPINDLE_CHECK(mprotect(at, count * kArenaBytes, PROT_READ | PROT_WRITE) == 0,
                "out of memory: committing {} arenas failed: {}", count, std::strerror(errno));
  for (std::size_t i = first; i < first + count; ++i) {
    auto* ha = new (sysAllocZeroed(sizeof(HeapArena))) HeapArena();
    // Release: the zeroed HeapArena is visible to lock-free readers of arenas_.
    arenas_[i].store(ha, std::memory_order_release);
  }
  // Release: pairs with committedPages() readers.
  committedPages_.store(have + count * kPagesPerArena, std::memory_order_release);
  *added = count * kPagesPerArena;
  return have;
}

}  // namespace spindle::runtime
