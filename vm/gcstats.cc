// gcstats.cc: the `gcstats()` native (docs/LANGUAGE.md): a snapshot of the collector,
// the heap and the scheduler as an instance of the built-in class GCStats.
//
// Lox has no maps, so the snapshot is an instance whose fields are numbers (see
// kFields). The class is made once per VM, is not a global (a script cannot make an
// empty GCStats), and is kept as a root (VM::gcStatsClass_). Every call returns a new
// instance: a script compares two snapshots to see what happened in between. The
// collector's numbers are process-wide (one heap), like runtime::gcStats().
// Also Go's runtime/debug knobs, process-wide like the collector (one runtime shared by
// every VM): setGCPercent(n) and setMemoryLimit(bytes) return the old value;
// freeOSMemory() runs a full cycle and returns every free page to the OS at the calling
// fiber's next safepoint (FiberBody::run);
// gcverify() runs the heap verifier (runtime verifyHeap) there too (inside a native
// call, where there is no such safepoint, it is a runtime error);
// gcWaitFinalizers() parks the fiber (runtime/fing.h waitFinalizersStep) until the
// finalizers and cleanups queued so far have run. Bad arguments are runtime errors.
#include <cmath>
#include <string_view>

#include "runtime/fing.h"
#include "runtime/gc.h"
#include "runtime/gcsummary.h"
#include "runtime/mheap.h"
#include "vm/fiber.h"
#include "vm/vm.h"

