// barrier.h: the one path for storing a heap reference into a heap object, and the
// atomic accessors for words that racing fibers may share.
//
// Write barrier (Go's hybrid barrier, runtime/gc.h). Every store of a Value or object
// pointer into a field of a heap object (instance fields, list elements, closure
// upvalues, class method tables, globals, another fiber's stack through an open
// upvalue...) goes through writeBarrier / writeBarrierPtr: while the collector is marking
// (runtime::writeBarrierEnabled()), the overwritten and the new referent are shaded, then
// the word is stored. Stores into the running fiber's own value stack are stack writes and
// take none: a fiber's stack is scanned (GBody::traceStack) while the fiber is paused.
//
// Race safety. Fibers run in parallel, so any word reachable by two fibers may be read
// while another fiber writes it. Such words are only accessed atomically: loads with
// acquire, stores with release (both plain moves on x86-64). Release/acquire (not relaxed)
// because a store may publish a freshly initialised object whose plain fields the reader
// then reads: the acquire load orders those reads after the initialisation. A racing Lox
// program may lose updates or read stale values; it never reads a torn word.
#pragma once

#include <atomic>

#include "runtime/gc.h"
#include "runtime/pheap.h"
#include "runtime/proc.h"
#include "vm/object.h"
#include "vm/value.h"

namespace spindle::vm {

// Atomic accesses go through the Value's representation word (an integer atomic: plain
// moves, where atomic_ref<Value> of a class type may go through memory).
inline std::atomic_ref<std::uint64_t> valueWord(const Value* slot) {
  return std::atomic_ref<std::uint64_t>(const_cast<Value*>(slot)->rawBits());
}
inline Value loadValue(const Value* slot) {
  return Value::fromBits(valueWord(slot).load(std::memory_order_acquire));
}
template <typename T>
inline T* loadPtr(T* const* slot) {
  return std::atomic_ref<T*>(*const_cast<T**>(slot)).load(std::memory_order_acquire);
}
template <typename T>
inline void storePtr(T** slot, T* value) {
  std::atomic_ref<T*>(*slot).store(value, std::memory_order_release);
}

// A fiber's own value-stack slots. The running fiber writes them with release stores and
// reads the locals (GET_LOCAL) atomically: another fiber may hold a closure whose upvalue
// is still open on this stack (it reads and writes the slot through the upvalue, see
// ObjUpvalue), and a reader holding a stale location validates it after its load. Reads
// of temporaries stay plain (no other fiber ever writes them).
inline void stackStore(Value* slot, Value v) {
  valueWord(slot).store(v.bits(), std::memory_order_release);
}
inline Value stackLoad(const Value* slot) {
  return Value::fromBits(valueWord(slot).load(std::memory_order_relaxed));
}

inline void shadeValue(Value v) {
  if (v.isObj()) runtime::shade(v.asObj());
}

// Stores `value` into `*slot`, a field of heap object `holder` (or a root).
inline void writeBarrier([[maybe_unused]] Obj* holder, Value* slot, Value value) {
  if (runtime::writeBarrierEnabled()) [[unlikely]] {
    shadeValue(loadValue(slot));
    shadeValue(value);
  }
  valueWord(slot).store(value.bits(), std::memory_order_release);
}

// Same, for a slot that holds no reference: never written since its object was zeroed
// (a map entry past `used`). Only the new referent is shaded and the slot is not read
// (so a fresh page is not faulted in twice, once to read it and once to write it).
inline void writeBarrierFresh([[maybe_unused]] Obj* holder, Value* slot, Value value) {
  if (runtime::writeBarrierEnabled()) [[unlikely]] shadeValue(value);
  valueWord(slot).store(value.bits(), std::memory_order_release);
}
// Same as writeBarrier, for a raw object pointer field.
template <typename T>
inline void writeBarrierPtr([[maybe_unused]] Obj* holder, T** slot, T* value) {
  if (runtime::writeBarrierEnabled()) [[unlikely]] {
    runtime::shade(loadPtr(slot));
    runtime::shade(value);
  }
  storePtr(slot, value);
}

// A list's elements, read and written as fibers race on it: the count is acquired, the
// storage loaded once; a racing push may publish a count before the storage that holds
// element k (k < count), which then reads as nil and takes no store.
inline std::uint32_t listCount(ObjList* l) {
  return std::atomic_ref<std::uint32_t>(l->count).load(std::memory_order_acquire);
}
inline Value listLoad(ObjList* l, std::uint32_t k) {
  ValueArray* items = loadPtr(&l->items);
  return k < items->capacity ? loadValue(&items->data()[k]) : Value::nil();
}
inline void listStore(ObjList* l, std::uint32_t k, Value v) {
  ValueArray* items = loadPtr(&l->items);
  if (k < items->capacity) writeBarrier(items, &items->data()[k], v);
}
// The element number `index` names in l when it is an integer below l's count (l[i]'s
// fast path: no rounding, one conversion each way); false for anything else, whose error
// the caller reports.
inline bool listIndex(ObjList* l, Value index, std::uint32_t* k) {
  std::int64_t i;
  double back;
  if (!index.isNumber() || !numberToInt64(index.asNumber(), &i, &back)) return false;
  if (static_cast<std::uint64_t>(i) >= listCount(l)) return false;  // negatives wrap above
  *k = static_cast<std::uint32_t>(i);
  return true;
}

// A one-word spin lock inside a heap object (0 = free, 1 = held). `relax` runs while
// another holds it. A holder that passes no checkpoint and makes no foreign call keeps its
// P for the whole section (the upvalue lock: a few stores), so plain spinning is enough:
// it runs and releases. A lock whose holder may allocate or pass a checkpoint needs
// checkpointRelax, for two cycles:
//   - a stop of the world (or forEachP) stops the holder mid-section; a waiter that did
//     not let the world stop too would keep the stop waiting for it, and it waits for
//     the stopped holder;
//   - the holder loses its P at such a stop (or to sysmon's retake in a foreign call) and
//     waits in exitSyscall for one; if every P then runs a waiter (the restart handed
//     them to queued fibers, which reached the lock), the holder never runs again. So a
//     waiter hands its P to any M waiting for one (Sched::lockWaitRelax) and waits in
//     exitSyscall itself: the holder, first in line, gets a P. Test: wordlock_test.
class WordLock {
 public:
  explicit WordLock(std::uint32_t& word, void (*relax)() = nullptr) : word_(word) {
    while (word_.exchange(1, std::memory_order_acquire) != 0) {
      while (word_.load(std::memory_order_relaxed) != 0) {
        if (relax != nullptr) relax();
      }
    }
  }
  ~WordLock() { word_.store(0, std::memory_order_release); }
  WordLock(const WordLock&) = delete;
  WordLock& operator=(const WordLock&) = delete;

