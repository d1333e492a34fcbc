// vm.cc: the VM's objects, globals, handles, roots and fiber plumbing (strings are
// interned in string_table.cc).
// The interpreter loop itself is in interpreter.cc; fibers as Gs, spawn, channels and
// select in fiber.cc.
#include "vm/vm.h"

#include <algorithm>

#include "runtime/gc.h"
#include "runtime/print.h"
#include "runtime/threadlimit.h"
#include "runtime/throw.h"
#include "vm/fiber.h"

#include <chrono>
#include <cstdio>
#include <cstring>

#include "lang/number_format.h"
#include "lang/opcodes.h"
#include "vm/ffi.h"
#include "vm/lib.h"

namespace spindle::vm {

namespace {

bool nativeClock(VM&, const void*, int, Value*, Value* result) {
  using namespace std::chrono;
  *result = Value::number(
      duration<double>(steady_clock::now().time_since_epoch()).count());
  return true;
}

}  // namespace

// --- the process runtime ---------------------------------------------------------------
// One Sched, attached to the collector, for every VM of the process (Go: one runtime per
// process). The first reference creates it with its procs and collector settings: a VM,
// or a host's spindle::Runtime (a reference without a VM, retainRuntime). It lives while
// any reference is held (refs, under lock); dropping the last detaches and deletes it.
namespace {
struct ProcessRuntime {
  std::mutex lock;
  runtime::Sched* sched = nullptr;  // under lock
  int refs = 0;                     // under lock: VMs and retainRuntime references
  int vms = 0;                      // under lock: the VMs among refs
};
ProcessRuntime& processRuntime() {
  static auto* r = new ProcessRuntime;  // never destroyed: VMs may outlive statics
  return *r;
}

// A fatal error prints every G and, for a fiber whose stack can be read, its Lox trace
// (throw.h's context printers: no lock, no heap; Sched::printGsForFatal says which Gs'
// stacks are read and how safely). The Sched is published here (release when created,
// null before it is deleted), as the printer may take no lock.
std::atomic<runtime::Sched*> gFatalSched{nullptr};

void printFiberForFatal(runtime::G* g, std::FILE* out) {
  using runtime::printNoHeap;
  auto* body = dynamic_cast<FiberBody*>(g->body);
  if (body == nullptr) return;  // a timer or host G: no Lox frames
  const ObjFiber* f = body->fiber();
  printNoHeap(out, "\tfiber {}\n", f->id);
  // As traceOf's lines: a frame of an imported module names its file, "[line 3] in f()
  // (lib/util.lox)" (the proto's file is read in place: no heap).
  VM::forEachTraceLine(f, [&](int line, std::string_view fn, std::uint32_t more, std::string_view file = {}) {
    const std::string_view open = file.empty() ? "" : " (";
    const std::string_view close = file.empty() ? "" : ")";
    if (more != 0) {
      printNoHeap(out, "\t... {} more frames\n", more);
    } else if (fn.empty()) {
      printNoHeap(out, "\t[line {}] in script{}{}{}\n", line, open, file, close);
    } else {
      printNoHeap(out, "\t[line {}] in {}(){}{}{}\n", line, fn, open, file, close);
    }
  });
}

void printFibersForFatal(std::FILE* out) {
  runtime::Sched* s = gFatalSched.load(std::memory_order_acquire);
  if (s != nullptr) s->printGsForFatal(out, &printFiberForFatal);
}
[[maybe_unused]] const bool gFibersForFatalRegistered =
    (runtime::addFatalContext(&printFibersForFatal), true);

// Under r.lock: takes a reference; the first creates the runtime with o's settings.
bool acquireLocked(ProcessRuntime& r, const VMOptions& o) {
  if (r.refs++ != 0) return false;
  r.sched = new runtime::Sched(o.procs, o.schedSeed);
  gFatalSched.store(r.sched, std::memory_order_release);
  runtime::gcAttach(r.sched);
  runtime::setGCPercent(o.gcPercent);
  runtime::setGCTrace(o.gctrace);
  if (o.gcstress > 0 || o.gcstressContinuous <= 0) {
    runtime::setGCStress(o.gcstress);
  } else {
    runtime::setGCStress(o.gcstressContinuous, runtime::GCStressMode::Continuous);
  }
  runtime::setCheckmark(o.gccheckmark);
  if (o.clobberfree) runtime::setClobberFree(true);  // never off: debug builds start with it
  runtime::setGCStopTheWorld(o.gcstoptheworld);
  runtime::setGCVerify(o.gcverify);
  runtime::setMaxThreads(o.maxThreads);
  return true;
}

// Under r.lock, after the last reference was dropped: detach first (no cycle may start
// while the world goes away), then stop every M; Gs still running or parked are
// abandoned (their bodies freed), and an M in a foreign call is left behind, as when a Go
// program's main returns. beforeDelete runs between (the last VM unregisters its roots).
template <typename F>
void destroyLocked(ProcessRuntime& r, F beforeDelete) {
  runtime::gcDetach(r.sched);
  gFatalSched.store(nullptr, std::memory_order_release);
  beforeDelete();
  delete r.sched;
  r.sched = nullptr;
}
}  // namespace

runtime::Sched* VM::acquireSched(const VMOptions& o) {
  ProcessRuntime& r = processRuntime();
  std::lock_guard<std::mutex> lk(r.lock);
  acquireLocked(r, o);
  r.vms++;
  return r.sched;
}

bool VM::releaseSchedIfLast(bool onlyIfLast) {
  ProcessRuntime& r = processRuntime();
  std::lock_guard<std::mutex> lk(r.lock);
  SPINDLE_CHECK(r.refs > 0 && r.vms > 0 && r.sched == sched_,
                "VM: releasing the process runtime with refs={} vms={}", r.refs, r.vms);
  if (onlyIfLast && r.refs != 1) return false;
  r.vms--;
  if (--r.refs == 0) {
    destroyLocked(r, [this] { runtime::unregisterRoots(rootsId_); });
  }
  return true;
}

bool VM::retainRuntime(const VMOptions& o) {
  ProcessRuntime& r = processRuntime();
  std::lock_guard<std::mutex> lk(r.lock);
  return acquireLocked(r, o);
}

void VM::releaseRuntime() {
  ProcessRuntime& r = processRuntime();
  std::lock_guard<std::mutex> lk(r.lock);
  SPINDLE_CHECK(r.refs > r.vms, "VM: releasing a runtime reference with refs={} vms={}", r.refs,
                r.vms);
  if (--r.refs == 0) destroyLocked(r, [] {});
}

int VM::liveVMs() {
  ProcessRuntime& r = processRuntime();
  std::lock_guard<std::mutex> lk(r.lock);
  return r.vms;
}

VM::VM(VMOptions options)
    : options_(std::move(options)), sched_(acquireSched(options_)) {
  rootsId_ = runtime::registerRoots(scanRoots, this, scanRootsLabelled);
  withP([this] {
    setRoot(initString_, intern("init"));
    setRoot(pushString_, intern("push"));
    setRoot(popString_, intern("pop"));
    setRoot(lenString_, intern("len"));
    setRoot(sendString_, intern("send"));
    setRoot(recvString_, intern("recv"));
    setRoot(closeString_, intern("close"));
    setRoot(capString_, intern("cap"));
    setRoot(joinString_, intern("join"));
    setRoot(doneString_, intern("done"));
    setRoot(hostDataKey_, intern(kHostDataField));
    std::uint32_t clock = globalSlot("clock");
    setGlobal(clock, Value::object(newNative("clock", 0, nativeClock)));
    registerConcurrencyNatives();
    registerGCStatsNative();  // gcstats.cc
    registerInspectNatives();  // gcinspect.cc
    registerErrorClass();     // error.cc
    registerMapNatives();     // map.cc
    registerStringLib();      // strlib.cc
    registerMathLib();        // mathlib.cc
    if (options_.ffi) ffi::install(*this);  // FFI, Bytes, Pinner (vm/ffi.h)
    if (options_.io) registerIoLib();       // iolib.cc
    sandbox();
  });
  registerInterrupts();  // interrupt.cc: sysmon polls this VM from now on
}

VM::~VM() {
  dropHostFiber();  // hostcall.cc: before stopFibers waits for every fiber body
  unregisterInterrupts();  // interrupt.cc: sysmon never touches this VM again
  if (!releaseSchedIfLast(/*onlyIfLast=*/true)) {
    // Other VMs share the runtime: stop this VM's fibers (each exits at its next run;
    // a foreign call finishes first), then stop being a root. Later cycles free what
    // this VM's objects leave; its C++ memory goes with freeOwned below.
    stopFibers();
    runtime::unregisterRoots(rootsId_);
    releaseSchedIfLast(/*onlyIfLast=*/false);
  }
  // No fiber of this VM runs now. Host natives before handles_: a native may hold host
  // Values, whose handles live there.
  {
    std::lock_guard<std::mutex> lk(nativesLock_);
    for (auto& n : hostNatives_) n.reset();
    for (auto& d : hostNativeData_) d.reset();
  }
  freeOwned();  // owned.cc: hchans and host data of the objects still alive
}

// Every built-in global is defined by now: those the options leave out become undefined
// (a script naming one fails with "Undefined variable 'x'.", as for any unset global).
void VM::sandbox() {
  if (options_.without.empty() && !options_.only) return;  // the usual Vm: nothing to leave out
  for (std::uint32_t slot = 0; slot < globalNames_.size(); ++slot) {
    const std::string& name = globalNames_.name(slot);
    const bool denied = std::find(options_.without.begin(), options_.without.end(), name) != options_.without.end();
    const bool allowed = !options_.only || std::find(options_.only->begin(), options_.only->end(), name) != options_.only->end();
    if (denied || !allowed) setGlobal(slot, Value::undefined());
  }
}

void VM::write(std::string_view text) {
  if (options_.output) {
    std::lock_guard<std::mutex> lk(outputLock_);
    options_.output(text);
  } else {
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
}

// --- objects ---------------------------------------------------------------------------

// The joined text is built in a C++ buffer in chunks (a checkpoint between them), then
// interned. a and b are held in this frame across those checkpoints: the interpreter
// slice this runs in contains no scan point of its G (see ARCHITECTURE "What bounds a
// pause").
ObjString* VM::concat(ObjString* a, ObjString* b) {
  if (std::size_t{a->length} + b->length > lib::maxStringLength()) return nullptr;
  std::string joined;
  joined.resize(std::size_t{a->length} + b->length);
  if (a->length != 0) runtime::memmoveChunked(joined.data(), a->chars(), a->length);
  if (b->length != 0) runtime::memmoveChunked(joined.data() + a->length, b->chars(), b->length);
  return intern(joined);
}

ValueArray* VM::newValueArray(std::uint32_t capacity) {
  auto* a = allocate<ValueArray>(ObjKind::ValueArray,
                                 sizeof(ValueArray) + std::size_t{capacity} * sizeof(Value));
  a->capacity = capacity;
  // Zeroed memory is the number 0.0: a valid Value, never reported as a pointer.
  return a;
}

// Storage first, then the list: a large storage is zeroed through checkpoints, so a mark
// may begin in between, and then the storage is white (its allocation was accounted
// before the mark began) while the list is born black and never scanned. The storage is
// held only by this frame, not by the fiber's stack: the barrier shades it.
ObjList* VM::newList(std::uint32_t count, const Value* items) {
  ValueArray* storage = newValueArray(count < 4 ? 4 : count);
  for (std::uint32_t i = 0; i < count; ++i) storage->data()[i] = items[i];
  auto* l = allocate<ObjList>(ObjKind::List, sizeof(ObjList));
  l->count = count;
  writeBarrierPtr<ValueArray>(l, &l->items, storage);
  return l;
}

// Race-safe: works on the count and storage it loaded; racing pushes may lose elements.
void VM::listPush(ObjList* list, Value v) {
  std::atomic_ref<std::uint32_t> countRef(list->count);
  const std::uint32_t count = countRef.load(std::memory_order_acquire);
  ValueArray* items = loadPtr(&list->items);
  if (count >= items->capacity) {
    ValueArray* bigger = newValueArray(std::max(count + 1, items->capacity * 2));
    for (std::uint32_t i = 0; i < items->capacity; ++i) {
      bigger->data()[i] = loadValue(&items->data()[i]);  // initialising: no barrier
      if ((i + 1) % kCheckpointValues == 0) runtime::checkpoint();
    }
    writeBarrierPtr<ValueArray>(list, &list->items, bigger);
    items = bigger;
  }
  writeBarrier(items, &items->data()[count], v);
  countRef.store(count + 1, std::memory_order_release);
}

ObjNative* VM::newNative(std::string_view name, int arity, NativeFn fn, const void* host) {
  return newNative(intern(name), arity, fn, host);
}

ObjNative* VM::newNative(ObjString* n, int arity, NativeFn fn, const void* host) {
  auto* nat = allocate<ObjNative>(ObjKind::Native, sizeof(ObjNative));
  nat->fn = fn;
  nat->name = n;
  nat->arity = arity;
  nat->host = host;
  return nat;
}

ObjClass* VM::newClass(ObjString* name) {
  auto* table = allocate<MethodTable>(ObjKind::MethodTable,
                                      sizeof(MethodTable) + 8 * sizeof(MethodEntry));
  table->capacity = 8;
  auto* k = allocate<ObjClass>(ObjKind::Class, sizeof(ObjClass));
  k->name = name;
  k->methods = table;
  k->initializer = Value::nil();
  k->rootShape = newShape(nullptr, nullptr, k);  // k is reachable only from here: no barrier
  k->fieldHint = 4;
  return k;
}

ObjInstance* VM::newInstance(ObjClass* klass) {
  const std::uint32_t cap =
      std::atomic_ref<std::uint32_t>(klass->fieldHint).load(std::memory_order_relaxed);
  auto* in = allocate<ObjInstance>(ObjKind::Instance,
                                   sizeof(ObjInstance) + std::size_t{cap} * sizeof(Value));
  in->klass = klass;
  in->shape = klass->rootShape;
  in->inlineCapacity = cap;
  return in;
}

ObjBoundMethod* VM::newBoundMethod(Value receiver, ObjClosure* method) {
  auto* b = allocate<ObjBoundMethod>(ObjKind::BoundMethod, sizeof(ObjBoundMethod));
  b->receiver = receiver;
  b->method = method;
  return b;
}

bool VM::findMethod(ObjClass* klass, ObjString* name, Value* out) const {
  MethodTable* t = loadPtr(&klass->methods);
  const std::uint32_t mask = t->capacity - 1;
  for (std::uint32_t i = name->hash & mask;; i = (i + 1) & mask) {
    MethodEntry& e = t->entries()[i];
    if (e.key == name) {
      *out = e.value;
      return true;
    }
    if (e.key == nullptr) return false;
  }
}

void VM::setMethod(ObjClass* klass, ObjString* name, Value method) {
  MethodTable* t = klass->methods;
  if ((klass->methodCount + 1) * 4 > t->capacity * 3) {
    const std::uint32_t cap = t->capacity * 2;
    auto* bigger = allocate<MethodTable>(ObjKind::MethodTable,
                                         sizeof(MethodTable) + cap * sizeof(MethodEntry));
    bigger->capacity = cap;
    for (std::uint32_t i = 0; i < t->capacity; ++i) {
      MethodEntry& e = t->entries()[i];
      if (e.key == nullptr) continue;
      for (std::uint32_t j = e.key->hash & (cap - 1);; j = (j + 1) & (cap - 1)) {
        if (bigger->entries()[j].key == nullptr) {
          bigger->entries()[j] = e;  // initialising an unreachable object
          break;
        }
      }
    }
    writeBarrierPtr<MethodTable>(klass, &klass->methods, bigger);
    t = bigger;
  }
  const std::uint32_t mask = t->capacity - 1;
  for (std::uint32_t i = name->hash & mask;; i = (i + 1) & mask) {
    MethodEntry& e = t->entries()[i];
    if (e.key == name || e.key == nullptr) {
      if (e.key == nullptr) ++klass->methodCount;
      writeBarrierPtr<ObjString>(t, &e.key, name);
      writeBarrier(t, &e.value, method);
      break;
    }
  }
  if (name == initString_) writeBarrier(klass, &klass->initializer, method);
}

// --- loading ------------------------------------------------------------------------------

lang::CompileResult VM::compile(std::string_view source) {
  std::unique_lock<std::mutex> nlk(globalNamesLock_);
  lang::CompileResult r = lang::compile(source, globalNames_);
  const std::size_t n = globalNames_.size();
  nlk.unlock();
  growGlobals(n);
  return r;
}

void VM::growGlobals(std::size_t n) {
  std::lock_guard<std::mutex> lk(globalsLock_);
  if (n <= globalsCapacity_) return;
  std::size_t cap = std::max<std::size_t>(64, globalsCapacity_ * 2);
  while (cap < n) cap *= 2;
  auto bigger = std::make_unique<Value[]>(cap);
  Value* old = globals_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < cap; ++i) {
    bigger[i] = i < globalsCapacity_ ? loadValue(&old[i]) : Value::undefined();
  }
  globals_.store(bigger.get(), std::memory_order_release);
  globalArrays_.push_back(std::move(bigger));  // the old one stays: a reader may hold it
  globalsCapacity_ = cap;
}

Value VM::global(std::uint32_t slot) const { return loadValue(&globalsData()[slot]); }

void VM::setGlobal(std::uint32_t slot, Value v) {
  writeBarrier(nullptr, &globalsData()[slot], v);
}

std::uint32_t VM::globalSlot(std::string_view name) {
  std::unique_lock<std::mutex> nlk(globalNamesLock_);
  const std::uint32_t slot = globalNames_.slotFor(name);
  const std::size_t n = globalNames_.size();
  nlk.unlock();
  growGlobals(n);
  return slot;
}

namespace {
// Calls the HostNative the native was made for, with no lock: it never moves (a
// defineNative racing with the call only appends to hostNatives_).
bool nativeHost(VM& vm, const void* host, int argc, Value* args, Value* result) {
  return (*static_cast<const HostNative*>(host))(vm, argc, args, result);
}
}  // namespace

void VM::defineNative(std::string_view name, int arity, HostNative fn) {
  withP([&] { setGlobal(globalSlot(name), Value::object(newHostNative(name, arity, std::move(fn)))); });
}

ObjNative* VM::newHostNative(std::string_view name, int arity, HostNative fn) {
  const HostNative* host;
  {
    std::lock_guard<std::mutex> lk(nativesLock_);
    hostNatives_.push_back(std::make_unique<const HostNative>(std::move(fn)));
    host = hostNatives_.back().get();
  }
  return newNative(name, arity, nativeHost, host);
}

void VM::defineNative(std::string_view name, int arity, NativeFn fn, std::shared_ptr<const void> data) {
  withP([&] { setGlobal(globalSlot(name), Value::object(newHostNative(name, arity, fn, std::move(data)))); });
}

ObjNative* VM::newHostNative(std::string_view name, int arity, NativeFn fn, std::shared_ptr<const void> data) {
  const void* host = data.get();
  {
    std::lock_guard<std::mutex> lk(nativesLock_);
    hostNativeData_.push_back(std::move(data));
  }
  return newNative(name, arity, fn, host);
}

// --- handles and roots -----------------------------------------------------------------------

std::uint32_t VM::newHandle(Value v) {
  std::lock_guard<std::mutex> lk(handlesLock_);
  return newHandleLocked(v);
}

std::uint32_t VM::newHandleLocked(Value v) {
  if (runtime::writeBarrierEnabled()) [[unlikely]] shadeValue(v);
  return handles_.add(v);
}

// Without a lock (handle_table.h): the caller holds h, so its slot does not change.
Value VM::handleValue(std::uint32_t h) const { return handles_.get(h); }

void VM::releaseHandle(std::uint32_t h) {
  std::lock_guard<std::mutex> lk(handlesLock_);
  if (runtime::writeBarrierEnabled()) [[unlikely]] shadeValue(handles_.peek(h));
  handles_.remove(h);
}

// Host-held fibers, globals, handles, the VM's name strings, the library method classes
// and the one-byte strings. Not the interned strings: that table is weak and cleared by
// the sweepers (string_table.h), so nothing here grows with it.
template <typename Ptr>
void VM::forEachRootRef(const Ptr& ptr) {
  // ptr(p, name): name(out) appends the root's name, built only by a labelled walk.
  auto fixed = [](const char* what) { return [what](std::vector<std::string>* out) { out->emplace_back(what); }; };
  {
    std::lock_guard<std::mutex> lk(handlesLock_);
    for (ObjFiber* f : hostFibers_) ptr(f, fixed("host fiber"));
    handles_.forEach([&](Value v) {
      if (v.isObj()) ptr(v.asObj(), fixed("host handle"));
    });
  }
  {
    std::lock_guard<std::mutex> lk(globalsLock_);
    Value* g = globals_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < globalsCapacity_; ++i) {
      const Value v = loadValue(&g[i]);
      if (!v.isObj()) continue;
      ptr(v.asObj(), [this, i](std::vector<std::string>* out) {
        std::lock_guard<std::mutex> nlk(globalNamesLock_);
        out->push_back(i < globalNames_.size() ? fmt::format("global {}", globalNames_.name(static_cast<std::uint32_t>(i)))
                                               : fmt::format("global slot {}", i));
      });
    }
  }
  for (Obj* s : std::initializer_list<Obj*>{
           loadRoot(initString_), loadRoot(pushString_), loadRoot(popString_), loadRoot(lenString_),
           loadRoot(sendString_), loadRoot(recvString_), loadRoot(closeString_), loadRoot(capString_),
           loadRoot(joinString_), loadRoot(doneString_), loadRoot(hostDataKey_), loadRoot(gcStatsClass_),
           loadRoot(errorClass_), loadRoot(mapNames_.has), loadRoot(mapNames_.remove),
           loadRoot(mapNames_.keys), loadRoot(mapNames_.values), loadRoot(mapNames_.clear),
           loadRoot(stringMethods_), loadRoot(listMethods_)}) {
    ptr(s, fixed("vm built-in"));
  }
  for (const auto& b : byteStrings_) ptr(b.load(std::memory_order_acquire), fixed("vm byte string"));
}

