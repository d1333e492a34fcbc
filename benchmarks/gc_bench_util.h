// gc_bench_util.h: what the collector benchmarks share: pause and cycle recording for
// Spindle and Boehm, percentiles, peak RSS, and running each heap in a child process.
//
// Spindle's side reads only public contracts:
//   - cycles: a weak-table callback (gc.h registerWeak) runs once per cycle at mark
//     termination, so counting its calls counts cycles;
//   - STW pauses: the collector's pause list (gc.h gcStats: the last 1024 pauses and the
//     total count), harvested by the benchmark's G at every yield, so none is lost unless
//     more than 1024 happen between two polls (counted in `missed`, printed).
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
