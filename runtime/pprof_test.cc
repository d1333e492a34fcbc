// pprof_test: the profile.proto encoder read back by the reader (gzip included), the
// gctrace and scvg lines in Go's formats, and the --stats summary's arithmetic.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "runtime/gcsummary.h"
#include "runtime/gctrace.h"
#include "runtime/pprof.h"
#include "runtime/pprofview.h"
#include "runtime/testing/files.h"

using namespace spindle::runtime;

namespace {
ProfFrame frame(const char* name, int line) {
  ProfFrame f{};
  std::snprintf(f.name, sizeof f.name, "%s", name);
  f.line = line;
  return f;
}
}  // namespace

TEST_CASE("a profile encoded, gzipped and read back keeps its samples, summed by stack") {
  ProfileBuilder b({{"samples", "count"}, {"cpu", "nanoseconds"}}, {"cpu", "nanoseconds"}, 10'000'000);
  const ProfFrame ab[] = {frame("a", 3), frame("b", 7)};
  const ProfFrame c[] = {frame("<native clock>", 0), frame("b", 8)};
  b.add(ab, 2, {1, 10'000'000});
  b.add(ab, 2, {2, 20'000'000});
  b.add(c, 2, {1, 10'000'000});
  CHECK(b.samples() == 2);
  std::string gz;
  REQUIRE(gzipBytes(b.encode(), &gz));
  REQUIRE(gz.size() > 2);
  CHECK(static_cast<unsigned char>(gz[0]) == 0x1f);
  ProfileData p;
  std::string err;
  REQUIRE(parseProfile(gz, &p, &err));
  REQUIRE(p.sampleTypes.size() == 2);
  CHECK(p.sampleTypes[1].type == "cpu");
  CHECK(p.sampleTypes[1].unit == "nanoseconds");
  CHECK(p.defaultIndex == 1);
  REQUIRE(p.samples.size() == 2);
  std::int64_t aTotal = 0, nativeTotal = 0;
  for (const auto& [stack, values] : p.samples) {
    REQUIRE(stack.size() == 2);
    CHECK(stack[1] == "b");
    if (stack[0] == "a") aTotal += values[1];
    if (stack[0] == "<native clock>") nativeTotal += values[1];
  }
  CHECK(aTotal == 30'000'000);
  CHECK(nativeTotal == 10'000'000);
  const std::string top = profileTop(p);
  CHECK(top.find("a\n") < top.find("<native clock>\n"));  // a has the larger flat value
  const std::string svg = profileFlameSVG(p, "t");
  CHECK(svg.find("&lt;native clock&gt;") != std::string::npos);
}

TEST_CASE("the reader rejects what is not a profile, truncated ones too") {
  ProfileData p;
  std::string err;
  CHECK_FALSE(parseProfile("hello, world", &p, &err));
  CHECK_FALSE(err.empty());
  ProfileBuilder b({{"samples", "count"}}, {"cpu", "nanoseconds"}, 1);
  const ProfFrame f[] = {frame("x", 1)};
  b.add(f, 1, {5});
  const std::string raw = b.encode();
  for (std::size_t cut : {raw.size() / 3, raw.size() / 2, raw.size() - 1}) {
    ProfileData q;
    // A cut message is either rejected or read without a crash; never more samples.
    if (parseProfile(raw.substr(0, cut), &q, &err)) CHECK(q.samples.size() <= 1);
  }
  CHECK_FALSE(parseProfile(std::string("\x1f\x8b garbage", 10), &p, &err));
}