namespace spindle::vm {

namespace {

bool nativeGcStats(VM& vm, const void*, int, Value*, Value* result) {
  *result = Value::object(vm.newGCStats());
  return true;
}

// Go's runtime/debug knobs. They set process-wide collector state (one heap).
bool nativeSetGCPercent(VM& vm, const void*, int, Value* args, Value* result) {
  const double n = args[0].isNumber() ? args[0].asNumber() : 0.5;
  if (!(n >= -1 && n <= 1e9) || n != std::floor(n))
    return vm.raise("setGCPercent() takes an integer from -1 (off) to 1e9.");
  *result = Value::number(runtime::setGCPercent(static_cast<int>(n)));
  return true;
}

bool nativeSetMemoryLimit(VM& vm, const void*, int, Value* args, Value* result) {
  if (!args[0].isNumber() || !(args[0].asNumber() >= 0))
    return vm.raise("setMemoryLimit() takes a number of bytes (>= 0; inf: no limit).");
  const double b = args[0].asNumber();
  const std::uint64_t bytes = b >= 1.8e19 ? ~std::uint64_t{0} : static_cast<std::uint64_t>(b);
  const std::uint64_t old = runtime::setMemoryLimit(bytes);
  *result = Value::number(old == ~std::uint64_t{0} ? HUGE_VAL : static_cast<double>(old));
  return true;
}

bool nativeFreeOSMemory(VM&, const void*, int, Value*, Value*) {
  // The cycle and the release run in FiberBody::run at the fiber's next safepoint.
  FiberBody* body = currentFiber()->body;
  if (body->g() != nullptr) body->request(FiberBody::Pending::FreeOSMemory);
  return true;
}

bool nativeGcVerify(VM& vm, const void*, int, Value*, Value*) {
  // verifyHeap runs in FiberBody::run at the fiber's next safepoint. A nested fiber (a
  // native's callback) never gets there: a verification that silently did not run would
  // read as a healthy heap.
  FiberBody* body = currentFiber()->body;
  if (body->g() == nullptr) return vm.raise("gcverify() cannot run inside a native call.");
  body->request(FiberBody::Pending::GcVerify);
  return true;
}

bool nativeGcWaitFinalizers(VM& vm, const void*, int, Value*, Value*) {
  const std::uint64_t target = runtime::finalizersQueuedTotal();
  if (runtime::finalizersRan(target)) return true;
  FiberBody* body = currentFiber()->body;
  if (body->g() == nullptr)  // nested in a native (VM::call): the fiber cannot park
    return vm.raise("gcWaitFinalizers() cannot wait inside a native call.");
  body->parkStep = runtime::waitFinalizersStep(body->g(), target);
  body->request(FiberBody::Pending::WaitFinalizers);
  return true;
}

}  // namespace

void VM::registerGCStatsNative() {
  setRoot(gcStatsClass_, newClass(intern("GCStats")));
  setGlobal(globalSlot("gcstats"), Value::object(newNative("gcstats", 0, nativeGcStats)));
  setGlobal(globalSlot("setGCPercent"), Value::object(newNative("setGCPercent", 1, nativeSetGCPercent)));
  setGlobal(globalSlot("setMemoryLimit"), Value::object(newNative("setMemoryLimit", 1, nativeSetMemoryLimit)));
  setGlobal(globalSlot("freeOSMemory"), Value::object(newNative("freeOSMemory", 0, nativeFreeOSMemory)));
  setGlobal(globalSlot("gcverify"), Value::object(newNative("gcverify", 0, nativeGcVerify)));
  setGlobal(globalSlot("gcWaitFinalizers"),
            Value::object(newNative("gcWaitFinalizers", 0, nativeGcWaitFinalizers)));
}

ObjInstance* VM::newGCStats() {
  const runtime::GCStats gs = runtime::gcStats();
  const runtime::HeapStatsSnapshot hs = runtime::mheap().readStats();
  const runtime::FinalizerStats fs = runtime::finalizerStats();
  const runtime::GCSummary sum =
      runtime::gcSummary(gs, allocatedBytes(), runtime::processUptimeNs());
  std::uint64_t allocs = 0;
  for (int k = 0; k < static_cast<int>(ObjKind::kCount); ++k) allocs += allocations(static_cast<ObjKind>(k));
  const struct {
    std::string_view name;
    double value;
  } fields[] = {
      {"cycles", static_cast<double>(gs.cycles)},
      {"forcedCycles", static_cast<double>(gs.forcedCycles)},
      {"stressCycles", static_cast<double>(gs.stressCycles)},
      {"stwMarkCycles", static_cast<double>(gs.stwMarkCycles)},
      {"heapVerifications", static_cast<double>(gs.heapVerifications)},
      {"finalizersQueued", static_cast<double>(fs.queued + fs.cleanupsQueued)},
      {"finalizersRun", static_cast<double>(fs.run)},
      {"heapLive", static_cast<double>(gs.heapLive)},
      {"heapMarked", static_cast<double>(gs.heapMarked)},
      {"heapGoal", static_cast<double>(gs.heapGoal)},
      {"heapTrigger", static_cast<double>(gs.heapTrigger)},
      {"heapInUse", static_cast<double>(hs.heapInUse)},
      {"heapSys", static_cast<double>(hs.heapSys)},
      {"gcPercent", static_cast<double>(runtime::gcPercent())},
      {"numPauses", static_cast<double>(gs.numPauses)},
      {"lastPauseNs", gs.pausesNs.empty() ? 0.0 : static_cast<double>(gs.pausesNs.back())},
      {"maxPauseNs", static_cast<double>(gs.maxPauseNs)},
      {"totalPauseNs", static_cast<double>(gs.totalPauseNs)},
      {"allocs", static_cast<double>(allocs)},
      {"allocBytes", static_cast<double>(allocatedBytes())},
      {"procs", static_cast<double>(sched_->procs())},
      // gcsummary.h: percentiles over the last 1024 pauses, the allocation rate over the
      // process's lifetime (bytes per second).
      {"pauseP50Ns", static_cast<double>(sum.p50Ns)},
      {"pauseP99Ns", static_cast<double>(sum.p99Ns)},
      {"assistTimeNs", static_cast<double>(sum.assistNs)},
      {"allocRate", sum.allocBytesPerSec},
  };
  // Allocated inside one native call (no safepoint): the fresh instance needs no root.
  ObjInstance* in = newInstance(gcStatsClass_);
  for (const auto& f : fields) storeField(in, intern(f.name), Value::number(f.value));
  return in;
}

}  // namespace spindle::vm
