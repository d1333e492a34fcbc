// mgcverify.cc: verifyHeap, the heap verifier (gc.h), heap inspection (forEachReachable,
// retainingPath) and the stress switches beside it.
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
//
// Heap inspection (gc.h, "why is this alive") walks the same way under the same stop
// (withWorldStopped, verifyHeap's): forEachReachable reports each reachable object;
// retainingPath walks breadth first with roots read through their labelled variants,
// records the source that first reached each object (a shortest path's parent), then
// names the path's edges by re-reading just those sources: the root's labelled variant,
// and each object's traceLabelled (tried first for the object two steps on, so a hop
// through an array the object owns is named in the owner's terms). Unnamed edges read
// "root scanner N" / "the stack of G N" / "field of <type>". Nothing is marked or freed
// meanwhile (cycle lock, world stopped), so the addresses compared stay put.
#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>
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

namespace gc_detail {
void withWorldStopped(const char* why, void (*fn)(Sched* sched, void* ctx), void* ctx) {
  // A G at a safepoint lets its P go first, as gcCollect does: the cycle lock may be held
  // by a cycle waiting for the world, which cannot stop while this M holds a P. Its
  // stack is quiescent, so a walk reads it.
  M* m = getm();
  const bool onG = m != nullptr && m->curg != nullptr && m->p != nullptr;
  if (onG) Sched::enterSyscall(/*stackQuiescent=*/true);
  Sched* sched = lockForVerify();
  if (sched != nullptr) sched->stopTheWorld(why);
  fn(sched, ctx);
  if (sched != nullptr) sched->startTheWorld();
  unlockForVerify();
  if (onG) Sched::exitSyscall();
}
}  // namespace gc_detail

void verifyHeap() {
  gc_detail::withWorldStopped(
      "verifyHeap", [](Sched* sched, void*) { gc_detail::verifyHeapStopped(sched, "verifyHeap()", /*afterMark=*/false); },
      nullptr);
}

// --- heap inspection ---------------------------------------------------------------------
// forEachReachable and retainingPath walk as verifyHeap does (walkReachable, world
// stopped, cycle lock held: nothing is freed or marked meanwhile), so every object they
// report or compare stays where it is for the whole walk.

namespace {
std::vector<G*> stoppedGs(Sched* sched) { return sched != nullptr ? gc_detail::allGs(sched) : std::vector<G*>{}; }

struct ReachableWalk {
  ReachableFn fn;
  void* ctx;
};

// The object containing p, or 0 (not a live heap object).
std::uintptr_t objectBase(const void* p) {
  ObjectRef r;
  return mheap().findObject(p, &r) ? r.base : 0;
}

// Finds the first pointer a labelled source reports into `target` and appends its name
// (found, named: whether it had one).
struct SlotFinder {
  std::uintptr_t target;
  std::vector<std::string>* out;
  bool found = false, named = false;
  static void visit(void* self, void* p, const SlotName& name) {
    auto* f = static_cast<SlotFinder*>(self);
    if (f->found || p == nullptr || objectBase(p) != f->target) return;
    f->found = true;
    if (name.name == nullptr) return;
    f->named = true;
    name.name(name.env, f->out);
  }
};

struct PathWalk {
  std::uintptr_t target;
  std::vector<std::string>* path;
  bool found = false;
  // The source through which the walk first reached each object (a shortest path's).
  std::unordered_map<std::uintptr_t, gc_detail::ReachSource> parent = {};

  static void reached(void* self, const ObjectRef& r, std::uintptr_t, const gc_detail::ReachSource& from) {
    if (r.span->state() != SpanState::InUse) return;
    static_cast<PathWalk*>(self)->parent.emplace(r.base, from);
  }

  // Names the edge from `obj` (of type t) to `child`: false if t names no slot holding it.
  bool nameEdge(std::uintptr_t obj, const TypeInfo* t, std::uintptr_t child) {
    if (t == nullptr || t->traceLabelled == nullptr) return false;
    SlotFinder f{child, path};
    t->traceLabelled(reinterpret_cast<void*>(obj), SlotFinder::visit, &f);
    return f.named;
  }

  void build() {
    if (parent.count(target) == 0) return;
    found = true;
    std::vector<std::uintptr_t> objs;  // root's object first, target last
    gc_detail::ReachSource root;
    for (std::uintptr_t o = target;;) {
      objs.push_back(o);
      const gc_detail::ReachSource& from = parent.at(o);
      if (from.obj == 0) {
        root = from;
        break;
      }
      o = from.obj;
    }
    std::reverse(objs.begin(), objs.end());
    SlotFinder rf{objs[0], path};
    if (!gc_detail::scanRootSource(root, SlotFinder::visit, &rf) || !rf.named) {
      path->push_back(gc_detail::describeSource(root));
    }
    for (std::size_t i = 0; i + 1 < objs.size();) {
      const TypeInfo* t = reinterpret_cast<const ObjectHeader*>(objs[i])->type;
      // A type may name what an object it owns holds (a list's items): skip that hop.
      if (i + 2 < objs.size() && nameEdge(objs[i], t, objs[i + 2])) {
        i += 2;
        continue;
      }
      if (!nameEdge(objs[i], t, objs[i + 1])) {
        path->push_back(fmt::format("field of {}", t != nullptr ? t->name : "(no type)"));
      }
      i += 1;
    }
  }
};
}  // namespace

void forEachReachable(ReachableFn fn, void* ctx) {
  ReachableWalk rw{fn, ctx};
  gc_detail::withWorldStopped(
      "forEachReachable",
      [](Sched* sched, void* c) {
        gc_detail::walkReachable(
            stoppedGs(sched),
            [](void* c, const ObjectRef& r, std::uintptr_t, const gc_detail::ReachSource&) {
              if (r.span->state() != SpanState::InUse) return;
              auto* w = static_cast<ReachableWalk*>(c);
              w->fn(w->ctx, reinterpret_cast<void*>(r.base), r.span->elemsize, r.span->spanclass.noscan());
            },
            c);
      },
      &rw);
}

bool retainingPath(const void* target, std::vector<std::string>* path) {
  PathWalk pw{reinterpret_cast<std::uintptr_t>(target), path};
  gc_detail::withWorldStopped(
      "retainingPath",
      [](Sched* sched, void* c) {
        auto* pw = static_cast<PathWalk*>(c);
        gc_detail::walkReachable(stoppedGs(sched), &PathWalk::reached, pw, /*labelledRoots=*/true);
        pw->build();
      },
      &pw);
  return pw.found;
}

void setGCVerify(bool on) { gc_detail::counters().verify.store(on, std::memory_order_relaxed); }

void setClobberFree(bool on) { mheap().poisonFreed.store(on, std::memory_order_relaxed); }
void setGCStopTheWorld(bool on) { gc_detail::counters().stwMark.store(on, std::memory_order_relaxed); }

}  // namespace spindle::runtime
