// object.h: the layout of every Lox object on Spindle's heap, and their TypeInfos.
//
// Every object is allocated with runtime::mallocgc and starts with the scan-object
// header word (a TypeInfo*), then an ObjKind byte for fast dispatch. Each kind has one
// TypeInfo (kTypes[kind]) whose trace function reports every heap pointer the object
// holds: raw pointer fields directly, NaN-boxed Values by decoding the pointer into a
// local and visiting that (the collector is non-moving, so nothing is written back).
// Strings hold no pointers: their TypeInfo has no trace function, so mallocgc puts them
// in noscan spans (the header is still written, so a string Value can be recognised).
//
// Variable-size objects keep their payload right after the struct (`this + 1`):
// ObjString's bytes, ValueArray's values, ObjClosure's upvalue pointers, ObjFunction's
// inline caches, FrameArray's frames.
//
// Invariants: every pointer field is null or points at a live object of the declared
// kind; every store of a reference into an object goes through writeBarrier (barrier.h)
// except while initialising an object that is not yet reachable (freshly allocated
// objects are allocated black by the collector's design, so these stores need none).
#pragma once

#include <cstdint>
#include <string_view>

#include "lang/proto.h"
#include "runtime/typeinfo.h"
#include "vm/value.h"

namespace spindle::vm {

class VM;
struct Shape;

enum class ObjKind : std::uint8_t {
  String,
  Function,
  Closure,
  Upvalue,
  Class,
  Instance,
  BoundMethod,
  Native,
  List,
  Fiber,
  ValueArray,  // internal: a growable array's storage
  FrameArray,  // internal: a fiber's call frames
  MethodTable, // internal: a class's method hash table storage
  Bytes,       // FFI (ffi.h): a noscan byte buffer
  Pinner,      // FFI: a script-level Pinner
  ForeignLib,  // FFI: a shared library
  ForeignFn,   // FFI: a foreign function
  kCount,
};

struct Obj {
  runtime::ObjectHeader header;
  ObjKind kind;
};

// TypeInfo of each kind, indexed by ObjKind.
extern const runtime::TypeInfo kTypes[static_cast<int>(ObjKind::kCount)];

struct ObjString : Obj {
  std::uint32_t length;
  std::uint32_t hash;
  const char* chars() const { return reinterpret_cast<const char*>(this + 1); }
  char* mutableChars() { return reinterpret_cast<char*>(this + 1); }
  std::string_view view() const { return {chars(), length}; }
};

// Storage for Values (list elements, overflowing instance fields, constants, a fiber's
// value stack). Its owner records how many are in use; unused slots hold valid Values.
struct ValueArray : Obj {
  std::uint32_t capacity;
  Value* data() { return reinterpret_cast<Value*>(this + 1); }
};

struct InlineCache {
  const Shape* shape;      // null: empty
  std::uint32_t slot;      // field slot, or kNoField when the name is a method
  Value method;            // the method (a closure) when slot == kNoField
  const Shape* transition; // SET_PROPERTY adding a field: the shape after the add
  static constexpr std::uint32_t kNoField = 0xffffffffu;
};

struct ObjFunction : Obj {
  const lang::FunctionProto* proto;  // owned by the VM (kept for its lifetime)
  const std::uint8_t* code;
  ValueArray* constants;  // numbers, interned strings, nested ObjFunctions
  ObjString* name;        // null for the script
  std::uint32_t arity;
  std::uint32_t upvalueCount;
  std::uint32_t icCount;
  std::uint32_t maxStack;  // bound on the stack slots one frame of it uses
  InlineCache* ics() { return reinterpret_cast<InlineCache*>(this + 1); }
};

struct ObjUpvalue : Obj {
  Value* location;  // into a fiber's stack while open, &closed once closed
  Value closed;
  ObjUpvalue* next;  // next open upvalue of the fiber (by decreasing slot)
  std::uint32_t slot;  // stack slot while open (to rebase after the stack grows)
};

struct ObjClosure : Obj {
  ObjFunction* function;
  std::uint32_t upvalueCount;
  ObjUpvalue** upvalues() { return reinterpret_cast<ObjUpvalue**>(this + 1); }
};

// A class's methods: open addressing, linear probing, keys are interned strings.
struct MethodEntry {
  ObjString* key;
  Value value;
};
struct MethodTable : Obj {
  std::uint32_t capacity;  // a power of two
  MethodEntry* entries() { return reinterpret_cast<MethodEntry*>(this + 1); }
};

struct ObjClass : Obj {
  ObjString* name;
  MethodTable* methods;
  std::uint32_t methodCount;
  Value initializer;   // the `init` method, or nil
  Shape* rootShape;    // the shape of a fresh instance (owned by the VM)
  std::uint32_t fieldHint;  // inline field slots given to new instances
};

struct ObjInstance : Obj {
  ObjClass* klass;
  const Shape* shape;
  Value* fields;          // inline() or overflow->data()
  ValueArray* overflow;   // null while the fields fit inline
  std::uint32_t capacity; // slots available at `fields`
  std::uint32_t inlineCapacity;
  Value* inlineFields() { return reinterpret_cast<Value*>(this + 1); }
};

struct ObjBoundMethod : Obj {
  Value receiver;
  ObjClosure* method;
};

// A native returns false after calling vm.runtimeError(...) to raise an error.
using NativeFn = bool (*)(VM& vm, std::uint32_t hostIndex, int argc, Value* args, Value* result);

struct ObjNative : Obj {
  NativeFn fn;
  ObjString* name;
  std::int32_t arity;  // -1: any number of arguments
  std::uint32_t hostIndex;
};

struct ObjList : Obj {
  std::uint32_t count;
  ValueArray* items;
};

struct CallFrame {
  ObjClosure* closure;
  std::uint32_t ip;    // offset of the next instruction (saved when the frame is not running)
  std::uint32_t base;  // stack index of slot 0
};

struct FrameArray : Obj {
  std::uint32_t capacity;
  CallFrame* frames() { return reinterpret_cast<CallFrame*>(this + 1); }
};

enum class FiberState : std::uint8_t { Ready, Running, Done, Failed };

// A fiber's whole execution state: value stack, call frames and open upvalues. The
// scheduler runs it as a G: run(fiber, budget) resumes it where it stopped.
struct ObjFiber : Obj {
  ValueArray* stack;
  std::uint32_t stackTop;  // index of the first free slot
  FrameArray* frames;
  std::uint32_t frameCount;
  ObjUpvalue* openUpvalues;
  FiberState state;
  Value result;  // the value returned by the fiber's function once Done
};

inline bool isKind(Value v, ObjKind k) { return v.isObj() && v.asObj()->kind == k; }
template <typename T>
inline T* as(Value v) {
  return static_cast<T*>(v.asObj());
}

inline std::uint32_t hashString(std::string_view s) {
  std::uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

// Human-readable kind name ("string", "instance", ...), for --stats and debugging.
const char* kindName(ObjKind k);

}  // namespace spindle::vm
