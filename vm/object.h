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

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string_view>
#include <vector>

#include "lang/proto.h"
#include "runtime/chan.h"
#include "runtime/pheap.h"
#include "runtime/throw.h"
#include "runtime/typeinfo.h"
#include "vm/value.h"

namespace spindle::vm {

class VM;
struct Shape;        // shape.h
struct InlineCache;  // shape.h
struct ShapeTable;   // shape.h
struct ObjHostData;

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
  Channel,
  StackArray,  // internal: a fiber's value stack (noscan: reported by traceStack)
  HostData,    // C++ state owned by a heap object: a host's instance state, a function's protos
  Shape,       // shape.h: an instance layout (hidden class)
  InlineCache, // shape.h: one inline-cache record
  Map,         // map.h: a Lox map
  MapStorage,  // internal (map.h): a map's entries and index
  ShapeTable,  // internal (shape.h): the field hash set of a long shape chain
  kCount,
};

struct Obj {
  runtime::ObjectHeader header;
  ObjKind kind;
  // The allocating VM's heap owner id (runtime/heapowners.h; 0: not accounted), in what
  // was padding: Obj's size is unchanged.
  std::uint16_t owner;
};

// TypeInfo of each kind, indexed by ObjKind.
extern const runtime::TypeInfo kTypes[static_cast<int>(ObjKind::kCount)];

// For trace functions: report a pointer field / the object in a NaN-boxed slot (decoded
// into a local: the collector does not move objects, nothing is written back).
inline void visitPtr(runtime::VisitFn visit, void* ctx, void* p) {
  if (p == nullptr) return;
  void* local = p;
  visit(ctx, &local);
}
inline void visitValue(runtime::VisitFn visit, void* ctx, Value v) {
  if (v.isObj()) visitPtr(visit, ctx, v.asObj());
}

