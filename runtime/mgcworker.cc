// mgcworker.cc: background mark workers (Go's gcBgMarkWorker), dedicated threads that
// hold no P.
//
// The controller thread is always one dedicated worker (mgc.cc). With more Ps, about
// 25% of them: (procs + 2) / 4 - 1 extra threads (none below 6 Ps) drain the global
// full list while a mark phase is active.
// Protocol (Go's work.nwait): a worker increments `busy` before it may pop a buffer and
// decrements it once its own GCWork is empty again, so "global list empty, then busy ==
// 0" (seq_cst) proves no worker holds grey objects. markWorkersEnd (mark termination,
// world stopped) clears `active` and waits for busy == 0; a worker re-checks `active`
// after incrementing busy, so none pops afterwards.
#include <algorithm>
#include <condition_variable>
#include <thread>

#include "runtime/mgc.h"
#include "runtime/p.h"
#include "runtime/phooks.h"
#include "runtime/proc.h"
#include "runtime/trace.h"
#include "runtime/proflabel.h"
#include "runtime/threadname.h"

namespace spindle::runtime::gc_detail {

namespace {
struct MarkWorkers {
  std::mutex lock;
  std::condition_variable cv;
  std::vector<std::thread> threads;  // under lock
  bool exit = false;                 // under lock
  std::atomic<bool> active{false};
  std::atomic<int> busy{0};
  std::atomic<std::uint64_t> bytesMarked{0};
};
MarkWorkers& W() {
  static MarkWorkers* w = new MarkWorkers;
  return *w;
}

void workerLoop() {
  const ProfLabelScope label("<gc mark worker>");
  MarkWorkers& w = W();
  GCWork gcw;
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(w.lock);
      w.cv.wait(lk, [&] { return w.exit || w.active.load(); });
      if (w.exit) break;
    }
    while (w.active.load()) {
      w.busy.fetch_add(1);
      if (!w.active.load()) {
        w.busy.fetch_sub(1);
        break;
      }
      const std::int64_t t0 = nanotime();
      const std::int64_t work = drain(&gcw, -1);
      gcw.flush();  // empty after drain; keeps the invariant explicit
      w.bytesMarked.fetch_add(gcw.bytesMarked, std::memory_order_relaxed);
      gcw.bytesMarked = 0;
      if (work > 0) {
        counters().workerTimeNs.fetch_add(nanotime() - t0, std::memory_order_relaxed);
        counters().workerWork.fetch_add(static_cast<std::uint64_t>(work), std::memory_order_relaxed);
        counters().extraWorkerWork.fetch_add(static_cast<std::uint64_t>(work), std::memory_order_relaxed);
      }
      w.busy.fetch_sub(1);
      if (work == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  gcw.dispose();
}
}  // namespace

// --- idle-P mark worker ---------------------------------------------------------------
// Go's idle-priority mark worker: an M whose P has no G to run marks on that P's gcw
// (phooks.h runIdleMarkHook, called by findRunnable), kIdleChunk bytes of scan work at a
// time, and goes back to look for Gs between chunks; STW and forEachP reach it there.
// Grey objects it finds stay in P::gcw, flushed by mark completion's forEachP or taken
// by the P's own next chunk.
int idleMarkSlots(Sched* s) {
  const int idle = s->idlePs();
  if (s->seeded()) return idle;
  return std::max(0, idle - 1 - markWorkersFor(s->procs()));
}

namespace {
constexpr std::int64_t kIdleChunk = 64 << 10;
bool idleMark(P* p) {
  if (!gcMarking.load(std::memory_order_relaxed)) return false;
  if (p->gcw.empty() && workQueues().full.empty()) return false;
  // p is held, not idle: it may mark if one more idle P could (idleMarkSlots). Its own
  // grey objects it drains regardless (nobody else can reach them until a flush).
  if (M* m = getm(); p->gcw.empty() && m != nullptr && idleMarkSlots(m->sched) + 1 <= 0) return false;
  const std::int64_t t0 = nanotime();
  const std::int64_t work = drain(&p->gcw, kIdleChunk);
  // Out of work: what it greyed meanwhile is for everyone (the controller waits on it).
  if (work < kIdleChunk) p->gcw.flush();
  if (work == 0) return false;
  counters().idleMarkTimeNs.fetch_add(nanotime() - t0, std::memory_order_relaxed);
  if (trace::enabled()) [[unlikely]] trace::span(p->id, "gc", "idle mark", t0);
  counters().idleMarkWork.fetch_add(static_cast<std::uint64_t>(work), std::memory_order_relaxed);
  counters().workerWork.fetch_add(static_cast<std::uint64_t>(work), std::memory_order_relaxed);
  return true;
}
}  // namespace

void idleMarkBegin() { setIdleMarkHook(idleMark); }
void idleMarkEnd() { setIdleMarkHook(nullptr); }

int markWorkersFor(int procs) { return std::max(0, (procs + 2) / 4 - 1); }

void startMarkWorkers(int n) {
  MarkWorkers& w = W();
  std::lock_guard<std::mutex> lk(w.lock);
  w.exit = false;
  for (int i = 0; i < n; i++) setThreadName(w.threads.emplace_back(workerLoop), "spindle-gcmark");
}

void stopMarkWorkers() {
  MarkWorkers& w = W();
  std::vector<std::thread> ts;
  {
    std::lock_guard<std::mutex> lk(w.lock);
    w.exit = true;
    ts.swap(w.threads);
    w.cv.notify_all();
  }
  for (auto& t : ts) t.join();
}

void markWorkersBegin() {
  MarkWorkers& w = W();
  w.bytesMarked.store(0, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lk(w.lock);
  w.active.store(true);
  w.cv.notify_all();
}

bool markWorkersIdle() { return W().busy.load() == 0; }

std::uint64_t markWorkersEnd() {
  MarkWorkers& w = W();
  w.active.store(false);
  // Bounded: a busy worker is inside one drain, which scans heap objects and takes work
  // buffers from the lock-free queues (a new buffer takes allLock, a leaf held only for a
  // push): nothing a stopped G or P holds. Mark completion found the queues empty, so
  // that drain ends with the little left since.
  while (w.busy.load() != 0) std::this_thread::yield();
  return w.bytesMarked.exchange(0, std::memory_order_relaxed);
}

}  // namespace spindle::runtime::gc_detail
