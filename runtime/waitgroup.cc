// waitgroup.cc: see waitgroup.h.
#include "runtime/waitgroup.h"

#include "runtime/chan.h"
#include "runtime/throw.h"

namespace spindle::runtime {

void WaitGroup::add(std::int64_t delta) {
  G* wake = nullptr;
  {
    std::lock_guard<std::mutex> lk(mu_);
    count_ += delta;
    SPINDLE_CHECK(count_ >= 0, "WaitGroup: negative counter {}", count_);
    if (count_ == 0) {
      wake = waiters_;
      waiters_ = nullptr;
    }
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
  if (count_ == 0) {
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
