// error.cc: catchable errors (throw, try/catch/finally) and the built-in class Error.
//
// Design (Lua's ldo.c without setjmp). Each fiber has a stack of handler records
// (FiberBody::handlers, C++ memory touched only by the M running the fiber): OP_TRY
// pushes {frame count, stack top, catch ip} for its frame, OP_END_TRY pops it (a `return`
// inside a try leaves through the try's return path, which pops it and runs the finally
// block: UNWIND_TO, END_FINALLY; so a record never outlives its frame). An error, whether a runtime error of the VM or a native
// (recordError: message and trace, fiber Failed) or a thrown value (OP_THROW,
// OP_END_FINALLY), goes to the innermost record: unwind() pops it, closes the open upvalues
// at or above its stack top (closures other fibers hold keep the values, as when a frame
// returns), drops the frames above it, points its frame at the catch ip and pushes the
// error value where the handler's local lives. A runtime error arrives as a new Error
// instance {message, trace}; a thrown value as itself. With no record the error is
// uncaught: the fiber fails (upvalues closed, state Failed, body->error holds the message
// and trace the host prints), exactly as before try existed.
//
// Invariants: records are nested as the frames are (a record's frame count and stack
// top are at most the fiber's); a record's stack top is a slot its frame already reserved
// (the try statement's local count), so the pushed error needs no stack growth; the
// fiber's frames and stack stay consistent for traceStack at every step (unwinding
// allocates nothing after truncating, and building an Error happens before it). Records
// live only in their fiber: an error never crosses to another fiber's handlers (a
// spawned fiber's uncaught error ends the host call, VM::fiberFailed; a nested fiber of
// VM::call reports it to its native as a failed call, and when the native fails with
// that call's message, a thrown value is passed on to the calling fiber through
// ObjFiber::thrown, so a try around the native catches the value itself).
//
// Error(message) builds an instance whose `trace` is the constructing fiber's trace; an
// uncaught thrown instance with a `message` and a list `trace` prints those; any other
// uncaught value prints "Uncaught <value>." with the trace where it was thrown.
#include "runtime/throw.h"
#include "vm/fiber.h"
#include "vm/vm.h"

namespace spindle::vm {

namespace {

// Error.init(message): this.message = message, this.trace = the caller's trace.
bool errorInit(VM& vm, int, const Value* args, Value*) {
  ObjFiber* fiber = currentFiber();
  vm.setField(args[0], "message", args[1]);
  vm.setField(args[0], "trace", Value::object(vm.newTrace(vm.traceOf(fiber))));
  return true;
}

}  // namespace

void VM::registerErrorClass() {
  setRoot(errorClass_, newHostClass("Error", {{"init", 1, errorInit}}));
  setGlobal(globalSlot("Error"), Value::object(errorClass_));
}

ObjList* VM::newTrace(const std::vector<std::string>& trace) {
  // Allocated inside one native call or error path (no safepoint): the list and its
  // strings need no root until stored.
  ObjList* list = newList(0, nullptr);
  for (const std::string& line : trace) listPush(list, Value::object(intern(line)));
  return list;
}

bool VM::catchError(ObjFiber* fiber) {
  FiberBody* body = fiber->body;
  SPINDLE_DCHECK(fiber->state == FiberState::Failed, "catchError: fiber state {} is not Failed",
                 static_cast<int>(fiber->state));
  if (body->handlers.empty()) {
    closeUpvalues(fiber, 0);
    return false;
  }
  const Value thrown = loadValue(&fiber->thrown);
  if (!thrown.isUndefined()) {  // passed on from a nested call (recordNativeError)
    writeBarrier(fiber, &fiber->thrown, Value::undefined());
    unwind(fiber, thrown);
    return true;
  }
  unwind(fiber, Value::object(newError(body->error)));
  return true;
}

ObjInstance* VM::newError(const RuntimeErrorInfo& error) {
  ObjInstance* e = newInstance(errorClass_);
  storeField(e, intern("message"), Value::object(intern(error.message)));
  storeField(e, intern("trace"), Value::object(newTrace(error.trace)));
  return e;
}

bool VM::throwValue(ObjFiber* fiber, Value v) {
  FiberBody* body = fiber->body;
  if (!body->handlers.empty()) {
    unwind(fiber, v);
    return true;
  }
  body->error = errorOf(fiber, v).info;
  fiber->state = FiberState::Failed;
  writeBarrier(fiber, &fiber->thrown, v);
  closeUpvalues(fiber, 0);
  return false;
}

void VM::raiseValue(ObjFiber* fiber, Value v) {
  ValueError e = errorOf(fiber, v);
  recordError(fiber, std::move(e.info.message));
  if (e.fromValue) {
    // The value's trace (where it was made), then this fiber's.
    std::vector<std::string>& trace = fiber->body->error.trace;
    trace.insert(trace.begin(), e.info.trace.begin(), e.info.trace.end());
    capTrace(trace);
  }
  writeBarrier(fiber, &fiber->thrown, v);
}

VM::ValueError VM::errorOf(ObjFiber* fiber, Value v) {
  ValueError out;
  RuntimeErrorInfo& e = out.info;
  Value message, trace;
  if (getField(v, "message", &message) && getField(v, "trace", &trace) &&
      isKind(trace, ObjKind::List)) {
    e.message = isKind(message, ObjKind::String) ? std::string(as<ObjString>(message)->view())
                                                 : toString(message);
    e.trace.clear();
    auto* list = as<ObjList>(trace);
    const std::uint32_t count = listCount(list);
    ValueArray* items = loadPtr(&list->items);
    for (std::uint32_t i = 0; i < count && i < items->capacity; ++i) {
      e.trace.push_back(toString(loadValue(&items->data()[i])));
    }
    out.fromValue = true;
  } else {
    e.message = fmt::format("Uncaught {}.", toString(v));
    e.trace = traceOf(fiber);
  }
  return out;
}

void VM::unwind(ObjFiber* fiber, Value v) {
  FiberBody* body = fiber->body;
  const ErrorHandler h = body->handlers.back();
  body->handlers.pop_back();
  SPINDLE_DCHECK(h.frameCount >= 1 && h.frameCount <= fiber->frameCount,
                 "unwind: handler frame count {} outside the fiber's {} frames", h.frameCount,
                 fiber->frameCount);
  SPINDLE_DCHECK(h.stackTop <= fiber->stackTop && h.stackTop < fiber->stack->capacity,
                 "unwind: handler stack top {} beyond the fiber's {} (capacity {})", h.stackTop,
                 fiber->stackTop, fiber->stack->capacity);
  closeUpvalues(fiber, h.stackTop);
  fiber->frameCount = h.frameCount;
  fiber->frames->frames()[h.frameCount - 1].ip = h.catchIp;
  stackStore(fiber->stack->data() + h.stackTop, v);
  fiber->stackTop = h.stackTop + 1;
  fiber->state = FiberState::Running;
}

}  // namespace spindle::vm
