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
#include "vm/value.h"

namespace spindle::vm {

struct Obj;

inline Value loadValue(const Value* slot) {
  return std::atomic_ref<Value>(*const_cast<Value*>(slot)).load(std::memory_order_acquire);
}
template <typename T>
inline T* loadPtr(T* const* slot) {
  return std::atomic_ref<T*>(*const_cast<T**>(slot)).load(std::memory_order_acquire);
}
template <typename T>
inline void storePtr(T** slot, T* value) {
  std::atomic_ref<T*>(*slot).store(value, std::memory_order_release);
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
  std::atomic_ref<Value>(*slot).store(value, std::memory_order_release);
}

// Same, for a raw object pointer field.
template <typename T>
inline void writeBarrierPtr([[maybe_unused]] Obj* holder, T** slot, T* value) {
  if (runtime::writeBarrierEnabled()) [[unlikely]] {
    runtime::shade(loadPtr(slot));
    runtime::shade(value);
  }
  storePtr(slot, value);
}

}  // namespace spindle::vm
