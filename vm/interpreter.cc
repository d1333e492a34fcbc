// interpreter.cc: the bytecode interpreter loop (clox/Wren style: one switch).
//
// run(fiber, budget) resumes a fiber. The hot state lives in locals: `ip` into the
// current function's code, `sp` (next free stack slot), `slots` (frame slot 0), the
// constants. Everything is written back to the fiber (SAVE) before anything that can
// observe it: calls, errors, yielding, returning. After a call or anything that may
// grow the stack, the locals are reloaded from the fiber (LOAD).
//
// Safepoints: calls (once the callee's frame is pushed, so resuming enters it) and
// OP_LOOP (after the jump) decrement `budget` and check the G's preemption flag
// (g->preempt; the VM's own flag for a fiber run outside a G); when either says so, the
// fiber's state is saved and run returns Yield, to resume exactly there on the next run.
// Blocking (a channel op, a select, sleep()) saves the state with the operands still on
// the stack and returns Park; FiberBody::resume completes the operation on the next run.
//
// Shared words (globals, instance fields and shapes, list counts, storage and elements,
// upvalue locations and closed values, inline-cache records) are read with loadValue /
// loadPtr and written through the barrier (barrier.h): fibers run in parallel. Every
// index is bounded by the capacity of the storage actually loaded.
//
// Inline caches (object.h InlineCache, one immutable record per property instruction,
// replaced whole on a miss by updateIC): GET_PROPERTY and
// INVOKE cache (shape, field slot) or (shape, method); SET_PROPERTY caches (shape, slot)
// for stores to existing fields and (shape, slot, next shape) for adding a field. Since
// a shape belongs to exactly one class and methods are fixed once a class is built, a
// shape hit is the whole check. SUPER_INVOKE and GET_SUPER key on the superclass's root
// shape.
#include <cmath>

#include "lang/opcodes.h"
#include "runtime/throw.h"
#include "vm/ffi.h"
#include "vm/fiber.h"
#include "vm/vm.h"

// Dispatch: 1 = threaded (computed goto, GCC's labels as values: each handler ends with
// its own indirect jump), 0 = one switch.
#ifndef SPINDLE_THREADED_DISPATCH
#define SPINDLE_THREADED_DISPATCH 1
#endif

