// mgc.cc: the collector's cycle driver (Go's mgc.go): phases, the controller thread,
// gcCollect, lazy mcache flushing, stats and gctrace.
//
// One world is attached at a time (gcAttach). A controller thread (not an M: it holds
// no P; named "spindle-gc"; started at the first cycle request, so a program that never
// reaches its first heap goal has none) runs every cycle and the background sweep;
// cycles are requested by the pacer trigger in the allocation slow path (requestCycle, never blocking) or by gcCollect and
// gcstress's gcStressSafepoint (both wait; gcstress's requests never fold). A cycle:
//   1. Sweep termination, world stopped: finish the previous sweep (finishSweep);
//      check that every P's MCache was flushed since the last sg += 2 (flushGen ==
//      sweepgen, else fatal naming the P); pre-mark every cached span (allocate-black);
//      markGen++ (every G's stack becomes unscanned); turn on the barrier,
//      allocate-black and the scheduler's before-run stack-scan hook. Start the world.
//   2. Concurrent mark: the controller scans the registered roots, then loops: drain
//      grey objects (it is the dedicated mark worker; mutators assist in the allocation
//      slow path), scan every G's stack it can (Runnable, Waiting, blocked in gcCollect;
//      a running G is asked to yield and scanned when it stops, or by the scheduler
//      before it resumes), and when no work is left anywhere, a ragged barrier
//      (forEachP) flushes each P's work buffer; marking is complete after a round in
//      which no P had work nor had pushed any to the global list since its last visit.
//   3. Mark termination, world stopped: flush the Ps' buffers, scan Gs created since,
//      drain what the barrier produced after the ragged barrier; turn the barrier off
//      once the no-P buffer (threads without a P are not stopped) is drained, under its
//      lock (noPWorkDisableBarrier); end allocate-black on the cached spans; checkmark
//      (optional); the pacer's next goal; sg += 2 (startSweepCycle). Start the world.
//      MCaches are NOT flushed here: a P flushes its own in acquireP when flushGen !=
//      sweepgen, and forEachP(prepareForSweep) after the world restarts reaches the rest
//      (idle Ps by the controller, running Ps at their next safepoint), flushes each P's
//      page cache (for the scavenger), then runs the gcMarkDone P hooks; a stack shrinker
//      G is started for the Gs whose scan asked for a smaller stack (mgcmark.cc), and
//      gcCollect from a G drains what it has not reached.
//   Assists that cannot keep up: a G allocating past the goal (while marking, or while
//   its requested cycle has not started) is parked at its next yield (GCAssistWait,
//   Go's assist queue) and readied after the next step 3.
//   gcstoptheworld (setGCStopTheWorld): steps 1 to 3 are one pause: the world is not
//   started between them, the roots are scanned with it stopped and step 3's scan of
//   every G and drain do the whole mark (no mark worker, assist or barrier work runs).
//   4. Concurrent sweep: the controller sweeps span by span (sweepone) while no new
//      cycle is requested; allocating Ps sweep proportionally (mgcpacer.cc), cacheSpan
//      sweeps what it takes, uncacheSpan sweeps stale cached spans.
// Event log (gcevents.h): runCycle fills a GCEvent at the phase points (phases, the two
// stops split into time to safepoint and work, mark termination's named steps, heap,
// assist and background mark time); it becomes Collector::sweeping at the end of step 3
// and is published, with the sweep's share (spans swept, weak clearing per table,
// finalizers queued), when that sweep is done: the background sweeper's last step or the
// next sweep termination, before `swept` moves (so gcCollect's caller finds it). The
// controller hands new records to the sink (deliverGCEvents) after each cycle or sweep
// step, with the world running and no collector lock held. A cycle's cause is recorded
// by whoever raised `requested` for it (Collector::causes).
// Counters: started (past step 1), marked (past step 3), swept (sweep finished).
// gcCollect waits until swept >= started+1 at the time of the call.
// Locks: cycleLock (one cycle or one background sweep step at a time; verifyHeap) ->
// Collector::lock (counters, requests, stats). Never held across a wait for the world
// except cycleLock, which no M holding a P ever takes.
#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <thread>

#include "runtime/fing.h"
#include "runtime/g.h"
#include "runtime/gcevents.h"
#include "runtime/mfinal.h"
#include "runtime/m.h"
#include "runtime/mcache.h"
#include "runtime/mgc.h"
#include "runtime/gctrace.h"
#include "runtime/proflabel.h"
#include "runtime/mgcscavenge.h"
#include "runtime/mgcsweep.h"
#include "runtime/trace.h"
#include "runtime/mheap.h"
#include "runtime/phooks.h"
#include "runtime/print.h"
#include "runtime/proc.h"
#include "runtime/threadname.h"
#include "runtime/throw.h"

