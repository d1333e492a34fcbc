// phooks.h: P lifecycle hooks, the seam between the scheduler and the per-P parts owned by
// subsystems above the heap (the collector's work buffer, the pinner cache).
//
// The heap's own part of a P is wired directly by the scheduler (pheap.h): initHeapP when
// a P is created, destroyHeapP when it is destroyed, bindP whenever an M starts holding a
// P (acquireP, exitSyscall's fast path, procresize moving the caller to P0) and unbindP
// whenever it stops (releaseP, enterSyscall). So a thread allocates exactly while it holds
// a P, and a P in a foreign call can be handed to another M.
//
// Design. A subsystem registers, once at start-up and before any Sched exists, a set of
// plain function pointers:
//   - init(P*):    a P is created (Sched construction, procresize growing). Set up the
//                  per-P caches.
//   - destroy(P*): a P is destroyed (procresize shrinking, Sched destruction). Hand every
//                  cache back (MCache spans to their MCentral, cached MSpans to the heap).
//                  Called with the world stopped (or no Ms left): nothing else touches P.
//   - acquire(P*): an M takes the P (acquireP, the single place this happens). The
//                  collector uses it for the lazy mcache flush (flushGen != sweepgen).
//   - gcMarkDone(P*): the collector's forEachP after mark termination reached this P
//                  (running on it at a safepoint, or on an idle P by the caller). The
//                  pinner drops its per-P cache here.
// Hooks run in registration order for init/acquire and in reverse order for destroy.
//
// Invariants. Registration is not concurrent with any Sched (checked: registering while a
// Sched is alive is fatal). At most kMaxPHooks sets.
#pragma once

namespace spindle::runtime {

struct P;

struct PLifecycleHooks {
  void (*init)(P*) = nullptr;
  void (*destroy)(P*) = nullptr;
  void (*acquire)(P*) = nullptr;
  void (*gcMarkDone)(P*) = nullptr;
};

inline constexpr int kMaxPHooks = 8;

// Registers a set of hooks; returns its slot (for unregisterPLifecycleHooks, used by tests).
int registerPLifecycleHooks(const PLifecycleHooks& hooks);
void unregisterPLifecycleHooks(int slot);

// Called by the scheduler.
void runPInitHooks(P* p);
void runPDestroyHooks(P* p);
void runPAcquireHooks(P* p);
// Called by the collector.
void runPGCMarkDoneHooks(P* p);

// The collector's stack-scan hook: while it is set (from sweep termination to mark
// termination, changed only with the world stopped), the scheduler calls it with a
// Runnable G right before resuming it, so the G's stack is scanned before it runs.
struct G;
void setGBeforeRunHook(void (*hook)(G*));
void runGBeforeRunHook(G* g);

// The collector's idle mark worker (Go's idle-priority gcBgMarkWorker): while it is set
// (during the mark phase, changed only with the world stopped), an M whose P finds no G
// to run calls it before giving the P up; the hook does one bounded chunk of marking on
// that P and returns true if it did any (the M then looks for Gs again), false if there
// is no mark work (the P goes idle as usual).
void setIdleMarkHook(bool (*hook)(P*));
bool runIdleMarkHook(P* p);

// The collector's assist-park hook: when a G that yields has g->gcAssistPark set, the
// scheduler marks it Waiting (GCAssistWait) and calls the hook, which queues the G and
// readies it at mark termination (or at once if marking already ended). Set once.
class Sched;
void setGCAssistParkHook(void (*hook)(Sched*, G*));
using GCAssistParkFn = void (*)(Sched*, G*);
GCAssistParkFn gcAssistParkHook();

}  // namespace spindle::runtime
