// hostcall.cc: the host call's cached main fiber (VM::call from a host thread).
//
// Design. A host call runs its callee on a main fiber whose G the host thread drives
// through Sched::runMain. Allocating that fiber (object, value stack, frame array: about
// 2.4 KB of heap) takes a P, hence a runMain of its own, and makes every call garbage.
// Instead the VM keeps the main fiber of the last host call that returned normally, as
// Lua keeps its lua_State: the next host call sets it up again on the host thread, without
// a P, and a host call that allocates nothing in Lox allocates nothing at all.
//
// Invariants.
//   - At most one fiber is kept (hostFiberCache_); a host thread takes it with an
//     exchange, so two host threads never share it (the second one makes a new fiber).
//   - A kept fiber stays in hostFibers_, a root scanned under handlesLock_: the fiber, its
//     stack and frame arrays stay alive. Its stack's contents are reported only by its G
//     (the arrays are noscan) and no G has it while it is kept: stackTop is 0 then, and
//     the values left above it are never read.
//   - Only a fiber whose call returned normally (Done: no frame, no open upvalue, no
//     pending operation) under RunStatus::Ok (its G exited) is kept: a deadlocked or
//     ended host run may leave its G parked or running.
//   - The kept fiber's body holds one reference (the host's); reuse adds the G's
//     (makeHostMain). A late release by the previous G's exit path is one more atomic
//     decrement of refs_ and touches nothing else.
//   - A fiber leaves hostFibers_ only through the erase under handlesLock_ (VM::call's
//     end, unrootHostFiber), and nothing reads the ObjFiber after it: the host thread
//     holds no P, so a cycle whose root scan follows the erase may free the fiber before
//     the next instruction. Its body (C++ memory, counted by refs_) is read before.
//   - Setting up the stack needs no barrier: the callee and arguments are held by the
//     caller's roots (handles) for the whole call, and the stack is reported by the G
//     once it exists (runMain publishes the writes under sched.lock). result and thrown,
//     which the fiber's trace reads concurrently, are written through writeBarrier.
#include "vm/fiber.h"
#include "vm/vm.h"

#include <algorithm>
#include <mutex>

namespace spindle::vm {

void FiberBody::resetForReuse() {
  // clear(), not assignment: the strings and vectors keep their capacity.
  error.message.clear();
  error.trace.clear();
  pendingError.clear();
  hasPendingError = false;
  handlers.clear();
  nestedError.message.clear();
  nestedError.trace.clear();
  budgetLeft = 0;
  interrupted = false;
  pending = Pending::None;
  parkStep = runtime::Step::yield();
  waitChannel = nullptr;
  cases.clear();
  selectOperands = 0;
  foreignArgc = 0;
  pathTarget = Value::nil();
  g_ = nullptr;
}

ObjFiber* VM::reuseHostFiber(Value callee, const Value* args, int argc) {
  ObjFiber* fiber = hostFiberCache_.exchange(nullptr, std::memory_order_acq_rel);
  if (fiber == nullptr) return nullptr;
  if (static_cast<std::uint64_t>(argc) + 1 > fiber->stack->capacity) {
    // Too small for these arguments: back to the cache for a later call (or dropped).
    ObjFiber* none = nullptr;
    if (!hostFiberCache_.compare_exchange_strong(none, fiber, std::memory_order_acq_rel)) {
      unrootHostFiber(fiber);
    }
    return nullptr;
  }
  fiber->body->resetForReuse();
  writeBarrier(fiber, &fiber->result, Value::nil());
  writeBarrier(fiber, &fiber->thrown, Value::undefined());
  fiber->frameCount = 0;
  fiber->state = FiberState::Ready;
  fiber->preempt = &preempt_;  // until it runs as a G
  fiber->request = false;
  Value* s = fiber->stack->data();
  stackStore(&s[0], callee);
  for (int i = 0; i < argc; ++i) stackStore(&s[1 + i], args[i]);
  fiber->stackTop = static_cast<std::uint32_t>(argc) + 1;
  return fiber;
}

bool VM::keepHostFiber(ObjFiber* fiber) {
  if (fiber->state != FiberState::Done || fiber->frameCount != 0 ||
      loadPtr(&fiber->openUpvalues) != nullptr || fiber->done != nullptr) {
    return false;
  }
  fiber->stackTop = 0;
  ObjFiber* none = nullptr;
  return hostFiberCache_.compare_exchange_strong(none, fiber, std::memory_order_acq_rel);
}

void VM::dropHostFiber() {
  ObjFiber* fiber = hostFiberCache_.exchange(nullptr, std::memory_order_acq_rel);
  if (fiber != nullptr) unrootHostFiber(fiber);
}

void VM::unrootHostFiber(ObjFiber* fiber) {
  // The body is read while the fiber is a root: once it is out of hostFibers_, nothing
  // holds it (this thread has no P, so a cycle may run to its sweep at any moment), and a
  // read of fiber->body after the erase may find the slot freed (0xdeadbeef under
  // clobberfree). The body is C++ memory, counted by its references, not by the collector.
  FiberBody* body = fiber->body;
  {
    std::lock_guard<std::mutex> lk(handlesLock_);
    std::erase(hostFibers_, fiber);
  }
  body->release();
}

}  // namespace spindle::vm
