// pause_shapes: stop-the-world pauses and memory of five program shapes that stress the
// collector's promises (no pause above 1 ms, no runtime memory kept forever), Spindle next
// to the same program in Go 1.19. Run with `bazel run -c opt //benchmarks:pause_shapes`.
//
// Shapes (benchmarks/pause_shapes/*.lox, benchmarks/go/pauseshapes/main.go):
//   strings        500000 distinct strings made at run time, kept, dropped
//   print_list     printing a 1M-element list while another fiber allocates
//   big_alloc      four 64 MiB allocations while another fiber allocates
//   parked_fibers  10000 fibers parked after recursing 1000 deep, then released
//   host_calls     1M spindle::Vm::call of a tiny Lox function from C++, results kept
//                  (Go: 1M calls through an interface)
//
// Every measurement is a child process of its own, both languages the same way:
//   - Spindle: the `spindle` CLI (a data dependency) runs report.lox joined with the
//     shape's file (`-e`) under `--gctrace --procs 2`; host_calls re-executes this binary
//     with `--host-calls ROOT`, a host of vm/spindle.h with Options::gctrace. Go: the program
//     is built once into a temporary directory and run with GODEBUG=gctrace=1,
//     GOMAXPROCS=2. Without a `go` on PATH the Go columns say so.
//   - Pauses: both runtimes print `gc N @T s P%: A+B+C ms clock, ...` on stderr (sent to
//     a temporary file, read after the child exits); A and C are the two STW pauses of a
//     cycle. Max and p99 are over all pauses of the run, the forced cycles included.
//   - Peak RSS: ru_maxrss of the child from wait4.
//   - Memory: the program reports `[@live, N]` (its data alive) and `[@drop, N]` (after
//     dropping it) on stdout, each after a full collection, then waits for a byte on
//     stdin; in between the harness samples the child's RSS from /proc/PID/statm. N is
//     Spindle's heapInUse (bytes in heap spans, fiber stacks included) and Go's
//     HeapInuse + StackInuse. All other stdout is drained and discarded (print_list's
//     list goes there), so a child never blocks on a full pipe.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "benchmarks/gc_bench_util.h"
#include "vm/spindle.h"

namespace {

constexpr int kProcs = 2;
constexpr int kHostCalls = 1000000;
constexpr const char* kShapes[] = {"strings", "print_list", "big_alloc", "parked_fibers", "host_calls"};

// What one child run measured.
struct Measured {
  bool ok = false;
  std::string error;  // why not ok: the exit status and the first lines of stderr
  gcbench::PauseSummary pauses;
  double peakRssMiB = 0, seconds = 0;
  double liveMiB = -1, dropMiB = -1;        // heap in use as the program reported it
  double liveRssMiB = -1, dropRssMiB = -1;  // RSS sampled at those two points
};

bool isFile(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double rssMiB(pid_t pid) {
  std::ifstream statm(fmt::format("/proc/{}/statm", pid));
  long size = 0, resident = 0;
  if (!(statm >> size >> resident)) return -1;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

// A report line `[@live, N]` or `[@drop, N]` (N as Lox prints numbers, or an integer).
void parseReport(const std::string& line, pid_t pid, Measured& m) {
  char tag[16] = {};
  double bytes = 0;
  if (std::sscanf(line.c_str(), "[@%15[a-z], %lf]", tag, &bytes) != 2) return;
  const double rss = rssMiB(pid);
  if (std::strcmp(tag, "live") == 0) {
    m.liveMiB = bytes / (1 << 20);
    m.liveRssMiB = rss;
  } else if (std::strcmp(tag, "drop") == 0) {
    m.dropMiB = bytes / (1 << 20);
    m.dropRssMiB = rss;
  }
}

// The two STW pauses (A and C) of each gctrace line; other lines are kept for errors.
void parseTrace(const std::string& text, std::vector<double>& pausesNs, std::string& other) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    double a = 0, b = 0, c = 0;
    if (std::sscanf(line.c_str(), "gc %*u @%*fs %*u%%: %lf+%lf+%lf ms clock", &a, &b, &c) == 3) {
      pausesNs.push_back(a * 1e6);
      pausesNs.push_back(c * 1e6);
    } else if (other.size() < 600) {
      other += line + "\n";
    }
  }
}

// Runs argv with extra environment entries; see the file comment for the protocol.
Measured runChild(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  Measured m;
  int out[2], in[2];
  char errPath[] = "/tmp/pause_shapes_stderr.XXXXXX";
  const int errFd = mkstemp(errPath);
  if (errFd < 0 || pipe(out) != 0 || pipe(in) != 0) {
    m.error = fmt::format("pipe/mkstemp: {}", std::strerror(errno));
    return m;
  }
  unlink(errPath);
  std::fflush(stdout);
  const auto start = gcbench::Clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(errFd, 2);
    close(in[0]), close(in[1]), close(out[0]), close(out[1]), close(errFd);
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  // Drain stdout; only the start of each line matters (a report line is short).
  std::string line;
  bool longLine = false;
  char buf[1 << 16];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] != '\n') {
        if (line.size() < 64) line += buf[i];
        else longLine = true;
        continue;
      }
      if (!longLine) {
        parseReport(line, pid, m);
        if (line.rfind("[@", 0) == 0 && write(in[1], "\n", 1) != 1) m.error = "stdin of the child closed";
      }
      line.clear();
      longLine = false;
    }
  }
  close(out[0]);
  close(in[1]);
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  m.seconds = std::chrono::duration<double>(gcbench::Clock::now() - start).count();
  m.peakRssMiB = usage.ru_maxrss / 1024.0;
  std::string trace(static_cast<std::size_t>(lseek(errFd, 0, SEEK_END)), '\0');
  if (pread(errFd, trace.data(), trace.size(), 0) != static_cast<ssize_t>(trace.size())) trace.clear();
  close(errFd);
  std::vector<double> pausesNs;
  std::string other;
  parseTrace(trace, pausesNs, other);
  m.pauses = gcbench::summarize(std::move(pausesNs));
  m.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && m.liveMiB >= 0 && m.dropMiB >= 0;
  if (!m.ok)
    m.error += fmt::format("{} ({}): {}", argv[0],
                           WIFEXITED(status) ? fmt::format("exit {}", WEXITSTATUS(status))
                                             : fmt::format("signal {}", WTERMSIG(status)),
                           other.empty() ? "no report lines\n" : other);
  return m;
}

