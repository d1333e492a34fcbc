// mcache.h: MCache, a P's private span cache (Go's mcache.go).
//
// alloc[spc] is the span the P allocates spc objects from; emptymspan (no free slots)
// stands for "none", so the fast path needs no null check. The fast path (malloc.h)
// is a ctz on the span's allocCache: no lock, no atomic read-modify-write, because
// only the P's owner touches its MCache and its cached spans.
//   refill(spc)  hands the exhausted span back to its MCentral (uncacheSpan) and takes
//                one with free slots (cacheSpan), marking it cached: sweepgen = sg + 3.
//   releaseAll() hands every cached span back (P destruction, and before a sweep
//                cycle: Go's flush) and records flushGen = sweepgen.
// flushGen: the sweepgen at the last flush. The collector (mgc.cc) flushes lazily in acquireP
// when flushGen != sweepgen (DESIGN.md, "lazy mcache flushing").
// Stats: objects allocated from a span are counted when the span leaves the cache, in
// the MCache's own stats shard (mstats.h), which only the P's owner writes; the heap
// keeps every live MCache on a list (under its lock) to sum the shards.
#pragma once

#include <atomic>
#include <cstdint>

#include "runtime/mspan.h"
#include "runtime/mstats.h"

namespace spindle::runtime {

class MHeap;

// A span with no free slots; the initial value of every MCache slot. Never written.
extern MSpan emptymspan;

struct MCache {
  MCache* fixNext = nullptr;
  MSpan* alloc[kNumSpanClasses];
  // Written by the owner on flush; read by the collector (acquire/release).
  std::atomic<std::uint32_t> flushGen{0};
  // This P's stats shard: written by the owner only (statAdd, owned), read by
  // MHeap::readStats.
  HeapStatsDelta stats;
  // The heap's list of live MCaches (under the heap lock).
  MCache* allNext = nullptr;
  MCache* allPrev = nullptr;
  // heapLive changes not yet added to MHeap::heapLive (not in Go, which adds each
  // refill's at once: with several Ps that one shared word was the most contended
  // line of the refill path). The owner accumulates them (relaxed load + store) and
  // adds them when they reach kHeapLiveSlack either way and at releaseAll; the
  // collector folds every cache's in with the world stopped (foldHeapLiveDeltas)
  // before it reads heapLive at mark start and termination. heapLive lags by at most
  // kHeapLiveSlack per P.
  static constexpr std::int64_t kHeapLiveSlack = 256 << 10;
  std::atomic<std::int64_t> heapLiveDelta{0};

  void init(MHeap* heap);
  MSpan* refill(SpanClass spc);
  void releaseAll();

 private:
  // Adds d to heapLiveDelta; adds the total to heapLive past the slack or if `flush`.
  void addHeapLive(std::int64_t d, bool flush);

  MHeap* heap_ = nullptr;
};

}  // namespace spindle::runtime
