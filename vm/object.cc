// object.cc: the TypeInfos and trace functions of every object kind (see object.h).
#include "vm/object.h"

#include "vm/ffi.h"

namespace spindle::vm {
namespace {

using runtime::VisitFn;

inline void visitPtr(VisitFn visit, void* ctx, void* p) {
  if (p == nullptr) return;
  void* local = p;  // non-moving collector: nothing is written back
  visit(ctx, &local);
}
inline void visitValue(VisitFn visit, void* ctx, Value v) {
  if (v.isObj()) visitPtr(visit, ctx, v.asObj());
}

void traceValueArray(void* o, VisitFn visit, void* ctx) {
  auto* a = static_cast<ValueArray*>(o);
  for (std::uint32_t i = 0; i < a->capacity; ++i) visitValue(visit, ctx, a->data()[i]);
}
void traceFunction(void* o, VisitFn visit, void* ctx) {
  auto* f = static_cast<ObjFunction*>(o);
  visitPtr(visit, ctx, f->constants);
  visitPtr(visit, ctx, f->name);
  for (std::uint32_t i = 0; i < f->icCount; ++i) visitValue(visit, ctx, f->ics()[i].method);
}
void traceUpvalue(void* o, VisitFn visit, void* ctx) {
  auto* u = static_cast<ObjUpvalue*>(o);
  visitValue(visit, ctx, u->closed);
  visitPtr(visit, ctx, u->next);
}
void traceClosure(void* o, VisitFn visit, void* ctx) {
  auto* c = static_cast<ObjClosure*>(o);
  visitPtr(visit, ctx, c->function);
  for (std::uint32_t i = 0; i < c->upvalueCount; ++i) visitPtr(visit, ctx, c->upvalues()[i]);
}
void traceMethodTable(void* o, VisitFn visit, void* ctx) {
  auto* t = static_cast<MethodTable*>(o);
  for (std::uint32_t i = 0; i < t->capacity; ++i) {
    visitPtr(visit, ctx, t->entries()[i].key);
    visitValue(visit, ctx, t->entries()[i].value);
  }
}
void traceClass(void* o, VisitFn visit, void* ctx) {
  auto* c = static_cast<ObjClass*>(o);
  visitPtr(visit, ctx, c->name);
  visitPtr(visit, ctx, c->methods);
  visitValue(visit, ctx, c->initializer);
}
void traceInstance(void* o, VisitFn visit, void* ctx) {
  auto* in = static_cast<ObjInstance*>(o);
  visitPtr(visit, ctx, in->klass);
  visitPtr(visit, ctx, in->overflow);
  if (in->overflow == nullptr) {
    for (std::uint32_t i = 0; i < in->inlineCapacity; ++i) {
      visitValue(visit, ctx, in->inlineFields()[i]);
    }
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
  visitPtr(visit, ctx, static_cast<ObjList*>(o)->items);
}
void traceFrameArray(void* o, VisitFn visit, void* ctx) {
  auto* f = static_cast<FrameArray*>(o);
  for (std::uint32_t i = 0; i < f->capacity; ++i) visitPtr(visit, ctx, f->frames()[i].closure);
}
void traceFiber(void* o, VisitFn visit, void* ctx) {
  auto* f = static_cast<ObjFiber*>(o);
  visitPtr(visit, ctx, f->stack);
  visitPtr(visit, ctx, f->frames);
  visitPtr(visit, ctx, f->openUpvalues);
  visitValue(visit, ctx, f->result);
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
    {"frame array", sizeof(FrameArray), traceFrameArray},
    {"method table", sizeof(MethodTable), traceMethodTable},
    {"bytes", sizeof(ObjBytes), nullptr},
    {"pinner", sizeof(ObjPinner), tracePinner},
    {"foreign library", sizeof(ObjForeignLib), traceForeignLib},
    {"foreign function", sizeof(ObjForeignFn), traceForeignFn},
};

const char* kindName(ObjKind k) { return kTypes[static_cast<int>(k)].name; }

}  // namespace spindle::vm
