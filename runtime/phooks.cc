// phooks.cc: the registry of P lifecycle hooks (see phooks.h).
#include "runtime/phooks.h"

#include <atomic>

#include "runtime/throw.h"

namespace spindle::runtime {

// Number of live Scheds (proc.cc); registration requires none.
extern std::atomic<int> gLiveScheds;

namespace {
PLifecycleHooks gHooks[kMaxPHooks];
bool gUsed[kMaxPHooks];
}  // namespace

int registerPLifecycleHooks(const PLifecycleHooks& hooks) {
  int live = gLiveScheds.load(std::memory_order_acquire);
  SPINDLE_CHECK(live == 0, "registerPLifecycleHooks: {} Sched(s) alive, register before start", live);
  for (int i = 0; i < kMaxPHooks; i++) {
    if (!gUsed[i]) {
      gUsed[i] = true;
      gHooks[i] = hooks;
      return i;
    }
  }
  SPINDLE_FATAL("registerPLifecycleHooks: more than kMaxPHooks={} hook sets", kMaxPHooks);
}

void unregisterPLifecycleHooks(int slot) {
  int live = gLiveScheds.load(std::memory_order_acquire);
  SPINDLE_CHECK(live == 0, "unregisterPLifecycleHooks: {} Sched(s) alive", live);
  SPINDLE_CHECK(slot >= 0 && slot < kMaxPHooks && gUsed[slot], "unregister: bad slot {}", slot);
  gUsed[slot] = false;
  gHooks[slot] = {};
}

void runPInitHooks(P* p) {
  for (int i = 0; i < kMaxPHooks; i++)
    if (gUsed[i] && gHooks[i].init) gHooks[i].init(p);
}

void runPDestroyHooks(P* p) {
  for (int i = kMaxPHooks - 1; i >= 0; i--)
    if (gUsed[i] && gHooks[i].destroy) gHooks[i].destroy(p);
}

void runPAcquireHooks(P* p) {
  for (int i = 0; i < kMaxPHooks; i++)
    if (gUsed[i] && gHooks[i].acquire) gHooks[i].acquire(p);
}

namespace {
// Relaxed: written only with the world stopped; the start-the-world hand-off orders it.
std::atomic<void (*)(G*)> gBeforeRun{nullptr};
}  // namespace

namespace {
std::atomic<GCAssistParkFn> gAssistPark{nullptr};
}  // namespace
void setGCAssistParkHook(void (*hook)(Sched*, G*)) { gAssistPark.store(hook, std::memory_order_release); }
GCAssistParkFn gcAssistParkHook() { return gAssistPark.load(std::memory_order_acquire); }

void setGBeforeRunHook(void (*hook)(G*)) { gBeforeRun.store(hook, std::memory_order_relaxed); }

namespace {
// Relaxed, as gBeforeRun.
std::atomic<bool (*)(P*)> gIdleMark{nullptr};
}  // namespace
void setIdleMarkHook(bool (*hook)(P*)) { gIdleMark.store(hook, std::memory_order_relaxed); }
bool runIdleMarkHook(P* p) {
  if (auto hook = gIdleMark.load(std::memory_order_relaxed)) [[unlikely]] return hook(p);
  return false;
}

void runGBeforeRunHook(G* g) {
  if (auto hook = gBeforeRun.load(std::memory_order_relaxed)) [[unlikely]] hook(g);
}

void runPGCMarkDoneHooks(P* p) {
  for (int i = 0; i < kMaxPHooks; i++)
    if (gUsed[i] && gHooks[i].gcMarkDone) gHooks[i].gcMarkDone(p);
}

}  // namespace spindle::runtime