namespace spindle::vm {

using lang::OpCode;

bool VM::callClosure(ObjFiber* fiber, ObjClosure* closure, int argc) {
  ObjFunction* fn = closure->function;
  if (static_cast<std::uint32_t>(argc) != fn->arity) {
    recordError(fiber, fmt::format("Expected {} arguments but got {}.", fn->arity, argc));
    return false;
  }
  if (!ensureFrames(fiber)) {
    recordError(fiber, "Stack overflow.");
    return false;
  }
  ensureStack(fiber, fn->maxStack);
  CallFrame& f = fiber->frames->frames()[fiber->frameCount++];
  f.closure = closure;
  f.ip = fn->code;
  f.constants = fn->constants->data();
  f.base = fiber->stackTop - static_cast<std::uint32_t>(argc) - 1;
  return true;
}

bool VM::callValue(ObjFiber* fiber, Value callee, int argc) {
  if (callee.isObj()) {
    Value* calleeSlot = fiber->stack->data() + fiber->stackTop - argc - 1;
    switch (callee.asObj()->kind) {
      case ObjKind::Closure: return callClosure(fiber, as<ObjClosure>(callee), argc);
      case ObjKind::BoundMethod: {
        auto* b = as<ObjBoundMethod>(callee);
        stackStore(calleeSlot, b->receiver);
        return callClosure(fiber, b->method, argc);
      }
      case ObjKind::Class: {
        auto* k = as<ObjClass>(callee);
        stackStore(calleeSlot, Value::object(newInstance(k)));
        const Value init = loadValue(&k->initializer);
        if (isKind(init, ObjKind::Closure)) return callClosure(fiber, as<ObjClosure>(init), argc);
        if (argc != 0) {
          recordError(fiber, fmt::format("Expected 0 arguments but got {}.", argc));
          return false;
        }
        return true;
      }
      case ObjKind::Native: {
        auto* n = as<ObjNative>(callee);
        if (n->arity >= 0 && argc != n->arity) {
          recordError(fiber, fmt::format("Expected {} arguments but got {}.", n->arity, argc));
          return false;
        }
        Value result = Value::nil();
        // The arguments stay on the stack (rooted) during the call.
        if (!n->fn(*this, n->hostIndex, argc, calleeSlot + 1, &result)) {
          recordNativeError(fiber);
          return false;
        }
        // The native may have grown nothing of this fiber, but re-derive the slot anyway.
        stackStore(fiber->stack->data() + fiber->stackTop - argc - 1, result);
        fiber->stackTop -= static_cast<std::uint32_t>(argc);
        return true;
      }
      case ObjKind::ForeignFn: {
        Value result = Value::nil();
        if (!ffi::call(*this, as<ObjForeignFn>(callee), argc, calleeSlot + 1, &result)) {
          recordNativeError(fiber);
          return false;
        }
        stackStore(fiber->stack->data() + fiber->stackTop - argc - 1, result);
        fiber->stackTop -= static_cast<std::uint32_t>(argc);
        return true;
      }
      default: break;
    }
  }
  recordError(fiber, "Can only call functions and classes.");
  return false;
}

bool VM::invokeBuiltin(ObjFiber* fiber, Value receiver, ObjString* name, int argc) {
  Value* calleeSlot = fiber->stack->data() + fiber->stackTop - argc - 1;
  auto arity = [&](int want) { return expectArgs(fiber, argc, want); };
  Value result = Value::nil();
  if (isKind(receiver, ObjKind::List)) {
    auto* l = as<ObjList>(receiver);
    if (name == pushString_) {
      if (!arity(1)) return false;
      listPush(l, calleeSlot[1]);
    } else if (name == popString_) {
      if (!arity(0)) return false;
      std::atomic_ref<std::uint32_t> countRef(l->count);
      const std::uint32_t count = countRef.load(std::memory_order_acquire);
      if (count == 0) {
        recordError(fiber, "Can't pop from an empty list.");
        return false;
      }
      ValueArray* items = loadPtr(&l->items);
      if (count <= items->capacity) {  // else a racing push replaced the storage: nil
        result = loadValue(&items->data()[count - 1]);
        writeBarrier(items, &items->data()[count - 1], Value::nil());
      }
      countRef.store(count - 1, std::memory_order_release);
    } else if (name == lenString_) {
      if (!arity(0)) return false;
      result = Value::number(std::atomic_ref<std::uint32_t>(l->count).load(std::memory_order_acquire));
    } else {
      recordError(fiber, fmt::format("Undefined property '{}'.", name->view()));
      return false;
    }
  } else if (isKind(receiver, ObjKind::String)) {
    if (name != lenString_) {
      recordError(fiber, fmt::format("Undefined property '{}'.", name->view()));
      return false;
    }
    if (!arity(0)) return false;
    result = Value::number(as<ObjString>(receiver)->length);
  } else if (ffi::isFfiObject(receiver)) {
    if (!ffi::invoke(*this, receiver, name, argc, calleeSlot + 1, &result)) {
      recordNativeError(fiber);
      return false;
    }
  } else {
    recordError(fiber, "Only instances have methods.");
    return false;
  }
  stackStore(calleeSlot, result);
  fiber->stackTop -= static_cast<std::uint32_t>(argc);
  return true;
}

RunStatus VM::run(ObjFiber* fiber, std::int64_t budget) {
  if (aborted(fiber)) [[unlikely]] {  // another fiber of this host call failed
    closeUpvalues(fiber, 0);
    fiber->state = FiberState::Failed;
    return RunStatus::Exit;
  }
  if (fiber->body->pending != FiberBody::Pending::None) {
    if (!fiber->body->resume()) return RunStatus::Exit;
  }

  if (fiber->state == FiberState::Ready) {
    fiber->state = FiberState::Running;
    const int argc = static_cast<int>(fiber->stackTop) - 1;
    if (!callValue(fiber, fiber->stack->data()[0], argc)) return RunStatus::Exit;
    if (fiber->frameCount == 0) {  // a native or a class without init: already done
      writeBarrier(fiber, &fiber->result, fiber->stack->data()[0]);
      fiber->stackTop = 0;
      fiber->state = FiberState::Done;
      return RunStatus::Exit;
    }
  }

  // The hot state. The running frame's closure and function are reached through `frame`
  // (frame->closure) where needed; the limits bound the call fast path.
  CallFrame* frame;
  const std::uint8_t* ip;
  Value* sp;
  Value* slots;
  const Value* constants;
  Value* stackBase;
  const CallFrame* frameLimit;  // one past the frame array
  const Value* stackLimit;      // one past the value stack
  bool wide = false;

// Reads the fiber's state into the locals (after anything that may have pushed a frame,
// grown the stack or the frame array).
#define LOAD()                                                          \
  do {                                                                  \
    CallFrame* frames_ = fiber->frames->frames();                       \
    frame = &frames_[fiber->frameCount - 1];                            \
    frameLimit = frames_ + fiber->frames->capacity;                     \
    ip = frame->ip;                                                     \
    constants = frame->constants;                                       \
    stackBase = fiber->stack->data();                                   \
    stackLimit = stackBase + fiber->stack->capacity;                    \
    slots = stackBase + frame->base;                                    \
    sp = stackBase + fiber->stackTop;                                   \
  } while (0)
// Writes the locals back: the running frame's ip, the frame count and the stack top. The
// fast paths (call, return) keep frameCount and stackTop only in `frame` and `sp`.
#define SAVE()                                                                          \
  do {                                                                                  \
    frame->ip = ip;                                                                     \
    fiber->frameCount = static_cast<std::uint32_t>(frame - fiber->frames->frames()) + 1; \
    fiber->stackTop = static_cast<std::uint32_t>(sp - stackBase);                       \
  } while (0)
#define FN() (frame->closure->function)
// The call fast path: a closure called with its arity, whose frame and stack needs fit
// the fiber's current arrays (nothing to allocate, no error possible), is entered right
// here: the caller's ip is saved in its frame, the callee's frame is pushed and the locals
// are pointed at it, without the round trip through callClosure and LOAD. Anything else
// takes the general path (SAVE, callValue / callClosure, LOAD).
#define CAN_ENTER(f, argc)                                                              \
  (static_cast<std::uint32_t>(argc) == (f)->arity && frame + 1 < frameLimit &&          \
   static_cast<std::size_t>(stackLimit - sp) >= (f)->maxStack)
#define ENTER(c, f, argc)                                               \
  do {                                                                  \
    frame->ip = ip;                                                     \
    ++frame;                                                            \
    slots = sp - (argc) - 1;                                            \
    frame->closure = (c);                                               \
    frame->base = static_cast<std::uint32_t>(slots - stackBase);        \
    ip = (f)->code;                                                     \
    constants = (f)->constants->data();                                 \
    frame->constants = constants;                                       \
  } while (0)
#define INDEX() (wide ? (ip += 4, lang::readU32(ip - 4)) : std::uint32_t{*ip++})
#define JUMP_OPERAND() (ip += 4, lang::readU32(ip - 4))
#define PUSH(v) (stackStore(sp, (v)), ++sp)
#define POP() (*--sp)
#define PEEK(n) (sp[-1 - (n)])
#define ERROR(...)                                        \
  do {                                                    \
    SAVE();                                               \
    recordError(fiber, fmt::format(__VA_ARGS__));         \
    return RunStatus::Exit;                               \
  } while (0)
#define FAIL_IF_NOT(call) \
  do {                    \
    if (!(call)) return RunStatus::Exit; \
  } while (0)
#define SAFEPOINT()                                                             \
  do {                                                                          \
    if (--budget <= 0 || fiber->preempt->load(std::memory_order_relaxed)) [[unlikely]] { \
      fiber->preempt->store(false, std::memory_order_relaxed);                          \
      SAVE();                                                                   \
      return RunStatus::Yield;                                                  \
    }                                                                           \
  } while (0)
#define NUMBER_OP(op)                                                        \
  do {                                                                       \
    if (!PEEK(0).isNumber() || !PEEK(1).isNumber()) [[unlikely]]             \
      ERROR("Operands must be numbers.");                                    \
    double b = POP().asNumber();                                             \
    stackStore(sp - 1, op);                                                  \
  } while (0)
#if SPINDLE_THREADED_DISPATCH
  // One label per opcode; every handler ends by jumping through this table (NEXT).
  static const void* const kDispatch[] = {
#define SPINDLE_OPCODE_LABEL(name, shape) &&L_##name,
      SPINDLE_OPCODES(SPINDLE_OPCODE_LABEL)
#undef SPINDLE_OPCODE_LABEL
  };
#define CASE(name) L_##name
#define NEXT()                                                                      \
  do {                                                                              \
    wide = false;                                                                   \
    SPINDLE_DCHECK(*ip < lang::kOpCodeCount, "VM::run: bad opcode {}", int{*ip});  \
    goto* kDispatch[*ip++];                                                         \
  } while (0)
#else
#define CASE(name) case OpCode::name
#define NEXT() goto dispatch
#endif
// A comparison fused with POP_JUMP_IF_FALSE: pops both operands, jumps unless `cond`.
#define COMPARE_JUMP(cond)                                                   \
  do {                                                                       \
    const Value va = PEEK(1), vb = PEEK(0);                                  \
    if (!va.isNumber() || !vb.isNumber()) [[unlikely]]                       \
      ERROR("Operands must be numbers.");                                    \
    const double a = va.asNumber(), b = vb.asNumber();                       \
    const std::uint32_t d = JUMP_OPERAND();                                  \
    sp -= 2;                                                                 \
    if (!(cond)) ip += d;                                                    \
  } while (0)
// The same with a constant right operand, a number (the index operand, then the jump
// distance).
#define COMPARE_CONSTANT_JUMP(cond)                                          \
  do {                                                                       \
    const Value va = PEEK(0);                                                \
    const double b = constants[INDEX()].asNumber();                          \
    if (!va.isNumber()) [[unlikely]] ERROR("Operands must be numbers.");     \
    const double a = va.asNumber();                                          \
    const std::uint32_t d = JUMP_OPERAND();                                  \
    --sp;                                                                    \
    if (!(cond)) ip += d;                                                    \
  } while (0)

  LOAD();
#if SPINDLE_THREADED_DISPATCH
  NEXT();
  {
    {
#else
  for (;;) {
  dispatch:
    wide = false;
    OpCode op = static_cast<OpCode>(*ip++);
  reswitch:
    switch (op) {
#endif
      CASE(CONSTANT): PUSH(constants[INDEX()]); NEXT();
      CASE(NIL): PUSH(Value::nil()); NEXT();
      CASE(TRUE): PUSH(Value::boolean(true)); NEXT();
      CASE(FALSE): PUSH(Value::boolean(false)); NEXT();
      CASE(POP): --sp; NEXT();
      // A local may be an open upvalue written by another fiber: atomic accesses.
      CASE(GET_LOCAL): PUSH(stackLoad(&slots[INDEX()])); NEXT();
      CASE(SET_LOCAL): stackStore(&slots[INDEX()], PEEK(0)); NEXT();
      CASE(GET_GLOBAL): {
        const std::uint32_t g = INDEX();
        Value v = loadValue(&globalsData()[g]);
        if (v.isUndefined()) [[unlikely]]
          ERROR("Undefined variable '{}'.", globalNames_.name(g));
        PUSH(v);
        NEXT();
      }
      CASE(DEFINE_GLOBAL): writeBarrier(nullptr, &globalsData()[INDEX()], POP()); NEXT();
      CASE(SET_GLOBAL): {
        const std::uint32_t g = INDEX();
        Value* slot = &globalsData()[g];
        if (loadValue(slot).isUndefined()) [[unlikely]]
          ERROR("Undefined variable '{}'.", globalNames_.name(g));
        writeBarrier(nullptr, slot, PEEK(0));
        NEXT();
      }
      CASE(GET_UPVALUE):
        PUSH(upvalueGet(frame->closure->upvalues()[INDEX()]));
        NEXT();
      CASE(SET_UPVALUE): {
        upvalueSet(frame->closure->upvalues()[INDEX()], PEEK(0));
        NEXT();
      }
      CASE(GET_PROPERTY): {
        ObjString* name = as<ObjString>(constants[INDEX()]);
        const std::uint32_t icIndex = INDEX();
        ObjFunction* fn = FN();
        const InlineCache* ic = loadPtr(&fn->ics()[icIndex]);
        Value receiver = PEEK(0);
        if (!isKind(receiver, ObjKind::Instance)) [[unlikely]]
          ERROR("Only instances have properties.");
        auto* in = as<ObjInstance>(receiver);
        const Shape* shape = loadPtr(&in->shape);
        std::uint32_t cap;
        Value* fields = in->fields(&cap);
        if (ic != nullptr && ic->shape == shape) [[likely]] {
          if (ic->slot < cap) [[likely]] {
            stackStore(sp + (-1), loadValue(&fields[ic->slot]));
            NEXT();
          }
          if (ic->slot == InlineCache::kNoField) {
            stackStore(sp + (-1), Value::object(newBoundMethod(receiver, as<ObjClosure>(ic->method))));
            NEXT();
          }
        }
        const std::int64_t slot = shape->find(name);
        if (slot >= 0) {
          updateIC(fn, icIndex, {shape, static_cast<std::uint32_t>(slot), 0, Value::nil(), nullptr});
          // A racing add may have published the shape before this reader saw its storage.
          stackStore(sp + (-1), static_cast<std::uint32_t>(slot) < cap ? loadValue(&fields[slot]) : Value::nil());
          NEXT();
        }
        Value method;
        if (!findMethod(in->klass, name, &method)) ERROR("Undefined property '{}'.", name->view());
        updateIC(fn, icIndex, {shape, InlineCache::kNoField, 0, method, nullptr});
        stackStore(sp + (-1), Value::object(newBoundMethod(receiver, as<ObjClosure>(method))));
        NEXT();
      }
      CASE(SET_PROPERTY): {
        ObjString* name = as<ObjString>(constants[INDEX()]);
        const std::uint32_t icIndex = INDEX();
        ObjFunction* fn = FN();
        const InlineCache* ic = loadPtr(&fn->ics()[icIndex]);
        Value receiver = PEEK(1);
        if (!isKind(receiver, ObjKind::Instance)) [[unlikely]]
          ERROR("Only instances have fields.");
        auto* in = as<ObjInstance>(receiver);
        Value v = PEEK(0);
        const Shape* before = loadPtr(&in->shape);
        std::uint32_t cap;
        Value* fields = in->fields(&cap);
        if (ic != nullptr && ic->shape == before && ic->slot < cap) [[likely]] {
          writeBarrier(in, &fields[ic->slot], v);
          if (ic->transition != nullptr) storePtr(&in->shape, ic->transition);
          stackStore(sp + (-2), v);
          --sp;
          NEXT();
        }
        const std::int64_t slot = before->find(name);
        if (slot >= 0) {
          updateIC(fn, icIndex, {before, static_cast<std::uint32_t>(slot), 0, Value::nil(), nullptr});
          if (static_cast<std::uint32_t>(slot) < cap) writeBarrier(in, &fields[slot], v);
        } else {
          const Shape* after = addField(in, name, v);
          updateIC(fn, icIndex, {before, before->count, 0, Value::nil(), after});
        }
        stackStore(sp + (-2), v);
        --sp;
        NEXT();
      }
      CASE(GET_SUPER): {
        ObjString* name = as<ObjString>(constants[INDEX()]);
        const std::uint32_t icIndex = INDEX();
        ObjFunction* fn = FN();
        const InlineCache* ic = loadPtr(&fn->ics()[icIndex]);
        auto* superclass = as<ObjClass>(POP());
        Value method;
        if (ic != nullptr && ic->shape == superclass->rootShape) {
          method = ic->method;
        } else {
          if (!findMethod(superclass, name, &method)) ERROR("Undefined property '{}'.", name->view());
          updateIC(fn, icIndex, {superclass->rootShape, InlineCache::kNoField, 0, method, nullptr});
        }
        stackStore(sp + (-1), Value::object(newBoundMethod(PEEK(0), as<ObjClosure>(method))));
        NEXT();
      }
      CASE(EQUAL): {
        Value b = POP();
        stackStore(sp + (-1), Value::boolean(PEEK(0) == b));
        NEXT();
      }
      CASE(NOT_EQUAL): {
        Value b = POP();
        stackStore(sp + (-1), Value::boolean(!(PEEK(0) == b)));
        NEXT();
      }
      CASE(GREATER): NUMBER_OP(Value::boolean(PEEK(0).asNumber() > b)); NEXT();
      CASE(GREATER_EQUAL): NUMBER_OP(Value::boolean(!(PEEK(0).asNumber() < b))); NEXT();
      CASE(LESS): NUMBER_OP(Value::boolean(PEEK(0).asNumber() < b)); NEXT();
      CASE(LESS_EQUAL): NUMBER_OP(Value::boolean(!(PEEK(0).asNumber() > b))); NEXT();
      CASE(ADD): {
        Value b = PEEK(0), a = PEEK(1);
        if (a.isNumber() && b.isNumber()) {
          --sp;
          stackStore(sp + (-1), Value::number(a.asNumber() + b.asNumber()));
        } else if (isKind(a, ObjKind::String) && isKind(b, ObjKind::String)) {
          ObjString* s = concat(as<ObjString>(a), as<ObjString>(b));
          --sp;
          stackStore(sp + (-1), Value::object(s));
        } else {
          ERROR("Operands must be two numbers or two strings.");
        }
        NEXT();
      }
      CASE(SUBTRACT): NUMBER_OP(Value::number(PEEK(0).asNumber() - b)); NEXT();
      CASE(MULTIPLY): NUMBER_OP(Value::number(PEEK(0).asNumber() * b)); NEXT();
      CASE(DIVIDE): NUMBER_OP(Value::number(PEEK(0).asNumber() / b)); NEXT();
      CASE(MODULO): NUMBER_OP(Value::number(std::fmod(PEEK(0).asNumber(), b))); NEXT();
      CASE(NOT): stackStore(sp - 1, Value::boolean(PEEK(0).isFalsey())); NEXT();
      CASE(NEGATE):
        if (!PEEK(0).isNumber()) ERROR("Operand must be a number.");
        stackStore(sp + (-1), Value::number(-PEEK(0).asNumber()));
        NEXT();
      CASE(PRINT): {
        std::string line;
        toString(POP(), line, 0);
        line += '\n';
        write(line);
        NEXT();
      }
      CASE(JUMP): {
        const std::uint32_t d = JUMP_OPERAND();
        ip += d;
        NEXT();
      }
      CASE(JUMP_IF_FALSE): {
        const std::uint32_t d = JUMP_OPERAND();
        if (PEEK(0).isFalsey()) ip += d;
        NEXT();
      }
      CASE(LOOP): {
        const std::uint32_t d = JUMP_OPERAND();
        ip -= d;
        SAFEPOINT();
        NEXT();
      }
      CASE(CALL): {
        const int argc = static_cast<int>(INDEX());
        Value callee = PEEK(argc);
        if (isKind(callee, ObjKind::Closure)) [[likely]] {
          auto* c = as<ObjClosure>(callee);
          const ObjFunction* f = c->function;
          if (CAN_ENTER(f, argc)) [[likely]] {
            ENTER(c, f, argc);
            SAFEPOINT();
            NEXT();
          }
        }
        SAVE();
        FAIL_IF_NOT(callValue(fiber, callee, argc));
        LOAD();
        if (fiber->request) [[unlikely]] {
          // A native asked to park (sleep) or to yield (yield(), gc()): state is saved.
          return fiber->body->pending == FiberBody::Pending::Sleep ? RunStatus::Park : RunStatus::Yield;
        }
        SAFEPOINT();  // after the call is made: resuming starts in the callee
        NEXT();
      }
      CASE(INVOKE): {
        ObjString* name = as<ObjString>(constants[INDEX()]);
        const int argc = static_cast<int>(INDEX());
        const std::uint32_t icIndex = INDEX();
        ObjFunction* fn = FN();
        const InlineCache* ic = loadPtr(&fn->ics()[icIndex]);
        Value receiver = PEEK(argc);
        if (isKind(receiver, ObjKind::Instance) && ic != nullptr && ic->slot == InlineCache::kNoField &&
            ic->shape == loadPtr(&as<ObjInstance>(receiver)->shape)) [[likely]] {
          auto* m = as<ObjClosure>(ic->method);
          const ObjFunction* f = m->function;
          if (CAN_ENTER(f, argc)) [[likely]] {
            ENTER(m, f, argc);
            SAFEPOINT();
            NEXT();
          }
        }
        SAVE();
        if (isKind(receiver, ObjKind::Instance)) [[likely]] {
          auto* in = as<ObjInstance>(receiver);
          const Shape* shape = loadPtr(&in->shape);
          std::uint32_t cap;
          Value* fields = in->fields(&cap);
          if (ic != nullptr && ic->shape == shape && ic->slot == InlineCache::kNoField) [[likely]] {
            FAIL_IF_NOT(callClosure(fiber, as<ObjClosure>(ic->method), argc));
          } else {
            const std::int64_t slot = shape->find(name);
            if (slot >= 0) {
              updateIC(fn, icIndex, {shape, static_cast<std::uint32_t>(slot), 0, Value::nil(), nullptr});
              Value field = static_cast<std::uint32_t>(slot) < cap ? loadValue(&fields[slot]) : Value::nil();
              stackStore(sp + (-1 - argc), field);
              FAIL_IF_NOT(callValue(fiber, field, argc));
            } else {
              Value method;
              if (!findMethod(in->klass, name, &method)) ERROR("Undefined property '{}'.", name->view());
              updateIC(fn, icIndex, {shape, InlineCache::kNoField, 0, method, nullptr});
              FAIL_IF_NOT(callClosure(fiber, as<ObjClosure>(method), argc));
            }
          }
        } else if (isKind(receiver, ObjKind::Channel)) {
          switch (invokeChannel(fiber, as<ObjChannel>(receiver), name, argc)) {
            case OpResult::Ok: break;
            case OpResult::Error: return RunStatus::Exit;
            case OpResult::Park: return RunStatus::Park;  // state saved, operands on the stack
          }
        } else {
          FAIL_IF_NOT(invokeBuiltin(fiber, receiver, name, argc));
        }
        LOAD();
        SAFEPOINT();
        NEXT();
      }
      CASE(SUPER_INVOKE): {
        ObjString* name = as<ObjString>(constants[INDEX()]);
        const int argc = static_cast<int>(INDEX());
        const std::uint32_t icIndex = INDEX();
        ObjFunction* fn = FN();
        const InlineCache* ic = loadPtr(&fn->ics()[icIndex]);
        auto* superclass = as<ObjClass>(POP());
        Value method;
        if (ic != nullptr && ic->shape == superclass->rootShape) {
          method = ic->method;
        } else {
          if (!findMethod(superclass, name, &method)) ERROR("Undefined property '{}'.", name->view());
          updateIC(fn, icIndex, {superclass->rootShape, InlineCache::kNoField, 0, method, nullptr});
        }
        auto* m = as<ObjClosure>(method);
        const ObjFunction* f = m->function;
        if (CAN_ENTER(f, argc)) [[likely]] {
          ENTER(m, f, argc);
          SAFEPOINT();
          NEXT();
        }
        SAVE();
        FAIL_IF_NOT(callClosure(fiber, as<ObjClosure>(method), argc));
        LOAD();
        SAFEPOINT();
        NEXT();
      }
      CASE(CLOSURE): {
        auto* function = as<ObjFunction>(constants[INDEX()]);
        ObjClosure* c = newClosure(function);
        const auto& descs = function->proto->upvalues;
        SAVE();
        for (std::uint32_t i = 0; i < c->upvalueCount; ++i) {
          ObjUpvalue* u = descs[i].isLocal ? captureUpvalue(fiber, frame->base + descs[i].index)
                                           : frame->closure->upvalues()[descs[i].index];
          c->upvalues()[i] = u;  // initialising an unreachable object
        }
        PUSH(Value::object(c));
        NEXT();
      }
      CASE(CLOSE_UPVALUE):
        closeUpvalues(fiber, static_cast<std::uint32_t>(sp - 1 - stackBase));
        --sp;
        NEXT();
      CASE(RETURN): {
        Value result = POP();
        // Open upvalues are sorted by slot, highest first: only the head needs a look.
        const ObjUpvalue* open = fiber->openUpvalues;
        if (open != nullptr && open->slot >= frame->base) [[unlikely]] closeUpvalues(fiber, frame->base);
        if (frame == fiber->frames->frames()) [[unlikely]] {
          writeBarrier(fiber, &fiber->result, result);
          fiber->frameCount = 0;
          fiber->stackTop = 0;
          fiber->state = FiberState::Done;
          return RunStatus::Exit;
        }
        sp = slots;
        PUSH(result);
        // The caller's frame sits just below (returning allocates nothing and never
        // replaces the frame array or the stack).
        --frame;
        ip = frame->ip;
        constants = frame->constants;
        slots = stackBase + frame->base;
        NEXT();
      }
      CASE(CLASS): PUSH(Value::object(newClass(as<ObjString>(constants[INDEX()])))); NEXT();
      CASE(INHERIT): {
        Value super = PEEK(1);
        if (!isKind(super, ObjKind::Class)) ERROR("Superclass must be a class.");
        auto* from = as<ObjClass>(super);
        auto* to = as<ObjClass>(PEEK(0));
        for (std::uint32_t i = 0; i < from->methods->capacity; ++i) {
          MethodEntry& e = from->methods->entries()[i];
          if (e.key != nullptr) setMethod(to, e.key, e.value);
        }
        to->fieldHint = std::atomic_ref<std::uint32_t>(from->fieldHint).load(std::memory_order_relaxed);
        --sp;
        NEXT();
      }
      CASE(METHOD): {
        ObjString* name = as<ObjString>(constants[INDEX()]);
        setMethod(as<ObjClass>(PEEK(1)), name, PEEK(0));
        --sp;
        NEXT();
      }
      CASE(LIST): {
        const std::uint32_t n = INDEX();
        ObjList* l = newList(n, sp - n);
        sp -= n;
        PUSH(Value::object(l));
        NEXT();
      }
      CASE(GET_INDEX): {
        Value index = PEEK(0), target = PEEK(1);
        if (!isKind(target, ObjKind::List)) ERROR("Only lists can be indexed.");
        auto* l = as<ObjList>(target);
        if (!index.isNumber() || std::trunc(index.asNumber()) != index.asNumber())
          ERROR("List index must be an integer.");
        const double i = index.asNumber();
        const std::uint32_t count = std::atomic_ref<std::uint32_t>(l->count).load(std::memory_order_acquire);
        if (i < 0 || i >= count) ERROR("List index out of range.");
        ValueArray* items = loadPtr(&l->items);
        const auto k = static_cast<std::uint32_t>(i);
        --sp;
        stackStore(sp + (-1), k < items->capacity ? loadValue(&items->data()[k]) : Value::nil());  // racing push
        NEXT();
      }
      CASE(SET_INDEX): {
        Value v = PEEK(0), index = PEEK(1), target = PEEK(2);
        if (!isKind(target, ObjKind::List)) ERROR("Only lists can be indexed.");
        auto* l = as<ObjList>(target);
        if (!index.isNumber() || std::trunc(index.asNumber()) != index.asNumber())
          ERROR("List index must be an integer.");
        const double i = index.asNumber();
        const std::uint32_t count = std::atomic_ref<std::uint32_t>(l->count).load(std::memory_order_acquire);
        if (i < 0 || i >= count) ERROR("List index out of range.");
        ValueArray* items = loadPtr(&l->items);
        const auto k = static_cast<std::uint32_t>(i);
        if (k < items->capacity) writeBarrier(items, &items->data()[k], v);
        sp -= 2;
        stackStore(sp + (-1), v);
        NEXT();
      }
      CASE(SPAWN): {
        const int argc = static_cast<int>(INDEX());
        SAVE();
        FAIL_IF_NOT(spawn(fiber, PEEK(argc), sp - argc, argc));
        sp -= argc;
        stackStore(sp + (-1), Value::nil());
        NEXT();
      }
      CASE(SELECT): {
        const std::uint32_t n = INDEX();
        const std::uint8_t flags = *ip++;
        const std::uint8_t* kinds = ip;
        ip += n;
        SAVE();
        switch (select(fiber, n, flags, kinds)) {
          case OpResult::Ok: break;
          case OpResult::Error: return RunStatus::Exit;
          case OpResult::Park: return RunStatus::Park;  // FiberBody::resume pushes the results
        }
        LOAD();
        NEXT();
      }
      CASE(JUMP_TABLE): {
        const std::uint32_t m = INDEX();
        const std::uint8_t* table = ip;
        const std::uint8_t* end = ip + std::size_t{m} * lang::kJumpBytes;
        const Value v = POP();
        const auto i = static_cast<std::uint32_t>(v.asNumber());
        if (!v.isNumber() || i >= m) ERROR("Malformed bytecode: jump table index out of range.");
        ip = end - lang::readU32(table + std::size_t{i} * lang::kJumpBytes);
        NEXT();
      }
      // Superinstructions (lang/opcodes.h): each behaves as its pair in sequence.
      CASE(SET_LOCAL_POP): {
        Value* slot = &slots[INDEX()];
        stackStore(slot, POP());
        NEXT();
      }
      CASE(SET_GLOBAL_POP): {
        const std::uint32_t g = INDEX();
        Value* slot = &globalsData()[g];
        if (loadValue(slot).isUndefined()) [[unlikely]]
          ERROR("Undefined variable '{}'.", globalNames_.name(g));
        writeBarrier(nullptr, slot, POP());
        NEXT();
      }
      CASE(SET_UPVALUE_POP): {
        ObjUpvalue* u = frame->closure->upvalues()[INDEX()];
        upvalueSet(u, POP());
        NEXT();
      }
      CASE(POP_JUMP_IF_FALSE): {
        const std::uint32_t d = JUMP_OPERAND();
        if (POP().isFalsey()) ip += d;
        NEXT();
      }
      CASE(JUMP_UNLESS_EQUAL): {
        const std::uint32_t d = JUMP_OPERAND();
        sp -= 2;
        if (!(sp[0] == sp[1])) ip += d;
        NEXT();
      }
      CASE(JUMP_UNLESS_NOT_EQUAL): {
        const std::uint32_t d = JUMP_OPERAND();
        sp -= 2;
        if (sp[0] == sp[1]) ip += d;
        NEXT();
      }
      CASE(JUMP_UNLESS_GREATER): COMPARE_JUMP(a > b); NEXT();
      CASE(JUMP_UNLESS_GREATER_EQUAL): COMPARE_JUMP(!(a < b)); NEXT();
      CASE(JUMP_UNLESS_LESS): COMPARE_JUMP(a < b); NEXT();
      CASE(JUMP_UNLESS_LESS_EQUAL): COMPARE_JUMP(!(a > b)); NEXT();
      CASE(JUMP_UNLESS_EQUAL_CONSTANT): {
        const Value b = constants[INDEX()];
        const std::uint32_t d = JUMP_OPERAND();
        if (!(POP() == b)) ip += d;
        NEXT();
      }
      CASE(JUMP_UNLESS_NOT_EQUAL_CONSTANT): {
        const Value b = constants[INDEX()];
        const std::uint32_t d = JUMP_OPERAND();
        if (POP() == b) ip += d;
        NEXT();
      }
      CASE(JUMP_UNLESS_GREATER_CONSTANT): COMPARE_CONSTANT_JUMP(a > b); NEXT();
      CASE(JUMP_UNLESS_GREATER_EQUAL_CONSTANT): COMPARE_CONSTANT_JUMP(!(a < b)); NEXT();
      CASE(JUMP_UNLESS_LESS_CONSTANT): COMPARE_CONSTANT_JUMP(a < b); NEXT();
      CASE(JUMP_UNLESS_LESS_EQUAL_CONSTANT): COMPARE_CONSTANT_JUMP(!(a > b)); NEXT();
      // The constant operand of these is a number (the compiler folds only numbers; the
      // verifier checks it); a string or other left operand is an error as with ADD.
      CASE(ADD_CONSTANT): {
        const double b = constants[INDEX()].asNumber();
        const Value a = PEEK(0);
        if (!a.isNumber()) [[unlikely]] ERROR("Operands must be two numbers or two strings.");
        stackStore(sp - 1, Value::number(a.asNumber() + b));
        NEXT();
      }
      CASE(SUBTRACT_CONSTANT): {
        const double b = constants[INDEX()].asNumber();
        const Value a = PEEK(0);
        if (!a.isNumber()) [[unlikely]] ERROR("Operands must be numbers.");
        stackStore(sp - 1, Value::number(a.asNumber() - b));
        NEXT();
      }
      CASE(ADD_TO_LOCAL): {
        Value* slot = &slots[INDEX()];
        const Value a = stackLoad(slot);
        const double b = constants[INDEX()].asNumber();
        if (!a.isNumber()) [[unlikely]] ERROR("Operands must be two numbers or two strings.");
        stackStore(slot, Value::number(a.asNumber() + b));
        NEXT();
      }
      CASE(ADD_TO_GLOBAL): {
        const std::uint32_t g = INDEX();
        Value* slot = &globalsData()[g];
        const Value a = loadValue(slot);
        const double b = constants[INDEX()].asNumber();
        if (!a.isNumber()) [[unlikely]] {
          if (a.isUndefined()) ERROR("Undefined variable '{}'.", globalNames_.name(g));
          ERROR("Operands must be two numbers or two strings.");
        }
        writeBarrier(nullptr, slot, Value::number(a.asNumber() + b));
        NEXT();
      }
      // WIDE: the next instruction's index operands are 4 bytes (INDEX reads `wide`).
      CASE(WIDE):
        if (wide) ERROR("Malformed bytecode: WIDE after WIDE.");
        wide = true;
#if SPINDLE_THREADED_DISPATCH
        goto* kDispatch[*ip++];
#else
        op = static_cast<OpCode>(*ip++);
        goto reswitch;
      default: SPINDLE_FATAL("VM::run: bad opcode {}", static_cast<int>(op));
#endif
    }
  }
#undef LOAD
#undef SAVE
#undef CASE
#undef NEXT
#undef FN
#undef CAN_ENTER
#undef ENTER
#undef INDEX
#undef JUMP_OPERAND
#undef PUSH
#undef POP
#undef PEEK
#undef ERROR
#undef FAIL_IF_NOT
#undef SAFEPOINT
#undef NUMBER_OP
#undef COMPARE_JUMP
#undef COMPARE_CONSTANT_JUMP
}

}  // namespace spindle::vm
