// stw.cc: stopTheWorld / startTheWorld, forEachP and procresize (Go's
// stopTheWorldWithSema, startTheWorldWithSema, forEachP, procresize).
//
// Design.
//   - worldsema serialises STW and forEachP. A caller running inside a G body holds a P; if
//     it must wait for worldsema it first enters a "syscall" so a concurrent stopper can
//     take its P (otherwise two stoppers would wait on each other).
//   - stopTheWorld: under sched.lock set gcwaiting, ask every running G to preempt, stop
//     the caller's own P, CAS every Syscall P to GCStop, take every idle P; stopwait
//     counts the rest. Each M notices gcwaiting at its next safepoint (gcstopm) and
//     decrements stopwait; enterSyscall and pidleput do the same for Ps that change state
//     during the stop. A P handed to an M by startm that the M has not claimed yet
//     (p->handoff) is taken back at once. The stopper spins (then yields) for up to
//     kStopSpinNs on stopNote, then sleeps on it, re-preempting every 100 us.
//   - startTheWorld: applies a pending procresize, gives Ps with work to Ms (woken after
//     sched.lock is released), puts the rest idle (which also feeds Ms waiting in
//     exitSyscall), and reports the pause.
//   - forEachP: sets p->runSafePointFn on every P under sched.lock; fn runs on the caller's
//     own P and on idle Ps immediately (by the caller), on Syscall Ps after the caller
//     retakes them, and on running Ps at their next safepoint. Exactly-once is guaranteed
//     by the 1 -> 0 CAS of runSafePointFn. safePointWait counts the Ps still to run fn.
//   - procresize(n): with the world stopped. Growing creates (or revives) Ps and runs the
//     init hooks; shrinking moves the dead Ps' run queues and free Gs to the global lists
//     and runs the destroy hooks (the heap hands back the P's caches). A caller whose P
//     is destroyed continues on P0, with P0's acquire hooks run as acquireP runs them.
//     P objects are never freed before the Sched: an M in a foreign call may still CAS
//     its oldp.
#include <algorithm>
#include <vector>

#include "runtime/pheap.h"
#include "runtime/phooks.h"
#include "runtime/proc.h"
#include "runtime/throw.h"

