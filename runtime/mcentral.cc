#include "runtime/mcentral.h"

#include "runtime/mgcsweep.h"
#include "runtime/mheap.h"
#include "runtime/throw.h"

namespace spindle::runtime {

MSpan* MCentral::cacheSpan() {
  const std::uint32_t sg = heap_->sweepgenLoad();
  MSpan* s = partialSwept(sg).pop();
  if (s == nullptr) {
    // Sweep unswept spans ourselves, a bounded number of them, before growing.
    int budget = 100;
    for (; budget > 0 && s == nullptr; --budget) {
      MSpan* u = partialUnswept(sg).pop();
      if (u == nullptr) break;
      std::uint32_t want = sg - 2;
      if (u->sweepgen.compare_exchange_strong(want, sg - 1, std::memory_order_acq_rel)) {
        sweepSpan(*heap_, u, /*preserve=*/true);
        if (u->allocCount == u->nelems) {
          fullSwept(sg).push(u);
        } else {
          s = u;
        }
      }
      // Otherwise someone else is sweeping it; it will land in a swept set.
    }
    for (; budget > 0 && s == nullptr; --budget) {
      MSpan* u = fullUnswept(sg).pop();
      if (u == nullptr) break;
      std::uint32_t want = sg - 2;
      if (u->sweepgen.compare_exchange_strong(want, sg - 1, std::memory_order_acq_rel)) {
        sweepSpan(*heap_, u, /*preserve=*/true);
        if (u->allocCount == u->nelems) {
          fullSwept(sg).push(u);
        } else {
          s = u;
        }
      }
    }
  }
  if (s == nullptr) {
    s = grow();
    if (s == nullptr) return nullptr;
  }
  SPINDLE_CHECK(s->allocCount < s->nelems && s->freeindex < s->nelems,
                "cacheSpan: span {:#x} has no free objects (allocCount={} nelems={} freeindex={})",
                s->base(), s->allocCount, s->nelems, s->freeindex);
  // Point allocCache at freeindex.
  s->refillAllocCache((s->freeindex & ~std::uint32_t{63}) / 8);
  s->allocCache >>= s->freeindex % 64;
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
  return heap_->allocSpan(kSizeClasses[sc].npages, SpanKind::Heap, spanclass_);
}

}  // namespace spindle::runtime
