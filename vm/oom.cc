// oom.cc: out of memory as a runtime error of the code that allocated.
//
// Design. The runtime throws runtime::OutOfMemory (runtime/oom.h) where an allocation
// cannot be satisfied; the C++ library throws std::bad_alloc (a string built in a
// std::string). VM::run catches both around the interpreter (VM::interpret, which saves its
// state before every instruction that allocates, so the fiber's frames and stack are
// exact when the exception leaves it; a try block inside the loop would cost every
// instruction) and calls failOutOfMemory, so the fiber fails with "Out of memory." at the
// instruction that allocated: a try block catches it as an Error, uncaught it ends the program like any
// runtime error (exit 70, output flushed), and the host and other Vms go on.
// Natives that a host defines report it the same way (Vm::hostNative).
//
// Invariants: the error is recorded with the fiber's state saved (recordError's trace);
// building the Error instance needs the heap that may have just run out: it may use the
// heap's reserve arena (runtime::HeapReserveScope); if that fails too, the error stays uncaught (the try handlers of the fiber are dropped), never a
// second exception out of the interpreter.
#include <new>

#include "runtime/arena.h"
#include "vm/fiber.h"
#include "vm/vm.h"

namespace spindle::vm {

RunStatus VM::run(ObjFiber* fiber, std::int64_t budget) {
  for (;;) {
    try {
      LimitScope limited(this);  // memlimit.cc: allocations past memoryLimit may throw here
      return interpret(fiber, budget);
    } catch (const std::bad_alloc&) {
      // Caught: the fiber is Running at its handler, and interpret goes on from there.
      if (!failOutOfMemory(fiber)) return RunStatus::Exit;
    }
  }
}

bool VM::failOutOfMemory(ObjFiber* fiber) {
  recordError(fiber, "Out of memory.");
  // The heap's reserve arena (runtime/arena.h) may hold the Error.
  runtime::HeapReserveScope reserve;
  try {
    return catchError(fiber);
  } catch (const std::bad_alloc&) {
    fiber->body->handlers.clear();
    fiber->state = FiberState::Failed;
    closeUpvalues(fiber, 0);
    return false;
  }
}

}  // namespace spindle::vm
