// p.h: P, a worker context (Go's p in runtime2.go).
//
// A P is the right to run Go-style work: an M (OS thread) must hold a P to allocate
// on the heap or run fibers (Gs). There are `procs` Ps. Each P owns per-P caches so
// that its fast paths take no lock: its MCache (one span per span class), a cache of
// MSpan structs, and (from the scheduler) a local run queue; later a pinner cache
// and a GC work buffer.
//
// Ownership: at most one M holds a P at a time. P-local state is touched only by the
// M holding the P, or by a stopper while the world is stopped.
//
// Sections below are filled by the heap and the scheduler; each owns its own.
#pragma once

#include <atomic>
#include <cstdint>

namespace spindle::runtime {

struct MCache;
struct MSpan;

struct P {
  explicit P(std::int32_t id) : id(id) {}
  P(const P&) = delete;
  P& operator=(const P&) = delete;

  const std::int32_t id;

  // --- heap (mcache.h, mheap.h) -------------------------------------------------
  // Set up by initHeapP() and handed back by destroyHeapP() (pheap.h).
  static constexpr std::uint32_t kMSpanCacheSize = 128;
  MCache* mcache = nullptr;  // this P's span cache: one span per span class
  // Free MSpan structs for allocSpan without the heap lock (tryAllocMSpan).
  struct MSpanCache {
    std::uint32_t len = 0;
    MSpan* buf[kMSpanCacheSize] = {};
  } mspancache;
  // A per-P cache of free pages (pagecache.h): an aligned group of 64 pages and a
  // bitmap of those still free, so small spans get pages without the heap lock.
  struct PageCache {
    std::uint64_t base = 0;   // first page index of the group (a multiple of 64)
    std::uint64_t cache = 0;  // bit i set: page base + i is free and owned by this P
  } pcache;
  // The thread bound to this P for allocation (bindP in pheap.h), for ownership checks.
  // Relaxed: only compared against the caller's own token.
  std::atomic<const void*> heapOwner{nullptr};

  // --- scheduler (proc.h) -------------------------------------------------------
};

}  // namespace spindle::runtime