void VM::forEachRoot(runtime::VisitFn visit, void* ctx) {
  forEachRootRef([&](void* p, const auto&) { visitPtr(visit, ctx, p); });
}

void VM::scanRoots(void* self, runtime::VisitFn visit, void* ctx) {
  static_cast<VM*>(self)->forEachRoot(visit, ctx);
}

void VM::scanRootsLabelled(void* self, runtime::LabelVisitFn visit, void* ctx) {
  static_cast<VM*>(self)->forEachRootRef(
      [&](void* p, const auto& name) { runtime::visitNamed(visit, ctx, p, name); });
}

// --- printing ----------------------------------------------------------------------------------

const char* VM::typeName(Value v) {
  if (v.isNumber()) return "number";
  if (v.isNil()) return "nil";
  if (v.isBool()) return "bool";
  if (v.isObj()) return kindName(v.asObj()->kind);
  return "undefined";
}

std::string VM::toStringNumber(double d) { return lang::formatNumber(d); }

std::string VM::toString(Value v) const {
  std::string out;
  PrintPath path;
  (void)appendValue(v, out, path);  // a cut text is still the value's description
  return out;
}

bool VM::PrintPath::contains(const Obj* o) const {
  for (int i = 0; i < depth; ++i) {
    if (objs[i] == o) return true;
  }
  return false;
}

