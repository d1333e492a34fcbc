// gcsummary.h: the collector's numbers as a person reads them (--stats, gcstats()): pause
// percentiles, assist time, the allocation rate, and a text histogram of pauses.
//
// Percentiles are over the last 1024 pauses (GCStats::pausesNs), nearest rank (p50: the
// smallest pause at least half of them do not exceed); the maximum is over every pause
// since the start (GCStats::maxPauseNs). The histogram's buckets are GCStats::pauseHist
// (powers of two of microseconds), printed from the first to the last non-empty bucket
// with a bar of '#' as long as the bucket's share of the largest one (at most 40).
// The allocation rate is bytes allocated over the seconds since the process began
// (processUptimeNs). Pure functions of their arguments but processUptimeNs.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/gc.h"

namespace spindle::runtime {

struct GCSummary {
  std::uint64_t pauses = 0;  // all pauses since the start
  std::int64_t p50Ns = 0, p99Ns = 0, maxNs = 0, totalNs = 0;
  std::int64_t assistNs = 0;
  double allocBytesPerSec = 0;
};

GCSummary gcSummary(const GCStats& s, std::uint64_t allocBytes, std::int64_t elapsedNs);
// Nearest-rank percentile (0 < p <= 100) of v (unsorted); 0 when v is empty.
std::int64_t percentileNs(std::vector<std::int64_t> v, double p);
// Lines "  [lo, hi) us  count  ####", each ending in a newline; "" with no pause.
std::string pauseHistogram(const GCStats& s);
// Nanoseconds since this process's runtime started (the first static initialiser here).
std::int64_t processUptimeNs();

}  // namespace spindle::runtime
