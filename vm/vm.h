// vm.h: VM, the internal state of one Spindle session (the public face is spindle.h).
//
// A VM owns: a P bound to the thread that runs it (heap allocation needs one), the
// session's GlobalTable and the global values by slot, the interned-string table,
// class shapes, the loaded protos, host natives, persistent handles, and the fibers
// currently running. Everything a Lox program creates lives on the GC'd heap
// (object.h). Not thread-safe: one thread drives a VM at a time (it binds the VM's P
// for the duration of each entry point, see Enter).
//
// Roots (forEachRoot): every live fiber (its stack, frames and open upvalues are
// reached through it), the global values, persistent handles, shape keys and the
// "init" string (strong), and the interned-string table (weak: the collector clears
// entries whose string died instead of keeping them alive). A collection cycle may
// only begin at a safepoint (a call or a backward jump in the interpreter, or between
// API calls), and objects are allocated black while marking, so a new object held
// only in a C++ local between two safepoints is safe.
//
// Execution: run(fiber, budget) resumes a fiber and returns Yield (budget spent or
// preemption requested: the safepoint flag is polled at calls and OP_LOOP), Park
// (blocked; nothing parks until channels exist) or Exit (returned, or failed with a
// runtime error recorded in lastError()).
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lang/compiler.h"
#include "lang/global_table.h"
#include "runtime/malloc.h"
#include "runtime/p.h"
#include "runtime/pheap.h"
#include "vm/barrier.h"
#include "vm/object.h"
#include "vm/shape.h"
#include "vm/value.h"

namespace spindle::vm {

struct VMOptions {
  int procs = 0;          // 0: the number of cores (used once the scheduler lands)
  int gcPercent = 100;    // collector pacing (once the collector lands)
  bool gctrace = false;
  bool stats = false;
  int gcstress = 0;       // collect every N allocations (once the collector lands)
  bool gccheckmark = false;
  // FFI checking mode (ffi.h): reject passing unpinned heap pointers inside memory.
  // On by default where invariant checks are (every build but -c opt).
#if !defined(NDEBUG) || defined(SPINDLE_DEBUG)
  bool ffiCheck = true;
#else
  bool ffiCheck = false;
#endif
  // Where `print` writes; null: stdout.
  std::function<void(std::string_view)> output;
};

enum class RunStatus : std::uint8_t { Yield, Park, Exit };

struct RuntimeErrorInfo {
  std::string message;
  std::vector<std::string> trace;  // "[line N] in fn()" / "[line N] in script", innermost first
};

enum class RootKind : std::uint8_t { Strong, Weak };
using RootVisitor = void (*)(void* ctx, void** slot, RootKind kind);

// A host-defined native: receives the arguments, writes the result; returns false after
// vm.raise(message) to raise a runtime error.
using HostNative = std::function<bool(VM& vm, int argc, const Value* args, Value* result)>;

inline constexpr std::uint32_t kMaxFrames = 10000;

class VM {
 public:
  explicit VM(VMOptions options = {});
  ~VM();
  VM(const VM&) = delete;
  VM& operator=(const VM&) = delete;

  const VMOptions& options() const { return options_; }
  runtime::P* p() { return &p_; }

  // Binds the VM's P to this thread for a scope (re-entrant: a native that calls back
  // into the VM is already bound).
  class Enter {
   public:
    explicit Enter(VM& vm) : bound_(runtime::currentP() != vm.p()) {
      if (bound_) runtime::bindP(vm.p());
    }
    ~Enter() {
      if (bound_) runtime::unbindP();
    }
    Enter(const Enter&) = delete;
    Enter& operator=(const Enter&) = delete;

   private:
    bool bound_;
  };

  // --- loading and running (callers hold Enter) --------------------------------------
  lang::CompileResult compile(std::string_view source);
  // Turns a compiled script into a closure (converting its protos once).
  ObjClosure* load(std::shared_ptr<const lang::FunctionProto> script);
  // A new fiber that will call `callee` with `args`; null (and lastError set) when
  // callee is not callable or the arity is wrong.
  ObjFiber* newFiber(Value callee, const Value* args, int argc);
  RunStatus run(ObjFiber* fiber, std::int64_t budget);
  // Runs a fiber until it exits (the host loop until the scheduler runs Gs). Returns
  // true when it returned normally (result in fiber->result).
  bool runToCompletion(ObjFiber* fiber);
  // Calls `callee(args)` on a new fiber to completion.
  bool call(Value callee, const Value* args, int argc, Value* result);

  const RuntimeErrorInfo& lastError() const { return lastError_; }
  // For natives: records the error message; the interpreter adds the trace.
  bool raise(std::string message);

  // Requests that the running fiber yield at its next safepoint.
  void requestPreempt() { preempt_.store(true, std::memory_order_release); }

