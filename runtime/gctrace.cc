// gctrace.cc: see gctrace.h.
#include "runtime/gctrace.h"

#include <fmt/format.h>

#include <atomic>
#include <cstdio>

#include "runtime/print.h"

namespace spindle::runtime {

namespace {

std::atomic<std::uint64_t> gStackScanBytes{0};
std::atomic<std::uint64_t> gGlobalsScanBytes{0};
std::atomic<bool> gTraceOn{false};

// Go's itoaDiv: v with a decimal point `dec` digits from the right.
std::string itoaDiv(std::uint64_t v, int dec) {
  std::string s = std::to_string(v);
  if (dec <= 0) return s;
  if (static_cast<int>(s.size()) <= dec) s.insert(0, static_cast<std::size_t>(dec) + 1 - s.size(), '0');
  s.insert(s.size() - static_cast<std::size_t>(dec), 1, '.');
  return s;
}

// Go's fmtNSAsMS: whole milliseconds from 10 ms on, else two significant digits with
// at most three decimals.
std::string ms(std::int64_t ns) {
  const std::uint64_t n = ns < 0 ? 0 : static_cast<std::uint64_t>(ns);
  if (n >= 10'000'000) return std::to_string(n / 1'000'000);
  std::uint64_t x = n / 1000;
  if (x == 0) return "0";
  int dec = 3;
  while (x >= 100) {
    x /= 10;
    dec--;
  }
  return itoaDiv(x, dec);
}

std::uint64_t mb(std::uint64_t bytes) { return bytes >> 20; }

}  // namespace

std::string formatGCTrace(const GCTraceCycle& c) {
  const std::uint64_t startMs = c.startNs < 0 ? 0 : static_cast<std::uint64_t>(c.startNs) / 1'000'000;
  return fmt::format(
      "gc {} @{}s {}%: {}+{}+{} ms clock, {}+{}/{}/{}+{} ms cpu, {}->{}->{} MB, {} MB goal, "
      "{} MB stacks, {} MB globals, {} P{}",
      c.cycle, itoaDiv(startMs, 3), c.utilPercent, ms(c.sweepTermNs), ms(c.markNs), ms(c.markTermNs),
      ms(c.sweepTermCpuNs), ms(c.assistCpuNs), ms(c.backgroundCpuNs), ms(c.idleCpuNs),
      ms(c.markTermCpuNs), mb(c.heap0), mb(c.heap1), mb(c.heap2), mb(c.goal), mb(c.stacks),
      mb(c.globals), c.procs, c.forced ? " (forced)" : "");
}

std::string formatScvgTrace(const ScvgTrace& s) {
  return fmt::format(
      "scvg{}: {} MB released\n"
      "scvg{}: inuse: {}, idle: {}, sys: {}, released: {}, consumed: {} (MB)\n",
      s.seq, mb(s.released), s.seq, mb(s.inuse), mb(s.idle), mb(s.sys), mb(s.heapReleased),
      mb(s.sys >= s.heapReleased ? s.sys - s.heapReleased : 0));
}

bool gcTraceOn() { return gTraceOn.load(std::memory_order_relaxed); }

namespace gc_detail {

void setGCTraceOn(bool on) { gTraceOn.store(on, std::memory_order_relaxed); }

void noteStackScanBytes(std::uint64_t bytes) {
  gStackScanBytes.fetch_add(bytes, std::memory_order_relaxed);
}
void noteGlobalsScanBytes(std::uint64_t bytes) {
  gGlobalsScanBytes.fetch_add(bytes, std::memory_order_relaxed);
}
std::uint64_t stackScanBytesTotal() { return gStackScanBytes.load(std::memory_order_relaxed); }
std::uint64_t globalsScanBytesTotal() { return gGlobalsScanBytes.load(std::memory_order_relaxed); }

}  // namespace gc_detail

}  // namespace spindle::runtime
