// m.h: M, an OS thread that runs Gs while holding a P (Go's m in runtime2.go), and Note,
// a one-shot sleep/wakeup (Go's note).
//
// Design. Worker Ms are std::threads started on demand by startm; a host thread becomes
// an M for the duration of Sched::runMain. An M without work parks on its Note in the idle
// list (sched.midle); whoever takes it off the list (under sched.lock) hands it a P in
// `nextp` and wakes it. An M in a foreign call (enterSyscall) keeps its P in `oldp` with the
// P marked Syscall, so sysmon or stopTheWorld may take the P away.
//
// Invariants.
//   - m->p != nullptr iff this M holds a P (p->m == this and p->status == Running).
//   - An M is in sched.midle iff inIdleList; only under sched.lock.
//   - A Note is woken at most once between clears; its mutex is a leaf lock (nothing is
//     acquired while holding it), so waking under sched.lock is fine.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace spindle::runtime {

struct G;
struct P;
class Sched;
struct HostRun;

class Note {
 public:
  void sleep() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [this] { return set_; });
  }
  // Returns true if woken, false on timeout.
  bool sleepFor(std::int64_t ns) {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, std::chrono::nanoseconds(ns), [this] { return set_; });
  }
  void wakeup() {
    std::lock_guard<std::mutex> lk(mu_);
    set_ = true;
    cv_.notify_one();
  }
  void clear() {
    std::lock_guard<std::mutex> lk(mu_);
    set_ = false;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

struct M {
  Sched* sched = nullptr;
  P* p = nullptr;      // the P held
  P* nextp = nullptr;  // a P handed over by startm / pidleput, taken on wakeup
  P* oldp = nullptr;   // the P held before enterSyscall
  G* curg = nullptr;   // the G running on this M
  bool spinning = false;  // looking for work (counted in sched.nmspinning)
  bool isHost = false;
  bool inIdleList = false;
  HostRun* hostRun = nullptr;  // host Ms: the run they wait for
  std::int64_t id = 0;
  std::uint64_t fastrand = 0x9e3779b97f4a7c15ull;
  Note park;
  std::thread thread;  // worker Ms only

  std::uint32_t rand() {
    // xorshift64*: per-M, no synchronisation.
    fastrand ^= fastrand >> 12;
    fastrand ^= fastrand << 25;
    fastrand ^= fastrand >> 27;
    return static_cast<std::uint32_t>((fastrand * 0x2545F4914F6CDD1Dull) >> 32);
  }
};

// The M running on this thread, or nullptr (Go's getg().m).
M* getm();

}  // namespace spindle::runtime
