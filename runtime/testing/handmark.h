// handmark.h: test helper: a tiny stop-the-world mark-sweep cycle driven by hand, for
// testing the parts around the collector (finalizers, handles) without the concurrent
// collector core. Single-threaded with respect to allocation: the caller's P is the
// only one allocating while it runs.
//
// handCollect(p, roots): flush p's MCache, mark transitively from the slots `roots`
// reports (TypeInfo::trace of every reached scan object), start a sweep cycle and
// finish it. Everything not reached is freed, as the real collector would.
#pragma once

#include <atomic>
#include <functional>
#include <vector>

#include "runtime/heap_testing.h"
#include "runtime/typeinfo.h"

namespace spindle::runtime::testing {

using RootsFn = std::function<void(VisitFn visit, void* ctx)>;

class HandMarker {
 public:
  void markSlot(void** slot) {
    void* v = std::atomic_ref<void*>(*slot).load(std::memory_order_relaxed);
    ObjectRef ref;
    if (v == nullptr || !mheap().findObject(v, &ref)) return;
    if (ref.span->isMarked(ref.index)) return;
    ref.span->setMarked(ref.index);
    if (!ref.span->spanclass.noscan()) work_.push_back(reinterpret_cast<void*>(ref.base));
  }
  static void visit(void* ctx, void** slot) { static_cast<HandMarker*>(ctx)->markSlot(slot); }
  void drain() {
    while (!work_.empty()) {
      void* obj = work_.back();
      work_.pop_back();
      const TypeInfo* t = static_cast<ObjectHeader*>(obj)->type;
      if (t != nullptr && t->trace != nullptr) t->trace(obj, &HandMarker::visit, this);
    }
  }

 private:
  std::vector<void*> work_;
};

inline void handCollect(P* p, const RootsFn& roots) {
  p->mcache->releaseAll();
  HandMarker m;
  roots(&HandMarker::visit, &m);
  m.drain();
  startSweepCycle(mheap());
  finishSweep(mheap());
}

// Is obj still an allocated object (not freed by a sweep)?
inline bool isLive(void* obj) {
  ObjectRef ref;
  if (!mheap().findObject(obj, &ref)) return false;
  return ref.base == reinterpret_cast<std::uintptr_t>(obj) && !ref.span->isFree(ref.index);
}

}  // namespace spindle::runtime::testing
