// The schedule loop: spawning, preemption, stealing, timers, foreign calls, deadlock
// detection and host entry.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "runtime/chan.h"
#include "runtime/proc.h"
#include "runtime/testing/fnbody.h"
#include "runtime/malloc.h"
#include "runtime/pheap.h"
#include "runtime/phooks.h"
#include "runtime/waitgroup.h"

using namespace spindle::runtime;
using spindle::runtime::testing::fn;

namespace {
// Runs a main G that receives one value from c into *got.
RunStatus runMainRecvOne(Sched& s, hchan* c, std::uint64_t* got) {
  return s.runMain(fn([pc = 0, c, got](G* g) mutable -> Step {
    bool ok;
    if (pc == 0) {
      pc = 1;
      if (chanrecv(c, g, got, &ok) == ChanResult::Park) return chanRecvParkStep(c);
      return Step::exit();
    }
    chanrecvResume(g, got, &ok);
    return Step::exit();
  }));
}

// Runs a main G that calls before(g), starts n Gs made by make() (each calls wg.done()
// once when it is finished), and waits for them all.
template <class Make, class Before = void (*)(G*)>
RunStatus runMainSpawnWait(Sched& s, int n, WaitGroup& wg, Make make, Before before = [](G*) {}) {
  wg.add(n);
  return s.runMain(fn([pc = 0, &s, n, &wg, make, before](G* g) mutable -> Step {
    if (pc == 0) {
      before(g);
      for (int i = 0; i < n; i++) s.newproc(make());
      pc = 1;
      if (!wg.wait(g)) return wg.parkStep();
    }
    return Step::exit();
  }));
}
}  // namespace

TEST_CASE("100k Gs spawned and joined") {
  Sched s(2);
  constexpr int kN = 100000;
  std::atomic<int> ran{0};
  WaitGroup wg;
  RunStatus st = runMainSpawnWait(s, kN, wg, [&ran, &wg] {
    return fn([&ran, &wg](G*) -> Step {
      ran.fetch_add(1, std::memory_order_relaxed);
      wg.done();
      return Step::exit();
    });
  });
  CHECK(st == RunStatus::Ok);
  CHECK(ran.load() == kN);
}

TEST_CASE("a G that never blocks cannot starve others (sysmon preemption)") {
  Sched s(1);  // one P: the others can only run if the spinner is preempted
  std::atomic<bool> stop{false};
  std::atomic<int> preempted{0};
  WaitGroup wg;
  wg.add(1);
  RunStatus st = s.runMain(fn([pc = 0, &s, &stop, &preempted, &wg](G* g) mutable -> Step {
    switch (pc) {
      case 0:
        // Spinner: loops until stop, yielding only when asked to at its safepoint.
        s.newproc(fn([&stop, &preempted, &wg](G* g) -> Step {
          while (!stop.load(std::memory_order_relaxed)) {
            if (g->preemptRequested()) {
              preempted.fetch_add(1);
              return Step::yield();
            }
          }
          wg.done();
          return Step::exit();
        }));
        pc = 1;
        return Step::yield();  // the spinner runs (it is in runnext) and never yields
      case 1:
        // We only get here if the spinner was preempted.
        stop.store(true);
        pc = 2;
        if (!wg.wait(g)) return wg.parkStep();
        [[fallthrough]];
      default:
        return Step::exit();
    }
  }));
  CHECK(st == RunStatus::Ok);
  CHECK(preempted.load() >= 1);
}

TEST_CASE("load spreads over Ps (work stealing)") {
  Sched s(4);
  constexpr int kN = 64;
  std::mutex mu;
  std::set<int> ps;
  WaitGroup wg;
  std::atomic<int> started{0};
  RunStatus st = runMainSpawnWait(s, kN, wg, [&mu, &ps, &wg, &started] {
    // Each keeps yielding until two Ps have run workers (bounded, so a broken steal
    // fails instead of hanging): the idle Ps can only get work by stealing.
    return fn([&mu, &ps, &wg, &started](G* g) mutable -> Step {
      bool spread;
      {
        std::lock_guard<std::mutex> lk(mu);
        ps.insert(g->m->p->id);
        spread = ps.size() >= 2;
      }
      if (!spread && started.fetch_add(1) < 20000000) return Step::yield();
      wg.done();
      return Step::exit();
    });
  });
  CHECK(st == RunStatus::Ok);
  INFO("Ps used: " << ps.size());
  CHECK(ps.size() >= 2);
}

