#include "runtime/mcentral.h"

#include <cstring>

#include "runtime/mgcsweep.h"
#include "runtime/mheap.h"
#include "runtime/pheap.h"
#include "runtime/throw.h"

namespace spindle::runtime {

// Pops unswept spans from `set`, sweeping each one we claim (sg-2 -> sg-1) until one
// has a free slot, which is returned; full ones go to the full swept set. A span we
// fail to claim is being swept by someone else and will land in a swept set. Spends
// one unit of `budget` per span popped.
MSpan* MCentral::sweepUnsweptFrom(SpanSet& set, std::uint32_t sg, int& budget) {
  for (; budget > 0; --budget) {
    MSpan* u = set.pop();
    if (u == nullptr) return nullptr;
    if (claimForSweep(u, sg)) {
      sweepSpan(*heap_, u, /*preserve=*/true);
      if (u->allocCount < u->nelems) {
        --budget;
        return u;
      }
      pushSwept(u, sg);  // full
    }
  }
  return nullptr;
}

std::uint8_t MCentral::currentShard() {
  const P* p = currentP();
  return p == nullptr ? 0 : static_cast<std::uint8_t>(static_cast<std::uint32_t>(p->id) % kShards);
}

MSpan* MCentral::takeFromShard(std::uint32_t k, std::uint32_t sg, int& budget) {
  MSpan* s = partialSwept(sg, k).pop();
  SPINDLE_DCHECK(s == nullptr || s->sweepgen.load(std::memory_order_acquire) == sg,
                 "cacheSpan: span {:#x} in a swept set has sweepgen={} heap sg={} (want sg)",
                 s->base(), s->sweepgen.load(std::memory_order_relaxed), sg);
  if (s != nullptr) return s;
  // Sweep unswept spans ourselves, a bounded number of them, before growing.
  s = sweepUnsweptFrom(partialUnswept(sg, k), sg, budget);
  if (s == nullptr) s = sweepUnsweptFrom(fullUnswept(sg, k), sg, budget);
  return s;
}

MSpan* MCentral::cacheSpan() {
  const std::uint32_t sg = heap_->sweepgenLoad();
  const std::uint8_t home = currentShard();
  int budget = 100;
  MSpan* s = takeFromShard(home, sg, budget);
  for (std::uint32_t i = 1; s == nullptr && i < kShards; ++i) {
    s = takeFromShard((home + i) % kShards, sg, budget);
  }
  if (s == nullptr) {
    s = grow();
    if (s == nullptr) return nullptr;
  }
  s->shard = home;
  SPINDLE_CHECK(s->allocCount < s->nelems && s->freeindex < s->nelems,
                "cacheSpan: span {:#x} has no free objects (allocCount={} nelems={} freeindex={})",
                s->base(), s->allocCount, s->nelems, s->freeindex);
  s->resetAllocCache();
  return s;
}

void MCentral::uncacheSpan(MSpan* s) {
  const std::uint32_t sg = heap_->sweepgenLoad();
  const std::uint32_t have = s->sweepgen.load(std::memory_order_relaxed);
  SPINDLE_CHECK(have == sg + 1 || have == sg + 3,
                "uncacheSpan: span {:#x} sweepgen={} but heap sg={} (want sg+1 or sg+3)",
                s->base(), have, sg);
  if (have == sg + 1) {
    // Cached before this sweep began: it still needs sweeping, and we own it. Kept even
    // if empty (not in Go, which frees it to the heap): its P is about to allocate
    // again and finds it first in its shard, warm. An empty span that nobody takes is
    // freed by the next cycle's sweep.
    s->sweepgen.store(sg - 1, std::memory_order_relaxed);
    heap_->stats.sweptByUncache.fetch_add(1, std::memory_order_relaxed);
    sweepSpan(*heap_, s, /*preserve=*/true);
    pushSwept(s, sg);
    return;
  }
  // Release: the MCache's writes to s are visible to whoever pops it.
  s->sweepgen.store(sg, std::memory_order_release);
  pushSwept(s, sg);
}

void MCentral::pushSwept(MSpan* s, std::uint32_t sg) {
  SPINDLE_DCHECK(s->shard < kShards, "pushSwept: span {:#x} has shard {} (kShards={})", s->base(),
                 s->shard, kShards);
  if (s->allocCount < s->nelems) {
    partialSwept(sg, s->shard).push(s);
  } else {
    fullSwept(sg, s->shard).push(s);
  }
}

MSpan* MCentral::grow() {
  const std::uint8_t sc = spanclass_.sizeclass();
  MSpan* s = heap_->allocSpan(kSizeClasses[sc].npages, SpanKind::Heap, spanclass_);
  if (s == nullptr) return nullptr;
  if (heap_->poisonFreed.load(std::memory_order_relaxed)) {
    // clobberfree: every free slot holds the poison, checked and zeroed as it is handed
    // out (poisonSpan sets needzero Each), so a write after free is caught.
    poisonSpan(s);
  } else if (s->needzero != NeedZero::No) {
    // A fresh span whose pages were used before: every slot is free, so the first
    // allocation that wants zeroed memory clears them all in one pass (a large memset
    // streams whole lines), not object by object. Allocations that do not want zeroing
    // (noscan, needzero=false) before then leave the rest dirty.
    s->needzero = NeedZero::Rest;
  }
  return s;
}

}  // namespace spindle::runtime
