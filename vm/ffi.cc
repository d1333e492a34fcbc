// ffi.cc: foreign calls, Bytes and the script-level Pinner (see ffi.h).
#include "vm/ffi.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <new>
#include <string>
#include <string_view>

#include "runtime/m.h"
#include "runtime/mheap.h"
#include "runtime/proc.h"
#include "runtime/threadlimit.h"
#include "runtime/trace.h"
#include "vm/barrier.h"
#include "vm/fiber.h"
#include "vm/lib.h"
#include "vm/vm.h"

namespace spindle::vm {

void traceForeignLib(void* o, runtime::VisitFn visit, void* ctx) {
  auto* l = static_cast<ObjForeignLib*>(o);
  visit(ctx, reinterpret_cast<void**>(&l->path));
}
void traceForeignFn(void* o, runtime::VisitFn visit, void* ctx) {
  auto* f = static_cast<ObjForeignFn*>(o);
  visit(ctx, reinterpret_cast<void**>(&f->name));
}
void tracePinner(void* o, runtime::VisitFn visit, void* ctx) {
  static_cast<ObjPinner*>(o)->pinner.trace(visit, ctx);
}

namespace ffi {
namespace {

struct CTypeName {
  std::string_view name;
  CType type;
};
constexpr CTypeName kCTypes[] = {
    {"void", CType::Void},       {"int8", CType::Int8},       {"int16", CType::Int16},
    {"int32", CType::Int32},     {"int64", CType::Int64},     {"uint8", CType::UInt8},
    {"uint16", CType::UInt16},   {"uint32", CType::UInt32},   {"uint64", CType::UInt64},
    {"float", CType::Float},     {"double", CType::Double},   {"pointer", CType::Pointer},
    {"cstring", CType::CString}, {"char", CType::Int8},       {"short", CType::Int16},
    {"int", CType::Int32},       {"long", CType::Int64},      {"size_t", CType::UInt64},
    {"ssize_t", CType::Int64},   {"bool", CType::UInt8},
};

bool parseCType(std::string_view s, CType* out) {
  for (const CTypeName& t : kCTypes) {
    if (t.name == s) {
      *out = t.type;
      return true;
    }
  }
  return false;
}

ffi_type* ffiType(CType t) {
  switch (t) {
    case CType::Void: return &ffi_type_void;
    case CType::Int8: return &ffi_type_sint8;
    case CType::Int16: return &ffi_type_sint16;
    case CType::Int32: return &ffi_type_sint32;
    case CType::Int64: return &ffi_type_sint64;
    case CType::UInt8: return &ffi_type_uint8;
    case CType::UInt16: return &ffi_type_uint16;
    case CType::UInt32: return &ffi_type_uint32;
    case CType::UInt64: return &ffi_type_uint64;
    case CType::Float: return &ffi_type_float;
    case CType::Double: return &ffi_type_double;
    case CType::Pointer:
    case CType::CString: return &ffi_type_pointer;
  }
  return &ffi_type_void;
}

std::size_t ctypeSize(CType t) {
  switch (t) {
    case CType::Void: return 0;
    case CType::Int8: case CType::UInt8: return 1;
    case CType::Int16: case CType::UInt16: return 2;
    case CType::Int32: case CType::UInt32: case CType::Float: return 4;
    default: return 8;
  }
}

bool isString(Value v) { return isKind(v, ObjKind::String); }
std::string_view str(Value v) { return as<ObjString>(v)->view(); }

ObjForeignLib* newLib(VM& vm, void* handle, ObjString* path) {
  auto* l = vm.newObject<ObjForeignLib>(ObjKind::ForeignLib, sizeof(ObjForeignLib));
  l->handle = handle;
  l->path = path;
  return l;
}

// --- the pointer rule -------------------------------------------------------------------

// Checking mode: is `addr` a heap address of an object that is not pinned?
bool unpinnedHeapPointer(std::uintptr_t addr) {
  runtime::ObjectRef ref;
  if (!runtime::mheap().findObject(reinterpret_cast<void*>(addr), &ref)) return false;
  return !runtime::Pinner::isPinned(reinterpret_cast<void*>(addr));
}

bool checkBytes(VM& vm, ObjForeignFn* fn, int i, ObjBytes* b) {
  const std::uint64_t words = b->length / 8;
  for (std::uint64_t w = 0; w < words; ++w) {
    std::uintptr_t x;
    std::memcpy(&x, b->data() + w * 8, 8);
    if (x != 0 && unpinnedHeapPointer(x)) {
      return vm.raise(fmt::format(
          "FFI check: argument {} of {}() is a Bytes holding an unpinned heap pointer at offset "
          "{}; pin the object it points to with a Pinner.",
          i + 1, fn->name->view(), w * 8));
    }
  }
  return true;
}

// --- conversions ----------------------------------------------------------------------------

union Slot {
  std::int8_t i8;
  std::int16_t i16;
  std::int32_t i32;
  std::int64_t i64;
  std::uint8_t u8;
  std::uint16_t u16;
  std::uint32_t u32;
  std::uint64_t u64;
  float f;
  double d;
  void* p;
  ffi_arg ret;  // integer results are widened to ffi_arg
};

// An integer argument must lie in [-2^63, 2^64): there it has a 64-bit two's-complement
// representation, which the narrower C types truncate as C's conversions do (300 as a
// uint8 is 44). Anything else (an infinity, 1e22) is the script's error, named by the
// argument: outOfRange raises it.
bool integerInRange(double d) { return d >= -9223372036854775808.0 && d < 18446744073709551616.0; }

// The 64-bit two's-complement representation of the integer d (integerInRange(d)).
std::uint64_t integerBits(double d) {
  return d >= 9223372036854775808.0 ? static_cast<std::uint64_t>(d)
                                    : static_cast<std::uint64_t>(static_cast<std::int64_t>(d));
}

bool outOfRange(VM& vm, std::string_view fn, int argNo, Value v) {
  return vm.raise(fmt::format("Argument {} of {}() is out of the range of a 64-bit integer ({} given).",
                              argNo, fn, vm.toString(v)));
}

bool toC(VM& vm, ObjForeignFn* fn, int i, CType t, Value v, Slot* out) {
  auto bad = [&](const char* want) {
    return vm.raise(fmt::format("Argument {} of {}() must be {} ({} given).", i + 1,
                                fn->name->view(), want, VM::typeName(v)));
  };
  switch (t) {
    case CType::Float:
    case CType::Double:
      if (!v.isNumber()) return bad("a number");
      if (t == CType::Float) out->f = static_cast<float>(v.asNumber());
      else out->d = v.asNumber();
      return true;
    case CType::Pointer:
    case CType::CString: {
      if (v.isNil()) {
        out->p = nullptr;
        return true;
      }
      if (isKind(v, ObjKind::Bytes)) {
        auto* b = as<ObjBytes>(v);
        if (t == CType::CString && std::memchr(b->data(), 0, b->length) == nullptr) {
          return vm.raise(fmt::format("Argument {} of {}() is a Bytes with no NUL byte.", i + 1,
                                      fn->name->view()));
        }
        if (vm.options().ffiCheck && !checkBytes(vm, fn, i, b)) return false;
        out->p = b->data();
        return true;
      }
      if (isString(v)) {
        out->p = const_cast<char*>(as<ObjString>(v)->chars());  // NUL-terminated storage
        return true;
      }
      if (t == CType::Pointer && v.isNumber()) {
        // An address is an integer in [0, 2^64) (2^64 is exact as a double); anything
        // else has no conversion (undefined behaviour in C++), so it is an error.
        const double d = v.asNumber();
        if (!(d >= 0 && d < 18446744073709551616.0) || d != std::trunc(d)) {
          return vm.raise(fmt::format("Argument {} of {}() is not an address (an integer in 0..2^64-1).",
                                      i + 1, fn->name->view()));
        }
        const auto addr = static_cast<std::uintptr_t>(d);
        if (vm.options().ffiCheck && unpinnedHeapPointer(addr)) {
          return vm.raise(fmt::format(
              "FFI check: argument {} of {}() is the address of an unpinned heap object; pin it "
              "with a Pinner.",
              i + 1, fn->name->view()));
        }
        out->p = reinterpret_cast<void*>(addr);
        return true;
      }
      return bad(t == CType::CString ? "a string, Bytes or nil" : "Bytes, a string, an address or nil");
    }
    case CType::Void: return bad("nothing");
    default: break;
  }
  if (!v.isNumber()) return bad("a number");
  const double d = v.asNumber();
  if (!std::isfinite(d) || std::trunc(d) != d) {
    if (std::isinf(d)) return outOfRange(vm, fn->name->view(), i + 1, v);
    return bad("an integer");
  }
  if (!integerInRange(d)) return outOfRange(vm, fn->name->view(), i + 1, v);
  const std::uint64_t n = integerBits(d);
  switch (t) {
    case CType::Int8: out->i8 = static_cast<std::int8_t>(n); break;
    case CType::Int16: out->i16 = static_cast<std::int16_t>(n); break;
    case CType::Int32: out->i32 = static_cast<std::int32_t>(n); break;
    case CType::Int64: out->i64 = static_cast<std::int64_t>(n); break;
    case CType::UInt8: out->u8 = static_cast<std::uint8_t>(n); break;
    case CType::UInt16: out->u16 = static_cast<std::uint16_t>(n); break;
    case CType::UInt32: out->u32 = static_cast<std::uint32_t>(n); break;
    case CType::UInt64: out->u64 = n; break;
    default: break;
  }
  return true;
}

Value fromC(VM& vm, CType t, const Slot& r) {
  switch (t) {
    case CType::Void: return Value::nil();
    case CType::Int8: return Value::number(static_cast<std::int8_t>(r.ret));
    case CType::Int16: return Value::number(static_cast<std::int16_t>(r.ret));
    case CType::Int32: return Value::number(static_cast<std::int32_t>(r.ret));
    case CType::Int64: return Value::number(static_cast<double>(static_cast<std::int64_t>(r.ret)));
    case CType::UInt8: return Value::number(static_cast<std::uint8_t>(r.ret));
    case CType::UInt16: return Value::number(static_cast<std::uint16_t>(r.ret));
    case CType::UInt32: return Value::number(static_cast<std::uint32_t>(r.ret));
    case CType::UInt64: return Value::number(static_cast<double>(static_cast<std::uint64_t>(r.ret)));
    case CType::Float: return Value::number(r.f);
    case CType::Double: return Value::number(r.d);
    case CType::Pointer:
      return r.p == nullptr ? Value::nil()
                            : Value::number(static_cast<double>(reinterpret_cast<std::uintptr_t>(r.p)));
    case CType::CString:
      return r.p == nullptr ? Value::nil() : Value::object(vm.intern(static_cast<const char*>(r.p)));
  }
  return Value::nil();
}

// --- methods ----------------------------------------------------------------------------------

bool arity(VM& vm, std::string_view method, int argc, int want) {
  if (argc == want) return true;
  return vm.raise(fmt::format("{}() expects {} arguments but got {}.", method, want, argc));
}

bool libOpen(VM& vm, int argc, Value* args, Value* result) {
  if (!arity(vm, "open", argc, 1)) return false;
  if (!isString(args[0])) return vm.raise("open() expects a library path (a string).");
  void* h = dlopen(as<ObjString>(args[0])->chars(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = dlerror();
    return vm.raise(fmt::format("Cannot open library '{}': {}.", str(args[0]), e ? e : "unknown error"));
  }
  *result = Value::object(newLib(vm, h, as<ObjString>(args[0])));
  return true;
}

bool libFn(VM& vm, ObjForeignLib* lib, int argc, Value* args, Value* result) {
  if (argc != 2 && argc != 3) return vm.raise(fmt::format("fn() expects 2 or 3 arguments but got {}.", argc));
  if (!isString(args[0]) || !isString(args[1])) {
    return vm.raise("fn() expects a symbol name and a return type (strings).");
  }
  CType ret;
  if (!parseCType(str(args[1]), &ret)) return vm.raise(fmt::format("Unknown C type '{}'.", str(args[1])));
  CType types[kMaxForeignArgs];
  int nargs = 0;
  if (argc == 3) {
    if (!isKind(args[2], ObjKind::List)) return vm.raise("fn() expects a list of argument types.");
    auto* l = as<ObjList>(args[2]);
    if (l->count > kMaxForeignArgs) {
      return vm.raise(fmt::format("A foreign function takes at most {} arguments.", kMaxForeignArgs));
    }
    for (std::uint32_t i = 0; i < l->count; ++i) {
      Value t = l->items->data()[i];
      if (!isString(t) || !parseCType(str(t), &types[nargs]) || types[nargs] == CType::Void) {
        return vm.raise(fmt::format("Bad argument type {} of '{}'.", vm.toString(t), str(args[0])));
      }
      ++nargs;
    }
  }
  dlerror();
  void* sym = dlsym(lib->handle, as<ObjString>(args[0])->chars());
  if (sym == nullptr) return vm.raise(fmt::format("Undefined foreign symbol '{}'.", str(args[0])));
  auto* f = vm.newObject<ObjForeignFn>(ObjKind::ForeignFn, sizeof(ObjForeignFn));
  f->fn = sym;
  f->name = as<ObjString>(args[0]);
  f->ret = ret;
  f->nargs = static_cast<std::uint8_t>(nargs);
  for (int i = 0; i < nargs; ++i) {
    f->args[i] = types[i];
    f->argTypes[i] = ffiType(types[i]);
  }
  if (ffi_prep_cif(&f->cif, FFI_DEFAULT_ABI, static_cast<unsigned>(nargs), ffiType(ret), f->argTypes) !=
      FFI_OK) {
    return vm.raise(fmt::format("libffi cannot describe '{}'.", str(args[0])));
  }
  *result = Value::object(f);
  return true;
}

bool bytesIndex(VM& vm, ObjBytes* b, Value v, std::size_t width, std::uint64_t* out) {
  if (!v.isNumber() || std::trunc(v.asNumber()) != v.asNumber() || v.asNumber() < 0 ||
      v.asNumber() + static_cast<double>(width) > static_cast<double>(b->length)) {
    return vm.raise(fmt::format("Bytes offset {} out of range (length {}).", vm.toStringQuoted(v), b->length));
  }
  *out = static_cast<std::uint64_t>(v.asNumber());
  return true;
}

bool bytesMethod(VM& vm, ObjBytes* b, std::string_view m, int argc, Value* args, Value* result) {
  std::uint64_t off;
  if (m == "len") {
    if (!arity(vm, m, argc, 0)) return false;
    *result = Value::number(static_cast<double>(b->length));
    return true;
  }
  if (m == "address") {
    if (!arity(vm, m, argc, 0)) return false;
    *result = Value::number(static_cast<double>(reinterpret_cast<std::uintptr_t>(b->data())));
    return true;
  }
  if (m == "get" || m == "set") {
    if (!arity(vm, m, argc, m == "get" ? 1 : 2) || !bytesIndex(vm, b, args[0], 1, &off)) return false;
    if (m == "get") {
      *result = Value::number(b->data()[off]);
    } else {
      if (!args[1].isNumber()) return vm.raise("set() expects a number.");
      const double d = std::trunc(args[1].asNumber());
      if (!integerInRange(d)) return outOfRange(vm, m, 2, args[1]);
      b->data()[off] = static_cast<std::uint8_t>(integerBits(d));
    }
    return true;
  }
  if (m == "read" || m == "write") {
    // read(type, offset) / write(type, offset, value) in the C representation of `type`.
    if (!arity(vm, m, argc, m == "read" ? 2 : 3)) return false;
    CType t;
    if (!isString(args[0]) || !parseCType(str(args[0]), &t) || t == CType::Void) {
      return vm.raise(fmt::format("{}() expects a C type name.", m));
    }
    if (!bytesIndex(vm, b, args[1], ctypeSize(t), &off)) return false;
    Slot s{};
    if (m == "read") {
      std::memcpy(&s, b->data() + off, ctypeSize(t));
      if (t != CType::Float && t != CType::Double && t != CType::Pointer && t != CType::CString) {
        // Sign- or zero-extend into the ffi_arg view fromC reads.
        Slot wide{};
        switch (t) {
          case CType::Int8: wide.ret = static_cast<ffi_arg>(static_cast<std::int64_t>(s.i8)); break;
          case CType::Int16: wide.ret = static_cast<ffi_arg>(static_cast<std::int64_t>(s.i16)); break;
          case CType::Int32: wide.ret = static_cast<ffi_arg>(static_cast<std::int64_t>(s.i32)); break;
          default: wide.ret = s.u64; break;
        }
        s = wide;
      }
      *result = fromC(vm, t, s);
      return true;
    }
    ObjForeignFn dummy{};  // names the method in conversion errors
    dummy.name = vm.intern(m);
    if (!toC(vm, &dummy, 2, t, args[2], &s)) return false;
    std::memcpy(b->data() + off, &s, ctypeSize(t));
    return true;
  }
  if (m == "string") {
    // string(offset): the NUL-terminated bytes at offset as a string.
    if (!arity(vm, m, argc, 1) || !bytesIndex(vm, b, args[0], 0, &off)) return false;
    const void* end = std::memchr(b->data() + off, 0, b->length - off);
    const std::size_t n = end == nullptr ? b->length - off
                                         : static_cast<std::size_t>(static_cast<const std::uint8_t*>(end) - (b->data() + off));
    if (n > lib::maxStringLength()) return vm.raise("String too long.");
    *result = Value::object(vm.intern(std::string_view(reinterpret_cast<const char*>(b->data() + off), n)));
    return true;
  }
  return vm.raise(fmt::format("Undefined property '{}'.", m));
}

bool pinnerMethod(VM& vm, ObjPinner* p, std::string_view m, int argc, Value* args, Value* result) {
  WordLock lock(p->lock, checkpointRelax);
  if (m == "pin" || m == "isPinned") {
    if (!arity(vm, m, argc, 1)) return false;
    if (!args[0].isObj()) return vm.raise(fmt::format("{}() expects an object.", m));
    if (m == "isPinned") {
      *result = Value::boolean(runtime::Pinner::isPinned(args[0].asObj()));
      return true;
    }
    const runtime::PinError e = p->pinner.pin(args[0].asObj());
    if (e != runtime::PinError::Ok) return vm.raise(fmt::format("Cannot pin: {}.", runtime::pinErrorMessage(e)));
    return true;
  }
  if (m == "unpin") {
    if (!arity(vm, m, argc, 0)) return false;
    p->pinner.unpin();
    return true;
  }
  if (m == "count") {
    if (!arity(vm, m, argc, 0)) return false;
    *result = Value::number(static_cast<double>(p->pinner.pinCount()));
    return true;
  }
  return vm.raise(fmt::format("Undefined property '{}'.", m));
}

// Global natives.
bool nativeBytes(VM& vm, const void*, int, Value* args, Value* result) {
  const Value n = args[0];
  if (!n.isNumber() || n.asNumber() < 0 || std::trunc(n.asNumber()) != n.asNumber() ||
      n.asNumber() > 1e12) {
    return vm.raise("Bytes() expects a non-negative integer size.");
  }
  *result = Value::object(newBytes(vm, static_cast<std::uint64_t>(n.asNumber())));
  return true;
}

bool nativePinner(VM& vm, const void*, int, Value*, Value* result) {
  auto* p = vm.newObject<ObjPinner>(ObjKind::Pinner, sizeof(ObjPinner));
  new (&p->pinner) runtime::Pinner(runtime::Pinner::Holding::Traced);
  *result = Value::object(p);
  return true;
}

}  // namespace

ObjBytes* newBytes(VM& vm, std::uint64_t length) {
  auto* b = vm.newObject<ObjBytes>(ObjKind::Bytes, sizeof(ObjBytes) + length);
  b->length = length;  // the payload is zeroed by mallocgc
  return b;
}

void install(VM& vm) {
  // Called from the VM constructor inside withP.
  vm.setGlobal(vm.globalSlot("FFI"), Value::object(newLib(vm, dlopen(nullptr, RTLD_NOW), nullptr)));
  vm.setGlobal(vm.globalSlot("Bytes"), Value::object(vm.newNative("Bytes", 1, nativeBytes)));
  vm.setGlobal(vm.globalSlot("Pinner"), Value::object(vm.newNative("Pinner", 0, nativePinner)));
}

bool isFfiObject(Value v) {
  return isKind(v, ObjKind::Bytes) || isKind(v, ObjKind::Pinner) || isKind(v, ObjKind::ForeignLib);
}

bool invoke(VM& vm, Value receiver, ObjString* name, int argc, Value* args, Value* result) {
  const std::string_view m = name->view();
  switch (receiver.asObj()->kind) {
    case ObjKind::Bytes: return bytesMethod(vm, as<ObjBytes>(receiver), m, argc, args, result);
    case ObjKind::Pinner: return pinnerMethod(vm, as<ObjPinner>(receiver), m, argc, args, result);
    case ObjKind::ForeignLib:
      if (m == "open") return libOpen(vm, argc, args, result);
      if (m == "fn") return libFn(vm, as<ObjForeignLib>(receiver), argc, args, result);
      return vm.raise(fmt::format("Undefined property '{}'.", m));
    default: return vm.raise("Only instances have methods.");
  }
}

bool call(VM& vm, ObjForeignFn* fn, int argc, Value* args, Value* result) {
  if (argc != fn->nargs) {
    return vm.raise(fmt::format("Expected {} arguments but got {}.", fn->nargs, argc));
  }
  Slot slots[kMaxForeignArgs];
  void* values[kMaxForeignArgs];
  for (int i = 0; i < argc; ++i) {
    slots[i] = Slot{};
    if (!toC(vm, fn, i, fn->args[i], args[i], &slots[i])) return false;
    values[i] = &slots[i];
  }
  Slot ret{};
  // A foreign call may block: from a G, hand the P over while it runs (Go's
  // entersyscall). A host thread driving the VM directly has no G, so no P to hand over.
  // When the caller is the G's own fiber, its state is saved (the interpreter SAVEs
  // before any call; resume() runs between runs) and the arguments and callee are on its
  // stack below stackTop: the stack is quiescent, so the collector scans the G during
  // the call instead of waiting for it (exitSyscall scans it before it runs on if it has
  // not). A nested fiber (a native calling back into the VM) is not: the G's traceStack
  // does not see the nested fiber's stack.
  runtime::M* m = runtime::getm();
  const bool inG = m != nullptr && m->curg != nullptr;
  const ObjFiber* caller = currentFiber();
  const bool quiescent = inG && caller != nullptr && caller->body->g() == m->curg;
  // The call holds this M while it blocks: it needs a slot under the thread cap
  // (runtime/threadlimit.h), else it fails here, in its own fiber.
  if (inG && !runtime::acquireBlockingThread(m->sched->procs())) {
    return vm.raise(fmt::format("Thread limit exceeded: {} foreign calls are blocked (max threads {}).",
                                runtime::blockingThreads(), runtime::maxThreads()));
  }
  // The execution trace (runtime/trace.h): a "foreign call" span on the caller's P.
  const std::int32_t traceP = inG && m->p != nullptr ? m->p->id : -1;
  const std::int64_t traceT0 = runtime::trace::enabled() ? runtime::nanotime() : 0;
  if (inG) runtime::Sched::enterSyscall(quiescent);
  ffi_call(&fn->cif, FFI_FN(fn->fn), &ret, values);
  if (inG) runtime::Sched::exitSyscall();
  if (inG) runtime::releaseBlockingThread();
  if (traceT0 != 0) [[unlikely]] runtime::trace::span(traceP, "foreign", "foreign call", traceT0, fn->name->view());
  // ~VM began during the call (VM::stopFibers waits for it): the fiber ends here.
  if (vm.dying()) return vm.raise("The Vm was destroyed during a foreign call.");
  *result = fromC(vm, fn->ret, ret);
  return true;
}

}  // namespace ffi
}  // namespace spindle::vm
