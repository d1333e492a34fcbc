#include "runtime/mcentral.h"

#include <cstring>

#include "runtime/mgcsweep.h"
#include "runtime/mheap.h"
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
    std::uint32_t want = sg - 2;
    if (u->sweepgen.compare_exchange_strong(want, sg - 1, std::memory_order_acq_rel)) {
      sweepSpan(*heap_, u, /*preserve=*/true);
      if (u->allocCount < u->nelems) {
        --budget;
        return u;
      }
      fullSwept(sg).push(u);
    }
  }
  return nullptr;
}

MSpan* MCentral::cacheSpan() {
  const std::uint32_t sg = heap_->sweepgenLoad();
  MSpan* s = partialSwept(sg).pop();
  SPINDLE_DCHECK(s == nullptr || s->sweepgen.load(std::memory_order_acquire) == sg,
                 "cacheSpan: span {:#x} in a swept set has sweepgen={} heap sg={} (want sg)",
                 s->base(), s->sweepgen.load(std::memory_order_relaxed), sg);
  if (s == nullptr) {
    // Sweep unswept spans ourselves, a bounded number of them, before growing.
    int budget = 100;
    s = sweepUnsweptFrom(partialUnswept(sg), sg, budget);
    if (s == nullptr) s = sweepUnsweptFrom(fullUnswept(sg), sg, budget);
  }
  if (s == nullptr) {
    s = grow();
    if (s == nullptr) return nullptr;
  }
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
    // Cached before this sweep began: it still needs sweeping, and we own it.
    s->sweepgen.store(sg - 1, std::memory_order_relaxed);
    heap_->stats.sweptByUncache.fetch_add(1, std::memory_order_relaxed);
    sweepSpan(*heap_, s, /*preserve=*/false);
    return;
  }
  // Release: the MCache's writes to s are visible to whoever pops it.
  s->sweepgen.store(sg, std::memory_order_release);
  if (s->allocCount < s->nelems) {
    partialSwept(sg).push(s);
  } else {
    fullSwept(sg).push(s);
  }
}

MSpan* MCentral::grow() {
  const std::uint8_t sc = spanclass_.sizeclass();
  MSpan* s = heap_->allocSpan(kSizeClasses[sc].npages, SpanKind::Heap, spanclass_);
  if (s == nullptr) return nullptr;
  if (heap_->poisonFreed.load(std::memory_order_relaxed)) {
    // Debug builds: every free slot holds the poison, checked and zeroed as it is handed
    // out (poisonSpan sets needzero), so a write after free is caught.
    poisonSpan(s);
  } else if (s->needzero) {
    // A fresh span whose pages were used before: zero its objects in one pass (a large
    // memset streams whole lines) rather than object by object in mallocgc, as for large
    // objects. Nobody else can reach its free slots yet. Spans that come back from
    // sweeping with survivors keep needzero and are zeroed per object.
    std::memset(reinterpret_cast<void*>(s->base()), 0, std::size_t{s->elemsize} * s->nelems);
    s->needzero = false;
  }
  return s;
}

}  // namespace spindle::runtime