std::string VM::toStringQuoted(Value v) const {
  return isKind(v, ObjKind::String) ? "\"" + toString(v) + "\"" : toString(v);
}

// A list passes a checkpoint every kPrintCheckpointElems elements (formatting one costs far
// more than copying it). The list and its items are held in this frame across them; see
// ARCHITECTURE "What bounds a pause". The path makes a cycle print once per place it is
// met, and the length check after each element bounds the work of a DAG that shares
// sublists (whose text doubles per level) by the longest string.
constexpr std::uint32_t kPrintCheckpointElems = 1024;

bool VM::appendValue(Value v, std::string& out, PrintPath& path) const {
  if (v.isNumber()) {
    out += lang::formatNumber(v.asNumber());
    return true;
  }
  if (v.isNil()) {
    out += "nil";
    return true;
  }
  if (v.isBool()) {
    out += v.asBool() ? "true" : "false";
    return true;
  }
  if (!v.isObj()) {
    out += "<undefined>";
    return true;
  }
  auto fnName = [&](ObjFunction* f) {
    if (f->name == nullptr) {
      out += "<script>";
    } else {
      out += "<fn ";
      out += f->name->view();
      out += ">";
    }
  };
  Obj* o = v.asObj();
  const bool container = o->kind == ObjKind::List || o->kind == ObjKind::Map;
  if (container && (path.depth > kMaxPrintDepth || path.contains(o))) {
    out += o->kind == ObjKind::List ? "[...]" : "{...}";
    return true;
  }
  switch (o->kind) {
    case ObjKind::String: out += static_cast<ObjString*>(o)->view(); break;
    case ObjKind::Function: fnName(static_cast<ObjFunction*>(o)); break;
    case ObjKind::Closure: fnName(static_cast<ObjClosure*>(o)->function); break;
    case ObjKind::BoundMethod: fnName(static_cast<ObjBoundMethod*>(o)->method->function); break;
    case ObjKind::Native: out += "<native fn>"; break;
    case ObjKind::Class: out += static_cast<ObjClass*>(o)->name->view(); break;
    case ObjKind::Instance:
      out += static_cast<ObjInstance*>(o)->klass->name->view();
      out += " instance";
      break;
    case ObjKind::List: {
      auto* l = static_cast<ObjList*>(o);
      out += '[';
      ValueArray* items = loadPtr(&l->items);
      const std::uint32_t count = std::min(
          listCount(l), items->capacity);
      path.objs[path.depth++] = o;
      bool ok = true;
      for (std::uint32_t i = 0; i < count && ok; ++i) {
        if (i > 0) out += ", ";
        ok = appendValue(loadValue(&items->data()[i]), out, path) && out.size() <= lib::maxStringLength();
        if ((i + 1) % kPrintCheckpointElems == 0) runtime::checkpoint();
      }
      --path.depth;
      if (!ok) return false;
      out += ']';
      break;
    }
    case ObjKind::Map: {
      out += '{';
      std::uint32_t i = 0;
      path.objs[path.depth++] = o;
      bool ok = true;
      forEachMapEntry(static_cast<ObjMap*>(o), [&](Value k, Value val) {
        if (!ok) return;
        if (i > 0) out += ", ";
        ok = appendValue(k, out, path);
        out += ": ";
        ok = ok && appendValue(val, out, path) && out.size() <= lib::maxStringLength();
        if (++i % kPrintCheckpointElems == 0) runtime::checkpoint();
      });
      --path.depth;
      if (!ok) return false;
      out += '}';
      break;
    }
    default: out += "<"; out += kindName(o->kind); out += ">"; break;
  }
  return out.size() <= lib::maxStringLength();
}

