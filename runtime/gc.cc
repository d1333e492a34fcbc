// gc.cc: placeholder implementation of the collector contract (gc.h) until the
// concurrent collector lands: the barrier is never enabled, roots and weak tables are
// recorded, gcCollect does nothing, finalizers never run.
#include "runtime/gc.h"

#include <mutex>
#include <vector>

#include "runtime/mheap.h"

namespace spindle::runtime {

namespace gc_detail {
std::atomic<bool> writeBarrierEnabled{false};
}  // namespace gc_detail

namespace {
struct Registry {
  std::mutex lock;
  std::vector<std::pair<RootScanFn, void*>> roots;
  std::vector<std::pair<WeakClearFn, void*>> weak;
  int percent = 100;
};
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}
template <typename Vec, typename Fn>
int addSlot(Vec& v, Fn fn, void* ctx) {
  for (std::size_t i = 0; i < v.size(); i++) {
    if (v[i].first == nullptr) {
      v[i] = {fn, ctx};
      return static_cast<int>(i);
    }
  }
  v.push_back({fn, ctx});
  return static_cast<int>(v.size() - 1);
}
}  // namespace

void shade(void*) {}

int registerRoots(RootScanFn fn, void* ctx) {
  std::lock_guard<std::mutex> lk(registry().lock);
  return addSlot(registry().roots, fn, ctx);
}
void unregisterRoots(int id) {
  std::lock_guard<std::mutex> lk(registry().lock);
  registry().roots.at(static_cast<std::size_t>(id)) = {nullptr, nullptr};
}
int registerWeak(WeakClearFn fn, void* ctx) {
  std::lock_guard<std::mutex> lk(registry().lock);
  return addSlot(registry().weak, fn, ctx);
}
void unregisterWeak(int id) {
  std::lock_guard<std::mutex> lk(registry().lock);
  registry().weak.at(static_cast<std::size_t>(id)) = {nullptr, nullptr};
}
bool isMarked(void*) { return true; }
void gcAttach(Sched*) {}
void gcDetach(Sched*) {}
void gcCollect() {}
void setGCPercent(int percent) {
  std::lock_guard<std::mutex> lk(registry().lock);
  registry().percent = percent;
}
int gcPercent() {
  std::lock_guard<std::mutex> lk(registry().lock);
  return registry().percent;
}
// setFinalizer: fing.cc.

}  // namespace spindle::runtime
