#include "runtime/pheap.h"

#include "runtime/mcache.h"
#include "runtime/mheap.h"

namespace spindle::runtime {

void initHeapP(P* p) {
  SPINDLE_CHECK(p->mcache == nullptr, "initHeapP: P {} already has an MCache", p->id);
  p->mcache = mheap().allocMCache();
}

void destroyHeapP(P* p) {
  SPINDLE_CHECK(p->mcache != nullptr, "destroyHeapP: P {} has no MCache", p->id);
  const void* owner = p->heapOwner.load(std::memory_order_relaxed);
  SPINDLE_CHECK(owner == nullptr || owner == pheap_detail::threadToken(),
                "destroyHeapP: P {} is bound to another thread", p->id);
  // releaseAll may sweep stale spans and free them, which uses the current P's
  // MSpan cache: run it with p bound.
  P* prev = currentP();
  pheap_detail::tlsCurrentP = p;
  p->mcache->releaseAll();
  pheap_detail::tlsCurrentP = prev;
  mheap().freeMCache(p->mcache);
  p->mcache = nullptr;
  mheap().releaseMSpanCache(p);
  mheap().flushPageCache(p);
}

void bindP(P* p) {
  SPINDLE_CHECK(pheap_detail::tlsCurrentP == nullptr, "bindP: thread already holds P {}",
                pheap_detail::tlsCurrentP->id);
  const void* expected = nullptr;
  const bool ok = p->heapOwner.compare_exchange_strong(expected, pheap_detail::threadToken(),
                                                       std::memory_order_acquire);
  SPINDLE_CHECK(ok, "bindP: P {} is already bound to another thread", p->id);
  pheap_detail::tlsCurrentP = p;
}

void unbindP() {
  P* p = pheap_detail::tlsCurrentP;
  SPINDLE_CHECK(p != nullptr, "unbindP: thread holds no P");
  // Release: the next thread to bind p sees our writes to its caches.
  p->heapOwner.store(nullptr, std::memory_order_release);
  pheap_detail::tlsCurrentP = nullptr;
}

}  // namespace spindle::runtime
