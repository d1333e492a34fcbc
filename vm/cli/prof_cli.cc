// prof_cli.cc: see prof_cli.h.
#include "vm/cli/prof_cli.h"

#include <cerrno>
#include <cstring>
#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <string_view>

#include "runtime/gc.h"
#include "runtime/gcsummary.h"
#include "runtime/pprof.h"
#include "runtime/pprofview.h"
#include "runtime/print.h"
#include "vm/prof.h"
#include "vm/spindle.h"

namespace spindle::cli {

using runtime::printTo;

namespace {
constexpr int kExitUsage = 64;
constexpr int kExitNoInput = 66;
constexpr int kExitIo = 74;
constexpr std::int64_t kMemProfileRate = 512 * 1024;  // Go's MemProfileRate
constexpr int kCPUHz = 100;
}  // namespace

int startProfiles(const ProfOptions& o) {
  if (o.cpuprofile.empty() && o.memprofile.empty()) return -1;
  vm::installProfWalker();
  runtime::setProfSourceFile(o.source);
  if (!o.memprofile.empty()) runtime::setMemProfileRate(kMemProfileRate);
  if (!o.cpuprofile.empty()) {
    std::string err;
    if (!runtime::startCPUProfile(o.cpuprofile, kCPUHz, &err)) {
      printTo(stderr, "spindle: --cpuprofile: {}\n", err);
      return kExitIo;
    }
  }
  return -1;
}

bool finishCPUProfile(const ProfOptions& o) {
  if (o.cpuprofile.empty()) return true;
  std::string err;
  if (!runtime::stopCPUProfile(&err)) {
    printTo(stderr, "spindle: --cpuprofile: {}\n", err);
    return false;
  }
  return true;
}

bool finishMemProfile(const ProfOptions& o, spindle::Vm& vm, bool collect) {
  if (o.memprofile.empty()) return true;
  if (collect) vm.collect();  // in use: what a last full cycle found live
  std::string err;
  if (!runtime::writeMemProfile(o.memprofile, &err)) {
    printTo(stderr, "spindle: --memprofile: {}\n", err);
    return false;
  }
  return true;
}

int profCommand(int argc, char** argv) {
  if (argc != 3 || (std::string_view(argv[1]) != "top" && std::string_view(argv[1]) != "svg")) {
    printTo(stderr,
            "usage: spindle prof top FILE   (the functions by flat value, as pprof -top)\n"
            "       spindle prof svg FILE   (a flame graph, SVG on stdout)\n");
    return kExitUsage;
  }
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) {
    printTo(stderr, "spindle: cannot read {}: {}\n", argv[2], std::strerror(errno));
    return kExitNoInput;
  }
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  runtime::ProfileData p;
  std::string err;
  if (!runtime::parseProfile(bytes, &p, &err)) {
    printTo(stderr, "spindle: {}: {}\n", argv[2], err);
    return 65;
  }
  if (std::string_view(argv[1]) == "top") {
    printTo(stdout, "{}", runtime::profileTop(p));
  } else {
    const auto& t = p.sampleTypes[static_cast<std::size_t>(p.defaultIndex)];
    printTo(stdout, "{}", runtime::profileFlameSVG(p, fmt::format("{} ({}, {})", argv[2], t.type, t.unit)));
  }
  return 0;
}

void printGCSummary(std::FILE* out, std::uint64_t allocBytes) {
  const runtime::GCStats gs = runtime::gcStats();
  const runtime::GCSummary s = runtime::gcSummary(gs, allocBytes, runtime::processUptimeNs());
  printTo(out,
          "stats: pauses {}: p50 {:.3f} ms, p99 {:.3f} ms, max {:.3f} ms; assist {:.3f} ms; "
          "allocation rate {:.1f} MB/s\n",
          s.pauses, static_cast<double>(s.p50Ns) / 1e6, static_cast<double>(s.p99Ns) / 1e6,
          static_cast<double>(s.maxNs) / 1e6, static_cast<double>(s.assistNs) / 1e6,
          s.allocBytesPerSec / (1 << 20));
  const std::string hist = runtime::pauseHistogram(gs);
  if (!hist.empty()) printTo(out, "stats: pause histogram\n{}", hist);
}

}  // namespace spindle::cli
