// runq.cc: run queues (Go's runqput/runqget/runqgrab/runqsteal and globrunq*).
//
// Local run queue: a single-producer (the P's owner), multi-consumer (owner + stealers)
// ring of kLocalRunQueueSize G pointers. The owner appends at runqtail and publishes with a
// release store; consumers claim [head, head+n) by a CAS on runqhead. When the ring is
// full, the owner moves half of it plus the new G to the global queue (runqputslow), so a
// put never blocks. A stealer takes half of the victim's queue into its own ring
// (runqgrab), and takes the victim's runnext only when the victim is not Running (a
// Running P is about to run it; taking it would break ping-pong locality).
//
// Global run queue: a FIFO ring of G pointers under sched.lock (never touching the Gs, which
// may be cold); runqsize_ is its length, also read without the lock as an emptiness hint.
//
// Seeded mode (proc.h): runqput puts every G on the global queue, taking sched.lock (no
// caller holds it: globrunqget moves nothing to a local queue when asked for one G, as
// findRunnableSeeded does), so the local rings stay empty.
//
// Invariants: 0 <= tail - head <= kLocalRunQueueSize (checked); a G is in at most one queue.
#include <algorithm>

#include "runtime/proc.h"
#include "runtime/throw.h"

namespace spindle::runtime {

namespace {
constexpr std::uint32_t kN = kLocalRunQueueSize;
}

bool Sched::runqput(Sched* s, P* p, G* g, bool next) {
  if (s->seeded()) [[unlikely]] {
    // Seeded mode: every runnable G waits on the global queue, where findRunnableSeeded
    // draws the next one.
    std::lock_guard<std::mutex> lk(s->lock_);
    s->globrunqput(g);
    return true;
  }
  if (next) {
    // Stealers may CAS runnext (see runqgrab); exchange keeps it correct. acq_rel: the
    // G's state travels with the pointer.
    G* old = p->runnext.exchange(g, std::memory_order_acq_rel);
    if (old == nullptr) return false;
    g = old;  // kick the old runnext to the tail
  }
  for (;;) {
    std::uint32_t h = p->runqhead.load(std::memory_order_acquire);
    std::uint32_t t = p->runqtail.load(std::memory_order_relaxed);  // owner's own word
    SPINDLE_DCHECK(t - h <= kN, "runq overflow: head={} tail={}", h, t);
    if (t - h < kN) {
      p->runq[t % kN].store(g, std::memory_order_relaxed);
      p->runqtail.store(t + 1, std::memory_order_release);  // publish the slot
      return true;
    }
    if (s->runqputslow(p, g, h, t)) return true;
    // The queue is no longer full (a stealer took some): retry.
  }
}

bool Sched::runqputslow(P* p, G* g, std::uint32_t h, std::uint32_t t) {
  constexpr std::uint32_t n = kN / 2;
  SPINDLE_CHECK(t - h == kN, "runqputslow: queue not full: head={} tail={}", h, t);
  G* batch[n + 1];
  for (std::uint32_t i = 0; i < n; i++) batch[i] = p->runq[(h + i) % kN].load(std::memory_order_relaxed);
  // release: the slots we read must not be overwritten before our claim is visible.
  if (!p->runqhead.compare_exchange_strong(h, h + n, std::memory_order_acq_rel)) return false;
  batch[n] = g;
  std::lock_guard<std::mutex> lk(lock_);
  globrunqputbatch(batch, n + 1);
  return true;
}

G* Sched::runqget(P* p, bool* inheritTime) {
  G* next = p->runnext.load(std::memory_order_acquire);
  if (next != nullptr &&
      p->runnext.compare_exchange_strong(next, nullptr, std::memory_order_acq_rel)) {
    *inheritTime = true;
    return next;
  }
  *inheritTime = false;
  for (;;) {
    std::uint32_t h = p->runqhead.load(std::memory_order_acquire);
    std::uint32_t t = p->runqtail.load(std::memory_order_relaxed);
    if (t == h) return nullptr;
    G* g = p->runq[h % kN].load(std::memory_order_relaxed);
    if (p->runqhead.compare_exchange_weak(h, h + 1, std::memory_order_acq_rel)) {
      // The next G in the ring runs soon: start loading it (a queued G is often cold). A
      // stale slot only costs a useless prefetch.
      if (h + 1 != t) __builtin_prefetch(p->runq[(h + 1) % kN].load(std::memory_order_relaxed));
      return g;
    }
  }
}

bool Sched::runqempty(P* p) {
  // As Go: read head, tail, runnext, then recheck tail so a runnext->runq kick is not
  // missed.
  for (;;) {
    std::uint32_t h = p->runqhead.load(std::memory_order_acquire);
    std::uint32_t t = p->runqtail.load(std::memory_order_acquire);
    G* next = p->runnext.load(std::memory_order_acquire);
    if (p->runqtail.load(std::memory_order_acquire) == t) return h == t && next == nullptr;
  }
}

std::uint32_t Sched::runqgrab(P* victim, std::array<std::atomic<G*>, kN>& batch,
                              std::uint32_t batchHead, bool stealRunNext) {
  for (;;) {
    std::uint32_t h = victim->runqhead.load(std::memory_order_acquire);
    std::uint32_t t = victim->runqtail.load(std::memory_order_acquire);
    std::uint32_t n = t - h;
    n = n - n / 2;
    if (n == 0) {
      // A Running P is about to run its runnext; it is taken only on the last attempt
      // (sysmon wakes a spinner when a runnext waits a whole tick, see retake).
      if (stealRunNext) {
        G* next = victim->runnext.load(std::memory_order_acquire);
        if (next != nullptr &&
            victim->runnext.compare_exchange_strong(next, nullptr, std::memory_order_acq_rel)) {
          batch[batchHead % kN].store(next, std::memory_order_relaxed);
          return 1;
        }
      }
      return 0;
    }
    if (n > kN / 2) continue;  // h and t read inconsistently; retry
    for (std::uint32_t i = 0; i < n; i++) {
      batch[(batchHead + i) % kN].store(victim->runq[(h + i) % kN].load(std::memory_order_relaxed),
                                        std::memory_order_relaxed);
    }
    if (victim->runqhead.compare_exchange_strong(h, h + n, std::memory_order_acq_rel)) return n;
  }
}

G* Sched::runqsteal(P* p, P* victim, bool stealRunNext) {
  std::uint32_t t = p->runqtail.load(std::memory_order_relaxed);
  std::uint32_t n = runqgrab(victim, p->runq, t, stealRunNext);
  if (n == 0) return nullptr;
  n--;
  G* g = p->runq[(t + n) % kN].load(std::memory_order_relaxed);
  if (n == 0) return g;
  std::uint32_t h = p->runqhead.load(std::memory_order_acquire);
  SPINDLE_CHECK(t - h + n < kN, "runqsteal overflow: head={} tail={} n={}", h, t, n);
  p->runqtail.store(t + n, std::memory_order_release);
  return g;
}

void Sched::globrunqput(G* g) { globrunqputbatch(&g, 1); }

void Sched::globrunqputbatch(G* const* gs, std::int32_t n) {
  std::uint64_t size = static_cast<std::uint64_t>(runqsize_.load(std::memory_order_relaxed));
  if (size + static_cast<std::uint64_t>(n) > runq_.size()) {
    std::uint64_t cap = std::max<std::uint64_t>(256, runq_.size());
    while (cap < size + static_cast<std::uint64_t>(n)) cap *= 2;
    std::vector<G*> grown(cap);
    for (std::uint64_t i = 0; i < size; i++) grown[i] = runq_[(runqHead_ + i) & (runq_.size() - 1)];
    runq_.swap(grown);
    runqHead_ = 0;
  }
  std::uint64_t mask = runq_.size() - 1;
  for (std::int32_t i = 0; i < n; i++) runq_[(runqHead_ + size + static_cast<std::uint64_t>(i)) & mask] = gs[i];
  runqsize_.store(static_cast<std::int32_t>(size) + n, std::memory_order_relaxed);
}

G* Sched::globrunqget(P* p, std::int32_t max) {
  std::int32_t size = runqsize_.load(std::memory_order_relaxed);
  if (size == 0) return nullptr;
  std::int32_t n = size / gomaxprocs_.load(std::memory_order_relaxed) + 1;
  if (n > size) n = size;
  if (max > 0 && n > max) n = max;
  if (n > static_cast<std::int32_t>(kN / 2)) n = kN / 2;
  runqsize_.store(size - n, std::memory_order_relaxed);
  std::uint64_t mask = runq_.size() - 1;
  G* g = runq_[runqHead_ & mask];
  // The local queue is empty here (or max == 1), so these puts never take runqputslow.
  for (std::int32_t i = 1; i < n; i++) runqput(this, p, runq_[(runqHead_ + static_cast<std::uint64_t>(i)) & mask], false);
  runqHead_ += static_cast<std::uint64_t>(n);
  return g;
}

}  // namespace spindle::runtime
