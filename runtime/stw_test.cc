// stopTheWorld / startTheWorld, forEachP and procresize, with Gs running and blocking.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "runtime/chan.h"
#include "runtime/phooks.h"
#include "runtime/proc.h"
#include "runtime/testing/fnbody.h"
#include "runtime/waitgroup.h"

using namespace spindle::runtime;
using spindle::runtime::testing::fn;

namespace {

// A mixed load: spinners (yield at safepoints), channel ping-pong pairs and sleepers, all
// counting the Gs inside a body in `inBody`. Runs until `stop`.
struct Load {
  std::atomic<bool> stop{false};
  std::atomic<int> inBody{0};
  std::atomic<std::uint64_t> work{0};
  WaitGroup wg;
  std::vector<hchan*> chans;

  void spawn(Sched& s, int spinners, int pairs, int sleepers) {
    wg.add(spinners + 2 * pairs + sleepers);
    for (int i = 0; i < spinners; i++) {
      s.newproc(fn([this](G* g) -> Step {
        inBody.fetch_add(1);
        for (;;) {
          work.fetch_add(1, std::memory_order_relaxed);
          if (stop.load()) {
            inBody.fetch_sub(1);
            wg.done();
            return Step::exit();
          }
          if (g->preemptRequested()) {
            inBody.fetch_sub(1);
            return Step::yield();
          }
        }
      }));
    }
    for (int i = 0; i < pairs; i++) {
      hchan* c = makechan(0);
      chans.push_back(c);
      // Side 0 sends forever, side 1 receives forever; finish() closes the channel.
      for (int side = 0; side < 2; side++) {
        s.newproc(fn([this, c, side, parked = false](G* g) mutable -> Step {
          inBody.fetch_add(1);
          for (;;) {
            std::uint64_t v = 0;
            bool ok = true;
            if (parked) {
              if (side == 0) {
                ok = chansendResume(g) == ChanResult::Ok;
              } else {
                chanrecvResume(g, &v, &ok);
              }
              parked = false;
            }
            if (!ok || stop.load()) {
              inBody.fetch_sub(1);
              wg.done();
              return Step::exit();
            }
            work.fetch_add(1, std::memory_order_relaxed);
            ChanResult r = side == 0 ? chansend(c, 1, g) : chanrecv(c, g, &v, &ok);
            if (r == ChanResult::Park) {
              parked = true;
              inBody.fetch_sub(1);
              return side == 0 ? chanSendParkStep(c) : chanRecvParkStep(c);
            }
            if (r == ChanResult::Closed) ok = false;
            if (!ok) {
              inBody.fetch_sub(1);
              wg.done();
              return Step::exit();
            }
          }
        }));
      }
    }
    for (int i = 0; i < sleepers; i++) {
      s.newproc(fn([this, &s](G* g) -> Step {
        inBody.fetch_add(1);
        work.fetch_add(1, std::memory_order_relaxed);
        bool done = stop.load();
        inBody.fetch_sub(1);
        if (done) {
          wg.done();
          return Step::exit();
        }
        return s.sleep(g, 500000);
      }));
    }
  }

  void finish() {
    stop.store(true);
    for (hchan* c : chans) closechan(c);
  }
  ~Load() {
    for (hchan* c : chans) freechan(c);
  }
};

// Runs `body` on a helper thread while the host runs main: main waits for the load's
// wait group, and the helper calls load.finish() when done.
// The helper is a plain thread that readies Gs (closechan): it is "the host" acting on
// the fibers, so it holds a host wait while active; otherwise checkdead could rightly
// report a deadlock between finish() setting stop and closing the channels.
template <typename F>
void runWithLoad(Sched& s, Load& load, F body) {
  s.addHostWait(1);
  std::thread helper([&] {
    body();
    load.finish();
    s.addHostWait(-1);
  });
  RunStatus st = s.runMain(fn([pc = 0, &load](G* g) mutable -> Step {
    if (pc++ == 0 && !load.wg.wait(g)) return load.wg.parkStep();
    return Step::exit();
  }));
  helper.join();
  CHECK(st == RunStatus::Ok);
}

}  // namespace

TEST_CASE("stopTheWorld stops every P while Gs run and block") {
  Sched s(4);
  Load load;
  load.spawn(s, 3, 2, 3);
  int stops = 0;
  bool allStopped = true, noneInBody = true, progressed = true;
  runWithLoad(s, load, [&] {
    for (int i = 0; i < 30; i++) {
      std::uint64_t before = load.work.load();
      s.stopTheWorld("test");
      for (int p = 0; p < s.procs(); p++) allStopped &= s.allp(p)->status.load() == PStatus::GCStop;
      noneInBody &= load.inBody.load() == 0;
      std::uint64_t w1 = load.work.load();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      noneInBody &= load.work.load() == w1;  // nothing runs while stopped
      s.startTheWorld();
      stops++;
      // The world restarts: some G makes progress.
      while (load.work.load() == before) std::this_thread::yield();
    }
  });
  CHECK(stops == 30);
  CHECK(allStopped);
  CHECK(noneInBody);
  CHECK(progressed);
  CHECK(s.stats().numSTW == 30);
}

