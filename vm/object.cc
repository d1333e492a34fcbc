// object.cc: the TypeInfos and trace functions of every object kind (see object.h).
//
// Trace functions may run on a collector thread while fibers mutate the object, so every
// word that a fiber may store after publication is read atomically (loadValue/loadPtr).
// A fiber's stack and frames (StackArray, FrameArray) are noscan: FiberBody::traceStack
// reports their contents while the fiber is paused.
#include "vm/object.h"

#include "vm/ffi.h"
#include "vm/map.h"
#include "vm/barrier.h"
#include "vm/shape.h"

namespace spindle::vm {
namespace {

using runtime::VisitFn;

void traceValueArray(void* o, VisitFn visit, void* ctx) {
  auto* a = static_cast<ValueArray*>(o);
  for (std::uint32_t i = 0; i < a->capacity; ++i) visitValue(visit, ctx, loadValue(&a->data()[i]));
}
void traceFunction(void* o, VisitFn visit, void* ctx) {
  auto* f = static_cast<ObjFunction*>(o);
  visitPtr(visit, ctx, f->constants);
  visitPtr(visit, ctx, f->name);
  visitPtr(visit, ctx, f->protos);
  for (std::uint32_t i = 0; i < f->icCount; ++i) visitPtr(visit, ctx, loadPtr(&f->ics()[i]));
}
void traceUpvalue(void* o, VisitFn visit, void* ctx) {
  auto* u = static_cast<ObjUpvalue*>(o);
  visitValue(visit, ctx, loadValue(&u->closed));
  visitPtr(visit, ctx, loadPtr(&u->next));
}
void traceClosure(void* o, VisitFn visit, void* ctx) {
  auto* c = static_cast<ObjClosure*>(o);
  visitPtr(visit, ctx, c->function);
  for (std::uint32_t i = 0; i < c->upvalueCount; ++i) visitPtr(visit, ctx, c->upvalues()[i]);
}
void traceMethodTable(void* o, VisitFn visit, void* ctx) {
  auto* t = static_cast<MethodTable*>(o);
  for (std::uint32_t i = 0; i < t->capacity; ++i) {
    visitPtr(visit, ctx, loadPtr(&t->entries()[i].key));
    visitValue(visit, ctx, loadValue(&t->entries()[i].value));
  }
}
void traceClass(void* o, VisitFn visit, void* ctx) {
  auto* c = static_cast<ObjClass*>(o);
  visitPtr(visit, ctx, c->name);
  visitPtr(visit, ctx, loadPtr(&c->methods));
  visitValue(visit, ctx, loadValue(&c->initializer));
  visitPtr(visit, ctx, c->rootShape);
}
void traceInstance(void* o, VisitFn visit, void* ctx) {
  auto* in = static_cast<ObjInstance*>(o);
  visitPtr(visit, ctx, in->klass);
  visitPtr(visit, ctx, loadPtr(&in->shape));
  // Inline slots are traced even after an overflow exists (a racing reader may still
  // load them; they hold valid Values).
  visitPtr(visit, ctx, loadPtr(&in->overflow));
  for (std::uint32_t i = 0; i < in->inlineCapacity; ++i) {
    visitValue(visit, ctx, loadValue(&in->inlineFields()[i]));
  }
}
void traceBoundMethod(void* o, VisitFn visit, void* ctx) {
  auto* b = static_cast<ObjBoundMethod*>(o);
  visitValue(visit, ctx, b->receiver);
  visitPtr(visit, ctx, b->method);
}
void traceNative(void* o, VisitFn visit, void* ctx) {
  visitPtr(visit, ctx, static_cast<ObjNative*>(o)->name);
}
void traceList(void* o, VisitFn visit, void* ctx) {
  visitPtr(visit, ctx, loadPtr(&static_cast<ObjList*>(o)->items));
}
void traceFiber(void* o, VisitFn visit, void* ctx) {
  auto* f = static_cast<ObjFiber*>(o);
  visitPtr(visit, ctx, loadPtr(&f->stack));
  visitPtr(visit, ctx, loadPtr(&f->frames));
  visitPtr(visit, ctx, loadPtr(&f->openUpvalues));
  visitValue(visit, ctx, loadValue(&f->result));
  visitValue(visit, ctx, loadValue(&f->thrown));
  visitPtr(visit, ctx, loadPtr(&f->done));
}
void traceChannel(void* o, VisitFn visit, void* ctx) {
  // Under orphanLock(): ~VM releases the hchans of its channels still allocated
  // (owned.cc); a tracer must not read one released.
  auto* ch = static_cast<ObjChannel*>(o);
  std::lock_guard<std::mutex> lk(orphanLock());
  if (!ownedLive(ch->owner)) return;
  ch->chan->forEachWord([&](std::uint64_t& w) { visitValue(visit, ctx, Value::fromBits(w)); });
}

void traceMap(void* o, VisitFn visit, void* ctx) {
  visitPtr(visit, ctx, loadPtr(&static_cast<ObjMap*>(o)->storage));
}
// Entries up to `used`: an append past a stale `used` stores through the write barrier.
void traceMapStorage(void* o, VisitFn visit, void* ctx) {
  auto* s = static_cast<MapStorage*>(o);
  const std::uint32_t used = s->loadUsed();
  for (std::uint32_t i = 0; i < used; ++i) {
    visitValue(visit, ctx, loadValue(&s->entries()[i].key));
    visitValue(visit, ctx, loadValue(&s->entries()[i].value));
  }
}

}  // namespace

const runtime::TypeInfo kTypes[static_cast<int>(ObjKind::kCount)] = {
    {"string", sizeof(ObjString), nullptr},
    {"function", sizeof(ObjFunction), traceFunction},
    {"closure", sizeof(ObjClosure), traceClosure},
    {"upvalue", sizeof(ObjUpvalue), traceUpvalue},
    {"class", sizeof(ObjClass), traceClass},
    {"instance", sizeof(ObjInstance), traceInstance},
    {"bound method", sizeof(ObjBoundMethod), traceBoundMethod},
    {"native", sizeof(ObjNative), traceNative},
    {"list", sizeof(ObjList), traceList},
    {"fiber", sizeof(ObjFiber), traceFiber},
    {"value array", sizeof(ValueArray), traceValueArray},
    {"frame array", sizeof(FrameArray), nullptr},  // noscan: traceStack reports frames
    {"method table", sizeof(MethodTable), traceMethodTable},
    {"bytes", sizeof(ObjBytes), nullptr},
    {"pinner", sizeof(ObjPinner), tracePinner},
    {"foreign library", sizeof(ObjForeignLib), traceForeignLib},
    {"foreign function", sizeof(ObjForeignFn), traceForeignFn},
    {"channel", sizeof(ObjChannel), traceChannel},
    {"stack", sizeof(ValueArray), nullptr},  // noscan: traceStack reports the live slots
    {"host data", sizeof(ObjHostData), nullptr},  // noscan: C++ state, no heap pointers
    {"shape", sizeof(Shape), traceShape},
    {"inline cache", sizeof(InlineCache), traceInlineCache},
    {"map", sizeof(ObjMap), traceMap},
    {"map storage", sizeof(MapStorage), traceMapStorage},
};

const char* kindName(ObjKind k) { return kTypes[static_cast<int>(k)].name; }

}  // namespace spindle::vm
