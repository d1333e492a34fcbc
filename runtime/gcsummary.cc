// gcsummary.cc: see gcsummary.h.
#include "runtime/gcsummary.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace spindle::runtime {

namespace {
const std::chrono::steady_clock::time_point gStart = std::chrono::steady_clock::now();
}  // namespace

std::int64_t processUptimeNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - gStart)
      .count();
}

std::int64_t percentileNs(std::vector<std::int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

GCSummary gcSummary(const GCStats& s, std::uint64_t allocBytes, std::int64_t elapsedNs) {
  GCSummary g;
  g.pauses = s.numPauses;
  g.p50Ns = percentileNs(s.pausesNs, 50);
  g.p99Ns = percentileNs(s.pausesNs, 99);
  g.maxNs = s.maxPauseNs;
  g.totalNs = s.totalPauseNs;
  g.assistNs = s.assistTimeNs;
  g.allocBytesPerSec = elapsedNs > 0 ? static_cast<double>(allocBytes) * 1e9 / static_cast<double>(elapsedNs) : 0;
  return g;
}

std::string pauseHistogram(const GCStats& s) {
  constexpr int kBuckets = static_cast<int>(sizeof s.pauseHist / sizeof s.pauseHist[0]);
  int first = -1, last = -1;
  std::uint64_t most = 0;
  for (int i = 0; i < kBuckets; ++i) {
    if (s.pauseHist[i] == 0) continue;
    if (first < 0) first = i;
    last = i;
    most = std::max(most, s.pauseHist[i]);
  }
  std::string out;
  for (int i = first; i >= 0 && i <= last; ++i) {
    const std::uint64_t lo = i == 0 ? 0 : std::uint64_t{1} << i, hi = std::uint64_t{2} << i;
    const auto bar = static_cast<std::size_t>((s.pauseHist[i] * 40 + most - 1) / most);
    out += fmt::format("  [{:>6}, {:>6}) us {:>8}  {}\n", lo, hi, s.pauseHist[i], std::string(bar, '#'));
  }
  return out;
}

}  // namespace spindle::runtime
