// gcstats.cc: the `gcstats()` native (docs/LANGUAGE.md): a snapshot of the collector,
// the heap and the scheduler as an instance of the built-in class GCStats.
//
// Lox has no maps, so the snapshot is an instance whose fields are numbers (see
// kFields). The class is made once per VM, is not a global (a script cannot make an
// empty GCStats), and is kept as a root (VM::gcStatsClass_). Every call returns a new
// instance: a script compares two snapshots to see what happened in between. The
// collector's numbers are process-wide (one heap), like runtime::gcStats().
#include <string_view>

#include "runtime/gc.h"
#include "runtime/mheap.h"
#include "vm/vm.h"

namespace spindle::vm {

namespace {

bool nativeGcStats(VM& vm, const void*, int, Value*, Value* result) {
  *result = Value::object(vm.newGCStats());
  return true;
}

}  // namespace

void VM::registerGCStatsNative() {
  gcStatsClass_ = newClass(intern("GCStats"));
  setGlobal(globalSlot("gcstats"), Value::object(newNative("gcstats", 0, nativeGcStats)));
}

ObjInstance* VM::newGCStats() {
  const runtime::GCStats gs = runtime::gcStats();
  const runtime::HeapStatsSnapshot hs = runtime::mheap().readStats();
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
  };
  // Allocated inside one native call (no safepoint): the fresh instance needs no root.
  ObjInstance* in = newInstance(gcStatsClass_);
  for (const auto& f : fields) storeField(in, intern(f.name), Value::number(f.value));
  return in;
}

}  // namespace spindle::vm
