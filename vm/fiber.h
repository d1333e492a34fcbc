// fiber.h: FiberBody, a Lox fiber as a G of the VM's scheduler (runtime/g.h).
//
// Design. Every ObjFiber has one FiberBody (C++ memory: the runtime's G, Select and
// sudog live outside the GC'd heap). The scheduler calls run(g, budget), which resumes
// the interpreter (VM::run) and turns its answer into a Step:
//   - Yield: budget spent or g->preempt seen at a safepoint (calls, OP_LOOP);
//   - Park: a channel operation, a select or sleep() must wait; the runtime recorded the
//     park commit in g and the body holds the step; when the G runs again, resume()
//     completes the operation (pushes the received value, or raises `send on closed
//     channel`; a join pushes the joined fiber's result or raises its error) before the
//     interpreter continues;
//   - Exit: the fiber returned or failed. A fiber a spawn expression started (it has a
//     done channel) goes to VM::fiberEnded: its error waits for join() and its done
//     channel is closed. Any other failed spawned fiber reports its error to the host's
//     onFiberError if set (only it ends), else to the VM (VM::fiberFailed), which ends
//     the program's host call. Once the VM is dying (~VM), run() exits at
//     once (finishing a pending channel or select operation, never a foreign call).
// gc(): the native only records the request; run() calls runtime::gcCollect() after the
// interpreter returned, with the fiber's state fully saved (a true safepoint). So do
// freeOSMemory(), gcverify(), gccensus() and gcpath(obj) (gcinspect.cc); the last two
// then store their answer into the native's result slot (the top of the fiber's stack).
//
// traceStack (called only while the G is paused) reports the fiber object, every live
// stack slot (below stackTop), each frame's closure, the open upvalues, and a received
// element not yet pushed (g->sud.elem once a sender handed it over, or the winning
// select case's element: read under the channels' locks). Values this fiber sends are
// shaded before they leave (the hybrid barrier's rule for writing into another G's
// stack), and so are a spawned call's callee and arguments.
//
// Stack shrinking (Go's shrinkstack; runtime/g.h, mgcmark.cc). Stacks and frame arrays
// grow by doubling while the fiber runs (VM::ensureStack/ensureFrames). When a scan finds
// less than a quarter of either in use (wantsStackShrink: for the value stack, the most
// any frame reserved, maxStack above its arguments), the runtime later calls shrinkStack
// with the G paused and gcscanlock held, on a thread with a P: in execute() before the
// fiber resumes, or from the collector's shrink queue for a fiber parked for good. It
// halves the array (VM::shrinkStack, never below the initial sizes) through the same
// move as growth (VM::moveStack), which rebases the open upvalues under their locks, so
// fibers holding closures over this stack never write the old array, nor keep a value
// read from it, after their upvalue moved (upvalueGet retries). Nothing else reads a paused fiber's stack or frames without the
// scan lock (a deadlocked host call's trace takes it).
//
// Ownership. A spawned fiber's body is owned by its G and deleted in exited/abandoned.
// A host call's body is shared by the host and the G (refs = 2): whichever lets go last
// deletes it (a deadlocked main G stays parked until ~Sched abandons it). A nested
// fiber (a native calling back into the VM) has a body with no G, deleted by its caller.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "runtime/g.h"
#include "runtime/select.h"
#include "vm/vm.h"

namespace spindle::vm {

// A try statement's handler (error.cc): where an error raised while it is open resumes.
struct ErrorHandler {
  std::uint32_t frameCount;  // the try's frame is frames[frameCount - 1]
  std::uint32_t stackTop;    // the error value goes to this slot (the try's local count)
  const std::uint8_t* catchIp;
};

class FiberBody final : public runtime::GBody {
 public:
  // Foreign: a foreign call the interpreter left undone on a host M that is not this
  // fiber's host's (Sched::onOtherHostM); the G yields with needWorkerM and resume()
  // makes the call (foreignArgc arguments above the callee on the stack) on a worker M.
  enum class Pending : std::uint8_t {
    None, Send, Recv, Select, Sleep, Yield, Gc, FreeOSMemory, GcVerify, GcCensus, GcPath, WaitFinalizers, Foreign,
    ForInRecv, Join,
    Import  // an import waiting for its module's loader fiber (module.cc)
  };

