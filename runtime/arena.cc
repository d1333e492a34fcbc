#include "runtime/arena.h"

#include <sys/mman.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <type_traits>

#include "runtime/throw.h"

namespace spindle::runtime {

void* sysAllocZeroed(std::size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  SPINDLE_CHECK(p != MAP_FAILED, "out of memory: mmap of {} bytes failed: {}", bytes,
                std::strerror(errno));
  return p;
}

void* trySysAllocZeroed(std::size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void sysFree(void* p, std::size_t bytes) { munmap(p, bytes); }

namespace {
thread_local bool tlsUseReserve = false;  // this thread's HeapReserveScope is open
}  // namespace

HeapReserveScope::HeapReserveScope() : prev_(tlsUseReserve) { tlsUseReserve = true; }
HeapReserveScope::~HeapReserveScope() { tlsUseReserve = prev_; }

std::size_t reservationArenas(std::size_t wanted) {
  rlimit lim{};
  if (getrlimit(RLIMIT_AS, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return wanted;
  // Half the limit, less the alignment arena the constructor adds.
  const std::size_t fit = static_cast<std::size_t>(lim.rlim_cur / 2 / kArenaBytes);
  const std::size_t n = fit > 1 ? fit - 1 : 1;
  return n < wanted ? n : wanted;
}

ArenaSpace::ArenaSpace(std::size_t maxArenas) : maxArenas_(maxArenas) {
  SPINDLE_CHECK(maxArenas > 0, "ArenaSpace: maxArenas must be positive");
  void* p = MAP_FAILED;
  for (;;) {
    reservationBytes_ = (maxArenas_ + 1) * kArenaBytes;
    p = mmap(nullptr, reservationBytes_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
             -1, 0);
    if (p != MAP_FAILED || maxArenas_ == 1) break;
    maxArenas_ /= 2;  // the address space allows less: reserve what it allows
  }
  SPINDLE_CHECK(p != MAP_FAILED, "heap reservation of {} bytes failed: {}", reservationBytes_,
                std::strerror(errno));
  reservation_ = reinterpret_cast<std::uintptr_t>(p);
  base_ = (reservation_ + kArenaBytes - 1) & ~(kArenaBytes - 1);
  arenas_ = static_cast<std::atomic<HeapArena*>*>(
      sysAllocZeroed(maxArenas_ * sizeof(std::atomic<HeapArena*>)));
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
  const std::size_t usable =
      maxArenas_ >= kReserveMinArenas && !tlsUseReserve ? maxArenas_ - 1 : maxArenas_;
  if (first + count > usable) {
    *added = 0;
    return SIZE_MAX;
  }
  // Every piece is obtained before anything is published, so a refusal leaves the space
  // as it was (the caller reports out of memory).
  HeapArena* metas[kMaxGrowArenas];
  if (count > kMaxGrowArenas) {
    *added = 0;
    return SIZE_MAX;
  }
  for (std::size_t i = 0; i < count; ++i) {
    metas[i] = static_cast<HeapArena*>(trySysAllocZeroed(sizeof(HeapArena)));
    if (metas[i] == nullptr) {
      for (std::size_t j = 0; j < i; ++j) sysFree(metas[j], sizeof(HeapArena));
      *added = 0;
      return SIZE_MAX;
    }
  }
  void* at = reinterpret_cast<void*>(base_ + first * kArenaBytes);
  if (mprotect(at, count * kArenaBytes, PROT_READ | PROT_WRITE) != 0) {
    for (std::size_t j = 0; j < count; ++j) sysFree(metas[j], sizeof(HeapArena));
    *added = 0;
    return SIZE_MAX;
  }
  // The fresh mapping's zero bytes are HeapArena's value-initialised state (null spans,
  // zeroedBase 0); an aggregate is an implicit-lifetime type, so the mapping already
  // holds it. Writing 64 KiB of zeroes would only fault in every page of the span map.
  static_assert(std::is_aggregate_v<HeapArena>);
  for (std::size_t i = first; i < first + count; ++i) {
    // Release: the zeroed HeapArena is visible to lock-free readers of arenas_.
    arenas_[i].store(metas[i - first], std::memory_order_release);
  }
  // Release: pairs with committedPages() readers.
  committedPages_.store(have + count * kPagesPerArena, std::memory_order_release);
  *added = count * kPagesPerArena;
  return have;
}

}  // namespace spindle::runtime
