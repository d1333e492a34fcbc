// spindle.cc: the embedding API (spindle.h) over the internal VM (vm.h).
#include "vm/spindle.h"
#include "vm/blocking.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <thread>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "lang/disassembler.h"
#include "runtime/mfinal.h"
#include "runtime/mheap.h"
#include "runtime/pinner.h"
#include "runtime/proc.h"
#include "runtime/throw.h"
#include "runtime/gc.h"
#include "vm/barrier.h"
#include "vm/ffi.h"
#include "vm/vm.h"

namespace spindle {

// --- Value ---------------------------------------------------------------------------------

Value Value::string(std::string_view s) {
  Value v;
  v.setString(s);
  return v;
}

void Value::setString(std::string_view s) {
  new (&u_.string) std::string(s);  // may throw bad_alloc: the Value stays nil
  kind_ = Kind::String;
}

void Value::setObject(const std::shared_ptr<detail::VmAnchor>& anchor, std::uint32_t h) {
  new (&u_.anchor) std::shared_ptr<detail::VmAnchor>(anchor);
  handle_ = h;
  borrowed_ = nullptr;
  kind_ = Kind::Object;
}

void Value::takePayload(Value& other) noexcept {
  if (other.kind_ == Kind::String) {
    new (&u_.string) std::string(std::move(other.u_.string));
    other.u_.string.~basic_string();
  } else if (other.borrowed_ == nullptr) {
    new (&u_.anchor) std::shared_ptr<detail::VmAnchor>(std::move(other.u_.anchor));
    other.u_.anchor.~shared_ptr();
  }
  other.borrowed_ = nullptr;
}

void Value::dropPayload() noexcept {
  if (kind_ == Kind::String) {
    u_.string.~basic_string();
    return;
  }
  if (borrowed_ != nullptr) return;
  // A Value outliving its Vm: its handle went with the Vm's handle table.
  if (Vm* v = u_.anchor->vm.load(std::memory_order_acquire)) v->vm_->releaseHandle(handle_);
  u_.anchor.~shared_ptr();
}

Vm& Value::owner() const {
  if (borrowed_ != nullptr) return *borrowed_;
  Vm* v = u_.anchor->vm.load(std::memory_order_acquire);
  SPINDLE_CHECK(v != nullptr, "spindle::Value (object, handle {}) used after its Vm was destroyed",
                handle_);
  return *v;
}

Value::Value(const Value& o) : bool_(o.bool_), number_(o.number_) {
  // kind_ is set last: a copy that throws (bad_alloc) has constructed no payload.
  if (o.kind_ == Kind::String) {
    new (&u_.string) std::string(o.u_.string);
  } else if (o.kind_ == Kind::Object) {
    Vm& owner = o.owner();
    vm::VM& in = *owner.vm_;
    // A borrowed one is a native's argument, rooted by its fiber's stack while the native runs.
    const std::uint32_t h = o.borrowed_ != nullptr ? in.newHandle(owner.toInternalValue(o))
                                                   : in.newHandle(in.handleValue(o.handle_));
    new (&u_.anchor) std::shared_ptr<detail::VmAnchor>(owner.anchor_.anchor);
    handle_ = h;
  }
  kind_ = o.kind_;
}

Value& Value::operator=(Value o) noexcept {
  // o is this Value's new contents (copied or moved in by the caller): the old ones go,
  // and o's move into place cannot throw.
  this->~Value();
  new (this) Value(std::move(o));
  return *this;
}

bool Value::asBool() const {
  if (!isBool()) throw TypeError("bool", typeName());
  return bool_;
}
void Value::wrongKind(const char* want) const { throw TypeError(want, typeName()); }
const std::string& Value::asString() const {
  if (!isString()) throw TypeError("string", typeName());
  return u_.string;
}

// --- TypeError and argument checks ---------------------------------------------------------

TypeError::TypeError(std::string want, std::string given, int argument)
    : want_(std::move(want)), given_(std::move(given)), argument_(argument) {
  what_ = argument_ < 0 ? fmt::format("expected a {} ({} given)", want_, given_)
                        : fmt::format("argument {} must be a {} ({} given)", argument_ + 1, want_, given_);
}

std::string TypeError::messageFor(std::string_view native) const {
  if (argument_ < 0) return fmt::format("{}() expected a {} ({} given).", native, want_, given_);
  return fmt::format("Argument {} of {}() must be a {} ({} given).", argument_ + 1, native, want_,
                     given_);
}

namespace {
const Value& argument(Args args, std::size_t i, const char* want, bool (Value::*is)() const) {
  if (i >= args.size()) throw TypeError(want, "none", static_cast<int>(i));
  if (!(args[i].*is)()) throw TypeError(want, args[i].typeName(), static_cast<int>(i));
  return args[i];
}
}  // namespace

double checkNumber(Args args, std::size_t i) { return argument(args, i, "number", &Value::isNumber).asNumber(); }
bool checkBool(Args args, std::size_t i) { return argument(args, i, "bool", &Value::isBool).asBool(); }
const std::string& checkString(Args args, std::size_t i) {
  return argument(args, i, "string", &Value::isString).asString();
}
const Value& checkObject(Args args, std::size_t i) { return argument(args, i, "object", &Value::isObject); }
std::string Value::typeName() const {
  switch (kind_) {
    case Kind::Nil: return "nil";
    case Kind::Bool: return "bool";
    case Kind::Number: return "number";
    case Kind::String: return "string";
    case Kind::Object: return vm::VM::typeName(owner().toInternalValue(*this));
  }
  return "?";
}
std::string Value::toString() const {
  switch (kind_) {
    case Kind::Nil: return "nil";
    case Kind::Bool: return bool_ ? "true" : "false";
    case Kind::Number: return vm::VM::toStringNumber(number_);
    case Kind::String: return u_.string;
    case Kind::Object: return owner().vm_->toString(owner().toInternalValue(*this));
  }
  return "?";
}

// --- Error and Result --------------------------------------------------------------------------

std::string Error::format() const {
  std::string out = message;
  if (!out.empty() && out.back() != '\n') out += '\n';
  for (const std::string& t : trace) {
    out += t;
    out += '\n';
  }
  return out;
}

Result Result::failure(Error e) {
  Result r;
  r.ok_ = false;
  r.error_ = std::make_unique<Error>(std::move(e));
  return r;
}
Result::Result(const Result& o)
    : ok_(o.ok_), value_(o.value_), error_(o.error_ ? std::make_unique<Error>(*o.error_) : nullptr) {}
Result& Result::operator=(const Result& o) {
  if (this != &o) *this = Result(o);
  return *this;
}
Result Result::failure(std::string message) {
  return failure(Error{Error::Kind::Runtime, std::move(message), {}});
}
const Value& Result::value() const {
  SPINDLE_CHECK(ok_, "spindle::Result::value on an error: {}", error_->message);
  return value_;
}
const Error& Result::error() const {
  SPINDLE_CHECK(!ok_, "spindle::Result::error on a success");
  return *error_;
}

// --- Vm --------------------------------------------------------------------------------------

namespace {

static_assert(kMaxProcs == runtime::kMaxProcs, "spindle.h's kMaxProcs is the scheduler's");

vm::VMOptions internalOptions(const Options& o) {
  vm::VMOptions v;
  v.procs = std::clamp(o.procs, 0, kMaxProcs);  // out of range: optionsError_ (spindle.h)
  v.schedSeed = o.sched_seed;
  v.gcPercent = o.gc_percent;
  v.gctrace = o.gctrace;
  v.stats = o.stats;
  v.gcstress = o.gcstress;
  v.gcstressContinuous = o.gcstress_continuous;
  v.gccheckmark = o.gccheckmark;
  v.clobberfree = o.clobberfree;
  v.gcstoptheworld = o.gcstoptheworld;
  v.gcverify = o.gcverify;
  if (o.ffi_check.has_value()) v.ffiCheck = *o.ffi_check;
  v.output = o.output;
  v.ffi = o.ffi;
  v.without = o.without;
  v.only = o.only;
  v.timeLimit = o.time_limit;
  v.stepLimit = o.step_limit;
  v.maxThreads = o.max_threads;
  v.io = o.io;
  v.onExit = o.on_exit;
  v.scriptPath = o.script_path;
  v.moduleLoader = o.module_loader;
  v.memoryLimit = o.memory_limit;
  if (o.on_fiber_error) {
    v.onFiberError = [fn = o.on_fiber_error](const vm::RuntimeErrorInfo& e) {
      fn(Error{Error::Kind::Runtime, e.message, e.trace});
    };
  }
  return v;
}

Error runtimeError(const vm::VM& v) {
  return Error{Error::Kind::Runtime, v.lastError().message, v.lastError().trace};
}

// A compile error as a Result: the diagnostics, one per line, without a trailing newline.
Result compileFailure(const lang::CompileResult& compiled) {
  std::string msg = lang::formatDiagnostics(compiled.diagnostics);
  if (!msg.empty() && msg.back() == '\n') msg.pop_back();
  return Result::failure(Error{Error::Kind::Compile, std::move(msg), {}});
}

}  // namespace

// --- Runtime ---------------------------------------------------------------------------------

Runtime::Runtime(const Options& options)
    : created_(vm::VM::retainRuntime(internalOptions(options))) {}

Runtime::~Runtime() { vm::VM::releaseRuntime(); }

Vm::Vm(Options options)
    : options_(std::move(options)), vm_(std::make_unique<vm::VM>(internalOptions(options_))) {
  if (options_.procs < 0 || options_.procs > kMaxProcs) {
    optionsError_ = Error{Error::Kind::Runtime,
                          fmt::format("Options::procs is {}: it must be 0 (one per core) to {}.",
                                      options_.procs, kMaxProcs),
                          {}};
  }
  detail::startOptionsTrace(this, options_.trace_file);
}
Vm::~Vm() { detail::stopOptionsTrace(this); }

// Internal <-> host conversions (toInternal may allocate: callers hold a P, VM::withP).
static vm::Value toInternal(vm::VM& v, const Value& x) {
  switch (x.kind()) {
    case Value::Kind::Nil: return vm::Value::nil();
    case Value::Kind::Bool: return vm::Value::boolean(x.asBool());
    case Value::Kind::Number: return vm::Value::number(x.asNumber());
    case Value::Kind::String: return vm::Value::object(v.intern(x.asString()));
    case Value::Kind::Object: break;
  }
  return vm::Value::nil();
}

Value Vm::fromInternal(vm::Value x) {
  if (x.isNumber()) return Value::number(x.asNumber());
  if (x.isBool()) return Value::boolean(x.asBool());
  if (!x.isObj()) return Value();
  if (vm::isKind(x, vm::ObjKind::String)) return Value::string(vm::as<vm::ObjString>(x)->view());
  Value out;
  out.setObject(anchor_.anchor, vm_->newHandle(x));
  return out;
}

vm::Value Vm::toInternalValue(const Value& x) {
  if (x.isObject()) {
    SPINDLE_CHECK(&x.owner() == this, "spindle::Value used with a Vm it does not belong to");
    if (x.borrowed_ != nullptr) return vm::Value::fromBits(std::bit_cast<std::uint64_t>(x.number_));
    return vm_->handleValue(x.handle_);
  }
  return toInternal(*vm_, x);
}

// The script runs as the main G of the VM's scheduler (vm::VM::call); until then its
// closure is held through a handle (a root).
Result Vm::run(std::string_view source) {
  if (optionsError_) return Result::failure(*optionsError_);
  lang::CompileResult compiled = vm_->compile(source);
  if (!compiled.ok()) return compileFailure(compiled);
  std::uint32_t handle = 0;
  vm_->withP([&] { handle = vm_->newHandle(vm::Value::object(vm_->load(compiled.script))); });
  vm::Value result;
  const bool ok = vm_->call(vm_->handleValue(handle), nullptr, 0, &result);
  vm_->releaseHandle(handle);
  if (!ok) return Result::failure(runtimeError(*vm_));
  return Result::success(Value());
}

Result readFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return Result::failure(Error{Error::Kind::Io,
                                 "cannot open '" + path + "': " + std::strerror(errno), {}});
  }
  std::string source;
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) source.append(buf, n);
  const int err = std::ferror(f) != 0 ? errno : 0;  // a directory opens, but reads EISDIR
  std::fclose(f);
  if (err != 0) {
    return Result::failure(Error{Error::Kind::Io,
                                 "cannot read '" + path + "': " + std::strerror(err), {}});
  }
  return Result::success(Value::string(source));
}

