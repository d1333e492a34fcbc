// vm.h: VM, the internal state of one Spindle session (the public face is spindle.h).
//
// The process runtime (vm.cc): one scheduler (runtime::Sched), attached to the collector,
// shared by every VM of the process; each fiber of each VM runs as a G on it (vm/fiber.h).
// The VM that finds none creates it (its procs and collector settings apply); the VM that
// drops the last reference deletes it. A VM owns: the session's GlobalTable and the global values by slot, the
// interned-string table, host natives and persistent handles. Everything a Lox program
// creates lives on the GC'd heap (object.h), and so does the VM's metadata about it:
// shapes and inline-cache records (shape.h) are heap objects, and each function's protos
// are owned by a heap object (ObjFunction::protos) freed by its finalizer.
//
// Threads. The host drives the VM from one thread at a time (the embedding API's entry
// points are not re-entrant across threads); fibers run in parallel on all Ps. A host
// thread has no P: withP(fn) runs fn as a G through runMain (Go's cgo-callback entry);
// a native called from a fiber already holds its M's P and runs fn inline. A script
// runs as the main fiber's G through runMain; when it ends the host call returns (other
// fibers keep running until the VM is destroyed; the CLI exits, as a Go program ends
// with main). Shared state is race-safe (see barrier.h and the locks below): racing
// fibers may lose updates, never corrupt the VM.
//
// Roots (registered with the collector, runtime/gc.h): global values, persistent
// handles, the VM's own name strings and host-held fibers (scanRoots); the interned-string
// table (string_table.h) is weak and no root: the sweepers unlink dead strings;
// each fiber's stack, frames and open upvalues are reported by its G (traceStack).
//
// ~VM with other VMs alive stops this VM's fibers first (stopFibers: each exits at its
// next run; one in a foreign call finishes the call), then unregisters its roots; its
// objects are garbage for the next cycle.
//
// Execution: run(fiber, budget) resumes a fiber and returns Yield (budget spent or
// preemption requested: polled at calls and OP_LOOP), Park (blocked on a channel, a
// select or a timer: the fiber's body holds the park step) or Exit (returned, or failed
// with a runtime error recorded in the fiber's body).
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "lang/compiler.h"
#include "lang/global_table.h"
#include <mutex>

#include "runtime/malloc.h"
#include "runtime/pheap.h"
#include "runtime/pprof.h"
#include "runtime/proc.h"
#include "vm/barrier.h"
#include "vm/global_cache.h"
#include "vm/handle_table.h"
#include "vm/map.h"
#include "vm/object.h"
#include "vm/shape.h"
#include "vm/string_table.h"
#include "vm/value.h"

namespace spindle::vm {

struct ObjForeignFn;  // ffi.h

struct RuntimeErrorInfo {
  std::string message;
  std::vector<std::string> trace;  // "[line N] in fn()" / "[line N] in script", innermost first
};

struct VMOptions {
  int procs = 0;          // Ps of the VM's scheduler; 0: the number of cores
  std::uint64_t schedSeed = 0;  // runtime::Sched's seed: a reproducible schedule (0: off)
  int gcPercent = 100;    // collector pacing (gc.h setGCPercent; -1 off)
  bool gctrace = false;
  bool stats = false;
  int gcstress = 0;       // a complete cycle every N allocations of a P (gc.h setGCStress)
  int gcstressContinuous = 0;  // a cycle request every N (GCStressMode::Continuous); gcstress wins
  bool gccheckmark = false;
  bool clobberfree = false;     // gc.h setClobberFree (on already in debug builds)
  bool gcstoptheworld = false;  // gc.h setGCStopTheWorld
  bool gcverify = false;        // gc.h setGCVerify
  // FFI checking mode (ffi.h): reject passing unpinned heap pointers inside memory.
  // On by default where invariant checks are (every build but -c opt).
#if !defined(NDEBUG) || defined(SPINDLE_DEBUG)
  bool ffiCheck = true;
#else
  bool ffiCheck = false;
#endif
  // Where `print` writes; null: stdout.
  std::function<void(std::string_view)> output;
  // The runtime error of a fiber a spawn statement started (a spawn expression's fiber
  // keeps its error for join: VM::fiberEnded): set, it is called (on the failing fiber's thread)
  // and only that fiber ends; null: the error ends the host call of the fiber's
  // generation and stops its fibers (VM::fiberFailed, Go's rule: the CLI).
  std::function<void(const RuntimeErrorInfo&)> onFiberError;
  // Sandboxing (VM::VM, applied after the library is built): ffi false leaves FFI, Bytes
  // and Pinner out; built-in globals named in `without`, or not in `only` when set, are
  // left undefined.
  bool ffi = true;
  std::vector<std::string> without = {};
  std::optional<std::vector<std::string>> only = std::nullopt;
  // Limits of each host call (interrupt.cc): seconds of wall time (0: none) and steps,
  // the safepoints its fibers pass (calls and loop iterations; 0: none).
  double timeLimit = 0;
  std::uint64_t stepLimit = 0;
  int maxThreads = 0;  // runtime/threadlimit.h setMaxThreads (0: the default)
  // Files, stdin and the process (iolib.cc): io false leaves out readFile, writeFile,
  // appendFile, readLine, eprint, exit and env. onExit: exit(code) hands the code here
  // (the CLI ends the process); unset, or returning, exit() is a runtime error.
  bool io = true;
  std::function<void(int)> onExit;
  // Modules (module.cc): the main script's file (imports are relative to its directory;
  // empty: the current directory), and the host's loader: given an import's path
  // resolved against the importer's ("lib/util.lox"), the module's source, or nullopt to
  // read the file (not done when io is false).
  std::string scriptPath;
  std::function<std::optional<std::string>(const std::string&)> moduleLoader;
  // This VM's live-heap limit in bytes (memlimit.cc; 0: none, ~0: accounted, no limit).
  std::uint64_t memoryLimit = 0;
};

enum class RunStatus : std::uint8_t { Yield, Park, Exit };

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
  // The process runtime's scheduler, shared by every VM.
  runtime::Sched& sched() { return *sched_; }
  // VMs alive in the process (they share one Sched and the collector).
  static int liveVMs();
  // A reference to the process runtime without a VM (spindle::Runtime): creates it with
  // o's procs and collector settings if there is none (then returns true); the runtime
  // lives until releaseRuntime drops the last reference.
  static bool retainRuntime(const VMOptions& o);
  static void releaseRuntime();
  // ~VM has begun: this VM's fibers exit at their next run (FiberBody::run).
  bool dying() const { return dying_.load(std::memory_order_acquire); }
  // FiberBody construction and destruction (fiber.h): ~VM waits for zero.
  void bodyMade() { liveBodies_.fetch_add(1, std::memory_order_relaxed); }
  // The release pairs with ~VM's acquire load: the body's last access to this VM
  // happens before the VM goes. Nothing may touch the VM after this call.
  void bodyGone() { liveBodies_.fetch_sub(1, std::memory_order_release); }