TEST_CASE("every M's random source moves (select order and steal order depend on it)") {
  for (std::int64_t id = 0; id < 4096; id++) {
    M m;
    m.seedRand(id);
    std::uint32_t first = m.rand();
    bool moved = false;
    for (int i = 0; i < 4 && !moved; i++) moved = m.rand() != first;
    INFO("M id " << id);
    REQUIRE(moved);
  }
  // And the Ms the scheduler makes are seeded: Gs on every worker and host M see it move.
  Sched s(4);
  std::atomic<int> stuck{0};
  std::mutex mu;
  std::set<std::int64_t> ms;
  WaitGroup wg;
  constexpr int kN = 64;
  auto probe = [&stuck, &mu, &ms](G* g) {
    std::uint32_t a = g->m->rand(), b = g->m->rand(), c = g->m->rand();
    if (a == b && b == c) stuck.fetch_add(1);
    std::lock_guard<std::mutex> lk(mu);
    ms.insert(g->m->id);
  };
  RunStatus st = runMainSpawnWait(
      s, kN, wg,
      [&wg, probe] {
        return fn([&wg, probe, n = 0](G* g) mutable -> Step {
          probe(g);
          if (++n < 50) return Step::yield();
          wg.done();
          return Step::exit();
        });
      },
      probe);
  CHECK(st == RunStatus::Ok);
  // How many Ms ran the Gs depends on the machine's load; none of them may be stuck.
  INFO("Ms seen: " << ms.size());
  CHECK(stuck.load() == 0);
}

TEST_CASE("timers fire in deadline order") {
  Sched s(1);
  // Each G's deadline is set when it first runs (sleep is relative), so under load the
  // deadlines need not follow the delays: check the firing order against the deadlines
  // the timers actually had.
  std::vector<std::int64_t> fired;  // g->timerWhen, in firing order
  std::mutex mu;
  const int delays[] = {9, 3, 15, 1, 6, 12};  // ms
  WaitGroup wg;
  wg.add(6);
  RunStatus st = s.runMain(fn([pc = 0, &s, &fired, &mu, &delays, &wg](G* g) mutable -> Step {
    if (pc == 0) {
      for (int d : delays) {
        s.newproc(fn([pc = 0, d, &s, &fired, &mu, &wg](G* g) mutable -> Step {
          if (pc == 0) {
            pc = 1;
            return s.sleep(g, std::int64_t{d} * 1000000);
          }
          {
            std::lock_guard<std::mutex> lk(mu);
            fired.push_back(g->timerWhen);
          }
          wg.done();
          return Step::exit();
        }));
      }
      pc = 1;
      if (!wg.wait(g)) return wg.parkStep();
    }
    return Step::exit();
  }));
  CHECK(st == RunStatus::Ok);
  CHECK(fired.size() == 6);
  CHECK(std::is_sorted(fired.begin(), fired.end()));
  CHECK(s.pendingTimers() == 0);
}

TEST_CASE("deadlock is reported to the host") {
  Sched s(2);
  hchan* c = makechan(0);
  hchan* d = makechan(0);
  // A bystander blocked forever too.
  std::atomic<int> exited{0};
  s.newproc(fn([pc = 0, d, &exited](G* g) mutable -> Step {
    std::uint64_t v;
    bool ok;
    if (pc == 0 && chanrecv(d, g, &v, &ok) == ChanResult::Park) {
      pc = 1;
      return chanRecvParkStep(d);
    }
    exited.fetch_add(1);
    return Step::exit();
  }));
  RunStatus st = s.runMain(fn([pc = 0, c, &exited](G* g) mutable -> Step {
    std::uint64_t v;
    bool ok;
    if (pc++ > 0) {  // woken by the close below
      exited.fetch_add(1);
      return Step::exit();
    }
    REQUIRE(chanrecv(c, g, &v, &ok) == ChanResult::Park);
    return chanRecvParkStep(c);
  }));
  CHECK(st == RunStatus::Deadlock);
  CHECK(std::string(kDeadlockMessage) == "all fibers are asleep - deadlock!");
  // The scheduler stays usable: a later run completes.
  RunStatus st2 = s.runMain(fn([](G*) -> Step { return Step::exit(); }));
  CHECK(st2 == RunStatus::Ok);
  // Unblock the leftover Gs before the channels go away.
  CHECK(closechan(c));
  CHECK(closechan(d));
  RunStatus st3 = s.runMain(fn([&s, &exited](G* g) -> Step {
    if (exited.load() < 2) return s.sleep(g, 1000000);  // let them exit
    return Step::exit();
  }));
  CHECK(st3 == RunStatus::Ok);
  freechan(c);
  freechan(d);
}

