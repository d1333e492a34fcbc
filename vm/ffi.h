// ffi.h: foreign calls from Lox through libffi, Bytes buffers and the script-level
// Pinner (the Lox surface is documented in docs/LANGUAGE.md, "Foreign functions").
//
//   var libc = FFI.open("libc.so.6");              // FFI itself: the process's symbols
//   var strlen = libc.fn("strlen", "size_t", ["cstring"]);
//   print strlen("abc");                           // 3
//   var buf = Bytes(16);                           // 16 zeroed bytes on the heap
//   var p = Pinner(); p.pin(buf); keep(buf); ... p.unpin();
//
// Objects (object.h kinds, layouts here):
//   ForeignLib  a dlopen handle and its path. `FFI` is the process's own namespace
//               (dlopen(NULL)); open(path) and fn(name, ret, args) are its methods.
//   ForeignFn   a symbol with its libffi call interface (ffi_cif, argument types) inline;
//               callable like a function.
//   Bytes       a noscan, zeroed heap buffer; passed as a pointer to its first byte.
//   Pinner      a runtime::Pinner (Holding::Traced) inside a heap object whose trace
//               reports its inner pinner: a Pinner dropped without unpin() is found by
//               the inner pinner's leak finalizer.
//
// Calls. Arguments are converted from Values to C by the declared types (integers of
// every width, float, double, pointer, cstring) and the result back (integers and
// doubles to numbers, a pointer to its address as a number or nil, a cstring to a new
// string, void to nil). Strings pass their own storage (always NUL-terminated); Bytes
// pass their data. The arguments stay on the fiber's stack, rooted, for the duration of
// the call. When the calling thread is an M running a G (runtime::getm()->curg), the
// call runs between Sched::enterSyscall and exitSyscall so the P can serve other fibers;
// otherwise (the VM driven directly by a host thread) it is a plain call.
//
// The rule (Go's cgo rule): a heap pointer may be passed for the duration of a call;
// foreign code that keeps it after returning requires the object pinned. Checking mode
// (VMOptions::ffiCheck: on in builds with invariant checks, and with --ffi-check) rejects,
// with a runtime error, passing memory that holds an unpinned heap pointer (a Bytes
// whose words point into an unpinned heap object) and heap addresses passed as numbers
// to unpinned objects.
#pragma once

#include <ffi.h>

#include <cstdint>

#include "runtime/pinner.h"
#include "vm/object.h"
#include "vm/value.h"

namespace spindle::vm {

class VM;

inline constexpr int kMaxForeignArgs = 16;

// C types of foreign signatures ("int32", "size_t", ...: see parseCType in ffi.cc).
enum class CType : std::uint8_t {
  Void, Int8, Int16, Int32, Int64, UInt8, UInt16, UInt32, UInt64, Float, Double, Pointer, CString,
};

struct ObjForeignLib : Obj {
  void* handle;
  ObjString* path;  // nil for the process namespace
};

struct ObjForeignFn : Obj {
  void* fn;
  ObjString* name;
  CType ret;
  std::uint8_t nargs;
  CType args[kMaxForeignArgs];
  ffi_type* argTypes[kMaxForeignArgs];  // cif.arg_types points here
  ffi_cif cif;
};

struct ObjBytes : Obj {
  std::uint64_t length;
  std::uint8_t* data() { return reinterpret_cast<std::uint8_t*>(this + 1); }
};

// runtime::Pinner has a single owner; a script's Pinner may be used by any fibers at
// once, so its methods run under `lock` (a WordLock with checkpointRelax: pin may
// allocate, and so be stopped mid-call, losing its P; waiters let the world stop and give
// their Ps to Ms waiting for one).
struct ObjPinner : Obj {
  std::uint32_t lock;      // 0 free, 1 held (zeroed by mallocgc)
  runtime::Pinner pinner;  // Holding::Traced; constructed in place, never destroyed
};

// Trace functions of the kinds that hold references (object.cc's kTypes).
void traceForeignLib(void* o, runtime::VisitFn visit, void* ctx);
void traceForeignFn(void* o, runtime::VisitFn visit, void* ctx);
void tracePinner(void* o, runtime::VisitFn visit, void* ctx);

namespace ffi {

// Defines the globals FFI, Bytes and Pinner (called once by the VM constructor).
void install(VM& vm);
bool isFfiObject(Value v);
// A method call on an FFI object; false after vm.raise(message).
bool invoke(VM& vm, Value receiver, ObjString* name, int argc, Value* args, Value* result);
// Calls a foreign function; false after vm.raise(message).
bool call(VM& vm, ObjForeignFn* fn, int argc, Value* args, Value* result);
// A new zeroed Bytes buffer.
ObjBytes* newBytes(VM& vm, std::uint64_t length);

}  // namespace ffi
}  // namespace spindle::vm
