// mgcmark.cc: marking (Go's mgcmark.go): roots, grey objects, scanning, G stacks,
// checkmark.
//
// Tri-colour marking on the spans' gcmarkBits: white = unmarked, grey = marked and
// queued on a work buffer (mgcwork.h), black = marked and scanned (or never to be
// scanned: noscan spans, objects allocated black).
//   greyObject(p): findObject (interior pointers ok, non-heap ignored), then an atomic
//     test-and-set of the mark bit; whoever sets it queues the object unless its span
//     is noscan. So every object is queued at most once per cycle.
//   scanObject(b): the object's header names its TypeInfo; trace reports each pointer
//     slot, read with a relaxed atomic load (mutators store through writePointer).
//   Objects allocated while marking are pre-marked (MSpan::allocBlackBegin, largeAlloc):
//     they are never scanned, since every pointer stored into them later goes through
//     the barrier (shade of the new value), and they start with no pointers.
// Roots: registered scanners (registry), and every G's stack via GBody::traceStack,
// called only while the G is not running. A G is scanned once per mark phase, by the
// collector (Runnable/Waiting Gs, or a G in a foreign call that declared its stack
// quiescent: a foreign function, gcCollect) or by the scheduler right before it resumes
// the G (gBeforeRun, from execute() and from exitSyscall after a quiescent call);
// g->gcscanlock excludes the two, so a G never runs while its stack is being scanned. A running G is asked to yield
// (g->preempt) and scanned when it stops.
// Stack shrinking (Go's shrinkstack, below): a scan that finds a stack under a quarter
// used flags the G; it is halved under gcscanlock by a thread with a P while the G is
// paused (execute() before it resumes, or the shrink queue's drainers).
// Checkmark: with the world stopped after the concurrent mark, a second mark from the
// same roots into a private bitmap (walkReachable, breadth first, shared with verifyHeap
// and retainingPath); any object
// it reaches that the real mark left white is a collector bug, reported with its
// address, type, span and the root or object that points at it.
#include <fmt/format.h>

#include <deque>
#include <string>
#include <thread>
#include <unordered_map>

#include "runtime/gctrace.h"
#include "runtime/g.h"
#include "runtime/m.h"
#include "runtime/mgc.h"
#include "runtime/mheap.h"
#include "runtime/pheap.h"
#include "runtime/proc.h"
#include "runtime/throw.h"

