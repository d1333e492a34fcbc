// gcinspect.cc: "why is this alive" (docs/STRESS.md): the natives gccensus() and
// gcpath(obj), over runtime::forEachReachable and runtime::retainingPath (gc.h).
//
// Both natives only record a request (FiberBody::Pending GcCensus / GcPath); the fiber's
// run() answers at its next true safepoint (the interpreter returned, the stack is
// quiescent) and stores the answer into the native's result slot. So the walks, which
// stop the world, never run inside the interpreter, and the calling fiber's own stack is
// a root like any other G's.
//   - gccensus(): a full cycle (gcCollect), then one world-stopped walk of what is
//     reachable: a Map from a type name to [count, bytes] (bytes: the objects' slot
//     sizes). Lox kinds go by kindName ("string", "list", "map", "channel", ...); an
//     instance goes by its class, "instance of Foo" (no plain "instance" key, so the
//     counts add up to the objects reached); the runtime's own scan objects by their
//     TypeInfo name ("pinner ref store"); anything else (noscan runtime data) is
//     "runtime data". Counts are taken with the world stopped into C++ memory; the Map is
//     built after the world restarted.
//   - gcpath(obj): a shortest retaining path, one string per step (gc.h retainingPath):
//     roots named by VM::scanRootsLabelled ("global ring", "host handle"), fibers'
//     stacks by FiberBody::traceStackLabelled ("fiber 3 frame consume() slot 2"), the
//     finalizer roots by the runtime ("finalizer root of <channel>"), then the slots of
//     the objects on the way (object.cc's labelled traces: "field next", "list index 4",
//     "map value for key \"k\"", "channel buffer", "upvalue 0", "closed value").
//     nil when obj is no heap object or nothing but the argument retains it: the
//     argument waits in FiberBody::pathTarget, which keeps it alive (traceStack) but
//     which the labelled stack walk leaves out.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/gc.h"
#include "vm/fiber.h"
#include "vm/vm.h"

namespace spindle::vm {

namespace {

bool nativeGcCensus(VM& vm, const void*, int, Value*, Value*) {
  FiberBody* body = currentFiber()->body;
  if (body->g() == nullptr) return vm.raise("gccensus() cannot run inside a native call.");
  body->request(FiberBody::Pending::GcCensus);
  return true;
}

bool nativeGcPath(VM& vm, const void*, int, Value* args, Value*) {
  FiberBody* body = currentFiber()->body;
  if (body->g() == nullptr) return vm.raise("gcpath() cannot run inside a native call.");
  if (!args[0].isObj()) return true;  // a number, bool or nil: nothing retains it (nil)
  body->pathTarget = args[0];
  body->request(FiberBody::Pending::GcPath);
  return true;
}

// The census key of a reachable object (world stopped: its header and its class are
// readable and stay put).
std::string censusName(void* obj, bool noscan) {
  const auto* t = static_cast<const runtime::ObjectHeader*>(obj)->type;
  if (t >= &kTypes[0] && t < &kTypes[static_cast<int>(ObjKind::kCount)]) {
    const Obj* o = static_cast<const Obj*>(obj);
    if (o->kind == ObjKind::Instance) {
      const ObjClass* k = static_cast<const ObjInstance*>(obj)->klass;
      return "instance of " + std::string(k->name->view());
    }
    return kindName(o->kind);
  }
  // A noscan slot may hold no header at all: only a Lox kind's TypeInfo is trusted there.
  if (!noscan && t != nullptr) return t->name;
  return "runtime data";
}

}  // namespace

Value VM::gcCensus() {
  runtime::gcCollect();
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> counts;
  runtime::forEachReachable(
      [](void* ctx, void* obj, std::size_t bytes, bool noscan) {
        auto& c = (*static_cast<decltype(counts)*>(ctx))[censusName(obj, noscan)];
        c.first++;
        c.second += bytes;
      },
      &counts);
  // Fresh objects held in this frame until stored: one run() slice (ARCHITECTURE "What
  // bounds a pause"); mapSet and listPush store through the barrier.
  ObjMap* m = newMap();
  for (const auto& [name, cb] : counts) {
    ObjList* entry = newList(0, nullptr);
    listPush(entry, Value::number(static_cast<double>(cb.first)));
    listPush(entry, Value::number(static_cast<double>(cb.second)));
    mapSet(m, Value::object(intern(name)), Value::object(entry));
  }
  return Value::object(m);
}

Value VM::gcPath(Value target) {
  std::vector<std::string> steps;
  if (!target.isObj() || !runtime::retainingPath(target.asObj(), &steps)) return Value::nil();
  ObjList* path = newList(0, nullptr);  // held in this frame as in gcCensus
  for (const std::string& s : steps) listPush(path, Value::object(intern(s)));
  return Value::object(path);
}

void VM::registerInspectNatives() {
  setGlobal(globalSlot("gccensus"), Value::object(newNative("gccensus", 0, nativeGcCensus)));
  setGlobal(globalSlot("gcpath"), Value::object(newNative("gcpath", 1, nativeGcPath)));
}

}  // namespace spindle::vm
