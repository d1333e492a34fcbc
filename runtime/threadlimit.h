// threadlimit.h: the cap on the OS threads the scheduler starts (Go's debug.SetMaxThreads).
//
// Design. Every fiber blocked in a foreign call holds its M (OS thread) for the call's
// length, and the scheduler starts another M to run the others (sysmon retakes the P),
// so without a cap a script can exhaust the process's threads. As in Go the cap counts
// worker Ms; its default is Go's, 10000.
//   - A foreign call from a G first claims a blocking slot (acquireBlockingThread): at
//     most maxThreads() - procs - 1 calls block at once, so the Ms that run fibers always fit
//     beside them. A call that finds none fails in its own fiber ("Thread limit
//     exceeded."), a runtime error the script can catch: better than Go's fatal error.
//   - The scheduler starting a worker M past maxThreads() Ms, or the OS refusing a thread
//     (pthread_create's EAGAIN), is Go's fatal "thread exhaustion": a message and exit 2,
//     never an uncaught std::system_error (threadExhaustion).
//
// Invariants: blockingThreads() counts the claims not yet released; each claim is
// released exactly once, after its call returns. The words are atomics: the limit is a
// setting read with relaxed loads (it orders nothing), the count is changed by CAS
// (acq_rel) so that no two claims take the last slot.
#pragma once

namespace spindle::runtime {

inline constexpr int kDefaultMaxThreads = 10000;

// n <= 0 restores the default.
void setMaxThreads(int n);
int maxThreads();

// Claims a slot for a call that will block its M; false when maxThreads() - procs - 1 calls
// already block (procs: the caller's Ps, at least 1 slot is always allowed).
bool acquireBlockingThread(int procs);
void releaseBlockingThread();
int blockingThreads();

// Go's fatal "thread exhaustion": prints why (the limit, or the OS error) and exits 2.
[[noreturn]] void threadExhaustion(int count, const char* osError);

}  // namespace spindle::runtime