TEST_CASE("gctrace: Go's line, field by field, with Go's millisecond formatting") {
  GCTraceCycle c;
  c.cycle = 7;
  c.startNs = 1'234'567'890;
  c.utilPercent = 3;
  c.sweepTermNs = 26'000;      // 0.026
  c.markNs = 12'345'678;       // >= 10 ms: whole milliseconds
  c.markTermNs = 1'500'000;    // 1.5
  c.sweepTermCpuNs = 52'000;
  c.assistCpuNs = 0;
  c.backgroundCpuNs = 390'000;
  c.idleCpuNs = 100;           // under 1 us: 0
  c.markTermCpuNs = 3'000'000;
  c.heap0 = 4u << 20;
  c.heap1 = (5u << 20) + 100;
  c.heap2 = 1u << 19;
  c.goal = 8u << 20;
  c.stacks = 1u << 20;
  c.globals = 0;
  c.procs = 2;
  CHECK(formatGCTrace(c) ==
        "gc 7 @1.234s 3%: 0.026+12+1.5 ms clock, 0.052+0/0.39/0+3.0 ms cpu, 4->5->0 MB, 8 MB goal, "
        "1 MB stacks, 0 MB globals, 2 P");
  c.forced = true;
  CHECK(formatGCTrace(c).ends_with(" 2 P (forced)"));
  ScvgTrace s{3, 2u << 20, 5u << 20, 10u << 20, 16u << 20, 6u << 20};
  CHECK(formatScvgTrace(s) ==
        "scvg3: 2 MB released\nscvg3: inuse: 5, idle: 10, sys: 16, released: 6, consumed: 10 (MB)\n");
}

TEST_CASE("--stats: nearest-rank percentiles and the pause histogram") {
  CHECK(percentileNs({}, 50) == 0);
  std::vector<std::int64_t> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  CHECK(percentileNs(v, 50) == 50);
  CHECK(percentileNs(v, 99) == 99);
  CHECK(percentileNs(v, 100) == 100);
  CHECK(percentileNs({7}, 99) == 7);
  GCStats s;
  CHECK(pauseHistogram(s).empty());
  s.pauseHist[2] = 4;  // [4, 8) us
  s.pauseHist[4] = 1;  // [16, 32) us
  s.pausesNs = {5000, 6000, 7000, 4000, 20000};
  s.maxPauseNs = 20000;
  s.numPauses = 5;
  const std::string h = pauseHistogram(s);
  CHECK(h ==
        "  [     4,      8) us        4  ########################################\n"
        "  [     8,     16) us        0  \n"
        "  [    16,     32) us        1  ##########\n");
  const GCSummary g = gcSummary(s, 1u << 20, 500'000'000);
  CHECK(g.p50Ns == 6000);  // the 3rd of 5
  CHECK(g.p99Ns == 20000);
  CHECK(g.maxNs == 20000);
  CHECK(g.allocBytesPerSec == doctest::Approx(2.0 * (1u << 20)));
}

namespace {
// A walker for code that keeps its frames in registers: the handler defers, a safepoint
// walks (mayDefer false).
int deferringWalker(ProfFrame* out, int max, bool mayDefer) {
  if (mayDefer) return kProfDeferred;
  if (max < 1) return 0;
  out[0] = frame("at_safepoint", 42);
  return 1;
}
}  // namespace

TEST_CASE("a deferred CPU sample is taken by cpuProfileSample, only while a profile runs") {
  setProfStackWalker(deferringWalker);
  cpuProfileSample();  // no profile: nothing recorded
  const std::string path = spindle::runtime::testing::tempPath("deferred.prof");
  std::string err;
  // 1 Hz: a SIGPROF during the test is deferred by the walker, so it adds no sample.
  REQUIRE(startCPUProfile(path, 1, &err));
  for (int i = 0; i < 5; ++i) cpuProfileSample();
  CHECK(cpuProfileSamples() == 5);
  REQUIRE(stopCPUProfile(&err));
  cpuProfileSample();  // stopped: nothing recorded
  CHECK(cpuProfileSamples() == 5);
  setProfStackWalker(nullptr);
  ProfileData p;
  REQUIRE(parseProfile(spindle::runtime::testing::slurp(path), &p, &err));
  std::int64_t n = 0;
  for (const auto& [stack, values] : p.samples) {
    REQUIRE(stack.size() == 1);
    CHECK(stack[0] == "at_safepoint");
    n += values[0];
  }
  CHECK(n == 5);
}
