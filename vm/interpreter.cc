// interpreter.cc: the bytecode interpreter loop (threaded: the handlers are in
// interpreter_ops.inc, each ends with its own indirect jump through kDispatch).
//
// interpret(fiber, budget) resumes a fiber (VM::run, oom.cc, calls it). The hot state lives in locals: `ip` into the
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
// Out of memory: an allocation that fails throws (runtime/oom.h) through this function to
// VM::run (oom.cc), which has no access to the locals; so every instruction saves the
// state (SAVE) before it allocates, outside the paths that allocate nothing (the inline
// cache hits, numbers), and the fiber then fails exactly where it was.
//
// Errors: a handler that finds a runtime error records it (ERROR, FAIL_IF_NOT: state saved,
// recordError) and jumps to L_fail; THROW and END_FINALLY jump to L_throw. There the
// innermost try handler of the fiber resumes the loop (error.cc: catchError / throwValue
// unwind the frames and stack to it), or the fiber has failed and run returns Exit.
//
// Shared words (globals, instance fields and shapes, list counts, storage and elements,
// upvalue locations and closed values, inline-cache records) are read with loadValue /
// loadPtr and written through the barrier (barrier.h): fibers run in parallel. Every
// index is bounded by the capacity of the storage actually loaded.
//
// Inline caches (shape.h InlineCache, one immutable heap record per property instruction,
// replaced whole on a miss by updateIC; a handler reads the record's fields before it
// allocates anything, see shape.h): GET_PROPERTY and
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
#include "vm/lib.h"
#include "vm/prof.h"
#include "vm/vm.h"


namespace spindle::vm {

using lang::OpCode;

namespace {

// `a % b`: std::fmod (the result has a's sign, -0 included). Two integers below 2^53 take
// the integer remainder instead, which is the same value and an order of magnitude
// cheaper than the library's fmod (loops such as `i % 20` are common).
inline double numberMod(double a, double b) {
  constexpr double kExact = 0x1p53;
  if (a > -kExact && a < kExact && b > -kExact && b < kExact) {
    const auto ia = static_cast<std::int64_t>(a), ib = static_cast<std::int64_t>(b);
    if (static_cast<double>(ia) == a && static_cast<double>(ib) == b && ib != 0) {
      const std::int64_t r = ia % ib;
      return r == 0 ? std::copysign(0.0, a) : static_cast<double>(r);
    }
  }
  return std::fmod(a, b);
}

}  // namespace

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
        bool nativeOk;
        {
          const ProfNativeScope profNative(n);
          nativeOk = n->fn(*this, n->host, argc, calleeSlot + 1, &result);
        }
        if (!nativeOk) {
          recordNativeError(fiber);
          return false;
        }
        // The native may have grown nothing of this fiber, but re-derive the slot anyway.
        stackStore(fiber->stack->data() + fiber->stackTop - argc - 1, result);
        fiber->stackTop -= static_cast<std::uint32_t>(argc);
        return true;
      }
      case ObjKind::ForeignFn:
        if (fiber->body->g() != nullptr && runtime::Sched::onOtherHostM()) {
          // This thread must return to its host as soon as the host's own G exits, and a
          // foreign call may block for long: yield before the call, with the callee and
          // arguments left on the stack; the scheduler moves the G to a worker M, where
          // FiberBody::resume makes the call.
          fiber->body->foreignArgc = argc;
          fiber->body->request(FiberBody::Pending::Foreign);
          return true;
        }
        return callForeign(fiber, as<ObjForeignFn>(callee), argc);
      default: break;
    }
  }
  recordError(fiber, "Can only call functions and classes.");
  return false;
}

bool VM::callForeign(ObjFiber* fiber, ObjForeignFn* fn, int argc) {
  Value* calleeSlot = fiber->stack->data() + fiber->stackTop - argc - 1;
  Value result = Value::nil();
  if (!ffi::call(*this, fn, argc, calleeSlot + 1, &result)) {
    recordNativeError(fiber);
    return false;
  }
  stackStore(fiber->stack->data() + fiber->stackTop - argc - 1, result);
  fiber->stackTop -= static_cast<std::uint32_t>(argc);
  return true;
}