namespace spindle::runtime {

namespace gc_detail {

std::atomic<bool> gcMarking{false};
std::atomic<std::uint32_t> markGen{0};

namespace {
// The world being marked (set and cleared with it stopped, next to gcMarking).
std::atomic<Sched*> gMarkSched{nullptr};
#if SPINDLE_DCHECKS_ON
std::atomic<void (*)()> gMarkTerminationTestHook{nullptr};  // setMarkTerminationTestHook
std::atomic<void (*)()> gDetachTestHook{nullptr};            // setDetachTestHook
#endif
}  // namespace

void enlistWorker() {
  if (Sched* s = gMarkSched.load(std::memory_order_relaxed)) {
    if (idleMarkSlots(s) > 0) s->wakeIdlePs(1);
  }
}

Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}
Counters& counters() {
  static Counters* c = new Counters;
  return *c;
}

std::vector<G*> allGs(Sched* s) {
  std::vector<G*> gs;
  s->forEachG([&](G* g) { gs.push_back(g); });
  return gs;
}

namespace {

// A sweep finished (world running): wake the finalizer G for what the sweep queued (the
// scheduler also notices finalizerWakePending in findRunnable; this covers an idle world)
// and let the scavenger aim just above the goal: 10% above the largest goal of the last
// second (Go retains heapGoal + 10%). The window keeps a goal that swings from cycle to
// cycle (GCBench: 16 to 29 MB) from having pages released after a low one and faulted
// back in after the next high one (4k extra page faults, 11.5k vs Boehm's 7.4k); a
// spike's memory still goes back within about a second. Controller thread only.
void afterSweep() {
  wakeFinalizerG();
  constexpr int kWindow = 8;
  static std::int64_t when[kWindow] = {};
  static std::uint64_t goals[kWindow] = {};
  static int next = 0;
  const std::int64_t now = nanotime();
  goals[next] = pacer().goal.load(std::memory_order_relaxed);
  when[next] = now;
  next = (next + 1) % kWindow;
  std::uint64_t goal = 0;
  for (int i = 0; i < kWindow; i++)
    if (when[i] != 0 && now - when[i] < 1000000000) goal = std::max(goal, goals[i]);
  setScavengeGoal(goal * 11 / 10);
  scavengerWake();
}

struct Collector {
  std::mutex cycleLock;
  std::mutex lock;  // guards the fields below (not cycleLock's)
  std::condition_variable cv;
  Sched* sched = nullptr;
  std::thread controller;
  bool stopping = false;
  std::uint64_t requested = 0, started = 0, marked = 0, swept = 0;
  std::uint64_t forced = 0;
  std::uint64_t stressed = 0;  // cycles run for gcstress (CycleCause::Stress)
  std::uint64_t stwMarks = 0;  // cycles marked with the world stopped (gcstoptheworld)
  std::int64_t attachTime = 0;
  std::int64_t gcTimeNs = 0;  // STW pauses + mark work, for gctrace's P%
  std::vector<std::int64_t> pauses;
  std::uint64_t numPauses = 0;
  std::uint64_t pauseHist[24] = {};
  std::int64_t maxPause = 0, totalPause = 0;

  std::vector<G*> assistQueue;  // Gs parked in GCAssistWait until mark termination
  // Why each requested cycle not yet started was asked for (by cycle number; a later
  // request folded into one keeps the first cause, unless it is gc()'s: gcCollectNew).
  std::map<std::uint64_t, GCCause> causes;
  // The event of the cycle whose sweep is in progress (cycleLock: the cycle driver and
  // the background sweep steps), published when that sweep is done (gcevents.h).
  GCEvent sweeping;
  bool sweepingEvent = false;
  std::int64_t sweepStartNs = 0;
  std::uint64_t sweptAtStart = 0, finQueuedAtStart = 0;
  std::vector<GCWeakClear> weakAtStart;
  std::uint64_t finRunAtLastEvent = 0;

