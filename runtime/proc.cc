// proc.cc: the schedule loop, M and P hand-off, host entry, foreign calls, deadlock
// detection (Go's proc.go). See proc.h for the design and invariants.
#include "runtime/proc.h"

#include <sched.h>

#include <algorithm>
#include <ctime>
#include <system_error>
#include <thread>

#include "runtime/mfinal.h"
#include "runtime/pheap.h"
#include "runtime/phooks.h"
#include "runtime/print.h"
#include "runtime/threadlimit.h"
#include "runtime/threadname.h"
#include "runtime/throw.h"
#include "runtime/trace.h"

namespace spindle::runtime {

std::atomic<int> gLiveScheds{0};

namespace {
thread_local M* tlsM = nullptr;

namespace {
// A fatal error names the thread it happened on (throw.h: thread-locals only, no lock):
// its M, the P it holds and the G it runs, as Go's throw names the goroutine.
void printThreadState(std::FILE* out) {
  const M* m = tlsM;
  if (m == nullptr) {
    printNoHeap(out, "on a thread without an M (a host thread)\n");
    return;
  }
  const P* p = m->p;
  const G* g = m->curg;
  printNoHeap(out, "on M {}, P {}, G {}\n", m->id, p != nullptr ? p->id : -1,
          g != nullptr ? static_cast<std::int64_t>(g->goid) : -1);
}
[[maybe_unused]] const bool gThreadStateRegistered = (addFatalContext(&printThreadState), true);
}  // namespace
constexpr std::int32_t kGFreeLocalMax = 64;
constexpr std::uint64_t kGoidCacheBatch = 16;
// How long an M stopped by stopTheWorld spins for the restart before it sleeps.
constexpr std::int64_t kGCStopSpinNs = 50000;
}  // namespace

M* getm() { return tlsM; }

std::int64_t nanotime() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

const char* waitReasonString(WaitReason r) {
  switch (r) {
    case WaitReason::None: return "";
    case WaitReason::ChanSend: return "chan send";
    case WaitReason::ChanRecv: return "chan receive";
    case WaitReason::Select: return "select";
    case WaitReason::SelectNoCases: return "select (no cases)";
    case WaitReason::Sleep: return "sleep";
    case WaitReason::WaitGroup: return "wait group";
    case WaitReason::Host: return "host";
    case WaitReason::FinalizerWait: return "finalizer wait";
    case WaitReason::GCAssistWait: return "GC assist wait";
    case WaitReason::FinalizersRunWait: return "wait for finalizers";
    case WaitReason::Join: return "join";
  }
  return "?";
}

void sysmonLoop(Sched* s);

namespace {
// The seed of the last seeded Sched made while it lives, for fatal errors (replay with
// --sched-seed).
std::atomic<std::uint64_t> gSchedSeed{0};
void printSchedSeed(std::FILE* out) {
  if (std::uint64_t seed = gSchedSeed.load(std::memory_order_relaxed); seed != 0)
    printNoHeap(out, "sched seed {} (replay with --sched-seed {})\n", seed, seed);
}
void noteSeededSched(std::uint64_t seed) {
  static const bool registered = (addFatalContext(printSchedSeed), true);
  (void)registered;
  gSchedSeed.store(seed, std::memory_order_relaxed);
}
// An M's random source: from its id, mixed with the seed in seeded mode.
std::int64_t randSeed(std::uint64_t seed, std::int64_t id) {
  return seed == 0 ? id : static_cast<std::int64_t>(seed * 0xD1B54A32D192ED03ull + static_cast<std::uint64_t>(id));
}
}  // namespace

// --- construction -------------------------------------------------------------------

Sched::Sched(int procs, std::uint64_t seed) : seed_(seed) {
  gLiveScheds.fetch_add(1, std::memory_order_acq_rel);
  if (seed != 0) noteSeededSched(seed);
  setCheckpointHook(&Sched::checkpoint);  // the heap's chunked work (pheap.h)
  // One P per core by default, at most kMaxProcs (hosts clamp theirs: vm/spindle.h).
  if (procs <= 0) {
    procs = static_cast<int>(
        std::clamp(std::thread::hardware_concurrency(), 1u, static_cast<unsigned>(kMaxProcs)));
  }
  SPINDLE_CHECK(procs <= kMaxProcs, "Sched: procs={} > kMaxProcs={}", procs, kMaxProcs);
  std::lock_guard<std::mutex> lk(lock_);
  for (int i = 0; i < procs; i++) {
    P* p = new P(i);
    initHeapP(p);
    runPInitHooks(p);
    allp_[i].store(p, std::memory_order_release);
  }
  allocatedPs_ = procs;
  gomaxprocs_.store(procs, std::memory_order_release);
  for (int i = procs - 1; i >= 0; i--) pidleput(allp(i));
  sysmon_ = std::thread(sysmonLoop, this);
  setThreadName(sysmon_, "spindle-sysmon");
}

Sched::~Sched() {
  {
    std::lock_guard<std::mutex> lk(lock_);
    SPINDLE_CHECK(hostRuns_ == nullptr, "~Sched: a host thread is still in runMain");
    shutdown_.store(true);
    preemptall();
    for (M* m : midle_) {
      m->inIdleList = false;
      m->park.wakeup();
    }
    nmidle_ -= static_cast<std::int32_t>(midle_.size());
    midle_.clear();
  }
  {
    std::lock_guard<std::mutex> lk(sysmonLock_);
    sysmonStop_ = true;
    sysmonCv_.notify_all();
  }
  sysmon_.join();
  // Worker Ms exit at their next safepoint; none can be created any more. An M blocked
  // in a foreign call is not waited for (the program ends when its main G ends, as in
  // Go): CASing its syscallState to kAbandoned makes its exitSyscall block forever, so
  // its thread is detached and the M leaked, the one object it still reads.
  std::vector<M*> ms;
  {
    std::lock_guard<std::mutex> lk(lock_);
    ms = allm_;
  }
  for (M* m : ms) {
    for (;;) {
      if (m->exited.load(std::memory_order_acquire)) {
        m->thread.join();
        delete m;
        break;
      }
      std::uint32_t in = M::kInSyscall;
      if (m->syscallState.compare_exchange_strong(in, M::kAbandoned, std::memory_order_acq_rel)) {
        m->thread.detach();
        break;
      }
      // On its way to a safepoint, or out of its foreign call and on its way back.
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  for (int i = 0; i < allocatedPs_; i++) {
    P* p = allp(i);
    if (p->status.load() != PStatus::Dead) {
      runPDestroyHooks(p);
      destroyHeapP(p);
    }
    delete p;
  }
  // No M of this Sched runs any more, so none of its Gs can join the finalizer waiters
  // now; those that did must not outlive them (a later world's finalizer run would ready
  // a freed G).
  dropFinalizerWaiters(this);
  for (G* g : allgs_) {
    if (g->body != nullptr && g->status.load() != GStatus::Dead) g->body->abandoned(g);
    delete g;
  }
  for (GChain& c : gFree_) {
    for (G* g = c.head; g != nullptr;) {
      G* next = g->schedlink;
      delete g;
      g = next;
    }
  }
  if (std::uint64_t mine = seed_; mine != 0)
    gSchedSeed.compare_exchange_strong(mine, 0, std::memory_order_relaxed);
  gLiveScheds.fetch_sub(1, std::memory_order_acq_rel);
}

SchedStats Sched::stats() {
  std::lock_guard<std::mutex> lk(lock_);
  return stats_;
}

void Sched::releaseDeadlock() {
  std::lock_guard<std::mutex> lk(lock_);
  const std::int32_t before = deadlockHolds_.fetch_sub(1, std::memory_order_seq_cst);
  SPINDLE_CHECK(before > 0, "releaseDeadlock: no hold ({})", before);
  if (before == 1) checkdead();
}

void Sched::addHostWait(int delta) {
  std::lock_guard<std::mutex> lk(lock_);
  nhostwait_ += delta;
  SPINDLE_CHECK(nhostwait_ >= 0, "addHostWait: nhostwait={} < 0", nhostwait_);
  if (nhostwait_ == 0) checkdead();
}

// --- Gs -----------------------------------------------------------------------------

G* Sched::newG() {
  G* g = new G();
  g->sched = this;
  std::lock_guard<std::mutex> lk(allglock_);
  allgAdd(g);
  return g;
}

void Sched::printGsForFatal(std::FILE* out, void (*trace)(G* g, std::FILE* out)) {
  std::unique_lock<std::mutex> lk(allglock_, std::try_to_lock);
  if (!lk.owns_lock()) {
    printNoHeap(out, "Gs: unavailable (allglock is held)\n");
    return;
  }
  for (G* g : allgs_) {
    const GStatus st = g->status.load(std::memory_order_acquire);
    if (st == GStatus::Dead || st == GStatus::Idle) continue;
    const char* what = st == GStatus::Running   ? "running"
                       : st == GStatus::Syscall ? "syscall"
                       : st == GStatus::Runnable ? "runnable"
                                                 : waitReasonString(g->waitreason);
    printNoHeap(out, "G {} [{}]:\n", g->goid, what);
    // The G this M runs is stopped here, in the fatal error: its frames can be read.
    const M* self = getm();
    const bool own = st == GStatus::Running && self != nullptr && self->curg == g;
    if (trace == nullptr || (st != GStatus::Runnable && st != GStatus::Waiting && !own)) continue;
    std::uint32_t zero = 0;
    if (!g->gcscanlock.compare_exchange_strong(zero, 1, std::memory_order_acquire,
                                               std::memory_order_relaxed)) {
      printNoHeap(out, "\t(stack being scanned)\n");
      continue;
    }
    trace(g, out);
    g->unlockScan();
  }
}

std::size_t Sched::allgCount() {
  std::lock_guard<std::mutex> lk(allglock_);
  return allgs_.size();
}

std::size_t Sched::gCount() {
  std::size_t n = allgCount();
  std::lock_guard<std::mutex> lk(gFreeLock_);
  return n + static_cast<std::size_t>(gFreeCount_);
}

void Sched::allgAdd(G* g) {
  g->allgIndex = allgs_.size();
  allgs_.push_back(g);
}

// Unlists a chain of dead Gs (linked through schedlink) bound for the global free list.
void Sched::allgRemoveChain(G* head) {
  for (G* g = head; g != nullptr; g = g->schedlink) {
    const std::size_t i = g->allgIndex;
    SPINDLE_DCHECK(i < allgs_.size() && allgs_[i] == g, "allgs: G {} not at its index {}", g->goid, i);
    G* last = allgs_.back();
    allgs_[i] = last;
    last->allgIndex = i;
    allgs_.pop_back();
  }
}

G* Sched::gfget(P* p) {
  if (p != nullptr && p->gFree == nullptr) {
    GChain c{nullptr, 0};
    {
      std::lock_guard<std::mutex> lk(gFreeLock_);
      if (!gFree_.empty()) {
        c = gFree_.back();
        gFree_.pop_back();
        gFreeCount_ -= c.n;
      }
    }
    if (c.head != nullptr) {
      {
        std::lock_guard<std::mutex> lk(allglock_);
        for (G* g = c.head; g != nullptr; g = g->schedlink) allgAdd(g);
      }
      p->gFree = c.head;
      p->gFreeCount = c.n;
    }
  }
  if (p != nullptr && p->gFree != nullptr) {
    G* g = p->gFree;
    p->gFree = g->schedlink;
    p->gFreeCount--;
    // The next spawn on this P reuses it: start loading it now (a dead G is usually cold).
    if (p->gFree != nullptr) __builtin_prefetch(p->gFree, 1);
    return g;
  }
  if (p == nullptr) {
    G* g = nullptr;
    {
      std::lock_guard<std::mutex> lk(gFreeLock_);
      if (!gFree_.empty()) {
        GChain& c = gFree_.back();
        g = c.head;
        gFreeCount_--;
        if (--c.n == 0) {
          gFree_.pop_back();
        } else {
          c.head = g->schedlink;
        }
      }
    }
    if (g != nullptr) {
      std::lock_guard<std::mutex> lk(allglock_);
      allgAdd(g);
      return g;
    }
  }
  return newG();
}

void Sched::gfput(P* p, G* g) {
  g->schedlink = p->gFree;
  p->gFree = g;
  p->gFreeCount++;
  if (p->gFreeCount >= kGFreeLocalMax) {
    // Keep the half that exited last (warm), hand the rest over as one chain.
    G* last = p->gFree;
    for (std::int32_t i = 1; i < kGFreeLocalMax / 2; i++) last = last->schedlink;
    GChain c{last->schedlink, p->gFreeCount - kGFreeLocalMax / 2};
    last->schedlink = nullptr;
    p->gFreeCount = kGFreeLocalMax / 2;
    {
      std::lock_guard<std::mutex> lk(allglock_);
      allgRemoveChain(c.head);
    }
    std::lock_guard<std::mutex> lk(gFreeLock_);
    gFree_.push_back(c);
    gFreeCount_ += c.n;
  }
}

void shrinkstack(G* g) {
  SPINDLE_DCHECK(currentP() != nullptr, "shrinkstack: G {} shrunk on a thread without a P", g->goid);
  g->lockScan();
  if (g->gcshrink.load(std::memory_order_relaxed)) {
    const GStatus st = g->status.load(std::memory_order_acquire);
    SPINDLE_CHECK(st == GStatus::Runnable || st == GStatus::Waiting,
                  "shrinkstack: G {} flagged for shrinking has status {}, want Runnable or Waiting",
                  g->goid, static_cast<int>(st));
    g->body->shrinkStack(g);
    g->gcshrink.store(false, std::memory_order_release);
  }
  g->unlockScan();
}

// Readies a new or reused G (Dead or fresh) to run body; the caller publishes it
// (status Runnable with release) and queues it.
void Sched::initG(G* g, GBody* body, P* p) {
  SPINDLE_DCHECK(!g->gcshrink.load(std::memory_order_relaxed),
                 "initG: G {} reused with a stack shrink pending", g->goid);
  g->body = body;
  g->m = nullptr;
  g->schedlink = nullptr;
  g->preempt.store(false, std::memory_order_relaxed);
  g->waitreason = WaitReason::None;
  g->waitobj = nullptr;
  g->parkCommit = nullptr;
  g->param = nullptr;
  g->hostRun.store(nullptr, std::memory_order_relaxed);
  g->traceSpawned.store(false, std::memory_order_relaxed);
  if (p != nullptr) {
    if (p->goidcache == p->goidcacheEnd) {
      p->goidcache = goidgen_.fetch_add(kGoidCacheBatch, std::memory_order_relaxed) + 1;
      p->goidcacheEnd = p->goidcache + kGoidCacheBatch;
    }
    g->goid = p->goidcache++;
  } else {
    g->goid = goidgen_.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  g->sud = sudog{};
  // A reused G may carry this mark phase's generation from its previous life: reset, so
  // the new body's stack is scanned before it first runs while marking.
  g->gcscangen.store(0, std::memory_order_relaxed);
  g->needWorkerM.store(false, std::memory_order_relaxed);
}

G* Sched::spawnG(GBody* body, P** pp) {
  M* m = tlsM;
  P* p = (m != nullptr && m->sched == this) ? m->p : nullptr;
  G* g = gfget(p);
  initG(g, body, p);
  if (trace::enabled()) [[unlikely]] {
    g->traceSpawned.store(true, std::memory_order_relaxed);
    const G* parent = m != nullptr ? m->curg : nullptr;
    trace::fiberSpawn(p != nullptr ? p->id : -1, parent != nullptr ? parent->goid : 0, g->goid);
  }
  *pp = p;
  return g;
}

G* Sched::newproc(GBody* body) {
  P* p;
  G* g = spawnG(body, &p);
  g->status.store(GStatus::Runnable, std::memory_order_release);
  if (p != nullptr) {
    // While marking, the creator scans the new G's stack now (it holds a P, g has not
    // run; the scan lock orders it with the collector's): otherwise every G created after
    // the mark's last round of scans would be scanned by mark termination with the world
    // stopped (a program spawning thousands of fibers during a mark).
    runGBeforeRunHook(g);
    runqput(this, p, g, true);
  } else {
    std::lock_guard<std::mutex> lk(lock_);
    globrunqput(g);
  }
  wakep();
  return g;
}

void Sched::ready(G* g) {
  GStatus want = GStatus::Waiting;
  bool ok = g->status.compare_exchange_strong(want, GStatus::Runnable, std::memory_order_acq_rel);
  SPINDLE_CHECK(ok, "ready: G {} status={} want Waiting", g->goid, static_cast<int>(want));
  M* m = tlsM;
  if (trace::enabled()) [[unlikely]] {
    const P* mp = m != nullptr && m->sched == this ? m->p : nullptr;
    trace::fiberUnpark(mp != nullptr ? mp->id : -1, g->goid);
  }
  if (m != nullptr && m->sched == this && m->p != nullptr) {
    // Only runnext changed: this M runs g as soon as the current G stops, so waking a
    // spinning M would only cost a futex round trip per hand-off (ping-pong). sysmon
    // wakes one if g waits in runnext for a whole tick.
    if (!runqput(this, m->p, g, true)) return;
  } else {
    std::lock_guard<std::mutex> lk(lock_);
    globrunqput(g);
  }
  wakep();
}

// --- Ps and Ms ----------------------------------------------------------------------

void Sched::acquireP(M* m, P* p) {
  SPINDLE_CHECK(m->p == nullptr && p->m == nullptr,
                "acquireP: M {} holds P {} or P {} held by another M", m->id,
                m->p ? m->p->id : -1, p->id);
  PStatus st = p->status.load();
  SPINDLE_CHECK(st == PStatus::Idle, "acquireP: P {} status={} want Idle", p->id,
                static_cast<int>(st));
  m->p = p;
  p->m = m;
  p->status.store(PStatus::Running);
  bindP(p);  // this thread allocates from p's MCache from now on
  runPAcquireHooks(p);
  if (p->runSafePointFn.load() != 0) runSafePointFn(p);
}

P* Sched::releaseP(M* m) {
  P* p = m->p;
  SPINDLE_CHECK(p != nullptr && p->m == m && p->status.load() == PStatus::Running,
                "releaseP: M {} P {} not held and Running", m->id, p ? p->id : -1);
  unbindP();
  p->m = nullptr;
  m->p = nullptr;
  p->status.store(PStatus::Idle);
  return p;
}

// Under lock_. Puts an Idle P (held by nobody) on the idle list, or wherever it is needed
// first: a pending forEachP fn runs on it, a stopping world takes it, an M waiting in
// exitSyscall gets it.
void Sched::pidleput(P* p) {
  std::uint32_t one = 1;
  if (p->runSafePointFn.load() != 0 && p->runSafePointFn.compare_exchange_strong(one, 0)) {
    safePointFn_(p);
    if (--safePointWait_ == 0) safePointNote_.wakeup();
  }
  if (gcwaiting_.load()) {
    p->status.store(PStatus::GCStop);
    if (--stopwait_ == 0) stopNote_.wakeup();
    return;
  }
  if (!syscallWaiters_.empty()) {
    M* w = syscallWaiters_.front();
    syscallWaiters_.pop_front();
    nsyscallWaiters_.fetch_sub(1, std::memory_order_relaxed);
    p->status.store(PStatus::Idle);
    w->nextp = p;
    if (deferredWakes_ != nullptr) {
      deferredWakes_->push_back(w);
    } else {
      w->park.wakeup();
    }
    return;
  }
  p->status.store(PStatus::Idle);
  p->link = pidle_;
  pidle_ = p;
  npidle_.store(npidle_.load(std::memory_order_relaxed) + 1);
}

P* Sched::pidleget() {
  P* p = pidle_;
  if (p != nullptr) {
    pidle_ = p->link;
    p->link = nullptr;
    npidle_.store(npidle_.load(std::memory_order_relaxed) - 1);
  }
  return p;
}

void Sched::mput(M* m) {
  m->inIdleList = true;
  midle_.push_back(m);
  nmidle_++;
  checkdead();
}

M* Sched::mget(bool workerOnly) {
  for (std::size_t i = midle_.size(); i-- > 0;) {
    M* m = midle_[i];
    if (workerOnly && m->isHost) continue;
    midle_.erase(midle_.begin() + static_cast<std::ptrdiff_t>(i));
    m->inIdleList = false;
    nmidle_--;
    return m;
  }
  return nullptr;
}

void Sched::mremoveIdle(M* m) {
  auto it = std::find(midle_.begin(), midle_.end(), m);
  SPINDLE_CHECK(it != midle_.end(), "mremoveIdle: M {} not in midle", m->id);
  midle_.erase(it);
  m->inIdleList = false;
  nmidle_--;
}

// Parks the M (which holds no P) until it is handed a P or its host run ends.
void Sched::stopm(M* m) {
  SPINDLE_CHECK(m->p == nullptr, "stopm: M {} holds P {}", m->id, m->p ? m->p->id : -1);
  {
    std::lock_guard<std::mutex> lk(lock_);
    if (!mputUnlessDone(m)) return;
  }
  parkm(m, 0);
}

// Under lock_: puts m on the idle list unless the Sched shuts down or m's host run ended
// (then m must not sleep). Returns whether m was listed.
bool Sched::mputUnlessDone(M* m) {
  if (shutdown_.load() || (m->isHost && m->hostRun->done.load(std::memory_order_acquire))) return false;
  mput(m);
  return true;
}

// Sleeps on m's note (spinning up to spinNs first) until whoever took m off the idle list
// wakes it, then claims the P it was handed, if any.
void Sched::parkm(M* m, std::int64_t spinNs) {
  if (spinNs == 0 || !m->park.spinFor(spinNs)) m->park.sleep();
  m->park.clear();
  claimNextp(m);
}

// Acquires the P that startm handed to m, unless stopTheWorld took it back first (then m
// only drops its spinning state and returns to schedule() without a P).
void Sched::claimNextp(M* m) {
  P* p = m->nextp;
  if (p == nullptr) return;
  m->nextp = nullptr;
  M* me = m;
  if (p->handoff.compare_exchange_strong(me, nullptr, std::memory_order_acq_rel)) {
    acquireP(m, p);
  } else if (m->spinning) {
    resetspinning(m);
  }
}

// Under lock_: hands P p (or an idle P) to an idle or new M.
M* Sched::startmLocked(P* p, bool spinning, bool deferWake, bool workerOnly) {
  if (p == nullptr) p = pidleget();
  if (p == nullptr || shutdown_.load()) {
    if (p != nullptr) pidleput(p);
    if (spinning) nmspinning_.fetch_sub(1);
    return nullptr;
  }
  M* nm = mget(workerOnly);
  if (nm != nullptr) {
    nm->nextp = p;
    nm->spinning = spinning;
    p->handoff.store(nm, std::memory_order_release);
    if (deferWake) return nm;
    nm->park.wakeup();
    return nullptr;
  }
  // Go's checkmcount: past the cap (threadlimit.h) the program has run away.
  if (mcount_ >= maxThreads()) threadExhaustion(mcount_, nullptr);
  nm = new M();
  nm->sched = this;
  nm->id = mnext_++;
  nm->seedRand(randSeed(seed_, nm->id));
  nm->nextp = p;
  p->handoff.store(nm, std::memory_order_release);
  nm->spinning = spinning;
  mcount_++;
  allm_.push_back(nm);
  try {
    nm->thread = std::thread([this, nm] { mstart(nm); });
    setThreadName(nm->thread, "spindle-m");
  } catch (const std::system_error& e) {
    threadExhaustion(mcount_, e.what());  // pthread_create failed (EAGAIN: no threads left)
  }
  return nullptr;
}

void Sched::startm(P* p, bool spinning) {
  std::lock_guard<std::mutex> lk(lock_);
  startmLocked(p, spinning);
}

void Sched::wakeIdlePs(int n) {
  // Seeded: no M runs beside the one running Gs (the collector's work is synchronous).
  // n <= 0: the collector found no idle CPU for idle-P marking (idleMarkSlots).
  if (n <= 0 || npidle_.load(std::memory_order_relaxed) == 0 || seeded()) return;
  std::vector<M*> wake;
  {
    std::lock_guard<std::mutex> lk(lock_);
    for (; n > 0 && npidle_.load() > 0 && !gcwaiting_.load() && !shutdown_.load(); n--) {
      M* w = startmLocked(nullptr, false, /*deferWake=*/true);
      if (w != nullptr) wake.push_back(w);
    }
  }
  for (M* w : wake) w->park.wakeup();
}

void Sched::wakep() {
  if (npidle_.load() == 0) return;
  if (seeded()) [[unlikely]] {
    wakepSeeded();
    return;
  }
  std::int32_t zero = 0;
  if (nmspinning_.load() != 0 || !nmspinning_.compare_exchange_strong(zero, 1)) return;
  startm(nullptr, true);
}

void Sched::resetspinning(M* m) {
  m->spinning = false;
  if (nmspinning_.fetch_sub(1) == 1) wakep();
}

// Hands off a P that nobody holds (from sysmon, forEachP, an exiting host M).
void Sched::handoffp(P* p) {
  std::lock_guard<std::mutex> lk(lock_);
  // Seeded: the P goes idle; the M running Gs (or wakepSeeded) takes it.
  if (!seeded() && (!runqempty(p) || runqsize_.load(std::memory_order_relaxed) > 0)) {
    startmLocked(p, false);
    return;
  }
  pidleput(p);
}

void Sched::mstart(M* m) {
  tlsM = m;
  claimNextp(m);
  schedule(m);
  tlsM = nullptr;
  m->exited.store(true, std::memory_order_release);  // ~Sched may join now
}

// A host M found g, whose next step must run on a worker M (g->needWorkerM): g goes to
// runnext of this M's P and the P to an idle or new worker M; this M goes idle (its own
// G, when it exits, wakes it).
void Sched::handToWorker(M* m, G* g) {
  if (m->spinning) {
    m->spinning = false;
    nmspinning_.fetch_sub(1);
  }
  runqput(this, m->p, g, /*next=*/true);
  P* p = releaseP(m);
  std::lock_guard<std::mutex> lk(lock_);
  startmLocked(p, false, false, /*workerOnly=*/true);
}

// --- the schedule loop --------------------------------------------------------------

void Sched::gcstopm(M* m) {
  if (m->spinning) {
    m->spinning = false;
    nmspinning_.fetch_sub(1);
  }
  P* p = releaseP(m);
  bool last, park;
  {
    std::lock_guard<std::mutex> lk(lock_);
    p->status.store(PStatus::GCStop);
    last = --stopwait_ == 0;
    // Join the idle list in the same critical section (stopm's part), and wake the
    // stopper only after unlocking: the stopper is usually spinning and goes straight for
    // sched.lock; finding it held would put it to sleep in the kernel for an OS wake-up.
    park = mputUnlessDone(m);
  }
  if (last) stopNote_.wakeup();
  // A stop-the-world is usually over within microseconds: spin (then yield) on the note
  // for a while before sleeping, so startTheWorld's wakeup is one atomic store rather
  // than a futex wake (whose wakee tends to preempt the waker on a busy machine,
  // stretching the pause by an OS time slice).
  if (park) parkm(m, kGCStopSpinNs);
}

void Sched::handToSyscallWaiter(M* m) {
  if (m->spinning) {
    m->spinning = false;
    nmspinning_.fetch_sub(1);
  }
  P* p = releaseP(m);
  std::lock_guard<std::mutex> lk(lock_);
  pidleput(p);  // goes to a waiter if one is still there
}

void Sched::schedule(M* m) {
  for (;;) {
    if (m->isHost && m->hostRun->done.load(std::memory_order_acquire)) return;
    if (shutdown_.load(std::memory_order_relaxed)) {
      if (m->p != nullptr) {
        if (m->spinning) {
          m->spinning = false;
          nmspinning_.fetch_sub(1);
        }
        P* p = releaseP(m);
        std::lock_guard<std::mutex> lk(lock_);
        pidleput(p);
      }
      return;
    }
    if (m->p == nullptr) {
      stopm(m);
      continue;
    }
    if (nsyscallWaiters_.load(std::memory_order_relaxed) > 0 && !m->isHost) {
      // An M in exitSyscall cannot migrate its G (it is on that M's C++ stack): give it
      // our P and become idle.
      handToSyscallWaiter(m);
      continue;
    }
    bool inherit = false;
    G* g = findRunnable(m, &inherit);
    if (g == nullptr) continue;
    if (m->isHost && g->needWorkerM.load(std::memory_order_relaxed)) [[unlikely]] {
      handToWorker(m, g);
      continue;
    }
    if (m->spinning) resetspinning(m);
    execute(m, g, inherit);
  }
}

G* Sched::findRunnable(M* m, bool* inheritTime) {
  P* p = m->p;
  if (gcwaiting_.load()) {
    gcstopm(m);
    return nullptr;
  }
  if (p->runSafePointFn.load() != 0) runSafePointFn(p);
  if (finalizerWakePending()) {  // sweeping queued finalizers (mfinal.h)
    if (G* fing = wakefing(this)) ready(fing);
  }
  if (shutdown_.load(std::memory_order_relaxed) ||
      (m->isHost && m->hostRun->done.load(std::memory_order_acquire)))
    return nullptr;
  *inheritTime = false;
  if (seeded()) [[unlikely]] return findRunnableSeeded(m);
  std::uint32_t tick = p->schedtick.load(std::memory_order_relaxed);
  if (tick % 61 == 0 && runqsize_.load(std::memory_order_relaxed) > 0) {
    std::lock_guard<std::mutex> lk(lock_);
    if (G* g = globrunqget(p, 1)) return g;
  }
  if (G* g = runqget(p, inheritTime)) return g;
  if (runqsize_.load(std::memory_order_relaxed) > 0) {
    std::lock_guard<std::mutex> lk(lock_);
    if (G* g = globrunqget(p, 0)) return g;
  }
  // Steal, with the number of spinning Ms bounded by half the busy Ps.
  std::int32_t procs = gomaxprocs_.load(std::memory_order_relaxed);
  if (m->spinning || 2 * nmspinning_.load() < procs - npidle_.load()) {
    if (!m->spinning) {
      m->spinning = true;
      nmspinning_.fetch_add(1);
    }
    if (G* g = stealWork(m)) return g;
  }
  // Nothing to run. While the collector marks, this P helps it before going idle (Go's
  // idle-priority mark worker): one bounded chunk, then back to the top, which checks
  // for a stop, a safepoint function and new Gs first.
  if (runIdleMarkHook(p)) {
    if (m->spinning) {
      m->spinning = false;
      nmspinning_.fetch_sub(1);
    }
    return nullptr;
  }
  // Nothing to do: give up the P.
  {
    std::lock_guard<std::mutex> lk(lock_);
    if (gcwaiting_.load() || p->runSafePointFn.load() != 0) return nullptr;  // retry at top
    if (runqsize_.load(std::memory_order_relaxed) > 0) return globrunqget(p, 0);
    if (!runqempty(p)) return nullptr;  // a stealer's leftovers or a kicked runnext
    releaseP(m);
    pidleput(p);
  }
  if (m->spinning) {
    m->spinning = false;
    nmspinning_.fetch_sub(1);
    // Work may have been submitted between our steal attempt and the decrement, by a
    // producer that saw nmspinning > 0 and did not wake anyone: look again.
    bool work = runqsize_.load() > 0;
    std::int32_t n = gomaxprocs_.load(std::memory_order_acquire);
    for (int i = 0; i < n && !work; i++) work = !runqempty(allp(i));
    if (work) {
      std::lock_guard<std::mutex> lk(lock_);
      if (P* p2 = pidleget()) {
        m->spinning = true;
        nmspinning_.fetch_add(1);
        // acquireP may run a safepoint fn that takes lock_: do it after unlocking.
        m->nextp = p2;
      }
    }
    if (m->nextp != nullptr) {
      P* p2 = m->nextp;
      m->nextp = nullptr;
      acquireP(m, p2);
      return nullptr;
    }
  }
  stopm(m);
  return nullptr;
}

// Seeded mode (after findRunnable's checks for a stop, a safepoint function, the
// finalizer G and the end of the run): fire the timers due on the virtual clock, or, when
// nothing is runnable, jump the clock to the earliest deadline; move this M to a drawn
// P (one draw per G: its P's pending safepoint fn runs in acquireP, a stop is checked
// below); run a drawn G from the global queue. With nothing to run, the M goes idle in the
// same sched.lock section in which it found the queue empty, so wakepSeeded (which
// starts an M only when every M is idle) cannot miss it.
G* Sched::findRunnableSeeded(M* m) {
  std::int64_t next = runTimers(vclock_.load(std::memory_order_relaxed));
  if (next != 0 && runqsize_.load(std::memory_order_relaxed) == 0) {
    vclock_.store(std::max(next, vclock_.load(std::memory_order_relaxed)), std::memory_order_relaxed);
    runTimers(vclock_.load(std::memory_order_relaxed));
  }
  P* p = m->p;
  const std::int32_t n = gomaxprocs_.load(std::memory_order_relaxed);
  if (n > 1) {
    P* to = allp(static_cast<int>(m->rand() % static_cast<std::uint32_t>(n)));
    bool moved = false;
    {
      std::lock_guard<std::mutex> lk(lock_);
      if (to != p && !gcwaiting_.load() && pidleRemove(to)) {
        releaseP(m);
        pidleput(p);
        moved = true;
      }
    }
    if (moved) {
      acquireP(m, to);  // may run a safepoint fn that takes lock_: after unlocking
      p = to;
    }
  }
  bool listed = false;
  {
    std::lock_guard<std::mutex> lk(lock_);
    if (gcwaiting_.load() || p->runSafePointFn.load() != 0) return nullptr;
    if (std::int32_t size = runqsize_.load(std::memory_order_relaxed); size > 0) {
      const std::uint64_t mask = runq_.size() - 1;
      const std::uint64_t k = m->rand() % static_cast<std::uint32_t>(size);
      std::swap(runq_[runqHead_ & mask], runq_[(runqHead_ + k) & mask]);
      return globrunqget(p, 1);
    }
    if (ntimers_.load() > 0) return nullptr;  // inserted since: fire them at the top
    releaseP(m);
    pidleput(p);
    listed = mputUnlessDone(m);
  }
  if (listed) parkm(m, 0);
  return nullptr;
}

// A G's budget in seeded mode, in safepoints: 1 to 256, small ones more likely (a draw of
// the range's width first), so preemption falls at many different points.
std::uint32_t Sched::seededBudget(M* m) {
  const std::uint32_t width = 1u << (1 + m->rand() % 8);
  return 1 + m->rand() % width;
}

// Seeded wakep: a G readied while no M runs Gs (by the collector's thread, a timer, a
// host) gets an M; while one does, it finds the G itself.
void Sched::wakepSeeded() {
  std::lock_guard<std::mutex> lk(lock_);
  if (hostRuns_ == nullptr || nmidle_ != mcount_ || gcwaiting_.load() || shutdown_.load()) return;
  startmLocked(nullptr, false);
}

bool Sched::pidleRemove(P* p) {
  for (P** pp = &pidle_; *pp != nullptr; pp = &(*pp)->link) {
    if (*pp != p) continue;
    *pp = p->link;
    p->link = nullptr;
    npidle_.store(npidle_.load(std::memory_order_relaxed) - 1);
    return true;
  }
  return false;
}

G* Sched::stealWork(M* m) {
  P* p = m->p;
  for (int attempt = 0; attempt < 4; attempt++) {
    std::int32_t n = gomaxprocs_.load(std::memory_order_acquire);
    std::uint32_t start = m->rand();
    for (std::int32_t i = 0; i < n; i++) {
      if (gcwaiting_.load(std::memory_order_relaxed)) return nullptr;
      P* victim = allp(static_cast<int>((start + static_cast<std::uint32_t>(i)) % n));
      if (victim == p) continue;
      if (G* g = runqsteal(p, victim, attempt == 3)) return g;
    }
    if (runqsize_.load(std::memory_order_relaxed) > 0) {
      std::lock_guard<std::mutex> lk(lock_);
      if (G* g = globrunqget(p, 0)) return g;
    }
  }
  return nullptr;
}

void Sched::execute(M* m, G* g, bool inheritTime) {
  P* p = m->p;
  GStatus st = g->status.load(std::memory_order_acquire);
  SPINDLE_CHECK(st == GStatus::Runnable, "execute: G {} status={} want Runnable", g->goid,
                static_cast<int>(st));
  runGBeforeRunHook(g);  // the collector scans g's stack first if it must
  // A scan (just now, or the collector's earlier) asked for a smaller stack: this M holds
  // a P and g does not run yet. Acquire: a shrink done elsewhere is seen by the body.
  if (g->gcshrink.load(std::memory_order_acquire)) [[unlikely]] shrinkstack(g);
  if (!m->isHost) g->needWorkerM.store(false, std::memory_order_relaxed);
  g->status.store(GStatus::Running, std::memory_order_relaxed);
  g->m = m;
  m->curg = g;
  g->preempt.store(false, std::memory_order_relaxed);
  if (!inheritTime) {
    p->schedtick.store(p->schedtick.load(std::memory_order_relaxed) + 1,
                       std::memory_order_relaxed);
  }
  p->curg.store(g, std::memory_order_release);  // sysmon and preemptall acquire it to touch g

  // The run span (trace.h): named before g runs, emitted once g stopped; g's fields are
  // read before a park's commit hands g to its waker.
  std::int64_t traceT0 = 0;
  std::int32_t traceP = -1;
  char traceName[trace::kNameCap];
  if (trace::enabled()) [[unlikely]] {
    trace::nameFiber(g, g->goid, traceName, sizeof traceName);
    traceP = p->id;
    traceT0 = nanotime();
  }

  Step step = g->body->run(g, seeded() ? seededBudget(m) : budget_);

  p = m->p;  // exitSyscall may have moved us to another P
  SPINDLE_CHECK(p != nullptr, "execute: G {} returned while its M holds no P (in a syscall?)",
                g->goid);
  p->curg.store(nullptr, std::memory_order_relaxed);
  m->curg = nullptr;
  g->m = nullptr;
  const bool assistPark = g->gcAssistPark.exchange(false, std::memory_order_relaxed);
  if (traceT0 != 0) [[unlikely]] {
    const char* end = step.kind == Step::Kind::Park ? "park" : step.kind == Step::Kind::Exit ? "exit" : "yield";
    const char* reason = step.kind == Step::Kind::Park ? waitReasonString(step.reason)
                         : assistPark                  ? waitReasonString(WaitReason::GCAssistWait)
                                                       : "";
    trace::fiberRun(traceP, g->goid, traceName, traceT0, assistPark && step.kind == Step::Kind::Yield ? "park" : end,
                    reason, g->traceSpawned.exchange(false, std::memory_order_relaxed));
  }
  switch (step.kind) {
    case Step::Kind::Yield:
      SPINDLE_CHECK(g->parkCommit == nullptr, "G {} yielded with a pending park commit", g->goid);
      if (assistPark) {
        if (auto commit = gcAssistParkHook()) {
          // The collector owns g until it readies it (at mark termination at the latest).
          g->waitreason = WaitReason::GCAssistWait;
          g->waitobj = nullptr;
          g->status.store(GStatus::Waiting, std::memory_order_release);
          commit(this, g);
          break;
        }
      }
      g->status.store(GStatus::Runnable, std::memory_order_release);
      runqput(this, p, g, false);
      break;
    case Step::Kind::Park: {
      g->waitreason = step.reason;
      g->waitobj = step.waitobj;
      void (*commit)(G*, void*) = g->parkCommit;
      void* arg = g->parkArg;
      g->parkCommit = nullptr;
      g->parkArg = nullptr;
      // After this store a waker that can find g (only once commit released its lock)
      // may ready it; g's fields must not be touched after commit.
      g->status.store(GStatus::Waiting, std::memory_order_release);
      if (commit != nullptr) commit(g, arg);
      break;
    }
    case Step::Kind::Exit:
      SPINDLE_CHECK(g->parkCommit == nullptr, "G {} exited with a pending park commit", g->goid);
      goexit(m, g);
      break;
  }
}

void Sched::goexit(M* m, G* g) {
  g->status.store(GStatus::Dead, std::memory_order_release);
  GBody* body = g->body;
  g->body = nullptr;
  body->exited(g);
  if (g->hostRun.load(std::memory_order_acquire) != nullptr) {
    std::lock_guard<std::mutex> lk(lock_);
    // Null if runMain already returned (deadlock reported): hr is gone.
    if (HostRun* hr = g->hostRun.exchange(nullptr, std::memory_order_acq_rel)) {
      hr->done.store(true, std::memory_order_release);
      if (hr->m != m && hr->m->inIdleList) {
        mremoveIdle(hr->m);
        hr->m->park.wakeup();
      }
    }
  }
  gfput(m->p, g);
}

// --- deadlock detection ----------------------------------------------------------------

// Under lock_. Called whenever an M goes idle (and after startTheWorld / a host leaving).
void Sched::checkdead() {
  if (hostRuns_ == nullptr || nmidle_ != mcount_) return;
  if (gcwaiting_.load() || safePointWait_ > 0 || shutdown_.load()) return;
  if (ntimers_.load() > 0 || nhostwait_ > 0) return;
  if (deadlockHolds_.load(std::memory_order_seq_cst) > 0) return;
  if (runqsize_.load(std::memory_order_relaxed) > 0) return;
  std::int32_t n = gomaxprocs_.load(std::memory_order_relaxed);
  for (int i = 0; i < n; i++) {
    P* p = allp(i);
    PStatus st = p->status.load();
    if (st != PStatus::Idle) return;  // held or in hand-off: someone will run
    if (!runqempty(p)) return;
  }
  // Every M is parked, nothing can become runnable: report to every host run.
  for (HostRun* hr = hostRuns_; hr != nullptr; hr = hr->next) {
    if (hr->done.load(std::memory_order_relaxed)) continue;
    hr->deadlock = true;
    hr->done.store(true, std::memory_order_release);
    if (hr->m->inIdleList) {
      mremoveIdle(hr->m);
      hr->m->park.wakeup();
    }
  }
}

// --- host entry ---------------------------------------------------------------------

RunStatus Sched::runMain(GBody* body) {
  SPINDLE_CHECK(tlsM == nullptr, "runMain: this thread is already an M");
  M m;
  HostRun hr;
  m.sched = this;
  m.isHost = true;
  m.hostRun = &hr;
  hr.m = &m;
  tlsM = &m;
  P* p = nullptr;
  {
    std::lock_guard<std::mutex> lk(lock_);
    m.id = mnext_++;
    m.seedRand(randSeed(seed_, m.id));
    mcount_++;  // not idle: no deadlock is reported before g is queued
    hr.next = hostRuns_;
    hostRuns_ = &hr;
    if (!gcwaiting_.load()) p = pidleget();
  }
  // With an idle P, g is a dead G from that P's free list (usually the one the last host
  // run on it left: no lock), else from the global free list, as newproc reuses them.
  if (p != nullptr) acquireP(&m, p);
  G* g = gfget(p);
  initG(g, body, p);
  hr.g = g;
  hr.goid = g->goid;
  // Release: endHostRun, holding a stale g, reads hr.goid through this pointer.
  g->hostRun.store(&hr, std::memory_order_release);
  g->status.store(GStatus::Runnable, std::memory_order_release);
  if (p != nullptr) {
    runqput(this, p, g, true);
  } else {
    {
      std::lock_guard<std::mutex> lk(lock_);
      globrunqput(g);
    }
    wakep();
  }
  schedule(&m);
  P* held = nullptr;
  if (m.p != nullptr) {
    if (m.spinning) {
      m.spinning = false;
      nmspinning_.fetch_sub(1);
    }
    held = releaseP(&m);
  }
  {
    std::lock_guard<std::mutex> lk(lock_);
    if (held != nullptr) {
      // handoffp's decision, in the critical section that unregisters this host run.
      if (!seeded() && (!runqempty(held) || runqsize_.load(std::memory_order_relaxed) > 0)) {
        startmLocked(held, false);
      } else {
        pidleput(held);
      }
    }
    SPINDLE_CHECK(!m.inIdleList, "runMain: host M {} still idle-listed", m.id);
    mcount_--;
    // Deadlock: g may still run and exit later; detach it from hr (only if it still
    // points at hr: an exited g may already be recycled for another run).
    HostRun* mine = &hr;
    g->hostRun.compare_exchange_strong(mine, nullptr, std::memory_order_acq_rel);
    HostRun** pp = &hostRuns_;
    while (*pp != &hr) pp = &(*pp)->next;
    *pp = hr.next;
    checkdead();
  }
  tlsM = nullptr;
  if (hr.deadlock) return RunStatus::Deadlock;
  return hr.ended ? RunStatus::Ended : RunStatus::Ok;
}

void Sched::endHostRun(G* g, std::uint64_t goid) {
  std::lock_guard<std::mutex> lk(lock_);
  // As goexit: clearing g->hostRun under sched.lock makes exactly one of goexit,
  // checkdead-return and endHostRun finish the HostRun. Under sched.lock a HostRun that
  // g->hostRun points at is still registered (its runMain unregisters it under the lock),
  // so hr->goid can be read; it differs when g exited and was recycled for another run.
  // Acquire: pairs with runMain's release store of hr.
  HostRun* hr = g->hostRun.load(std::memory_order_acquire);
  if (hr == nullptr || hr->goid != goid) return;
  if (!g->hostRun.compare_exchange_strong(hr, nullptr, std::memory_order_acq_rel)) return;
  if (hr->done.load(std::memory_order_relaxed)) return;
  hr->ended = true;
  hr->done.store(true, std::memory_order_release);
  if (hr->m != tlsM && hr->m->inIdleList) {
    mremoveIdle(hr->m);
    hr->m->park.wakeup();
  }
}

// --- foreign calls ------------------------------------------------------------------

bool Sched::onOtherHostM() {
  M* m = tlsM;
  return m != nullptr && m->isHost && m->curg != nullptr && m->curg != m->hostRun->g;
}

void Sched::enterSyscall(bool stackQuiescent) {
  M* m = tlsM;
  SPINDLE_CHECK(m != nullptr && m->p != nullptr && m->curg != nullptr,
                "enterSyscall: not called from a running G");
  Sched* s = m->sched;
  P* p = m->p;
  G* g = m->curg;
  if (p->runSafePointFn.load() != 0) s->runSafePointFn(p);
  if (!m->isHost) m->syscallState.store(M::kInSyscall, std::memory_order_release);
  g->status.store(GStatus::Syscall, std::memory_order_relaxed);
  if (stackQuiescent) {
    // Under the scan lock (its release): a scanner that takes the lock after this sees
    // the Syscall status and everything the body saved before the call.
    g->lockScan();
    g->gcAtSafepoint.store(true, std::memory_order_relaxed);
    g->unlockScan();
  }
  p->syscalltick.store(p->syscalltick.load(std::memory_order_relaxed) + 1,
                       std::memory_order_relaxed);
  // Unbind before publishing Syscall: once it is visible another M may take p.
  unbindP();
  p->m = nullptr;
  m->oldp = p;
  m->p = nullptr;
  p->status.store(PStatus::Syscall);  // seq_cst: pairs with gcwaiting below
  if (s->gcwaiting_.load()) {
    bool last = false;
    {
      std::lock_guard<std::mutex> lk(s->lock_);
      PStatus want = PStatus::Syscall;
      if (p->status.compare_exchange_strong(want, PStatus::GCStop)) last = --s->stopwait_ == 0;
    }
    if (last) s->stopNote_.wakeup();  // after unlocking, as in gcstopm
  }
}

bool Sched::checkpointPending() {
  M* m = tlsM;
  if (m == nullptr || m->p == nullptr || m->curg == nullptr) return false;
  // Relaxed: a stale "no" only delays the stop to the next checkpoint or return.
  return m->sched->gcwaiting_.load(std::memory_order_relaxed) ||
         m->p->runSafePointFn.load(std::memory_order_relaxed) != 0;
}

void Sched::checkpoint() {
  if (!checkpointPending()) return;
  // Not quiescent: the body's C++ frames hold state its traceStack does not report.
  enterSyscall(/*stackQuiescent=*/false);  // runs a pending forEachP fn; hands the P to a stopper
  exitSyscall();
}

void Sched::lockWaitRelax() {
  M* m = tlsM;
  if (m != nullptr && m->p != nullptr && m->curg != nullptr) {
    Sched* s = m->sched;
    if (s->nsyscallWaiters_.load(std::memory_order_relaxed) > 0) {
      // An M waits for a P and this G only waits for a lock: give it ours, as sysmon's
      // retake gives it a P left in a foreign call (the G's C++ frames hold state: not
      // quiescent). enterSyscall runs a pending forEachP fn, and a stopping world takes
      // the P instead (the CAS then fails).
      enterSyscall(/*stackQuiescent=*/false);
      P* p = m->oldp;
      PStatus want = PStatus::Syscall;
      if (p->status.compare_exchange_strong(want, PStatus::Idle)) {
        p->syscalltick.store(p->syscalltick.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        std::lock_guard<std::mutex> lk(s->lock_);
        s->pidleput(p);  // to the first waiting M; idle again if none is left
      }
      exitSyscall();  // waits for a P behind the Ms already waiting
    } else if (checkpointPending()) {
      checkpoint();
    }
  }
  sched_yield();
}

void Sched::exitSyscall() {
  M* m = tlsM;
  SPINDLE_CHECK(m != nullptr, "exitSyscall: not on an M");
  if (!m->isHost) {
    std::uint32_t in = M::kInSyscall;
    if (!m->syscallState.compare_exchange_strong(in, M::kNoSyscall, std::memory_order_acq_rel)) {
      // ~Sched abandoned this M during the call: the Sched, its Ps and Gs and whatever
      // the body refers to are gone. Block this (detached) thread for good; the process
      // exit ends it.
      SPINDLE_CHECK(in == M::kAbandoned, "exitSyscall: M {} syscallState={}", m->id, in);
      for (;;) pause();
    }
  }
  SPINDLE_CHECK(m->oldp != nullptr && m->curg != nullptr, "exitSyscall: no matching enterSyscall");
  Sched* s = m->sched;
  G* g = m->curg;
  P* p = m->oldp;
  m->oldp = nullptr;
  PStatus want = PStatus::Syscall;
  if (p->status.compare_exchange_strong(want, PStatus::Running)) {
    // Fast path: nobody took our P.
    m->p = p;
    p->m = m;
    bindP(p);
    p->syscalltick.store(p->syscalltick.load(std::memory_order_relaxed) + 1,
                         std::memory_order_relaxed);
  } else {
    s->exitSyscallSlow(m, g);
  }
  if (g->gcAtSafepoint.load(std::memory_order_relaxed)) {
    // Scan-before-run, as execute(): while marking, a G the collector has not scanned
    // during its quiescent call is scanned now, before it runs on (tryScanG takes the scan
    // lock, so this also waits for a scan in progress). Then the stack stops being
    // scannable; taking the lock again waits out a scan that began meanwhile.
    runGBeforeRunHook(g);
    g->lockScan();
    g->gcAtSafepoint.store(false, std::memory_order_relaxed);
    g->unlockScan();
  }
  g->status.store(GStatus::Running, std::memory_order_relaxed);
}

void Sched::exitSyscallSlow(M* m, G* g) {
  P* p = nullptr;
  bool stopping;
  {
    std::lock_guard<std::mutex> lk(lock_);
    stopping = gcwaiting_.load();
    if (!stopping) p = pidleget();
    if (p == nullptr) {
      syscallWaiters_.push_back(m);
      nsyscallWaiters_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (p == nullptr) {
    // Usually the world is being stopped and restarts within microseconds: spin first,
    // so startTheWorld's hand-off is an atomic store, not a futex wake that the OS may
    // answer by preempting the restarter (stretching the pause by a time slice).
    if (!stopping || !m->park.spinFor(kGCStopSpinNs)) m->park.sleep();
    m->park.clear();
    p = m->nextp;
    m->nextp = nullptr;
    SPINDLE_CHECK(p != nullptr, "exitSyscall: M {} woken without a P", m->id);
  }
  acquireP(m, p);
  p->curg.store(g, std::memory_order_release);
}

}  // namespace spindle::runtime
