// time.cc: timers and sleep (Go's time.go, simplified to one heap per Sched).
//
// Design. A min-heap of (when, seq, G) under timerLock_. sleep(g, ns) records the deadline
// in the G (now + ns, saturating at int64's maximum) and returns Park(Sleep); the timer is inserted by the park commit, i.e. only
// after the G is Waiting, so the timer can never ready a G that is still running. sysmon
// sleeps until the earliest deadline (or its 1 ms tick) and fires every expired timer in
// (when, seq) order: Gs with equal deadlines wake in the order they slept.
//
// Seeded mode (proc.h): deadlines are on the virtual clock (vclock_), and the M running Gs
// fires them (findRunnableSeeded), not sysmon: sleep(s) costs no real time, and Gs wake in
// (when, seq) order whatever the machine's speed.
//
// Invariants. ntimers_ counts timers not yet fired; a fired timer's G is put on the global
// run queue and ntimers_ decremented in one sched.lock section, so checkdead never sees
// "no timer and nothing runnable" in between.
#include <algorithm>
#include <limits>

#include "runtime/proc.h"
#include "runtime/throw.h"

namespace spindle::runtime {

namespace {
struct Later {
  template <typename T>
  bool operator()(const T& a, const T& b) const {
    return a.when != b.when ? a.when > b.when : a.seq > b.seq;
  }
};
}  // namespace

Step Sched::sleep(G* g, std::int64_t ns) {
  SPINDLE_CHECK(g->parkCommit == nullptr, "sleep: G {} already has a park commit", g->goid);
  // Saturating (Go's when()): a deadline beyond int64 nanoseconds is the last one, which
  // never comes in practice; it must not wrap into the past and fire at once.
  const std::int64_t now = seeded() ? virtualNow() : nanotime();
  if (ns < 0) ns = 0;
  g->timerWhen = ns > std::numeric_limits<std::int64_t>::max() - now
                     ? std::numeric_limits<std::int64_t>::max()
                     : now + ns;
  g->parkCommit = &Sched::timerCommit;
  g->parkArg = this;
  return Step::park(WaitReason::Sleep, nullptr);
}

void Sched::timerCommit(G* g, void* arg) {
  Sched* s = static_cast<Sched*>(arg);
  bool earliest;
  {
    std::lock_guard<std::mutex> lk(s->timerLock_);
    s->timers_.push_back(Timer{g->timerWhen, s->timerSeq_++, g});
    std::push_heap(s->timers_.begin(), s->timers_.end(), Later{});
    earliest = s->timers_.front().g == g;
    s->ntimers_.fetch_add(1);
  }
  if (earliest) {
    std::lock_guard<std::mutex> lk(s->sysmonLock_);
    s->sysmonCv_.notify_one();
  }
}

// A G in the heap is Waiting with its body fixed (its park commit inserted it, under
// timerLock_, after the G stopped running), so reading g->body here is safe.
void Sched::expireTimers(const void* owner) {
  bool any = false;
  {
    std::lock_guard<std::mutex> lk(timerLock_);
    for (Timer& t : timers_) {
      if (t.g->body->owner() != owner || t.when == 0) continue;
      t.when = 0;
      any = true;
    }
    if (any) std::make_heap(timers_.begin(), timers_.end(), Later{});
  }
  if (any) {
    std::lock_guard<std::mutex> lk(sysmonLock_);
    sysmonCv_.notify_one();
  }
}

void Sched::expireTimersIf(bool (*pick)(G* g, void* arg), void* arg) {
  bool any = false;
  {
    std::lock_guard<std::mutex> lk(timerLock_);
    for (Timer& t : timers_) {
      if (t.when == 0 || !pick(t.g, arg)) continue;
      t.when = 0;
      any = true;
    }
    if (any) std::make_heap(timers_.begin(), timers_.end(), Later{});
  }
  if (any) {
    std::lock_guard<std::mutex> lk(sysmonLock_);
    sysmonCv_.notify_one();
  }
}

std::int64_t Sched::runTimers(std::int64_t now) {
  for (;;) {
    G* g = nullptr;
    {
      std::lock_guard<std::mutex> lk(timerLock_);
      if (timers_.empty()) return 0;
      if (timers_.front().when > now) return timers_.front().when;
      std::pop_heap(timers_.begin(), timers_.end(), Later{});
      g = timers_.back().g;
      timers_.pop_back();
    }
    GStatus want = GStatus::Waiting;
    bool ok = g->status.compare_exchange_strong(want, GStatus::Runnable, std::memory_order_acq_rel);
    SPINDLE_CHECK(ok, "timer: G {} status={} want Waiting", g->goid, static_cast<int>(want));
    {
      std::lock_guard<std::mutex> lk(lock_);
      globrunqput(g);
      ntimers_.fetch_sub(1);
    }
    wakep();
  }
}

}  // namespace spindle::runtime