  // Runs fn with a P bound to this thread: inline when the thread already holds one (a
  // native called from a fiber), else as a G through runMain.
  void withP(const std::function<void()>& fn);

  // --- loading and running (callers hold a P: withP) -----------------------------------
  lang::CompileResult compile(std::string_view source);
  // The same for a chunk named `file` (chunk.cc): its protos' file, which traces show;
  // its globals are the program's (no module suffix).
  lang::CompileResult compile(std::string_view source, const std::string& file);
  // Turns a compiled script into a closure (converting its protos once).
  ObjClosure* load(std::shared_ptr<const lang::FunctionProto> script);
  // A new fiber (with its FiberBody) that will call `callee` with `args`.
  ObjFiber* newFiber(Value callee, const Value* args, int argc);
  // The same with a stack of `stack` slots to start with (the call grows it as needed).
  ObjFiber* newFiber(Value callee, const Value* args, int argc, std::uint32_t stack);
  RunStatus run(ObjFiber* fiber, std::int64_t budget);
  // The interpreter loop itself (interpreter.cc); run (oom.cc) calls it and turns an
  // out-of-memory exception from below into the fiber's runtime error.
  RunStatus interpret(ObjFiber* fiber, std::int64_t budget);
  // Calls `callee(args)` on a new fiber to completion: from a host thread as the main G
  // of a runMain (ending with a deadlock or a spawned fiber's error is a failure); from
  // a native, inline on the caller's M (such a nested fiber cannot block). Returns true
  // when it returned normally. With `resultHandle`, a successful result that is an object
  // (result->isObj(), strings included) is also held by a new handle (the caller releases
  // it), taken while the fiber is still a root: a host thread has no P, so nothing else
  // would keep the result alive until it holds it. Other results get no handle.
  bool call(Value callee, const Value* args, int argc, Value* result,
            std::uint32_t* resultHandle = nullptr);
  // Spawns `callee(args)` as a new G (checks callability first; null + error otherwise).
  // keep (a spawn expression): the fiber gets a done channel and its error waits for
  // join instead of ending the program (fiberEnded).
  ObjFiber* spawn(ObjFiber* parent, Value callee, const Value* args, int argc, bool keep);
  // A kept fiber ended (on its M): a failure becomes its error value (ObjFiber::thrown)
  // and a never-joined record; then its done channel is closed.
  void fiberEnded(ObjFiber* fiber);
  // "fiber N failed and was never joined: <message>" for each kept fiber whose failure
  // no join has seen, in fiber order; the records go. Kept in the VM (not on the heap), so
  // whether the Fiber object was collected changes nothing.
  std::vector<std::string> takeNeverJoined();

  // The error of the last failed call() made by this thread (per thread: natives on
  // several Ms may call back into the VM at once).
  const RuntimeErrorInfo& lastError() const;
  // For natives: records the error message; the interpreter adds the trace.
  bool raise(std::string message);

  // Requests that fibers run outside a G (tests) yield at their next safepoint.
  void requestPreempt() { preempt_.store(true, std::memory_order_release); }

  // A spawned fiber failed: report its error to the host run of its generation (first
  // error wins), stop that generation's fibers, end the host's runMain.
  void fiberFailed(ObjFiber* fiber);
  bool aborted(const ObjFiber* fiber) const;

  // --- objects -------------------------------------------------------------------------
  ObjString* intern(std::string_view s);
  ObjList* newList(std::uint32_t count, const Value* items);
  void listPush(ObjList* list, Value v);
  ObjNative* newNative(std::string_view name, int arity, NativeFn fn, const void* host = nullptr);
  ObjNative* newNative(ObjString* name, int arity, NativeFn fn, const void* host = nullptr);
  // A new object of `kind` (size bytes, zeroed, header and kind set), for object kinds
  // defined outside vm.cc (ffi.h).
  template <typename T>
  T* newObject(ObjKind kind, std::size_t size) { return allocate<T>(kind, size); }
  ObjChannel* newChannel(std::uint32_t capacity);
  // The text print shows (appendValue), cut at lib::maxStringLength() + a little.
  std::string toString(Value v) const;
  // A value as an error message names it: a string in double quotes (so "0" reads apart
  // from 0), anything else as toString.
  std::string toStringQuoted(Value v) const;
  static const char* typeName(Value v);
  static std::string toStringNumber(double d);
  // The one-byte string of b (interned on first use, then a root): s[i], chr(), split("").
  ObjString* byteString(unsigned char b) {
    ObjString* s = byteStrings_[b].load(std::memory_order_acquire);  // pairs with internByteString
    return s != nullptr ? s : internByteString(b);
  }
  // Bytewise three-way comparison (<0, 0, >0), checkpointing every kCheckpointBytes
  // (strlib.cc): string < <= > >=.
  static int compareStrings(const ObjString* a, const ObjString* b);

