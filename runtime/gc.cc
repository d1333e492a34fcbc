// gc.cc: the parts of the collector contract (gc.h) not implemented by the collector
// core (mgc.cc, mgcmark.cc, mbarrier.cc, mgcpacer.cc, mgcverify.cc).

#include "runtime/gc.h"

#include "runtime/mheap.h"

namespace spindle::runtime {

// ===== finalizers: PLACEHOLDER, replaced by mfinal.cc (finalizer specials, finalizer G)
// Until then no finalizer ever runs; setFinalizer only validates its argument.
bool setFinalizer(void* obj, FinalizerFn, void*) {
  return mheap().spanOf(reinterpret_cast<std::uintptr_t>(obj)) != nullptr;
}
// ===== end of the finalizer placeholder

}  // namespace spindle::runtime
