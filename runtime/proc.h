// proc.h: the M:N scheduler (Go's proc.go and schedt): Gs run on Ms through Ps.
//
// Design (as Go's runtime, adapted to stackless Gs).
//   - A Sched owns `procs` Ps (allp), the Ms it started, every G it created (allgs), the
//     global run queue, the idle lists of Ps and Ms, the timer heap and sysmon.
//   - schedule(): each M loops: take a G from runnext, the local run queue, the global
//     queue (every 61st tick first, for fairness), or steal half of another P's queue;
//     call its body; act on the Step (Yield -> local run queue, Park -> Waiting + park
//     commit, Exit -> recycle). A G made runnable by a running G goes to runnext and
//     inherits the time slice (ping-pong stays on one P).
//   - Idle Ms park in sched.midle; wakep() starts one *spinning* M when there is an idle P
//     and no spinning M; a spinning M that finds work wakes a replacement. At most half
//     the busy Ps have spinning Ms. An M that stops spinning rechecks every run queue
//     after releasing its P (Go's "delicate dance"), so no work is left behind.
//   - Every return from a G body to schedule() is a safepoint: there the M notices
//     stopTheWorld (gcwaiting), forEachP (p->runSafePointFn) and shutdown. Long-running
//     Gs are asked to come to a safepoint through g->preempt.
//   - sysmon (sysmon.cc): fires timers, preempts Gs running > 10 ms, retakes Ps from Ms in
//     foreign calls (enterSyscall/exitSyscall).
//   - An M whose G left a foreign call or a checkpoint without its P waits in exitSyscall
//     (its G is on its C++ stack: it cannot migrate) until pidleput hands it one, in
//     arrival order. Ms give it theirs at their next return to schedule() (sysmon asks
//     every running G to get there), and a G spinning on a lock does at once
//     (lockWaitRelax): such a G makes no progress until the holder, which may be that
//     waiting M, runs again.
//   - Deadlock (checkdead): when every M is idle, no G is runnable, no timer is pending,
//     no G waits on the host, and a host thread waits in runMain, that run ends with
//     RunStatus::Deadlock ("all fibers are asleep - deadlock!").
//   - Seeded mode (Sched(procs, seed), seed != 0; CHESS/Loom-style): a run is a function
//     of the Gs' bodies and the seed. The Ps' work is serialised onto one M at a time:
//     wakep starts an M only when every M is idle (and a host runs), startTheWorld,
//     handoffp and wakeIdlePs start none, sysmon neither preempts, retakes nor fires
//     timers. Every runnable G waits on the global queue; findRunnableSeeded moves the M
//     to a P drawn from the M's random source (seeded from the seed and the M's id), then
//     runs a G drawn from that queue with a drawn budget (seededBudget: safepoint counts,
//     never time). Timers run on a virtual clock (vclock_) that jumps to the earliest
//     deadline when nothing is runnable. The unseeded paths pay one predictable branch.
//
// Locks, in order: worldsema -> sched.lock. (Notes take no lock.) Channel locks and timer
// lock are never held while taking sched.lock except through ready() of a runnable G
// (runqputslow); nothing takes a channel lock under sched.lock.
//
// Invariants (checked where cheap):
//   - stopwait, safePointWait, the idle lists, mcount/nmidle and the global run queue are
//     only touched under sched.lock.
//   - nmidle == mcount implies no M holds a P (all Ps idle or stopped).
//   - A P is in exactly one place: held by an M, in pidle, in a Note hand-off (nextp;
//     p->handoff names the M until it claims the P), Syscall (oldp of an M), or stopped
//     (GCStop/Dead).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "runtime/g.h"
#include "runtime/m.h"
#include "runtime/p.h"

