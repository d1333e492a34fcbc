// g.h: G, a stackless fiber (Go's g in runtime2.go), and sudog, a G waiting on a channel.
//
// Design. A G has no C++ stack of its own. Its whole state lives in its body (for the VM:
// a value stack and call frames on the heap; for runtime tests: a small state machine).
// The scheduler resumes a G by calling `body->run(g, budget)` on an M; the body runs until
// it reaches a point where it must stop and returns one Step:
//   - Yield: the budget is spent or g->preempt was seen at a safepoint; put me back on a
//     run queue.
//   - Park(reason, waitobj): I wait for something (a channel, a timer, a wait group); a
//     runtime operation that returned "park" has recorded in g->parkCommit how to publish
//     the wait (e.g. unlock the channel), and the scheduler calls it once the G is marked
//     _Gwaiting, exactly like Go's gopark(unlockf).
//   - Exit: the G is finished; the scheduler calls body->exited(g) (which may free the body)
//     and recycles the G.
// Switching between Gs is therefore a return and a call: no context switch, no stack.
//
// Invariants.
//   - status transitions: Idle -> Runnable -> Running -> {Runnable, Waiting, Dead};
//     Waiting -> Runnable only through ready(); Dead -> Runnable only by newproc reuse.
//   - Only the M running a G (status Running) touches its body and its parking fields.
//   - A G with status Waiting is referenced by exactly one waker (a sudog on a channel
//     queue, a timer, a wait group); ready() checks the Waiting -> Runnable transition.
//   - A G is small (about 200 bytes with its embedded sudog) so a million parked Gs fit in
//     well under 1 GiB with their bodies.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>

#include "runtime/typeinfo.h"

namespace spindle::runtime {

struct G;
struct M;
struct hchan;
class Sched;
struct HostRun;

// Why a G is parked (Go's waitReason). Kept for tracebacks and deadlock reports.
enum class WaitReason : std::uint8_t {
  None,
  ChanSend,
  ChanRecv,
  Select,
  SelectNoCases,
  Sleep,
  WaitGroup,
  Host,
  FinalizerWait,
  GCAssistWait,  // parked by the collector: the heap reached its goal while marking
  FinalizersRunWait,  // waitFinalizersStep: until the finalizers queued so far have run
  Join,               // an embedder's G waiting for another to end (the VM's Fiber.join)
};

const char* waitReasonString(WaitReason r);

// What a G body returns to the scheduler.
struct Step {
  enum class Kind : std::uint8_t { Yield, Park, Exit };
  Kind kind;
  WaitReason reason = WaitReason::None;
  void* waitobj = nullptr;

  static Step yield() { return Step{Kind::Yield}; }
  static Step park(WaitReason reason, void* waitobj) { return Step{Kind::Park, reason, waitobj}; }
  static Step exit() { return Step{Kind::Exit}; }
};

// The pluggable body of a G: the VM implements it with its interpreter, tests with small
// state machines. `run` is called on an M holding a P; it must return promptly once
// `budget` units of work are done or g->preempt is set (a safepoint poll).
class GBody {
 public:
  virtual Step run(G* g, std::uint32_t budget) = 0;
  // Called once when run() returned Exit, after the G stopped running. Default: nothing.
  virtual void exited(G*) {}
  // Called by ~Sched for a G that never exited (parked forever, or still runnable when
  // the scheduler shut down), so the owner can free the body. Default: nothing.
  virtual void abandoned(G*) {}
  // Reports every heap pointer the G holds (its value stack, frames, pending channel
  // element) to visit(ctx, slot). Called by the collector while the G is not running
  // (between two run() calls), never concurrently with run(). Default: holds nothing.
  virtual void traceStack(G*, void (*visit)(void* ctx, void** slot), void* ctx) {
    (void)visit;
    (void)ctx;
  }
  // The same pointers as traceStack, each with a name for its slot ("fiber 3 frame f()
  // slot 2"), for retainingPath (gc.h), under traceStack's conditions; it may leave out
  // what the question is about (gcpath's argument, which traceStack keeps alive).
  // Returns false if the body names nothing (the walk then uses traceStack).
  virtual bool traceStackLabelled(G*, LabelVisitFn visit, void* ctx) {
    (void)visit;
    (void)ctx;
    return false;
  }
  // Called by a stack scanner right after traceStack, under the same conditions: true
  // if the stack uses so little of its storage that shrinkStack should run (Go: less
  // than a quarter). Must not allocate. Default: never.
  virtual bool wantsStackShrink(G*) { return false; }
  // Shrinks the stack storage (Go's shrinkstack: halve it). Called with g->gcscanlock
  // held and g Runnable or Waiting, on a thread holding a P (it may allocate). Nothing
  // else reads or writes the G's stack meanwhile except through what the body itself
  // synchronises (the VM's open upvalues). Default: nothing.
  virtual void shrinkStack(G*) {}
  // The embedder's group this body belongs to (the VM uses its VM: Sched::expireTimers
  // selects a group's sleepers). Fixed for the body's life. Default: none.
  virtual const void* owner() const { return nullptr; }