  // --- objects -------------------------------------------------------------------------
  ObjString* intern(std::string_view s);
  ObjList* newList(std::uint32_t count, const Value* items);
  void listPush(ObjList* list, Value v);
  ObjNative* newNative(std::string_view name, int arity, NativeFn fn, std::uint32_t hostIndex);
  // A new object of `kind` (size bytes, zeroed, header and kind set), for object kinds
  // defined outside vm.cc (ffi.h).
  template <typename T>
  T* newObject(ObjKind kind, std::size_t size) { return allocate<T>(kind, size); }
  std::string toString(Value v) const;
  static const char* typeName(Value v);
  static std::string toStringNumber(double d);

  // --- globals ---------------------------------------------------------------------------
  std::uint32_t globalSlot(std::string_view name);
  Value global(std::uint32_t slot) const { return globals_[slot]; }
  void setGlobal(std::uint32_t slot, Value v) { globals_[slot] = v; }
  const lang::GlobalTable& globalNames() const { return globalNames_; }
  void defineNative(std::string_view name, int arity, HostNative fn);

  // --- handles (strong roots held by the host) ---------------------------------------
  std::uint32_t newHandle(Value v);
  void releaseHandle(std::uint32_t h);
  Value handleValue(std::uint32_t h) const { return handles_[h]; }

  // --- roots and statistics ---------------------------------------------------------------
  void forEachRoot(RootVisitor visit, void* ctx);
  std::uint64_t allocations(ObjKind k) const { return allocCount_[static_cast<int>(k)]; }
  std::uint64_t allocatedBytes() const { return allocBytes_; }

  void write(std::string_view text);
  bool callHostNative(std::uint32_t index, int argc, Value* args, Value* result);

 private:

  template <typename T>
  T* allocate(ObjKind kind, std::size_t size) {
    ++allocCount_[static_cast<int>(kind)];
    allocBytes_ += size;
    auto* o = static_cast<T*>(runtime::mallocgc(size, &kTypes[static_cast<int>(kind)]));
    o->kind = kind;
    return o;
  }
  ValueArray* newValueArray(std::uint32_t capacity);
  ObjFunction* convert(const lang::FunctionProto& proto);
  ObjClosure* newClosure(ObjFunction* fn);
  ObjClass* newClass(ObjString* name);
  ObjInstance* newInstance(ObjClass* klass);
  ObjBoundMethod* newBoundMethod(Value receiver, ObjClosure* method);
  ObjUpvalue* captureUpvalue(ObjFiber* fiber, std::uint32_t slot);
  void closeUpvalues(ObjFiber* fiber, std::uint32_t fromSlot);
  ObjString* concat(ObjString* a, ObjString* b);
  // Methods.
  bool findMethod(ObjClass* klass, ObjString* name, Value* out) const;
  void setMethod(ObjClass* klass, ObjString* name, Value method);
  // Instance fields.
  const Shape* addField(ObjInstance* in, ObjString* name, Value v);
  // Fiber stack management.
  void ensureStack(ObjFiber* fiber, std::uint32_t needed);
  bool ensureFrames(ObjFiber* fiber);
  void recordError(ObjFiber* fiber, std::string message);
  // Interpreter helpers (interpreter.cc). They work on the fiber's saved state
  // (frame ip and stackTop stored) and return false after recording an error.
  bool callValue(ObjFiber* fiber, Value callee, int argc);
  bool callClosure(ObjFiber* fiber, ObjClosure* closure, int argc);
  bool invokeBuiltin(ObjFiber* fiber, Value receiver, ObjString* name, int argc);
  void toString(Value v, std::string& out, int depth) const;

  VMOptions options_;
  runtime::P p_;
  lang::GlobalTable globalNames_;
  std::vector<Value> globals_;
  std::unordered_map<std::string_view, ObjString*> strings_;  // weak
  std::vector<std::unique_ptr<Shape>> shapes_;
  std::vector<std::shared_ptr<const lang::FunctionProto>> scripts_;
  std::vector<HostNative> hostNatives_;
  std::vector<Value> handles_;
  std::vector<std::uint32_t> freeHandles_;
  std::vector<ObjFiber*> fibers_;  // fibers being run (a stack: host calls nest)
  ObjString* initString_ = nullptr;
  ObjString* pushString_ = nullptr;
  ObjString* popString_ = nullptr;
  ObjString* lenString_ = nullptr;
  std::string pendingError_;
  bool hasPendingError_ = false;
  RuntimeErrorInfo lastError_;
  std::atomic<bool> preempt_{false};
  std::uint64_t allocCount_[static_cast<int>(ObjKind::kCount)] = {};
  std::uint64_t allocBytes_ = 0;
  std::string printBuffer_;
};

}  // namespace spindle::vm
