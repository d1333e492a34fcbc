// threadname.h: names the runtime's own threads, as top -H, ps -L, gdb's `info threads`
// and perf show them ("spindle-sysmon", "spindle-gc", "spindle-scvg", "spindle-m",
// "spindle-gcmark", "spindle-pprof").
//
// The creator names the thread right after starting it, so the name is set when the
// creating call returns (a thread naming itself would race with anyone looking).
//
// Invariant: a name is at most 15 bytes (the kernel's limit; a longer one is rejected
// with ERANGE and the thread keeps its inherited name). A failure changes nothing else.
//
// Background threads (the collector's controller "spindle-gc", its extra mark workers
// "spindle-gcmark", the scavenger "spindle-scvg") run under SCHED_BATCH (setBackground):
// the same CPU share as any thread, but a wake-up never preempts the thread running on
// its CPU. The mutator wakes the controller at every cycle trigger and on many lock
// hand-offs; with wake-up preemption the controller, placed on the waker's CPU, took it
// from the lone mutator (in one GCBench run on a loaded 2-CPU machine, 451 of the
// mutator M's 605 involuntary switches were to spindle-gc and 63 to spindle-scvg; none
// with SCHED_BATCH), and the mutator then waited for a CPU while the world waited for
// it (time to safepoint of several ms). The Ms that run Gs and sysmon are put under
// SCHED_OTHER by their creator (setForeground), as a new thread inherits its creator's
// policy and the controller starts Ms (wakeIdlePs, readying assists); so a woken M still
// preempts a background thread. Linux only; elsewhere a no-op.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <thread>

namespace spindle::runtime {

inline void setThreadName(std::thread& t, const char* name) {
  (void)pthread_setname_np(t.native_handle(), name);
}

// Puts t under SCHED_BATCH (see the top of the file), right after the creator started it.
// Unprivileged (any thread may move itself or a sibling from SCHED_OTHER to SCHED_BATCH);
// a failure leaves the thread as it was.
// The calling thread's policy: SCHED_BATCH (background) or SCHED_OTHER. The controller
// leaves SCHED_BATCH while it stops the world: then it is the thread the world waits
// for, and the last M to stop wakes it.
inline void setSelfBackground(bool background) {
#ifdef SCHED_BATCH
  sched_param param{};
  param.sched_priority = 0;
  (void)pthread_setschedparam(pthread_self(), background ? SCHED_BATCH : SCHED_OTHER, &param);
#else
  (void)background;
#endif
}
// A thread that inherited SCHED_BATCH from its creator goes back to SCHED_OTHER (any other
// policy, e.g. a real-time one the embedder chose, is kept).
inline void setForeground(std::thread& t) {
#ifdef SCHED_BATCH
  int policy = 0;
  sched_param param{};
  if (pthread_getschedparam(t.native_handle(), &policy, &param) != 0 || policy != SCHED_BATCH) return;
  param.sched_priority = 0;
  (void)pthread_setschedparam(t.native_handle(), SCHED_OTHER, &param);
#else
  (void)t;
#endif
}
inline void setBackground(std::thread& t) {
#ifdef SCHED_BATCH
  sched_param param{};
  param.sched_priority = 0;
  (void)pthread_setschedparam(t.native_handle(), SCHED_BATCH, &param);
#else
  (void)t;
#endif
}

}  // namespace spindle::runtime