// --- fibers ---------------------------------------------------------------------------------------

bool VM::expectArgs(ObjFiber* fiber, int argc, int want) {
  if (argc == want) return true;
  recordError(fiber, fmt::format("Expected {} arguments but got {}.", want, argc));
  return false;
}

// A native that fails with the message of its failed nested VM::call (see VM::call)
// passes that call's error on: its trace lines come first (the callback's frames, then
// the caller's, kMaxTraceFrames in all), and a thrown value is caught as itself.
void VM::recordNativeError(ObjFiber* fiber) {
  FiberBody* body = fiber->body;
  const Value thrown = loadValue(&fiber->thrown);
  std::string message = body->hasPendingError ? std::move(body->pendingError)
                                              : std::string("Native function failed.");
  const bool passOn = !body->nestedError.message.empty() && message == body->nestedError.message;
  recordError(fiber, std::move(message));
  body->hasPendingError = false;
  if (passOn) {
    if (!thrown.isUndefined()) writeBarrier(fiber, &fiber->thrown, thrown);
    std::vector<std::string>& trace = body->error.trace;
    trace.insert(trace.begin(), body->nestedError.trace.begin(), body->nestedError.trace.end());
    capTrace(trace);
  }
  body->nestedError = {};
}

// Past kMaxTraceFrames frame lines, the rest become one "... N more frames" line (a
// line of that form already in the trace counts its N).
void VM::capTrace(std::vector<std::string>& trace) {
  if (trace.size() <= kMaxTraceFrames + 1) return;
  std::uint64_t more = 0;
  for (std::size_t i = kMaxTraceFrames; i < trace.size(); ++i) {
    std::uint64_t n = 0;
    more += std::sscanf(trace[i].c_str(), "... %lu more frames", &n) == 1 ? n : 1;
  }
  trace.resize(kMaxTraceFrames);
  trace.push_back(fmt::format("... {} more frames", more));
}