  // --- maps (map.cc) -------------------------------------------------------------------
  // Keys are normalised by mapKey (map.h) first. Lookups (mapGet) and re-sets
  // (mapTrySet) are inline in map.h and take no lock; an append takes the map's lock.
  ObjMap* newMap();
  void mapSet(ObjMap* m, Value key, Value v) {
    if (!mapTrySet(m, key, v)) mapInsert(m, key, v);
  }
  void mapInsert(ObjMap* m, Value key, Value v);  // under the lock: re-set or append
  bool mapRemove(ObjMap* m, Value key, Value* removed);
  std::uint32_t mapLen(ObjMap* m) const;
  ObjList* mapKeys(ObjMap* m, bool values);  // a new list of the keys or the values, in order

  // --- globals ---------------------------------------------------------------------------
  std::uint32_t globalSlot(std::string_view name);
  // globalSlot without a lock once the name was looked up before (global_cache.h).
  std::uint32_t cachedGlobalSlot(std::string_view name) {
    if (const std::int64_t slot = globalCache_.find(name); slot >= 0) return static_cast<std::uint32_t>(slot);
    const std::uint32_t slot = globalSlot(name);
    globalCache_.add(name, slot);
    return slot;
  }
  Value global(std::uint32_t slot) const;
  void setGlobal(std::uint32_t slot, Value v);
  const lang::GlobalTable& globalNames() const { return globalNames_; }
  void defineNative(std::string_view name, int arity, HostNative fn);
  // A host native as a plain function: fn is called with host = data.get(); data is kept
  // (and destroyed with the host natives in ~VM).
  void defineNative(std::string_view name, int arity, NativeFn fn, std::shared_ptr<const void> data);

  // --- handles (strong roots held by the host) ---------------------------------------
  // The handle table is a root the collector scans once per cycle (forEachRoot), so its
  // slots take the hybrid barrier as heap slots do: while marking, newHandle shades the
  // value stored and releaseHandle the value dropped.
  std::uint32_t newHandle(Value v);
  void releaseHandle(std::uint32_t h);
  Value handleValue(std::uint32_t h) const;

  // --- roots and statistics ---------------------------------------------------------------
  // Reports every root slot (what scanRoots gives the collector).
  void forEachRoot(runtime::VisitFn visit, void* ctx);
  // gcinspect.cc, at a fiber's safepoint (FiberBody::run): gccensus()'s Map after a full
  // cycle, and gcpath(target)'s list of steps (nil: target is no heap object reachable
  // from a root).
  Value gcCensus();
  Value gcPath(Value target);
  // gcevents(): the event log's records since the last call, a list of Maps.
  Value gcEvents();
  // Strings in the interned-string table.
  std::size_t internedCount();
  std::uint64_t allocations(ObjKind k) const {
    return allocCount_[static_cast<int>(k)].load(std::memory_order_relaxed);
  }
  std::uint64_t allocatedBytes() const { return allocBytes_.load(std::memory_order_relaxed); }
  // Records of C++ memory this VM's objects own and have not released (owned.cc): live
  // channels and host data, and dead ones whose cleanup has not run yet.
  std::size_t ownedCount() const;

  void write(std::string_view text);
  // A native that calls the host function `fn` (kept by the VM). Caller holds a P.
  ObjNative* newHostNative(std::string_view name, int arity, HostNative fn);
  ObjNative* newHostNative(std::string_view name, int arity, NativeFn fn, std::shared_ptr<const void> data);

  // --- host classes, host data and instance fields (hostclass.cc) ---------------------
  // The hidden field holding an instance's ObjHostData: no Lox name can spell it, and
  // getField/setField refuse it.
  static constexpr std::string_view kHostDataField = "(host data)";
  struct HostMethod {
    std::string name;
    int arity;       // >= 0; the native receives `this` first, so it is called with arity + 1
    HostNative fn;   // args[0] is `this`
    // Set: the method is this plain native instead (fn unused), as defineNative's.
    NativeFn raw = nullptr;
    std::shared_ptr<const void> data = nullptr;
  };
  // A class whose methods are host natives. Each method is a small closure whose code
  // calls its native with `this` and the arguments (an `init` also returns `this`), so
  // calls, bound methods, inheritance, `super` and arity errors work exactly as for Lox
  // methods. Caller holds a P.
  ObjClass* newHostClass(std::string_view name, const std::vector<HostMethod>& methods);
  // Attaches C++ state to an instance (false, and `destroy(data)` at once, for anything
  // else). The state is destroyed once: by a finalizer after the instance (precisely its
  // ObjHostData) died, or by ~VM. Replacing state leaves the old one to the collector.
  // Caller holds a P.
  bool setHostData(Value instance, void* data, const void* tag, void (*destroy)(void*));
  // The state attached with this tag, or null (not an instance, none, another tag).
  void* hostData(Value instance, const void* tag) const;
  // Instance fields by name (false: not an instance, no such field, the hidden field).
  bool getField(Value instance, std::string_view name, Value* out) const;
  bool setField(Value instance, std::string_view name, Value v);  // caller holds a P

  // --- gcstats() (gcstats.cc) ----------------------------------------------------------
  // A GCStats instance filled from runtime::gcStats(), the heap and the scheduler.
  ObjInstance* newGCStats();

