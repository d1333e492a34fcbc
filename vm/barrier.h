// barrier.h: the one path for storing a heap reference into a heap object.
//
// Every store of a Value or object pointer into a field of a heap object (instance
// fields, list elements, closure upvalues, class method tables, fiber stacks when they
// are written from outside the running fiber's own frame...) goes through writeBarrier.
// Today it is a plain store: there is no collector yet. The concurrent collector will
// hook Go's hybrid barrier here (shade the old and the new referent while marking),
// with a fast path of one load and one branch when marking is off.
//
// Stores into the running fiber's own value stack are stack writes: as in Go, stacks
// are scanned when their fiber is paused and need no barrier.
#pragma once

#include "vm/value.h"

namespace spindle::vm {

struct Obj;

// Stores `value` into `*slot`, a field of heap object `holder`.
inline void writeBarrier([[maybe_unused]] Obj* holder, Value* slot, Value value) {
  *slot = value;
}

// Same, for a raw object pointer field.
template <typename T>
inline void writeBarrierPtr([[maybe_unused]] Obj* holder, T** slot, T* value) {
  *slot = value;
}

}  // namespace spindle::vm
