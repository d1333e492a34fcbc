// mgcverify.cc: verifyHeap, the heap verifier (gc.h).
//
// With no cycle running (the cycle lock) and the world stopped, walks every span in the
// page -> span map and checks, naming the span and the values on failure:
//   - the map: every page of an in-use span points at it;
//   - shape: nelems * elemsize fits in the span, allocCount <= nelems, freeindex <= nelems;
//   - counts: allocCount == freeindex + alloc bits set at or above freeindex (every slot
//     below freeindex is allocated);
//   - sweepgen (relative to the heap's sg): a cached span (in some P's MCache) is sg+1 or
//     sg+3, and sg+3 when its MCache's flushGen == sg; an uncached span is sg-2
//     (unswept) or sg (swept); nothing is sg-1 (nobody sweeps while the world is
//     stopped);
//   - bits: no mark bit set on a swept span outside a mark phase (sweeping hands out
//     fresh zeroed mark bits), and on an unswept span marks only on allocated slots;
//   - allocate-black bookkeeping is off outside a mark phase.
#include <unordered_set>

#include "runtime/mcache.h"
#include "runtime/mgc.h"
#include "runtime/mheap.h"
#include "runtime/proc.h"
#include "runtime/throw.h"

namespace spindle::runtime {

namespace {
void verifySpan(MSpan* s, std::uint32_t sg, bool cached, bool cacheFlushed) {
  const std::uintptr_t base = s->base();
  SPINDLE_CHECK(s->nelems > 0 && s->elemsize > 0 &&
                    std::uint64_t{s->nelems} * s->elemsize <= s->npages * kPageSize,
                "verifyHeap: span {:#x} shape nelems={} elemsize={} npages={}", base, s->nelems,
                s->elemsize, s->npages);
  SPINDLE_CHECK(s->allocCount <= s->nelems && s->freeindex <= s->nelems,
                "verifyHeap: span {:#x} allocCount={} freeindex={} nelems={}", base, s->allocCount,
                s->freeindex, s->nelems);
  const std::uint32_t counted = s->countAllocated();
  SPINDLE_CHECK(s->allocCount == counted,
                "verifyHeap: span {:#x} allocCount={} but freeindex + alloc bits = {}", base,
                s->allocCount, counted);
  SPINDLE_CHECK(s->allocBlackStart == MSpan::kNoAllocBlack,
                "verifyHeap: span {:#x} still pre-marked (allocate-black) outside a mark", base);
  const std::uint32_t g = s->sweepgen.load(std::memory_order_acquire);
  if (cached) {
    SPINDLE_CHECK(g == sg + 1 || g == sg + 3,
                  "verifyHeap: cached span {:#x} sweepgen={} heap sg={} (want sg+1 or sg+3)", base, g, sg);
    SPINDLE_CHECK(!cacheFlushed || g == sg + 3,
                  "verifyHeap: span {:#x} sweepgen={} sg={} cached by an MCache flushed this cycle (want sg+3)",
                  base, g, sg);
  } else {
    SPINDLE_CHECK(g == sg || g == sg - 2,
                  "verifyHeap: uncached span {:#x} sweepgen={} heap sg={} (want sg-2 or sg)", base, g, sg);
  }
  const bool swept = g == sg || g == sg + 3;
  const std::uint32_t marks = s->countMarked();
  if (swept) {
    SPINDLE_CHECK(marks == 0, "verifyHeap: swept span {:#x} (sweepgen={} sg={}) has {} mark bits set",
                  base, g, sg, marks);
  } else {
    for (std::uint32_t i = 0; i < s->nelems; i++) {
      if (!s->isMarked(i)) continue;
      const bool allocated = i < s->freeindex || s->isAllocatedBit(i);
      SPINDLE_CHECK(allocated, "verifyHeap: unswept span {:#x} slot {} is marked but free", base, i);
    }
  }
}
}  // namespace

void verifyHeap() {
  Sched* sched = gc_detail::lockForVerify();
  if (sched != nullptr) sched->stopTheWorld("verifyHeap");
  MHeap& h = mheap();
  const std::uint32_t sg = h.sweepgenLoad();
  SPINDLE_CHECK(!gc_detail::gcMarking.load(), "verifyHeap: called during a mark phase");
  std::unordered_set<MSpan*> cached, flushedCaches;
  if (sched != nullptr) {
    for (int i = 0; i < sched->procs(); i++) {
      MCache* mc = sched->allp(i)->mcache;
      const bool flushed = mc->flushGen.load(std::memory_order_acquire) == sg;
      for (MSpan* s : mc->alloc) {
        if (s == &emptymspan) continue;
        SPINDLE_CHECK(cached.insert(s).second, "verifyHeap: span {:#x} cached by two MCaches", s->base());
        if (flushed) flushedCaches.insert(s);
      }
    }
  }
  const ArenaSpace& as = h.arenas();
  for (std::size_t a = 0;; a++) {
    HeapArena* ha = (a * kPagesPerArena < as.maxPages()) ? as.arenaAtIndex(a) : nullptr;
    if (ha == nullptr) break;
    for (std::size_t pg = 0; pg < kPagesPerArena; pg++) {
      MSpan* s = ha->spans[pg].load(std::memory_order_acquire);
      if (s == nullptr) continue;
      const std::uintptr_t addr = as.pageAddr(a * kPagesPerArena + pg);
      SPINDLE_CHECK(addr >= s->base() && addr < s->base() + s->npages * kPageSize,
                    "verifyHeap: page {:#x} maps to span {:#x} of {} pages", addr, s->base(), s->npages);
      if (addr != s->base()) continue;
      const SpanState st = s->state();
      SPINDLE_CHECK(st == SpanState::InUse || st == SpanState::Manual,
                    "verifyHeap: mapped span {:#x} has state {}", s->base(), static_cast<int>(st));
      if (st != SpanState::InUse) continue;
      verifySpan(s, sg, cached.count(s) != 0, flushedCaches.count(s) != 0);
    }
  }
  if (sched != nullptr) sched->startTheWorld();
  gc_detail::unlockForVerify();
}

void setClobberFree(bool on) { mheap().poisonFreed.store(on, std::memory_order_relaxed); }
void setGCStopTheWorld(bool on) { gc_detail::counters().stwMark.store(on, std::memory_order_relaxed); }

}  // namespace spindle::runtime
