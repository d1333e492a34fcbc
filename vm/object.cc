// object.cc: the TypeInfos and trace functions of every object kind (see object.h).
//
// Trace functions may run on a collector thread while fibers mutate the object, so every
// word that a fiber may store after publication is read atomically (loadValue/loadPtr).
// A fiber's stack and frames (StackArray, FrameArray) are noscan: FiberBody::traceStack
// reports their contents while the fiber is paused.
// Slot names (gcpath): the kinds a path usually crosses (instances, lists, maps, channels,
// closures, upvalues, classes, bound methods, fibers, value arrays) write their references
// once, as refsX over a visitor, instantiated as their trace (names never built) and as
// their traceLabelled (runtime/typeinfo.h); the others are named "field of <kind>".
#include "vm/object.h"

#include <fmt/format.h>

#include <mutex>
#include <string>
#include <vector>

#include "lang/number_format.h"
#include "vm/ffi.h"
#include "vm/map.h"
#include "vm/barrier.h"
#include "vm/shape.h"

namespace spindle::vm {
namespace {

using runtime::VisitFn;

// Each kind with slot names (gcpath) has one refs function over a visitor R, instantiated
// twice: MarkRefs (trace: names ignored, never built) and NamedRefs (traceLabelled).
// R::kNamed also reports what the object's own arrays hold, under the owner's names
// ("list index 4", "field next"), so a path skips the array.
struct MarkRefs {
  static constexpr bool kNamed = false;
  VisitFn visit;
  void* ctx;
  template <typename N>
  void ptr(void* p, const N&) const { visitPtr(visit, ctx, p); }
  template <typename N>
  void value(Value v, const N&) const { visitValue(visit, ctx, v); }
};
struct NamedRefs {
  static constexpr bool kNamed = true;
  runtime::LabelVisitFn visit;
  void* ctx;
  template <typename N>
  void ptr(void* p, const N& name) const { runtime::visitNamed(visit, ctx, p, name); }
  template <typename N>
  void value(Value v, const N& name) const {
    if (v.isObj()) ptr(v.asObj(), name);
  }
};
// A fixed name.
auto named(const char* text) {
  return [text](std::vector<std::string>* out) { out->emplace_back(text); };
}

// The field held in slot i of an instance of `shape`.
std::string fieldName(const Shape* shape, std::uint32_t i) {
  for (const Shape* s = shape; s != nullptr && s->key != nullptr; s = s->parent) {
    if (s->count - 1 == i) return fmt::format("field {}", s->key->view());
  }
  return fmt::format("field slot {}", i);
}

// A map key as a path names it.
std::string keyText(Value k) {
  if (k.isNumber()) return lang::formatNumber(k.asNumber());
  if (k.isNil()) return "nil";
  if (k.isBool()) return k.asBool() ? "true" : "false";
  if (k.isObj() && k.asObj()->kind == ObjKind::String) {
    return fmt::format("\"{}\"", static_cast<ObjString*>(k.asObj())->view());
  }
  return k.isObj() ? fmt::format("<{}>", kindName(k.asObj()->kind)) : "undefined";
}

// Every slot of a, named "<what> i".
template <typename R>
void refsSlots(ValueArray* a, const R& r, const char* what) {
  for (std::uint32_t i = 0; i < a->capacity; ++i) {
    r.value(loadValue(&a->data()[i]), [i, what](auto* out) { out->push_back(fmt::format("{} {}", what, i)); });
  }
}
template <typename R>
void refsValueArray(ValueArray* a, const R& r) {
  refsSlots(a, r, "index");
}
template <typename R>
void refsUpvalue(ObjUpvalue* u, const R& r) {
  r.value(loadValue(&u->closed), named("closed value"));
  r.ptr(loadPtr(&u->next), named("next open upvalue"));
}
template <typename R>
void refsClosure(ObjClosure* c, const R& r) {
  r.ptr(c->function, named("function"));
  for (std::uint32_t i = 0; i < c->upvalueCount; ++i) {
    r.ptr(c->upvalues()[i], [i](auto* out) { out->push_back(fmt::format("upvalue {}", i)); });
  }
}
template <typename R>
void refsClass(ObjClass* c, const R& r) {
  r.ptr(c->name, named("class name"));
  r.ptr(loadPtr(&c->methods), named("methods"));
  r.value(loadValue(&c->initializer), named("init method"));
  r.ptr(c->rootShape, named("shape"));
}
template <typename R>
void refsInstance(ObjInstance* in, const R& r) {
  Shape* shape = loadPtr(&in->shape);
  r.ptr(in->klass, named("class"));
  r.ptr(shape, named("shape"));
  // Inline slots are traced even after an overflow exists (a racing reader may still
  // load them; they hold valid Values).
  ValueArray* overflow = loadPtr(&in->overflow);
  r.ptr(overflow, named("fields"));
  for (std::uint32_t i = 0; i < in->inlineCapacity; ++i) {
    r.value(loadValue(&in->inlineFields()[i]), [&, i](auto* out) { out->push_back(fieldName(shape, i)); });
  }
  if constexpr (R::kNamed) {
    if (overflow != nullptr) {
      for (std::uint32_t i = 0; i < overflow->capacity; ++i) {
        r.value(loadValue(&overflow->data()[i]), [&, i](auto* out) { out->push_back(fieldName(shape, i)); });
      }
    }
  }
}
template <typename R>
void refsBoundMethod(ObjBoundMethod* b, const R& r) {
  r.value(b->receiver, named("receiver"));
  r.ptr(b->method, named("method"));
}
template <typename R>
void refsList(ObjList* l, const R& r) {
  ValueArray* items = loadPtr(&l->items);
  r.ptr(items, named("list items"));
  if constexpr (R::kNamed) {
    if (items != nullptr) refsSlots(items, r, "list index");
  }
}
template <typename R>
void refsFiber(ObjFiber* f, const R& r) {
  r.ptr(loadPtr(&f->stack), named("fiber stack"));
  r.ptr(loadPtr(&f->frames), named("fiber frames"));
  r.ptr(loadPtr(&f->openUpvalues), named("fiber open upvalue"));
  r.value(loadValue(&f->result), named("fiber result"));
  r.value(loadValue(&f->thrown), named("fiber error"));
  r.ptr(loadPtr(&f->done), named("fiber done channel"));
}
template <typename R>
void refsChannel(ObjChannel* ch, const R& r) {
  // Under orphanLock(): ~VM releases the hchans of its channels still allocated
  // (owned.cc); a tracer must not read one released.
  std::lock_guard<std::mutex> lk(orphanLock());
  if (!ownedLive(ch->owner)) return;
  ch->chan->forEachWord([&](std::uint64_t& w) { r.value(Value::fromBits(w), named("channel buffer")); });
}
// Entries up to `used`: an append past a stale `used` stores through the write barrier.
template <typename R>
void refsMapStorage(MapStorage* s, const R& r) {
  const std::uint32_t used = s->loadUsed();
  for (std::uint32_t i = 0; i < used; ++i) {
    const Value key = loadValue(&s->entries()[i].key);
    r.value(key, [key](auto* out) { out->push_back(fmt::format("map key {}", keyText(key))); });
    r.value(loadValue(&s->entries()[i].value),
            [key](auto* out) { out->push_back(fmt::format("map value for key {}", keyText(key))); });
  }
}
template <typename R>
void refsMap(ObjMap* m, const R& r) {
  MapStorage* storage = loadPtr(&m->storage);
  r.ptr(storage, named("map storage"));
  if constexpr (R::kNamed) {
    if (storage != nullptr) refsMapStorage(storage, r);
  }
}

#define SPINDLE_REFS(Name, Type)                                                   \
  void trace##Name(void* o, VisitFn visit, void* ctx) {                            \
    refs##Name(static_cast<Type*>(o), MarkRefs{visit, ctx});                       \
  }                                                                                \
  void label##Name(void* o, runtime::LabelVisitFn visit, void* ctx) {              \
    refs##Name(static_cast<Type*>(o), NamedRefs{visit, ctx});                      \
  }
