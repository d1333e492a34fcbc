// memlimit.cc: a VM's live-heap limit (VMOptions::memoryLimit, spindle::Options::
// memory_limit) on the one process heap that every VM shares.
//
// Design. A VM with a limit (any nonzero memoryLimit; ~0 accounts without limiting) holds
// a heap owner id (runtime/heapowners.h) for its life and records it in every object it
// allocates (Obj::owner, in the header's padding). The collector charges each object it
// marks to its owner, read back by heapOwnerOf (the object's TypeInfo is one of kTypes:
// a Lox object; anything else, the runtime's own objects, has no owner). The VM's live
// heap is then the last mark's charge plus what it allocated since that mark began
// (heapowners.h): a bound from above of what it holds, which a cycle brings back to the
// reachable bytes.
// allocate charges every allocation (ownedBytes_, fetch_add) before it is made. When the
// estimate is past the limit:
//   - first the collector works harder: a cycle is requested (cause "memory limit",
//     never blocking) at every such allocation, so cycles run back to back while the VM
//     stays past it, and the allocation goes on;
//   - once two cycles have completed since the VM went past the limit (the second began
//     after it: its mark saw the VM's heap as it is now) and the estimate is still past
//     it, the allocation throws runtime::OutOfMemory: VM::run turns it into the
//     catchable runtime error "Out of memory." of the allocating fiber (oom.cc), as for
//     a heap that cannot grow. The grace restarts after each failure, so a handler that
//     drops what it held can allocate again once a cycle saw it dropped.
// Only allocations made by this VM's interpreter fail (LimitScope, set by VM::run around
// VM::interpret, where every allocating instruction is restartable); host entry points,
// natives' host calls outside it and the error path (failOutOfMemory builds the Error
// outside the scope) are charged but never fail. Other VMs are not charged and the
// process heap is not limited by it (Runtime::setMemoryLimit is the process's).
//
// Invariants: heapOwner_ and memoryLimit_ are written once, in the constructor (the
// HeapOwnerHold member), before any allocation of the VM; ownedBytes_ only grows;
// overLimitSince_ is a relaxed hint (fibers of one VM racing on it at worst request one
// more cycle or give one more allocation its grace). A VM that gets no owner id (every
// id in use: runtime::kMaxHeapOwners - 1 VMs with limits at once) is not limited; its
// heapStats says so (live_bytes_known false).
#include "runtime/heapowners.h"
#include "runtime/oom.h"
#include "vm/object.h"
#include "vm/vm.h"

namespace spindle::vm {

static_assert(sizeof(Obj) == 16, "Obj::owner must fit in the header's padding");

namespace {

thread_local VM* tlsLimitVm = nullptr;

std::uint32_t heapOwnerOf(std::uintptr_t base) {
  const auto type = reinterpret_cast<std::uintptr_t>(*reinterpret_cast<const runtime::TypeInfo* const*>(base));
  const auto first = reinterpret_cast<std::uintptr_t>(&kTypes[0]);
  const auto end = reinterpret_cast<std::uintptr_t>(&kTypes[static_cast<int>(ObjKind::kCount)]);
  if (type < first || type >= end) return 0;
  return reinterpret_cast<const Obj*>(base)->owner;
}

}  // namespace

VM::LimitScope::LimitScope(VM* vm) : prev_(tlsLimitVm) { tlsLimitVm = vm; }
VM::LimitScope::~LimitScope() { tlsLimitVm = prev_; }

VM::HeapOwnerHold::HeapOwnerHold(VM* v) : vm(v) {
  const std::uint64_t limit = v->options_.memoryLimit;
  if (limit == 0) return;
  runtime::setHeapOwnerFn(heapOwnerOf);
  const std::uint32_t id = runtime::acquireHeapOwner(&v->ownedBytes_);
  if (id == 0) return;
  v->memoryLimit_ = limit;
  v->heapOwner_ = id;
}

VM::HeapOwnerHold::~HeapOwnerHold() { runtime::releaseHeapOwner(vm->heapOwner_); }

std::uint64_t VM::heapLive() const { return runtime::heapOwnerLive(heapOwner_); }

void VM::chargeHeapOwner(std::size_t size) {
  ownedBytes_.fetch_add(size, std::memory_order_relaxed);
  if (tlsLimitVm != this) return;
  if (runtime::heapOwnerLive(heapOwner_) <= memoryLimit_) {
    if (overLimitSince_.load(std::memory_order_relaxed) != 0) overLimitSince_.store(0, std::memory_order_relaxed);
    return;
  }
  const std::uint64_t cycles = runtime::heapOwnerCycles();
  const std::uint64_t since = overLimitSince_.load(std::memory_order_relaxed);
  if (since == 0) {
    overLimitSince_.store(cycles + 1, std::memory_order_relaxed);
    runtime::requestMemoryLimitCycle();
    return;
  }
  if (cycles < since - 1 + 2) {
    runtime::requestMemoryLimitCycle();
    return;
  }
  // Still past the limit after two cycles: this allocation fails (its charge stays until
  // the next mark start's snapshot absorbs it: an overcount of one allocation).
  overLimitSince_.store(0, std::memory_order_relaxed);
  runtime::throwOutOfMemory();
}

}  // namespace spindle::vm