Result Vm::runFile(const std::string& path) {
  Result source = readFile(path);
  if (!source.ok()) return source;
  vm_->setScriptPathIfUnset(path);  // imports are relative to its directory
  return run(source.value().asString());
}

Result Vm::call(const Value& callee, std::span<const Value> args) {
  if (optionsError_) [[unlikely]] return Result::failure(*optionsError_);
  if (!callee.isString() && std::none_of(args.begin(), args.end(), [](const Value& a) { return a.isString(); })) {
    return callDirect(callee, args);  // hostcall_api.cc: no P, no handle
  }
  // Arguments are converted with a P (strings are interned) and held by handles until
  // the call's fiber has them on its stack.
  std::vector<std::uint32_t> handles;
  vm_->withP([&] {
    handles.push_back(vm_->newHandle(toInternalValue(callee)));
    for (const Value& a : args) handles.push_back(vm_->newHandle(toInternalValue(a)));
  });
  std::vector<vm::Value> internal;
  for (std::size_t i = 1; i < handles.size(); ++i) internal.push_back(vm_->handleValue(handles[i]));
  vm::Value result;
  std::uint32_t resultHandle = 0;
  const bool ok = vm_->call(vm_->handleValue(handles[0]), internal.data(),
                            static_cast<int>(internal.size()), &result, &resultHandle);
  for (std::uint32_t h : handles) vm_->releaseHandle(h);
  if (!ok) return Result::failure(runtimeError(*vm_));
  // An object result is held by resultHandle; it becomes a host Value with a P (a
  // string's bytes are read, an object gets its own handle). Other results are values.
  if (!result.isObj()) return Result::success(fromInternal(result));
  Value out;
  vm_->withP([&] { out = fromInternal(vm_->handleValue(resultHandle)); });
  vm_->releaseHandle(resultHandle);
  return Result::success(std::move(out));
}