SPINDLE_REFS(ValueArray, ValueArray)
SPINDLE_REFS(Upvalue, ObjUpvalue)
SPINDLE_REFS(Closure, ObjClosure)
SPINDLE_REFS(Class, ObjClass)
SPINDLE_REFS(Instance, ObjInstance)
SPINDLE_REFS(BoundMethod, ObjBoundMethod)
SPINDLE_REFS(List, ObjList)
SPINDLE_REFS(Fiber, ObjFiber)
SPINDLE_REFS(Channel, ObjChannel)
SPINDLE_REFS(MapStorage, MapStorage)
SPINDLE_REFS(Map, ObjMap)
#undef SPINDLE_REFS

void traceFunction(void* o, VisitFn visit, void* ctx) {
  auto* f = static_cast<ObjFunction*>(o);
  visitPtr(visit, ctx, f->constants);
  visitPtr(visit, ctx, f->name);
  visitPtr(visit, ctx, f->protos);
  for (std::uint32_t i = 0; i < f->icCount; ++i) visitPtr(visit, ctx, loadPtr(&f->ics()[i]));
}
void traceMethodTable(void* o, VisitFn visit, void* ctx) {
  auto* t = static_cast<MethodTable*>(o);
  for (std::uint32_t i = 0; i < t->capacity; ++i) {
    visitPtr(visit, ctx, loadPtr(&t->entries()[i].key));
    visitValue(visit, ctx, loadValue(&t->entries()[i].value));
  }
}
void traceNative(void* o, VisitFn visit, void* ctx) {
  visitPtr(visit, ctx, static_cast<ObjNative*>(o)->name);
}

}  // namespace

