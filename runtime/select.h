// select.h: select over several channel cases (Go's select.go).
//
// Design. A Select lives in the G body's state (never on the C++ stack), since a blocked
// select spans two calls of the body:
//   int r = sel.begin(g, cases, n, hasDefault);
//   if (r == Select::kPark) return sel.parkStep();     // the G waits on every case
//   ... later, in the next run():  r = sel.resume(g);   // the case that fired
// begin() locks every channel (in address order, each once), visits the cases in a random
// order and completes the first ready one, so each ready case is equally likely. With no
// ready case it returns kDefault if hasDefault, or enqueues one sudog per case and parks;
// the park commit unlocks all channels. The first waker to CAS g->selectDone 0 -> 1 wins
// and records its sudog in g->param; resume() relocks the channels, dequeues the other
// sudogs and reports the winner. A select with no case and no default parks forever.
//
// Results: recvValue/recvOk for a receive case (ok=false: closed and drained); sendClosed
// when the chosen send case found (or was woken by) a closed channel: an error.
//
// Invariants: while parked, exactly the n sudogs are queued, one per case; after resume
// none is.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/chan.h"

namespace spindle::runtime {

struct SelectCase {
  hchan* c = nullptr;
  bool isSend = false;
  std::uint64_t elem = 0;  // the element to send
};

class Select {
 public:
  static constexpr int kDefault = -1;
  static constexpr int kPark = -2;

  int begin(G* g, const SelectCase* cases, int n, bool hasDefault);
  int resume(G* g);
  // Collector hook for a parked select (the G is paused): calls fn(word) with the element
  // a sender already handed to a winning receive case, if any. Locks the case channels.
  template <typename F>
  void forEachReceived(G* g, F&& fn) {
    lockAll();
    sudog* w = g->param;  // written by the waker under the winning channel's lock
    if (w != nullptr && !sudogs_.empty() && w >= sudogs_.data() &&
        w < sudogs_.data() + sudogs_.size() && w->success && !cases_[w->caseIndex].isSend) {
      fn(w->elem);
    }
    unlockAll();
  }

  Step parkStep() const {
    return Step::park(n_ == 0 ? WaitReason::SelectNoCases : WaitReason::Select, nullptr);
  }

  std::uint64_t recvValue = 0;
  bool recvOk = false;
  bool sendClosed = false;

 private:
  void lockAll();
  void unlockAll();
  static void parkCommit(G* g, void* arg);

  const SelectCase* cases_ = nullptr;
  int n_ = 0;
  std::vector<hchan*> lockorder_;  // distinct channels, ascending address
  std::vector<std::uint16_t> pollorder_;
  std::vector<sudog> sudogs_;
};

}  // namespace spindle::runtime
