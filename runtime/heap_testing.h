// heap_testing.h: helpers shared by the heap's tests.
#pragma once

#include "runtime/mcache.h"
#include "runtime/mgcsweep.h"
#include "runtime/mheap.h"
#include "runtime/p.h"
#include "runtime/pheap.h"

namespace spindle::runtime::testing {

// Sanitizers make everything 5-20x slower: scale iteration counts down under them.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr int kScale = 2;
#else
inline constexpr int kScale = 8;
#endif

// A P with its heap part set up, bound to the current thread for its lifetime.
class TestP {
 public:
  explicit TestP(std::int32_t id) : p_(id) {
    initHeapP(&p_);
    bindP(&p_);
  }
  ~TestP() {
    unbindP();
    destroyHeapP(&p_);
  }
  P* get() { return &p_; }

 private:
  P p_;
};

// Turns freed-memory poisoning off for its lifetime (debug builds poison by default),
// for tests of the zeroing paths that poisoned spans never take (NeedZero::Rest).
class PoisonOff {
 public:
  PoisonOff() : was_(mheap().poisonFreed.exchange(false, std::memory_order_relaxed)) {}
  ~PoisonOff() { mheap().poisonFreed.store(was_, std::memory_order_relaxed); }

 private:
  bool was_;
};

// The bulk release the sweeper will use: flush this P's MCache, start a sweep cycle,
// sweep everything (nothing is marked, so everything is freed). Single-threaded
// callers only (the world is "stopped" because no one else allocates).
inline void bulkReleaseAll(P* p) {
  p->mcache->releaseAll();
  startSweepCycle(mheap());
  finishSweep(mheap());
}

}  // namespace spindle::runtime::testing