const runtime::TypeInfo kTypes[static_cast<int>(ObjKind::kCount)] = {
    {"string", sizeof(ObjString), nullptr},
    {"function", sizeof(ObjFunction), traceFunction},
    {"closure", sizeof(ObjClosure), traceClosure, labelClosure},
    {"upvalue", sizeof(ObjUpvalue), traceUpvalue, labelUpvalue},
    {"class", sizeof(ObjClass), traceClass, labelClass},
    {"instance", sizeof(ObjInstance), traceInstance, labelInstance},
    {"bound method", sizeof(ObjBoundMethod), traceBoundMethod, labelBoundMethod},
    {"native", sizeof(ObjNative), traceNative},
    {"list", sizeof(ObjList), traceList, labelList},
    {"fiber", sizeof(ObjFiber), traceFiber, labelFiber},
    {"value array", sizeof(ValueArray), traceValueArray, labelValueArray},
    {"frame array", sizeof(FrameArray), nullptr},  // noscan: traceStack reports frames
    {"method table", sizeof(MethodTable), traceMethodTable},
    {"bytes", sizeof(ObjBytes), nullptr},
    {"pinner", sizeof(ObjPinner), tracePinner},
    {"foreign library", sizeof(ObjForeignLib), traceForeignLib},
    {"foreign function", sizeof(ObjForeignFn), traceForeignFn},
    {"channel", sizeof(ObjChannel), traceChannel, labelChannel},
    {"stack", sizeof(ValueArray), nullptr},  // noscan: traceStack reports the live slots
    {"host data", sizeof(ObjHostData), nullptr},  // noscan: C++ state, no heap pointers
    {"shape", sizeof(Shape), traceShape},
    {"inline cache", sizeof(InlineCache), traceInlineCache},
    {"map", sizeof(ObjMap), traceMap, labelMap},
    {"map storage", sizeof(MapStorage), traceMapStorage, labelMapStorage},
    {"shape table", sizeof(ShapeTable), traceShapeTable},
};

const char* kindName(ObjKind k) { return kTypes[static_cast<int>(k)].name; }

}  // namespace spindle::vm
