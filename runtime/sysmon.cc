// sysmon.cc: the monitor thread (Go's sysmon and retake).
//
// Design. One thread per Sched, without a P. It wakes at the next timer deadline or every
// tick, whichever is first, and:
//   - fires expired timers (time.cc), making their Gs runnable;
//   - asks the G of a P that has run the same schedtick for more than kForcePreemptNs
//     (10 ms) to yield (g->preempt; the body polls it at safepoints);
//   - retakes a P whose M has been in a foreign call for a whole tick while there is
//     other work, or for more than 10 ms: CAS Syscall -> Idle and handoffp;
//   - wakes a spinning M when a P's runnext waited a whole tick behind a running G;
//   - when Ms wait in exitSyscall for a P, asks every running G to yield so a P frees up;
//   - while tracing (trace.h), samples the runnable fibers (run queues, runnext and the
//     global queue, read racily: a sample) and heapLive into the trace's counters.
//
// The tick is kSysmonTick (1 ms) while there is work for sysmon; after kSysmonIdleTicks
// ticks in a row with none (no G preempted, no runnext waiting, no P in a foreign call,
// no M waiting for a P) it doubles each tick up to kSysmonMaxTick (10 ms, Go's sysmon
// backoff), so a single fiber running alone does not pay a thread wake-up per
// millisecond. Timer deadlines are kept exactly whatever the tick.
//
// Seeded mode (proc.h): sysmon only calls the embedder's hook each tick (sysmonhook.h: an
// interrupt or a time limit, which come from outside the program anyway), so no schedule
// depends on time: the M running Gs fires timers on the virtual clock, preemption comes
// from the drawn budgets, and no P is retaken from a foreign call (the program waits for
// it).
//
// Invariants. sysmon touches only atomics of Ps and Gs, and takes sched.lock through
// handoffp; its per-P bookkeeping (sysmonTick/When) is its own.
#include <algorithm>

#include "runtime/mheap.h"
#include "runtime/proc.h"
#include "runtime/sysmonhook.h"
#include "runtime/trace.h"

namespace spindle::runtime {

namespace {
constexpr std::int64_t kSysmonTick = 1000000;       // 1 ms
constexpr std::int64_t kSysmonMaxTick = 10000000;   // 10 ms
constexpr int kSysmonIdleTicks = 10;
constexpr std::int64_t kForcePreemptNs = 10000000;  // 10 ms
}  // namespace

void sysmonLoop(Sched* s) {
  if (s->seeded()) {
    // Only the embedder's hook: it acts only on an interrupt or a time limit, which come
    // from outside the program (a schedule without them stays a function of the seed).
    std::unique_lock<std::mutex> lk(s->sysmonLock_);
    while (!s->sysmonStop_) {
      s->sysmonCv_.wait_for(lk, std::chrono::nanoseconds(kSysmonTick));
      if (s->sysmonStop_) return;
      lk.unlock();
      runSysmonHook();
      lk.lock();
    }
    return;
  }
  std::int64_t tick = kSysmonTick;
  int idle = 0;  // ticks in a row retake found no work
  for (;;) {
    std::int64_t now = nanotime();
    std::int64_t next = s->runTimers(now);
    std::int64_t deadline = now + tick;
    if (next != 0 && next < deadline) deadline = next;
    {
      std::unique_lock<std::mutex> lk(s->sysmonLock_);
      if (s->sysmonStop_) return;
      std::int64_t wait = deadline - nanotime();
      if (wait > 0) s->sysmonCv_.wait_for(lk, std::chrono::nanoseconds(wait));
      if (s->sysmonStop_) return;
    }
    now = nanotime();
    s->runTimers(now);
    runSysmonHook();
    if (s->retake(now)) {
      idle = 0;
      tick = kSysmonTick;
    } else if (++idle > kSysmonIdleTicks) {
      tick = std::min(tick * 2, kSysmonMaxTick);
    }
    s->sysmonTickNs_.store(tick, std::memory_order_relaxed);
    if (trace::enabled()) [[unlikely]] s->traceCounters();
  }
}

void Sched::traceCounters() {
  std::int64_t runnable = runqsize_.load(std::memory_order_relaxed);
  const std::int32_t n = gomaxprocs_.load(std::memory_order_acquire);
  for (int i = 0; i < n; i++) {
    P* p = allp(i);
    const std::uint32_t h = p->runqhead.load(std::memory_order_relaxed);
    const std::uint32_t t = p->runqtail.load(std::memory_order_relaxed);
    runnable += static_cast<std::int32_t>(t - h) > 0 ? static_cast<std::int32_t>(t - h) : 0;
    if (p->runnext.load(std::memory_order_relaxed) != nullptr) runnable++;
  }
  trace::counter("runnable fibers", runnable);
  trace::counter("heapLive", mheap().heapLive.load(std::memory_order_relaxed));
}

bool Sched::retake(std::int64_t now) {
  bool busy = false;
  std::int32_t n = gomaxprocs_.load(std::memory_order_acquire);
  for (int i = 0; i < n; i++) {
    P* p = allp(i);
    PStatus st = p->status.load();
    if (st == PStatus::Running) {
      std::uint32_t t = p->schedtick.load(std::memory_order_relaxed);
      if (t != p->sysmonTick) {
        p->sysmonTick = t;
        p->sysmonWhen = now;
        continue;
      }
      // A G readied into runnext waits for the running G: after a whole tick, let a
      // spinning M steal it.
      if (p->runnext.load(std::memory_order_relaxed) != nullptr) {
        wakep();
        busy = true;
      }
      if (now - p->sysmonWhen > kForcePreemptNs) {
        if (G* g = p->curg.load(std::memory_order_acquire)) g->preempt.store(true, std::memory_order_relaxed);
        busy = true;
      }
    } else if (st == PStatus::Syscall) {
      busy = true;  // a foreign call: its P is retaken within a tick or two
      std::uint32_t t = p->syscalltick.load(std::memory_order_relaxed);
      if (t != p->sysmonSyscallTick) {
        p->sysmonSyscallTick = t;
        p->sysmonSyscallWhen = now;
        continue;
      }
      bool work = !runqempty(p) || runqsize_.load(std::memory_order_relaxed) > 0;
      if (!work && now - p->sysmonSyscallWhen <= kForcePreemptNs) continue;
      PStatus want = PStatus::Syscall;
      if (p->status.compare_exchange_strong(want, PStatus::Idle)) {
        p->syscalltick.store(t + 1, std::memory_order_relaxed);
        handoffp(p);
      }
    }
  }
  if (nsyscallWaiters_.load(std::memory_order_relaxed) > 0) {
    std::lock_guard<std::mutex> lk(lock_);
    preemptall();
    busy = true;
  }
  return busy;
}

namespace {
std::atomic<void (*)()> sysmonHook{nullptr};
}  // namespace

void setSysmonHook(void (*hook)()) { sysmonHook.store(hook, std::memory_order_release); }

void runSysmonHook() {
  if (void (*hook)() = sysmonHook.load(std::memory_order_acquire)) hook();
}

}  // namespace spindle::runtime
