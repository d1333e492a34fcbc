// prof.h: what the interpreter publishes for the CPU and allocation profilers
// (runtime/pprof.h): the running frame, and the native being called.
//
// Design. The interpreter keeps its hot state (the frame pointer, ip) in locals; the
// fiber's frameCount is stale inside the call fast path. So each thread publishes, in
// thread-local atomics, the base of the running fiber's frame array and the running
// frame (tlsProfBase, tlsProfTop): LOAD sets both, the call and return fast paths set
// the top (one store each, release: the frame's fields are written before it is
// published), and VM::run clears the top when it returns (a thread between fibers shows
// no Lox frames). A native call sets tlsProfNative for its duration (NativeScope).
//
// The walker (installed by installProfWalker, runs in the SIGPROF handler on the
// interrupted thread, or at an allocation sample) reads them: with no top, no Lox frames;
// otherwise the frames from the top down to the base, leaf first, each its function's
// name ("<script>" for a script) and line (the top frame: its function's first line, as
// its ip is in a register; the callers: the line of the call). A running native is
// the leaf frame `<native NAME>`. Invariants: the walker only reads (no lock, no
// allocation); a frame array the published pointers point into stays mapped (heap
// arenas are never unmapped), and every pointer is checked for null before use.
#pragma once

#include <atomic>

#include "vm/object.h"

namespace spindle::vm {

extern constinit thread_local std::atomic<const CallFrame*> tlsProfBase;
extern constinit thread_local std::atomic<const CallFrame*> tlsProfTop;
extern constinit thread_local std::atomic<const ObjNative*> tlsProfNative;

inline void profPublish(const CallFrame* base, const CallFrame* top) {
  tlsProfBase.store(base, std::memory_order_release);
  tlsProfTop.store(top, std::memory_order_release);
}
inline void profPublishTop(const CallFrame* top) { tlsProfTop.store(top, std::memory_order_release); }

// Clears the published top when VM::run returns.
class ProfRunScope {
 public:
  ProfRunScope() = default;
  ~ProfRunScope() { tlsProfTop.store(nullptr, std::memory_order_release); }
  ProfRunScope(const ProfRunScope&) = delete;
  ProfRunScope& operator=(const ProfRunScope&) = delete;
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