namespace spindle::runtime {

inline constexpr int kMaxProcs = 256;
inline constexpr const char* kDeadlockMessage = "all fibers are asleep - deadlock!";

// Monotonic clock in nanoseconds.
std::int64_t nanotime();

// Ok: the G exited. Deadlock: no G can ever run again. Ended: endHostRun ended the wait.
enum class RunStatus { Ok, Deadlock, Ended };

// A host thread waiting in runMain for one G to exit.
struct HostRun {
  G* g = nullptr;
  // g's goid for this run: a G is recycled once it exits, so endHostRun names the run it
  // ends by (G, goid), never by the G alone.
  std::uint64_t goid = 0;
  M* m = nullptr;
  std::atomic<bool> done{false};  // release by the setter, acquire by the host M
  bool deadlock = false;          // written before done (under sched.lock)
  bool ended = false;             // endHostRun: written before done (under sched.lock)
  HostRun* next = nullptr;
};

struct SchedStats {
  std::int64_t lastStopNs = 0;   // time to stop the world, last STW
  std::int64_t lastPauseNs = 0;  // world stopped (stopTheWorld entry to startTheWorld exit)
  std::uint64_t numSTW = 0;
};

class Sched {
 public:
  // procs <= 0: the number of online CPUs. seed != 0: seeded mode (see above).
  explicit Sched(int procs = 0, std::uint64_t seed = 0);
  ~Sched();
  Sched(const Sched&) = delete;
  Sched& operator=(const Sched&) = delete;

  // Host entry: the calling thread becomes an M and runs Gs until the G running `body`
  // exits (Ok) or no G can ever run again (Deadlock). Several host threads may run at once.
  RunStatus runMain(GBody* body);

  // Ends the runMain waiting for g early, which returns RunStatus::Ended; g itself keeps
  // its state (still runnable, running or parked). Go's equivalent is a goroutine's
  // fatal panic ending the program while main is blocked. goid is g->goid as read by g's
  // own body: a caller holding g past its exit may find it recycled as the main G of a
  // later runMain, which must not be ended (a goid is never reused). No-op if g, as that
  // goid, has no host waiting (it exited, or that runMain already returned). Callable
  // from a G body or any thread.
  void endHostRun(G* g, std::uint64_t goid);

  // Creates a runnable G (Go's newproc). From a G body it goes to the current P's runnext;
  // from any other thread to the global queue.
  G* newproc(GBody* body);

  // Makes a Waiting G runnable (Go's goready).
  void ready(G* g);

  // The world: stops every P at a safepoint; returns the time it took to stop (ns). May be
  // called from a G body (its own P counts as stopped) or from any other thread.
  std::int64_t stopTheWorld(const char* reason);
  // Restarts the world; returns the pause (ns since stopTheWorld began).
  std::int64_t startTheWorld();
  // Runs fn once on every P at its next safepoint (a ragged barrier); idle Ps and Ps in
  // foreign calls are handled by the caller. Returns once fn ran on every P.
  void forEachP(const std::function<void(P*)>& fn);
  // Changes the number of Ps; must be called with the world stopped by this thread.
  void procresize(int n);
  // stopTheWorld + procresize + startTheWorld (Go's GOMAXPROCS).
  void setProcs(int n);
  // Gs listed in allgs: every G but those on the global free list; and every G this
  // Sched owns, those included (tests bound both).
  std::size_t allgCount();
  std::size_t gCount();

  // Hands up to n idle Ps to Ms (started or woken), which look for work on them: the
  // collector calls it when marking starts (every P) and when it hands work to its
  // global list (one P, Go's enlistWorker), so idle Ps run its idle mark worker.
  void wakeIdlePs(int n);

  int procs() const { return gomaxprocs_.load(std::memory_order_acquire); }
  // Ps on the idle list now (a snapshot: relaxed, the list changes under lock_).
  int idlePs() const { return npidle_.load(std::memory_order_relaxed); }
  // sysmon's current tick in ns (sysmon.cc: 1 ms while it finds work, backing off to 10 ms).
  std::int64_t sysmonTickNs() const { return sysmonTickNs_.load(std::memory_order_relaxed); }
  P* allp(int i) const { return allp_[i].load(std::memory_order_acquire); }
  SchedStats stats();
  std::uint32_t budget() const { return budget_; }
  // Seeded mode: the seed (0 when unseeded), and the virtual clock timers run on (ns).
  std::uint64_t seed() const { return seed_; }
  bool seeded() const { return seed_ != 0; }
  std::int64_t virtualNow() const { return vclock_.load(std::memory_order_relaxed); }
  // Gs parked waiting for the host (Go: a goroutine blocked on a cgo callback); while
  // positive, deadlock is not reported. Balanced calls from the embedding API.
  void addHostWait(int delta);
  // Holds on deadlock reports for wake-ups an embedder has requested but not yet made
  // (the VM's interrupt: between its signal-safe request and sysmon's pass). While any is
  // held, deadlock is not reported. holdDeadlock is a lock-free increment
  // (async-signal-safe); releaseDeadlock decrements under sched.lock and rechecks.
  void holdDeadlock() { deadlockHolds_.fetch_add(1, std::memory_order_seq_cst); }
  void releaseDeadlock();

