// fing.h: the finalizer G (Go's fing in mfinal.go) and setFinalizer (gc.h).
//
// Design. One G per attached scheduler runs queued finalizers (mfinal.h), each exactly
// once, in queue order, then parks (WaitReason::FinalizerWait) until sweeping queues
// more. It never holds a queued object across a safepoint: it pops an entry and runs it
// within one run() call (the pop shades obj and arg while marking: removing them from
// the queue, a root, is a deletion the hybrid barrier must see). It yields after
// `budget` finalizers or when preempted.
//
// Wake-ups: sweeping only raises a flag (it may run under the scheduler's lock); the
// scheduler's findRunnable readies the G (wakefing), and wakeFinalizerG() does it from
// any thread holding no scheduler lock (the collector calls it when a cycle's sweep is
// done).
//
// Integration with the collector core: gcAttach(sched) calls startFinalizerG(sched);
// gcDetach(sched) calls stopFinalizerG(sched); gcCollect calls wakeFinalizerG() once the
// sweep is finished. setFinalizer registers the finalizer roots (scanFinalizerRoots) with
// registerRoots on first use.
#pragma once

#include "runtime/g.h"
#include "runtime/mfinal.h"

namespace spindle::runtime {

class Sched;
struct G;

// Creates the finalizer G on sched, parked unless entries are queued (idempotent for the
// same sched). Returns it.
G* startFinalizerG(Sched* sched);
// Unregisters sched's finalizer G: it exits at its next run (or is abandoned by ~Sched).
// Queued entries wait for the next startFinalizerG.
void stopFinalizerG(Sched* sched);
// Readies the finalizer G if entries are waiting and it is parked. Any thread, no
// scheduler lock held.
void wakeFinalizerG();
// The registered finalizer G (null if none).
G* finalizerG();
// The finalizer G while it runs a finalizer on this thread, else null.
G* runningFinalizerG();
// gcWaitFinalizers (Go has none; its tests poll): from G g's body at a safepoint, with
// target = finalizersQueuedTotal() taken when the wait began and !finalizersRan(target):
// records a park commit that adds g to the waiters (mfinal.h) and returns the park step,
// which the body must return at once. g is readied when the first `target` entries ever
// queued have all run (by the finalizer G, or by the commit if they already had).
Step waitFinalizersStep(G* g, std::uint64_t target);

}  // namespace spindle::runtime
