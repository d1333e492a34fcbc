// spindle.h: Spindle's public embedding API.
//
//   spindle::Vm vm({.gc_percent = 100});
//   vm.defineNative("twice", 1, [](spindle::Vm&, std::span<const spindle::Value> args) {
//     return spindle::Result::success(spindle::Value::number(spindle::checkNumber(args, 0) * 2));
//   });
//   spindle::Result r = vm.run("fun add(a, b) { return a + b; } print twice(21);");
//   if (!r.ok()) std::fputs(r.error().format().c_str(), stderr);
//   spindle::Value add = *vm.global("add");
//   spindle::Result sum = vm.call(add, {spindle::Value::number(1), spindle::Value::number(2)});
//
// Design (cppgc-style: the host never sees raw heap pointers):
//   - Value is a host-side value: nil, bool, number, string (a copy of its bytes) or an
//     object (function, class, instance, list, ...). An object Value owns a persistent
//     handle, a root of the collector, so the object stays alive while the host holds
//     the Value (copies take their own handle). Using an object Value after its Vm was
//     destroyed, or with another Vm, is a fatal error naming the misuse (destroying or
//     moving it is fine).
//   - Errors are values: run/call return a Result holding a Value or an Error (kind,
//     message, trace). Nothing in this API prints (except Lox `print`, which goes to
//     Options::output or stdout), exits or aborts on a script error.
//   - The process runtime: one heap, one collector and one scheduler (procs Ps and the
//     Ms running them) per process, shared by every Vm, as Go has one runtime per
//     process. The first Vm creates it (its process-wide Options apply, see Options)
//     and the last one destroyed ends it, unless the host holds a spindle::Runtime: that
//     creates it (or joins the one alive) and keeps it, with its threads and heap,
//     between Vms, so a Vm then costs only itself to create and destroy. A Vm is its globals, roots, handles, natives
//     and fibers on that runtime: every collection scans every Vm, fibers of all Vms
//     share the Ps, and OS threads are bounded by procs plus the threads in foreign
//     calls, never by the number of Vms.
//   - Threads. One thread drives a Vm at a time; different Vms may be driven from
//     different threads at once. Each entry point binds a P (heap allocation context) to
//     the calling thread for its duration. Natives may call back into their Vm (run,
//     call, global); they run on runtime threads, in parallel when fibers do.
//   - Fibers spawned by a run or call keep running after it returned, until the Vm is
//     destroyed. ~Vm stops its fibers wherever they are (parked, runnable, sleeping; one
//     in a foreign call finishes the call, ~Vm waiting for it, and never resumes) and
//     leaves other Vms undisturbed; its objects become garbage. The last Vm of the
//     process does not wait for foreign calls (the runtime ends, as a Go program does).
//     A spawn statement's fiber's runtime error goes to Options::on_fiber_error when set
//     (a spawn expression's fiber keeps its error for join(); see neverJoined).
//   - Chunks and limits: compile(source, name) compiles without running (errors and
//     traces name the chunk); Options' time_limit/step_limit bound each run/call,
//     interrupt() stops one from any thread, memory_limit bounds a Vm's live heap and
//     Runtime::setMemoryLimit the process's; heapStats() is a Vm's share of the heap.
//   - Native classes (defineClass): a class whose methods are C++ functions receiving
//     `this` and the arguments as Values. Scripts instantiate it, call its methods,
//     subclass it and use `super` as with any Lox class. C++ state is attached to an
//     instance with setHostData<T>(instance, unique_ptr<T>) and read back, typed, with
//     hostData<T>(instance); the collector destroys it (a finalizer) once the instance
//     died, and ~Vm destroys what is still alive:
//
//   struct Counter { double n; };
//   vm.defineClass("Counter")
//       .init(1, [](spindle::Vm& vm, const spindle::Value& self, spindle::Args args) {
//         vm.setHostData(self, std::make_unique<Counter>(Counter{spindle::checkNumber(args, 0)}));
//         return spindle::Result::success({});
//       })
//       .method<Counter>("add", 1, [](spindle::Vm&, const spindle::Value&, Counter& c,
//                                     spindle::Args args) {
//         c.n += spindle::checkNumber(args, 0);
//         return spindle::Result::success(spindle::Value::number(c.n));
//       })
//       .define();
//   vm.run("var c = Counter(1); print c.add(2);");  // 3
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <unordered_map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace spindle {

namespace vm {
class VM;
class Value;
}
namespace runtime {
class Pinner;
}

struct Error;

// The most worker Ps: the default of one per core is clamped to it; Options::procs above
// it is an error Result of the Vm's entry points (never fatal).
inline constexpr int kMaxProcs = 256;

// Options. Process-wide (one runtime per process, shared by every Vm: see "The process
// runtime" above): procs, sched_seed, gc_percent, gctrace, the gcstress modes,
// gccheckmark, clobberfree, gcstoptheworld and gcverify take effect when this Vm (or a Runtime)
// creates the runtime (no Vm or Runtime is alive) and are ignored otherwise. The rest
// are this Vm's.
struct Options {
  // process-wide: worker Ps (0: one per core, at most kMaxProcs). Outside 0..kMaxProcs
  // the Vm is made (with procs clamped) but every run, compile, call and invoke fails
  // with the runtime error "Options::procs is N: it must be 0 (one per core) to 256.".
  int procs = 0;
  // process-wide: a reproducible schedule (0: off). The run is a function of the program,
  // its input and the seed: which fiber runs next, where fibers are preempted, select's
  // choice, where GC cycles run (synchronously, on the fiber that triggered them) and
  // sleep's virtual clock. The Ps' work is serialised onto one thread (docs/STRESS.md).
  std::uint64_t sched_seed = 0;
  int gc_percent = 100;     // process-wide: next goal = live * (1 + gc_percent/100)
  bool gctrace = false;     // process-wide: one line per GC cycle on stderr
  bool stats = false;       // the host may print stats() at exit
  // process-wide: a complete GC cycle every N allocations of a P, blocking the allocating
  // fiber at its next safepoint until it is done (0: off). With pacing off and one P,
  // cycles = allocations / N.
  int gcstress = 0;
  // process-wide: a cycle request every N allocations of a P, never blocking; requests
  // fold while a cycle runs, so with N = 1 cycles run back to back, overlapping the
  // fibers (0: off; gcstress wins when both are set).
  int gcstress_continuous = 0;
  bool gccheckmark = false; // process-wide: verify each mark with a stop-the-world re-mark
  // process-wide (Go's clobberfree): poison freed memory and check it when the slot is
  // handed out again (a write after free is a fatal error), in every build; stays on for
  // the process (debug builds have it on from the start).
  bool clobberfree = false;
  // process-wide (Go's gcstoptheworld=1): every cycle marks with the world stopped (one
  // pause per cycle), to tell a marking bug from a concurrency bug.
  bool gcstoptheworld = false;
  // process-wide: the heap verifier (span map, sweepgen, bits, and every reachable
  // pointer at a live object of a plausible type) runs before and after every cycle; a
  // failure is a fatal error naming the object, its span, the pointer's source and phase.
  bool gcverify = false;
  // The uncaught runtime error (message and trace) of a fiber a spawn statement started
  // (a spawn expression's fiber keeps its error for join()). Set: the callback runs
  // on the runtime thread of the failing fiber (it must not call into a Vm nor block for
  // long) and only that fiber ends; the call that spawned it and every other fiber go on.
  // Empty: Go's rule, as the CLI wants it: the error ends the host call (run/call) the
  // fiber descends from, which fails with it, and stops that call's fibers.
  std::function<void(const Error&)> on_fiber_error = nullptr;
  // FFI checking mode (reject unpinned heap pointers inside memory passed to foreign
  // code); unset: on in builds with invariant checks, off in -c opt.
  std::optional<bool> ffi_check = std::nullopt;
  // Sandboxing: what this Vm's scripts get besides the language. ffi = false leaves out
  // FFI, Bytes and Pinner (no foreign code). Built-in globals named in `without` (e.g.
  // "sleep", "gc", "gcstats", "clock", "math"), or, when `only` is set, every built-in
  // global not named there, are left undefined: a script naming one fails with
  // "Undefined variable 'gc'.". Natives the host defines are always there.
  bool ffi = true;
  std::vector<std::string> without = {};
  std::optional<std::vector<std::string>> only = std::nullopt;
  // Where Lox `print` writes; empty: stdout. Called for one print at a time (the Vm
  // serializes the calls of its fibers on every P), from the printing fiber's thread.
  std::function<void(std::string_view)> output = nullptr;
  // Limits of each run/call (0: none). Past time_limit seconds of wall time, or after
  // step_limit steps (the safepoints its fibers pass: each call and each loop iteration),
  // the run/call fails with the runtime error "Time limit exceeded." / "Instruction limit
  // exceeded." (uncatchable by the script), its fibers (spawned ones included) end, and
  // fibers of earlier runs go on. See Vm::interrupt.
  double time_limit = 0;
  std::uint64_t step_limit = 0;
  // process-wide (Go's debug.SetMaxThreads): the most OS threads the scheduler starts
  // (0: 10000, Go's default). A foreign call that would block one thread too many fails
  // in its fiber with "Thread limit exceeded: ..."; the scheduler itself past it, or the
  // OS refusing a thread, is Go's fatal "thread exhaustion" (exit 2).
  int max_threads = 0;
  // Files, stdin and the process: io = false leaves out readFile, writeFile, appendFile,
  // readLine, eprint, exit and env, and imports read no files (only module_loader's).
  bool io = true;
  // exit(code) (0-255) flushes stdout, then calls on_exit, which ends the program (the
  // CLI's ends the process with the code). Unset, or if it returns, exit() is the runtime
  // error "exit(N) called." in the calling script: a script never ends an embedding host.
  std::function<void(int code)> on_exit = nullptr;
  // Modules (`import "path" as name;`): the main script's file, whose directory imports
  // are relative to (empty: the current directory); Vm::runFile sets it when unset.
  std::string script_path = {};
  // A host's modules from memory: called with an import's path resolved against the
  // importer's ("lib/util.lox"), it returns the module's source, or nullopt to read the
  // file (only when io is on).
  std::function<std::optional<std::string>(const std::string& path)> module_loader = nullptr;
  // process-wide: record an execution trace into this file from this Vm's creation to its
  // destruction (startTrace below; ".html": the offline timeline). Ignored, with a message
  // on stderr, when a trace is already running or the file cannot be opened.
  std::string trace_file = {};
  // This Vm's live heap limit in bytes (0: none). The heap is the process's, shared by
  // every Vm: the collector charges each object it finds reachable to the Vm that
  // allocated it, and a Vm's live heap is what the last cycle found of it plus what it
  // allocated since that cycle began (vm/memlimit.cc). Going past the limit first makes the
  // collector work harder (cycles back to back while the Vm stays past it); once two
  // cycles completed and the Vm is still past it, the allocating script fails with the
  // catchable runtime error "Out of memory." (a fiber's in that fiber), as when the heap
  // cannot grow; the host, the Vm's other fibers and other Vms go on. Only allocations of
  // the Vm's scripts fail; what the host makes through the Vm (list, newBytes, ...) is
  // counted but never refused. A Vm may overshoot the limit by what it allocates during
  // those two cycles. Runtime::kNoMemoryLimit: accounted (heapStats' live_bytes) but not
  // limited. Costs the collector a charge per object marked while some Vm has a limit.
  // At most 1023 Vms with a limit at once: a further one is neither limited nor accounted
  // (heapStats().live_bytes_known is false).
  std::uint64_t memory_limit = 0;
};

class Vm;
class Pinner;

// A host's reference to the process runtime (see "The process runtime" above), for
// hosts that create and destroy Vms over time or want the runtime configured in one
// place. The first of Vms and Runtimes alive creates it with its Options' process-wide
// fields (created() says whether this one did); the runtime ends when the last of them
// is destroyed. Any thread may create or destroy a Runtime; a Runtime destroyed while
// Vms live leaves them running.
//
//   spindle::Runtime runtime({.procs = 4, .gc_percent = 200});
//   for (auto& request : requests) { spindle::Vm vm; vm.run(request.script); }
class Runtime {
 public:
  explicit Runtime(const Options& options = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  // Whether this Runtime created the process runtime (its Options took effect).
  bool created() const { return created_; }
  // The process-wide soft memory limit (Go's debug.SetMemoryLimit, GOMEMLIMIT): the
  // collector's goal never exceeds `bytes` of heap, so cycles come as often as needed to
  // stay under it (back to back when the live heap is past it; allocation does not fail
  // because of it). kNoMemoryLimit: none (the default). Returns the old limit. Static:
  // callable with or without a Runtime or Vm alive, from any thread; it is the same limit
  // a script's setMemoryLimit(bytes) sets and stays until changed.
  static std::uint64_t setMemoryLimit(std::uint64_t bytes);
  static std::uint64_t memoryLimit();
  static constexpr std::uint64_t kNoMemoryLimit = ~std::uint64_t{0};

 private:
  bool created_ = false;
};

namespace detail {
// What a Vm's object Values hold of it: `vm` is the Vm until its internal VM (and the
// handle table) is gone, then null (release store in ~Vm; Values load it with acquire).
// A Value used after that is a fatal error naming the misuse; destroying one is a no-op.
struct VmAnchor {
  std::atomic<Vm*> vm;
};
// Vm's member: nulls the anchor when destroyed (after the internal VM, declared after it).
struct VmAnchorOwner {
  std::shared_ptr<VmAnchor> anchor;
  explicit VmAnchorOwner(Vm* vm) : anchor(std::make_shared<VmAnchor>()) { anchor->vm.store(vm); }
  ~VmAnchorOwner() { anchor->vm.store(nullptr, std::memory_order_release); }
};
}  // namespace detail

class Value {
 public:
  enum class Kind : std::uint8_t { Nil, Bool, Number, String, Object };

  Value() = default;  // nil
  static Value nil() { return Value(); }
  static Value boolean(bool b) {
    Value v;
    v.kind_ = Kind::Bool;
    v.bool_ = b;
    return v;
  }
  static Value number(double d) {
    Value v;
    v.kind_ = Kind::Number;
    v.number_ = d;
    return v;
  }
  static Value string(std::string_view s);

  Value(const Value& other);
  // A moved-from Value is nil.
  Value(Value&& other) noexcept
      : kind_(other.kind_), bool_(other.bool_), handle_(other.handle_), number_(other.number_),
        borrowed_(other.borrowed_) {
    if (other.holdsPayload()) [[unlikely]] takePayload(other);
    other.kind_ = Kind::Nil;
  }
  Value& operator=(Value other) noexcept;
  ~Value() {
    if (holdsPayload()) [[unlikely]] dropPayload();
  }

  Kind kind() const { return kind_; }
  bool isNil() const { return kind_ == Kind::Nil; }
  bool isBool() const { return kind_ == Kind::Bool; }
  bool isNumber() const { return kind_ == Kind::Number; }
  bool isString() const { return kind_ == Kind::String; }
  bool isObject() const { return kind_ == Kind::Object; }
  // Each accessor requires the matching kind: a wrong kind throws TypeError (inside a
  // native, the script's runtime error "f() expected a number (string given).").
  bool asBool() const;
  double asNumber() const {
    if (!isNumber()) [[unlikely]] wrongKind("number");
    return number_;
  }
  const std::string& asString() const;
  // "nil", "bool", "number", "string", or the object's kind ("closure", "instance", ...).
  std::string typeName() const;
  // As Lox `print` shows it.
  std::string toString() const;

 private:
  friend class Vm;
  friend class Pinner;
  // The Vm of an object Value (fatal if it was destroyed).
  Vm& owner() const;
  // The payload lives with kind_: a String holds u_.string (its bytes), an object Value
  // holds u_.anchor (its Vm) and handle_ unless it is borrowed, and the other kinds hold
  // neither. So a nil, bool or number Value is plain data: making, moving and destroying
  // one costs a few stores and one test of kind_ (a native call's arguments and result).
  bool holdsPayload() const { return kind_ >= Kind::String; }
  // On a nil Value: becomes a String, or an object Value holding handle h of anchor's Vm.
  void setString(std::string_view s);
  void setObject(const std::shared_ptr<detail::VmAnchor>& anchor, std::uint32_t h);
  // Moves other's payload here (this Value has the kind but no payload yet).
  void takePayload(Value& other) noexcept;
  // ~Value of a String or object Value: frees the bytes, or releases the handle.
  void dropPayload() noexcept;
  // The accessors' TypeError.
  [[noreturn]] void wrongKind(const char* want) const;
  union Payload {
    Payload() noexcept {}
    ~Payload() {}
    std::string string;
    std::shared_ptr<detail::VmAnchor> anchor;  // the Vm holding handle_
  };
  Kind kind_ = Kind::Nil;
  bool bool_ = false;
  std::uint32_t handle_ = 0;  // an object's persistent handle in its Vm
  double number_ = 0;
  // A native's argument (vm/hostnative.cc): an object Value borrowed from the calling
  // fiber's stack, which roots it for the call, so it holds no handle. borrowed_ is its
  // Vm and number_'s bits are the internal value; a copy takes a handle of its own.
  Vm* borrowed_ = nullptr;
  Payload u_;
};

struct Error {
  enum class Kind : std::uint8_t { Compile, Runtime, Io };
  Kind kind = Kind::Runtime;
  // Compile: every diagnostic, one per line ("[line N] Error at 'x': ..."). Runtime: the
  // message ("Undefined variable 'x'."). Io: what could not be read, and why.
  std::string message;
  // Runtime: "[line N] in fn()" ... "[line N] in script", innermost first.
  std::vector<std::string> trace;
  // message and trace, each line ending in '\n': exactly what clox prints on stderr.
  std::string format() const;
};

class Result {
 public:
  Result() = default;  // a success holding nil
  static Result success(Value v) { return Result(std::move(v)); }
  static Result failure(Error e);
  // A runtime error with this message (what natives return to raise one).
  static Result failure(std::string message);
  Result(const Result& other);
  Result(Result&&) noexcept = default;
  Result& operator=(const Result& other);
  Result& operator=(Result&&) noexcept = default;
  ~Result() = default;

  bool ok() const { return ok_; }
  const Value& value() const;  // requires ok()
  const Error& error() const;  // requires !ok()

 private:
  explicit Result(Value v) : value_(std::move(v)) {}
  bool ok_ = true;
  Value value_;
  // A failure's Error, null on a success: a success (every native call's result) makes
  // and destroys no Error.
  std::unique_ptr<Error> error_;
};

// The whole of a file (a script's source) as a string Value; a file that cannot be opened
// or read (missing, empty path, a directory, no permission) is an Error of kind Io whose
// message names the path and the reason: "cannot open 'x': No such file or directory",
// "cannot read 'd': Is a directory". Vm::runFile reads with it.
Result readFile(const std::string& path);

using Args = std::span<const Value>;

// A value of the wrong kind: thrown by Value's accessors (asNumber on a string, ...) and
// by the argument checks below. A native or method that lets it escape does not end the
// host: the Vm turns it into the calling script's runtime error, as Lua's luaL_check*:
//   checkNumber(args, 1) in hostAdd: "Argument 2 of hostAdd() must be a number (string given)."
//   asNumber() in hostAdd:          "hostAdd() expected a number (string given)."
// Any other exception escaping a native is the runtime error "hostAdd() failed: <what()>.".
class TypeError : public std::exception {
 public:
  // argument: the 0-based argument index, or -1 for an accessor.
  TypeError(std::string want, std::string given, int argument = -1);
  const char* what() const noexcept override { return what_.c_str(); }
  const std::string& want() const { return want_; }    // "number", "bool", "string", "object"
  const std::string& given() const { return given_; }  // the typeName, or "none" (missing)
  int argument() const { return argument_; }
  // The script's message for a native named `native` (no parentheses).
  std::string messageFor(std::string_view native) const;

 private:
  std::string want_, given_, what_;
  int argument_;
};

// Argument i of a native, checked (a missing or wrong one throws TypeError).
double checkNumber(Args args, std::size_t i);
bool checkBool(Args args, std::size_t i);
const std::string& checkString(Args args, std::size_t i);
const Value& checkObject(Args args, std::size_t i);  // function, class, instance, list, ...
using Native = std::function<Result(Vm& vm, std::span<const Value> args)>;
// Whether a native blocks (waits on I/O, a lock, a sleep, another process): a blocking
// native runs in the scheduler's syscall state, as foreign calls do, so its thread gives
// up its processor and other fibers keep running even with procs = 1 (vm/blocking.h).
// It may call back into its Vm (run, call, global, ...: each takes a processor back for
// its duration).
enum class Blocking : bool { No, Yes };
// A native as a plain function and the host's pointer (Vm::defineNative): the call goes
// through no std::function and allocates nothing for its arguments.
using NativeFunction = Result (*)(Vm& vm, Args args, void* data);
// A native method: `self` is the instance the method was called on (`this`: an
// instance of the class or of a subclass), `args` the call's arguments.
using Method = std::function<Result(Vm& vm, const Value& self, Args args)>;

// Builds a native class (Vm::defineClass). Methods have a fixed arity >= 0 (a call
// with another count is the runtime error "Expected N arguments but got M."); a
// failure Result is a runtime error traced from the calling line, as for natives.
class ClassBuilder {
 public:
  // The initializer: `Name(args)` makes an instance and calls it; its result is ignored
  // (the call returns the instance). Subclasses inherit it and reach it with super.init.
  ClassBuilder& init(int arity, Method fn) { return method("init", arity, std::move(fn)); }
  ClassBuilder& method(std::string_view name, int arity, Method fn);
  // A method on the instance's host state of type T (setHostData<T>):
  //   fn(Vm&, const Value& self, T& state, Args) -> Result.
  // Called on an instance without such state (a subclass whose init did not call
  // super.init) it is the runtime error "Name.method() needs an instance whose init
  // ran."
  template <typename T, typename F>
  ClassBuilder& method(std::string_view name, int arity, F fn);
  // Defines the class as the global `name` and returns it (a class Value). Calling it
  // again makes another class and replaces the global; instances of the old class keep
  // their methods. A ClassBuilder must not outlive its Vm.
  Value define();

 private:
  friend class Vm;
  ClassBuilder(Vm& vm, std::string_view name) : vm_(&vm), name_(name) {}
  struct Def {
    std::string name;
    int arity;
    Method fn;
    // method<T> of a captureless F: fn is empty and state(vm, self, T*, args) is called
    // with the instance's host state of type tag (null: the "needs an instance" error).
    Result (*state)(Vm&, const Value&, void*, Args) = nullptr;
    const void* tag = nullptr;
  };
  Vm* vm_;
  std::string name_;
  std::vector<Def> methods_;
};

namespace detail {
// One address per C++ type (a function-local static of an inline function is unique
// in the program): the type check of host data, without RTTI.
template <typename T>
const void* hostTypeTag() {
  static const char tag = 0;
  return &tag;
}
}  // namespace detail

struct Stats {
  std::uint64_t objects = 0;        // objects allocated by the VM
  std::uint64_t bytes = 0;          // bytes requested for them
  std::uint64_t heap_in_use = 0;    // bytes in heap spans
  std::uint64_t heap_sys = 0;       // bytes of arena memory committed
  std::vector<std::pair<std::string, std::uint64_t>> by_kind;  // allocations per kind
  std::uint64_t gc_cycles = 0;      // completed collector cycles (process-wide)
  std::int64_t gc_max_pause_ns = 0; // longest stop-the-world pause
  std::int64_t gc_total_pause_ns = 0;
};

// A Vm's share of the heap (Vm::heapStats). Allocation counts are kept per Vm without a
// locked instruction (allocating fibers may lose a count: approximate under parallelism).
struct HeapStats {
  std::uint64_t objects_allocated = 0;  // objects this Vm allocated since it was made
  std::uint64_t bytes_allocated = 0;    // bytes requested for them
  std::uint64_t gc_cycles = 0;          // process cycles completed since this Vm was made
  // With Options::memory_limit set: the Vm's live heap as its limit sees it (the last
  // cycle's reachable bytes of it plus what it allocated since that cycle began) and what
  // that cycle found reachable; live_bytes_known false (both 0) without a limit.
  bool live_bytes_known = false;
  std::uint64_t live_bytes = 0;
  std::uint64_t marked_bytes = 0;
};

namespace detail {
// Completed collector cycles of the process (0 before the runtime's first).
std::uint64_t gcCycles();
}  // namespace detail

class Vm {
 public:
  explicit Vm(Options options = {});
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  // Compiles and runs a script (globals persist across calls, as in a REPL). The
  // value of a successful run is nil.
  Result run(std::string_view source);
  // Reads (readFile) and runs a file; an unreadable file is an Error of kind Io.
  Result runFile(const std::string& path);
  // Calls a callable Value (function, bound method, class, native) with arguments.
  Result call(const Value& callee, std::span<const Value> args);
  Result call(const Value& callee, std::initializer_list<Value> args) {
    return call(callee, std::span<const Value>(args.begin(), args.size()));
  }
  // Calls receiver.method(args...) exactly as a script's `receiver.method(...)` does: a
  // method of its class, a field holding a callable, or a built-in method of a list,
  // string, map or channel. A method that is not an identifier is the failure "Invalid
  // method name 'x'."; a missing one the script's "Undefined property 'x'.".
  Result invoke(const Value& receiver, std::string_view method, std::span<const Value> args);
  Result invoke(const Value& receiver, std::string_view method, std::initializer_list<Value> args) {
    return invoke(receiver, method, std::span<const Value>(args.begin(), args.size()));
  }

  // A global's value, or nullopt when it is not defined.
  std::optional<Value> global(std::string_view name);
  void setGlobal(std::string_view name, const Value& value);
  // Defines a global native function; arity -1 accepts any number of arguments.
  void defineNative(std::string_view name, int arity, Native fn);
  // The same, declaring whether it blocks (Blocking::Yes: see Blocking).
  void defineNative(std::string_view name, int arity, Native fn, Blocking blocking);
  // A native as a plain function: fn(vm, args, data) (data is the host's, never touched).
  void defineNative(std::string_view name, int arity, NativeFunction fn, void* data,
                    Blocking blocking = Blocking::No);
  // A captureless lambda or a function Result(Vm&, Args): called as a plain function.
  template <typename F>
    requires std::is_convertible_v<F, Result (*)(Vm&, Args)>
  void defineNative(std::string_view name, int arity, F fn, Blocking blocking = Blocking::No) {
    definePlainNative(name, arity, static_cast<Result (*)(Vm&, Args)>(fn), blocking);
  }
  // Starts a native class: vm.defineClass("Name").init(...).method(...).define().
  ClassBuilder defineClass(std::string_view name) { return ClassBuilder(*this, name); }

  // Host state of an instance (any instance: of a native class or not). One per
  // instance and typed: hostData<T> returns it only as the T it was stored as (null for
  // another type, no state, or a Value that is not an instance). The state lives as long
  // as the instance: it is destroyed (~T) by a finalizer on a collector thread once
  // the instance is unreachable, or by ~Vm; so ~T must be safe to run on another
  // thread and must not run code in the Vm (it may drop Values it holds; note that a
  // Value held by the state is a root: one referring back to its own instance keeps
  // both alive until ~Vm). Setting state again replaces it (the old state is
  // destroyed when the collector finds it unreachable, not at once). Native methods run
  // on any of the Vm's threads, in parallel when fibers do: share T accordingly.
  // setHostData returns false (destroying `state`) when `instance` is not an instance.
  template <typename T>
  bool setHostData(const Value& instance, std::unique_ptr<T> state) {
    return setHostDataRaw(instance, state.release(), detail::hostTypeTag<T>(),
                          [](void* p) { delete static_cast<T*>(p); });
  }
  // The pointer stays valid while the instance is alive and its state not replaced.
  template <typename T>
  T* hostData(const Value& instance) {
    return static_cast<T*>(hostDataRaw(instance, detail::hostTypeTag<T>()));
  }
  // An instance's field (nullopt: no such field, or not an instance).
  std::optional<Value> field(const Value& instance, std::string_view name);
  // Sets (or adds) a field; false when `instance` is not an instance.
  bool setField(const Value& instance, std::string_view name, const Value& value);
  // A new list holding `items`.
  Value list(std::span<const Value> items);
  // A list's length and elements, as a script sees them (fibers may change the list
  // meanwhile; each call is one read or write). nullopt / false: not a list, or (get and
  // set) the index is out of range.
  std::optional<std::size_t> listLength(const Value& list);
  std::optional<Value> listGet(const Value& list, std::size_t index);
  bool listSet(const Value& list, std::size_t index, const Value& value);
  bool listPush(const Value& list, const Value& value);

  // A new zeroed Bytes buffer of n bytes (the FFI's buffers, see docs/LANGUAGE.md).
  Value newBytes(std::size_t n);
  // The memory of a Bytes Value (empty for any other Value). The address is stable for
  // the object's life (the collector does not move); foreign code may keep it past a
  // call only while the Bytes is pinned (spindle::Pinner).
  std::span<std::uint8_t> bytes(const Value& v);

  // The bytecode listing of `source` (a string Value), or its compile errors.
  Result disassemble(std::string_view source);

  Stats stats() const;
  // One line per fiber started by a spawn expression that failed and that no join()
  // saw, "fiber N failed and was never joined: <message>", in fiber order; the records
  // go. A host calls it when its program ends (the CLI prints them to stderr).
  std::vector<std::string> neverJoined();
  // A full collection (Lua's lua_gc(LUA_GCCOLLECT), Go's runtime.GC) on the calling
  // thread; from a host thread it then waits until the finalizers that cycle queued have
  // run (a leaked Pinner is reported by one). Inside a native only the collection runs
  // (the finalizer G may need the native's P).
  void collect();
  const Options& options() const { return options_; }
  // Stops the running code: async-signal-safe (a SIGINT handler may call it) and callable
  // from any thread. Every fiber of this Vm alive now (the running run/call's and those
  // earlier runs left) fails at its next safepoint with the runtime error "Interrupted.",
  // which try/catch does not catch; fibers parked on a channel, select, join or sleep are
  // woken to fail too (within about a millisecond). The run/call fails with that error;
  // later runs and calls work normally. A native running C++ is not interrupted (its
  // fiber fails once the native returns). The same holds under sched_seed.
  void interrupt();
  // Compiles a chunk without running it: a function Value of no parameters whose call
  // (call(fn, {})) runs the chunk's top level, as run(source) does; globals it declares
  // are this Vm's globals. `name` is the chunk's name (a file name, "update.lox"): its
  // frames in runtime traces name it ("[line 12] in update() (update.lox)", the style of
  // imported modules) and so does every compile error line ("update.lox: [line 2] Error at
  // ';': Expect expression."). Empty: unnamed, as run(source). Imports in a named chunk
  // resolve as in the main script. A compile error is an Error of kind Compile.
  Result compile(std::string_view source, std::string_view name = {});
  // compile(source, name), then the call: run with the chunk's name in errors and traces.
  Result run(std::string_view source, std::string_view name);
  // This Vm's share of the heap (stats() has the process figures): what its scripts and
  // the host through it allocated, and the collector cycles since it was created.
  HeapStats heapStats() const;
  // The VM's internals, for tests and the collector.
  vm::VM& internal() { return *vm_; }

 private:
  // What is wrong with options_ (see Options::procs), or nullopt; every entry point that
  // runs code fails with it.
  std::optional<Error> optionsError_;
  friend class Value;
  friend class Pinner;
  Value fromInternal(vm::Value x);
  vm::Value toInternalValue(const Value& x);
  // hostnative.cc: a native's or native method's call, as the internal VM's native.
  struct NativeRecord;
  static bool callNative(vm::VM& v, const void* record, int argc, vm::Value* args, vm::Value* result);
  void definePlainNative(std::string_view name, int arity, Result (*fn)(Vm&, Args), Blocking blocking);
  void defineRecord(std::string_view name, int arity, std::shared_ptr<NativeRecord> record);
  // A native's argument x as a Value borrowed from the fiber's stack (Value::borrowed_).
  Value borrow(vm::Value x);
  bool setHostDataRaw(const Value& instance, void* data, const void* tag, void (*destroy)(void*));
  void* hostDataRaw(const Value& instance, const void* tag);
  friend class ClassBuilder;
  // hostcall_api.cc: call() when no argument is a string (none needs a P to convert),
  // and the host Value of a call's result held by handle h (h is adopted or released).
  Result callDirect(const Value& callee, std::span<const Value> args);
  Value adoptResult(std::uint32_t h, vm::Value result);
  // field() of an instance whose fields are inline, when the field is no string or
  // object, and setGlobal() of a value that is no string: without a P (true: answered).
  bool fieldDirect(const Value& instance, std::string_view name, std::optional<Value>* out);
  bool setGlobalDirect(std::string_view name, const Value& value);
  Options options_;
  detail::VmAnchorOwner anchor_{this};  // nulled after vm_ is gone
  std::unique_ptr<vm::VM> vm_;
  // invoke's compiled trampolines, by "method/argc" (destroyed before vm_).
  std::mutex invokersLock_;
  std::unordered_map<std::string, Value> invokers_;
  // The process's completed collector cycles when this Vm was made (heapStats).
  std::uint64_t gcCyclesAtStart_ = detail::gcCycles();
};

template <typename T, typename F>
ClassBuilder& ClassBuilder::method(std::string_view name, int arity, F fn) {
  if constexpr (std::is_empty_v<F> && std::is_default_constructible_v<F>) {
    // Captureless: a plain function per (T, F), called with the state found by the call.
    ClassBuilder& self = method(name, arity, Method());
    methods_.back().state = [](Vm& vm, const Value& instance, void* state, Args args) -> Result {
      return F()(vm, instance, *static_cast<T*>(state), args);
    };
    methods_.back().tag = detail::hostTypeTag<T>();
    return self;
  }
  std::string uninitialised = name_ + "." + std::string(name) + "() needs an instance whose init ran.";
  return method(name, arity,
                [fn = std::move(fn), uninitialised](Vm& vm, const Value& self, Args args) -> Result {
                  T* state = vm.hostData<T>(self);
                  if (state == nullptr) return Result::failure(uninitialised);
                  return fn(vm, self, *state, args);
                });
}

// Pins objects for foreign code (runtime::Pinner, Go's runtime.Pinner): a pinned object
// stays alive and at its address until unpin(), even with no other reference, so its
// address (e.g. Vm::bytes) may be kept by C code between calls. Destroying a Pinner
// that still holds pins is a leak: it is reported on stderr and the pins are released.
// Use a Pinner on the thread that drives its Vm; it must not outlive the Vm.
// The execution trace (runtime/trace.h, docs/ARCHITECTURE.md "Execution trace"):
// process-wide, one at a time. startTrace records every fiber, scheduler and collector
// event into path (Chrome trace-event JSON, which Perfetto and chrome://tracing open; a
// path ending in ".html" gets the self-contained timeline of `spindle trace view`) until
// stopTrace, which writes the file. Each returns false, with *error set when given, when
// a trace is already running / none is, or the file cannot be opened or written.
bool startTrace(const std::string& path, std::string* error = nullptr);
bool stopTrace(std::string* error = nullptr);
bool tracing();
namespace detail {
// Options::trace_file: Vm's constructor starts the trace; its destructor stops it if
// that Vm started it.
void startOptionsTrace(const Vm* vm, const std::string& path);
void stopOptionsTrace(const Vm* vm);
}  // namespace detail

class Pinner {
 public:
  explicit Pinner(Vm& vm);
  ~Pinner();
  Pinner(const Pinner&) = delete;
  Pinner& operator=(const Pinner&) = delete;

  // Pins an object Value (an error Result for nil, bools, numbers and strings, which
  // the host holds by copy).
  Result pin(const Value& v);
  // Releases every pin of this Pinner.
  void unpin();
  bool isPinned(const Value& v) const;

 private:
  Vm* vm_;
  std::unique_ptr<runtime::Pinner> pinner_;
};

}  // namespace spindle
