// waitgroup.h: WaitGroup (Go's sync.WaitGroup, built on the scheduler's park/ready).
//
// Design. A counter and a list of waiting Gs under a mutex. add(n) and done() may be called
// from G bodies or any thread; when the counter reaches zero every waiter is readied.
// wait(g) from a G body either returns true (counter already zero) or enqueues g, keeps the
// mutex locked, records a park commit that unlocks it, and returns false: the body must then
// return parkStep() at once (the same protocol as channels, see chan.h).
//
// Invariants: the counter never goes negative (checked); waiters are non-empty only while
// the counter is positive.
#pragma once

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
  std::int64_t count_ = 0;
  G* waiters_ = nullptr;  // linked through schedlink
};

}  // namespace spindle::runtime
