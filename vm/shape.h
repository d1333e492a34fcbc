// shape.h: hidden classes (shapes) of instances and the property inline caches keyed on
// them. Both are ordinary heap objects (ObjKind::Shape, ObjKind::InlineCache), collected
// like any other: nothing here is a root and nothing is walked per cycle.
//
// Shapes. A Shape maps field names to slots. Every class has a root shape (no fields);
// adding field `name` to an instance moves it to the child shape reached by the transition
// `name`, so instances that got the same fields in the same order share a shape, and a
// shape identifies both the field layout and the class. A shape is alive while a class
// (rootShape), an instance (shape), an inline-cache record, a child (parent) or a live
// parent's transition list reaches it.
// Invariants: child->count == parent->count + 1; child->key is the field at slot
// parent->count; child->klass == parent->klass; a shape's transitions are unique per key.
// Transitions are a lock-free list: `children` (an atomic pointer to the newest child)
// and each child's `sibling` (the next older one, written before the child is published
// and never changed). VM::transition pushes a new child with a CAS on `children`, after
// checking the list it loaded; a failed CAS rechecks the list that won, so two fibers
// adding the same field at once end with one child. The CAS is a store of a reference
// into an existing object: it shades the old head and the new child first (barrier.h's
// hybrid barrier; the mark phase cannot start or end between the check and the CAS, as
// no safepoint lies between them).
//
// Field tables. Looking a name up by walking the chain costs the shape's field count,
// so an instance growing to n fields would cost n^2. A shape with kTableMin fields or
// more gets a ShapeTable: an open-addressing hash set of (key, slot) pairs of its chain,
// shared along the chain. The table is attached after the shape is published (transition:
// the creator of the shape, alone, attaches it): until then `table` is null and find walks
// the chain. To attach, the new shape claims its parent's table by a CAS of the table's
// `claimed` from parent->count to parent->count + 1 and inserts its own key: the table
// then answers for every shape of the chain up to the child, a shape of count c taking
// only the slots below c. A table that another child of the same parent claimed first,
// that its parent does not have yet, or that has no room left, is not extended: the new
// shape gets a fresh table, at least twice its field count, built from its chain (so
// building costs are amortized along a chain: linear in the chain's length).
// Invariants: a table holds the keys of one chain, each at most once (a chain's keys are
// distinct, and only the one claimer of a count inserts); entries are only added, never
// changed or removed, and a table is never replaced or resized in place; an entry's slot
// is written before its key is published (release), so a reader that loads the key
// (acquire) reads its slot; a shape's `table` goes from null to its table once (release,
// after every entry below the shape's count is in) and never changes again.
// Lifetime (the collector sees every table): a table is a heap object traced from every
// shape whose `table` points at it, and every shape of a class stays reachable while the
// class is (root shape, transition lists), so a table lives as long as any shape that can
// hand it to a reader. Its one unreachable stretch is between its allocation and the
// store into the shape; no safepoint lies there (filling it allocates nothing), and an
// object allocated in a stretch without safepoints outlives the stretch. The shape it is
// attached to is already published when the table is allocated, so the allocation's
// safepoint cannot free the shape either. The store goes through the write barrier
// (writeBarrierPtr), since the shape may be black already. The table traces its keys (an
// entry must never match a later string at a reused address).
//
// Inline caches. Every GET_PROPERTY, SET_PROPERTY, GET_SUPER, INVOKE and SUPER_INVOKE
// has a slot in its function (ObjFunction::ics(), traced by the function) holding an
// atomic pointer to an immutable record: (shape, field slot), (shape, method), or for a
// field-adding SET_PROPERTY (shape, slot, next shape). A miss replaces the record whole
// (VM::updateIC, through writeBarrierPtr), so racing fibers never see a torn record;
// after kMaxICUpdates records a site stops caching (megamorphic), keeping its last one,
// so a site holds at most one record at a time and makes at most kMaxICUpdates.
// A replaced record is left to the collector. Why no reader can use it after it is freed:
// a reader loads the record pointer and reads its fields within one instruction handler,
// with no safepoint between the load and the last field read (it reads them before any
// allocation the handler makes), and C++ registers are not scanned. A record is freed by
// the sweep of a cycle whose mark did not reach it. If it was replaced before that
// cycle's mark began, every reader had loaded it before the sweep-termination stop,
// which waits for every fiber to reach a safepoint, so all of them are done with it. If
// it was replaced while that mark ran, the replacing store shaded it (the deletion half
// of the hybrid barrier), so that mark did reach it and it survives to the next cycle,
// whose start again waits for every reader. A record replaced during a sweep was marked
// by the mark before it (it was installed then) and is not freed by that sweep.
// The record holds its shape, transition and method strongly: a live function keeps at
// most one record per site, and with it one method (and what the method captures).
#pragma once

