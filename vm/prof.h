// prof.h: what the interpreter tells the CPU and allocation profilers (runtime/pprof.h):
// the fiber it runs, the native being called, and the safepoint at which a CPU sample
// that SIGPROF requested is taken.
//
// Design. The interpreter keeps its hot state (the frame pointer, ip) in locals; the
// fiber's frameCount and its top frame's ip are stale inside the call and return fast
// paths, and nothing is published there: profiling off costs the interpreter nothing
// per call or return. Each thread records only the fiber it runs (tlsProfFiber, set by
// ProfRunScope when VM::interpret starts, restored when it returns) and the native
// being called (tlsProfNative, ProfNativeScope).
//
// The walker (installed by installProfWalker) reads the fiber's saved state: frames
// 0..frameCount-1, each frame's saved ip. That state is exact wherever a walk runs
// synchronously: the interpreter saves it (SAVE) before every allocation (so an
// allocation sample sees it), before every native call, and at a safepoint. In the
// SIGPROF handler, with a native running or a runtime label set (a mark assist inside
// an allocation), the handler walks at once. Otherwise the thread is in the middle of
// Lox code with its state in registers, so the handler does what Go's preemption does:
// it sets tlsProfRequest and the fiber's preemption flag, and returns kProfDeferred; at
// its next safepoint (a call or a loop's back edge: a few instructions away) the fiber
// saves its state and yields as for any preemption, and the sample is taken as
// VM::interpret returns (ProfRunScope, profSafepoint), with that saved state. A fiber
// that leaves the interpreter first (park, exit) is sampled there the same way.
//
// Frames, leaf first: a running native as `<native NAME>`, then each Lox frame from the
// top down, named by its function ("<script>" for a script), with the line of the
// instruction its saved ip is in (the top frame's: the sampled line; a caller's: the
// call). Invariants: the walker only reads (no lock, no allocation); a frame array
// stays mapped (heap arenas are never unmapped), and every pointer is checked for null
// before use; tlsProfRequest is written by the handler and the thread it interrupted only.
#pragma once

#include <atomic>

#include "vm/object.h"

namespace spindle::vm {

extern constinit thread_local std::atomic<const ObjFiber*> tlsProfFiber;
extern constinit thread_local std::atomic<const ObjNative*> tlsProfNative;
// Relaxed: read and written by one thread and its own signal handler.
extern constinit thread_local std::atomic<bool> tlsProfRequest;

// Takes the pending sample (runtime::cpuProfileSample) and clears the request.
void profTakeDeferred();
// Takes a CPU sample SIGPROF deferred, if one is pending (the fiber's state is saved).
inline void profSafepoint() {
  if (tlsProfRequest.load(std::memory_order_relaxed)) [[unlikely]] profTakeDeferred();
}

// Names the fiber this thread runs for the duration of VM::interpret; on the way out
// takes a sample still pending, and restores the outer run's fiber and native (a native
// that called back into Lox).
class ProfRunScope {
 public:
  explicit ProfRunScope(const ObjFiber* f)
      : savedFiber_(tlsProfFiber.load(std::memory_order_relaxed)),
        savedNative_(tlsProfNative.load(std::memory_order_relaxed)) {
    tlsProfNative.store(nullptr, std::memory_order_relaxed);
    tlsProfFiber.store(f, std::memory_order_release);
  }
  ~ProfRunScope() {
    profSafepoint();
    tlsProfFiber.store(savedFiber_, std::memory_order_release);
    tlsProfNative.store(savedNative_, std::memory_order_release);
  }
  ProfRunScope(const ProfRunScope&) = delete;
  ProfRunScope& operator=(const ProfRunScope&) = delete;

 private:
  const ObjFiber* savedFiber_;
  const ObjNative* savedNative_;
};

// The native being called, for its duration.
class ProfNativeScope {
 public:
  explicit ProfNativeScope(const ObjNative* n) : saved_(tlsProfNative.load(std::memory_order_relaxed)) {
    tlsProfNative.store(n, std::memory_order_release);
  }
  ~ProfNativeScope() { tlsProfNative.store(saved_, std::memory_order_release); }
  ProfNativeScope(const ProfNativeScope&) = delete;
  ProfNativeScope& operator=(const ProfNativeScope&) = delete;

 private:
  const ObjNative* saved_;
};

// Registers the Lox stack walker with the runtime profiler (idempotent).
void installProfWalker();

}  // namespace spindle::vm
