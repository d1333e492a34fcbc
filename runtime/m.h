// m.h: M, an OS thread that runs Gs while holding a P (Go's m in runtime2.go), and Note,
// a one-shot sleep/wakeup (Go's note).
//
// Design. Worker Ms are std::threads started on demand by startm; a host thread becomes
// an M for the duration of Sched::runMain. An M without work parks on its Note in the idle
// list (sched.midle); whoever takes it off the list (under sched.lock) hands it a P in
// `nextp` and wakes it. A P handed over by startm is marked with `P::handoff` until the
// woken M claims it (CAS), so stopTheWorld can take back a P whose M has not run yet
// instead of waiting for the OS to schedule that M. An M in a foreign call (enterSyscall)
// keeps its P in `oldp` with the P marked Syscall, so sysmon or stopTheWorld may take the
// P away.
//
// Invariants.
//   - m->p != nullptr iff this M holds a P (p->m == this and p->status == Running).
//   - An M is in sched.midle iff inIdleList; only under sched.lock.
//   - A Note is woken at most once between clears; it takes no lock, so waking under
//     sched.lock is fine.
#pragma once

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <thread>

namespace spindle::runtime {

struct G;
struct P;
class Sched;
struct HostRun;

// Note (Go's note in lock_futex.go): one word, futex-backed. key is Clear, Set, or
// Sleeping (clear with the sleeper in futex wait). wakeup() exchanges in Set and issues
// FUTEX_WAKE only when it replaced Sleeping, so waking a note nobody sleeps on is one
// atomic; sleep() CASes Clear -> Sleeping and waits while the word is Sleeping. The
// exchange (release) / load (acquire) pair orders everything written before wakeup()
// before everything the sleeper does after it returns (ThreadSanitizer sees the atomics;
// the futex calls carry no ordering of their own). One sleeper at a time.
class Note {
 public:
  void sleep() {
    while (!trySleep(-1)) {
    }
  }
  // Returns true if woken, false on timeout.
  bool sleepFor(std::int64_t ns) {
    std::int64_t deadline = monotonicNs() + ns;
    for (;;) {
      std::int64_t left = deadline - monotonicNs();
      if (left <= 0) return isSet();
      if (trySleep(left)) return true;
    }
  }
  // Spins (pause, then yielding the CPU) for up to ns waiting for wakeup(); no futex.
  // For waits that are usually short, where an OS wake-up would dominate (the stopper
  // waiting for Ps to reach a safepoint). Returns true if woken.
  bool spinFor(std::int64_t ns) {
    std::int64_t deadline = monotonicNs() + ns;
    for (std::uint32_t i = 0;; i++) {
      if (isSet()) return true;
      if (i < 64) {
        cpuRelax();
      } else {
        if ((i & 7) == 0 && monotonicNs() >= deadline) return isSet();
        sched_yield();
      }
    }
  }
  void wakeup() {
    if (key_.exchange(kSet, std::memory_order_acq_rel) == kSleeping) futex(FUTEX_WAKE_PRIVATE, 1, nullptr);
  }
  // Only while nobody sleeps on the note.
  void clear() { key_.store(kClear, std::memory_order_release); }

 private:
  static constexpr std::uint32_t kClear = 0, kSet = 1, kSleeping = 2;

  bool isSet() const { return key_.load(std::memory_order_acquire) == kSet; }
  // One futex wait (ns < 0: no timeout). Returns true once the note is set.
  bool trySleep(std::int64_t ns) {
    std::uint32_t v = key_.load(std::memory_order_acquire);
    if (v == kSet) return true;
    if (v == kClear && !key_.compare_exchange_strong(v, kSleeping, std::memory_order_acquire)) {
      return v == kSet;  // only wakeup() changes it under us
    }
    timespec ts;
    if (ns >= 0) {
      ts.tv_sec = static_cast<time_t>(ns / 1000000000);
      ts.tv_nsec = static_cast<long>(ns % 1000000000);
    }
    futex(FUTEX_WAIT_PRIVATE, kSleeping, ns >= 0 ? &ts : nullptr);  // EAGAIN/EINTR/timeout: recheck
    return isSet();
  }
  long futex(int op, std::uint32_t val, const timespec* ts) {
    static_assert(sizeof(key_) == sizeof(std::uint32_t), "futex word");
    return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&key_), op, val, ts, nullptr, 0);
  }
  static void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  static std::int64_t monotonicNs() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  }

  std::atomic<std::uint32_t> key_{kClear};
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
  // Worker Ms: kInSyscall between enterSyscall and exitSyscall (set and cleared by the M,
  // release/acq_rel), kAbandoned once ~Sched CASed it from kInSyscall: the Sched and all
  // it owns are gone, the M is leaked and its thread detached; exitSyscall then blocks
  // forever. exited: set (release) when the M's thread leaves mstart, so ~Sched joins it
  // without waiting on a thread blocked in C.
  static constexpr std::uint32_t kNoSyscall = 0, kInSyscall = 1, kAbandoned = 2;
  std::atomic<std::uint32_t> syscallState{kNoSyscall};
  std::atomic<bool> exited{false};

  // Seeds rand() from the M's id with splitmix64. The state must never be zero: xorshift
  // maps zero to zero, and an M stuck there would make every select pick its first ready
  // case and every steal start at P 0.
  void seedRand(std::int64_t mid) {
    std::uint64_t z = static_cast<std::uint64_t>(mid) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    fastrand = z != 0 ? z : 0x9e3779b97f4a7c15ull;
  }

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
