// wordlock_test.cc: a WordLock whose holder loses its P (barrier.h, "WordLock").
//
// A map append or a script Pinner's method holds its object's WordLock across code that
// may give up the P: a checkpoint hands the P to a stopper (stopTheWorld), and a G in the
// syscall state may have its P retaken by sysmon. The holder then waits in exitSyscall for
// a P. Waiters on the lock run on Ps and never return to the scheduler while they wait, so
// if every P runs a waiter, the holder gets none and never releases the lock: each waiter
// must hand its P to an M waiting for one (checkpointRelax -> runtime::lockWaitRelax).
//
// Each scenario runs in a forked child with an alarm: without the hand-off it deadlocks,
// which the parent observes as the child's death by SIGALRM (not a test timeout).
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "runtime/proc.h"
#include "runtime/testing/child.h"
#include "runtime/testing/fnbody.h"
#include "vm/barrier.h"

using namespace spindle;
using runtime::G;
using runtime::Sched;
using runtime::Step;
using runtime::testing::fn;
using runtime::testing::runChild;

namespace {

// How long a child may take before it is deemed deadlocked: each scenario finishes within
// a second or two when it does not deadlock, even under sanitizers on a loaded box.
constexpr unsigned kDeadlockSeconds = 30;

constexpr int kWaiters = 6;

struct Shared {
  std::uint32_t word = 0;                 // the lock
  std::atomic<bool> holding{false};       // the holder has the lock
  std::atomic<int> entered{0};            // waiters that began to wait (each on a P)
  std::atomic<bool> release{false};       // the holder may unlock
  std::atomic<int> done{0};               // Gs finished
};

// A waiter: takes the lock as mapInsert does, then finishes.
runtime::GBody* waiter(Shared* sh) {
  return fn([sh](G*) -> Step {
    sh->entered.fetch_add(1);
    { vm::WordLock lock(sh->word, vm::checkpointRelax); }
    sh->done.fetch_add(1);
    return Step::exit();
  });
}

void waitFor(const std::atomic<int>& n, int want) {
  while (n.load() < want) std::this_thread::sleep_for(std::chrono::microseconds(100));
}

void expectAlive(const std::pair<bool, std::string>& r) {
  INFO("child stderr: " << r.second);
  CHECK_FALSE(r.first);
}

}  // namespace

TEST_CASE("a WordLock holder whose P was retaken gets a P back from the waiters") {
  // Two Ps: the holder takes the lock and enters a foreign call (the syscall state); a
  // waiter spins on the other P, sysmon retakes the holder's P for the queued waiters,
  // so when the holder leaves the call both Ps run waiters.
  expectAlive(runChild([] {
    alarm(kDeadlockSeconds);
    Shared sh;
    {
      Sched s(2);
      s.newproc(fn([&sh](G*) -> Step {
        vm::WordLock lock(sh.word, vm::checkpointRelax);
        sh.holding.store(true);
        while (sh.entered.load() < 1) runtime::checkpoint();
        Sched::enterSyscall(/*stackQuiescent=*/false);
        waitFor(sh.entered, 2);  // sysmon handed our P to an M that runs a waiter
        Sched::exitSyscall();    // both Ps run waiters now
        sh.done.fetch_add(1);
        return Step::exit();
      }));
      while (!sh.holding.load()) std::this_thread::yield();
      for (int i = 0; i < kWaiters; i++) s.newproc(waiter(&sh));
      waitFor(sh.done, kWaiters + 1);
    }
  }));
}

TEST_CASE("a WordLock holder stopped at a checkpoint runs again though waiters fill the Ps") {
  // What race_maps.lox stalled on under --gcstress-continuous (a map append growing the
  // map). The holder spawns the waiters (they queue on its P) and passes checkpoints
  // while the world is stopped and restarted again and again: each stop takes its P and
  // the waiter's on the other P; the restart gives the P with queued waiters to a new M
  // and the other to one of the two Ms waiting in exitSyscall, which may be the waiter's.
  for (int round = 0; round < 10; round++) {
    CAPTURE(round);
    expectAlive(runChild([] {
      alarm(kDeadlockSeconds);
      Shared sh;
      {
        Sched s(2);
        s.newproc(fn([&sh, &s](G*) -> Step {
          vm::WordLock lock(sh.word, vm::checkpointRelax);
          sh.holding.store(true);
          for (int i = 0; i < kWaiters; i++) s.newproc(waiter(&sh));
          while (!sh.release.load()) runtime::checkpoint();
          sh.done.fetch_add(1);
          return Step::exit();
        }));
        waitFor(sh.entered, 1);
        for (int i = 0; i < 200; i++) {
          s.stopTheWorld("wordlock_test");
          s.startTheWorld();
          // Let the Ms the restart woke claim their Ps and run the queued waiters.
          std::this_thread::sleep_for(std::chrono::microseconds(300));
        }
        sh.release.store(true);
        waitFor(sh.done, kWaiters + 1);
      }
    }));
  }
}