namespace spindle::runtime::gc_detail {

void greyObject(std::uintptr_t p, GCWork* gcw) {
  if (p != 0) greyInline(p, gcw);
}

namespace {

void visitSlot(void* ctx, void** slot) {
  void* p = std::atomic_ref<void*>(*slot).load(std::memory_order_relaxed);
  if (p != nullptr) greyInline(reinterpret_cast<std::uintptr_t>(p), static_cast<GCWork*>(ctx));
}

void scanObject(std::uintptr_t b, GCWork* gcw) {
  const TypeInfo* t = reinterpret_cast<const ObjectHeader*>(b)->type;
  if (t == nullptr || t->trace == nullptr) return;
  t->trace(reinterpret_cast<void*>(b), visitSlot, gcw);
  gcw->scanWork += t->size;
}

}  // namespace

std::int64_t drain(GCWork* gcw, std::int64_t budget) {
  // A small FIFO between the work buffer and the scanner (prefetch-on-grey): an object
  // leaves the buffer, is prefetched, and is scanned kAhead objects later, so its header
  // load (the scan loop's one unavoidable miss: 96% of drain's samples in GCBench without
  // it) overlaps the scanning of the objects before it. The buffer being LIFO, a
  // prefetch at push time alone is too late: the last object pushed is the next popped.
  constexpr std::uint32_t kAhead = 8;
  std::uintptr_t ring[kAhead];
  std::uint32_t head = 0, count = 0;
  const std::uint64_t start = gcw->scanWork;
  for (std::uint32_t n = 0; budget < 0 || static_cast<std::int64_t>(gcw->scanWork - start) < budget; n++) {
    // Go's gcDrain: when the global list runs dry, hand part of the local buffer to it,
    // so assists, idle-P workers and extra workers have something to take.
    if ((n & 63) == 0 && workQueues().full.empty() && gcw->balance()) enlistWorker();
    while (count < kAhead) {
      const std::uintptr_t b = gcw->tryGet();
      if (b == 0) break;
      __builtin_prefetch(reinterpret_cast<const void*>(b));
      ring[(head + count++) % kAhead] = b;
    }
    if (count == 0) break;
    const std::uintptr_t b = ring[head];
    head = (head + 1) % kAhead;
    count--;
    scanObject(b, gcw);
  }
  // Out of budget: the objects still in the FIFO stay grey, back on the buffer.
  for (; count > 0; count--, head = (head + 1) % kAhead) gcw->put(ring[head]);
  const std::int64_t done = static_cast<std::int64_t>(gcw->scanWork - start);
  pacer().scanWorkDone.fetch_add(done, std::memory_order_relaxed);
  return done;
}

// visitSlot, counting the slots (gctrace's "MB stacks" and "MB globals").
struct CountingVisit {
  GCWork* gcw;
  std::uint64_t slots = 0;
  static void visit(void* ctx, void** slot) {
    auto* c = static_cast<CountingVisit*>(ctx);
    c->slots++;
    visitSlot(c->gcw, slot);
  }
};

void scanRoots(GCWork* gcw) {
  std::shared_lock<std::shared_mutex> scanning(registry().scanning);  // Registry's comment
  std::vector<std::pair<RootScanFn, void*>> roots;
  {
    std::lock_guard<std::mutex> lk(registry().lock);
    roots = registry().roots;
  }
  CountingVisit cv{gcw};
  for (auto& [fn, ctx] : roots)
    if (fn != nullptr) fn(ctx, CountingVisit::visit, &cv);
  gc_detail::noteGlobalsScanBytes(cv.slots * sizeof(void*));
}

// --- stack shrinking ------------------------------------------------------------------
//
// Go shrinks a goroutine's stack during its scan. Here a scanner without a P (the
// controller, in markLoop and at mark termination) cannot: a body's shrinkStack
// allocates. So a scan only decides (GBody::wantsStackShrink, under gcscanlock, right
// after traceStack) and sets g->gcshrink; the shrink itself runs under gcscanlock on a
// thread holding a P while g is not running (shrinkstack, proc.cc):
//   - execute() before it resumes a flagged G (which covers every scan gBeforeRun does);
//   - for Gs the controller flagged, also from the shrink queue below: after mark
//     termination the controller starts a shrinker G (one at a time) that drains it, and
//     a G returning from gcCollect drains what is left, so that a G parked for good
//     (never resumed) is shrunk all the same, and gcCollect returns with it done.
// A queued G that was resumed (and so shrunk by execute) meanwhile is found unflagged
// and skipped. The queue holds Gs of the attached world only: detaching clears it (and
// unflags its Gs, so a scan after the world attaches again queues them again), and a
// drainer takes entries only for its own Sched, which is alive while it runs on it.
// Lock order: gcscanlock, then the queue's lock. Unlike Go's sudog.elem, nothing points
// into a parked G's stack from a channel (elements are words), so a G parked on a
// channel is shrunk like any other.
namespace {
struct ShrinkQueue {
  std::mutex lock;
  Sched* sched = nullptr;  // the world of the Gs in gs
  std::vector<G*> gs;
  bool shrinkerQueued = false;  // a shrinker G exists and will drain gs
};
ShrinkQueue& shrinkQueue() {
  static ShrinkQueue* q = new ShrinkQueue;
  return *q;
}

void queueShrink(G* g) {
  ShrinkQueue& q = shrinkQueue();
  std::lock_guard<std::mutex> lk(q.lock);
  if (q.sched != g->sched) {
    q.gs.clear();
    q.sched = g->sched;
  }
  q.gs.push_back(g);
}

// Takes one queued G of sched, or null. The shrinker G passes `shrinker`: when it finds
// the queue empty it is gone from then on (startStackShrinker may start another).
G* takeShrink(Sched* sched, bool shrinker) {
  ShrinkQueue& q = shrinkQueue();
  std::lock_guard<std::mutex> lk(q.lock);
  if (q.sched == sched && !q.gs.empty()) {
    G* g = q.gs.back();
    q.gs.pop_back();
    return g;
  }
  if (shrinker) q.shrinkerQueued = false;
  return nullptr;
}

class StackShrinker final : public GBody {
 public:
  Step run(G* g, std::uint32_t budget) override {
    // Each shrink copies at most a quarter of one stack; yield as any G does.
    for (std::uint32_t done = 0; done < budget && !g->preemptRequested(); done += kShrinkCost) {
      G* gp = takeShrink(g->sched, /*shrinker=*/true);
      if (gp == nullptr) return Step::exit();
      shrinkstack(gp);
    }
    return Step::yield();
  }
  void exited(G*) override { delete this; }
  void abandoned(G*) override {
    ShrinkQueue& q = shrinkQueue();
    {
      std::lock_guard<std::mutex> lk(q.lock);
      q.shrinkerQueued = false;
    }
    delete this;
  }

