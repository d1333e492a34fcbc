// hostcall_api.cc: Vm::call's direct path, a host call that needs no P of its own.
//
// Design. A host call's only work that needs a P is interning a string argument (it
// allocates); the main fiber is kept between calls (hostcall.cc). When no argument is a
// string, the arguments convert on the host thread: nil, bools and numbers are
// immediates, an object is read from the handle of the caller's Value, which stays a root
// for the whole call (the caller holds the Value). A result that is an object arrives held
// by a new handle (VM::call roots it before the main fiber stops being a root): an
// object's host Value adopts that handle; a string's bytes are copied while the handle
// holds the string (its bytes never change), then the handle goes. Other results take no
// handle. So a host call runs exactly one runMain (the main fiber's), and allocates no
// heap object of its own.
#include <algorithm>
#include <atomic>
#include <vector>

#include "vm/spindle.h"
#include "vm/shape.h"
#include "vm/vm.h"

namespace spindle {

Result Vm::callDirect(const Value& callee, std::span<const Value> args) {
  constexpr std::size_t kInline = 8;
  vm::Value inlineArgs[kInline];
  std::vector<vm::Value> more;
  vm::Value* internal = inlineArgs;
  if (args.size() > kInline) {
    more.resize(args.size());
    internal = more.data();
  }
  for (std::size_t i = 0; i < args.size(); ++i) internal[i] = toInternalValue(args[i]);
  vm::Value result;
  std::uint32_t resultHandle = 0;
  const bool ok = vm_->call(toInternalValue(callee), internal, static_cast<int>(args.size()), &result,
                            &resultHandle);
  if (!ok) {
    const vm::RuntimeErrorInfo& e = vm_->lastError();
    return Result::failure(Error{Error::Kind::Runtime, e.message, e.trace});
  }
  return Result::success(adoptResult(resultHandle, result));
}

Value Vm::adoptResult(std::uint32_t h, vm::Value result) {
  if (result.isObj() && !vm::isKind(result, vm::ObjKind::String)) {
    Value out;
    out.setObject(anchor_.anchor, h);
    return out;
  }
  Value out = result.isNumber() ? Value::number(result.asNumber())
              : result.isBool() ? Value::boolean(result.asBool())
              : result.isObj()  ? Value::string(vm::as<vm::ObjString>(result)->view())
                                : Value();
  if (result.isObj()) vm_->releaseHandle(h);  // a string's, after its bytes were copied
  return out;
}

// A field read without a P. The instance is a root (the caller's Value holds its handle)
// and so is every shape of its chain (a shape only moves to a child, whose parent it is),
// with their keys. An instance's fields are inline until they outgrow them, then all of
// them live in `overflow`, which growth replaces (the old array is garbage): only inline
// fields are read here. overflow is loaded (acquire) before and after the slot: null both
// times, the inline slot was the field's home throughout, and the slot's load (acquire,
// pairing with the release store of the fiber that wrote it: writeBarrier) reads its
// value. A number, bool or nil needs nothing more; a string or an object would need a
// root before a cycle could free it (a fiber may overwrite the field), so those, an
// overflowed instance and anything that is not an instance go the way with a P.
bool Vm::fieldDirect(const Value& instance, std::string_view name, std::optional<Value>* out) {
  const vm::Value x = toInternalValue(instance);
  if (!vm::isKind(x, vm::ObjKind::Instance) || name == vm::VM::kHostDataField) return false;
  auto* in = vm::as<vm::ObjInstance>(x);
  auto overflow = [in] { return std::atomic_ref<vm::ValueArray*>(in->overflow).load(std::memory_order_acquire); };
  if (overflow() != nullptr) return false;
  for (const vm::Shape* s = vm::loadPtr(&in->shape); s != nullptr && s->key != nullptr; s = s->parent) {
    if (s->key->view() != name) continue;
    const std::uint32_t slot = s->count - 1;
    if (slot >= in->inlineCapacity) return false;
    const vm::Value v = vm::loadValue(&in->inlineFields()[slot]);
    if (overflow() != nullptr || v.isObj()) return false;
    Value& got = out->emplace();  // nil, set in place
    if (v.isNumber()) {
      got.kind_ = Value::Kind::Number;
      got.number_ = v.asNumber();
    } else if (v.isBool()) {
      got.kind_ = Value::Kind::Bool;
      got.bool_ = v.asBool();
    }
    return true;
  }
  return false;  // not found here: the way with a P answers (a field added meanwhile)
}

// A global set without a P: the slot's lookup is the VM's lock-free cache (its first
// lookup and the globals' growth take their own locks; C++ memory: a replaced globals
// array is kept while the VM lives), and the store
// is the hybrid barrier's (writeBarrier: shading needs no P, runtime/mbarrier.cc; the
// store is a release). A number, bool or nil is no reference; an object is held by the
// caller's handle (a root), so the new referent is alive and shaded. A string must be
// interned first (an allocation): that takes a P.
bool Vm::setGlobalDirect(std::string_view name, const Value& value) {
  if (value.isNumber()) {
    vm_->setGlobal(vm_->cachedGlobalSlot(name), vm::Value::number(value.asNumber()));
    return true;
  }
  if (value.isString()) return false;
  vm_->setGlobal(vm_->cachedGlobalSlot(name), toInternalValue(value));
  return true;
}

}  // namespace spindle
