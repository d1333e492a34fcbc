// gcinspect.cc: "why is this alive" and the event log (docs/STRESS.md): the natives
// gccensus() and gcpath(obj), over runtime::forEachReachable and runtime::retainingPath
// (gc.h), and gcevents(), over runtime::gcEventsSince (gcevents.h).
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
//     nil when nothing but the argument retains obj: the argument waits in
//     FiberBody::pathTarget, which keeps it alive (traceStack) but which the labelled
//     stack walk leaves out. A number, bool or nil is a runtime error (no heap object).
//   - gcevents(): the records published since this VM's last call (or its creation), a
//     list of Maps with the fields and keys of the --gclog JSON line (runtime
//     visitGCEvent: nested Maps for objects, lists for arrays, strings, numbers and
//     booleans). Records that fell out of the ring (gcevents.h kGCEventRing) between two
//     calls are not returned. It runs inside the native (no walk, no stop): its fresh
//     objects are held in the C++ frame for one run() slice and stored through the
//     barrier (mapSet, listPush).
#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/gc.h"
#include "runtime/gcevents.h"
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
  // A number, bool or nil is no heap object: nil would read as "nothing retains it".
  if (!args[0].isObj()) {
    return vm.raise(std::string("gcpath() takes a heap object (a string, list, map, instance, ...), got ") +
                    (args[0].isNil() ? "nil." : args[0].isBool() ? "a bool." : "a number."));
  }
  body->pathTarget = args[0];
  body->request(FiberBody::Pending::GcPath);
  return true;
}

// The census key of a reachable object (world stopped: its header and its class are
// readable and stay put).
std::string censusName(void* obj, bool noscan) {
  const auto* t = static_cast<const runtime::ObjectHeader*>(obj)->type;
  const auto tp = reinterpret_cast<std::uintptr_t>(t);
  if (tp >= reinterpret_cast<std::uintptr_t>(&kTypes[0]) &&
      tp < reinterpret_cast<std::uintptr_t>(&kTypes[static_cast<int>(ObjKind::kCount)])) {
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

bool nativeGcEvents(VM& vm, const void*, int, Value*, Value* result) {
  *result = vm.gcEvents();
  return true;
}

// Builds a record's Map (runtime::visitGCEvent's tree) on the VM's heap.
class EventMapBuilder final : public runtime::GCEventVisitor {
 public:
  explicit EventMapBuilder(VM& vm) : vm_(vm) {}
  Value result = Value::nil();
  void number(const char* key, std::int64_t v) override { put(key, Value::number(static_cast<double>(v))); }
  void text(const char* key, std::string_view v) override { put(key, Value::object(vm_.intern(v))); }
  void flag(const char* key, bool v) override { put(key, Value::boolean(v)); }
  void begin(const char* key, bool array) override {
    Obj* o = array ? static_cast<Obj*>(vm_.newList(0, nullptr)) : static_cast<Obj*>(vm_.newMap());
    put(key, Value::object(o));
    open_.push_back(o);
  }
  void end(bool) override { open_.pop_back(); }

 private:
  void put(const char* key, Value v) {
    if (open_.empty()) {
      result = v;
    } else if (open_.back()->kind == ObjKind::List) {
      vm_.listPush(static_cast<ObjList*>(open_.back()), v);
    } else {
      vm_.mapSet(static_cast<ObjMap*>(open_.back()), Value::object(vm_.intern(key)), v);
    }
  }
  VM& vm_;
  std::vector<Obj*> open_;  // the containers being filled, outermost first
};

}  // namespace

Value VM::gcEvents() {
  std::vector<runtime::GCEvent> events;
  std::uint64_t seen = gcEventsSeen_.load(std::memory_order_relaxed);
  for (;;) {
    events.clear();
    const std::uint64_t last = runtime::gcEventsSince(seen, &events);
    // Relaxed: the seq orders nothing else (the records come from the ring's lock).
    if (gcEventsSeen_.compare_exchange_weak(seen, std::max(seen, last), std::memory_order_relaxed)) break;
  }
  ObjList* list = newList(0, nullptr);  // held in this frame as in gcCensus
  for (const runtime::GCEvent& e : events) {
    EventMapBuilder b(*this);
    runtime::visitGCEvent(e, b);
    listPush(list, b.result);
  }
  return Value::object(list);
}

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
  setGlobal(globalSlot("gcevents"), Value::object(newNative("gcevents", 0, nativeGcEvents)));
  gcEventsSeen_.store(runtime::gcEventsLast(), std::memory_order_relaxed);
}

}  // namespace spindle::vm
