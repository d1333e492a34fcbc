// waitgroup.h: WaitGroup (Go's sync.WaitGroup, built on the scheduler's park/ready).
//
// Design. An atomic counter and a list of waiting Gs under a mutex (as Go's, whose state
// word is atomic). add(n) and done() may be called from G bodies or any thread and take
// the mutex only when the counter reaches zero, to ready every waiter.
// wait(g) from a G body either returns true (counter already zero) or enqueues g, keeps the
// mutex locked, records a park commit that unlocks it, and returns false: the body must then
// return parkStep() at once (the same protocol as channels, see chan.h).
//
// Invariants: the counter never goes negative (checked); waiters are non-empty only while
// the counter is positive.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "runtime/g.h"

namespace spindle::runtime {

class WaitGroup {
 public:
  void add(std::int64_t delta);
  void done() { add(-1); }
  bool wait(G* g);
  Step parkStep() { return Step::park(WaitReason::WaitGroup, this); }

 private:
  static void parkCommit(G* g, void* arg);
  std::mutex mu_;
  std::atomic<std::int64_t> count_{0};  // acq_rel: done() publishes the work before it
  G* waiters_ = nullptr;                 // under mu_, linked through schedlink
};

}  // namespace spindle::runtime