 protected:
  ~GBody() = default;
};

// A G waiting on a channel (Go's sudog). Each G embeds one for plain send/recv; select
// allocates one per case. Fields other than `next`/`prev` are written by the waiting G
// before it parks and by the waker under the channel lock; the G reads them after it is
// readied (the ready hand-off orders the accesses).
struct sudog {
  G* g = nullptr;
  sudog* next = nullptr;
  sudog* prev = nullptr;
  hchan* c = nullptr;
  std::uint64_t elem = 0;   // the element sent, or received into (opaque 64-bit word)
  bool isSelect = false;
  bool success = false;     // true: the op completed with a value; false: woken by close
  std::uint16_t caseIndex = 0;
  sudog* waitlink = nullptr;  // select: the G's list of sudogs
};

enum class GStatus : std::uint32_t { Idle, Runnable, Running, Waiting, Syscall, Dead };

struct G {
  GBody* body = nullptr;
  M* m = nullptr;                    // the M running it (valid while Running/Syscall)
  G* schedlink = nullptr;            // global run queue / free list link
  std::atomic<GStatus> status{GStatus::Idle};
  // Set by sysmon, stopTheWorld and forEachP; polled by the body at safepoints. A stale
  // request only costs one extra yield. Relaxed: it carries no data.
  std::atomic<bool> preempt{false};
  WaitReason waitreason = WaitReason::None;
  void* waitobj = nullptr;
  // Park commit (Go's gopark unlockf): called by the scheduler after status = Waiting.
  void (*parkCommit)(G*, void*) = nullptr;
  void* parkArg = nullptr;
  // Select: set by the waker to the winning sudog; selectDone is CASed 0->1 by the single
  // waker that may complete a select (Go's g.selectDone).
  sudog* param = nullptr;
  std::atomic<std::uint32_t> selectDone{0};
  std::int64_t timerWhen = 0;        // sleep deadline (nanotime)
  // A host thread waits in runMain for this G to exit. Exchanged to null under sched.lock
  // by goexit or by runMain when it returns first (deadlock), never read after that.
  std::atomic<HostRun*> hostRun{nullptr};
  Sched* sched = nullptr;           // the scheduler that created it
  std::uint64_t goid = 0;
  sudog sud;                         // the G's own sudog for plain send/recv

  // Stack scanning (Go's _Gscan bit, mgcmark.cc). gcscangen == the collector's mark
  // generation: this G's stack was scanned in the current mark phase. gcscanlock (0/1,
  // acquire/release) is held by whoever scans the stack and by execute() while it checks
  // the scan state before resuming the G, so a G is never scanned while it runs.
  // gcAtSafepoint: the G is in a foreign call that declared its stack quiescent
  // (enterSyscall(true): a foreign function call, gcCollect): its traceStack describes
  // all it holds and nothing changes it until exitSyscall, so it may be scanned although
  // in Syscall status. Written only by the G's own M under gcscanlock (set after the
  // Syscall status, cleared in exitSyscall after the before-run scan). False in
  // Sched::checkpoint, whose C++ frames hold state traceStack cannot see.
  // A reused G starts with gcscangen = 0 (no mark generation), so it is scanned before
  // it first runs in a mark phase.
  std::atomic<std::uint32_t> gcscangen{0};
  std::atomic<std::uint32_t> gcscanlock{0};
  std::atomic<bool> gcAtSafepoint{false};
  // A scanner asked for the stack to be shrunk (see the invariants above). Set and
  // cleared only under gcscanlock; cleared with release after the shrink, so execute()'s
  // acquire load that finds it clear sees the shrunk stack. Set only while marking by a
  // scan of a Runnable/Waiting G, which execute() orders before its own load (the
  // before-run hook's scan lock or its acquire of gcscangen), so a G that execute()
  // found unflagged is never flagged again before it stops.
  std::atomic<bool> gcshrink{false};
  // Set by the body before it yields when its next step (a foreign call) must not run on
  // a host M (whose thread must return to its host as soon as its own G exits): the
  // scheduler hands such a G with the P to a worker M. Cleared when a worker M runs it.
  // Relaxed: it travels with the G through the run queues (release/acquire).
  std::atomic<bool> needWorkerM{false};
  // Index in Sched::allgs while listed (a G on the global free list is not; allglock).
  std::size_t allgIndex = 0;
  // Set by the collector (on the G's own M, in the allocation slow path) when the heap
  // passed its goal while marking: at its next yield the G parks until mark termination
  // (Go's assist queue) instead of allocating further. Owner M only (relaxed).
  std::atomic<bool> gcAssistPark{false};
  // Set by newproc while tracing (trace.h): the G's first run span ends the spawn's flow
  // arrow. Relaxed: the run queue hand-off orders it with execute's read.
  std::atomic<bool> traceSpawned{false};

  bool preemptRequested() const { return preempt.load(std::memory_order_relaxed); }

  // gcscanlock (Go's _Gscan bit): acquire spins, then yields; held for one stack scan.
  void lockScan() {
    for (int spins = 0;; spins++) {
      std::uint32_t zero = 0;
      if (gcscanlock.compare_exchange_weak(zero, 1, std::memory_order_acquire,
                                           std::memory_order_relaxed))
        return;
      if (spins > 16) sched_yield();
    }
  }
  void unlockScan() { gcscanlock.store(0, std::memory_order_release); }
};

// Go's shrinkstack: if g->gcshrink is set, runs g->body->shrinkStack(g) under
// gcscanlock and clears the flag. The caller holds a P; g is not running.
void shrinkstack(G* g);

}  // namespace spindle::runtime