  // Foreign calls from a G body (Go's entersyscall/exitsyscall): between them the M has no
  // P; sysmon may hand the P to another M. exitSyscall blocks until the M holds a P again.
  // stackQuiescent: the body saved all its state where traceStack finds it and touches
  // none of it until exitSyscall (a foreign function call, gcCollect), so the collector
  // may scan the G during the call, as Go scans a goroutine in a syscall; exitSyscall
  // then waits for a scan in progress and, while marking, scans the G before it runs on
  // (scan-before-run, as execute()). If the Sched was destroyed meanwhile (~Sched
  // abandons an M in a foreign call), exitSyscall never returns: the thread blocks
  // forever without touching anything but its leaked M.
  static void enterSyscall(bool stackQuiescent);
  static void exitSyscall();
  // True when the calling G runs on a host M (a thread in runMain) that is not its own
  // host's: a blocking foreign call there would keep that host thread from returning when
  // its G exits. The body should then set g->needWorkerM and yield before the call: the
  // scheduler hands the G to a worker M, where the body makes the call.
  static bool onOtherHostM();
  // For C++ G bodies that run long between returns to the scheduler (benchmarks, host
  // code): if a stopTheWorld or forEachP is waiting for this P, pass through the syscall
  // state in place so it proceeds without waiting for run() to return (the G blocks until
  // it holds a P again). The G's stack is not scanned there (it is not at a safepoint):
  // as with a foreign call, that only delays mark completion until the body returns.
  // Cheap when nothing waits (two relaxed loads). No-op outside a running G.
  // Installed as the heap's checkpoint hook (pheap.h), which chunked work calls.
  static void checkpoint();
  // Whether a stopTheWorld or forEachP waits for the calling G's P (what checkpoint acts
  // on); false outside a running G.
  static bool checkpointPending();
  // For a G body spinning on a lock that another G may hold while it has no P (a lock
  // held across a checkpoint or a foreign call: vm's WordLock, barrier.h): one round of
  // the wait. When an M waits in exitSyscall for a P (the holder's may be one: it cannot
  // release the lock before it runs again), the caller's P goes to the first such M and
  // the caller waits for a P itself, as after a foreign call; otherwise it passes a
  // checkpoint. Then it yields the thread. Outside a running G it only yields. The rule
  // it keeps: a lock waiter never holds a P that an M waiting for one could have, so
  // waiters that fill every P cannot starve a holder stopped in exitSyscall.
  static void lockWaitRelax();

  // Timers (time.cc). sleep: the body returns the Step; the G wakes after `ns`.
  Step sleep(G* g, std::int64_t ns);
  // Makes every sleeping G whose body's owner() is `owner` due now (sysmon fires it at
  // once), so an embedder stopping a group of Gs need not wait out their sleeps.
  void expireTimers(const void* owner);
  // The same for every sleeping G for which pick(g, arg) is true (called under the timer
  // lock with g asleep: its body is stable; pick must take no scheduler lock).
  void expireTimersIf(bool (*pick)(G* g, void* arg), void* arg);
  std::int64_t pendingTimers() const { return ntimers_.load(std::memory_order_acquire); }