 private:
  static constexpr std::uint32_t kShrinkCost = 64;  // budget units per shrink
};
}  // namespace

void startStackShrinker(Sched* s) {
  ShrinkQueue& q = shrinkQueue();
  {
    std::lock_guard<std::mutex> lk(q.lock);
    if (q.sched != s || q.gs.empty() || q.shrinkerQueued) return;
    q.shrinkerQueued = true;
  }
  s->newproc(new StackShrinker);
}

void drainStackShrinks(Sched* s) {
  while (G* g = takeShrink(s, /*shrinker=*/false)) shrinkstack(g);
}

void clearStackShrinks(Sched* s) {
  std::vector<G*> gs;
  {
    ShrinkQueue& q = shrinkQueue();
    std::lock_guard<std::mutex> lk(q.lock);
    if (q.sched != s) return;
    gs.swap(q.gs);
    q.sched = nullptr;
  }
  // Unflagged (outside q.lock: a scan takes gcscanlock, then q.lock), so that a later
  // scan, after s attaches again, queues them again.
  for (G* g : gs) {
    g->lockScan();
    g->gcshrink.store(false, std::memory_order_relaxed);
    g->unlockScan();
  }
}

namespace {
// Right after traceStack, under gcscanlock, g Runnable or Waiting.
void considerShrink(G* g, bool byCollector) {
  if (g->gcshrink.load(std::memory_order_relaxed) || !g->body->wantsStackShrink(g)) return;
  // Published by the release of gcscangen and of gcscanlock that follow.
  g->gcshrink.store(true, std::memory_order_relaxed);
  if (byCollector) queueShrink(g);  // else execute() shrinks it next (gBeforeRun's caller)
}
}  // namespace

bool tryScanG(G* g, GCWork* gcw, bool byCollector) {
  const std::uint32_t gen = markGen.load(std::memory_order_relaxed);
  if (g->gcscangen.load(std::memory_order_acquire) == gen) return true;
  g->lockScan();
  bool done = true;
  if (g->gcscangen.load(std::memory_order_relaxed) != gen) {
    const GStatus st = g->status.load(std::memory_order_acquire);
    switch (st) {
      case GStatus::Idle:
      case GStatus::Dead:
        break;  // holds nothing; if reused later it is Runnable and scanned then
      case GStatus::Runnable:
      case GStatus::Waiting: {
        CountingVisit cv{gcw};
        g->body->traceStack(g, CountingVisit::visit, &cv);
        gc_detail::noteStackScanBytes(cv.slots * sizeof(void*));
        considerShrink(g, byCollector);
        g->gcscangen.store(gen, std::memory_order_release);
        (byCollector ? counters().stacksByCollector : counters().stacksBeforeRun)
            .fetch_add(1, std::memory_order_relaxed);
        break;
      }
      case GStatus::Syscall:
        if (g->gcAtSafepoint.load(std::memory_order_acquire)) {
          CountingVisit cv{gcw};
          g->body->traceStack(g, CountingVisit::visit, &cv);
          gc_detail::noteStackScanBytes(cv.slots * sizeof(void*));
          g->gcscangen.store(gen, std::memory_order_release);
          (byCollector ? counters().stacksByCollector : counters().stacksBeforeRun)
              .fetch_add(1, std::memory_order_relaxed);
        } else {
          done = false;
        }
        break;
      case GStatus::Running:
        done = false;
        break;
    }
  }
  g->unlockScan();
  return done;
}

namespace {
Note gMarkProgress;  // the controller waits on it for stack scans done by others
}  // namespace

void markProgressClear() { gMarkProgress.clear(); }
void markProgressWait(std::int64_t ns) { gMarkProgress.sleepFor(ns); }
void markProgressWake() { gMarkProgress.wakeup(); }

void gBeforeRun(G* g) {
  P* p = currentP();
  SPINDLE_DCHECK(p != nullptr, "gBeforeRun: G {} resumed on an M without a P", g->goid);
  const std::uint32_t gen = markGen.load(std::memory_order_relaxed);
  if (g->gcscangen.load(std::memory_order_acquire) == gen) return;
  tryScanG(g, &p->gcw, /*byCollector=*/false);
  // This P's grey objects are the controller's to finish: hand them over, and tell a
  // controller waiting for this stack that it is scanned.
  p->gcw.flush();
  markProgressWake();
}

// --- walking the reachable heap (checkmark, verifyHeap) ------------------------------

std::string describeSource(const ReachSource& from) {
  if (from.obj != 0) {
    return fmt::format("a field of object {:#x} (type {})", from.obj,
                       from.type != nullptr ? from.type->name : "(no type)");
  }
  return fmt::format("{} {}", from.kind, from.id);
}

namespace {
// A plain root scanner or stack seen through a LabelVisitFn (no names).
struct Unlabelled {
  LabelVisitFn visit;
  void* ctx;
  static void slot(void* self, void** slot) {
    auto* u = static_cast<Unlabelled*>(self);
    u->visit(u->ctx, std::atomic_ref<void*>(*slot).load(std::memory_order_relaxed), SlotName{nullptr, nullptr});
  }
};

struct Walker {
  Walker(ReachFn fn, void* c) : reached(fn), ctx(c) {}
  ReachFn reached;
  void* ctx;
  std::unordered_map<MSpan*, std::vector<std::uint8_t>> bits;  // reached objects
  std::deque<std::uintptr_t> queue;                           // reached scan objects, FIFO
  ReachSource from;
  std::uint64_t objects = 0;

