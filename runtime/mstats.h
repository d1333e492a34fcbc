// mstats.h: the heap's sharded statistics (Go's mstats.go: heapStatsDelta, kept per P
// as Go's consistentHeapStats and mcache local stats are).
//
// The counters the allocation and sweep paths move once per span (objects handed out
// and freed per size class, bytes in heap/manual spans, large objects, MSpan cache
// hits) live in HeapStatsDelta shards: one in every MCache, owned by its P, and one
// shared shard in the MHeap for threads without a P and for the folded shards of
// destroyed Ps. The owner of a P's shard adds with a relaxed load and store (statAdd
// with owned = true): no atomic read-modify-write, no cache line shared with other Ps.
// The shared shard takes atomic adds. Every counter is a signed delta: a P may free
// what another allocated, so one shard can go negative; only the sum means anything.
//
// MHeap::readStats() sums the shared shard and every live MCache's shard under the
// heap lock (MCaches are created and destroyed under it, and a destroyed MCache's
// shard is folded into the shared one under it, so each delta is counted exactly
// once). A sum taken while Ps allocate is approximate (each shard is read with relaxed
// loads), exact when they are quiet.
#pragma once

#include <atomic>
#include <cstdint>

#include "runtime/sizeclasses.h"

namespace spindle::runtime {

// A sum of every shard (MHeap::readStats), plus the heap's unsharded counters.
struct HeapStatsSnapshot {
  std::uint64_t heapSys = 0;
  std::int64_t heapInUse = 0, manualInUse = 0, mspanCacheHits = 0;
  std::int64_t largeAllocs = 0, largeFrees = 0, largeBytesInUse = 0;
  std::int64_t smallAllocCount[kNumSizeClasses] = {};
  std::int64_t smallFreeCount[kNumSizeClasses] = {};

  std::uint64_t heapIdle() const {
    return heapSys - static_cast<std::uint64_t>(heapInUse + manualInUse);
  }
  std::int64_t objectsInUse(std::size_t sizeclass) const {
    return smallAllocCount[sizeclass] - smallFreeCount[sizeclass];
  }
  std::int64_t bytesInUse(std::size_t sizeclass) const {
    return objectsInUse(sizeclass) * kSizeClasses[sizeclass].size;
  }
};

struct HeapStatsDelta {
  std::atomic<std::int64_t> heapInUse{0};    // bytes in heap spans
  std::atomic<std::int64_t> manualInUse{0};  // bytes in manual spans
  std::atomic<std::int64_t> mspanCacheHits{0};  // tryAllocMSpan successes
  std::atomic<std::int64_t> largeAllocs{0}, largeFrees{0};
  std::atomic<std::int64_t> largeBytesInUse{0};
  // Per size class: objects handed out by MCaches (counted when a span leaves a cache)
  // and objects freed by sweeping.
  std::atomic<std::int64_t> smallAllocCount[kNumSizeClasses] = {};
  std::atomic<std::int64_t> smallFreeCount[kNumSizeClasses] = {};

  // Adds this shard's counters to a snapshot (relaxed loads).
  void sumInto(HeapStatsSnapshot* out) const {
    auto ld = [](const std::atomic<std::int64_t>& c) { return c.load(std::memory_order_relaxed); };
    out->heapInUse += ld(heapInUse);
    out->manualInUse += ld(manualInUse);
    out->mspanCacheHits += ld(mspanCacheHits);
    out->largeAllocs += ld(largeAllocs);
    out->largeFrees += ld(largeFrees);
    out->largeBytesInUse += ld(largeBytesInUse);
    for (std::size_t i = 0; i < kNumSizeClasses; ++i) {
      out->smallAllocCount[i] += ld(smallAllocCount[i]);
      out->smallFreeCount[i] += ld(smallFreeCount[i]);
    }
  }
  // Moves this shard's counters into `shared` (atomic adds) and zeroes them. The
  // caller owns this shard and holds the heap lock (readStats must not see both).
  void foldInto(HeapStatsDelta& shared) {
    auto mv = [](std::atomic<std::int64_t>& from, std::atomic<std::int64_t>& to) {
      to.fetch_add(from.load(std::memory_order_relaxed), std::memory_order_relaxed);
      from.store(0, std::memory_order_relaxed);
    };
    mv(heapInUse, shared.heapInUse);
    mv(manualInUse, shared.manualInUse);
    mv(mspanCacheHits, shared.mspanCacheHits);
    mv(largeAllocs, shared.largeAllocs);
    mv(largeFrees, shared.largeFrees);
    mv(largeBytesInUse, shared.largeBytesInUse);
    for (std::size_t i = 0; i < kNumSizeClasses; ++i) {
      mv(smallAllocCount[i], shared.smallAllocCount[i]);
      mv(smallFreeCount[i], shared.smallFreeCount[i]);
    }
  }
};

// Adds v to a counter of a shard: a relaxed load and store when the caller owns the
// shard (its P's: no other writer), an atomic add otherwise (the shared shard).
inline void statAdd(std::atomic<std::int64_t>& c, std::int64_t v, bool owned) {
  if (owned) {
    c.store(c.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  } else {
    c.fetch_add(v, std::memory_order_relaxed);
  }
}

}  // namespace spindle::runtime
