// fing.cc: see fing.h.
#include "runtime/fing.h"

#include <cstdint>
#include <mutex>
#include <vector>

#include "runtime/gc.h"
#include "runtime/mheap.h"
#include "runtime/proc.h"

namespace spindle::runtime {

namespace {

thread_local G* tlsRunningFinalizerG = nullptr;

struct FingState {
  std::mutex lock;  // startFinalizerG/stopFinalizerG
  const GBody* body = nullptr;
  G* g = nullptr;
  Sched* sched = nullptr;
};
FingState& fingState() {
  static FingState* s = new FingState;
  return *s;
}

void finalizerRoots(void*, VisitFn visit, void* visitCtx) { scanFinalizerRoots(visit, visitCtx); }

void registerFinalizerRoots() {
  static std::once_flag once;
  std::call_once(once, [] {
    registerRoots(&finalizerRoots, nullptr,
                  [](void*, LabelVisitFn visit, void* visitCtx) { scanFinalizerRootsLabelled(visit, visitCtx); });
  });
}

class FinalizerBody final : public GBody {
 public:
  Step run(G* g, std::uint32_t budget) override {
    for (std::uint32_t done = 0;;) {
      FinalizerEntry e;
      switch (finqTakeOrPark(this, g, &e)) {
        case FinqTake::Exit:
          return Step::exit();
        case FinqTake::Park:
          g->parkCommit = &finqParkCommit;
          g->parkArg = nullptr;
          return Step::park(WaitReason::FinalizerWait, nullptr);
        case FinqTake::Entry:
          break;
      }
      if (writeBarrierEnabled()) {
        shade(e.obj);
        shade(e.arg);
      }
      tlsRunningFinalizerG = g;
      if (e.fn != nullptr) {
        e.fn(e.obj, e.arg);
      } else {
        e.cleanup(e.arg);
      }
      tlsRunningFinalizerG = nullptr;
      due_.clear();
      noteFinalizerRan(&due_);
      for (G* w : due_) w->sched->ready(w);  // gcWaitFinalizers's waiters it released
      if (++done >= budget || g->preemptRequested()) return Step::yield();
    }
  }
  void exited(G*) override { delete this; }
  void abandoned(G*) override {
    {
      FingState& st = fingState();
      std::lock_guard<std::mutex> lk(st.lock);
      if (st.body == this) {
        st.body = nullptr;
        st.g = nullptr;
        st.sched = nullptr;
        setFinalizerG(nullptr, nullptr);
      }
    }
    delete this;
  }

 private:
  std::vector<G*> due_;  // noteFinalizerRan's out list, reused
};

// waitFinalizersStep's park commit (g is Waiting): joins the waiters, unless the
// entries ran meanwhile; then no one else will ready g, so do it here.
void finWaitCommit(G* g, void* arg) {
  if (!addFinalizerWaiter(g, reinterpret_cast<std::uintptr_t>(arg))) g->sched->ready(g);
}

}  // namespace

Step waitFinalizersStep(G* g, std::uint64_t target) {
  SPINDLE_CHECK(g->parkCommit == nullptr, "waitFinalizersStep: G {} already has a park commit", g->goid);
  g->parkCommit = &finWaitCommit;
  g->parkArg = reinterpret_cast<void*>(static_cast<std::uintptr_t>(target));
  // The entries may wait only on the wake hint (findRunnable): wake the finalizer G now.
  wakeFinalizerG();
  return Step::park(WaitReason::FinalizersRunWait, nullptr);
}

G* startFinalizerG(Sched* sched) {
  registerFinalizerRoots();
  FingState& st = fingState();
  std::lock_guard<std::mutex> lk(st.lock);
  if (st.sched == sched && st.g != nullptr) return st.g;
  auto* body = new FinalizerBody;
  setFinalizerG(body, sched);  // before newproc: its first run must find itself registered
  st.body = body;
  st.sched = sched;
  st.g = sched->newproc(body);
  return st.g;
}

void stopFinalizerG(Sched* sched) {
  FingState& st = fingState();
  std::lock_guard<std::mutex> lk(st.lock);
  if (st.sched != sched) return;
  st.body = nullptr;
  st.g = nullptr;
  st.sched = nullptr;
  setFinalizerG(nullptr, nullptr);
}

void wakeFinalizerG() {
  if (G* g = wakefing(nullptr)) g->sched->ready(g);
}

G* finalizerG() {
  FingState& st = fingState();
  std::lock_guard<std::mutex> lk(st.lock);
  return st.g;
}

G* runningFinalizerG() { return tlsRunningFinalizerG; }

bool setFinalizer(void* obj, FinalizerFn fn, void* arg) {
  if (fn != nullptr) {
    registerFinalizerRoots();
    if (writeBarrierEnabled() && mheap().spanOf(obj) != nullptr) {
      // Marking may have scanned the finalizer roots already: keep what obj reaches (and
      // arg) alive for this cycle, as the roots would have (Go's addfinalizer).
      ObjectRef ref;
      if (mheap().findObject(obj, &ref) && !ref.span->spanclass.noscan()) {
        const TypeInfo* t = static_cast<ObjectHeader*>(obj)->type;
        if (t != nullptr && t->trace != nullptr) {
          t->trace(obj, [](void*, void** slot) { shade(*slot); }, nullptr);
        }
      }
      shade(arg);
    }
  }
  return addFinalizer(mheap(), obj, fn, arg);
}

bool addCleanup(void* obj, CleanupFn cleanup, void* arg) {
  registerFinalizerRoots();
  // Marking may have scanned the finalizer roots already: keep arg alive for this cycle.
  if (writeBarrierEnabled()) shade(arg);
  return addCleanup(mheap(), obj, cleanup, arg);
}

}  // namespace spindle::runtime