// A trampoline per method name and argument count, compiled once:
//   fun __invoke_<method>_<n>(o, a0, ...) { return o.<method>(a0, ...); }
// so the interpreter's INVOKE decides what the method is. Its global is made undefined
// again at once (scripts do not see it); the host keeps the function in invokers_.
Result Vm::invoke(const Value& receiver, std::string_view method, std::span<const Value> args) {
  if (optionsError_) [[unlikely]] return Result::failure(*optionsError_);
  const bool identifier =
      !method.empty() && (std::isalpha(static_cast<unsigned char>(method[0])) || method[0] == '_') &&
      std::all_of(method.begin(), method.end(),
                  [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
  const Result invalid = Result::failure(fmt::format("Invalid method name '{}'.", method));
  if (!identifier) return invalid;
  const std::string key = fmt::format("{}/{}", method, args.size());
  std::optional<Value> fn;
  {
    std::lock_guard<std::mutex> lk(invokersLock_);
    if (auto it = invokers_.find(key); it != invokers_.end()) fn = it->second;
  }
  if (!fn) {
    std::string params = "o", passed;
    for (std::size_t i = 0; i < args.size(); ++i) {
      params += fmt::format(", a{}", i);
      passed += fmt::format("{}a{}", i == 0 ? "" : ", ", i);
    }
    const std::string name = fmt::format("__invoke_{}_{}", method, args.size());
    // A keyword is no method name: the trampoline does not compile.
    if (!run(fmt::format("fun {}({}) {{ return o.{}({}); }}", name, params, method, passed)).ok()) return invalid;
    fn = global(name);
    if (!fn) return invalid;
    vm_->withP([&] { vm_->setGlobal(vm_->globalSlot(name), vm::Value::undefined()); });
    std::lock_guard<std::mutex> lk(invokersLock_);
    invokers_.emplace(key, *fn);
  }
  std::vector<Value> all;
  all.reserve(args.size() + 1);
  all.push_back(receiver);
  all.insert(all.end(), args.begin(), args.end());
  return call(*fn, all);
}

std::optional<Value> Vm::global(std::string_view name) {
  const std::int64_t slot = vm_->globalNames().find(name);
  if (slot < 0) return std::nullopt;
  // With a P: the global may be overwritten by a fiber at any time, so reading it and
  // rooting it in a handle must not straddle a whole collection.
  std::optional<Value> out;
  vm_->withP([&] {
    vm::Value v = vm_->global(static_cast<std::uint32_t>(slot));
    if (!v.isUndefined()) out = fromInternal(v);
  });
  return out;
}

void Vm::setGlobal(std::string_view name, const Value& value) {
  if (setGlobalDirect(name, value)) return;
  vm_->withP([&] { vm_->setGlobal(vm_->cachedGlobalSlot(name), toInternalValue(value)); });
}

// --- native classes, host data, fields ------------------------------------------------------

ClassBuilder& ClassBuilder::method(std::string_view name, int arity, Method fn) {
  SPINDLE_CHECK(arity >= 0, "spindle::ClassBuilder::method {}.{}: arity {} (must be >= 0)", name_,
                name, arity);
  methods_.push_back(Def{std::string(name), arity, std::move(fn)});
  return *this;
}

bool Vm::setHostDataRaw(const Value& instance, void* data, const void* tag, void (*destroy)(void*)) {
  if (!instance.isObject()) {
    destroy(data);
    return false;
  }
  bool ok = false;
  vm_->withP([&] { ok = vm_->setHostData(toInternalValue(instance), data, tag, destroy); });
  return ok;
}

void* Vm::hostDataRaw(const Value& instance, const void* tag) {
  if (!instance.isObject()) return nullptr;
  return vm_->hostData(toInternalValue(instance), tag);
}

std::optional<Value> Vm::field(const Value& instance, std::string_view name) {
  std::optional<Value> out;  // one local for both ways: returned without a move
  if (!instance.isObject() || fieldDirect(instance, name, &out)) return out;
  // With a P, as global(): a fiber may overwrite the field meanwhile.
  vm_->withP([&] {
    vm::Value v;
    if (vm_->getField(toInternalValue(instance), name, &v)) out = fromInternal(v);
  });
  return out;
}

bool Vm::setField(const Value& instance, std::string_view name, const Value& value) {
  if (!instance.isObject()) return false;
  bool ok = false;
  vm_->withP([&] { ok = vm_->setField(toInternalValue(instance), name, toInternalValue(value)); });
  return ok;
}

Value Vm::list(std::span<const Value> items) {
  Value out;
  vm_->withP([&] {
    std::vector<vm::Value> internal;
    for (const Value& a : items) internal.push_back(toInternalValue(a));
    out = fromInternal(vm::Value::object(
        vm_->newList(static_cast<std::uint32_t>(internal.size()), internal.data())));
  });
  return out;
}

// The list access below reads and writes as GET_INDEX / SET_INDEX do (barrier.h
// listCount, listLoad, listStore), inside withP.
namespace {
vm::ObjList* asList(vm::Value v) {
  return vm::isKind(v, vm::ObjKind::List) ? vm::as<vm::ObjList>(v) : nullptr;
}
}  // namespace

std::optional<std::size_t> Vm::listLength(const Value& list) {
  if (!list.isObject()) return std::nullopt;
  std::optional<std::size_t> out;
  vm_->withP([&] {
    if (vm::ObjList* l = asList(toInternalValue(list))) out = vm::listCount(l);
  });
  return out;
}

std::optional<Value> Vm::listGet(const Value& list, std::size_t index) {
  if (!list.isObject()) return std::nullopt;
  std::optional<Value> out;
  vm_->withP([&] {
    vm::ObjList* l = asList(toInternalValue(list));
    if (l != nullptr && index < vm::listCount(l)) out = fromInternal(vm::listLoad(l, static_cast<std::uint32_t>(index)));
  });
  return out;
}

bool Vm::listSet(const Value& list, std::size_t index, const Value& value) {
  if (!list.isObject()) return false;
  bool ok = false;
  vm_->withP([&] {
    vm::ObjList* l = asList(toInternalValue(list));
    if (l == nullptr || index >= vm::listCount(l)) return;
    vm::listStore(l, static_cast<std::uint32_t>(index), toInternalValue(value));
    ok = true;
  });
  return ok;
}

bool Vm::listPush(const Value& list, const Value& value) {
  if (!list.isObject()) return false;
  bool ok = false;
  vm_->withP([&] {
    if (vm::ObjList* l = asList(toInternalValue(list))) {
      vm_->listPush(l, toInternalValue(value));
      ok = true;
    }
  });
  return ok;
}

Result Vm::disassemble(std::string_view source) {
  lang::CompileResult compiled = vm_->compile(source);
  if (!compiled.ok()) return compileFailure(compiled);
  return Result::success(
      Value::string(lang::disassemble(*compiled.script, &vm_->globalNames())));
}

std::vector<std::string> Vm::neverJoined() { return vm_->takeNeverJoined(); }

Stats Vm::stats() const {
  Stats s;
  for (int k = 0; k < static_cast<int>(vm::ObjKind::kCount); ++k) {
    const std::uint64_t n = vm_->allocations(static_cast<vm::ObjKind>(k));
    s.objects += n;
    if (n > 0) s.by_kind.emplace_back(vm::kindName(static_cast<vm::ObjKind>(k)), n);
  }
  s.bytes = vm_->allocatedBytes();
  const runtime::HeapStatsSnapshot hs = runtime::mheap().readStats();
  s.heap_in_use = static_cast<std::uint64_t>(hs.heapInUse);
  s.heap_sys = hs.heapSys;
  const runtime::GCStats gs = runtime::gcStats();
  s.gc_cycles = gs.cycles;
  s.gc_max_pause_ns = gs.maxPauseNs;
  s.gc_total_pause_ns = gs.totalPauseNs;
  return s;
}

void Vm::collect() {
  runtime::gcCollect();
  const runtime::M* m = runtime::getm();
  if (m != nullptr && m->curg != nullptr) return;  // on a G: see spindle.h
  // Every cycle's sweep has finished when gcCollect returns, so this cycle's finalizers
  // are queued. Polling, as Go's tests do: a host thread has no G to park.
  const std::uint64_t target = runtime::finalizersQueuedTotal();
  while (!runtime::finalizersRan(target)) std::this_thread::sleep_for(std::chrono::microseconds(100));
}

// --- FFI: Bytes and Pinner ---------------------------------------------------------------

Value Vm::newBytes(std::size_t n) {
  Value out;
  vm_->withP([&] { out = fromInternal(vm::Value::object(vm::ffi::newBytes(*vm_, n))); });
  return out;
}

std::span<std::uint8_t> Vm::bytes(const Value& v) {
  if (!v.isObject()) return {};
  vm::Value x = toInternalValue(v);
  if (!vm::isKind(x, vm::ObjKind::Bytes)) return {};
  auto* b = vm::as<vm::ObjBytes>(x);
  return {b->data(), static_cast<std::size_t>(b->length)};
}

Pinner::Pinner(Vm& vm) : vm_(&vm), pinner_(std::make_unique<runtime::Pinner>()) {}

Pinner::~Pinner() {
  vm_->vm_->withP([&] { pinner_.reset(); });
}

Result Pinner::pin(const Value& v) {
  if (!v.isObject()) return Result::failure("Can only pin objects.");
  runtime::PinError e = runtime::PinError::Ok;
  vm_->vm_->withP([&] { e = pinner_->pin(vm_->toInternalValue(v).asObj()); });
  if (e != runtime::PinError::Ok) return Result::failure(std::string("Cannot pin: ") + runtime::pinErrorMessage(e));
  return Result::success(Value());
}

void Pinner::unpin() {
  vm_->vm_->withP([&] { pinner_->unpin(); });
}

bool Pinner::isPinned(const Value& v) const {
  if (!v.isObject()) return false;
  return runtime::Pinner::isPinned(vm_->toInternalValue(v).asObj());
}

void Vm::interrupt() { vm_->interrupt(); }

}  // namespace spindle