bool VM::raise(std::string message) {
  FiberBody* body = currentFiber()->body;
  body->pendingError = std::move(message);
  body->hasPendingError = true;
  return false;
}

std::vector<std::string> VM::traceOf(ObjFiber* fiber) const {
  std::vector<std::string> trace;
  forEachTraceLine(fiber, [&](int line, std::string_view fn, std::uint32_t more,
                               std::string_view file = {}) {
    if (more != 0) {
      trace.push_back(fmt::format("... {} more frames", more));
    } else if (fn.empty()) {
      trace.push_back(fmt::format("[line {}] in script", line));
    } else {
      trace.push_back(fmt::format("[line {}] in {}()", line, fn));
    }
    // A frame of an imported module names its file: "[line 12] in update() (game.lox)".
    if (more == 0 && !file.empty()) trace.back() += fmt::format(" ({})", file);
  });
  return trace;
}

// The interpreter then hands the error to catchError (error.cc): a try handler resumes
// the fiber, or the fiber is finished and its upvalues are closed, so that closures other
// fibers hold never point into its (soon dead) stack.
void VM::recordError(ObjFiber* fiber, std::string message) {
  RuntimeErrorInfo& e = fiber->body->error;
  e.message = std::move(message);
  e.trace = traceOf(fiber);
  fiber->state = FiberState::Failed;
  if (!loadValue(&fiber->thrown).isUndefined()) writeBarrier(fiber, &fiber->thrown, Value::undefined());
}