  // A fatal error's dump of the Gs (Go's tracebackothers; throw.h's printers call it):
  // one line per G in allgs that is not Dead or Idle, `G <goid> [<status or wait
  // reason>]`, then, for a Runnable or Waiting G whose scan lock one try took,
  // trace(g, out) (the embedder prints the G's own frames). Best-effort and lock-free
  // as fatal printers must be: allglock is only tried (held: one line says the list is
  // unavailable); the scan lock keeps the collector's scans and stack shrinks away while
  // trace reads the stack, but a parked G readied meanwhile may start running (execute
  // takes the lock only when a scan is due), so a trace may be torn; a Running or
  // Syscall G prints no trace (its state is in its M's registers), except the G of the
  // M that is printing (getm()->curg, Go's "goroutine N [running]" first): it is stopped
  // in the fatal error, and what it saved at its last allocation or call is its trace.
  void printGsForFatal(std::FILE* out, void (*trace)(G* g, std::FILE* out));

  // Visits every G except the dead ones on the global free list (the collector's stack
  // scans, abort of a failed program).
  template <typename F>
  void forEachG(F&& f) {
    std::lock_guard<std::mutex> lk(allglock_);
    for (G* g : allgs_) f(g);
  }

 private:
  friend void sysmonLoop(Sched* s);
  friend struct SchedTestPeer;

  // proc.cc
  void mstart(M* m);
  void schedule(M* m);
  G* findRunnable(M* m, bool* inheritTime);
  G* findRunnableSeeded(M* m);
  std::uint32_t seededBudget(M* m);
  void wakepSeeded();
  bool pidleRemove(P* p);  // under lock_: takes p off the idle list if it is there
  G* stealWork(M* m);
  void execute(M* m, G* g, bool inheritTime);
  void goexit(M* m, G* g);
  void stopm(M* m);
  bool mputUnlessDone(M* m);
  void parkm(M* m, std::int64_t spinNs);
  void claimNextp(M* m);
  void startm(P* p, bool spinning);
  // Under lock_. With deferWake, an idle M handed p is returned instead of woken: the
  // caller wakes it after unlocking (startTheWorld), so the woken M never finds
  // sched.lock held by its waker.
  // workerOnly: never a host M (handToWorker).
  M* startmLocked(P* p, bool spinning, bool deferWake = false, bool workerOnly = false);
  void wakep();
  void resetspinning(M* m);
  void handoffp(P* p);
  void acquireP(M* m, P* p);
  P* releaseP(M* m);
  void pidleput(P* p);
  P* pidleget();
  void mput(M* m);
  M* mget(bool workerOnly = false);
  void mremoveIdle(M* m);
  void checkdead();
  void gcstopm(M* m);
  void runSafePointFn(P* p);
  void preemptall();
  void lockWorld(M* m);
  void finishSafePoint();
  G* gfget(P* p);
  void gfput(P* p, G* g);
  G* newG();
  void initG(G* g, GBody* body, P* p);
  // A new G for body (gfget + initG, the trace's spawn event), from the current P's free
  // list when the caller holds a P of this Sched (*p: that P, else null); newproc then
  // makes it runnable.
  G* spawnG(GBody* body, P** p);
  void allgAdd(G* g);                // under allglock_
  void allgRemoveChain(G* head);     // under allglock_
  void handToWorker(M* m, G* g);
  void exitSyscallSlow(M* m, G* g);
  void handToSyscallWaiter(M* m);

  // Run queues (runq.cc).
  // Returns true if g (or the runnext it displaced) went to the ring or the global queue,
  // false if it only went to runnext.
  static bool runqput(Sched* s, P* p, G* g, bool next);
  static G* runqget(P* p, bool* inheritTime);
  static bool runqempty(P* p);
  // sysmon.cc, while tracing: samples the runnable fibers and heapLive (trace.h counters).
  void traceCounters();
  static G* runqsteal(P* p, P* victim, bool stealRunNext);
  static std::uint32_t runqgrab(P* victim, std::array<std::atomic<G*>, kLocalRunQueueSize>& batch,
                                std::uint32_t batchHead, bool stealRunNext);
  bool runqputslow(P* p, G* g, std::uint32_t h, std::uint32_t t);
  void globrunqput(G* g);
  void globrunqputbatch(G* const* gs, std::int32_t n);
  G* globrunqget(P* p, std::int32_t max);

  // time.cc
  static void timerCommit(G* g, void* arg);
  std::int64_t runTimers(std::int64_t now);  // returns the next deadline or 0

  // sysmon.cc
  bool retake(std::int64_t now);  // true when it found work (sysmon.cc: the tick)

