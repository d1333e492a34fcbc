// mgcpacer.cc: the pacer (Go's mgcpacer.go, simplified) and the allocation slow-path
// hook.
//
// Goal: heapGoal = heapMarked * (1 + gc_percent/100), at least kMinHeap (4 MiB);
// heapMarked is what the mark found live plus the objects allocated black during it (as
// Go's): heapLive restarts from that total after mark termination, so a goal computed
// from the traced bytes alone would leave only traced - black bytes of runway.
// gc_percent < 0 turns pacing off. A soft memory limit (setMemoryLimit, Go's
// GOMEMLIMIT) caps the goal, with pacing on or off: the goal never exceeds it (a goal
// at or below the marked bytes makes the trigger the goal: cycles back to back).
// Pacing is off exactly when goal == trigger == ~0. heapLive (mheap.h; up to 256 KiB
// per P wait in the P's MCache, folded in at both pauses) counts whole spans as they are
// cached (Go's accounting at refill) and large objects; it is reset to the marked bytes
// at mark termination.
// Trigger: heapMarked + (goal - heapMarked) * triggerRatio. A proportional controller
// adjusts triggerRatio after each cycle: the heap overshot the goal by the end of mark
// -> start earlier (ratio -0.05); finished well under it (< 90%) -> start later
// (+0.02); clamped to [0.5, 0.95].
// Assists: while marking, every allocation slow path owes scan work proportional to the
// bytes it just reserved, assistWorkPerByte = expected scan work (last cycle's marked
// bytes) / heap left before the goal; it pays by draining grey objects into its P's
// work buffer (bounded by the debt). If it could not pay and the heap is past the goal,
// the G is flagged to park at its next yield until mark termination (Go parks it on the
// assist queue; here the G cannot block inside mallocgc, holding its P mid-step).
// The hook also starts cycles when heapLive >= trigger. requestCycle never blocks (the
// caller may be in the middle of an interpreter step).
// gcstress has a hook of its own, called once per allocation (allocStressHook): each P
// counts its own allocations (P::gcStressCount, owner only: no shared counter). Its N-th
//   - exact mode: adds one to the P's owed cycles and asks the running G to yield. The G
//     body pays them at its next safepoint (gcStressSafepoint), one complete cycle each,
//     blocking like gcCollect but never folding into another request (gcCollectNew). So
//     with pacing off, cycles = sum over Ps of floor(allocations on P / N): allocations
//     / N with one P;
//   - continuous mode: requests a cycle (requestCycle, never blocking); requests made
//     while one is pending or running fold into it, so with N = 1 cycles run back to
//     back and every mark overlaps the mutators.
// Seeded mode (the attached Sched has a seed): requestCycle makes the running G owe the
// cycle and yield; it runs it at its next safepoint (gcStressSafepoint), blocking like
// gcCollect, so no mark overlaps a mutator and no G parks for an assist: where collector
// work happens is a function of the schedule.
// When no cycle marks and the last sweep is not finished, the slow path sweeps a couple
// of spans (proportional sweep), so allocation helps the background sweeper.
#include <algorithm>

#include "runtime/g.h"
#include "runtime/m.h"
#include "runtime/mgc.h"
#include "runtime/mgcsweep.h"
#include "runtime/mheap.h"
#include "runtime/p.h"
#include "runtime/pheap.h"
#include "runtime/proc.h"
#include "runtime/trace.h"
#include "runtime/proflabel.h"

