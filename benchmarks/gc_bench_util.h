// gc_bench_util.h: what the collector benchmarks share: pause and cycle recording for
// Spindle and Boehm, percentiles, peak RSS, and running each heap in a child process.
//
// Spindle's side reads only public contracts:
//   - cycles: a weak-table callback (gc.h registerWeak) runs once per cycle at mark
//     termination, so counting its calls counts cycles;
//   - STW pauses: the collector's pause list (gc.h gcStats: the last 1024 pauses and the
//     total count), harvested by the benchmark's G at every yield, so none is lost unless
//     more than 1024 happen between two polls (counted in `missed`, printed);
//   - the longest stop's split (gcevents.h: time to safepoint = stopTheWorld's wait for
//     the running Ms, work = stopped until startTheWorld), from the event ring, read at
//     the same polls (records of cycles whose sweep had not finished are not there).
// Boehm's side: GC_set_on_collection_event; a pause is PRE_STOP_WORLD -> POST_START_WORLD
// (the world is stopped for the whole mark: Boehm here is not incremental), or START ->
// END when the library reports no stop-world events.
#pragma once

#include <fmt/format.h>
#include <gc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <vector>

#include "runtime/gc.h"
#include "runtime/gcevents.h"

namespace gcbench {

using Clock = std::chrono::steady_clock;

struct PauseSummary {
  std::size_t count = 0;
  double maxMs = 0, p99Ms = 0;
};
inline PauseSummary summarize(std::vector<double> ns) {
  PauseSummary s;
  s.count = ns.size();
  if (ns.empty()) return s;
  std::sort(ns.begin(), ns.end());
  s.maxMs = ns.back() / 1e6;
  s.p99Ms = ns[std::min(ns.size() - 1, ns.size() * 99 / 100)] / 1e6;
  return s;
}

inline double peakRssMiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}

// Runs fn in a child process so each measurement's peak RSS is its own.
template <class Fn>
int inChild(Fn fn) {
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    return 1;
  }
  if (pid == 0) {
    const int rc = fn();
    std::fflush(stdout);  // _exit does not flush stdio
    _exit(rc);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

// --- Spindle ---------------------------------------------------------------------------
class SpindleRecorder {
 public:
  SpindleRecorder() {
    const spindle::runtime::GCStats st = spindle::runtime::gcStats();
    baseCycles_ = st.cycles;
    seen_ = st.numPauses;
  }
  // Called by the benchmark's G at each yield (and once at the end).
  void poll() {
    const spindle::runtime::GCStats st = spindle::runtime::gcStats();
    cycles_ = st.cycles - baseCycles_;
    const std::uint64_t fresh = st.numPauses - seen_;
    const std::uint64_t have = std::min<std::uint64_t>(fresh, st.pausesNs.size());
    missed_ += fresh - have;
    for (std::size_t i = st.pausesNs.size() - have; i < st.pausesNs.size(); i++)
      pauses_.push_back(static_cast<double>(st.pausesNs[i]));
    seen_ = st.numPauses;
    std::vector<spindle::runtime::GCEvent> evs;
    lastEvent_ = spindle::runtime::gcEventsSince(lastEvent_, &evs);
    for (const auto& e : evs) {
      if (!e.stwMark && e.stw1ToSafepointNs + e.stw1WorkNs > worst_.totalNs)
        worst_ = Stop{e.cycle, "sweep termination", e.stw1ToSafepointNs, e.stw1WorkNs,
                      e.stw1ToSafepointNs + e.stw1WorkNs};
      if (e.stw2ToSafepointNs + e.stw2WorkNs > worst_.totalNs)
        worst_ = Stop{e.cycle, "mark termination", e.stw2ToSafepointNs, e.stw2WorkNs,
                      e.stw2ToSafepointNs + e.stw2WorkNs};
    }
  }
  // The longest stop found in the event records.
  struct Stop {
    std::uint64_t cycle = 0;
    const char* phase = "";
    std::int64_t toSafepointNs = 0, workNs = 0, totalNs = 0;
  };
  const Stop& longestStop() {
    poll();
    return worst_;
  }
  std::uint64_t cycles() {
    poll();
    return cycles_;
  }
  const std::vector<double>& pauses() {
    poll();
    return pauses_;
  }
  std::uint64_t missed() const { return missed_; }

 private:
  std::uint64_t baseCycles_ = 0, cycles_ = 0;
  std::uint64_t seen_ = 0;
  std::uint64_t missed_ = 0;
  std::vector<double> pauses_;
  std::uint64_t lastEvent_ = spindle::runtime::gcEventsLast();
  Stop worst_;
};

// --- Boehm -----------------------------------------------------------------------------
struct BoehmRecorder {
  static inline std::vector<double> stwNs, collectionNs;
  static inline Clock::time_point stwStart, collectionStart;
  static void onEvent(GC_EventType event) {
    switch (event) {
      case GC_EVENT_START: collectionStart = Clock::now(); break;
      case GC_EVENT_END:
        collectionNs.push_back(std::chrono::duration<double, std::nano>(Clock::now() - collectionStart).count());
        break;
      case GC_EVENT_PRE_STOP_WORLD: stwStart = Clock::now(); break;
      case GC_EVENT_POST_START_WORLD:
        stwNs.push_back(std::chrono::duration<double, std::nano>(Clock::now() - stwStart).count());
        break;
      default: break;
    }
  }
  static void init() {
    GC_INIT();
    GC_set_on_collection_event(onEvent);
  }
  static void reset() {
    stwNs.clear();
    collectionNs.clear();
  }
  static std::vector<double> pauses() { return stwNs.empty() ? collectionNs : stwNs; }
};

}  // namespace gcbench