TEST_CASE("endHostRun ends a host's wait while its G stays parked") {
  Sched s(2);
  hchan* c = makechan(0);
  std::atomic<G*> mainG{nullptr};
  std::atomic<std::uint64_t> mainGoid{0};
  std::atomic<bool> mainExited{false};
  // Another G ends the host's run while main is blocked on c (a fiber's fatal error).
  RunStatus st = s.runMain(fn([pc = 0, c, &s, &mainG, &mainGoid, &mainExited](G* g) mutable -> Step {
    std::uint64_t v;
    bool ok;
    if (pc++ > 0) {  // woken by the close below
      mainExited.store(true);
      return Step::exit();
    }
    mainGoid.store(g->goid);
    mainG.store(g);
    s.newproc(fn([&s, &mainG, &mainGoid](G*) -> Step {
      s.endHostRun(mainG.load(), mainGoid.load());
      s.endHostRun(mainG.load(), mainGoid.load());  // a second end is a no-op
      return Step::exit();
    }));
    REQUIRE(chanrecv(c, g, &v, &ok) == ChanResult::Park);
    return chanRecvParkStep(c);
  }));
  CHECK(st == RunStatus::Ended);
  CHECK_FALSE(mainExited.load());
  // The G is still parked: closing c lets it exit (it has no host waiting any more).
  CHECK(closechan(c));
  RunStatus st2 = s.runMain(fn([&s, &mainExited](G* g) -> Step {
    if (!mainExited.load()) return s.sleep(g, 1000000);
    return Step::exit();
  }));
  CHECK(st2 == RunStatus::Ok);
  CHECK(mainExited.load());
  freechan(c);
}

// A fiber's error ends the host call of its generation by endHostRun, from its own M,
// some time after it read the call's main G. By then that call may have ended and its
// G, recycled from the P's free list, be the main G of the host's next runMain: the goid
// tells the two runs apart, so the late end is a no-op and the next run is not cut short
// (VM::withP's "a host G that never parks ended with 2").
TEST_CASE("endHostRun of a main G that exited does not end the run that recycled it") {
  Sched s(1);  // one P: the next runMain takes the G the last one left on it
  G* first = nullptr;
  std::uint64_t firstGoid = 0;
  CHECK(s.runMain(fn([&](G* g) -> Step {
          first = g;
          firstGoid = g->goid;
          return Step::exit();
        })) == RunStatus::Ok);
  bool recycled = false;
  CHECK(s.runMain(fn([&](G* g) -> Step {
          recycled = g == first;
          s.endHostRun(first, firstGoid);  // the late end, for the run that already ended
          return Step::exit();
        })) == RunStatus::Ok);
  CHECK(recycled);
  // The end still reaches the run it names.
  CHECK(s.runMain(fn([&](G* g) -> Step {
          s.endHostRun(g, g->goid);
          return Step::exit();
        })) == RunStatus::Ended);
}

TEST_CASE("no deadlock while a timer is pending") {
  Sched s(2);
  hchan* c = makechan(0);
  // The sleeper wakes after 20 ms and sends; meanwhile main and every M are idle.
  s.newproc(fn([pc = 0, &s, c](G* g) mutable -> Step {
    if (pc == 0) {
      pc = 1;
      return s.sleep(g, 20000000);
    }
    if (pc == 1) {
      pc = 2;
      if (chansend(c, 5, g) == ChanResult::Park) return chanSendParkStep(c);
    }
    return Step::exit();
  }));
  std::uint64_t got = 0;
  RunStatus st = runMainRecvOne(s, c, &got);
  CHECK(st == RunStatus::Ok);
  CHECK(got == 5);
  freechan(c);
}