// --- Spindle's host_calls: this binary, re-executed with --host-calls ------------------
int hostCalls(const std::string& root) {
  spindle::Options options;
  options.procs = kProcs;
  options.gctrace = true;
  spindle::Vm vm(options);
  const std::string source =
      readFile(root + "/benchmarks/pause_shapes/report.lox") + readFile(root + "/benchmarks/pause_shapes/host_calls.lox");
  auto check = [](const spindle::Result& r) {
    if (!r.ok()) {
      std::fputs(r.error().format().c_str(), stderr);
      std::exit(70);
    }
  };
  check(vm.run(source));
  const spindle::Value make = *vm.global("make");
  std::vector<spindle::Value> keep;
  keep.reserve(kHostCalls);
  for (int i = 0; i < kHostCalls; i++) {
    spindle::Result r = vm.call(make, {spindle::Value::number(i)});
    check(r);
    keep.push_back(r.value());
  }
  check(vm.run("report(\"live\");"));
  keep.clear();
  keep.shrink_to_fit();
  check(vm.run("report(\"drop\");"));
  return 0;
}

// --- the table -------------------------------------------------------------------------
std::string cell(const Measured& m, bool haveGo, int width) {
  if (!haveGo) return fmt::format("{:^{}}", "(no go toolchain)", width);
  if (!m.ok) return fmt::format("{:^{}}", "(failed, see above)", width);
  return fmt::format("{:>7.3f} {:>7.3f} {:>6} {:>7.1f} {:>7.1f}/{:<7.1f}", m.pauses.maxMs, m.pauses.p99Ms,
                     m.pauses.count, m.peakRssMiB, m.dropMiB, m.liveMiB);
}

std::string rssCell(const Measured& m) {
  if (!m.ok) return fmt::format("{:>17}", "-");
  return fmt::format("{:>7.1f}/{:<9.1f}", m.dropRssMiB, m.liveRssMiB);
}

}  // namespace