  // Shared with fiber.cc (the G bodies) and the natives.
  void recordError(ObjFiber* fiber, std::string message);
  // Records the error a native (or foreign call) raised with raise(), or a generic one.
  void recordNativeError(ObjFiber* fiber);
  static void capTrace(std::vector<std::string>& trace);  // at kMaxTraceFrames
  // Records "Expected N arguments but got M." unless argc == want.
  bool expectArgs(ObjFiber* fiber, int argc, int want);
  // "[line N] in f()" per frame, innermost first; past kMaxTraceFrames frames, one last
  // line "... N more frames".
  std::vector<std::string> traceOf(ObjFiber* fiber) const;
  // The walk traceOf prints (and a fatal error's fiber dump, which may not allocate):
  // emit(line, function name or "" for the script, 0) per frame with source, innermost
  // first, at most kMaxTraceFrames; then emit(0, "", N) once if N more frames were left.
  template <typename F>
  static void forEachTraceLine(const ObjFiber* fiber, F&& emit) {
    std::uint32_t shown = 0, more = 0;
    for (std::uint32_t i = fiber->frameCount; i-- > 0;) {
      const CallFrame& f = fiber->frames->frames()[i];
      const lang::FunctionProto* proto = f.closure->function->proto;
      // A host method's closure (hostclass.cc) has no source: like a native, no frame.
      if (proto->chunk.lines.runs().empty()) continue;
      if (shown == kMaxTraceFrames) {
        ++more;
        continue;
      }
      ++shown;
      const auto offset = static_cast<std::size_t>(f.ip - f.closure->function->code);
      const int line = proto->chunk.lines.lineAt(offset == 0 ? 0 : offset - 1);
      // An emit taking a fourth argument also gets the frame's file ("" for the main
      // script's code, else the imported module's: FunctionProto::file).
      if constexpr (std::is_invocable_v<F, int, std::string_view, std::uint32_t, std::string_view>) {
        emit(line, std::string_view(proto->name), 0u, std::string_view(proto->file));
      } else {
        emit(line, std::string_view(proto->name), 0u);
      }
    }
    if (more != 0) emit(0, std::string_view(), more);
  }
  static constexpr std::uint32_t kMaxTraceFrames = 20;
  // Errors you can catch (error.cc). catchError: after recordError, resume the innermost
  // open try handler with a new Error instance; false when none is open (the fiber has
  // failed: its upvalues are closed). throwValue: the same for a thrown value (caught as
  // itself; uncaught, body->error gets its message and trace).
  bool catchError(ObjFiber* fiber);
  bool throwValue(ObjFiber* fiber, Value v);
  // Records v as the fiber's error, to be caught as itself (the interpreter's error path
  // then unwinds it, as for a native passing on a thrown value): uncaught, the message and
  // trace are v's (an Error's fields, its trace before this fiber's) or `Uncaught v.`.
  void raiseValue(ObjFiber* fiber, Value v);
  // An Error instance {message, trace}.
  ObjInstance* newError(const RuntimeErrorInfo& error);
  // A list of strings (an Error's trace).
  ObjList* newTrace(const std::vector<std::string>& trace);
  void closeUpvalues(ObjFiber* fiber, std::uint32_t fromSlot);
  // Out of memory in the fiber's running step (oom.cc): records "Out of memory." and
  // resumes the innermost try handler as catchError does; false when it is uncaught.
  bool failOutOfMemory(ObjFiber* fiber);

 private:
  friend class FiberBody;

