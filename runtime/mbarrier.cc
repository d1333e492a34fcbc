// mbarrier.cc: the write barrier's slow path (Go's mbarrier.go).
//
// Go's hybrid barrier: while the collector marks, a pointer store shades both the
// overwritten pointer (Yuasa deletion barrier: what a not-yet-scanned stack may have
// loaded from the heap stays alive) and the new pointer (Dijkstra insertion barrier:
// what a scanned stack stores into the heap gets marked). With allocate-black this
// lets each stack be scanned once, without a rescan at mark termination.
// The fast path (gc.h writePointer) is one relaxed load of writeBarrierEnabled and a
// branch. shade() greys into the current P's work buffer (P::gcw, owner only); a thread
// without a P (a collector thread, a host thread) uses a buffer under a lock. Such a
// thread is not stopped by stopTheWorld, so it rechecks the flag under that lock, and
// mark termination turns the barrier off under the same lock only once the buffer is
// empty (noPWorkDisableBarrier): no grey object is ever left there after marking ends,
// and the buffer is empty outside a mark phase (checked at the next cycle's start).
#include <mutex>

#include "runtime/gc.h"
#include "runtime/mgc.h"
#include "runtime/pheap.h"

namespace spindle::runtime {

namespace gc_detail {
std::atomic<bool> writeBarrierEnabled{false};

namespace {
std::mutex gNoPLock;
GCWork gNoPWork;  // under gNoPLock
}  // namespace

// Called by the collector at mark completion (and with the world stopped).
void flushNoPWork() {
  std::lock_guard<std::mutex> lk(gNoPLock);
  gNoPWork.flush();
}

bool noPWorkEmpty() {
  std::lock_guard<std::mutex> lk(gNoPLock);
  return gNoPWork.empty();
}

bool noPWorkDisableBarrier() {
  std::lock_guard<std::mutex> lk(gNoPLock);
  if (!gNoPWork.empty()) {
    gNoPWork.flush();
    return false;
  }
  // A thread without a P that saw the flag on waits for the lock and then sees it off.
  writeBarrierEnabled.store(false, std::memory_order_relaxed);
  return true;
}
}  // namespace gc_detail

void shade(void* obj) {
  // Outside a mark phase there is nothing to grey (and a grey object left in a work
  // buffer would outlive the cycle: gcStart checks the buffers are empty). The flag only
  // changes with the world stopped, and a mutator is never stopped inside shade.
  if (obj == nullptr || !writeBarrierEnabled()) return;
  const auto p = reinterpret_cast<std::uintptr_t>(obj);
  if (P* pp = currentP()) {
    gc_detail::greyInline(p, &pp->gcw);
    return;
  }
  std::lock_guard<std::mutex> lk(gc_detail::gNoPLock);
  // Not stopped by stopTheWorld: mark termination may have turned the barrier off since
  // the check above (it does so under this lock, once this buffer is drained).
  if (!writeBarrierEnabled()) return;
  gc_detail::greyObject(p, &gc_detail::gNoPWork);
}

}  // namespace spindle::runtime
