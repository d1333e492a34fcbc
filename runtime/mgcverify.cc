// mgcverify.cc: verifyHeap, the heap verifier (gc.h), and the stress switches beside it.
//
// With no cycle running (the cycle lock) and the world stopped, walks every span in the
// page -> span map and checks, naming the span, the values and the phase (verifyHeap()
// itself, or --gcverify's "before cycle N" at sweep termination and "after cycle N"
// after mark termination's sg += 2) on failure:
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
//   - allocate-black bookkeeping is off outside a mark phase;
// then walks everything reachable from the roots (walkReachable, checkmark's walk) and
// checks that each pointer found points at a live object: an in-use heap span, an
// allocated slot, for a scan object a plausible header (null, or an aligned TypeInfo
// outside the heap whose size fits the slot and which has a name), and after a mark a
// set mark bit. A failure names the object, its span and slot, the pointer's source (a
// root scanner, a G's stack, or a field of an object) and the phase.
#include <unordered_set>

#include "runtime/g.h"
#include "runtime/m.h"

#include "runtime/mcache.h"
#include "runtime/mgc.h"
#include "runtime/mheap.h"
#include "runtime/proc.h"
#include "runtime/throw.h"

namespace spindle::runtime {

namespace {
void verifySpan(MSpan* s, std::uint32_t sg, bool cached, bool cacheFlushed, const char* phase) {
  const std::uintptr_t base = s->base();
  SPINDLE_CHECK(s->nelems > 0 && s->elemsize > 0 &&
                    std::uint64_t{s->nelems} * s->elemsize <= s->npages * kPageSize,
                "verifyHeap ({}): span {:#x} shape nelems={} elemsize={} npages={}", phase, base, s->nelems,
                s->elemsize, s->npages);
  SPINDLE_CHECK(s->allocCount <= s->nelems && s->freeindex <= s->nelems,
                "verifyHeap ({}): span {:#x} allocCount={} freeindex={} nelems={}", phase, base, s->allocCount,
                s->freeindex, s->nelems);
  const std::uint32_t counted = s->countAllocated();
  SPINDLE_CHECK(s->allocCount == counted,
                "verifyHeap ({}): span {:#x} allocCount={} but freeindex + alloc bits = {}", phase, base,
                s->allocCount, counted);
  SPINDLE_CHECK(s->allocBlackStart == MSpan::kNoAllocBlack,
                "verifyHeap ({}): span {:#x} still pre-marked (allocate-black) outside a mark", phase, base);
  const std::uint32_t g = s->sweepgen.load(std::memory_order_acquire);
  if (cached) {
    SPINDLE_CHECK(g == sg + 1 || g == sg + 3,
                  "verifyHeap ({}): cached span {:#x} sweepgen={} heap sg={} (want sg+1 or sg+3)", phase, base, g, sg);
    SPINDLE_CHECK(!cacheFlushed || g == sg + 3,
                  "verifyHeap ({}): span {:#x} sweepgen={} sg={} cached by an MCache flushed this cycle (want sg+3)", phase,
                  base, g, sg);
  } else {
    SPINDLE_CHECK(g == sg || g == sg - 2,
                  "verifyHeap ({}): uncached span {:#x} sweepgen={} heap sg={} (want sg-2 or sg)", phase, base, g, sg);
  }
  const bool swept = g == sg || g == sg + 3;
  const std::uint32_t marks = s->countMarked();
  if (swept) {
    SPINDLE_CHECK(marks == 0, "verifyHeap ({}): swept span {:#x} (sweepgen={} sg={}) has {} mark bits set", phase,
                  base, g, sg, marks);
  } else {
    for (std::uint32_t i = 0; i < s->nelems; i++) {
      if (!s->isMarked(i)) continue;
      const bool allocated = i < s->freeindex || s->isAllocatedBit(i);
      SPINDLE_CHECK(allocated, "verifyHeap ({}): unswept span {:#x} slot {} is marked but free", phase, base, i);
    }
  }
}

struct ReachCheck {
  const char* phase;
  bool afterMark;  // every reachable object must be marked
};

// walkReachable's callback: r must be a live object of a plausible type.
void checkReached(void* ctx, const ObjectRef& r, std::uintptr_t p, const gc_detail::ReachSource& from) {
  const auto* rc = static_cast<const ReachCheck*>(ctx);
  MSpan* s = r.span;
  const std::string src = gc_detail::describeSource(from);
  SPINDLE_CHECK(s->state() == SpanState::InUse && s->kind == SpanKind::Heap,
                "verifyHeap ({}): pointer {:#x} from {} points into span {:#x}, which is not an "
                "in-use heap span (state {}): freed memory",
                rc->phase, p, src, s->base(), static_cast<int>(s->state()));
  const bool allocated = r.index < s->freeindex || s->isAllocatedBit(r.index);
  SPINDLE_CHECK(allocated,
                "verifyHeap ({}): object {:#x} (span {:#x} class {} elemsize {}, slot {}), "
                "reached from {}, is a free slot: a dangling pointer",
                rc->phase, r.base, s->base(), s->spanclass.value, s->elemsize, r.index, src);
  if (!s->spanclass.noscan()) {
    const TypeInfo* t = reinterpret_cast<const ObjectHeader*>(r.base)->type;
    const auto tp = reinterpret_cast<std::uintptr_t>(t);
    // Checked in this order so that a poisoned or stray header is never dereferenced.
    const bool plausible = t == nullptr || (tp % alignof(TypeInfo) == 0 && mheap().spanOf(tp) == nullptr &&
                                            t->size <= s->elemsize && t->name != nullptr);
    SPINDLE_CHECK(plausible,
                  "verifyHeap ({}): object {:#x} (span {:#x} class {} elemsize {}, slot {}), "
                  "reached from {}, has no plausible type: header word {:#x}",
                  rc->phase, r.base, s->base(), s->spanclass.value, s->elemsize, r.index, src, tp);
  }
  if (rc->afterMark) {
    SPINDLE_CHECK(s->isMarked(r.index),
                  "verifyHeap ({}): object {:#x} (span {:#x} class {} elemsize {}, slot {}), "
                  "reached from {}, was not marked",
                  rc->phase, r.base, s->base(), s->spanclass.value, s->elemsize, r.index, src);
  }
}
}  // namespace

namespace gc_detail {
void verifyHeapStopped(Sched* sched, const char* phase, bool afterMark) {
  MHeap& h = mheap();
  const std::uint32_t sg = h.sweepgenLoad();
  SPINDLE_CHECK(!gcMarking.load(), "verifyHeap ({}): called during a mark phase", phase);
  std::unordered_set<MSpan*> cached, flushedCaches;
  if (sched != nullptr) {
    for (int i = 0; i < sched->procs(); i++) {
      MCache* mc = sched->allp(i)->mcache;
      const bool flushed = mc->flushGen.load(std::memory_order_acquire) == sg;
      for (MSpan* s : mc->alloc) {
        if (s == &emptymspan) continue;
        SPINDLE_CHECK(cached.insert(s).second, "verifyHeap ({}): span {:#x} cached by two MCaches", phase, s->base());
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
                    "verifyHeap ({}): page {:#x} maps to span {:#x} of {} pages", phase, addr, s->base(), s->npages);
      if (addr != s->base()) continue;
      const SpanState st = s->state();
      SPINDLE_CHECK(st == SpanState::InUse || st == SpanState::Manual,
                    "verifyHeap ({}): mapped span {:#x} has state {}", phase, s->base(), static_cast<int>(st));
      if (st != SpanState::InUse) continue;
      verifySpan(s, sg, cached.count(s) != 0, flushedCaches.count(s) != 0, phase);
    }
  }
  ReachCheck rc{phase, afterMark};
  walkReachable(sched != nullptr ? allGs(sched) : std::vector<G*>{}, &checkReached, &rc);
  counters().heapVerifications.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace gc_detail

void verifyHeap() {
  // A G at a safepoint lets its P go first, as gcCollect does: the cycle lock may be held
  // by a cycle waiting for the world, which cannot stop while this M holds a P. Its
  // stack is quiescent, so the walk below reads it.
  M* m = getm();
  const bool onG = m != nullptr && m->curg != nullptr && m->p != nullptr;
  if (onG) Sched::enterSyscall(/*stackQuiescent=*/true);
  Sched* sched = gc_detail::lockForVerify();
  if (sched != nullptr) sched->stopTheWorld("verifyHeap");
  gc_detail::verifyHeapStopped(sched, "verifyHeap()", /*afterMark=*/false);
  if (sched != nullptr) sched->startTheWorld();
  gc_detail::unlockForVerify();
  if (onG) Sched::exitSyscall();
}

void setGCVerify(bool on) { gc_detail::counters().verify.store(on, std::memory_order_relaxed); }

void setClobberFree(bool on) { mheap().poisonFreed.store(on, std::memory_order_relaxed); }
void setGCStopTheWorld(bool on) { gc_detail::counters().stwMark.store(on, std::memory_order_relaxed); }

}  // namespace spindle::runtime