TEST_CASE("stopTheWorld from inside a G body") {
  Sched s(2);
  Load load;
  load.spawn(s, 2, 1, 1);
  int inside = -1;
  RunStatus st = s.runMain(fn([pc = 0, &s, &load, &inside](G* g) mutable -> Step {
    if (pc == 0) {
      s.stopTheWorld("from a G");
      inside = load.inBody.load();
      s.startTheWorld();
      load.finish();
      pc = 1;
      if (!load.wg.wait(g)) return load.wg.parkStep();
    }
    return Step::exit();
  }));
  CHECK(st == RunStatus::Ok);
  CHECK(inside == 0);
}

TEST_CASE("forEachP runs fn exactly once on every P, idle ones included") {
  Sched s(4);
  Load load;
  load.spawn(s, 1, 1, 1);  // few Gs: some Ps are idle, some run, some sleep in timers
  bool exactlyOnce = true;
  runWithLoad(s, load, [&] {
    for (int round = 0; round < 50; round++) {
      std::vector<int> count(s.procs(), 0);
      std::mutex mu;
      s.forEachP([&](P* p) {
        std::lock_guard<std::mutex> lk(mu);
        count[p->id]++;
      });
      for (int c : count) exactlyOnce &= c == 1;
    }
  });
  CHECK(exactlyOnce);
}

namespace {
std::mutex gCachesMu;
std::set<P*> gCaches;  // "caches" owned by live Ps (stands in for the heap's MCache)
std::atomic<int> gInits{0}, gDestroys{0}, gAcquires{0};
}  // namespace

TEST_CASE("procresize up and down under load hands caches back") {
  int slot = registerPLifecycleHooks(PLifecycleHooks{
      [](P* p) {
        std::lock_guard<std::mutex> lk(gCachesMu);
        REQUIRE(gCaches.insert(p).second);
        gInits.fetch_add(1);
      },
      [](P* p) {
        std::lock_guard<std::mutex> lk(gCachesMu);
        REQUIRE(gCaches.erase(p) == 1);
        gDestroys.fetch_add(1);
      },
      [](P*) { gAcquires.fetch_add(1); },
  });
  {
    Sched s(2);
    CHECK(gCaches.size() == 2);
    Load load;
    load.spawn(s, 3, 2, 2);
    std::vector<std::size_t> sizes;
    std::vector<int> procs;
    runWithLoad(s, load, [&] {
      for (int n : {4, 1, 3, 2, 5, 1, 2}) {
        s.setProcs(n);
        std::lock_guard<std::mutex> lk(gCachesMu);
        sizes.push_back(gCaches.size());
        procs.push_back(s.procs());
      }
    });
    CHECK(procs == std::vector<int>{4, 1, 3, 2, 5, 1, 2});
    CHECK(sizes == std::vector<std::size_t>{4, 1, 3, 2, 5, 1, 2});
    CHECK(gAcquires.load() > 0);
  }
  CHECK(gCaches.empty());
  CHECK(gInits.load() == gDestroys.load());
  unregisterPLifecycleHooks(slot);
}

TEST_CASE("Sched::checkpoint lets the world stop while a G body keeps running") {
  // The body never returns to the scheduler until `stop`; it only passes checkpoints.
  // Without checkpoint, stopTheWorld (and forEachP) would wait for it forever.
  Sched s(2);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> spins{0};
  std::atomic<int> stops{0};
  std::atomic<int> fnRuns{0};
  std::thread stopper([&] {
    while (spins.load() == 0) std::this_thread::yield();
    for (int i = 0; i < 20; i++) {
      s.stopTheWorld("test");
      const std::uint64_t frozen = spins.load();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      CHECK(spins.load() == frozen);  // the body is blocked in its checkpoint
      s.startTheWorld();
      stops.fetch_add(1);
    }
    s.forEachP([&](P*) { fnRuns.fetch_add(1); });
    stop.store(true);
  });
  RunStatus st = s.runMain(fn([&](G*) -> Step {
    while (!stop.load()) {
      spins.fetch_add(1);
      Sched::checkpoint();
    }
    return Step::exit();
  }));
  stopper.join();
  CHECK(st == RunStatus::Ok);
  CHECK(stops.load() == 20);
  CHECK(fnRuns.load() == 2);
}

namespace {
thread_local P* tlsAcquired = nullptr;
}  // namespace

TEST_CASE("procresize moving the caller to P0 runs P0's acquire hooks on the caller") {
  int slot = registerPLifecycleHooks(PLifecycleHooks{nullptr, nullptr, [](P* p) { tlsAcquired = p; }});
  {
    Sched s(2);
    std::atomic<bool> started{false}, done{false};
    std::atomic<P*> acquired{nullptr};
    std::atomic<int> fromP{-1};
    // The host's G holds P0 (the first idle P) until done, passing checkpoints so the
    // world can stop; a G queued from outside any M then runs on P1 and shrinks to 1 P.
    std::thread host([&] {
      s.runMain(fn([&](G*) -> Step {
        started.store(true);
        while (!done.load()) Sched::checkpoint();
        return Step::exit();
      }));
    });
    while (!started.load()) std::this_thread::yield();
    s.newproc(fn([&](G*) -> Step {
      tlsAcquired = nullptr;
      fromP.store(getm()->p->id);
      s.setProcs(1);  // this G's P goes away: it continues on P0
      acquired.store(tlsAcquired);
      done.store(true);
      return Step::exit();
    }));
    host.join();
    CHECK(fromP.load() == 1);
    CHECK(acquired.load() == s.allp(0));
  }
  unregisterPLifecycleHooks(slot);
}