// Moves the live part of the fiber's value stack (below stackTop) to `to` and makes it the
// fiber's stack. Called by the fiber itself (growing) or, for a paused fiber, by
// shrinkStack: either way the fiber does not run meanwhile. Another fiber may read or
// store through an open upvalue meanwhile: under each upvalue's lock, take the slot's
// latest value and move the location (readers of the old one retry, see upvalueGet; a
// writer takes the lock, so none writes the old location after its move). The old
// array stays valid for a reader that loaded a location into it: it is freed only by a
// cycle whose mark began after the swap (with the world stopped, which a reader in
// upvalueGet holds up), and a swap while marking shades it (writeBarrierPtr).
void VM::moveStack(ObjFiber* fiber, ValueArray* to) {
  ValueArray* old = fiber->stack;
  for (std::uint32_t i = 0; i < fiber->stackTop; ++i) to->data()[i] = loadValue(&old->data()[i]);
  writeBarrierPtr<ValueArray>(fiber, &fiber->stack, to);
  for (ObjUpvalue* u = fiber->openUpvalues; u != nullptr; u = u->next) {
    WordLock lock(u->lock);
    stackStore(to->data() + u->slot, loadValue(&old->data()[u->slot]));
    storePtr(&u->location, to->data() + u->slot);
  }
}