TEST_CASE("no deadlock while a foreign call is pending; its P is retaken meanwhile") {
  Sched s(1);
  hchan* c = makechan(0);
  std::atomic<bool> otherRan{false};
  std::atomic<bool> inCall{false};
  s.newproc(fn([pc = 0, c, &otherRan, &inCall](G* g) mutable -> Step {
    if (pc == 0) {
      Sched::enterSyscall(/*stackQuiescent=*/false);
      inCall.store(true);
      // A blocking foreign call; with one P, another G can only run if sysmon hands the P
      // to another M. Wait for that, bounded by 5 s so a broken retake fails cleanly.
      for (int i = 0; i < 5000 && !otherRan.load(); i++) usleep(1000);
      usleep(20000);  // keep every other M idle for a while: no deadlock meanwhile
      Sched::exitSyscall();
      pc = 1;
      if (chansend(c, 9, g) == ChanResult::Park) return chanSendParkStep(c);
    }
    return Step::exit();
  }));
  s.newproc(fn([&otherRan, &inCall](G*) -> Step {
    if (!inCall.load()) return Step::yield();
    otherRan.store(true);
    return Step::exit();
  }));
  std::uint64_t got = 0;
  RunStatus st = runMainRecvOne(s, c, &got);
  CHECK(st == RunStatus::Ok);
  CHECK(otherRan.load());
  CHECK(got == 9);
  freechan(c);
}

TEST_CASE("several host threads enter the scheduler at once") {
  Sched s(2);
  constexpr int kHosts = 3;
  std::atomic<int> ok{0};
  std::vector<std::thread> hosts;
  for (int h = 0; h < kHosts; h++) {
    hosts.emplace_back([&s, &ok] {
      hchan* c = makechan(1);
      std::uint64_t sum = 0;
      std::atomic<int> exited{0};
      RunStatus st = s.runMain(fn([pc = 0, i = 0, c, &sum, &s, &exited](G* g) mutable -> Step {
        // Ping through a helper G: send i, helper adds 1 and sends back... simply:
        // spawn helpers that each push one value, then receive them all.
        std::uint64_t v;
        bool okr;
        if (pc == 0) {
          for (int k = 1; k <= 100; k++) {
            s.newproc(fn([c, k, sent = false, &exited](G* g) mutable -> Step {
              if (!sent) {
                sent = true;
                if (chansend(c, static_cast<std::uint64_t>(k), g) == ChanResult::Park) return chanSendParkStep(c);
              }
              exited.fetch_add(1);
              return Step::exit();
            }));
          }
          pc = 1;
        }
        for (;;) {
          if (pc == 2) {
            chanrecvResume(g, &v, &okr);
            sum += v;
            i++;
            pc = 1;
          }
          if (i == 100) return Step::exit();
          if (chanrecv(c, g, &v, &okr) == ChanResult::Park) {
            pc = 2;
            return chanRecvParkStep(c);
          }
          sum += v;
          i++;
        }
      }));
      if (st == RunStatus::Ok && sum == 5050) ok.fetch_add(1);
      // Helpers may still be returning from their last send: let them finish first.
      s.runMain(fn([&s, &exited](G* g) -> Step {
        if (exited.load() < 100) return s.sleep(g, 1000000);
        return Step::exit();
      }));
      freechan(c);
    });
  }
  for (auto& t : hosts) t.join();
  CHECK(ok.load() == kHosts);
}

TEST_CASE("Gs allocate from the P they run on: across foreign calls and procresize") {
  // acquireP binds the P's heap part to the M's thread, releaseP and enterSyscall unbind
  // it; without that wiring mallocgc would find no P (or another thread's P) and fail a
  // P-ownership check.
  Sched s(2);
  constexpr int kG = 64;
  std::atomic<int> done{0};
  std::atomic<int> wrongP{0};
  WaitGroup wg;
  RunStatus st = s.runMain(fn([pc = 0, &s, &done, &wrongP, &wg](G* g) mutable -> Step {
    if (pc == 0) {
      wg.add(kG);
      for (int i = 0; i < kG; i++) {
        s.newproc(fn([round = 0, &done, &wrongP, &wg](G* g) mutable -> Step {
          for (int k = 0; k < 100; k++) {
            auto* v = static_cast<std::uint64_t*>(mallocgc(32, nullptr));
            if (v[0] != 0 || v[3] != 0) wrongP.fetch_add(1);  // zeroed, never shared
            v[0] = v[3] = 1;
          }
          if (g->m->p != currentP()) wrongP.fetch_add(1);
          Sched::enterSyscall(/*stackQuiescent=*/false);
          if (currentP() != nullptr) wrongP.fetch_add(1);  // no P inside a foreign call
          Sched::exitSyscall();
          if (g->m->p != currentP()) wrongP.fetch_add(1);
          if (++round < 20) return Step::yield();
          done.fetch_add(1);
          wg.done();
          return Step::exit();
        }));
      }
      s.setProcs(1);
      s.setProcs(3);
      pc = 1;
      if (!wg.wait(g)) return wg.parkStep();
    }
    return Step::exit();
  }));
  CHECK(st == RunStatus::Ok);
  CHECK(done.load() == kG);
  CHECK(wrongP.load() == 0);
}