namespace spindle::runtime {

namespace {
// How long stopTheWorld spins (then yields) before it sleeps on stopNote.
constexpr std::int64_t kStopSpinNs = 50000;
}  // namespace

void Sched::preemptall() {
  std::int32_t n = gomaxprocs_.load(std::memory_order_acquire);
  for (int i = 0; i < n; i++) {
    P* p = allp(i);
    if (p->status.load() != PStatus::Running) continue;
    // Gs are never freed while the Sched lives, so a stale pointer is harmless.
    if (G* g = p->curg.load(std::memory_order_acquire)) g->preempt.store(true, std::memory_order_relaxed);
  }
}

void Sched::lockWorld(M* m) {
  if (m == nullptr || m->sched != this || m->p == nullptr || m->curg == nullptr) {
    worldsema_.lock();
    return;
  }
  if (worldsema_.try_lock()) return;
  // Another stopper is active and may be waiting for our P: let it take the P. Not
  // quiescent: the caller's C++ frames hold state.
  enterSyscall(/*stackQuiescent=*/false);
  worldsema_.lock();
  exitSyscall();
}

void Sched::runSafePointFn(P* p) {
  std::uint32_t one = 1;
  if (!p->runSafePointFn.compare_exchange_strong(one, 0)) return;
  safePointFn_(p);  // published before the flag was set (seq_cst store/CAS)
  std::lock_guard<std::mutex> lk(lock_);
  if (--safePointWait_ == 0) safePointNote_.wakeup();
}

std::int64_t Sched::stopTheWorld(const char* reason) {
  (void)reason;
  M* m = getm();
  lockWorld(m);
  std::int64_t t0 = nanotime();
  P* mine = (m != nullptr && m->sched == this) ? m->p : nullptr;
  bool wait;
  {
    std::lock_guard<std::mutex> lk(lock_);
    stopNote_.clear();
    std::int32_t n = gomaxprocs_.load(std::memory_order_relaxed);
    stopwait_ = n;
    gcwaiting_.store(true);
    preemptall();
    if (mine != nullptr) {
      mine->status.store(PStatus::GCStop);
      stopwait_--;
    }
    for (int i = 0; i < n; i++) {
      P* p = allp(i);
      PStatus want = PStatus::Syscall;
      if (p->status.compare_exchange_strong(want, PStatus::GCStop)) {
        p->syscalltick.store(p->syscalltick.load(std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed);
        stopwait_--;
      }
    }
    while (P* p = pidleget()) {
      p->status.store(PStatus::GCStop);
      stopwait_--;
    }
    // Ps handed to an M that has not claimed them yet: nothing runs on them, take them
    // back rather than wait for the OS to schedule that M (it finds its nextp gone).
    for (int i = 0; i < n; i++) {
      P* p = allp(i);
      M* w = p->handoff.load(std::memory_order_acquire);
      if (w != nullptr && p->handoff.compare_exchange_strong(w, nullptr, std::memory_order_acq_rel)) {
        p->status.store(PStatus::GCStop);
        stopwait_--;
      }
    }
    wait = stopwait_ > 0;
  }
  // The rest stop at their next safepoint, usually within microseconds: spin first, as
  // an OS wake-up of the stopper costs more than that on a busy machine.
  if (wait && stopNote_.spinFor(kStopSpinNs)) wait = false;
  while (wait) {
    if (stopNote_.sleepFor(100000)) break;
    std::lock_guard<std::mutex> lk(lock_);
    preemptall();
    wait = stopwait_ > 0;
  }
  std::int64_t t1 = nanotime();
  {
    std::lock_guard<std::mutex> lk(lock_);
    SPINDLE_CHECK(stopwait_ == 0, "stopTheWorld: stopwait={} after wait", stopwait_);
    std::int32_t n = gomaxprocs_.load(std::memory_order_relaxed);
    for (int i = 0; i < n; i++) {
      PStatus st = allp(i)->status.load();
      SPINDLE_CHECK(st == PStatus::GCStop, "stopTheWorld: P {} status={} want GCStop", i,
                    static_cast<int>(st));
    }
    stwStart_ = t0;
    stats_.lastStopNs = t1 - t0;
  }
  return t1 - t0;
}

std::int64_t Sched::startTheWorld() {
  M* m = getm();
  P* mine = (m != nullptr && m->sched == this) ? m->p : nullptr;
  std::int64_t pause;
  std::vector<M*> wake;
  {
    std::lock_guard<std::mutex> lk(lock_);
    SPINDLE_CHECK(gcwaiting_.load(), "startTheWorld: world not stopped");
    gcwaiting_.store(false);
    deferredWakes_ = &wake;  // Ps given to Ms waiting in exitSyscall: woken below
    mine = (m != nullptr && m->sched == this) ? m->p : nullptr;
    std::int32_t n = gomaxprocs_.load(std::memory_order_relaxed);
    for (int i = 0; i < n; i++) {
      P* p = allp(i);
      if (p == mine) {
        p->status.store(PStatus::Running);
        continue;
      }
      p->status.store(PStatus::Idle);
      if (!runqempty(p)) {
        if (M* w = startmLocked(p, false, /*deferWake=*/true)) wake.push_back(w);
      } else {
        pidleput(p);
      }
    }
    deferredWakes_ = nullptr;
    pause = nanotime() - stwStart_;
    stats_.lastPauseNs = pause;
    stats_.numSTW++;
    checkdead();
  }
  for (M* w : wake) w->park.wakeup();
  // Ps with local work got an M above; a spinning M is only for work no P holds (the
  // global queue) or that the caller's own P cannot run now. Waking one for nothing (as
  // at every gcAttach and cycle of a one-fiber program) costs a thread start or a futex
  // round trip and a CPU the fiber or the collector wanted.
  if (runqsize_.load(std::memory_order_relaxed) > 0 || (mine != nullptr && !runqempty(mine))) wakep();
  worldsema_.unlock();
  return pause;
}

void Sched::procresize(int n) {
  SPINDLE_CHECK(n >= 1 && n <= kMaxProcs, "procresize: n={} out of [1, {}]", n, kMaxProcs);
  M* m = getm();
  std::lock_guard<std::mutex> lk(lock_);
  SPINDLE_CHECK(gcwaiting_.load() && stopwait_ == 0, "procresize: world not stopped");
  int old = gomaxprocs_.load(std::memory_order_relaxed);
  for (int i = old; i < n; i++) {
    P* p = i < allocatedPs_ ? allp(i) : nullptr;
    if (p == nullptr) {
      p = new P(i);
      allp_[i].store(p, std::memory_order_release);
      allocatedPs_ = i + 1;
    }
    initHeapP(p);
    runPInitHooks(p);
    p->status.store(PStatus::GCStop);
  }
  for (int i = n; i < old; i++) {
    P* p = allp(i);
    // Move its Gs to the global queue, runnext first (it was due next).
    bool inherit;
    while (G* g = runqget(p, &inherit)) globrunqput(g);
    if (p->gFree != nullptr) {
      {
        std::lock_guard<std::mutex> alk(allglock_);
        allgRemoveChain(p->gFree);
      }
      std::lock_guard<std::mutex> glk(gFreeLock_);
      gFree_.push_back(GChain{p->gFree, p->gFreeCount});
      gFreeCount_ += p->gFreeCount;
      p->gFree = nullptr;
      p->gFreeCount = 0;
    }
    p->runSafePointFn.store(0);
    runPDestroyHooks(p);
    destroyHeapP(p);
    p->status.store(PStatus::Dead);
  }
  if (m != nullptr && m->sched == this && m->p != nullptr && m->p->id >= n) {
    // The caller's P is gone: continue on P0.
    P* dead = m->p;
    dead->m = nullptr;
    unbindP();
    P* p0 = allp(0);
    m->p = p0;
    p0->m = m;
    bindP(p0);
    // The caller takes P0 here rather than in acquireP: run the acquire hooks as acquireP
    // would (Go's procresize calls prepareForSweep here too), or P0's MCache could stay
    // unflushed past the next sg += 2.
    runPAcquireHooks(p0);
    if (dead->curg.load(std::memory_order_relaxed) != nullptr) {
      p0->curg.store(dead->curg.load(std::memory_order_relaxed), std::memory_order_release);
      dead->curg.store(nullptr, std::memory_order_relaxed);
    }
  }
  gomaxprocs_.store(n, std::memory_order_release);
}

void Sched::setProcs(int n) {
  stopTheWorld("procresize");
  procresize(n);
  startTheWorld();
}

void Sched::forEachP(const std::function<void(P*)>& fn) {
  M* m = getm();
  lockWorld(m);
  P* mine = (m != nullptr && m->sched == this) ? m->p : nullptr;
  std::vector<P*> retaken;
  {
    std::lock_guard<std::mutex> lk(lock_);
    safePointNote_.clear();
    safePointFn_ = fn;
    std::int32_t n = gomaxprocs_.load(std::memory_order_relaxed);
    safePointWait_ = n;
    for (int i = 0; i < n; i++) {
      P* p = allp(i);
      if (p != mine) p->runSafePointFn.store(1);
    }
    if (mine != nullptr) {
      fn(mine);
      safePointWait_--;
    }
    preemptall();
    for (P* p = pidle_; p != nullptr; p = p->link) {
      std::uint32_t one = 1;
      if (p->runSafePointFn.compare_exchange_strong(one, 0)) {
        fn(p);
        safePointWait_--;
      }
    }
  }
  // Ps in foreign calls: take them, run fn, hand them off. Repeated while waiting, for
  // Ps that entered a foreign call after the flags were set.
  for (;;) {
    std::int32_t n = gomaxprocs_.load(std::memory_order_relaxed);
    retaken.clear();
    for (int i = 0; i < n; i++) {
      P* p = allp(i);
      PStatus want = PStatus::Syscall;
      if (p->runSafePointFn.load() != 0 &&
          p->status.compare_exchange_strong(want, PStatus::Idle)) {
        p->syscalltick.store(p->syscalltick.load(std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed);
        retaken.push_back(p);
      }
    }
    for (P* p : retaken) {
      runSafePointFn(p);
      handoffp(p);
    }
    {
      std::lock_guard<std::mutex> lk(lock_);
      if (safePointWait_ == 0) break;
      preemptall();
    }
    safePointNote_.sleepFor(100000);
  }
  {
    std::lock_guard<std::mutex> lk(lock_);
    SPINDLE_CHECK(safePointWait_ == 0, "forEachP: safePointWait={}", safePointWait_);
    std::int32_t n = gomaxprocs_.load(std::memory_order_relaxed);
    for (int i = 0; i < n; i++) {
      SPINDLE_CHECK(allp(i)->runSafePointFn.load() == 0, "forEachP: P {} still pending", i);
    }
    safePointFn_ = nullptr;
    checkdead();
  }
  worldsema_.unlock();
}

}  // namespace spindle::runtime