  std::mutex lock_;  // sched.lock
  std::mutex worldsema_;
  std::atomic<int> gomaxprocs_{0};
  std::atomic<P*> allp_[kMaxProcs] = {};
  int allocatedPs_ = 0;  // Ps ever created (allp_ entries beyond gomaxprocs are Dead)

  // Under lock_.
  P* pidle_ = nullptr;
  std::vector<M*> midle_;
  std::vector<M*> allm_;         // worker Ms (joined at destruction)
  // Ms in exitSyscall waiting for any P, served first come first served (pidleput): a
  // lock holder that queued is served before lock waiters that handed it their Ps and
  // queued after it (lockWaitRelax), however often they pass Ps around.
  std::deque<M*> syscallWaiters_;
  // Under lock_: while startTheWorld hands out Ps, the syscall waiters pidleput gives a
  // P to are collected here and woken after the pause is taken and the lock released.
  std::vector<M*>* deferredWakes_ = nullptr;
  std::int32_t mcount_ = 0;
  std::int32_t nmidle_ = 0;
  std::int64_t mnext_ = 1;
  HostRun* hostRuns_ = nullptr;
  // Global run queue (Go's sched.runq): a growable ring of G pointers (capacity a power of
  // two, runqsize_ of them from runqHead_), so moving a batch in or out never touches the
  // Gs themselves: a G that has not run for a while costs a cache miss.
  std::vector<G*> runq_;
  std::uint64_t runqHead_ = 0;
  std::int32_t stopwait_ = 0;
  std::int32_t safePointWait_ = 0;
  std::int64_t nhostwait_ = 0;
  std::function<void(P*)> safePointFn_;
  int newprocs_ = 0;
  std::int64_t stwStart_ = 0;
  SchedStats stats_;

  std::atomic<std::int32_t> runqsize_{0};  // written under lock_, read racily as a hint
  std::atomic<std::int32_t> npidle_{0};    // written under lock_
  std::atomic<std::int32_t> nmspinning_{0};
  std::atomic<std::int32_t> nsyscallWaiters_{0};
  std::atomic<std::int32_t> deadlockHolds_{0};  // holdDeadlock / releaseDeadlock
  std::atomic<bool> gcwaiting_{false};
  std::atomic<bool> shutdown_{false};
  Note stopNote_;
  Note safePointNote_;

  // Dead Gs shared between Ps (Go's sched.gFree): chains of up to kGFreeLocalMax/2 Gs
  // linked through schedlink, moved to and from a P's list whole, so the lock is never
  // held across a walk of cold Gs.
  struct GChain {
    G* head;
    std::int32_t n;
  };
  std::mutex gFreeLock_;
  std::vector<GChain> gFree_;
  std::int32_t gFreeCount_ = 0;
  std::mutex allglock_;
  // Every G not on the global free list (gFree_): Gs in use and those on the Ps' short
  // free lists. A chain moved to gFree_ leaves it, a chain taken back rejoins it, so a
  // cycle's walk is bounded by the Gs in use, not by the Gs ever created.
  std::vector<G*> allgs_;
  std::atomic<std::uint64_t> goidgen_{0};
  std::uint32_t budget_ = 4096;
  const std::uint64_t seed_;
  // Seeded mode: virtual time in ns. Written only by the M that runs Gs (one at a time,
  // ordered by the sched.lock hand-offs between them), so relaxed.
  std::atomic<std::int64_t> vclock_{0};

  // Timers: a min-heap on (when, seq) under timerLock_.
  struct Timer {
    std::int64_t when;
    std::uint64_t seq;
    G* g;
  };
  std::mutex timerLock_;
  std::vector<Timer> timers_;
  std::uint64_t timerSeq_ = 0;
  std::atomic<std::int64_t> ntimers_{0};

  // sysmon
  std::mutex sysmonLock_;
  std::condition_variable sysmonCv_;
  bool sysmonStop_ = false;
  std::thread sysmon_;
  // Written by sysmon each tick; relaxed: a reading for tests and diagnostics only.
  std::atomic<std::int64_t> sysmonTickNs_{0};
};

}  // namespace spindle::runtime