  FiberBody(VM* vm, ObjFiber* fiber, int refs) : vm_(vm), fiber_(fiber), refs_(refs) {
    vm_->bodyMade();
  }

  runtime::Step run(runtime::G* g, std::uint32_t budget) override;
  void exited(runtime::G*) override { release(); }
  void abandoned(runtime::G*) override { release(); }
  void traceStack(runtime::G* g, void (*visit)(void* ctx, void** slot), void* ctx) override;
  // traceStack's pointers named "fiber N frame f() slot i" (N: the G's goid), less
  // pathTarget: gcpath's argument is no root of the answer.
  bool traceStackLabelled(runtime::G* g, runtime::LabelVisitFn visit, void* ctx) override;
  bool wantsStackShrink(runtime::G*) override { return VM::stackShrink(fiber_).any(); }
  void shrinkStack(runtime::G*) override { vm_->shrinkStack(fiber_); }
  const void* owner() const override { return vm_; }

  // Drops one reference; deletes the body at zero.
  void release() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // For natives: the interpreter returns (Park if parks(), else Yield) right after the call.
  void request(Pending p) {
    pending = p;
    fiber_->request = true;
  }
  // The pending operations whose native recorded a park commit (returned in parkStep).
  bool parks() const { return pending == Pending::Sleep || pending == Pending::WaitFinalizers; }

  // Completes a pending operation when the G runs again; false after recording an error.
  bool resume();

  ObjFiber* fiber() const { return fiber_; }
  runtime::G* g() const { return g_; }
  void setG(runtime::G* g) { g_ = g; }
  bool spawned = false;
  // The main fiber of a host call: shared by the host thread and the G (two refs).
  void makeHostMain() {
    hostMain_ = true;
    refs_.fetch_add(1, std::memory_order_relaxed);
  }
  // A host call's main fiber kept for the next host call (hostcall.cc): its G exited, the
  // host's reference stays; every per-run field returns to a new body's value.
  void resetForReuse();

  // The fiber's error (written by the fiber's M; read by the host after the G exited).
  RuntimeErrorInfo error;
  std::string pendingError;  // VM::raise from a native
  bool hasPendingError = false;
  // The open try handlers, innermost last (error.cc; only the M running the fiber).
  std::vector<ErrorHandler> handlers;
  // The error of the last nested VM::call that failed (a throw's value is in
  // ObjFiber::thrown): a native failing with its message passes it on, value and trace.
  RuntimeErrorInfo nestedError;

  // The safepoints left of the budget when VM::run returned (step accounting), and
  // whether the fiber failed by an interrupt or a limit (VM::failInterrupted): such a
  // failure ends only its fiber, never reported as a spawned fiber's error.
  std::int64_t budgetLeft = 0;
  bool interrupted = false;

  // The pending operation (only the M running the G touches these).
  Pending pending = Pending::None;
  runtime::Step parkStep = runtime::Step::yield();
  ObjChannel* waitChannel = nullptr;  // Send/Recv/Join: the channel (Join: the joined fiber's done)
  runtime::Select sel;
  std::vector<runtime::SelectCase> cases;
  std::uint32_t selectOperands = 0;  // stack slots the SELECT operands take
  int foreignArgc = 0;               // Foreign: the call's argument count
  // GcPath: gcpath's argument, from the native to the safepoint that walks for it. Kept
  // alive by traceStack (a cycle may run while the walk waits for the world), left out by
  // traceStackLabelled.
  Value pathTarget = Value::nil();

 private:
  // traceStack's body: ptr(p, name) for every pointer the fiber holds (pathTarget too
  // when withPathTarget), name(out) naming its slot.
  template <typename Ptr>
  void forEachStackRef(runtime::G* g, bool withPathTarget, const Ptr& ptr);
  ~FiberBody() { vm_->bodyGone(); }  // release(): the body's last access to its VM
  VM* vm_;
  ObjFiber* fiber_;
  runtime::G* g_ = nullptr;
  bool hostMain_ = false;
  std::atomic<int> refs_;
};

// The fiber running on this thread (natives find their caller here).
ObjFiber* currentFiber();
void setCurrentFiber(ObjFiber* f);

}  // namespace spindle::vm