namespace {
std::atomic<G*> gHookedG{nullptr};
std::atomic<int> gHookCalls{0};
void countingBeforeRun(G* g) {
  gHookedG.store(g);
  gHookCalls.fetch_add(1);
}
}  // namespace

TEST_CASE("exitSyscall after a quiescent foreign call waits for a scan and runs the before-run hook; checkpoint does neither") {
  Sched s(2);
  setGBeforeRunHook(countingBeforeRun);
  gHookCalls.store(0);
  std::atomic<int> phase{0};  // 1: in the quiescent call, 2: released, 3: returned
  std::atomic<bool> scannable{false};
  std::atomic<int> hookAtReturn{-1};
  G* g = nullptr;
  struct Body final : GBody {
    std::atomic<int>* phase;
    std::atomic<bool>* scannable;
    std::atomic<int>* hookAtReturn;
    int pc = 0;
    Step run(G* g, std::uint32_t) override {
      if (pc++ > 0) return Step::exit();
      const int before = gHookCalls.load();
      Sched::checkpoint();  // nothing waits: no syscall, no hook
      Sched::enterSyscall(/*stackQuiescent=*/true);
      scannable->store(g->gcAtSafepoint.load());
      phase->store(1);
      for (int i = 0; i < 5000 && phase->load() != 2; i++) usleep(1000);
      Sched::exitSyscall();
      hookAtReturn->store(gHookCalls.load() - before);
      CHECK(!g->gcAtSafepoint.load());
      phase->store(3);
      return Step::yield();
    }
  } body;
  body.phase = &phase;
  body.scannable = &scannable;
  body.hookAtReturn = &hookAtReturn;
  std::thread host([&] { CHECK(s.runMain(&body) == RunStatus::Ok); });
  while (phase.load() != 1) std::this_thread::yield();
  s.forEachG([&](G* x) {
    if (x->status.load() == GStatus::Syscall) g = x;
  });
  REQUIRE(g != nullptr);
  CHECK(scannable.load());
  g->lockScan();  // a scan in progress: the G must not run on until it ends
  phase.store(2);
  usleep(50000);
  CHECK(phase.load() == 2);
  g->unlockScan();
  while (phase.load() != 3) std::this_thread::yield();
  CHECK(hookAtReturn.load() == 1);  // exitSyscall's scan-before-run, not execute()'s
  CHECK(gHookedG.load() == g);
  host.join();
  setGBeforeRunHook(nullptr);

  // checkpoint passes through the syscall state without declaring the stack quiescent:
  // the hook is not run (the body's C++ frames hold state traceStack cannot report).
  std::atomic<bool> stop{false};
  std::atomic<int> hookInCheckpoint{-1};
  s.newproc(fn([&](G*) -> Step {
    setGBeforeRunHook(countingBeforeRun);
    const int before = gHookCalls.load();
    while (!stop.load()) Sched::checkpoint();
    hookInCheckpoint.store(gHookCalls.load() - before);
    setGBeforeRunHook(nullptr);
    return Step::exit();
  }));
  for (int i = 0; i < 20; i++) {
    s.stopTheWorld("test");  // the checkpointing body lets the world stop
    s.startTheWorld();
  }
  stop.store(true);
  while (hookInCheckpoint.load() < 0) std::this_thread::yield();
  CHECK(hookInCheckpoint.load() == 0);
}