// Same for the frames (only the fiber's own M and the collector's scan read them).
void VM::moveFrames(ObjFiber* fiber, std::uint32_t capacity) {
  auto* to = allocate<FrameArray>(ObjKind::FrameArray, sizeof(FrameArray) + capacity * sizeof(CallFrame));
  to->capacity = capacity;
  std::memcpy(to->frames(), fiber->frames->frames(), fiber->frameCount * sizeof(CallFrame));
  writeBarrierPtr<FrameArray>(fiber, &fiber->frames, to);
}

void VM::ensureStack(ObjFiber* fiber, std::uint32_t needed) {
  ValueArray* old = fiber->stack;
  if (std::uint64_t{fiber->stackTop} + needed <= old->capacity) return;
  std::uint32_t cap = old->capacity * 2;
  while (cap < fiber->stackTop + needed) cap *= 2;
  moveStack(fiber, newStackArray(cap));
}

bool VM::ensureFrames(ObjFiber* fiber) {
  FrameArray* old = fiber->frames;
  if (fiber->frameCount < old->capacity) return true;
  if (fiber->frameCount >= kMaxFrames) return false;
  std::uint32_t cap = old->capacity * 2;
  if (cap > kMaxFrames) cap = kMaxFrames;
  moveFrames(fiber, cap);
  return true;
}

// The stack slots a paused fiber may still use without growing: each frame reserved
// maxStack slots above its arguments when it was entered (CAN_ENTER, callClosure), and
// the operands of a pending operation sit below stackTop.
std::uint32_t VM::stackInUse(const ObjFiber* fiber) {
  std::uint32_t used = fiber->stackTop;
  const CallFrame* frames = fiber->frames->frames();
  for (std::uint32_t i = 0; i < fiber->frameCount; ++i) {
    const ObjFunction* fn = frames[i].closure->function;
    used = std::max(used, frames[i].base + fn->arity + 1 + fn->maxStack);
  }
  return used;
}

