// shape.h: hidden classes for instances, the key of the property inline caches.
//
// A Shape maps field names to slots. Every class has a root shape (no fields); adding
// field `name` to an instance moves it to the child shape `transition(name)`, so
// instances that got the same fields in the same order share a shape, and a shape
// identifies both the field layout and the class. An inline cache that remembers
// (shape, slot) answers a property access with one pointer compare.
//
// Shapes are VM metadata, owned by the VM (never freed; a program that creates classes
// without bound leaks their shapes: a known limitation until shapes move to the heap).
// Their keys are interned strings, reported to the collector as strong roots.
// Invariants: child->count == parent->count + 1, child->key is the new field at slot
// parent->count; a shape's transitions are unique per key.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "vm/object.h"

namespace spindle::vm {

struct Shape {
  const Shape* parent = nullptr;
  ObjString* key = nullptr;     // the field added by this shape (null for a root)
  std::uint32_t count = 0;      // fields in this shape
  ObjClass* klass = nullptr;    // the class whose instances have this shape
  std::vector<std::pair<ObjString*, Shape*>> transitions;

  // The slot of `name`, or -1.
  std::int64_t find(const ObjString* name) const {
    for (const Shape* s = this; s->key != nullptr; s = s->parent) {
      if (s->key == name) return s->count - 1;
    }
    return -1;
  }
};

}  // namespace spindle::vm
