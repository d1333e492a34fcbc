// hostmem.cc: the host's view of memory (vm/spindle.h): the process-wide soft memory
// limit (Runtime::setMemoryLimit, Go's debug.SetMemoryLimit / GOMEMLIMIT) and a Vm's
// share of the heap (Vm::heapStats).
//
// Design. The soft limit is the pacer's (runtime::setMemoryLimit, mgcpacer.cc): one
// process-wide word (relaxed atomic: it orders nothing but itself) that caps the next
// goal, so a heap past it collects back to back; the pacer keeps it across runtime
// restarts, so a host may set it before any Vm exists. Scripts' setMemoryLimit() writes
// the same word. A Vm's figures are its VM's allocation counters (relaxed, approximate
// under parallel allocation: vm.h VM::allocate), the process's cycle count less the
// count when the Vm was made, and, for a Vm with a memory_limit, its live and marked
// bytes from its heap owner (memlimit.cc, runtime/heapowners.h).
#include "runtime/gc.h"
#include "runtime/heapowners.h"
#include "vm/object.h"
#include "vm/spindle.h"
#include "vm/vm.h"

namespace spindle {

std::uint64_t Runtime::setMemoryLimit(std::uint64_t bytes) { return runtime::setMemoryLimit(bytes); }

std::uint64_t Runtime::memoryLimit() { return runtime::memoryLimit(); }

std::uint64_t detail::gcCycles() { return runtime::gcStats().cycles; }

HeapStats Vm::heapStats() const {
  HeapStats h;
  for (int k = 0; k < static_cast<int>(vm::ObjKind::kCount); ++k) {
    h.objects_allocated += vm_->allocations(static_cast<vm::ObjKind>(k));
  }
  h.bytes_allocated = vm_->allocatedBytes();
  h.gc_cycles = detail::gcCycles() - gcCyclesAtStart_;
  if (vm_->heapOwner() != 0) {
    h.live_bytes_known = true;
    h.live_bytes = vm_->heapLive();
    h.marked_bytes = runtime::heapOwnerMarked(vm_->heapOwner());
  }
  return h;
}

}  // namespace spindle