// Go's rule, applied until it no longer holds: a stack (or frame array) with less than a
// quarter in use is halved, never below the sizes a fiber starts with. One move then
// gives a fiber parked after a deep recursion its right size (Go halves once per cycle,
// which leaves such a stack many times too big for several cycles). Afterwards the fiber
// uses at least a quarter (or has its first size) and under half of what it has, so it
// must double its use before it grows again: no grow/shrink every cycle. 0: no shrink.
std::uint32_t VM::shrunkCapacity(std::uint32_t cap, std::uint32_t used, std::uint32_t least) {
  std::uint32_t to = cap;
  while (to > least && used < to / 4) to = std::max(to / 2, least);
  return to == cap ? 0 : to;
}

VM::StackShrink VM::stackShrink(const ObjFiber* fiber) {
  return {shrunkCapacity(fiber->stack->capacity, stackInUse(fiber), kInitialStack),
          shrunkCapacity(fiber->frames->capacity, fiber->frameCount, kInitialFrames)};
}

void VM::shrinkStack(ObjFiber* fiber) {
  const StackShrink to = stackShrink(fiber);
  if (to.stack != 0) moveStack(fiber, newStackArray(to.stack));
  if (to.frames != 0) moveFrames(fiber, to.frames);
}

ObjUpvalue* VM::captureUpvalue(ObjFiber* fiber, std::uint32_t slot) {
  ObjUpvalue* prev = nullptr;
  ObjUpvalue* u = fiber->openUpvalues;
  while (u != nullptr && u->slot > slot) {
    prev = u;
    u = u->next;
  }
  if (u != nullptr && u->slot == slot) return u;
  auto* created = allocate<ObjUpvalue>(ObjKind::Upvalue, sizeof(ObjUpvalue));
  created->closed = Value::nil();
  created->location = fiber->stack->data() + slot;
  created->slot = slot;
  created->next = u;
  if (prev == nullptr) {
    writeBarrierPtr<ObjUpvalue>(fiber, &fiber->openUpvalues, created);
  } else {
    writeBarrierPtr<ObjUpvalue>(prev, &prev->next, created);
  }
  return created;
}

void VM::closeUpvalues(ObjFiber* fiber, std::uint32_t fromSlot) {
  while (fiber->openUpvalues != nullptr && fiber->openUpvalues->slot >= fromSlot) {
    ObjUpvalue* u = fiber->openUpvalues;
    {
      WordLock lock(u->lock);  // no store through the old location after this
      writeBarrier(u, &u->closed, loadValue(u->location));
      storePtr(&u->location, &u->closed);  // release: `closed` is set first
    }
    writeBarrierPtr<ObjUpvalue>(fiber, &fiber->openUpvalues, u->next);
    writeBarrierPtr<ObjUpvalue>(u, &u->next, nullptr);
  }
}

ValueArray* VM::newStackArray(std::uint32_t capacity) {
  auto* a = allocate<ValueArray>(ObjKind::StackArray,
                                 sizeof(ValueArray) + std::size_t{capacity} * sizeof(Value));
  a->capacity = capacity;
  return a;
}

ObjFiber* VM::newFiber(Value callee, const Value* args, int argc) {
  return newFiber(callee, args, argc, kInitialStack);
}

ObjFiber* VM::newFiber(Value callee, const Value* args, int argc, std::uint32_t initialStack) {
  ValueArray* stack = newStackArray(initialStack);
  auto* frames = allocate<FrameArray>(ObjKind::FrameArray,
                                      sizeof(FrameArray) + kInitialFrames * sizeof(CallFrame));
  frames->capacity = kInitialFrames;
  auto* fiber = allocate<ObjFiber>(ObjKind::Fiber, sizeof(ObjFiber));
  fiber->stack = stack;
  fiber->frames = frames;
  fiber->result = Value::nil();
  fiber->thrown = Value::undefined();
  fiber->id = 0;
  fiber->done = nullptr;
  fiber->state = FiberState::Ready;
  fiber->gen = generation_.load(std::memory_order_relaxed);
  fiber->body = new FiberBody(this, fiber, 1);
  fiber->preempt = &preempt_;  // until it runs as a G
  fiber->request = false;
  ensureStack(fiber, static_cast<std::uint32_t>(argc) + 1);
  Value* s = fiber->stack->data();
  s[0] = callee;
  for (int i = 0; i < argc; ++i) s[1 + i] = args[i];
  fiber->stackTop = static_cast<std::uint32_t>(argc) + 1;
  // The interpreter performs the call as its first step (see VM::run).
  return fiber;
}

}  // namespace spindle::vm