TEST_CASE("host runs reuse Gs and dead Gs leave allgs: 200k runMain calls, 10k spawned Gs") {
  Sched s(2);
  struct Nop final : GBody {
    Step run(G*, std::uint32_t) override { return Step::exit(); }
  } nop;
  for (int i = 0; i < 200000; i++) REQUIRE(s.runMain(&nop) == RunStatus::Ok);
  // Gs in use plus at most kGFreeLocalMax (64) dead ones per P; and a G per host run
  // is reused, so no more Gs exist than that and one chain of 32 on the global list.
  CHECK(s.allgCount() <= 2 * 64 + 2);
  CHECK(s.gCount() <= 2 * 64 + 2 + 32);
  hchan* c = makechan(0);
  std::atomic<int> exited{0};
  for (int i = 0; i < 10000; i++) {
    s.newproc(fn([c, &exited, pc = 0](G* g) mutable -> Step {
      std::uint64_t v;
      bool ok;
      if (pc++ == 0) {
        if (chanrecv(c, g, &v, &ok) == ChanResult::Park) return chanRecvParkStep(c);
      } else {
        chanrecvResume(g, &v, &ok);
      }
      exited.fetch_add(1);
      return Step::exit();
    }));
  }
  CHECK(s.allgCount() >= 10000);
  closechan(c);
  struct Wait final : GBody {
    std::atomic<int>* exited;
    Step run(G*, std::uint32_t) override { return exited->load() == 10000 ? Step::exit() : Step::yield(); }
  } wait;
  wait.exited = &exited;
  REQUIRE(s.runMain(&wait) == RunStatus::Ok);
  CHECK(s.allgCount() <= 2 * 64 + 2);  // the 10k dead Gs left allgs for the free list
  freechan(c);
}

TEST_CASE("a foreign call of another G never runs on a host M: the host returns while it blocks") {
  Sched s(1);
  std::atomic<bool> secondRan{false}, onHost{true}, release{false}, returned{false};
  struct Main final : GBody {
    Sched* s;
    std::atomic<bool>* secondRan;
    std::atomic<bool>* onHost;
    std::atomic<bool>* release;
    std::atomic<bool>* returned;
    bool spawned = false;
    Step run(G*, std::uint32_t) override {
      if (!spawned) {
        spawned = true;
        s->newproc(fn([this, pc = 0](G* g) mutable -> Step {
          if (pc++ == 0) {
            // On the host's M (runnext of its only P): ask for a worker before the call.
            g->needWorkerM.store(true);
            return Step::yield();
          }
          onHost->store(getm()->isHost);
          secondRan->store(true);
          Sched::enterSyscall(/*stackQuiescent=*/false);
          for (int i = 0; i < 5000 && !release->load(); i++) usleep(1000);
          Sched::exitSyscall();
          returned->store(true);
          return Step::exit();
        }));
        return Step::yield();  // the spawned G runs next on this M
      }
      return secondRan->load() ? Step::exit() : Step::yield();
    }
  } body;
  body.s = &s;
  body.secondRan = &secondRan;
  body.onHost = &onHost;
  body.release = &release;
  body.returned = &returned;
  REQUIRE(s.runMain(&body) == RunStatus::Ok);
  CHECK(!onHost.load());
  CHECK(!returned.load());  // runMain returned while the call blocks
  release.store(true);
  while (!returned.load()) std::this_thread::yield();
}

namespace {
// One run of a seeded Sched with 4 Ps: 6 Gs each log (their id, their P) 20 times,
// yielding between entries; one sleeps 1000 s (virtual) half-way. Returns the log.
std::vector<int> seededRunLog(std::uint64_t seed) {
  Sched s(4, seed);
  std::vector<int> log;
  std::mutex mu;
  WaitGroup wg;
  RunStatus st = runMainSpawnWait(s, 6, wg, [&, id = 0]() mutable {
    return fn([&, me = id++, k = 0](G* g) mutable -> Step {
      {
        std::lock_guard<std::mutex> lk(mu);
        log.push_back(me * 100 + currentP()->id);
      }
      if (++k == 20) {
        wg.done();
        return Step::exit();
      }
      if (me == 0 && k == 10) return s.sleep(g, std::int64_t{1000} * 1000000000);
      return Step::yield();
    });
  });
  CHECK(st == RunStatus::Ok);
  CHECK(s.virtualNow() >= std::int64_t{1000} * 1000000000);  // the clock jumped, no one waited
  return log;
}
}  // namespace

TEST_CASE("a seeded Sched's schedule is a function of its seed: Gs, Ps and the virtual clock") {
  const std::vector<int> a = seededRunLog(7), b = seededRunLog(7);
  CHECK(a.size() == 120);
  CHECK(a == b);
  std::set<int> ps;
  for (int e : a) ps.insert(e % 100);
  CHECK(ps.size() > 1);  // the one M moves between the Ps
  std::set<std::vector<int>> logs{a, seededRunLog(8), seededRunLog(9)};
  CHECK(logs.size() >= 2);
}
