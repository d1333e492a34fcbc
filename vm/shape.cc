// shape.cc: shapes, their transitions, adding fields to instances, and inline-cache
// records (the design and the invariants are in shape.h).
#include "vm/shape.h"

#include <algorithm>
#include <atomic>

#include "runtime/gc.h"
#include "vm/barrier.h"
#include "vm/vm.h"

namespace spindle::vm {

void traceShape(void* o, runtime::VisitFn visit, void* ctx) {
  auto* s = static_cast<Shape*>(o);
  visitPtr(visit, ctx, s->parent);
  visitPtr(visit, ctx, s->key);
  visitPtr(visit, ctx, s->klass);
  visitPtr(visit, ctx, loadPtr(&s->children));
  visitPtr(visit, ctx, s->sibling);
  visitPtr(visit, ctx, loadPtr(&s->table));
}

void traceInlineCache(void* o, runtime::VisitFn visit, void* ctx) {
  auto* ic = static_cast<InlineCache*>(o);
  visitPtr(visit, ctx, ic->shape);
  visitPtr(visit, ctx, ic->transition);
  visitValue(visit, ctx, ic->method);
}

void traceShapeTable(void* o, runtime::VisitFn visit, void* ctx) {
  auto* t = static_cast<ShapeTable*>(o);
  for (std::uint32_t i = 0; i < t->capacity; ++i) {
    visitPtr(visit, ctx, loadPtr(&t->entries()[i].key));
  }
}

namespace {

// Adds (key, slot) to a table no reader has yet or whose `claimed` this caller won. The
// key is stored after the slot (release: see shape.h) and shaded, since the table may be
// black already.
void tableInsert(ShapeTable* t, ObjString* key, std::uint32_t slot) {
  const std::uint32_t mask = t->capacity - 1;
  std::uint32_t i = key->hash & mask;
  while (loadPtr(&t->entries()[i].key) != nullptr) i = (i + 1) & mask;
  ShapeTable::Entry& e = t->entries()[i];
  std::atomic_ref<std::uint32_t>(e.slot).store(slot, std::memory_order_relaxed);
  if (runtime::writeBarrierEnabled()) [[unlikely]] runtime::shade(key);
  std::atomic_ref<ObjString*>(e.key).store(key, std::memory_order_release);
}

}  // namespace

// Gives `made` (published by transition, so reachable from its class) its field table:
// its parent's, extended, when this claim wins and the table has room, else a fresh one
// built from its chain. The fresh table's allocation is the only safepoint; from its
// return to the store into `made` nothing allocates (see "Lifetime" in shape.h).
void VM::attachTable(Shape* made) {
  if (made->count < Shape::kTableMin) return;
  const Shape* from = made->parent;
  if (ShapeTable* t = loadPtr(&from->table); t != nullptr) {
    std::uint32_t expected = from->count;
    if (std::uint64_t{made->count} * 4 <= std::uint64_t{t->capacity} * 3 &&
        std::atomic_ref<std::uint32_t>(t->claimed)
            .compare_exchange_strong(expected, made->count, std::memory_order_acq_rel)) {
      tableInsert(t, made->key, from->count);
      writeBarrierPtr<ShapeTable>(made, &made->table, t);
      return;
    }
  }
  std::uint64_t capacity = 16;
  while (capacity < std::uint64_t{made->count} * 2) capacity *= 2;
  auto* t = allocate<ShapeTable>(ObjKind::ShapeTable,
                                 sizeof(ShapeTable) + capacity * sizeof(ShapeTable::Entry));
  t->capacity = static_cast<std::uint32_t>(capacity);  // zeroed: every entry empty
  t->claimed = made->count;
  for (const Shape* s = made; s->key != nullptr; s = s->parent) tableInsert(t, s->key, s->count - 1);
  writeBarrierPtr<ShapeTable>(made, &made->table, t);
}

Shape* VM::newShape(Shape* parent, ObjString* key, ObjClass* klass) {
  auto* s = allocate<Shape>(ObjKind::Shape, sizeof(Shape));
  s->parent = parent;
  s->key = key;
  s->klass = klass;
  s->count = parent == nullptr ? 0 : parent->count + 1;
  return s;
}

// Lock-free find-or-add (shape.h). `made` is allocated before the CAS loop and held only
// here until published: no safepoint lies between its allocation and the CAS, and an
// object allocated in a stretch without safepoints outlives the stretch (a cycle cannot
// start inside it; one that ends inside it allocated the object black).
Shape* VM::transition(Shape* from, ObjString* key, bool* created) {
  *created = false;
  Shape* head = loadPtr(&from->children);
  for (const Shape* s = head; s != nullptr; s = s->sibling) {
    if (s->key == key) return const_cast<Shape*>(s);
  }
  Shape* made = newShape(from, key, from->klass);
  Shape* checked = head;  // this part of the list was searched already
  std::atomic_ref<Shape*> children(from->children);
  for (;;) {
    head = children.load(std::memory_order_acquire);
    for (Shape* s = head; s != checked; s = s->sibling) {
      if (s->key == key) return s;  // a racing add won: `made` is garbage
    }
    checked = head;
    made->sibling = head;  // unpublished: a plain store
    if (runtime::writeBarrierEnabled()) [[unlikely]] {
      runtime::shade(head);
      runtime::shade(made);
    }
    // Release: publishes made's fields; acquire on failure: the winner's.
    if (children.compare_exchange_strong(head, made, std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
      *created = true;
      attachTable(made);
      return made;
    }
  }
}

// Adds field `name` (not in the instance's shape) with value v. Racing adds to one
// instance may lose a field; the storage a reader loads always covers the slots it
// checks (ObjInstance::fields), and a shape is published (release) only after its slot
// was written into storage big enough for it.
Shape* VM::addField(ObjInstance* in, ObjString* name, Value v) {
  Shape* from = loadPtr(&in->shape);
  bool created;
  Shape* to = transition(from, name, &created);
  if (created) {
    std::atomic_ref<std::uint32_t> hint(in->klass->fieldHint);
    if (to->count > hint.load(std::memory_order_relaxed) && to->count <= 16) {
      hint.store(to->count, std::memory_order_relaxed);
    }
  }
  const std::uint32_t slot = from->count;
  std::uint32_t capacity;
  Value* fields = in->fields(&capacity);
  if (slot >= capacity) {
    const std::uint32_t cap = std::max(slot + 1, capacity < 4 ? 8 : capacity * 2);
    ValueArray* a = newValueArray(cap);
    for (std::uint32_t i = 0; i < capacity; ++i) a->data()[i] = loadValue(&fields[i]);
    writeBarrierPtr<ValueArray>(in, &in->overflow, a);
    fields = a->data();
  }
  writeBarrier(in, &fields[slot], v);
  writeBarrierPtr<Shape>(in, &in->shape, to);
  return to;
}

// The current record's `updates` is read before the allocation (see shape.h: no record
// field is read after a safepoint). shape, transition and method are reachable from the
// receiver or the class the caller holds, so they survive the allocation.
void VM::updateIC(ObjFunction* fn, std::uint32_t index, Shape* shape, std::uint32_t slot,
                  Value method, Shape* transition) {
  const InlineCache* cur = loadPtr(&fn->ics()[index]);
  const std::uint32_t updates = cur == nullptr ? 0 : cur->updates;
  if (updates >= InlineCache::kMaxICUpdates) return;  // megamorphic: stop caching
  auto* rec = allocate<InlineCache>(ObjKind::InlineCache, sizeof(InlineCache));
  rec->shape = shape;  // initialising an unreachable object
  rec->transition = transition;
  rec->method = method;
  rec->slot = slot;
  rec->updates = updates + 1;
  writeBarrierPtr<InlineCache>(fn, &fn->ics()[index], rec);
}

}  // namespace spindle::vm