  std::atomic<bool> requestPending{false};
  std::atomic<bool> sweepDone{true};
  std::atomic<bool> trace{false};
  std::atomic<std::uint64_t> orphanBytesMarked{0};  // from Ps destroyed while marking
  GCWork gcw;  // the controller's (controller thread only)
};

Collector& C() {
  static Collector* c = new Collector;
  return *c;
}

void recordPause(std::int64_t ns) {
  Collector& c = C();
  std::lock_guard<std::mutex> lk(c.lock);
  if (c.pauses.size() == 1024) c.pauses.erase(c.pauses.begin());
  c.pauses.push_back(ns);
  c.numPauses++;
  const std::int64_t us = ns / 1000;
  int b = 0;
  while (b < 23 && (std::int64_t{2} << b) <= us) b++;
  c.pauseHist[b]++;
  c.maxPause = std::max(c.maxPause, ns);
  c.totalPause += ns;
  c.gcTimeNs += ns;
}

// Flushes p's MCache if the sweep generation moved since its last flush (Go's
// mcache.prepareForSweep).
void prepareForSweep(P* p, std::atomic<std::uint64_t>& counter) {
  MCache* mc = p->mcache;
  if (mc == nullptr) return;
  if (mc->flushGen.load(std::memory_order_acquire) == mheap().sweepgenLoad()) return;
  mc->releaseAll();
  counter.fetch_add(1, std::memory_order_relaxed);
}

void onAcquireP(P* p) { prepareForSweep(p, counters().flushesAcquireP); }

void onDestroyP(P* p) {
  // World stopped: hand the P's grey objects to the global list.
  p->gcw.dispose();
  C().orphanBytesMarked.fetch_add(p->gcw.bytesMarked, std::memory_order_relaxed);
  p->gcw.bytesMarked = 0;
  p->gcw.scanWork = 0;
}

// A fatal error names the collector's state (throw.h: no lock, no heap).
void printGCState(std::FILE* out) {
  const GCStateLine line = gcStateLine();
  printNoHeap(out, "{}\n", line.view());
}

const int gHooksRegistered = [] {
  addFatalContext(&printGCState);
  return registerPLifecycleHooks({nullptr, onDestroyP, onAcquireP, nullptr});
}();

// The scheduler's assist-park commit (g is Waiting): queue g until mark termination,
// or ready it at once if this cycle's marking already ended.
void assistPark(Sched* s, G* g) {
  Collector& c = C();
  s->addHostWait(1);  // a parked assist is not a deadlock: the controller will ready it
  {
    std::lock_guard<std::mutex> lk(c.lock);
    // A mark termination is still to come (it readies the queue under this lock).
    if (c.sched == s && c.requested > c.marked && !c.stopping) {
      c.assistQueue.push_back(g);
      markProgressWake();  // g's stack can be scanned now
      return;
    }
  }
  s->ready(g);
  s->addHostWait(-1);
}

void readyAssists(Sched* s, std::vector<G*>& q) {
  for (G* g : q) {
    s->ready(g);
    s->addHostWait(-1);
  }
}

// Spans swept so far by anyone (the background sweeper, allocating Ps, uncacheSpan).
std::uint64_t spansSweptTotal() {
  return counters().sweptBackground.load(std::memory_order_relaxed) +
         counters().sweptProportional.load(std::memory_order_relaxed) +
         mheap().stats.sweptByUncache.load(std::memory_order_relaxed);
}

// Under cycleLock, at the end of mark termination: c.sweeping's sweep begins.
void beginSweepEvent(GCEvent ev) {
  Collector& c = C();
  c.sweeping = std::move(ev);
  c.sweepingEvent = true;
  c.sweepStartNs = nanotime();
  c.sweptAtStart = spansSweptTotal();
  c.finQueuedAtStart = finalizersQueuedTotal();
  c.weakAtStart = weakClearTotals();
}

// Under cycleLock, once the sweep is finished (before gcCollect's waiters are released):
// the sweep's share of the record, then publish it.
void finishSweepEvent() {
  Collector& c = C();
  if (!c.sweepingEvent) return;
  c.sweepingEvent = false;
  GCEvent& ev = c.sweeping;
  const std::int64_t now = nanotime();
  ev.sweep = GCPhase{c.sweepStartNs - c.attachTime, now - c.sweepStartNs};
  ev.spansSwept = spansSweptTotal() - c.sweptAtStart;
  ev.finalizersQueued = finalizersQueuedTotal() - c.finQueuedAtStart;
  const std::uint64_t run = finalizerStats().run;
  ev.finalizersRun = run - std::min(run, c.finRunAtLastEvent);
  c.finRunAtLastEvent = run;
  for (const GCWeakClear& w : weakClearTotals()) {
    GCWeakClear d = w;
    for (const GCWeakClear& w0 : c.weakAtStart) {
      if (w0.table == w.table) {
        d.ns -= w0.ns;
        d.objects -= w0.objects;
      }
    }
    ev.weak.push_back(std::move(d));
  }
  // The execution trace draws the cycle's phases and pauses from the same record.
  if (trace::enabled()) [[unlikely]] trace::gcCycle(ev, c.attachTime);
  publishGCEvent(std::move(ev));
}

template <typename F>
void forEachCachedSpan(Sched* s, F&& f) {
  const int n = s->procs();
  for (int i = 0; i < n; i++) {
    MCache* mc = s->allp(i)->mcache;
    for (MSpan* sp : mc->alloc)
      if (sp != &emptymspan) f(sp);
  }
}

// Concurrent mark until no grey object is left anywhere and every G is scanned.
void markLoop(Sched* s, std::int64_t& workNs) {
  Collector& c = C();
  std::int64_t sleepUs = 10;
  for (;;) {
    markProgressClear();
    std::int64_t t0 = nanotime();
    std::int64_t w = drain(&c.gcw, -1);
    bool allScanned = true;
    for (G* g : allGs(s)) {
      if (!tryScanG(g, &c.gcw, /*byCollector=*/true)) {
        allScanned = false;
        g->preempt.store(true, std::memory_order_relaxed);
      }
    }
    w += drain(&c.gcw, -1);
    workNs += nanotime() - t0;
    counters().workerWork.fetch_add(static_cast<std::uint64_t>(w), std::memory_order_relaxed);
    if (!allScanned) {
      // Woken as soon as a G is scanned before it runs again or parks.
      markProgressWait(sleepUs * 1000);
      sleepUs = std::min<std::int64_t>(sleepUs * 2, 1000);
      continue;
    }
    flushNoPWork();
    if (!workQueues().full.empty()) continue;
    if (!markWorkersIdle()) {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
      continue;
    }
    std::atomic<bool> flushed{false};
    // Go's gcMarkDone: a P that pushed work to the global list since its last visit
    // (flushedWork) may have handed it to a P already visited (an assist pops it), so
    // only a round where no P had work or pushed any proves that marking is done.
    s->forEachP([&flushed](P* p) {
      if (!p->gcw.empty() || p->gcw.flushedWork) {
        p->gcw.flush();
        flushed.store(true, std::memory_order_relaxed);
      }
      p->gcw.flushedWork = false;
    });
    // Global list first, then the workers (seq_cst): a worker announces itself busy
    // before it pops.
    // The no-P buffer last: a thread without a P may have greyed into it during the round.
    if (flushed.load(std::memory_order_relaxed) || !workQueues().full.empty() || !markWorkersIdle() ||
        !noPWorkEmpty())
      continue;
    return;
  }
}

void runCycle() {
  Collector& c = C();
  std::unique_lock<std::mutex> cl(c.cycleLock);
  Sched* s;
  {
    std::lock_guard<std::mutex> lk(c.lock);
    s = c.sched;
  }
  MHeap& h = mheap();
  if (s == nullptr) return;
  const std::int64_t tStart = nanotime();
  const std::uint64_t heap0 = static_cast<std::uint64_t>(std::max<std::int64_t>(h.heapLive.load(), 0));

  // Finish the previous sweep concurrently first, so the STW below has (almost)
  // nothing left to sweep.
  while (sweepone(h)) counters().sweptBackground.fetch_add(1, std::memory_order_relaxed);

  // --- 1. sweep termination ---------------------------------------------------------
  GCEvent ev;
  const std::int64_t tStop1 = nanotime();
  const std::int64_t stop1 = s->stopTheWorld("gc sweep termination");
  finishSweep(h);
  finishSweepEvent();  // the previous cycle's, if the background sweeper had not finished it
  h.foldHeapLiveDeltas();
  {
    std::lock_guard<std::mutex> lk(c.lock);
    c.swept = std::max(c.swept, c.marked);
    c.sweepDone.store(true, std::memory_order_relaxed);
    c.cv.notify_all();
  }
  const std::uint32_t sg = h.sweepgenLoad();
  const int procs = s->procs();
  for (int i = 0; i < procs; i++) {
    P* p = s->allp(i);
    const std::uint32_t fg = p->mcache->flushGen.load(std::memory_order_acquire);
    SPINDLE_CHECK(fg == sg, "gcStart: P {} MCache not flushed since the last sweep: flushGen={} sweepgen={}",
                  p->id, fg, sg);
    SPINDLE_CHECK(p->gcw.empty(), "gcStart: P {} has grey objects outside a mark phase", p->id);
  }
  SPINDLE_CHECK(workQueues().full.empty(), "gcStart: global work list not empty");
  SPINDLE_CHECK(noPWorkEmpty(), "gcStart: the barrier's no-P buffer holds grey objects outside a mark phase");
  const bool verify = counters().verify.load(std::memory_order_relaxed);
  if (verify) {
    std::uint64_t next;
    {
      std::lock_guard<std::mutex> lk(c.lock);
      next = c.started + 1;
    }
    verifyHeapStopped(s, fmt::format("before cycle {}", next).c_str(), /*afterMark=*/false);
  }
  forEachCachedSpan(s, [](MSpan* sp) { sp->allocBlackBegin(); });
  markGen.fetch_add(1, std::memory_order_relaxed);
  pacerStartCycle();
  h.allocBlackBytes.store(0, std::memory_order_relaxed);
  c.orphanBytesMarked.store(0, std::memory_order_relaxed);
  c.gcw.bytesMarked = 0;
  heapOwnersMarkStart();
  gcMarking.store(true, std::memory_order_relaxed);
  h.gcAllocBlack.store(true, std::memory_order_relaxed);
  writeBarrierEnabled.store(true, std::memory_order_relaxed);
  setGBeforeRunHook(gBeforeRun);
  idleMarkBegin();
  gMarkSched.store(s, std::memory_order_relaxed);
  c.requestPending.store(false, std::memory_order_relaxed);
  std::uint64_t cycle;
  {
    std::lock_guard<std::mutex> lk(c.lock);
    cycle = ++c.started;
    if (auto it = c.causes.find(cycle); it != c.causes.end()) ev.cause = it->second;
    c.causes.erase(c.causes.begin(), c.causes.upper_bound(cycle));
  }
  ev.cycle = cycle;
  ev.procs = procs;
  ev.heapBefore = heap0;
  const std::int64_t assist0 = counters().assistTimeNs.load(std::memory_order_relaxed);
  const std::int64_t idle0 = counters().idleMarkTimeNs.load(std::memory_order_relaxed);
  const std::uint64_t stackScan0 = gc_detail::stackScanBytesTotal(), globalsScan0 = gc_detail::globalsScanBytesTotal();
  // gcstoptheworld: the world stays stopped through the mark (one pause, below).
  const bool stwMark = counters().stwMark.load(std::memory_order_relaxed);
  std::int64_t pause1 = 0;
  ev.stwMark = stwMark;
  if (!stwMark) {
    pause1 = s->startTheWorld();
    ev.sweepTermination = GCPhase{tStop1 - c.attachTime, nanotime() - tStop1};
    ev.stw1ToSafepointNs = stop1;
    ev.stw1WorkNs = pause1 - stop1;
    recordPause(pause1);
    s->wakeIdlePs(idleMarkSlots(s));  // idle Ps run the idle mark worker (no more than idle CPUs)
    afterSweep();  // the previous cycle's sweep finished at sweep termination
    markWorkersBegin();
  }

  // --- 2. concurrent mark -------------------------------------------------------------
  const std::int64_t tMark = nanotime();
  std::int64_t workNs = 0;
  {
    const std::int64_t t0 = nanotime();
    scanRoots(&c.gcw);
    workNs += nanotime() - t0;
  }
  // With the world stopped, mark termination below scans every G and drains it all.
  if (!stwMark) markLoop(s, workNs);
  const std::int64_t markNs = nanotime() - tMark;
  counters().workerTimeNs.fetch_add(workNs, std::memory_order_relaxed);
  if (stwMark) ev.sweepTermination = GCPhase{tStop1 - c.attachTime, tMark - tStop1};
  ev.mark = GCPhase{tMark - c.attachTime, markNs};
  ev.assistNs = counters().assistTimeNs.load(std::memory_order_relaxed) - assist0;
  ev.backgroundMarkNs = workNs + counters().idleMarkTimeNs.load(std::memory_order_relaxed) - idle0;

  // --- 3. mark termination ------------------------------------------------------------
  const std::int64_t tStop2 = nanotime();
  const std::int64_t stop2 = stwMark ? 0 : s->stopTheWorld("gc mark termination");
  // The named steps of mark termination, each timed from the end of the one before.
  std::int64_t tStep = nanotime();
  auto step = [&ev, &tStep](const char* name) {
    const std::int64_t now = nanotime();
    ev.markTerminationSteps.push_back(GCStep{name, now - tStep});
    tStep = now;
  };
  std::uint64_t marked = c.orphanBytesMarked.load(std::memory_order_relaxed);
  const int procs2 = s->procs();
  for (int i = 0; i < procs2; i++) {
    P* p = s->allp(i);
    p->gcw.flush();
    marked += p->gcw.bytesMarked;
    p->gcw.bytesMarked = 0;
    p->gcw.scanWork = 0;
  }
  flushNoPWork();
  marked += markWorkersEnd();
  step("root flush");
  std::vector<G*> gs = allGs(s);
  for (G* g : gs) {
    SPINDLE_CHECK(tryScanG(g, &c.gcw, /*byCollector=*/true),
                  "mark termination: G {} (status {}) still unscanned and not stopped", g->goid,
                  static_cast<int>(g->status.load()));
  }
  step("stack rescan");
  drain(&c.gcw, -1);
  // Threads without a P are not stopped: whatever they greyed is drained here, and the
  // barrier goes off (under the buffer's lock) only once their buffer is empty.
#if SPINDLE_DCHECKS_ON
  if (auto hook = gMarkTerminationTestHook.exchange(nullptr)) hook();
#endif
  while (!noPWorkDisableBarrier()) drain(&c.gcw, -1);
  SPINDLE_CHECK(workQueues().full.empty() && c.gcw.empty(), "mark termination: grey objects left");
  step("drain and barrier off");
  forEachCachedSpan(s, [&h](MSpan* sp) {
    if (sp->allocBlackStart != MSpan::kNoAllocBlack)
      h.allocBlackBytes.fetch_add(std::uint64_t{sp->allocBlackEnd()} * sp->elemsize, std::memory_order_relaxed);
  });
  setGBeforeRunHook(nullptr);
  idleMarkEnd();
  gMarkSched.store(nullptr, std::memory_order_relaxed);
  h.gcAllocBlack.store(false, std::memory_order_relaxed);
  gcMarking.store(false, std::memory_order_relaxed);
  marked += c.gcw.bytesMarked;
  // The marked total includes the objects allocated black during the mark (Go's
  // heapMarked does too): they are live as far as this cycle knows, and the next goal
  // must leave room above them, or a cycle whose mark overlapped much allocation would
  // leave the next one almost no runway (back-to-back cycles).
  marked += h.allocBlackBytes.load(std::memory_order_relaxed);
  c.gcw.bytesMarked = 0;
  heapOwnersMarkEnd();
  step("allocate-black end");
  if (counters().checkmark.load(std::memory_order_relaxed)) {
    counters().checkmarkObjects.fetch_add(checkmark(gs), std::memory_order_relaxed);
    step("checkmark");
  }
  h.foldHeapLiveDeltas();
  const std::uint64_t heap1 = static_cast<std::uint64_t>(std::max<std::int64_t>(h.heapLive.load(), 0));
  pacerEndCycle(marked, heap1);
  h.heapLive.store(static_cast<std::int64_t>(marked), std::memory_order_relaxed);
  step("pacer");
  c.sweepDone.store(false, std::memory_order_relaxed);
  startSweepCycle(h);
  step("sweep start");
  if (verify) {
    verifyHeapStopped(s, fmt::format("after cycle {}", cycle).c_str(), /*afterMark=*/true);
    step("gcverify");
  }
  ev.heapAtTermination = heap1;
  ev.heapMarked = marked;
  ev.heapGoal = pacer().goal.load(std::memory_order_relaxed);
  const std::int64_t pause2 = s->startTheWorld();
  ev.markTermination = GCPhase{tStop2 - c.attachTime, nanotime() - tStop2};
  // gcstoptheworld: one stop, from sweep termination's.
  ev.stw2ToSafepointNs = stwMark ? stop1 : stop2;
  ev.stw2WorkNs = pause2 - ev.stw2ToSafepointNs;
  const GCCause cause = ev.cause;  // for gctrace, below (ev moves into the sweep's record)
  const std::int64_t assistNs = ev.assistNs, backgroundNs = ev.backgroundMarkNs;
  beginSweepEvent(std::move(ev));
  recordPause(pause2);
  if (stwMark) {
    afterSweep();
    std::lock_guard<std::mutex> lk(c.lock);
    c.stwMarks++;
  }
  s->forEachP([](P* p) {
    prepareForSweep(p, counters().flushesForEachP);
    // Its cached free pages go back to the page allocator, where the scavenger sees
    // them (Go flushes the page caches in mark termination's forEachP).
    mheap().flushPageCache(p);
    runPGCMarkDoneHooks(p);
  });
  std::vector<G*> parked;
  {
    std::lock_guard<std::mutex> lk(c.lock);
    c.marked++;
    parked.swap(c.assistQueue);
    c.gcTimeNs += workNs;
    c.cv.notify_all();
  }
  readyAssists(s, parked);
  startStackShrinker(s);
  if (c.trace.load(std::memory_order_relaxed)) {
    const std::int64_t now = nanotime();
    std::int64_t gcTime, since;
    {
      std::lock_guard<std::mutex> lk(c.lock);
      gcTime = c.gcTimeNs;
      since = std::max<std::int64_t>(now - c.attachTime, 1);
    }
    GCTraceCycle t;
    t.cycle = cycle;
    t.startNs = tStart - c.attachTime;
    t.utilPercent = static_cast<int>(100 * gcTime / since);
    t.sweepTermNs = pause1;
    t.markNs = markNs;
    t.markTermNs = pause2;
    // Go's CPU split: a pause counts once per P it stopped.
    t.sweepTermCpuNs = pause1 * procs;
    t.assistCpuNs = assistNs;
    t.idleCpuNs = counters().idleMarkTimeNs.load(std::memory_order_relaxed) - idle0;
    t.backgroundCpuNs = std::max<std::int64_t>(backgroundNs - t.idleCpuNs, 0);
    t.markTermCpuNs = pause2 * procs2;
    t.heap0 = heap0;
    t.heap1 = heap1;
    t.heap2 = marked;
    t.goal = pacer().goal.load(std::memory_order_relaxed);
    t.stacks = gc_detail::stackScanBytesTotal() - stackScan0;
    t.globals = gc_detail::globalsScanBytesTotal() - globalsScan0;
    t.procs = procs2;
    t.forced = cause == GCCause::Forced;
    printTo(stderr, "{}\n", formatGCTrace(t));
  }
}

// One step of background sweeping; false when the sweep is finished.
bool sweepStep() {
  Collector& c = C();
  std::lock_guard<std::mutex> cl(c.cycleLock);
  for (int i = 0; i < 16; i++) {
    if (!sweepone(mheap())) {
      finishSweepEvent();
      {
        std::lock_guard<std::mutex> lk(c.lock);
        c.swept = std::max(c.swept, c.marked);
        c.sweepDone.store(true, std::memory_order_relaxed);
        c.cv.notify_all();
      }
      afterSweep();
      return false;
    }
    counters().sweptBackground.fetch_add(1, std::memory_order_relaxed);
  }
  return true;
}

void controllerLoop() {
  const ProfLabelScope label("<gc controller>");  // the cycle driver, marking and sweeping too
  Collector& c = C();
  std::unique_lock<std::mutex> lk(c.lock);
  for (;;) {
    if (c.stopping) return;
    if (c.requested > c.started) {
      lk.unlock();
      runCycle();
      deliverGCEvents();
      lk.lock();
      continue;
    }
    if (c.swept < c.marked) {
      lk.unlock();
      sweepStep();
      deliverGCEvents();
      lk.lock();
      continue;
    }
    c.cv.wait(lk);
  }
}

// Starts the controller thread unless it runs (the first requestCycle, gcCollectNew, or
// gcAttach with work left from the last world). Under Collector::lock, with a Sched
// attached. Not while the world detaches (stopping): a request then (a fiber of the
// leaving world still allocating, a gcstress safepoint) would start a thread that
// returns at once, and its handle, still joinable, would stop the next attach from
// starting a live controller.
void ensureControllerLocked(Collector& c) {
  if (c.stopping) return;
  if (!c.controller.joinable()) {
    c.controller = std::thread(controllerLoop);
    setThreadName(c.controller, "spindle-gc");
  }
}

}  // namespace

void requestCycle(GCCause cause) {
  Collector& c = C();
  if (counters().seeded.load(std::memory_order_relaxed)) [[unlikely]] {
    // Seeded: the cycle runs at the requesting G's next safepoint, so where it falls is a
    // function of the schedule (a request from no G, the controller's own, goes on below).
    M* m = getm();
    if (m != nullptr && m->curg != nullptr && m->p != nullptr) {
      counters().seededOwed.store(true, std::memory_order_relaxed);
      m->curg->preempt.store(true, std::memory_order_relaxed);
      return;
    }
  }
  if (c.requestPending.exchange(true, std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lk(c.lock);
  if (c.sched == nullptr) {
    c.requestPending.store(false, std::memory_order_relaxed);
    return;
  }
  if (c.requested < c.started + 1) {
    c.requested = c.started + 1;
    c.causes.emplace(c.requested, cause);
  }
  ensureControllerLocked(c);
  c.cv.notify_all();
}

bool sweepingDone() { return C().sweepDone.load(std::memory_order_relaxed); }

}  // namespace gc_detail

using gc_detail::C;

namespace {
template <typename Vec, typename Fn>
int addSlot(Vec& v, Fn fn, void* ctx) {
  for (std::size_t i = 0; i < v.size(); i++) {
    if (v[i].first == nullptr) {
      v[i] = {fn, ctx};
      return static_cast<int>(i);
    }
  }
  v.push_back({fn, ctx});
  return static_cast<int>(v.size() - 1);
}
}  // namespace

int registerRoots(RootScanFn fn, void* ctx, LabelRootsFn labelled) {
  auto& r = gc_detail::registry();
  std::lock_guard<std::mutex> lk(r.lock);
  const int id = addSlot(r.roots, fn, ctx);
  r.labelledRoots.resize(r.roots.size());
  r.labelledRoots[static_cast<std::size_t>(id)] = labelled;
  return id;
}
void unregisterRoots(int id) {
  auto& r = gc_detail::registry();
  // Waits for the scans in progress (Registry's comment): the caller frees what the
  // scanner reads as soon as this returns.
  std::unique_lock<std::shared_mutex> quiet(r.scanning);
  std::lock_guard<std::mutex> lk(r.lock);
  r.roots.at(static_cast<std::size_t>(id)) = {nullptr, nullptr};
  r.labelledRoots.at(static_cast<std::size_t>(id)) = nullptr;
}
namespace {

// The collector runs for one world. Several VMs alive at once in a process each attach
// their own Sched; while more than one is attached, collection pauses (no cycle starts,
// gcCollect returns at once) and resumes for the last one left: the collector can only
// stop, scan and flush the Ps and Gs of the world it runs for, and a world it does not
// stop must not have its objects swept away.
std::mutex gWorldsLock;  // serialises gcAttach/gcDetach; taken before Collector::lock
std::vector<Sched*> gWorlds;

void attachOne(Sched* sched) {
  auto& c = C();
  // A P created while the collector ran for another world (or for none) may hold a
  // flushGen from before the last sg += 2; flush it now, as acquireP would.
  sched->stopTheWorld("gc attach");
  for (int i = 0; i < sched->procs(); i++)
    gc_detail::prepareForSweep(sched->allp(i), gc_detail::counters().flushesForEachP);
  sched->startTheWorld();
  std::lock_guard<std::mutex> lk(c.lock);
  SPINDLE_CHECK(c.sched == nullptr, "gcAttach: another Sched is attached");
  c.sched = sched;
  c.stopping = false;
  c.requested = std::max(c.requested, c.started);
  c.attachTime = nanotime();
  c.gcTimeNs = 0;
  if (const char* e = std::getenv("SPINDLE_GCTRACE"); e != nullptr && e[0] == '1')
    setGCTrace(true);
  mheap().allocSlowHook.store(gc_detail::allocSlowHook, std::memory_order_release);
  setGCAssistParkHook(gc_detail::assistPark);
  gc_detail::counters().seeded.store(sched->seeded(), std::memory_order_relaxed);
  // The controller starts at the first request (requestCycle, gcCollectNew), so a
  // program that never reaches its first heap goal runs no collector thread; a request
  // left from the last world (or a sweep it did not finish) starts it now.
  if (c.requested > c.started || c.swept < c.marked) gc_detail::ensureControllerLocked(c);
  gc_detail::startMarkWorkers(gc_detail::markWorkersFor(sched->procs()));
  startFinalizerG(sched);
  startBackgroundScavenger(mheap());
}

void detachOne(Sched* sched) {
  auto& c = C();
  std::thread t;
  {
    std::lock_guard<std::mutex> lk(c.lock);
    if (c.sched != sched || sched == nullptr) return;
    c.stopping = true;
    c.cv.notify_all();
    t = std::move(c.controller);
  }
  if (t.joinable()) t.join();  // finishes the cycle in progress
#if SPINDLE_DCHECKS_ON
  if (auto hook = gc_detail::gDetachTestHook.exchange(nullptr)) hook();
#endif
  gc_detail::stopMarkWorkers();
  stopFinalizerG(sched);
  gc_detail::clearStackShrinks(sched);
  stopBackgroundScavenger();
  std::vector<G*> parked;
  {
    std::lock_guard<std::mutex> lk(c.lock);
    SPINDLE_CHECK(!c.controller.joinable(), "gcDetach: a controller thread was started while the world detached");
    c.sched = nullptr;
    gc_detail::counters().seeded.store(false, std::memory_order_relaxed);
    gc_detail::counters().seededOwed.store(false, std::memory_order_relaxed);
    c.requested = c.started;
    c.causes.clear();  // the requests dropped with it
    c.requestPending.store(false, std::memory_order_relaxed);
    parked.swap(c.assistQueue);
    c.cv.notify_all();
  }
  gc_detail::readyAssists(sched, parked);
}

}  // namespace

void gcAttach(Sched* sched) {
  (void)gc_detail::gHooksRegistered;
  SPINDLE_CHECK(sched != nullptr, "gcAttach: null Sched");
  std::lock_guard<std::mutex> lk(gWorldsLock);
  if (std::find(gWorlds.begin(), gWorlds.end(), sched) != gWorlds.end()) return;
  gWorlds.push_back(sched);
  if (gWorlds.size() == 1) {
    attachOne(sched);
  } else if (gWorlds.size() == 2) {
    detachOne(gWorlds[0]);  // finishes the cycle in progress, then pauses collection
  }
}

void gcDetach(Sched* sched) {
  std::lock_guard<std::mutex> lk(gWorldsLock);
  auto it = std::find(gWorlds.begin(), gWorlds.end(), sched);
  if (it == gWorlds.end()) return;
  const bool wasActive = gWorlds.size() == 1;
  gWorlds.erase(it);
  if (wasActive) {
    detachOne(sched);
  } else if (gWorlds.size() == 1) {
    attachOne(gWorlds[0]);
  }
}

#if SPINDLE_DCHECKS_ON
void setMarkTerminationTestHook(void (*hook)()) { gc_detail::gMarkTerminationTestHook.store(hook); }
void setDetachTestHook(void (*hook)()) { gc_detail::gDetachTestHook.store(hook); }
#endif

GCStateLine gcStateLine() {
  // The phase, and the heap's sweepgen (twice the cycles begun).
  const std::uint32_t sg = mheap().sweepgenLoad();
  GCStateLine line;
  auto r = fmt::format_to_n(line.text, sizeof line.text, "gc: phase {}, sweepgen {} (cycle {}){}",
                            gc_detail::gcMarking.load(std::memory_order_relaxed) ? "mark" : "off (sweeping or idle)",
                            sg, sg / 2,
                            gc_detail::counters().stwMark.load(std::memory_order_relaxed) ? ", gcstoptheworld" : "");
  line.size = std::min(r.size, sizeof line.text);
  return line;
}

void gcCollect() { gc_detail::gcCollectNew(gc_detail::CycleCause::Forced); }

void gc_detail::gcCollectNew(CycleCause cause) {
  const bool stress = cause == CycleCause::Stress;
  auto& c = C();
  M* m = getm();
  G* g = nullptr;
  std::unique_lock<std::mutex> lk(c.lock);
  if (c.sched == nullptr) return;
  if (m != nullptr && m->sched == c.sched && m->curg != nullptr && m->p != nullptr) g = m->curg;
  const std::uint64_t want = (stress ? std::max(c.requested, c.started) : c.started) + 1;
  for (std::uint64_t n = c.requested + 1; n <= want; n++) c.causes.emplace(n, stress                        ? GCCause::Stress
                                     : cause == CycleCause::Paced ? GCCause::Pacer
                                                                  : GCCause::Forced);
  // A forced request that folds into a cycle requested but not started yet (a pacer
  // request an instant before) makes that cycle forced: it is the one gc() waits for.
  if (cause == CycleCause::Forced && want <= c.requested) c.causes.insert_or_assign(want, GCCause::Forced);
  c.requested = std::max(c.requested, want);
  if (cause != CycleCause::Paced) (stress ? c.stressed : c.forced)++;
  gc_detail::ensureControllerLocked(c);
  c.cv.notify_all();
  if (g == nullptr) {
    c.cv.wait(lk, [&] { return c.swept >= want || c.stopping || c.sched == nullptr; });
    return;
  }
  // A G at a safepoint: let its P go (the world can stop without us) and let the
  // collector scan our stack while we wait (it is quiescent: run() holds nothing else).
  lk.unlock();
  Sched::enterSyscall(/*stackQuiescent=*/true);
  lk.lock();
  c.cv.wait(lk, [&] { return c.swept >= want || c.stopping || c.sched == nullptr; });
  lk.unlock();
  Sched::exitSyscall();
  // Holding a P again: the cycle's stack shrinks that its shrinker G has not reached.
  gc_detail::drainStackShrinks(m->sched);
}

std::uint64_t freeOSMemory() {
  gcCollect();
  return scavengeAll(mheap());
}

GCStats gcStats() {
  auto& c = C();
  auto& k = gc_detail::counters();
  GCStats st;
  {
    std::lock_guard<std::mutex> lk(c.lock);
    st.cycles = c.marked;
    st.forcedCycles = c.forced;
    st.stressCycles = c.stressed;
    st.stwMarkCycles = c.stwMarks;
    st.pausesNs = c.pauses;
    st.numPauses = c.numPauses;
    std::copy(std::begin(c.pauseHist), std::end(c.pauseHist), st.pauseHist);
    st.maxPauseNs = c.maxPause;
    st.totalPauseNs = c.totalPause;
  }
  MHeap& h = mheap();
  st.heapLive = static_cast<std::uint64_t>(std::max<std::int64_t>(h.heapLive.load(std::memory_order_relaxed), 0));
  auto& pc = gc_detail::pacer();
  st.heapMarked = pc.heapMarked.load(std::memory_order_relaxed);
  st.heapGoal = pc.goal.load(std::memory_order_relaxed);
  st.heapTrigger = pc.trigger.load(std::memory_order_relaxed);
  st.assistTimeNs = k.assistTimeNs.load(std::memory_order_relaxed);
  st.workerTimeNs = k.workerTimeNs.load(std::memory_order_relaxed);
  st.assistWork = k.assistWork.load(std::memory_order_relaxed);
  st.workerWork = k.workerWork.load(std::memory_order_relaxed);
  st.assistParks = k.assistParks.load(std::memory_order_relaxed);
  st.extraWorkerWork = k.extraWorkerWork.load(std::memory_order_relaxed);
  st.idleMarkTimeNs = k.idleMarkTimeNs.load(std::memory_order_relaxed);
  st.idleMarkWork = k.idleMarkWork.load(std::memory_order_relaxed);
  st.sweptBackground = k.sweptBackground.load(std::memory_order_relaxed);
  st.sweptProportional = k.sweptProportional.load(std::memory_order_relaxed);
  st.sweptByUncache = h.stats.sweptByUncache.load(std::memory_order_relaxed);
  st.flushesAcquireP = k.flushesAcquireP.load(std::memory_order_relaxed);
  st.flushesForEachP = k.flushesForEachP.load(std::memory_order_relaxed);
  st.stacksScannedByCollector = k.stacksByCollector.load(std::memory_order_relaxed);
  st.stacksScannedBeforeRun = k.stacksBeforeRun.load(std::memory_order_relaxed);
  st.checkmarkObjects = k.checkmarkObjects.load(std::memory_order_relaxed);
  st.heapVerifications = k.heapVerifications.load(std::memory_order_relaxed);
  return st;
}

void setGCTrace(bool on) {
  C().trace.store(on, std::memory_order_relaxed);
  gc_detail::setGCTraceOn(on);
}
void setCheckmark(bool on) { gc_detail::counters().checkmark.store(on, std::memory_order_relaxed); }

namespace gc_detail {
// verifyHeap's access to the attached world and the cycle lock (mgcverify.cc).
Sched* lockForVerify() {
  Collector& c = C();
  c.cycleLock.lock();
  std::lock_guard<std::mutex> lk(c.lock);
  return c.sched;
}
void unlockForVerify() { C().cycleLock.unlock(); }
}  // namespace gc_detail

}  // namespace spindle::runtime
