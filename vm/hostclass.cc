// hostclass.cc: classes defined by the host (native methods), C++ state attached to
// instances (host data), and instance fields by name, for the embedding API (spindle.h).
//
// Host methods. A host class is an ordinary ObjClass whose methods are closures of tiny
// functions built here, not by the compiler. The code of a method of arity n is
//     CONSTANT 0 (the method's ObjNative); GET_LOCAL 0 (this) ... GET_LOCAL n;
//     CALL n+1; RETURN
// and an `init` ends with POP; GET_LOCAL 0; RETURN (an initializer returns `this`). So
// the interpreter needs nothing new: a host method is invoked, bound, inherited, called
// through `super`, spawned and arity-checked exactly like a Lox method, and the native
// sees `this` as its first argument. These functions have no source lines; traceOf skips
// their frames, so an error raised by a host method is traced from its caller, as an
// error raised by a native function is.
//
// Host data. An instance's C++ state lives in an ObjHostData (noscan) held in a hidden
// field (VM::kHostDataField, which no Lox name can spell), so it is exactly as alive as
// the instance: handles, globals, stacks and other objects keep it. `data` is C++ memory
// the ObjHostData owns (owned.cc): its cleanup runs `destroy(data)` once the object was
// freed, ~VM for those still alive; exactly once either way. newOwned is the one way to
// make an ObjHostData: host data and the owners of function protos (function.cc) alike.
#include <atomic>
#include <mutex>

#include "lang/opcodes.h"
#include "runtime/gc.h"
#include "runtime/throw.h"
#include "vm/vm.h"

namespace spindle::vm {

ObjFunction* VM::newHostMethodFunction(const HostMethod& m, bool initializer) {
  SPINDLE_CHECK(m.arity >= 0, "host method {}: arity {} (must be >= 0)", m.name, m.arity);
  const auto arity = static_cast<std::uint32_t>(m.arity);
  auto proto = std::make_shared<lang::FunctionProto>();
  proto->name = m.name;
  proto->kind = initializer ? lang::FunctionKind::Initializer : lang::FunctionKind::Method;
  proto->arity = arity;
  std::vector<std::uint8_t>& code = proto->chunk.code;
  lang::encode(code, lang::OpCode::CONSTANT, {0});
  for (std::uint32_t i = 0; i <= arity; ++i) lang::encode(code, lang::OpCode::GET_LOCAL, {i});
  lang::encode(code, lang::OpCode::CALL, {arity + 1});
  if (initializer) {
    lang::encode(code, lang::OpCode::POP, {});
    lang::encode(code, lang::OpCode::GET_LOCAL, {0});
  }
  lang::encode(code, lang::OpCode::RETURN, {});
  // No line table: traceOf skips the frame (see the file comment).
  proto->chunk.constants.emplace_back(0.0);  // the native's slot, filled below

  ObjNative* native = m.raw != nullptr ? newHostNative(m.name, m.arity + 1, m.raw, m.data)
                                       : newHostNative(m.name, m.arity + 1, m.fn);
  const lang::FunctionProto& p = *proto;
  ObjFunction* fn = convert(p, newProtoOwner(std::move(proto)));
  fn->constants->data()[0] = Value::object(native);  // initialising an unreachable object
  return fn;
}

// Runs inside one G run (withP, or a native): no cycle can start before the class is
// reachable from the caller's roots, so the objects made here need no other root.
ObjClass* VM::newHostClass(std::string_view name, const std::vector<HostMethod>& methods) {
  ObjClass* klass = newClass(intern(name));
  for (const HostMethod& m : methods) {
    ObjString* key = intern(m.name);
    ObjClosure* closure = newClosure(newHostMethodFunction(m, key == initString_));
    setMethod(klass, key, Value::object(closure));
  }
  return klass;
}

bool VM::setHostData(Value instance, void* data, const void* tag, void (*destroy)(void*)) {
  if (!isKind(instance, ObjKind::Instance)) {
    destroy(data);
    return false;
  }
  ObjHostData* h = newOwned(data, tag, destroy);
  // Replacing state: the old ObjHostData dies with its last reference and its cleanup
  // destroys it then, not now (a native on another fiber may still be using it).
  storeField(as<ObjInstance>(instance), hostDataKey_, Value::object(h));
  return true;
}

ObjHostData* VM::newOwned(void* data, const void* tag, void (*destroy)(void*)) {
  auto* h = allocate<ObjHostData>(ObjKind::HostData, sizeof(ObjHostData));
  h->data = data;
  h->tag = tag;
  own(h, data, destroy, destroy);
  return h;
}

void* VM::hostData(Value instance, const void* tag) const {
  if (!isKind(instance, ObjKind::Instance)) return nullptr;
  auto* in = as<ObjInstance>(instance);
  const std::int64_t slot = loadPtr(&in->shape)->find(hostDataKey_);
  std::uint32_t capacity;
  Value* fields = in->fields(&capacity);
  if (slot < 0 || static_cast<std::uint32_t>(slot) >= capacity) return nullptr;
  const Value v = loadValue(&fields[slot]);
  if (!isKind(v, ObjKind::HostData)) return nullptr;
  auto* h = as<ObjHostData>(v);
  if (h->tag != tag) return nullptr;
  // Reachable, so its cleanup has not run: `data` was set before h was published.
  return h->data;
}

bool VM::getField(Value instance, std::string_view name, Value* out) const {
  if (!isKind(instance, ObjKind::Instance) || name == kHostDataField) return false;
  auto* in = as<ObjInstance>(instance);
  const Shape* shape = loadPtr(&in->shape);
  std::uint32_t capacity;
  Value* fields = in->fields(&capacity);
  for (const Shape* s = shape; s != nullptr && s->key != nullptr; s = s->parent) {
    if (s->key->view() == name) {
      const std::uint32_t slot = s->count - 1;
      *out = slot < capacity ? loadValue(&fields[slot]) : Value::nil();
      return true;
    }
  }
  // A module object's names are its globals (module.cc), read live.
  if (std::uint32_t g; moduleSlot(in, name, &g)) {
    *out = loadValue(&globalsData()[g]);
    return !out->isUndefined();
  }
  return false;
}

bool VM::setField(Value instance, std::string_view name, Value v) {
  if (!isKind(instance, ObjKind::Instance) || name == kHostDataField) return false;
  if (isModuleObject(as<ObjInstance>(instance))) {
    // A module object's names are its globals: one it declares and defined is written,
    // no name is added.
    std::uint32_t g;
    if (!moduleSlot(as<ObjInstance>(instance), name, &g)) return false;
    Value* global = &globalsData()[g];
    if (loadValue(global).isUndefined()) return false;
    writeBarrier(nullptr, global, v);
    return true;
  }
  storeField(as<ObjInstance>(instance), intern(name), v);
  return true;
}

// As SET_PROPERTY's slow path: overwrite the field, or add it.
void VM::storeField(ObjInstance* in, ObjString* key, Value v) {
  const std::int64_t slot = loadPtr(&in->shape)->find(key);
  if (slot < 0) {
    addField(in, key, v);
    return;
  }
  std::uint32_t capacity;
  Value* fields = in->fields(&capacity);
  // A racing add may have published the shape before its storage: the store is lost.
  if (static_cast<std::uint32_t>(slot) < capacity) writeBarrier(in, &fields[slot], v);
}

}  // namespace spindle::vm