  void visitPointer(std::uintptr_t p) {
    if (p == 0) return;
    MSpan* s = mheap().spanOf(p);
    if (s == nullptr) return;  // not the heap
    ObjectRef r;
    if (!mheap().findObject(reinterpret_cast<const void*>(p), &r)) {
      // Into the heap's pages but no in-use span: report it (a dangling pointer).
      r = ObjectRef{p, s, 0};
      reached(ctx, r, p, from);
      return;
    }
    s = r.span;
    auto& b = bits[s];
    if (b.empty()) b.resize((s->nelems + 7) / 8);
    const std::uint8_t mask = static_cast<std::uint8_t>(1u << (r.index % 8));
    if (b[r.index / 8] & mask) return;
    b[r.index / 8] |= mask;
    objects++;
    reached(ctx, r, p, from);  // fatal on what it rejects: r is safe to scan below
    if (!s->spanclass.noscan()) queue.push_back(r.base);
  }
  void setSource(ReachSource src) { from = src; }
  static void visit(void* ctx, void** slot) {
    static_cast<Walker*>(ctx)->visitPointer(reinterpret_cast<std::uintptr_t>(
        std::atomic_ref<void*>(*slot).load(std::memory_order_relaxed)));
  }
  static void visitLabelled(void* ctx, void* p, const SlotName&) {
    static_cast<Walker*>(ctx)->visitPointer(reinterpret_cast<std::uintptr_t>(p));
  }
};

bool scannableAtSafepoint(G* g) {
  const GStatus st = g->status.load(std::memory_order_acquire);
  const bool scannable = st == GStatus::Runnable || st == GStatus::Waiting ||
                         (st == GStatus::Syscall && g->gcAtSafepoint.load(std::memory_order_acquire));
  return scannable && g->body != nullptr;
}
}  // namespace

namespace {
// scanRootSource with Registry::scanning held shared by the caller for a root scanner.
bool scanRootSourceLocked(const ReachSource& root, LabelVisitFn visit, void* ctx) {
  Unlabelled plain{visit, ctx};
  if (root.g != nullptr) {
    if (!scannableAtSafepoint(root.g)) return false;
    if (!root.g->body->traceStackLabelled(root.g, visit, ctx)) root.g->body->traceStack(root.g, Unlabelled::slot, &plain);
    return true;
  }
  std::pair<RootScanFn, void*> fn{nullptr, nullptr};
  LabelRootsFn labelled = nullptr;
  {
    std::lock_guard<std::mutex> lk(registry().lock);
    if (root.id < registry().roots.size()) {
      fn = registry().roots[root.id];
      labelled = registry().labelledRoots[root.id];
    }
  }
  if (fn.first == nullptr) return false;
  if (labelled != nullptr) {
    labelled(fn.second, visit, ctx);
  } else {
    fn.first(fn.second, Unlabelled::slot, &plain);
  }
  return true;
}
}  // namespace

bool scanRootSource(const ReachSource& root, LabelVisitFn visit, void* ctx) {
  if (root.g != nullptr) return scanRootSourceLocked(root, visit, ctx);
  std::shared_lock<std::shared_mutex> scanning(registry().scanning);  // Registry's comment
  return scanRootSourceLocked(root, visit, ctx);
}

std::uint64_t walkReachable(const std::vector<G*>& gs, ReachFn reached, void* ctx, bool labelledRoots) {
  Walker w(reached, ctx);
  std::vector<std::pair<RootScanFn, void*>> roots;
  // Held through the root scanners below (Registry's comment), released before the Gs.
  std::shared_lock<std::shared_mutex> scanning(registry().scanning);
  {
    std::lock_guard<std::mutex> lk(registry().lock);
    roots = registry().roots;
  }
  for (std::size_t i = 0; i < roots.size(); i++) {
    if (roots[i].first == nullptr) continue;
    w.setSource(ReachSource{"root scanner", i, 0, nullptr});
    if (labelledRoots) {
      (void)scanRootSourceLocked(w.from, Walker::visitLabelled, &w);
    } else {
      roots[i].first(roots[i].second, Walker::visit, &w);
    }
  }
  scanning.unlock();
  for (G* g : gs) {
    // goid only once scannable: a G that is not may be a free G being set up by a host
    // thread without a P (runMain's initG writes goid; the world stop does not hold it
    // off). A scannable status was stored after the G's setup (the acquire load in
    // scannableAtSafepoint).
    if (!scannableAtSafepoint(g)) continue;
    w.setSource(ReachSource{"the stack of G", g->goid, 0, nullptr, g});
    if (labelledRoots) {
      (void)scanRootSource(w.from, Walker::visitLabelled, &w);
    } else {
      g->body->traceStack(g, Walker::visit, &w);
    }
  }
  while (!w.queue.empty()) {
    std::uintptr_t b = w.queue.front();
    w.queue.pop_front();
    const TypeInfo* t = reinterpret_cast<const ObjectHeader*>(b)->type;
    w.setSource(ReachSource{"object", 0, b, t});
    if (t != nullptr && t->trace != nullptr) t->trace(reinterpret_cast<void*>(b), Walker::visit, &w);
  }
  return w.objects;
}

// --- checkmark ---------------------------------------------------------------------

std::uint64_t checkmark(const std::vector<G*>& gs) {
  return walkReachable(
      gs,
      [](void*, const ObjectRef& r, std::uintptr_t p, const ReachSource& from) {
        MSpan* s = r.span;
        if (s->state() == SpanState::InUse && s->isMarked(r.index)) return;
        const char* tname = "noscan";
        if (s->state() == SpanState::InUse && !s->spanclass.noscan()) {
          const TypeInfo* t = reinterpret_cast<const ObjectHeader*>(r.base)->type;
          tname = t != nullptr ? t->name : "(no type)";
        }
        SPINDLE_FATAL(
            "checkmark: object {:#x} (type {}, span {:#x} class {} elemsize {}, slot {}) is "
            "reachable but was not marked by the concurrent mark (pointer {:#x}, from {})",
            r.base, tname, s->base(), s->spanclass.value, s->elemsize, r.index, p,
            describeSource(from));
      },
      nullptr);
}

}  // namespace spindle::runtime::gc_detail