#include <atomic>
#include <cstdint>

#include "runtime/typeinfo.h"
#include "vm/object.h"

namespace spindle::vm {

struct ShapeTable;

struct Shape : Obj {
  Shape* parent;        // null for a root
  ObjString* key;       // the field added by this shape (null for a root)
  ObjClass* klass;      // the class whose instances have this shape
  Shape* children;      // atomic (loadPtr / CAS): newest transition, linked by `sibling`
  Shape* sibling;       // the next older transition of `parent`; immutable once published
  ShapeTable* table;    // atomic: null until attached (see "Field tables"), then fixed
  std::uint32_t count;  // fields in this shape

  static constexpr std::uint32_t kTableMin = 8;

  // The slot of `name`, or -1.
  std::int64_t find(const ObjString* name) const;
};

// The hash set of a chain's fields (see "Field tables" above). Entries are read and
// written through atomic_ref: keys with acquire/release, slots relaxed (ordered by keys).
struct ShapeTable : Obj {
  struct Entry {
    ObjString* key;  // null: empty
    std::uint32_t slot;
  };
  std::uint32_t capacity;  // a power of two
  // Atomic: the count of the shape that last extended the table, which is also the
  // number of entries (each claim adds one).
  std::uint32_t claimed;
  Entry* entries() { return reinterpret_cast<Entry*>(this + 1); }
  const Entry* entries() const { return reinterpret_cast<const Entry*>(this + 1); }

  // The slot of `name` among the first `count` fields of a chain, or -1.
  std::int64_t find(const ObjString* name, std::uint32_t count) const {
    const std::uint32_t mask = capacity - 1;
    for (std::uint32_t i = name->hash & mask;; i = (i + 1) & mask) {
      const Entry& e = entries()[i];
      const ObjString* k =
          std::atomic_ref<ObjString*>(const_cast<ObjString*&>(e.key)).load(std::memory_order_acquire);
      if (k == nullptr) return -1;
      if (k == name) {
        const std::uint32_t slot =
            std::atomic_ref<std::uint32_t>(const_cast<std::uint32_t&>(e.slot)).load(std::memory_order_relaxed);
        return slot < count ? std::int64_t{slot} : -1;
      }
    }
  }
};

inline std::int64_t Shape::find(const ObjString* name) const {
  // Acquire: pairs with the release store of attachTable, so the entries are visible.
  const ShapeTable* t =
      std::atomic_ref<ShapeTable*>(const_cast<ShapeTable*&>(table)).load(std::memory_order_acquire);
  if (t != nullptr) return t->find(name, count);
  for (const Shape* s = this; s->key != nullptr; s = s->parent) {
    if (s->key == name) return s->count - 1;
  }
  return -1;
}

// One inline-cache state (immutable once published; see the file comment).
struct InlineCache : Obj {
  Shape* shape;            // the receiver's shape (super sites: the superclass's root shape)
  Shape* transition;       // SET_PROPERTY adding a field: the shape after the add
  Value method;            // the method (a closure) when slot == kNoField
  std::uint32_t slot;      // field slot, or kNoField when the name is a method
  std::uint32_t updates;   // records this site has had (megamorphic at kMaxICUpdates)
  static constexpr std::uint32_t kNoField = 0xffffffffu;
  static constexpr std::uint32_t kMaxICUpdates = 8;
};

void traceShape(void* o, runtime::VisitFn visit, void* ctx);
void traceInlineCache(void* o, runtime::VisitFn visit, void* ctx);
void traceShapeTable(void* o, runtime::VisitFn visit, void* ctx);

}  // namespace spindle::vm
