// vm.cc: the VM's objects, strings, globals, handles, roots and fiber plumbing.
// The interpreter loop itself is in interpreter.cc.
#include "vm/vm.h"

#include <chrono>
#include <cstdio>
#include <cstring>

#include "lang/number_format.h"
#include "lang/opcodes.h"
#include "vm/ffi.h"

namespace spindle::vm {

namespace {

bool nativeClock(VM&, std::uint32_t, int, Value*, Value* result) {
  using namespace std::chrono;
  *result = Value::number(
      duration<double>(steady_clock::now().time_since_epoch()).count());
  return true;
}

bool nativeHost(VM& vm, std::uint32_t index, int argc, Value* args, Value* result);

}  // namespace

VM::VM(VMOptions options) : options_(std::move(options)), p_(0) {
  runtime::initHeapP(&p_);
  Enter enter(*this);
  initString_ = intern("init");
  pushString_ = intern("push");
  popString_ = intern("pop");
  lenString_ = intern("len");
  std::uint32_t clock = globalSlot("clock");
  setGlobal(clock, Value::object(newNative("clock", 0, nativeClock, 0)));
  ffi::install(*this);  // FFI, Bytes, Pinner (vm/ffi.h)
}

VM::~VM() {
  // Until the collector exists the heap's memory is never freed; the P goes back.
  runtime::destroyHeapP(&p_);
}

void VM::write(std::string_view text) {
  if (options_.output) {
    options_.output(text);
  } else {
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
}

// --- objects ---------------------------------------------------------------------------

ObjString* VM::intern(std::string_view s) {
  auto it = strings_.find(s);
  if (it != strings_.end()) return it->second;
  auto* str = allocate<ObjString>(ObjKind::String, sizeof(ObjString) + s.size() + 1);
  str->length = static_cast<std::uint32_t>(s.size());
  str->hash = hashString(s);
  if (!s.empty()) std::memcpy(str->mutableChars(), s.data(), s.size());
  str->mutableChars()[s.size()] = '\0';
  strings_.emplace(str->view(), str);
  return str;
}

ObjString* VM::concat(ObjString* a, ObjString* b) {
  std::string joined;
  joined.reserve(a->length + b->length);
  joined.append(a->view());
  joined.append(b->view());
  return intern(joined);
}

ValueArray* VM::newValueArray(std::uint32_t capacity) {
  auto* a = allocate<ValueArray>(ObjKind::ValueArray,
                                 sizeof(ValueArray) + std::size_t{capacity} * sizeof(Value));
  a->capacity = capacity;
  // Zeroed memory is the number 0.0: a valid Value, never reported as a pointer.
  return a;
}

ObjList* VM::newList(std::uint32_t count, const Value* items) {
  ValueArray* storage = newValueArray(count < 4 ? 4 : count);
  for (std::uint32_t i = 0; i < count; ++i) storage->data()[i] = items[i];
  auto* l = allocate<ObjList>(ObjKind::List, sizeof(ObjList));
  l->count = count;
  l->items = storage;
  return l;
}

void VM::listPush(ObjList* list, Value v) {
  if (list->count == list->items->capacity) {
    ValueArray* bigger = newValueArray(list->items->capacity * 2);
    std::memcpy(bigger->data(), list->items->data(), list->count * sizeof(Value));
    writeBarrierPtr<ValueArray>(list, &list->items, bigger);
  }
  writeBarrier(list, &list->items->data()[list->count++], v);
}

ObjNative* VM::newNative(std::string_view name, int arity, NativeFn fn, std::uint32_t hostIndex) {
  ObjString* n = intern(name);
  auto* nat = allocate<ObjNative>(ObjKind::Native, sizeof(ObjNative));
  nat->fn = fn;
  nat->name = n;
  nat->arity = arity;
  nat->hostIndex = hostIndex;
  return nat;
}

ObjClosure* VM::newClosure(ObjFunction* fn) {
  auto* c = allocate<ObjClosure>(
      ObjKind::Closure, sizeof(ObjClosure) + fn->upvalueCount * sizeof(ObjUpvalue*));
  c->function = fn;
  c->upvalueCount = fn->upvalueCount;
  return c;
}

ObjClass* VM::newClass(ObjString* name) {
  auto* table = allocate<MethodTable>(ObjKind::MethodTable,
                                      sizeof(MethodTable) + 8 * sizeof(MethodEntry));
  table->capacity = 8;
  auto* k = allocate<ObjClass>(ObjKind::Class, sizeof(ObjClass));
  k->name = name;
  k->methods = table;
  k->initializer = Value::nil();
  auto shape = std::make_unique<Shape>();
  shape->klass = k;
  k->rootShape = shape.get();
  shapes_.push_back(std::move(shape));
  k->fieldHint = 4;
  return k;
}

ObjInstance* VM::newInstance(ObjClass* klass) {
  const std::uint32_t cap = klass->fieldHint;
  auto* in = allocate<ObjInstance>(ObjKind::Instance,
                                   sizeof(ObjInstance) + std::size_t{cap} * sizeof(Value));
  in->klass = klass;
  in->shape = klass->rootShape;
  in->fields = in->inlineFields();
  in->capacity = cap;
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
  MethodTable* t = klass->methods;
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

const Shape* VM::addField(ObjInstance* in, ObjString* name, Value v) {
  Shape* from = const_cast<Shape*>(in->shape);
  Shape* to = nullptr;
  for (auto& [key, child] : from->transitions) {
    if (key == name) {
      to = child;
      break;
    }
  }
  if (to == nullptr) {
    auto s = std::make_unique<Shape>();
    s->parent = from;
    s->key = name;
    s->count = from->count + 1;
    s->klass = from->klass;
    to = s.get();
    from->transitions.emplace_back(name, to);
    shapes_.push_back(std::move(s));
    if (to->count > in->klass->fieldHint && to->count <= 16) in->klass->fieldHint = to->count;
  }
  const std::uint32_t slot = from->count;
  if (slot >= in->capacity) {
    const std::uint32_t cap = in->capacity < 4 ? 8 : in->capacity * 2;
    ValueArray* a = newValueArray(cap);
    std::memcpy(a->data(), in->fields, slot * sizeof(Value));
    writeBarrierPtr<ValueArray>(in, &in->overflow, a);
    in->fields = a->data();
    in->capacity = cap;
  }
  writeBarrier(in, &in->fields[slot], v);
  in->shape = to;
  return to;
}

ObjFunction* VM::convert(const lang::FunctionProto& proto) {
  const auto& chunk = proto.chunk;
  ValueArray* constants = newValueArray(static_cast<std::uint32_t>(chunk.constants.size()));
  auto* fn = allocate<ObjFunction>(ObjKind::Function,
                                   sizeof(ObjFunction) + proto.icSlots * sizeof(InlineCache));
  fn->proto = &proto;
  fn->code = chunk.code.data();
  fn->constants = constants;
  fn->name = proto.name.empty() ? nullptr : intern(proto.name);
  fn->arity = proto.arity;
  fn->upvalueCount = static_cast<std::uint32_t>(proto.upvalues.size());
  fn->icCount = proto.icSlots;
  for (std::uint32_t i = 0; i < fn->icCount; ++i) fn->ics()[i] = {nullptr, 0, Value::nil(), nullptr};
  // Every instruction pushes at most one value (SELECT two, with a 3+ byte encoding),
  // so the instruction count bounds the slots a frame uses beyond its arguments.
  std::uint32_t instructions = 0;
  for (std::size_t off = 0; off < chunk.code.size();) {
    lang::Instruction in;
    if (!lang::decode(chunk.code.data(), chunk.code.size(), off, in)) break;
    off += in.length;
    instructions += in.op == lang::OpCode::SELECT ? 2 : 1;
  }
  fn->maxStack = instructions + proto.arity + 2;
  for (std::size_t i = 0; i < chunk.constants.size(); ++i) {
    const lang::Constant& c = chunk.constants[i];
    Value v;
    if (const double* d = std::get_if<double>(&c)) {
      v = Value::number(*d);
    } else if (const std::string* s = std::get_if<std::string>(&c)) {
      v = Value::object(intern(*s));
    } else {
      v = Value::object(convert(*std::get<std::shared_ptr<const lang::FunctionProto>>(c)));
    }
    writeBarrier(constants, &constants->data()[i], v);
  }
  return fn;
}

// --- loading ------------------------------------------------------------------------------

lang::CompileResult VM::compile(std::string_view source) {
  lang::CompileResult r = lang::compile(source, globalNames_);
  globals_.resize(globalNames_.size(), Value::undefined());
  return r;
}

ObjClosure* VM::load(std::shared_ptr<const lang::FunctionProto> script) {
  scripts_.push_back(script);
  return newClosure(convert(*script));
}

std::uint32_t VM::globalSlot(std::string_view name) {
  std::uint32_t slot = globalNames_.slotFor(name);
  globals_.resize(globalNames_.size(), Value::undefined());
  return slot;
}

namespace {
bool nativeHost(VM& vm, std::uint32_t, int, Value*, Value*);
}

void VM::defineNative(std::string_view name, int arity, HostNative fn) {
  Enter enter(*this);
  hostNatives_.push_back(std::move(fn));
  const auto index = static_cast<std::uint32_t>(hostNatives_.size() - 1);
  ObjNative* n = newNative(name, arity, nativeHost, index);
  setGlobal(globalSlot(name), Value::object(n));
}

namespace {
bool nativeHost(VM& vm, std::uint32_t index, int argc, Value* args, Value* result) {
  return vm.callHostNative(index, argc, args, result);
}
}  // namespace

bool VM::callHostNative(std::uint32_t index, int argc, Value* args, Value* result) {
  // Copy the function: a native may define more natives (reallocating the vector).
  HostNative fn = hostNatives_[index];
  return fn(*this, argc, args, result);
}

// --- handles and roots -----------------------------------------------------------------------

std::uint32_t VM::newHandle(Value v) {
  if (!freeHandles_.empty()) {
    std::uint32_t h = freeHandles_.back();
    freeHandles_.pop_back();
    handles_[h] = v;
    return h;
  }
  handles_.push_back(v);
  return static_cast<std::uint32_t>(handles_.size() - 1);
}

void VM::releaseHandle(std::uint32_t h) {
  handles_[h] = Value::nil();
  freeHandles_.push_back(h);
}

void VM::forEachRoot(RootVisitor visit, void* ctx) {
  auto visitValue = [&](Value v, RootKind kind) {
    if (!v.isObj()) return;
    void* p = v.asObj();
    visit(ctx, &p, kind);
  };
  for (ObjFiber* f : fibers_) {
    void* p = f;
    visit(ctx, &p, RootKind::Strong);
  }
  for (Value v : globals_) visitValue(v, RootKind::Strong);
  for (Value v : handles_) visitValue(v, RootKind::Strong);
  for (const auto& s : shapes_) {
    if (s->key != nullptr) {
      void* p = s->key;
      visit(ctx, &p, RootKind::Strong);
    }
  }
  for (ObjString* s : {initString_, pushString_, popString_, lenString_}) {
    void* p = s;
    visit(ctx, &p, RootKind::Strong);
  }
  for (auto& [view, s] : strings_) {
    void* p = s;
    visit(ctx, &p, RootKind::Weak);
  }
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
  toString(v, out, 0);
  return out;
}

void VM::toString(Value v, std::string& out, int depth) const {
  if (v.isNumber()) {
    out += lang::formatNumber(v.asNumber());
    return;
  }
  if (v.isNil()) {
    out += "nil";
    return;
  }
  if (v.isBool()) {
    out += v.asBool() ? "true" : "false";
    return;
  }
  if (!v.isObj()) {
    out += "<undefined>";
    return;
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
  switch (o->kind) {
    case ObjKind::String: out += static_cast<ObjString*>(o)->view(); return;
    case ObjKind::Function: fnName(static_cast<ObjFunction*>(o)); return;
    case ObjKind::Closure: fnName(static_cast<ObjClosure*>(o)->function); return;
    case ObjKind::BoundMethod: fnName(static_cast<ObjBoundMethod*>(o)->method->function); return;
    case ObjKind::Native: out += "<native fn>"; return;
    case ObjKind::Class: out += static_cast<ObjClass*>(o)->name->view(); return;
    case ObjKind::Instance:
      out += static_cast<ObjInstance*>(o)->klass->name->view();
      out += " instance";
      return;
    case ObjKind::List: {
      if (depth > 32) {
        out += "[...]";
        return;
      }
      auto* l = static_cast<ObjList*>(o);
      out += '[';
      for (std::uint32_t i = 0; i < l->count; ++i) {
        if (i > 0) out += ", ";
        toString(l->items->data()[i], out, depth + 1);
      }
      out += ']';
      return;
    }
    default: out += "<"; out += kindName(o->kind); out += ">"; return;
  }
}

// --- fibers ---------------------------------------------------------------------------------------

bool VM::raise(std::string message) {
  pendingError_ = std::move(message);
  hasPendingError_ = true;
  return false;
}

void VM::recordError(ObjFiber* fiber, std::string message) {
  lastError_.message = std::move(message);
  lastError_.trace.clear();
  for (std::uint32_t i = fiber->frameCount; i-- > 0;) {
    const CallFrame& f = fiber->frames->frames()[i];
    const lang::FunctionProto* proto = f.closure->function->proto;
    const int line = proto->chunk.lines.lineAt(f.ip == 0 ? 0 : f.ip - 1);
    if (proto->name.empty()) {
      lastError_.trace.push_back(fmt::format("[line {}] in script", line));
    } else {
      lastError_.trace.push_back(fmt::format("[line {}] in {}()", line, proto->name));
    }
  }
  fiber->state = FiberState::Failed;
}

void VM::ensureStack(ObjFiber* fiber, std::uint32_t needed) {
  ValueArray* old = fiber->stack;
  if (std::uint64_t{fiber->stackTop} + needed <= old->capacity) return;
  std::uint32_t cap = old->capacity * 2;
  while (cap < fiber->stackTop + needed) cap *= 2;
  ValueArray* bigger = newValueArray(cap);
  std::memcpy(bigger->data(), old->data(), fiber->stackTop * sizeof(Value));
  writeBarrierPtr<ValueArray>(fiber, &fiber->stack, bigger);
  for (ObjUpvalue* u = fiber->openUpvalues; u != nullptr; u = u->next) {
    u->location = bigger->data() + u->slot;
  }
}

bool VM::ensureFrames(ObjFiber* fiber) {
  FrameArray* old = fiber->frames;
  if (fiber->frameCount < old->capacity) return true;
  if (fiber->frameCount >= kMaxFrames) return false;
  std::uint32_t cap = old->capacity * 2;
  if (cap > kMaxFrames) cap = kMaxFrames;
  auto* bigger = allocate<FrameArray>(ObjKind::FrameArray,
                                      sizeof(FrameArray) + cap * sizeof(CallFrame));
  bigger->capacity = cap;
  std::memcpy(bigger->frames(), old->frames(), fiber->frameCount * sizeof(CallFrame));
  writeBarrierPtr<FrameArray>(fiber, &fiber->frames, bigger);
  return true;
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
    writeBarrier(u, &u->closed, *u->location);
    u->location = &u->closed;
    writeBarrierPtr<ObjUpvalue>(fiber, &fiber->openUpvalues, u->next);
    u->next = nullptr;
  }
}

ObjFiber* VM::newFiber(Value callee, const Value* args, int argc) {
  ValueArray* stack = newValueArray(256);
  auto* frames = allocate<FrameArray>(ObjKind::FrameArray, sizeof(FrameArray) + 8 * sizeof(CallFrame));
  frames->capacity = 8;
  auto* fiber = allocate<ObjFiber>(ObjKind::Fiber, sizeof(ObjFiber));
  fiber->stack = stack;
  fiber->frames = frames;
  fiber->result = Value::nil();
  fiber->state = FiberState::Ready;
  ensureStack(fiber, static_cast<std::uint32_t>(argc) + 1);
  Value* s = fiber->stack->data();
  s[0] = callee;
  for (int i = 0; i < argc; ++i) s[1 + i] = args[i];
  fiber->stackTop = static_cast<std::uint32_t>(argc) + 1;
  // The interpreter performs the call as its first step (see Interp::start).
  return fiber;
}

bool VM::runToCompletion(ObjFiber* fiber) {
  fibers_.push_back(fiber);
  RunStatus st;
  do {
    st = run(fiber, 1 << 20);
  } while (st == RunStatus::Yield);
  fibers_.pop_back();
  return fiber->state == FiberState::Done;
}

bool VM::call(Value callee, const Value* args, int argc, Value* result) {
  ObjFiber* fiber = newFiber(callee, args, argc);
  if (!runToCompletion(fiber)) return false;
  *result = fiber->result;
  return true;
}

}  // namespace spindle::vm