// Every string is interned (string_table.h): equal strings are one object.
struct ObjString : Obj {
  std::uint32_t length;
  std::uint32_t hash;
  // The next string of its string-table bucket (Lua's hnext): a weak link the collector
  // never sees (strings are noscan); only the table reads or writes it, under its lock.
  ObjString* hnext;
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

// A function's proto (code, upvalue descriptors, line table, name) is C++ memory owned
// by `protos`, an ObjHostData holding a shared_ptr to the proto tree of the script (or
// host method) it came from: every function converted from that tree points at the same
// one, so the tree lives exactly as long as one of its functions (a frame's ip points into
// its code while the frame's closure, hence the function, is reported by the stack) and
// its cleanup frees it (VM::newProtoOwner, owned.cc).
struct ObjFunction : Obj {
  const lang::FunctionProto* proto;  // kept alive by `protos`
  ObjHostData* protos;
  const std::uint8_t* code;
  ValueArray* constants;  // numbers, interned strings, nested ObjFunctions
  ObjString* name;        // null for the script
  std::uint32_t arity;
  std::uint32_t upvalueCount;
  std::uint32_t icCount;
  std::uint32_t maxStack;  // bound on the stack slots one frame of it uses
  // Atomic pointers to immutable records (shape.h): loadPtr, stored through writeBarrierPtr.
  InlineCache** ics() { return reinterpret_cast<InlineCache**>(this + 1); }
};

struct ObjUpvalue : Obj {
  // Into the owning fiber's stack while open, &closed once closed (then never again
  // changed). Shared with other fibers (closures may be spawned): loadPtr/storePtr;
  // `closed` is written before `location` is switched to it (release).
  Value* location;
  Value closed;
  ObjUpvalue* next;  // next open upvalue of the fiber (by decreasing slot)
  std::uint32_t slot;  // stack slot while open (to rebase after the stack grows)
  // Spin lock (atomic_ref) held by the owner while it closes or rebases the upvalue and by
  // another fiber while it stores through an open location, so no store ever lands in a
  // stale location (a stack slot the owner reuses). See barrier.h upvalueGet/Set.
  std::uint32_t lock;
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

// A class is built by one fiber (CLASS, INHERIT, METHODs) before any other can see it;
// afterwards its methods never change, so readers need no lock. fieldHint is a racy
// heuristic (atomic).
struct ObjClass : Obj {
  ObjString* name;
  MethodTable* methods;
  std::uint32_t methodCount;
  Value initializer;   // the `init` method, or nil
  Shape* rootShape;    // the shape of a fresh instance (set before the class is published)
  std::uint32_t fieldHint;  // inline field slots given to new instances
};

// Fields live inline (inlineCapacity slots) until they outgrow them, then in `overflow`
// (a value array, replaced by a bigger one as fields are added; old ones are left to the
// collector). `shape` and `overflow` are shared words (loadPtr, writeBarrierPtr): a reader takes
// the storage it loaded together with its own capacity (fields()), and checks every slot
// against that capacity, so a racing add can never make it read out of bounds.
struct ObjInstance : Obj {
  ObjClass* klass;
  Shape* shape;
  ValueArray* overflow;   // null while the fields fit inline
  std::uint32_t inlineCapacity;
  Value* inlineFields() { return reinterpret_cast<Value*>(this + 1); }
  // The current field storage and its capacity.
  Value* fields(std::uint32_t* capacity) {
    ValueArray* ov = std::atomic_ref<ValueArray*>(overflow).load(std::memory_order_acquire);
    if (ov == nullptr) {
      *capacity = inlineCapacity;
      return inlineFields();
    }
    *capacity = ov->capacity;
    return ov->data();
  }
};

struct ObjBoundMethod : Obj {
  Value receiver;
  ObjClosure* method;
};

// A native returns false after calling vm.runtimeError(...) to raise an error.
using NativeFn = bool (*)(VM& vm, const void* host, int argc, Value* args, Value* result);

struct ObjNative : Obj {
  NativeFn fn;
  ObjString* name;
  std::int32_t arity;  // -1: any number of arguments
  // Data for fn: for a host-defined native the HostNative it calls (owned by its VM, never
  // moved or freed before the VM); for a math function its static table entry (mathlib.cc).
  // Null for the other built-in natives.
  const void* host;
};

// `count` and `items` are shared words (atomic): a reader bounds every index by both the
// count and the capacity of the storage it loaded, so racing pushes/pops may lose
// elements but never make anyone read or write out of bounds.
struct ObjList : Obj {
  std::uint32_t count;
  ValueArray* items;
};

// C++ memory owned by heap objects (channels' hchans, host data), vm/owned.cc: a record
// per object under a process-wide id, released by the object's cleanup or by ~VM.
// orphanLock() guards the records (process-wide: a cleanup can run on another VM's
// finalizer G after the owning VM is gone); ownedLive(id) needs it held.
using OwnedId = std::uint64_t;
std::mutex& orphanLock();
bool ownedLive(OwnedId id);

// A channel: the runtime's hchan of NaN-boxed words (runtime/chan.h). Its trace reports
// the buffered elements and those carried by blocked senders, while `owner` is live.
struct ObjChannel : Obj {
  runtime::hchan* chan;
  OwnedId owner;  // the hchan's record (owned.cc)
};

// C++ state owned by a heap object: what a host attached to an instance (spindle.h
// Vm::setHostData, held in the instance's hidden host-data field VM::kHostDataField), or
// a function's protos (ObjFunction::protos). Noscan: it holds no heap pointers. `data` is
// owned (owned.cc): its `destroy` runs once, from the object's cleanup after it was
// freed, or from ~VM for the objects still alive then. `tag` names the C++ type, so a
// host can only get its state back as the type it stored. Both are written before the
// object is published and never again.
struct ObjHostData : Obj {
  void* data;
  const void* tag;
};

// One activation. `ip` and `constants` are the closure's function's (code and constant
// storage never move: the code belongs to the function's proto, the collector does not move
// objects), so returning to a frame reloads them without going through the closure.
struct CallFrame {
  ObjClosure* closure;
  const std::uint8_t* ip;  // the next instruction (saved when the frame is not running)
  const Value* constants;  // closure->function->constants->data()
  std::uint32_t base;      // stack index of slot 0
};

struct FrameArray : Obj {
  std::uint32_t capacity;
  CallFrame* frames() { return reinterpret_cast<CallFrame*>(this + 1); }
};

enum class FiberState : std::uint8_t { Ready, Running, Done, Failed };

class FiberBody;

// A fiber's whole execution state: value stack, call frames and open upvalues. The
// scheduler runs it as a G (FiberBody, vm/fiber.h): run(fiber, budget) resumes it where
// it stopped. Its stack and frames are noscan storage: their contents are reported by
// FiberBody::traceStack while the fiber is paused (Go's stack scan), so the running
// fiber writes them without barriers or atomics.
struct ObjFiber : Obj {
  ValueArray* stack;  // kind StackArray
  std::uint32_t stackTop;  // index of the first free slot
  FrameArray* frames;
  std::uint32_t frameCount;
  ObjUpvalue* openUpvalues;
  FiberState state;
  Value result;  // the value returned by the fiber's function once Done
  // A thrown value in flight (error.cc): set by an uncaught throw (the fiber Failed),
  // or, in a fiber whose native failed after its nested VM::call failed so, the value
  // that call's fiber threw (catchError resumes a handler with it). Undefined otherwise;
  // recordError clears it.
  Value thrown;
  FiberBody* body;  // C++ side: G body, pending operation, error (not traced)
  std::atomic<bool>* preempt;  // polled at safepoints: the G's flag (set by FiberBody::run)
  bool request;  // a native asked to park or yield (FiberBody::request)
  std::uint32_t gen;  // the host call's generation (VM::aborted)
  // The fiber's number in its VM (`fiber N` in reports): host calls' main fibers and
  // spawned fibers in creation order from 1; 0 for a native's nested call.
  std::uint64_t id;
  // A fiber a spawn expression started (a script holds it: join, done): an unbuffered
  // channel nothing is sent on, closed once the fiber ended (joiners receive on it), after
  // its result, or its error as a value in `thrown`, was stored. Null for every other fiber.
  ObjChannel* done;
};

inline bool isKind(Value v, ObjKind k) { return v.isObj() && v.asObj()->kind == k; }
template <typename T>
inline T* as(Value v) {
  return static_cast<T*>(v.asObj());
}

// Eight bytes at a time, the length mixed in first: each word is xored in and multiplied;
// the last 1..8 bytes are one word read without a byte loop (the last eight bytes,
// overlapping the previous word; for shorter strings two overlapping 4-byte reads, or
// the first, middle and last byte), so every byte counts once the length is fixed. Then
// MurmurHash3's 64-bit finaliser spreads the bits, so the low bits that pick a bucket
// depend on every byte. A checkpoint (runtime/pheap.h) after every kCheckpointBytes (a
// multiple of 8): a huge string never holds up a stop. So never called under a lock the
// stopped world takes.
// MurmurHash3's 64-bit finaliser (fmix64), folded to 32 bits: every input bit reaches the
// low bits that pick a bucket (hashString, mapHash).
inline std::uint32_t mix64(std::uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return static_cast<std::uint32_t>(h);
}

inline std::uint32_t hashString(std::string_view s) {
  constexpr std::uint64_t kMul = 0x9e3779b97f4a7c15ull;
  const char* p = s.data();
  const std::size_t n = s.size();
  auto load64 = [](const char* q) {
    std::uint64_t w;
    std::memcpy(&w, q, 8);
    return w;
  };
  auto load32 = [](const char* q) {
    std::uint32_t w;
    std::memcpy(&w, q, 4);
    return std::uint64_t{w};
  };
  std::uint64_t h = n * kMul;
  if (n > 8) {
    for (std::size_t done = 0; done + 8 < n; done += 8) {
      if (done != 0 && done % runtime::kCheckpointBytes == 0) runtime::checkpoint();
      h = (h ^ load64(p + done)) * kMul;
      h ^= h >> 32;
    }
    h = (h ^ load64(p + n - 8)) * kMul;
  } else if (n >= 4) {
    h = (h ^ (load32(p) | load32(p + n - 4) << 32)) * kMul;
  } else if (n > 0) {
    const auto byte = [&](std::size_t i) { return std::uint64_t{static_cast<unsigned char>(p[i])}; };
    h = (h ^ (byte(0) | byte(n / 2) << 8 | byte(n - 1) << 16)) * kMul;
  }
  return mix64(h);
}

// Values copied or printed between two checkpoints (list growth, printing a list).
inline constexpr std::uint32_t kCheckpointValues = runtime::kCheckpointBytes / sizeof(Value);

// Human-readable kind name ("string", "instance", ...), for --stats and debugging.
const char* kindName(ObjKind k);

}  // namespace spindle::vm