namespace spindle::runtime::gc_detail {

Pacer& pacer() {
  static Pacer* p = [] {
    auto* q = new Pacer;
    q->goal.store(kMinHeap, std::memory_order_relaxed);
    q->trigger.store(static_cast<std::uint64_t>(kMinHeap * q->triggerRatio),
                     std::memory_order_relaxed);
    return q;
  }();
  return *p;
}

void pacerStartCycle() {
  Pacer& pc = pacer();
  const double expected =
      static_cast<double>(std::max<std::uint64_t>(pc.heapMarked.load(std::memory_order_relaxed), 1 << 20));
  const std::int64_t live = mheap().heapLive.load(std::memory_order_relaxed);
  const double runway = std::max<double>(
      static_cast<double>(pc.goal.load(std::memory_order_relaxed)) - static_cast<double>(live),
      1 << 20);
  pc.assistWorkPerByte.store(std::clamp(expected / runway, 0.05, 16.0), std::memory_order_relaxed);
  pc.scanWorkDone.store(0, std::memory_order_relaxed);
}

void pacerEndCycle(std::uint64_t marked, std::uint64_t heapAtTermination) {
  Pacer& pc = pacer();
  const std::uint64_t oldGoal = pc.goal.load(std::memory_order_relaxed);
  if (heapAtTermination > oldGoal) {
    pc.triggerRatio -= 0.05;
  } else if (static_cast<double>(heapAtTermination) < 0.9 * static_cast<double>(oldGoal)) {
    pc.triggerRatio += 0.02;
  }
  pc.triggerRatio = std::clamp(pc.triggerRatio, 0.5, 0.95);
  pc.heapMarked.store(marked, std::memory_order_relaxed);
  pacerSetGoal(marked, pc.triggerRatio);
}

void pacerSetGoal(std::uint64_t marked, double triggerRatio) {
  Pacer& pc = pacer();
  const int percent = pc.percent.load(std::memory_order_relaxed);
  const std::uint64_t limit = pc.memoryLimit.load(std::memory_order_relaxed);
  std::uint64_t goal =
      percent < 0 ? ~std::uint64_t{0}
                  : std::max<std::uint64_t>(kMinHeap, marked + marked * static_cast<std::uint64_t>(percent) / 100);
  goal = std::min(goal, limit);  // the soft memory limit caps the goal, pacing off or on
  pc.goal.store(goal, std::memory_order_relaxed);
  const std::uint64_t trigger =
      goal == ~std::uint64_t{0} ? goal
      : goal <= marked          ? goal
                                : marked + static_cast<std::uint64_t>(static_cast<double>(goal - marked) * triggerRatio);
  pc.trigger.store(trigger, std::memory_order_relaxed);
}

namespace {
void parkIfPastGoal() {
  // Seeded mode: the G runs the owed cycle itself at its next safepoint.
  if (counters().seeded.load(std::memory_order_relaxed)) return;
  const Pacer& pc = pacer();
  if (pc.goal.load(std::memory_order_relaxed) == ~std::uint64_t{0} ||
      mheap().heapLive.load(std::memory_order_relaxed) <= static_cast<std::int64_t>(pc.goal.load(std::memory_order_relaxed)))
    return;
  M* m = getm();
  if (m == nullptr || m->curg == nullptr) return;
  m->curg->gcAssistPark.store(true, std::memory_order_relaxed);
  m->curg->preempt.store(true, std::memory_order_relaxed);
  counters().assistParks.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

void allocSlowHook(std::size_t bytes) {
  Counters& c = counters();
  MHeap& h = mheap();
  if (gcMarking.load(std::memory_order_relaxed)) {
    P* p = currentP();
    if (p == nullptr) return;
    const auto debt = static_cast<std::int64_t>(
        static_cast<double>(bytes) * pacer().assistWorkPerByte.load(std::memory_order_relaxed));
    if (debt <= 0) return;
    const std::int64_t t0 = nanotime();
    std::int64_t done;
    {
      const ProfLabelScope label("<gc assist>");
      done = drain(&p->gcw, debt);
    }
    c.assistTimeNs.fetch_add(nanotime() - t0, std::memory_order_relaxed);
    if (trace::enabled()) [[unlikely]] trace::span(p->id, "gc", "mark assist", t0);
    c.assistWork.fetch_add(static_cast<std::uint64_t>(done), std::memory_order_relaxed);
    // Past the goal and the debt could not be paid: stop this G at its next yield until
    // the mark ends (it cannot block here: it holds its P and is not at a safepoint).
    if (done < debt) parkIfPastGoal();
    return;
  }
  if (!sweepingDone()) {
    for (int i = 0; i < 2; i++) {
      if (!sweepone(h)) break;
      c.sweptProportional.fetch_add(1, std::memory_order_relaxed);
    }
  }
  const Pacer& pc = pacer();
  if (pc.trigger.load(std::memory_order_relaxed) != ~std::uint64_t{0} &&
      static_cast<std::uint64_t>(std::max<std::int64_t>(h.heapLive.load(std::memory_order_relaxed), 0)) >=
          pc.trigger.load(std::memory_order_relaxed)) {
    // The memory limit's cycle when it is what capped the goal.
    const std::uint64_t limit = pc.memoryLimit.load(std::memory_order_relaxed);
    requestCycle(limit != ~std::uint64_t{0} && pc.goal.load(std::memory_order_relaxed) >= limit ? GCCause::MemoryLimit
                                                                                                  : GCCause::Pacer);
    // Past the goal before the requested cycle even started (the sweep it must finish
    // first is still running): wait for that cycle's mark termination too.
    parkIfPastGoal();
  }
}

namespace {
// p's stress counters, reset when setGCStress ran since p last counted.
void stressSync(P* p, std::uint32_t gen) {
  if (p->gcStressGen == gen) return;
  p->gcStressGen = gen;
  p->gcStressCount = 0;
  p->gcStressOwed = 0;
}
}  // namespace

void allocStressHook() {
  Counters& c = counters();
  const int n = c.gcstress.load(std::memory_order_relaxed);
  P* p = currentP();
  if (n <= 0 || p == nullptr) return;
  stressSync(p, c.stressGen.load(std::memory_order_relaxed));
  if (++p->gcStressCount < static_cast<std::uint32_t>(n)) return;
  p->gcStressCount = 0;
  if (c.gcstressContinuous.load(std::memory_order_relaxed)) {
    requestCycle(GCCause::Stress);
    return;
  }
  p->gcStressOwed++;
  // The cycle runs at the G's next safepoint: ask it to get there.
  if (M* m = getm(); m != nullptr && m->curg != nullptr) m->curg->preempt.store(true, std::memory_order_relaxed);
}
}  // namespace spindle::runtime::gc_detail

namespace spindle::runtime {
void setGCStress(int n, GCStressMode mode) {
  gc_detail::counters().gcstressContinuous.store(mode == GCStressMode::Continuous, std::memory_order_relaxed);
  gc_detail::counters().gcstress.store(n, std::memory_order_relaxed);
  gc_detail::counters().stressGen.fetch_add(1, std::memory_order_relaxed);
  mheap().allocStressHook.store(n > 0 ? gc_detail::allocStressHook : nullptr, std::memory_order_relaxed);
}

int setGCPercent(int percent) {
  gc_detail::Pacer& pc = gc_detail::pacer();
  const int old = pc.percent.exchange(percent, std::memory_order_relaxed);
  // Recompute the goal and trigger from the last mark right away.
  gc_detail::pacerSetGoal(pc.heapMarked.load(std::memory_order_relaxed), 0.7);
  return old;
}

std::uint64_t setMemoryLimit(std::uint64_t bytes) {
  gc_detail::Pacer& pc = gc_detail::pacer();
  const std::uint64_t old = pc.memoryLimit.exchange(bytes, std::memory_order_relaxed);
  gc_detail::pacerSetGoal(pc.heapMarked.load(std::memory_order_relaxed), 0.7);
  return old;
}

std::uint64_t memoryLimit() { return gc_detail::pacer().memoryLimit.load(std::memory_order_relaxed); }

int gcStressSafepoint() {
  gc_detail::Counters& c = gc_detail::counters();
  P* p = currentP();
  if (p == nullptr) return 0;
  gc_detail::stressSync(p, c.stressGen.load(std::memory_order_relaxed));
  const std::uint32_t owed = p->gcStressOwed;
  p->gcStressOwed = 0;  // this G may come back on another P
  for (std::uint32_t i = 0; i < owed; i++) gc_detail::gcCollectNew(gc_detail::CycleCause::Stress);
  // Seeded mode: the cycle the pacer (or continuous gcstress) asked for.
  if (c.seeded.load(std::memory_order_relaxed) && c.seededOwed.exchange(false, std::memory_order_relaxed))
    gc_detail::gcCollectNew(gc_detail::CycleCause::Paced);
  return static_cast<int>(owed);
}

int gcPercent() { return gc_detail::pacer().percent.load(std::memory_order_relaxed); }
}  // namespace spindle::runtime