bool VM::invokeBuiltin(ObjFiber* fiber, Value receiver, ObjString* name, int argc,
                       ObjFunction* fn, std::uint32_t icIndex, const InlineCache* ic) {
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
      result = Value::number(listCount(l));
    } else {
      return invokeLibMethod(fiber, listMethods_, name, argc, fn, icIndex, ic);
    }
  } else if (isKind(receiver, ObjKind::Map)) {
    if (!invokeMap(fiber, as<ObjMap>(receiver), name, argc, calleeSlot + 1, &result)) return false;
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

bool VM::invokeLibMethod(ObjFiber* fiber, ObjClass* methods, ObjString* name, int argc,
                         ObjFunction* fn, std::uint32_t icIndex, const InlineCache* ic) {
  Value method;
  if (ic != nullptr && ic->shape == methods->rootShape) [[likely]] {
    method = ic->method;
  } else {
    if (!findMethod(methods, name, &method)) {
      recordError(fiber, fmt::format("Undefined property '{}'.", name->view()));
      return false;
    }
    updateIC(fn, icIndex, methods->rootShape, InlineCache::kNoField, method);
  }
  auto* n = as<ObjNative>(method);
  if (n->arity >= 0 && argc != n->arity && !expectArgs(fiber, argc, n->arity)) return false;
  // The receiver and the arguments stay on the stack (rooted) during the call.
  Value* receiverSlot = fiber->stack->data() + fiber->stackTop - argc - 1;
  Value result = Value::nil();
  bool nativeOk;
  {
    const ProfNativeScope profNative(n);
    nativeOk = n->fn(*this, n->host, argc, receiverSlot, &result);
  }
  if (!nativeOk) {
    recordNativeError(fiber);
    return false;
  }
  stackStore(fiber->stack->data() + fiber->stackTop - argc - 1, result);
  fiber->stackTop -= static_cast<std::uint32_t>(argc);
  return true;
}

bool VM::printValue(Value v) {
  std::string line;
  PrintPath path;
  if (!appendValue(v, line, path)) return false;
  line += '\n';
  write(line);
  return true;
}

RunStatus VM::interpret(ObjFiber* fiber, std::int64_t budget) {
  // The budget left at every return, for the step accounting (FiberBody::budgetLeft).
  struct BudgetOut {
    const std::int64_t& left;
    std::int64_t* out;
    ~BudgetOut() { *out = left; }
  } budgetOut{budget, &fiber->body->budgetLeft};
  const ProfRunScope profScope(fiber);  // vm/prof.h: the fiber the profilers walk
  if (interrupted(fiber)) [[unlikely]] return failInterrupted(fiber);  // interrupt.cc
  if (aborted(fiber)) [[unlikely]] {  // another fiber of this host call failed
    closeUpvalues(fiber, 0);
    fiber->state = FiberState::Failed;
    return RunStatus::Exit;
  }
  if (fiber->body->pending != FiberBody::Pending::None) {
    // A failed operation (send on a closed channel) may be caught by a try handler.
    if (!fiber->body->resume() && !catchError(fiber)) return RunStatus::Exit;
  }

  if (fiber->state == FiberState::Ready) {
    fiber->state = FiberState::Running;
    const int argc = static_cast<int>(fiber->stackTop) - 1;
    if (!callValue(fiber, fiber->stack->data()[0], argc)) {
      const bool caught = catchError(fiber);  // no frame yet: no handler either
      SPINDLE_DCHECK(!caught, "VM::run: a fiber's first call failed inside a try");
      return RunStatus::Exit;
    }
    // A foreign callee moving to a worker M first (resume makes the call there).
    if (fiber->body->pending == FiberBody::Pending::Foreign) return RunStatus::Yield;
  }
  if (fiber->state == FiberState::Running && fiber->frameCount == 0) {
    // A native or a class without init (or a foreign call resumed): already done.
    writeBarrier(fiber, &fiber->result, fiber->stack->data()[0]);
    fiber->stackTop = 0;
    fiber->state = FiberState::Done;
    return RunStatus::Exit;
  }

  // The hot state. The running frame's closure and function are reached through `frame`
  // (frame->closure) where needed; the limits bound the call fast path.
  CallFrame* frame;
  // `ip` and the dispatch table's address are the two words every handler uses: GCC's
  // allocator, left alone in a function this size, keeps ip in the frame (a load and a
  // store per instruction) and rematerialises the table's address before each jump, so on
  // x86-64 GCC both are pinned in callee-saved registers (a GNU explicit register variable;
  // the calls the handlers make preserve them). Elsewhere (clang, other targets) they are
  // plain locals: `register` is not C++17, and only GCC takes it, with an asm name, as an
  // extension.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SPINDLE_PINNED(decl, reg) register decl asm(reg)
#else
#define SPINDLE_PINNED(decl, reg) decl
#endif
  SPINDLE_PINNED(const std::uint8_t* ip, "r15");
  Value* sp;
  Value* slots;
  const Value* constants;
  Value* stackBase;
  const CallFrame* frameLimit;  // one past the frame array
  const Value* stackLimit;      // one past the value stack

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
#define JUMP_OPERAND() (ip += 4, lang::readU32(ip - 4))
#define PUSH(v) (stackStore(sp, (v)), ++sp)
#define POP() (*--sp)
#define PEEK(n) (sp[-1 - (n)])
// A runtime error: recorded with the state saved, then handed to L_fail.
#define ERROR(...)                                        \
  do {                                                    \
    SAVE();                                               \
    recordError(fiber, fmt::format(__VA_ARGS__));         \
    goto L_fail;                                          \
  } while (0)
#define FAIL_IF_NOT(call)      \
  do {                         \
    if (!(call)) goto L_fail;  \
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
  // One label per opcode; every handler ends by jumping through this table (NEXT). WIDE
  // jumps through the second one, to the handler's wide version (W_X, or L_BadWide for an
  // instruction without index operands, which WIDE never prefixes).
  static const void* const kDispatch[] = {
#define SPINDLE_OPCODE_LABEL(name, shape) &&L_##name,
      SPINDLE_OPCODES(SPINDLE_OPCODE_LABEL)
#undef SPINDLE_OPCODE_LABEL
  };
#define SPINDLE_WIDE_LABEL_None(name) &&L_BadWide
#define SPINDLE_WIDE_LABEL_Jump(name) &&L_BadWide
#define SPINDLE_WIDE_LABEL_Index1(name) &&W_##name
#define SPINDLE_WIDE_LABEL_Index2(name) &&W_##name
#define SPINDLE_WIDE_LABEL_Index3(name) &&W_##name
#define SPINDLE_WIDE_LABEL_IndexJump(name) &&W_##name
#define SPINDLE_WIDE_LABEL_Index2Jump(name) &&W_##name
#define SPINDLE_WIDE_LABEL_Select(name) &&W_##name
#define SPINDLE_WIDE_LABEL_JumpTable(name) &&W_##name
  static const void* const kDispatchWide[] = {
#define SPINDLE_OPCODE_WIDE_LABEL(name, shape) SPINDLE_WIDE_LABEL_##shape(name),
      SPINDLE_OPCODES(SPINDLE_OPCODE_WIDE_LABEL)
#undef SPINDLE_OPCODE_WIDE_LABEL
  };
  // The table's address, hidden from the optimiser (the empty asm) so it stays in a register
  // rather than being recomputed before each jump.
  SPINDLE_PINNED(const void* const* dispatch, "r14") = kDispatch;
  asm("" : "+r"(dispatch));
#undef SPINDLE_PINNED
#define NEXT()                                                                      \
  do {                                                                              \
    SPINDLE_DCHECK(*ip < lang::kOpCodeCount, "VM::run: bad opcode {}", int{*ip});  \
    goto* dispatch[*ip++];                                                          \
  } while (0)
// The operands of < <= > >= as numbers a and b such that `a op b` is the answer: two
// numbers themselves, two strings their bytewise order (compareStrings(x, y) against 0).
#define COMPARE_OPERANDS(va, vb, a, b)                                              \
  do {                                                                              \
    if (va.isNumber() && vb.isNumber()) [[likely]] {                                \
      a = va.asNumber();                                                            \
      b = vb.asNumber();                                                            \
    } else if (isKind(va, ObjKind::String) && isKind(vb, ObjKind::String)) {        \
      a = compareStrings(as<ObjString>(va), as<ObjString>(vb));                     \
      b = 0;                                                                        \
    } else {                                                                        \
      ERROR("Operands must be numbers.");                                           \
    }                                                                               \
  } while (0)
// A comparison: pops both operands, pushes `cond` (with a and b as COMPARE_OPERANDS).
#define COMPARE_OP(cond)                                                     \
  do {                                                                       \
    const Value va = PEEK(1), vb = PEEK(0);                                  \
    double a, b;                                                             \
    COMPARE_OPERANDS(va, vb, a, b);                                          \
    --sp;                                                                    \
    stackStore(sp - 1, Value::boolean(cond));                                \
  } while (0)
// A comparison fused with POP_JUMP_IF_FALSE: pops both operands, jumps unless `cond`.
#define COMPARE_JUMP(cond)                                                   \
  do {                                                                       \
    const Value va = PEEK(1), vb = PEEK(0);                                  \
    double a, b;                                                             \
    COMPARE_OPERANDS(va, vb, a, b);                                          \
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
// The same with a variable right operand `vb` (a global or a local, read by the handler).
#define COMPARE_VARIABLE_JUMP(vb, cond)                                      \
  do {                                                                       \
    const Value va = PEEK(0);                                                \
    double a, b;                                                             \
    COMPARE_OPERANDS(va, vb, a, b);                                          \
    const std::uint32_t d = JUMP_OPERAND();                                  \
    --sp;                                                                    \
    if (!(cond)) ip += d;                                                    \
  } while (0)
// The same with a global right operand (INDEX()): two numbers are tested first, so an
// unset global (undefined, not a number) is looked for only on the slower path.
#define GLOBAL_COMPARE_JUMP(cond)                                                          \
  do {                                                                                     \
    const std::uint32_t g_ = INDEX();                                                      \
    const Value va = PEEK(0), vb = loadValue(&globalsData()[g_]);                          \
    double a, b;                                                                           \
    if (va.isNumber() && vb.isNumber()) [[likely]] {                                       \
      a = va.asNumber();                                                                   \
      b = vb.asNumber();                                                                   \
    } else {                                                                               \
      if (vb.isUndefined())                                                                \
        ERROR("Undefined variable '{}'.", lang::displayName(globalNames_.name(g_)));       \
      COMPARE_OPERANDS(va, vb, a, b);                                                      \
    }                                                                                      \
    const std::uint32_t d = JUMP_OPERAND();                                                \
    --sp;                                                                                  \
    if (!(cond)) ip += d;                                                                  \
  } while (0)
// Reads global `INDEX()` into a new local `v`, as GET_GLOBAL does (its error when unset).
#define GLOBAL_OPERAND(v)                                                                 \
  const std::uint32_t v##Slot = INDEX();                                                  \
  const Value v = loadValue(&globalsData()[v##Slot]);                                     \
  if (v.isUndefined()) [[unlikely]]                                                       \
    ERROR("Undefined variable '{}'.", lang::displayName(globalNames_.name(v##Slot)))

  LOAD();
  NEXT();

  // The handlers (interpreter_ops.inc), with 1-byte index operands...
#define INDEX() (ip += 1, std::uint32_t{ip[-1]})
#define CASE(name) L_##name
#include "vm/interpreter_ops.inc"
  // WIDE: the next instruction's index operands are 4 bytes: dispatch to its wide handler.
  L_WIDE:
    SPINDLE_DCHECK(*ip < lang::kOpCodeCount, "VM::run: bad opcode {}", int{*ip});
    goto* kDispatchWide[*ip++];
  L_BadWide:
    ERROR("Malformed bytecode: WIDE before an instruction without index operands.");
#undef INDEX
#undef CASE

  // ... and the same handlers after a WIDE prefix, with 4-byte index operands.
#define SPINDLE_WIDE_PASS 1
#define INDEX() (ip += 4, lang::readU32(ip - 4))
#define CASE(name) W_##name
#include "vm/interpreter_ops.inc"
#undef SPINDLE_WIDE_PASS
#undef INDEX
#undef CASE

  // An error was recorded (state saved): the innermost try handler resumes the fiber
  // (error.cc), else the fiber has failed.
  L_fail:
    if (!catchError(fiber)) return RunStatus::Exit;
    LOAD();
    NEXT();
  // A thrown value (the top of the stack, state saved): the same.
  L_throw:
    if (!throwValue(fiber, sp[-1])) return RunStatus::Exit;
    LOAD();
    NEXT();
#undef LOAD
#undef SAVE
#undef NEXT
#undef FN
#undef CAN_ENTER
#undef ENTER
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
#undef GLOBAL_COMPARE_JUMP
}

}  // namespace spindle::vm
