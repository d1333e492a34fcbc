// lazy_threads_test.cc: the runtime starts its threads when there is work for them, and
// names them (threadname.h); idle Ps mark only on idle CPUs (mgc.h idleMarkSlots); the
// finalizer G waits parked without an M; sysmon backs off while it finds no work.
//
// Threads are counted by name in /proc/self/task/*/comm, so the checks see exactly the
// threads the runtime made, whatever the test runner adds.
#include <doctest/doctest.h>

#include <dirent.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

#include "runtime/gc.h"
#include "runtime/mgc.h"
#include "runtime/proc.h"
#include "runtime/testing/fnbody.h"

using namespace spindle::runtime;
using spindle::runtime::testing::fn;

namespace {

// Live threads of this process whose name is `name`.
int threadsNamed(const std::string& name) {
  DIR* d = opendir("/proc/self/task");
  REQUIRE(d != nullptr);
  int n = 0;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const std::string path = std::string("/proc/self/task/") + e->d_name + "/comm";
    std::FILE* f = std::fopen(path.c_str(), "r");
    if (f == nullptr) continue;  // the thread exited meanwhile
    char buf[32] = {};
    const bool got = std::fgets(buf, sizeof buf, f) != nullptr;
    std::fclose(f);
    if (!got) continue;
    std::string comm(buf);
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    if (comm == name) n++;
  }
  closedir(d);
  return n;
}

}  // namespace

TEST_CASE("a Sched starts sysmon; the first cycle request the controller; the scavenger waits for a sweep") {
  Sched s(2);
  CHECK(threadsNamed("spindle-sysmon") == 1);
  gcAttach(&s);
  // Attached, nothing requested yet: no controller, no scavenger, no mark workers (none
  // below 6 Ps).
  CHECK(threadsNamed("spindle-gc") == 0);
  CHECK(threadsNamed("spindle-scvg") == 0);
  CHECK(threadsNamed("spindle-gcmark") == 0);
  gcCollect();
  CHECK(threadsNamed("spindle-gc") == 1);
  const GCStats st = gcStats();
  CHECK(st.cycles >= 1);
  gcDetach(&s);
  CHECK(threadsNamed("spindle-gc") == 0);
}

#if SPINDLE_DCHECKS_ON
// A request while the world detaches (a fiber of the leaving world still allocating, a
// gcstress safepoint: the run fuzzer's hang) starts no controller, so the next world
// to attach gets a live one and its cycles run.
TEST_CASE("a cycle requested while the world detaches leaves the next world a controller") {
  std::uint64_t cycles = 0;
  {
    Sched s(2);
    gcAttach(&s);
    setDetachTestHook([] { gcCollect(); });
    gcDetach(&s);
    CHECK(threadsNamed("spindle-gc") == 0);
    cycles = gcStats().cycles;
  }
  Sched next(2);
  gcAttach(&next);
  gcCollect();  // starts the controller: it would wait forever behind a dead one
  CHECK(threadsNamed("spindle-gc") == 1);
  CHECK(gcStats().cycles > cycles);
  gcDetach(&next);
}
#endif

TEST_CASE("idle Ps mark only while a CPU is idle") {
  using gc_detail::idleMarkSlots;
  // Nothing runs: every P is idle. The controller keeps one CPU busy, so procs - 1 of
  // them may mark.
  Sched two(2);
  CHECK(two.idlePs() == 2);
  CHECK(idleMarkSlots(&two) == 1);
  int inside = -1;
  // One fiber running on one of 2 Ps: the fiber and the controller fill both CPUs.
  CHECK(two.runMain(fn([&](G*) -> Step {
          inside = idleMarkSlots(&two);
          return Step::exit();
        })) == RunStatus::Ok);
  CHECK(inside == 0);
  Sched four(4);
  CHECK(idleMarkSlots(&four) == 3);
  CHECK(four.runMain(fn([&](G*) -> Step {
          inside = idleMarkSlots(&four);
          return Step::exit();
        })) == RunStatus::Ok);
  CHECK(inside == 2);
  // Seeded: every idle P (the schedule is the seed's, not the CPUs').
  Sched seeded(2, 7);
  CHECK(seeded.runMain(fn([&](G*) -> Step {
          inside = idleMarkSlots(&seeded);
          return Step::exit();
        })) == RunStatus::Ok);
  CHECK(inside == 1);
}

TEST_CASE("sysmon backs off to a 10 ms tick while it finds no work, and ticks every ms again when it does") {
  Sched s(2);
  // Nothing runs: after some idle ticks the tick doubles up to 10 ms.
  bool backedOff = false;
  for (int i = 0; i < 2000 && !backedOff; i++) {
    backedOff = s.sysmonTickNs() == 10'000'000;
    if (!backedOff) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(backedOff);
  // A G that does not yield: sysmon asks it to (work found), and its tick is 1 ms again.
  std::int64_t tickWhenPreempted = 0;
  CHECK(s.runMain(fn([&](G* g) -> Step {
          while (!g->preemptRequested() || s.sysmonTickNs() != 1'000'000) std::this_thread::yield();
          tickWhenPreempted = s.sysmonTickNs();
          return Step::exit();
        })) == RunStatus::Ok);
  CHECK(tickWhenPreempted == 1'000'000);
}