  // needzero = false: the caller writes every field and byte it will read (strings only:
  // noscan, see runtime::mallocgc).
  template <typename T>
  T* allocate(ObjKind kind, std::size_t size, bool needzero = true) {
    // Statistics only: a relaxed load and store, not a locked read-modify-write (fibers
    // allocating in parallel may lose counts; the numbers are approximate then).
    auto& count = allocCount_[static_cast<int>(kind)];
    count.store(count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    allocBytes_.store(allocBytes_.load(std::memory_order_relaxed) + size, std::memory_order_relaxed);
    if (heapOwner_ != 0) [[unlikely]] chargeHeapOwner(size);  // memlimit.cc; may throw
    auto* o = static_cast<T*>(runtime::mallocgc(size, &kTypes[static_cast<int>(kind)], needzero));
    o->kind = kind;
    o->owner = static_cast<std::uint16_t>(heapOwner_);
    // The allocation profile (runtime/pprof.h): a thread-local countdown.
    if (runtime::memProfileTick(size)) [[unlikely]] runtime::memProfileSample(o, size);
    return o;
  }
  ValueArray* newValueArray(std::uint32_t capacity);
  ValueArray* newStackArray(std::uint32_t capacity);
  // A heap function for `proto` and, through its constants, for the protos nested in it;
  // `protos` (newProtoOwner) keeps the tree `proto` belongs to alive (function.cc).
  ObjFunction* convert(const lang::FunctionProto& proto, ObjHostData* protos);
  ObjHostData* newProtoOwner(std::shared_ptr<const lang::FunctionProto> tree);
  // C++ state owned by a new ObjHostData: destroyed by its finalizer or by ~VM (hostclass.cc).
  ObjHostData* newOwned(void* data, const void* tag, void (*destroy)(void*));
  ObjClosure* newClosure(ObjFunction* fn);
  ObjClass* newClass(ObjString* name);
  ObjInstance* newInstance(ObjClass* klass);
  ObjBoundMethod* newBoundMethod(Value receiver, ObjClosure* method);
  ObjUpvalue* captureUpvalue(ObjFiber* fiber, std::uint32_t slot);
  // a + b interned, or null when it would pass lib::maxStringLength() (the caller raises
  // "String too long.").
  ObjString* concat(ObjString* a, ObjString* b);
  // Shapes and inline caches (shape.cc).
  Shape* newShape(Shape* parent, ObjString* key, ObjClass* klass);
  // The child of `from` adding `key`, found or made (*created).
  Shape* transition(Shape* from, ObjString* key, bool* created);
  // Attaches the field table of a just-published shape (shape.h, "Field tables").
  void attachTable(Shape* made);
  // Replaces the record of one site (no-op once megamorphic).
  void updateIC(ObjFunction* fn, std::uint32_t index, Shape* shape, std::uint32_t slot,
                Value method = Value::nil(), Shape* transition = nullptr);
  // Globals storage: grows by replacement (old arrays kept until ~VM: a racing reader may
  // still hold one).
  void growGlobals(std::size_t n);
  Value* globalsData() const { return globals_.load(std::memory_order_acquire); }
  // Channel methods (fiber.cc): Ok, Error (recorded) or Park (the fiber's body holds the
  // step; the operation completes in FiberBody::resume).
  enum class OpResult : std::uint8_t { Ok, Error, Park };
  OpResult invokeChannel(ObjFiber* fiber, ObjChannel* ch, ObjString* name, int argc);
  OpResult select(ObjFiber* fiber, std::uint32_t n, std::uint8_t flags, const std::uint8_t* kinds);
  // Fiber.join() / Fiber.done() (fiber.cc); finishJoin: the receiver ended, replace it
  // by its result or raise its error (false).
  OpResult invokeFiber(ObjFiber* fiber, ObjFiber* target, ObjString* name, int argc);
  bool finishJoin(ObjFiber* fiber);
  // A deadlock's report (fiber.cc): every parked fiber of this VM, in fiber order,
  // `fiber N [reason]:` and its trace, appended to lines.
  void appendBlockedFibers(std::vector<std::string>& lines);
  // An error value's message and trace (throwValue, raiseValue); fromValue: from an
  // Error's fields, else `Uncaught v.` and this fiber's trace.
  struct ValueError {
    RuntimeErrorInfo info;
    bool fromValue = false;
  };
  ValueError errorOf(ObjFiber* fiber, Value v);
  bool finishSelect(ObjFiber* fiber, int chosen);
  void setHostG(runtime::G* g, std::uint32_t gen);
  void registerConcurrencyNatives();
  void registerGCStatsNative();  // gcstats.cc
  // C++ memory owned by obj (owned.cc): release(data) runs once after obj was freed (a
  // runtime cleanup), orphan(data) instead if the VM goes first (freeOwned, ~VM).
  OwnedId own(Obj* obj, void* data, void (*release)(void*), void (*orphan)(void*));
  static void releaseOwned(void* id);
  void freeOwned();
  void registerErrorClass();     // error.cc
  void unwind(ObjFiber* fiber, Value v);
  // The string library (strlib.cc: string and list methods, chr, str, num, format) and
  // the math global (mathlib.cc).
  void registerStringLib();
  void sandbox();  // the options' ffi / without / only (vm.cc)
  ObjString* internByteString(unsigned char b);  // byteString's first use (strlib.cc)
  void registerMathLib();
  void registerIoLib();  // iolib.cc
 public:
  // IMPORT (module.cc): pushes the module object for the path constant `path`, imported
  // from the fiber's running frame (Ok); Error after recording the error; Park while its
  // top level runs (state saved; FiberBody::resume calls finishImport).
  OpResult importModule(ObjFiber* fiber, Value path);
  bool finishImport(ObjFiber* fiber);
  // Module objects (module.cc): `name`'s global slot in module object `in` (false: not a
  // module, or no such top-level name). An inline cache holds kModuleGlobal | slot.
  bool moduleSlot(ObjInstance* in, ObjString* name, std::uint32_t* slot) const;
  bool moduleSlot(ObjInstance* in, std::string_view name, std::uint32_t* slot) const;
  bool isModuleObject(ObjInstance* in) const;
  static constexpr std::uint32_t kModuleGlobal = 0x80000000u;
  struct Modules;  // module.cc: the records of the imported modules
  static bool isModuleGlobal(std::uint32_t icSlot) {
    return icSlot != InlineCache::kNoField && (icSlot & kModuleGlobal) != 0;
  }
  // The host's runFile: the main script's file, unless the options named one (before
  // the first import).
  void setScriptPathIfUnset(const std::string& path) {
    std::lock_guard<std::mutex> lk(modulesLock_);
    if (options_.scriptPath.empty() && !modules_) options_.scriptPath = path;
  }

 private:
  std::shared_ptr<Modules> modules_;  // under modulesLock_: made by the first import
  std::shared_ptr<Modules> modules();  // modules_, made on first use
  std::mutex modulesLock_;
  // INVOKE of the library method `name` of `methods` (stringMethods_, listMethods_:
  // classes whose methods are natives, never exposed): calls it with the receiver as
  // args[0] and replaces receiver and arguments by the result (state saved); false after
  // recording the error. The site's inline-cache record (fn's icIndex, loaded as ic) keys
  // `methods`' root shape, which no instance has: a hit skips the method lookup.
  bool invokeLibMethod(ObjFiber* fiber, ObjClass* methods, ObjString* name, int argc,
                       ObjFunction* fn, std::uint32_t icIndex, const InlineCache* ic);
  ObjFunction* newHostMethodFunction(const HostMethod& m, bool initializer);
  static void scanRoots(void* self, runtime::VisitFn visit, void* ctx);
  // The same roots named ("global ring", "host handle"), for runtime::retainingPath.
  static void scanRootsLabelled(void* self, runtime::LabelVisitFn visit, void* ctx);
  // forEachRoot's body: ptr(p, name) per root pointer, name(out) naming it.
  template <typename Ptr>
  void forEachRootRef(const Ptr& ptr);
  // The built-in root fields (the names, classes and method tables forEachRootRef lists)
  // are set once, by the constructor, after the roots are registered (so a cycle keeps
  // what the constructor allocated); a cycle of a world another VM started may scan them
  // meanwhile. So each is stored with release and read by the scan with acquire (it then
  // sees the object initialised); the VM's own threads read them plainly after
  // construction.
  template <typename T>
  static void setRoot(T*& field, T* value) {
    std::atomic_ref<T*>(field).store(value, std::memory_order_release);
  }
  template <typename T>
  static T* loadRoot(T*& field) {
    return std::atomic_ref<T*>(field).load(std::memory_order_acquire);
  }
  void registerInspectNatives();  // gcinspect.cc
  // The process runtime (vm.cc): acquireSched takes a reference (creating the Sched with
  // o's procs and collector settings when there is none); releaseSchedIfLast drops this
  // VM's, only if it is the last one when onlyIfLast (then it detaches and deletes the
  // Sched, unregistering this VM's roots first) and returns whether it dropped it.
  static runtime::Sched* acquireSched(const VMOptions& o);
  bool releaseSchedIfLast(bool onlyIfLast);
  // ~VM with other VMs alive (fiber.cc): makes every fiber of this VM exit (preempts
  // the running, closes this VM's channels and expires its sleepers so the parked wake,
  // each exits at its next run; a foreign call returns first) and waits until no
  // FiberBody of this VM is left.
  void stopFibers();
  // Calls fn(data) under orphanLock() for this VM's owned records released by `release`
  // (owned.cc): data stays valid during the call.
  void forEachOwned(void (*release)(void*), void (*fn)(void*));
  // Methods.
  bool findMethod(ObjClass* klass, ObjString* name, Value* out) const;
  void setMethod(ObjClass* klass, ObjString* name, Value method);
  // Instance fields.
  Shape* addField(ObjInstance* in, ObjString* name, Value v);
  void storeField(ObjInstance* in, ObjString* key, Value v);  // set or add (hostclass.cc)
  // Fiber stack management: the running fiber grows its stack and frames (doubling);
  // a paused one is shrunk (halving) at the collector's request (FiberBody::shrinkStack).
  static constexpr std::uint32_t kInitialStack = 256, kInitialFrames = 8;
  // A host call's fiber (VM::call): most calls need a few slots, and a new fiber's stack
  // is zeroed memory, so it starts small and grows (doubling) when the callee needs more.
  static constexpr std::uint32_t kHostCallStack = 32;
  void ensureStack(ObjFiber* fiber, std::uint32_t needed);
  bool ensureFrames(ObjFiber* fiber);
  void moveStack(ObjFiber* fiber, ValueArray* to);
  void moveFrames(ObjFiber* fiber, std::uint32_t capacity);
  static std::uint32_t stackInUse(const ObjFiber* fiber);
  struct StackShrink {
    std::uint32_t stack = 0, frames = 0;  // the new capacities; 0: keep
    bool any() const { return stack != 0 || frames != 0; }
  };
  static std::uint32_t shrunkCapacity(std::uint32_t cap, std::uint32_t used, std::uint32_t least);
  static StackShrink stackShrink(const ObjFiber* fiber);
  void shrinkStack(ObjFiber* fiber);
  // Interpreter helpers (interpreter.cc). They work on the fiber's saved state
  // (frame ip and stackTop stored) and return false after recording an error.
  bool callValue(ObjFiber* fiber, Value callee, int argc);
  // Calls the foreign function fn with the argc arguments above it on the fiber's stack
  // (state saved: the stack is quiescent during the call) and replaces them with the
  // result; false after recording the error.
  bool callForeign(ObjFiber* fiber, ObjForeignFn* fn, int argc);
  bool callClosure(ObjFiber* fiber, ObjClosure* closure, int argc);
  // INVOKE on a list, a map or an FFI object (site as for invokeLibMethod).
  bool invokeBuiltin(ObjFiber* fiber, Value receiver, ObjString* name, int argc,
                     ObjFunction* fn, std::uint32_t icIndex, const InlineCache* ic);
  // Printing (vm.cc). A value's text is appended to `out`; `path` holds the lists and
  // maps being printed, outermost first: one met again on its own path is a cycle,
  // printed `[...]` / `{...}`, as is anything deeper than kMaxPrintDepth. False once out
  // passed lib::maxStringLength(): printing stopped there, so its work is bounded too.
  static constexpr int kMaxPrintDepth = 32;
  struct PrintPath {
    const Obj* objs[kMaxPrintDepth + 1];
    int depth = 0;
    bool contains(const Obj* o) const;
  };
  bool appendValue(Value v, std::string& out, PrintPath& path) const;
  // Maps (map.cc): storage, growth, the methods, the Map() native and the method names.
  MapStorage* newMapStorage(std::uint32_t entryCap);
  MapStorage* growMap(ObjMap* m, MapStorage* from);
  bool invokeMap(ObjFiber* fiber, ObjMap* m, ObjString* name, int argc, const Value* args, Value* result);
  void registerMapNatives();
  // m.has(k), m.remove(k), m.len() called with their arity (and a key that is no NaN):
  // the result in *result and true, without the general method call (INVOKE's map fast
  // path); false for anything else, which takes invokeBuiltin.
  bool mapMethod(ObjMap* m, ObjString* name, int argc, const Value* args, Value* result);
  // for-in (interpreter.cc, fiber.cc): a channel step receives the next element onto the
  // stack or, once the channel is closed and drained, jumps past the loop.
  OpResult forInRecv(ObjFiber* fiber, ObjChannel* ch);
  static void finishForInRecv(ObjFiber* fiber, bool ok, Value v);
  // PRINT: the value and a newline, to the output; false (nothing written) when its text
  // passes lib::maxStringLength().
  bool printValue(Value v);

  VMOptions options_;
  lang::GlobalTable globalNames_;  // written by the host thread under globalNamesLock_
  // Held while globalNames_ changes, and by a root's name (gcpath) reading it.
  mutable std::mutex globalNamesLock_;
  std::atomic<Value*> globals_{nullptr};
  std::size_t globalsCapacity_ = 0;  // under globalsLock_
  std::vector<std::unique_ptr<Value[]>> globalArrays_;  // current and retired
  mutable std::mutex globalsLock_;
  StringTable& strings_ = processStrings();  // interned strings, the process's (weak)
  mutable std::mutex nativesLock_;
  // Appended under nativesLock_, never removed: each ObjNative::host points at one.
  std::vector<std::unique_ptr<const HostNative>> hostNatives_;
  std::vector<std::shared_ptr<const void>> hostNativeData_;  // the same, of plain natives
  GlobalSlotCache globalCache_;  // the host's name -> slot (cachedGlobalSlot)
  mutable std::mutex handlesLock_;
  HandleTable handles_;  // written and scanned under handlesLock_, read without it
  std::uint32_t newHandleLocked(Value v);  // under handlesLock_
  std::vector<ObjFiber*> hostFibers_;  // under handlesLock_: host fibers not yet a G (roots)
  ObjString* initString_ = nullptr;
  ObjString* pushString_ = nullptr;
  ObjString* popString_ = nullptr;
  ObjString* lenString_ = nullptr;
  ObjString* sendString_ = nullptr;
  ObjString* recvString_ = nullptr;
  ObjString* closeString_ = nullptr;
  ObjString* capString_ = nullptr;
  ObjString* joinString_ = nullptr;
  ObjString* doneString_ = nullptr;
  struct {
    ObjString *has = nullptr, *remove = nullptr, *keys = nullptr, *values = nullptr, *clear = nullptr;
  } mapNames_;
  std::atomic<bool> preempt_{false};
  std::atomic<bool> dying_{false};
  std::atomic<std::int64_t> liveBodies_{0};  // FiberBodies of this VM not yet destroyed
  // Generations: each host call is one; spawned fibers inherit their parent's. A failing
  // spawned fiber aborts its generation.
  std::atomic<std::uint32_t> generation_{1};
  std::atomic<std::uint32_t> abortGen_{0};
  std::mutex errorLock_;
  std::mutex outputLock_;  // serializes options_.output (fibers print from every P)
  runtime::G* hostG_ = nullptr;       // under errorLock_: the main G of the host call
  std::uint64_t hostGoid_ = 0;        // under errorLock_: its goid (endHostRun's identity)
  std::uint32_t hostGen_ = 0;         // under errorLock_: its generation
  std::uint32_t failedGen_ = 0;       // under errorLock_
  RuntimeErrorInfo fiberError_;       // under errorLock_
  std::map<std::uint64_t, std::string> neverJoined_;  // under errorLock_: id -> message
  // Fiber numbers (ObjFiber::id). Relaxed: a counter, it publishes nothing.
  std::atomic<std::uint64_t> nextFiberId_{1};
  std::atomic<std::uint64_t> allocCount_[static_cast<int>(ObjKind::kCount)] = {};
  std::atomic<std::uint64_t> allocBytes_{0};
  int rootsId_ = -1;
  // The hidden host-data field's name (hostclass.cc). gcstats() instances' class.
  ObjString* hostDataKey_ = nullptr;
  ObjClass* gcStatsClass_ = nullptr;
  // gcevents(): the seq of the newest event-log record a call returned (runtime/gcevents.h);
  // starts at the newest published when the VM was made. CAS by racing callers.
  std::atomic<std::uint64_t> gcEventsSeen_{0};
  ObjClass* errorClass_ = nullptr;  // the built-in Error (a root: the global may be reassigned)
  // Library methods of strings and lists (strlib.cc), the one-byte strings: roots.
  ObjClass* stringMethods_ = nullptr;
  ObjClass* listMethods_ = nullptr;
  std::atomic<ObjString*> byteStrings_[256] = {};

 public:
  // math.random's state (mathlib.cc): a splitmix64 counter, advanced by fetch_add
  // (relaxed: fibers drawing at once each get a distinct step; no other memory is
  // published through it).
  std::atomic<std::uint64_t> randomState_{0};

 private:
  // The process runtime's Sched (acquireSched; never reassigned: Ms read it).
  runtime::Sched* const sched_;

  // --- interrupts and limits (interrupt.cc) ----------------------------------------------
 public:
  // Async-signal-safe (lock-free atomic stores only) and callable from any thread: every
  // fiber of this VM alive now fails at its next safepoint with the uncatchable runtime
  // error "Interrupted."; parked ones are woken first (sysmon, within about a
  // millisecond). Calls made later run normally.
  void interrupt();
  // Whether the fiber must fail now (an interrupt, or its host call's limit was hit).
  bool interrupted(const ObjFiber* fiber) const {
    const std::uint32_t g = fiber->gen;
    return g <= interruptGen_.load(std::memory_order_acquire) ||
           g == limitHitGen_.load(std::memory_order_acquire);
  }
  // VM::run's entry for an interrupted fiber: finishes a pending channel or select
  // operation (unlinking its sudogs), records the error (no try handler sees it), and
  // returns Exit.
  RunStatus failInterrupted(ObjFiber* fiber);
  // "Interrupted.", "Time limit exceeded." or "Instruction limit exceeded." (the fiber is
  // interrupted).
  const char* interruptMessage(const ObjFiber* fiber) const;
  // Step accounting of the host call with a step limit: whether the fiber's steps count,
  // the budget to give its next run (at most the steps left), and the charge after it.
  bool stepCounted(const ObjFiber* fiber) const {
    return options_.stepLimit != 0 && fiber->gen == limitGen_.load(std::memory_order_acquire);
  }
  std::int64_t stepSlice(std::int64_t budget) const;
  // FiberBody::run, a fiber about to park (a channel's lock held, or a sleep's commit
  // pending): whether it is interrupted (a sequentially consistent check against
  // interrupt()'s store); if so, sysmon's wake passes start again.
  bool interruptedParking(const ObjFiber* fiber);
  void chargeSteps(const ObjFiber* fiber, std::int64_t steps);

 private:
  enum class Limit : std::uint8_t { None, Time, Steps };
  // A host call (VM::call from a host thread) of generation gen starts / ends: arms and
  // disarms its limits.
  void beginLimits(std::uint32_t gen);
  void endLimits();
  void hitLimit(std::uint32_t gen, Limit which);
  // Sysmon's tick (runtime/sysmonhook.h) for this VM: the time limit, then the wake-up of
  // interrupted fibers an interrupt or a limit asked for.
  void pollInterrupts(std::int64_t now);
  void wakeInterrupted();
  // Wakes the fibers of this VM parked on its channels (plain operations, select, join,
  // for-in) that interrupted() says must fail (fiber.cc: the channel records are there).
  void cancelParkedOnChannels();
  void registerInterrupts();
  void unregisterInterrupts();
  friend void pollAllInterrupts();
  // Fibers of generations up to interruptGen_ are interrupted (release by interrupt(),
  // acquire by interrupted(): a CAS max, lock-free, so signal-safe).
  std::atomic<std::uint32_t> interruptGen_{0};
  // The generation of the host call whose limit was hit, and which (limitWhich_ is
  // stored before limitHitGen_'s release).
  std::atomic<std::uint32_t> limitHitGen_{0};
  std::atomic<Limit> limitWhich_{Limit::None};
  // Set (release) when fibers may be parked that must be woken; sysmon's tick exchanges
  // it (acq_rel) and wakes them.
  std::atomic<bool> interruptWake_{false};
  // Wake passes still to make, one per sysmon tick (only sysmon's thread: relaxed).
  std::atomic<int> wakePasses_{0};
  // This VM holds the scheduler's deadlock report (Sched::holdDeadlock) from a wake
  // request until its last pass: a fiber about to be woken is not asleep for good.
  std::atomic<bool> deadlockHeld_{false};
  void requestWake();  // async-signal-safe
  // The running host call's limits: its generation (0: none), the nanotime deadline (0:
  // none) and the steps left. Armed before its main fiber exists (limitGen_'s release
  // publishes the other two).
  std::atomic<std::uint32_t> limitGen_{0};
  std::atomic<std::int64_t> deadline_{0};
  std::atomic<std::int64_t> stepsLeft_{0};

  // --- the host call's cached main fiber (hostcall.cc) -----------------------------------
  // A host call that returned normally keeps its main fiber (with its stack, frames and
  // FiberBody) for the next host call, which reuses it without a P; at most one is kept,
  // and it stays in hostFibers_ (a root) while kept. Exchanged with acq_rel: the keeper's
  // writes to the fiber happen before the taker's.
  std::atomic<ObjFiber*> hostFiberCache_{nullptr};
  // The kept fiber set up to call callee(args) (null when none is kept or it is too small).
  ObjFiber* reuseHostFiber(Value callee, const Value* args, int argc);
  // After the host call of fiber returned normally: whether it is now kept (else the
  // caller drops it from hostFibers_ and releases its body). Needs no lock: the fiber is
  // in hostFibers_ before and after.
  bool keepHostFiber(ObjFiber* fiber);
  // ~VM: the kept fiber's body goes before stopFibers waits for every body.
  void dropHostFiber();
  // Takes a host fiber no G runs out of hostFibers_ and drops the host's reference to its
  // body (read before the erase: an unrooted fiber may be freed at once).
  void unrootHostFiber(ObjFiber* fiber);

 public:
  // --- the live-heap limit (memlimit.cc) -------------------------------------------------
  // This VM's heap owner id (runtime/heapowners.h; 0: not accounted, no memoryLimit).
  std::uint32_t heapOwner() const { return heapOwner_; }
  // Its live heap estimate in bytes (0 when not accounted).
  std::uint64_t heapLive() const;
  // Marks the running thread as running this VM's interpreter (VM::run): only there does
  // an allocation past the limit fail (host entry points and the error path never do).
  class LimitScope {
   public:
    explicit LimitScope(VM* vm);
    ~LimitScope();
    LimitScope(const LimitScope&) = delete;
    LimitScope& operator=(const LimitScope&) = delete;

   private:
    VM* prev_;
  };

 private:
  // allocate's charge of `size` bytes to this VM's owner: past the limit it requests
  // cycles, and after two completed cycles still past it throws runtime::OutOfMemory.
  void chargeHeapOwner(std::size_t size);
  // Acquires the owner id in the constructor (before the VM's body runs) and releases
  // it after ~VM's body.
  struct HeapOwnerHold {
    explicit HeapOwnerHold(VM* vm);
    ~HeapOwnerHold();
    VM* vm;
  };
  std::uint32_t heapOwner_ = 0;    // written once, by HeapOwnerHold's constructor
  std::uint64_t memoryLimit_ = 0;  // likewise
  // Bytes this VM's allocations were charged (fetch_add: exact, unlike allocBytes_).
  std::atomic<std::uint64_t> ownedBytes_{0};
  // 1 + the owner table's cycle count when the estimate went past the limit (0: under it).
  std::atomic<std::uint64_t> overLimitSince_{0};
  HeapOwnerHold heapOwnerHold_{this};
};

}  // namespace spindle::vm
