// waitgroup.cc: see waitgroup.h.
#include "runtime/waitgroup.h"

#include "runtime/chan.h"
#include "runtime/throw.h"

namespace spindle::runtime {

void WaitGroup::add(std::int64_t delta) {
  std::int64_t v = count_.fetch_add(delta, std::memory_order_acq_rel) + delta;
  SPINDLE_CHECK(v >= 0, "WaitGroup: negative counter {}", v);
  if (v != 0) return;
  // Zero: wake every waiter. A waiter that checked the counter before our decrement has
  // enqueued itself under mu_ by the time we get mu_; one that checks after sees zero.
  G* wake;
  {
    std::lock_guard<std::mutex> lk(mu_);
    wake = waiters_;
    waiters_ = nullptr;
  }
  while (wake != nullptr) {
    G* g = wake;
    wake = g->schedlink;
    g->schedlink = nullptr;
    readyG(g);
  }
}

void WaitGroup::parkCommit(G*, void* arg) { static_cast<WaitGroup*>(arg)->mu_.unlock(); }

bool WaitGroup::wait(G* g) {
  mu_.lock();
  if (count_.load(std::memory_order_acquire) == 0) {
    mu_.unlock();
    return true;
  }
  g->schedlink = waiters_;
  waiters_ = g;
  SPINDLE_CHECK(g->parkCommit == nullptr, "WaitGroup::wait: G {} already has a park commit", g->goid);
  g->parkCommit = &WaitGroup::parkCommit;
  g->parkArg = this;
  return false;
}

}  // namespace spindle::runtime