int main(int argc, char** argv) {
  // The runfiles tree (cwd under `bazel run`, else next to the binary) holds the CLI, the
  // Lox programs and the Go sources.
  std::string root = ".";
  if (!isFile(root + "/benchmarks/pause_shapes/report.lox")) root = std::string(argv[0]) + ".runfiles/spindle";
  if (!isFile(root + "/benchmarks/pause_shapes/report.lox")) {
    fmt::print(stderr, "pause_shapes: no runfiles (run with `bazel run -c opt //benchmarks:pause_shapes`)\n");
    return 1;
  }
  if (argc > 2 && std::strcmp(argv[1], "--host-calls") == 0) return hostCalls(argv[2]);

  const std::string spindleBin = root + "/vm/cli/spindle";
  if (!isFile(spindleBin)) {
    fmt::print(stderr, "pause_shapes: {} not found (run with `bazel run -c opt //benchmarks:pause_shapes`)\n",
               spindleBin);
    return 1;
  }
  char dir[] = "/tmp/pause_shapes.XXXXXX";
  const bool haveGo = std::system("command -v go >/dev/null 2>&1") == 0 && mkdtemp(dir) != nullptr;
  const std::string goBin = std::string(dir) + "/pauseshapes";
  bool goBuilt = false;
  if (haveGo) {
    const std::string build = fmt::format(
        "cd '{}/benchmarks/go' && GOFLAGS='-mod=mod -buildvcs=false' GOPROXY=off GO111MODULE=on "
        "GOCACHE=${{GOCACHE:-/tmp/spindle-gocache}} go build -o '{}' ./pauseshapes",
        root, goBin);
    goBuilt = std::system(build.c_str()) == 0;
    if (!goBuilt) fmt::print(stderr, "pause_shapes: go build failed; the Go columns are skipped\n");
  } else {
    fmt::print("pause_shapes: no `go` on PATH (tools/setup bench installs golang-go); Go columns skipped\n");
  }

  std::vector<std::pair<Measured, Measured>> results;
  for (const char* shape : kShapes) {
    fmt::print("running {} ...\n", shape);
    Measured s;
    if (std::strcmp(shape, "host_calls") == 0) {
      s = runChild({"/proc/self/exe", "--host-calls", root}, {});
    } else {
      const std::string code = readFile(root + "/benchmarks/pause_shapes/report.lox") +
                               readFile(fmt::format("{}/benchmarks/pause_shapes/{}.lox", root, shape));
      s = runChild({spindleBin, "--gctrace", "--procs", std::to_string(kProcs), "-e", code}, {});
    }
    Measured g;
    if (goBuilt)
      g = runChild({goBin, shape}, {"GODEBUG=gctrace=1", fmt::format("GOMAXPROCS={}", kProcs)});
    if (!s.ok) fmt::print("  Spindle {}: {}", shape, s.error);
    if (goBuilt && !g.ok) fmt::print("  Go {}: {}", shape, g.error);
    fmt::print("  Spindle {:.2f} s{}\n", s.seconds, goBuilt ? fmt::format(", Go {:.2f} s", g.seconds) : "");
    results.emplace_back(std::move(s), std::move(g));
  }
  if (haveGo && std::system(fmt::format("rm -rf '{}'", dir).c_str()) != 0)
    fmt::print(stderr, "pause_shapes: could not remove {}\n", dir);

  constexpr int kWidth = 47;
  fmt::print("\nSTW pauses (ms), pause count, peak RSS (MiB), heap in use after drop / live (MiB); {} Ps\n", kProcs);
  fmt::print("{:<14}| {:^{}} | {:^{}}\n", "", "Spindle", kWidth, "Go 1.19", kWidth);
  const std::string head = fmt::format("{:>7} {:>7} {:>6} {:>7} {:>15}", "max", "p99", "n", "peakRSS", "drop/live");
  fmt::print("{:<14}| {:<{}} | {:<{}}\n", "shape", head, kWidth, head, kWidth);
  for (std::size_t i = 0; i < results.size(); i++)
    fmt::print("{:<14}| {:<{}} | {:<{}}\n", kShapes[i], cell(results[i].first, true, kWidth), kWidth,
               cell(results[i].second, goBuilt, kWidth), kWidth);
  fmt::print("\nRSS (MiB) after drop / live, sampled at the two reports\n");
  fmt::print("{:<14}| {:<17} | {:<17}\n", "shape", "Spindle", "Go 1.19");
  for (std::size_t i = 0; i < results.size(); i++)
    fmt::print("{:<14}| {} | {}\n", kShapes[i], rssCell(results[i].first),
               goBuilt ? rssCell(results[i].second) : std::string("-"));
  fmt::print("\np99 is the largest pause when a run has fewer than 100.\n");
  if (goBuilt)
    fmt::print("Go's host_calls: 1M calls through an interface (Go has no embedding boundary); its strings: a "
             "map[string]struct{{}} (Go does not intern).\n");
  int rc = 0;
  for (const auto& [s, g] : results) rc |= s.ok ? 0 : 1;
  return rc;
}