 private:
  std::atomic_ref<std::uint32_t> word_;
};

// WordLock's `relax` for locks whose holder may allocate or pass a checkpoint (a script
// Pinner's methods, appending to a map): a waiter passes a checkpoint too, so a stop of the
// world proceeds while it waits, and gives its P to an M waiting for one, which may be the
// holder's.
inline void checkpointRelax() { runtime::Sched::lockWaitRelax(); }

// --- upvalues (any fiber) -----------------------------------------------------------------
// Reads through an upvalue. An open location may go stale while we read it (the owner
// closes the upvalue and reuses the slot, or moves its stack): the read is retried until
// the location it came from is still current afterwards.
//
// A read of an open upvalue copies a value out of a fiber's stack, possibly another
// fiber's, onto the reader's stack. Stacks take no write barrier (the hybrid barrier's
// premise is that only a G touches its own stack), so while the collector marks, the
// value read is shaded: otherwise the reader's stack may have been scanned already, the
// owner, not yet scanned, may overwrite its slot with a plain stack write, and the object
// would be reachable from the reader alone yet never marked (Go shades for the same
// reason when it copies between stacks: sendDirect/recvDirect). A closed upvalue is a
// heap field, covered by the deletion half of the barrier on writes: no shade.
inline Value upvalueGet(ObjUpvalue* u) {
  for (;;) {
    Value* at = loadPtr(&u->location);
    const Value v = loadValue(at);
    if (at == &u->closed) return v;
    if (loadPtr(&u->location) == at) {
      if (runtime::writeBarrierEnabled()) [[unlikely]] shadeValue(v);
      return v;
    }
  }
}

// Writes through an upvalue (a barriered store: the location may be another fiber's stack).
inline void upvalueSet(ObjUpvalue* u, Value v) {
  Value* at = loadPtr(&u->location);
  if (at == &u->closed) {
    writeBarrier(u, at, v);
    return;
  }
  WordLock lock(u->lock);
  writeBarrier(u, loadPtr(&u->location), v);
}

}  // namespace spindle::vm
