// interpreter.cc: the bytecode interpreter loop (clox/Wren style: one switch).
//
// run(fiber, budget) resumes a fiber. The hot state lives in locals: `ip` into the
// current function's code, `sp` (next free stack slot), `slots` (frame slot 0), the
// constants. Everything is written back to the fiber (SAVE) before anything that can
// observe it: calls, errors, yielding, returning. After a call or anything that may
// grow the stack, the locals are reloaded from the fiber (LOAD).
//
// Safepoints: calls (once the callee's frame is pushed, so resuming enters it) and
// OP_LOOP (after the jump) decrement `budget` and check the VM's preemption flag;
// when either says so, the fiber's state is saved and run returns Yield, to resume
// exactly there on the next run.
//
// Inline caches (object.h InlineCache, one per property instruction): GET_PROPERTY and
// INVOKE cache (shape, field slot) or (shape, method); SET_PROPERTY caches (shape, slot)
// for stores to existing fields and (shape, slot, next shape) for adding a field. Since
// a shape belongs to exactly one class and methods are fixed once a class is built, a
// shape hit is the whole check. SUPER_INVOKE and GET_SUPER key on the superclass's root
// shape.
#include <cmath>

#include "lang/opcodes.h"
#include "vm/ffi.h"
#include "vm/vm.h"

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
  f.ip = 0;
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
        *calleeSlot = b->receiver;
        return callClosure(fiber, b->method, argc);
      }
      case ObjKind::Class: {
        auto* k = as<ObjClass>(callee);
        *calleeSlot = Value::object(newInstance(k));
        if (isKind(k->initializer, ObjKind::Closure)) {
          return callClosure(fiber, as<ObjClosure>(k->initializer), argc);
        }
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
          recordError(fiber, hasPendingError_ ? std::move(pendingError_) : "Native function failed.");
          hasPendingError_ = false;
          return false;
        }
        // The native may have grown nothing of this fiber, but re-derive the slot anyway.
        fiber->stack->data()[fiber->stackTop - argc - 1] = result;
        fiber->stackTop -= static_cast<std::uint32_t>(argc);
        return true;
      }
      case ObjKind::ForeignFn: {
        Value result = Value::nil();
        if (!ffi::call(*this, as<ObjForeignFn>(callee), argc, calleeSlot + 1, &result)) {
          recordError(fiber, std::move(pendingError_));
          hasPendingError_ = false;
          return false;
        }
        fiber->stack->data()[fiber->stackTop - argc - 1] = result;
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
  auto arity = [&](int want) {
    if (argc == want) return true;
    recordError(fiber, fmt::format("Expected {} arguments but got {}.", want, argc));
    return false;
  };
  Value result = Value::nil();
  if (isKind(receiver, ObjKind::List)) {
    auto* l = as<ObjList>(receiver);
    if (name == pushString_) {
      if (!arity(1)) return false;
      listPush(l, calleeSlot[1]);
    } else if (name == popString_) {
      if (!arity(0)) return false;
      if (l->count == 0) {
        recordError(fiber, "Can't pop from an empty list.");
        return false;
      }
      result = l->items->data()[--l->count];
      writeBarrier(l->items, &l->items->data()[l->count], Value::nil());
    } else if (name == lenString_) {
      if (!arity(0)) return false;
      result = Value::number(l->count);
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
      recordError(fiber, std::move(pendingError_));
      hasPendingError_ = false;
      return false;
    }
  } else {
    recordError(fiber, "Only instances have methods.");
    return false;
  }
  *calleeSlot = result;
  fiber->stackTop -= static_cast<std::uint32_t>(argc);
  return true;
}

