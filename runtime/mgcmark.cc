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
// Checkmark: with the world stopped after the concurrent mark, a second mark from the
// same roots into a private bitmap; any object it reaches that the real mark left white
// is a collector bug, reported with its address, type and span.
#include <thread>
#include <unordered_map>

#include "runtime/g.h"
#include "runtime/m.h"
#include "runtime/mgc.h"
#include "runtime/mheap.h"
#include "runtime/pheap.h"
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

void scanRoots(GCWork* gcw) {
  std::vector<std::pair<RootScanFn, void*>> roots;
  {
    std::lock_guard<std::mutex> lk(registry().lock);
    roots = registry().roots;
  }
  for (auto& [fn, ctx] : roots)
    if (fn != nullptr) fn(ctx, visitSlot, gcw);
}

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
      case GStatus::Waiting:
        g->body->traceStack(g, visitSlot, gcw);
        g->gcscangen.store(gen, std::memory_order_release);
        (byCollector ? counters().stacksByCollector : counters().stacksBeforeRun)
            .fetch_add(1, std::memory_order_relaxed);
        break;
      case GStatus::Syscall:
        if (g->gcAtSafepoint.load(std::memory_order_acquire)) {
          g->body->traceStack(g, visitSlot, gcw);
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

// --- checkmark ---------------------------------------------------------------------

namespace {
struct Checkmarker {
  std::unordered_map<MSpan*, std::vector<std::uint8_t>> bits;
  std::vector<std::uintptr_t> stack;
  std::uint64_t objects = 0;

  void mark(std::uintptr_t p) {
    if (p == 0) return;
    ObjectRef r;
    if (!mheap().findObject(reinterpret_cast<const void*>(p), &r)) return;
    MSpan* s = r.span;
    auto& b = bits[s];
    if (b.empty()) b.resize((s->nelems + 7) / 8);
    const std::uint8_t mask = static_cast<std::uint8_t>(1u << (r.index % 8));
    if (b[r.index / 8] & mask) return;
    b[r.index / 8] |= mask;
    objects++;
    if (!s->isMarked(r.index)) {
      const char* tname = "noscan";
      if (!s->spanclass.noscan()) {
        const TypeInfo* t = reinterpret_cast<const ObjectHeader*>(r.base)->type;
        tname = t != nullptr ? t->name : "(no type)";
      }
      SPINDLE_FATAL(
          "checkmark: object {:#x} (type {}, span {:#x} class {} elemsize {}, slot {}) is "
          "reachable but was not marked by the concurrent mark (pointer {:#x})",
          r.base, tname, s->base(), s->spanclass.value, s->elemsize, r.index, p);
    }
    if (!s->spanclass.noscan()) stack.push_back(r.base);
  }
  static void visit(void* ctx, void** slot) {
    static_cast<Checkmarker*>(ctx)->mark(reinterpret_cast<std::uintptr_t>(
        std::atomic_ref<void*>(*slot).load(std::memory_order_relaxed)));
  }
};
}  // namespace

std::uint64_t checkmark(const std::vector<G*>& gs) {
  Checkmarker cm;
  std::vector<std::pair<RootScanFn, void*>> roots;
  {
    std::lock_guard<std::mutex> lk(registry().lock);
    roots = registry().roots;
  }
  for (auto& [fn, ctx] : roots)
    if (fn != nullptr) fn(ctx, Checkmarker::visit, &cm);
  for (G* g : gs) {
    const GStatus st = g->status.load(std::memory_order_acquire);
    const bool scannable = st == GStatus::Runnable || st == GStatus::Waiting ||
                           (st == GStatus::Syscall && g->gcAtSafepoint.load(std::memory_order_acquire));
    if (scannable && g->body != nullptr) g->body->traceStack(g, Checkmarker::visit, &cm);
  }
  while (!cm.stack.empty()) {
    std::uintptr_t b = cm.stack.back();
    cm.stack.pop_back();
    const TypeInfo* t = reinterpret_cast<const ObjectHeader*>(b)->type;
    if (t != nullptr && t->trace != nullptr)
      t->trace(reinterpret_cast<void*>(b), Checkmarker::visit, &cm);
  }
  return cm.objects;
}

}  // namespace spindle::runtime::gc_detail