RunStatus VM::run(ObjFiber* fiber, std::int64_t budget) {
  if (fiber->state == FiberState::Ready) {
    fiber->state = FiberState::Running;
    const int argc = static_cast<int>(fiber->stackTop) - 1;
    if (!callValue(fiber, fiber->stack->data()[0], argc)) return RunStatus::Exit;
    if (fiber->frameCount == 0) {  // a native or a class without init: already done
      fiber->result = fiber->stack->data()[0];
      fiber->stackTop = 0;
      fiber->state = FiberState::Done;
      return RunStatus::Exit;
    }
  }

  CallFrame* frame;
  ObjFunction* fn;
  ObjClosure* closure;
  const std::uint8_t* ip;
  Value* stackBase;
  Value* slots;
  Value* sp;
  Value* constants;
  bool wide = false;

#define LOAD()                                                  \
  do {                                                          \
    frame = &fiber->frames->frames()[fiber->frameCount - 1];    \
    closure = frame->closure;                                   \
    fn = closure->function;                                     \
    ip = fn->code + frame->ip;                                  \
    stackBase = fiber->stack->data();                           \
    slots = stackBase + frame->base;                            \
    sp = stackBase + fiber->stackTop;                           \
    constants = fn->constants->data();                          \
  } while (0)
#define SAVE()                                                        \
  do {                                                                \
    frame->ip = static_cast<std::uint32_t>(ip - fn->code);            \
    fiber->stackTop = static_cast<std::uint32_t>(sp - stackBase);     \
  } while (0)
#define INDEX() (wide ? (ip += 4, lang::readU32(ip - 4)) : std::uint32_t{*ip++})
#define JUMP_OPERAND() (ip += 4, lang::readU32(ip - 4))
#define PUSH(v) (*sp++ = (v))
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
#define SAFEPOINT()                                                              \
  do {                                                                           \
    if (--budget <= 0 || preempt_.load(std::memory_order_relaxed)) [[unlikely]] { \
      preempt_.store(false, std::memory_order_relaxed);                          \
      SAVE();                                                                    \
      return RunStatus::Yield;                                                   \
    }                                                                            \
  } while (0)
#define NUMBER_OP(op)                                                        \
  do {                                                                       \
    if (!PEEK(0).isNumber() || !PEEK(1).isNumber()) [[unlikely]]             \
      ERROR("Operands must be numbers.");                                    \
    double b = POP().asNumber();                                             \
    sp[-1] = op;                                                             \
  } while (0)

  LOAD();
  for (;;) {
    OpCode op = static_cast<OpCode>(*ip++);
    if (op == OpCode::WIDE) [[unlikely]] {
      wide = true;
      op = static_cast<OpCode>(*ip++);
    } else {
      wide = false;
    }
    switch (op) {
      case OpCode::CONSTANT: PUSH(constants[INDEX()]); break;
      case OpCode::NIL: PUSH(Value::nil()); break;
      case OpCode::TRUE: PUSH(Value::boolean(true)); break;
      case OpCode::FALSE: PUSH(Value::boolean(false)); break;
      case OpCode::POP: --sp; break;
      case OpCode::GET_LOCAL: PUSH(slots[INDEX()]); break;
      case OpCode::SET_LOCAL: slots[INDEX()] = PEEK(0); break;
      case OpCode::GET_GLOBAL: {
        const std::uint32_t g = INDEX();
        Value v = globals_[g];
        if (v.isUndefined()) [[unlikely]]
          ERROR("Undefined variable '{}'.", globalNames_.name(g));
        PUSH(v);
        break;
      }
      case OpCode::DEFINE_GLOBAL: globals_[INDEX()] = POP(); break;
      case OpCode::SET_GLOBAL: {
        const std::uint32_t g = INDEX();
        if (globals_[g].isUndefined()) [[unlikely]]
          ERROR("Undefined variable '{}'.", globalNames_.name(g));
        globals_[g] = PEEK(0);
        break;
      }
      case OpCode::GET_UPVALUE: PUSH(*closure->upvalues()[INDEX()]->location); break;
      case OpCode::SET_UPVALUE: {
        ObjUpvalue* u = closure->upvalues()[INDEX()];
        writeBarrier(u, u->location, PEEK(0));
        break;
      }
      case OpCode::GET_PROPERTY: {
        ObjString* name = as<ObjString>(constants[INDEX()]);
        InlineCache& ic = fn->ics()[INDEX()];
        Value receiver = PEEK(0);
        if (!isKind(receiver, ObjKind::Instance)) [[unlikely]]
          ERROR("Only instances have properties.");
        auto* in = as<ObjInstance>(receiver);
        if (ic.shape == in->shape && ic.slot != InlineCache::kNoField) [[likely]] {
          sp[-1] = in->fields[ic.slot];
          break;
        }
        Value method;
        if (ic.shape != in->shape) {
          const std::int64_t slot = in->shape->find(name);
          if (slot >= 0) {
            ic = {in->shape, static_cast<std::uint32_t>(slot), Value::nil(), nullptr};
            sp[-1] = in->fields[slot];
            break;
          }
          if (!findMethod(in->klass, name, &method)) ERROR("Undefined property '{}'.", name->view());
          ic = {in->shape, InlineCache::kNoField, method, nullptr};
        } else {
          method = ic.method;
        }
        sp[-1] = Value::object(newBoundMethod(receiver, as<ObjClosure>(method)));
        break;
      }
      case OpCode::SET_PROPERTY: {
        ObjString* name = as<ObjString>(constants[INDEX()]);
        InlineCache& ic = fn->ics()[INDEX()];
        Value receiver = PEEK(1);
        if (!isKind(receiver, ObjKind::Instance)) [[unlikely]]
          ERROR("Only instances have fields.");
        auto* in = as<ObjInstance>(receiver);
        Value v = PEEK(0);
        if (ic.shape == in->shape) [[likely]] {
          if (ic.transition == nullptr) {
            writeBarrier(in, &in->fields[ic.slot], v);
            sp[-2] = v;
            --sp;
            break;
          }
          if (ic.slot < in->capacity) {
            writeBarrier(in, &in->fields[ic.slot], v);
            in->shape = ic.transition;
            sp[-2] = v;
            --sp;
            break;
          }
        }
        const Shape* before = in->shape;
        const std::int64_t slot = before->find(name);
        if (slot >= 0) {
          ic = {before, static_cast<std::uint32_t>(slot), Value::nil(), nullptr};
          writeBarrier(in, &in->fields[slot], v);
        } else {
          const Shape* after = addField(in, name, v);
          ic = {before, before->count, Value::nil(), after};
        }
        sp[-2] = v;
        --sp;
        break;
      }
      case OpCode::GET_SUPER: {
        ObjString* name = as<ObjString>(constants[INDEX()]);
        InlineCache& ic = fn->ics()[INDEX()];
        auto* superclass = as<ObjClass>(POP());
        Value method;
        if (ic.shape == superclass->rootShape) {
          method = ic.method;
        } else {
          if (!findMethod(superclass, name, &method)) ERROR("Undefined property '{}'.", name->view());
          ic = {superclass->rootShape, InlineCache::kNoField, method, nullptr};
        }
        sp[-1] = Value::object(newBoundMethod(sp[-1], as<ObjClosure>(method)));
        break;
      }
      case OpCode::EQUAL: {
        Value b = POP();
        sp[-1] = Value::boolean(sp[-1] == b);
        break;
      }
      case OpCode::NOT_EQUAL: {
        Value b = POP();
        sp[-1] = Value::boolean(!(sp[-1] == b));
        break;
      }
      case OpCode::GREATER: NUMBER_OP(Value::boolean(sp[-1].asNumber() > b)); break;
      case OpCode::GREATER_EQUAL: NUMBER_OP(Value::boolean(!(sp[-1].asNumber() < b))); break;
      case OpCode::LESS: NUMBER_OP(Value::boolean(sp[-1].asNumber() < b)); break;
      case OpCode::LESS_EQUAL: NUMBER_OP(Value::boolean(!(sp[-1].asNumber() > b))); break;
      case OpCode::ADD: {
        Value b = PEEK(0), a = PEEK(1);
        if (a.isNumber() && b.isNumber()) {
          --sp;
          sp[-1] = Value::number(a.asNumber() + b.asNumber());
        } else if (isKind(a, ObjKind::String) && isKind(b, ObjKind::String)) {
          ObjString* s = concat(as<ObjString>(a), as<ObjString>(b));
          --sp;
          sp[-1] = Value::object(s);
        } else {
          ERROR("Operands must be two numbers or two strings.");
        }
        break;
      }
      case OpCode::SUBTRACT: NUMBER_OP(Value::number(sp[-1].asNumber() - b)); break;
      case OpCode::MULTIPLY: NUMBER_OP(Value::number(sp[-1].asNumber() * b)); break;
      case OpCode::DIVIDE: NUMBER_OP(Value::number(sp[-1].asNumber() / b)); break;
      case OpCode::MODULO: NUMBER_OP(Value::number(std::fmod(sp[-1].asNumber(), b))); break;
      case OpCode::NOT: sp[-1] = Value::boolean(sp[-1].isFalsey()); break;
      case OpCode::NEGATE:
        if (!PEEK(0).isNumber()) ERROR("Operand must be a number.");
        sp[-1] = Value::number(-sp[-1].asNumber());
        break;
      case OpCode::PRINT: {
        printBuffer_.clear();
        toString(POP(), printBuffer_, 0);
        printBuffer_ += '\n';
        write(printBuffer_);
        break;
      }
      case OpCode::JUMP: {
        const std::uint32_t d = JUMP_OPERAND();
        ip += d;
        break;
      }
      case OpCode::JUMP_IF_FALSE: {
        const std::uint32_t d = JUMP_OPERAND();
        if (PEEK(0).isFalsey()) ip += d;
        break;
      }
      case OpCode::LOOP: {
        const std::uint32_t d = JUMP_OPERAND();
        ip -= d;
        SAFEPOINT();
        break;
      }
      case OpCode::CALL: {
        const int argc = static_cast<int>(INDEX());
        Value callee = PEEK(argc);
        SAVE();
        FAIL_IF_NOT(callValue(fiber, callee, argc));
        LOAD();
        SAFEPOINT();  // after the call is made: resuming starts in the callee
        break;
      }
      case OpCode::INVOKE: {
        ObjString* name = as<ObjString>(constants[INDEX()]);
        const int argc = static_cast<int>(INDEX());
        InlineCache& ic = fn->ics()[INDEX()];
        Value receiver = PEEK(argc);
        SAVE();
        if (isKind(receiver, ObjKind::Instance)) [[likely]] {
          auto* in = as<ObjInstance>(receiver);
          if (ic.shape == in->shape) [[likely]] {
            if (ic.slot == InlineCache::kNoField) {
              FAIL_IF_NOT(callClosure(fiber, as<ObjClosure>(ic.method), argc));
            } else {
              Value field = in->fields[ic.slot];
              sp[-1 - argc] = field;
              FAIL_IF_NOT(callValue(fiber, field, argc));
            }
          } else {
            const std::int64_t slot = in->shape->find(name);
            if (slot >= 0) {
              ic = {in->shape, static_cast<std::uint32_t>(slot), Value::nil(), nullptr};
              Value field = in->fields[slot];
              sp[-1 - argc] = field;
              FAIL_IF_NOT(callValue(fiber, field, argc));
            } else {
              Value method;
              if (!findMethod(in->klass, name, &method)) ERROR("Undefined property '{}'.", name->view());
              ic = {in->shape, InlineCache::kNoField, method, nullptr};
              FAIL_IF_NOT(callClosure(fiber, as<ObjClosure>(method), argc));
            }
          }
        } else {
          FAIL_IF_NOT(invokeBuiltin(fiber, receiver, name, argc));
        }
        LOAD();
        SAFEPOINT();
        break;
      }
      case OpCode::SUPER_INVOKE: {
        ObjString* name = as<ObjString>(constants[INDEX()]);
        const int argc = static_cast<int>(INDEX());
        InlineCache& ic = fn->ics()[INDEX()];
        auto* superclass = as<ObjClass>(POP());
        Value method;
        if (ic.shape == superclass->rootShape) {
          method = ic.method;
        } else {
          if (!findMethod(superclass, name, &method)) ERROR("Undefined property '{}'.", name->view());
          ic = {superclass->rootShape, InlineCache::kNoField, method, nullptr};
        }
        SAVE();
        FAIL_IF_NOT(callClosure(fiber, as<ObjClosure>(method), argc));
        LOAD();
        SAFEPOINT();
        break;
      }
      case OpCode::CLOSURE: {
        auto* function = as<ObjFunction>(constants[INDEX()]);
        ObjClosure* c = newClosure(function);
        const auto& descs = function->proto->upvalues;
        SAVE();
        for (std::uint32_t i = 0; i < c->upvalueCount; ++i) {
          ObjUpvalue* u = descs[i].isLocal ? captureUpvalue(fiber, frame->base + descs[i].index)
                                           : closure->upvalues()[descs[i].index];
          c->upvalues()[i] = u;  // initialising an unreachable object
        }
        PUSH(Value::object(c));
        break;
      }
      case OpCode::CLOSE_UPVALUE:
        closeUpvalues(fiber, static_cast<std::uint32_t>(sp - 1 - stackBase));
        --sp;
        break;
      case OpCode::RETURN: {
        Value result = POP();
        closeUpvalues(fiber, frame->base);
        if (--fiber->frameCount == 0) {
          fiber->result = result;
          fiber->stackTop = 0;
          fiber->state = FiberState::Done;
          return RunStatus::Exit;
        }
        sp = slots;
        PUSH(result);
        fiber->stackTop = static_cast<std::uint32_t>(sp - stackBase);
        LOAD();
        break;
      }
      case OpCode::CLASS: PUSH(Value::object(newClass(as<ObjString>(constants[INDEX()])))); break;
      case OpCode::INHERIT: {
        Value super = PEEK(1);
        if (!isKind(super, ObjKind::Class)) ERROR("Superclass must be a class.");
        auto* from = as<ObjClass>(super);
        auto* to = as<ObjClass>(PEEK(0));
        for (std::uint32_t i = 0; i < from->methods->capacity; ++i) {
          MethodEntry& e = from->methods->entries()[i];
          if (e.key != nullptr) setMethod(to, e.key, e.value);
        }
        to->fieldHint = from->fieldHint;
        --sp;
        break;
      }
      case OpCode::METHOD: {
        ObjString* name = as<ObjString>(constants[INDEX()]);
        setMethod(as<ObjClass>(PEEK(1)), name, PEEK(0));
        --sp;
        break;
      }
      case OpCode::LIST: {
        const std::uint32_t n = INDEX();
        ObjList* l = newList(n, sp - n);
        sp -= n;
        PUSH(Value::object(l));
        break;
      }
      case OpCode::GET_INDEX: {
        Value index = PEEK(0), target = PEEK(1);
        if (!isKind(target, ObjKind::List)) ERROR("Only lists can be indexed.");
        auto* l = as<ObjList>(target);
        if (!index.isNumber() || std::trunc(index.asNumber()) != index.asNumber())
          ERROR("List index must be an integer.");
        const double i = index.asNumber();
        if (i < 0 || i >= l->count) ERROR("List index out of range.");
        --sp;
        sp[-1] = l->items->data()[static_cast<std::uint32_t>(i)];
        break;
      }
      case OpCode::SET_INDEX: {
        Value v = PEEK(0), index = PEEK(1), target = PEEK(2);
        if (!isKind(target, ObjKind::List)) ERROR("Only lists can be indexed.");
        auto* l = as<ObjList>(target);
        if (!index.isNumber() || std::trunc(index.asNumber()) != index.asNumber())
          ERROR("List index must be an integer.");
        const double i = index.asNumber();
        if (i < 0 || i >= l->count) ERROR("List index out of range.");
        writeBarrier(l->items, &l->items->data()[static_cast<std::uint32_t>(i)], v);
        sp -= 2;
        sp[-1] = v;
        break;
      }
      case OpCode::SPAWN: ERROR("spawn is not supported yet.");
      case OpCode::SELECT:
      case OpCode::JUMP_TABLE: ERROR("select is not supported yet.");
      case OpCode::WIDE: ERROR("Malformed bytecode: WIDE after WIDE.");
    }
  }
#undef LOAD
#undef SAVE
#undef INDEX
#undef JUMP_OPERAND
#undef PUSH
#undef POP
#undef PEEK
#undef ERROR
#undef FAIL_IF_NOT
#undef SAFEPOINT
#undef NUMBER_OP
}

}  // namespace spindle::vm
