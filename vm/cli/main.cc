// spindle: the command-line host of the Spindle VM.
//
// A thin host of the embedding API (vm/spindle.h): it parses flags, then runs a file,
// a -e string or a REPL (libedit: line editing and history) through spindle::Vm.
// `spindle stress FILE --seeds A..B` runs FILE once per seed in a child process (this
// binary, with the other options and --sched-seed K) and stops at the first seed whose
// run fails: a non-zero exit, death by a signal (a fatal error aborts), or output (stdout)
// different from the first seed's. It prints that seed and the command that replays it,
// and exits 1; 0 when every seed passed.
// Exit codes follow sysexits(3) and clox:
//   0 ok, 64 usage error, 65 compile error, 66 missing or unreadable input,
//   70 runtime error, 74 output error (stdout could not be written).
//
// Output never throws (runtime::printTo): a closed or full stderr loses the messages but
// keeps the exit code. Standard descriptors closed at start are opened on /dev/null
// (read-only), so no file the program opens takes their place. stdout is checked at exit.
#include <editline/readline.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/gcevents.h"
#include "runtime/print.h"
#include "runtime/throw.h"
#include "vm/cli/repl.h"
#include "vm/cli/trace_cmd.h"
#include "vm/cli/prof_cli.h"
#include "vm/cli/fast_exit.h"
#include "vm/spindle.h"

namespace {

constexpr std::string_view kVersion = "0.1.0";

constexpr int kExitUsage = 64;
constexpr int kExitCompile = 65;
constexpr int kExitNoInput = 66;
constexpr int kExitRuntime = 70;
constexpr int kExitIo = 74;

using spindle::runtime::printTo;

void printReference(std::FILE* out);

void printUsage(std::FILE* out) {
  printTo(out,
             "usage: spindle [options] [FILE [ARGS...]]\n"
             "       spindle [options] run FILE [ARGS...]\n"
             "       spindle [options] -e CODE\n"
             "       spindle [options] stress FILE --seeds A..B [ARGS...]\n"
             "       spindle trace view FILE [-o OUT.html]\n"
             "       spindle prof top|svg PROFILE\n"
             "\n"
             "Runs a Spindle (Lox) script. With no FILE and no -e, opens a REPL.\n"
             "'stress' runs FILE once per seed A..B (each with --sched-seed) and reports the\n"
             "first seed whose run fails or prints other output than the first seed's;\n"
             "--timeout S (default 60, 0 for none) stops a run that takes longer with SIGQUIT,\n"
             "which prints every fiber and the collector's state, and counts it as failed.\n"
             "\n"
             "options:\n"
             "  -e CODE            run CODE instead of a file\n"
             "  --disasm           print the bytecode listing instead of running\n"
             "  --procs N          worker Ps (default: one per core)\n"
             "  --sched-seed N     a reproducible schedule: the run is a function of the\n"
             "                     program, its input and N (0: off; docs/STRESS.md)\n"
             "  --gc-percent N     collector pacing: next goal = live * (1 + N/100)\n"
             "  --gctrace          print one line per GC cycle\n"
             "  --stats            print allocation statistics at exit (on stderr)\n"
             "  --gcstress N       run a complete GC cycle every N allocations (of each P),\n"
             "                     blocking the allocating fiber until it is done\n"
             "  --gcstress-continuous N\n"
             "                     request a GC cycle every N allocations without waiting:\n"
             "                     cycles run back to back, overlapping the fibers\n"
             "  --gccheckmark      verify each mark phase with a stop-the-world re-mark\n"
             "  --clobberfree      poison freed memory; a write after free is fatal on reuse\n"
             "  --gcstoptheworld   mark with the world stopped (one pause per cycle)\n"
             "  --gcverify         verify the heap before and after every GC cycle\n"
             "  --gclog FILE       write one JSON line per GC cycle to FILE (the event log)\n"
             "  --trace FILE       write an execution trace to FILE (Chrome trace-event JSON,\n"
             "                     for Perfetto or chrome://tracing; FILE.html: a timeline page;\n"
             "                     'spindle trace view FILE' turns the JSON into that page)\n"
             "  --cpuprofile FILE  write a CPU profile (pprof format, 100 Hz) to FILE\n"
             "  --memprofile FILE  write an allocation profile (pprof format, a sample every\n"
             "                     512 KiB on average, and what is in use at exit) to FILE\n"
             "  --ffi-check        reject unpinned heap pointers passed to foreign code\n"
             "  --no-ffi-check     turn that check off (it is on in debug builds)\n"
             "  --max-threads N    most OS threads (default 10000): a foreign call past it\n"
             "                     fails with a runtime error\n"
             "  --help             print this help and exit\n"
             "  --version          print the version and exit\n"
             "\n"
             "Fibers (spawn) run in parallel on --procs Ps. --gc-percent sets the collector's\n"
             "pacing; the other --gc* flags and --clobberfree are passed to the collector\n"
             "(process-wide). docs/STRESS.md: stress testing the collector.\n");
  if (out == stdout) printReference(out);
}

// --help's short reference of the language's keywords and built-in globals (kept in sync
// with docs/LANGUAGE.md and README.md's usage section).
void printReference(std::FILE* out) {
  printTo(out, "{}",
          "\n"
          "keywords:\n"
          "  and class else false for fun if nil or print return super this true var while\n"
          "  spawn select case default try catch finally throw import\n"
          "  (`as` after an import's path, `in` after `for (var x` are ordinary names)\n"
          "\n"
          "files, input, process:\n"
          "  readFile(path)         the file's bytes as a string\n"
          "  writeFile(path, s)     replace the file's contents with s\n"
          "  appendFile(path, s)    add s at the end of the file\n"
          "  readLine()             the next line of stdin without its newline; nil at end\n"
          "  eprint(v)              print v on stderr\n"
          "  exit(code)             flush output, end the program with code (0-255)\n"
          "  env(name)              the environment variable's value, or nil\n"
          "  args                   the script's arguments (a list of strings)\n"
          "modules:\n"
          "  import \"lib/util.lox\" as util;   runs once; util.name reads its top level\n"
          "fibers and channels:\n"
          "  spawn f(x);  var fib = spawn f(x);  fib.join()  fib.done()\n"
          "  Channel(n)  ch.send(v)  ch.recv()  ch.close()  ch.len()  ch.cap()\n"
          "  select { case var v = ch.recv(): ... default: ... }  after(seconds)\n"
          "  sleep(seconds)  yield()  procs()\n"
          "values and text:\n"
          "  str(v)  num(s)  chr(n)  format(fmt, ...)  s.len() s.sub() s.find() s.split()\n"
          "  s.replace() s.trim() s.upper() s.lower() s.startsWith() s.endsWith() s.repeat()\n"
          "  [a, b]  list.push() list.pop() list.len() list.join()   Map()  {k: v}\n"
          "  m.has(k) m.remove(k) m.keys() m.values() m.clear()   for (var x in seq) ...\n"
          "  math.floor ... math.random()  clock()\n"
          "errors:\n"
          "  try { ... } catch (e) { e.message e.trace } finally { ... }  throw v;  Error(msg)\n"
          "collector and foreign code:\n"
          "  gc() gcstats() gccensus() gcpath(v) gcevents() setGCPercent(n) setMemoryLimit(n)\n"
          "  FFI.fn(name, ret, [args])  Bytes(n)  Pinner()\n"
          "\n"
          "docs/LANGUAGE.md describes every name.\n");
}

struct CliOptions {
  spindle::Options vm;
  std::string file;
  bool haveFile = false;  // a FILE argument was given (an empty one too: it cannot be read)
  std::string code;
  bool haveCode = false;
  bool disasm = false;
  std::string gclog;  // --gclog FILE; empty: none
  std::string trace;  // --trace FILE; empty: none
  std::vector<std::string> scriptArgs;
  // spindle stress: the seeds to run, and the options to pass on to each run.
  bool stress = false;
  std::uint64_t seedFirst = 0, seedLast = 0;
  int stressTimeout = 60;  // --timeout S: seconds one run may take (0: no limit)
  std::vector<std::string> passOn;
  spindle::cli::ProfOptions prof;  // --cpuprofile, --memprofile
};

// Parses all of s as an unsigned 64-bit integer.
bool parseU64(std::string_view s, std::uint64_t& out) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return false;
  out = v;
  return true;
}

// Parses all of s as an integer in [min, max].
bool parseInt(std::string_view s, int min, int max, int& out) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max) return false;
  out = v;
  return true;
}

// Returns -1 to continue, or an exit code.
// spindle stress: --timeout S, the seconds one run may take (0: no limit).
int parseStressTimeout(int argc, char** argv, int& i, CliOptions& opts) {
  if (i + 1 >= argc || !parseInt(argv[i + 1], 0, 86400, opts.stressTimeout)) {
    printTo(stderr, "spindle: --timeout needs seconds in [0, 86400], got '{}'\n",
            i + 1 < argc ? argv[i + 1] : "");
    return kExitUsage;
  }
  ++i;
  return -1;
}

// Returns -1 to continue, or an exit code.
// spindle stress: --seeds A..B (1 <= A <= B).
int parseSeeds(int argc, char** argv, int& i, CliOptions& opts) {
  if (i + 1 >= argc) {
    printTo(stderr, "spindle: --seeds needs a range A..B\n");
    return kExitUsage;
  }
  std::string_view v = argv[++i];
  const std::size_t dots = v.find("..");
  if (dots == std::string_view::npos || !parseU64(v.substr(0, dots), opts.seedFirst) ||
      !parseU64(v.substr(dots + 2), opts.seedLast) || opts.seedFirst == 0 ||
      opts.seedLast < opts.seedFirst) {
    printTo(stderr, "spindle: --seeds needs a range A..B with 1 <= A <= B, got '{}'\n", v);
    return kExitUsage;
  }
  return -1;
}

int parseArgs(int argc, char** argv, CliOptions& opts) {
  int i = 1;
  bool runCommand = false;
  for (; i < argc; ++i) {
    std::string_view arg = argv[i];
    const int optStart = i;
    // Stress mode passes every option but --seeds on to its runs.
    auto pass = [&] {
      for (int k = optStart; k <= i; ++k) opts.passOn.emplace_back(argv[k]);
    };
    if (arg == "stress" && !runCommand && !opts.stress && !opts.haveCode) {
      opts.stress = true;
      continue;
    }
    if (arg == "--seeds" && opts.stress) {
      if (int rc = parseSeeds(argc, argv, i, opts); rc >= 0) return rc;
      continue;
    }
    if (arg == "--timeout" && opts.stress) {
      if (int rc = parseStressTimeout(argc, argv, i, opts); rc >= 0) return rc;
      continue;
    }
    if (arg == "--sched-seed") {
      if (i + 1 >= argc || !parseU64(argv[i + 1], opts.vm.sched_seed)) {
        printTo(stderr, "spindle: --sched-seed needs an unsigned integer, got '{}'\n",
                i + 1 < argc ? argv[i + 1] : "");
        return kExitUsage;
      }
      ++i;
      continue;
    }
    if (arg == "run" && !runCommand && !opts.haveCode && !opts.stress) {
      runCommand = true;
      if (i + 1 >= argc) {
        printTo(stderr, "spindle: 'run' needs a FILE\n");
        printUsage(stderr);
        return kExitUsage;
      }
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      printUsage(stdout);
      return 0;
    }
    if (arg == "--version") {
      printTo(stdout, "spindle {}\n", kVersion);
      return 0;
    }
    if (arg == "-e") {
      if (i + 1 >= argc) {
        printTo(stderr, "spindle: -e needs an argument\n");
        return kExitUsage;
      }
      if (opts.haveCode) {
        printTo(stderr, "spindle: -e given twice (one program per run)\n");
        return kExitUsage;
      }
      opts.code = argv[++i];
      opts.haveCode = true;
      pass();
      continue;
    }
    // Flags that turn one option on.
    const std::pair<std::string_view, bool*> switches[] = {
        {"--disasm", &opts.disasm},           {"--gctrace", &opts.vm.gctrace},
        {"--stats", &opts.vm.stats},          {"--gccheckmark", &opts.vm.gccheckmark},
        {"--clobberfree", &opts.vm.clobberfree}, {"--gcstoptheworld", &opts.vm.gcstoptheworld},
        {"--gcverify", &opts.vm.gcverify},
    };
    if (auto it = std::find_if(std::begin(switches), std::end(switches),
                               [&](const auto& sw) { return arg == sw.first; });
        it != std::end(switches)) {
      *it->second = true;
      pass();
      continue;
    }
    if (arg == "--gclog") {
      if (i + 1 >= argc || argv[i + 1][0] == '\0') {
        printTo(stderr, "spindle: --gclog needs a FILE\n");
        return kExitUsage;
      }
      opts.gclog = argv[++i];
      pass();  // stress: each run rewrites FILE, so it keeps the failing seed's log
      continue;
    }
    if (arg == "--trace") {
      if (i + 1 >= argc || argv[i + 1][0] == '\0') {
        printTo(stderr, "spindle: --trace needs a FILE\n");
        return kExitUsage;
      }
      opts.trace = argv[++i];
      continue;
    }
    if (arg == "--cpuprofile" || arg == "--memprofile") {
      if (i + 1 >= argc || argv[i + 1][0] == '\0') {
        printTo(stderr, "spindle: {} needs a FILE\n", arg);
        return kExitUsage;
      }
      (arg == "--cpuprofile" ? opts.prof.cpuprofile : opts.prof.memprofile) = argv[++i];
      continue;
    }
    if (arg == "--ffi-check" || arg == "--no-ffi-check") {
      opts.vm.ffi_check = arg == "--ffi-check";
      pass();
      continue;
    }
    if (arg == "--procs" || arg == "--gc-percent" || arg == "--gcstress" ||
        arg == "--gcstress-continuous") {
      if (i + 1 >= argc) {
        printTo(stderr, "spindle: {} needs a number\n", arg);
        return kExitUsage;
      }
      std::string_view value = argv[++i];
      // gc-percent may be -1 (off, as Go's GOGC=off); procs needs at least 1.
      int* target = arg == "--procs"        ? &opts.vm.procs
                    : arg == "--gc-percent" ? &opts.vm.gc_percent
                    : arg == "--gcstress"   ? &opts.vm.gcstress
                                            : &opts.vm.gcstress_continuous;
      const int min = arg == "--procs" ? 1 : arg == "--gc-percent" ? -1 : 0;
      const int max = arg == "--procs" ? spindle::kMaxProcs : std::numeric_limits<int>::max();
      if (!parseInt(value, min, max, *target)) {
        printTo(stderr, "spindle: {} needs an integer in [{}, {}], got '{}'\n", arg, min, max,
                   value);
        return kExitUsage;
      }
      pass();
      continue;
    }
    if (arg == "--max-threads") {
      const std::string_view value = i + 1 < argc ? std::string_view(argv[++i]) : std::string_view();
      if (!parseInt(value, 1, std::numeric_limits<int>::max(), opts.vm.max_threads)) {
        printTo(stderr, "spindle: --max-threads needs an integer in [1, {}], got '{}'\n",
                std::numeric_limits<int>::max(), value);
        return kExitUsage;
      }
      pass();
      continue;
    }
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg.size() > 1 && arg[0] == '-') {
      printTo(stderr, "spindle: unknown option '{}'\n", arg);
      printUsage(stderr);
      return kExitUsage;
    }
    break;
  }
  if (!opts.haveCode && i < argc) {
    opts.file = argv[i++];
    opts.haveFile = true;
  }
  for (; i < argc; ++i) {
    if (opts.stress && std::string_view(argv[i]) == "--seeds") {
      if (int rc = parseSeeds(argc, argv, i, opts); rc >= 0) return rc;
      continue;
    }
    if (opts.stress && std::string_view(argv[i]) == "--timeout") {
      if (int rc = parseStressTimeout(argc, argv, i, opts); rc >= 0) return rc;
      continue;
    }
    opts.scriptArgs.emplace_back(argv[i]);
  }
  if (opts.stress) {
    const char* why = opts.haveCode             ? "takes a FILE, not -e"
                      : !opts.haveFile           ? "needs a FILE"
                      : opts.seedFirst == 0      ? "needs --seeds A..B"
                      : opts.vm.sched_seed != 0  ? "sets --sched-seed itself"
                                                 : nullptr;
    if (why != nullptr) {
      printTo(stderr, "spindle: 'stress' {}\n", why);
      return kExitUsage;
    }
  }
  return -1;
}

// --- spindle stress ------------------------------------------------------------------

struct ChildRun {
  int status = 0;  // as waitpid's; -1: could not be run
  std::string out, err;
  bool hung = false;  // ran past the time limit and was stopped with SIGQUIT
};

// Runs this binary with args (argv[0] included), collecting its stdout and stderr. After
// limitSeconds (0: none) it sends SIGQUIT, so the run prints its Gs and the collector's
// state and exits; SIGKILL 10 s later if it still has not.
ChildRun runChild(const std::vector<std::string>& args, int limitSeconds) {
  ChildRun r;
  int outPipe[2], errPipe[2];
  if (pipe(outPipe) != 0) {
    r.status = -1;
    return r;
  }
  if (pipe(errPipe) != 0) {
    close(outPipe[0]);
    close(outPipe[1]);
    r.status = -1;
    return r;
  }
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(outPipe[1], 1);
    dup2(errPipe[1], 2);
    close(outPipe[0]);
    close(outPipe[1]);
    close(errPipe[0]);
    close(errPipe[1]);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(outPipe[1]);
  close(errPipe[1]);
  pollfd fds[2] = {{outPipe[0], POLLIN, 0}, {errPipe[0], POLLIN, 0}};
  std::string* into[2] = {&r.out, &r.err};
  int open = 2;
  char buf[4096];
  const auto start = std::chrono::steady_clock::now();
  int signalsSent = 0;  // SIGQUIT, then SIGKILL
  while (open > 0) {
    int waitMs = -1;
    if (limitSeconds > 0 && pid > 0 && signalsSent < 2) {
      const auto due = start + std::chrono::seconds(limitSeconds + 10 * signalsSent);
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          due - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        kill(pid, signalsSent == 0 ? SIGQUIT : SIGKILL);
        r.hung = true;
        ++signalsSent;
        continue;
      }
      waitMs = static_cast<int>(std::min<std::int64_t>(left.count(), 1000));
    }
    const int ready = poll(fds, 2, waitMs);
    if (ready == 0) continue;
    if (ready < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int k = 0; k < 2; ++k) {
      if (fds[k].fd < 0 || fds[k].revents == 0) continue;
      const ssize_t n = read(fds[k].fd, buf, sizeof buf);
      if (n > 0) {
        into[k]->append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[k].fd);
        fds[k].fd = -1;
        --open;
      }
    }
  }
  for (pollfd& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  if (pid < 0 || waitpid(pid, &r.status, 0) < 0) r.status = -1;
  return r;
}

// A command line as a shell reads it: a word with anything but [A-Za-z0-9_./=:,+-] in it
// is single-quoted.
std::string shellQuote(const std::vector<std::string>& words) {
  std::string line;
  for (const std::string& w : words) {
    if (!line.empty()) line += ' ';
    const bool plain =
        !w.empty() && w.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                          "0123456789_./=:,+-") == std::string::npos;
    if (plain) {
      line += w;
      continue;
    }
    line += '\'';
    for (char c : w) line += c == '\'' ? std::string("'\\''") : std::string(1, c);
    line += '\'';
  }
  return line;
}

// The line of s that holds offset at.
std::string lineAt(const std::string& s, std::size_t at) {
  const std::size_t nl = at == 0 ? std::string::npos : s.rfind('\n', at - 1);
  const std::size_t begin = nl == std::string::npos ? 0 : nl + 1;
  const std::size_t end = s.find('\n', begin);
  return s.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

// Why a run failed ("" if it did not): how it ended, or where its output leaves the
// first run's (first: null for the first run itself).
std::string stressFailure(const ChildRun& r, const std::string* first, int limitSeconds) {
  if (r.status == -1) return "could not be started";
  if (r.hung) return fmt::format("did not end within {} s (--timeout); stopped with SIGQUIT", limitSeconds);
  if (WIFSIGNALED(r.status))
    return fmt::format("died of signal {} ({})", WTERMSIG(r.status), strsignal(WTERMSIG(r.status)));
  if (WEXITSTATUS(r.status) != 0) return fmt::format("exited with status {}", WEXITSTATUS(r.status));
  if (first == nullptr || r.out == *first) return "";
  std::size_t line = 1, at = 0;
  for (; at < r.out.size() && at < first->size() && r.out[at] == (*first)[at]; ++at) {
    if (r.out[at] == '\n') ++line;
  }
  return fmt::format("printed other output than the first seed's: line {} is '{}', was '{}'", line,
                     lineAt(r.out, at), lineAt(*first, at));
}

int stress(const CliOptions& opts, const char* argv0) {
  std::string first;
  for (std::uint64_t seed = opts.seedFirst;; ++seed) {
    std::vector<std::string> args{argv0};
    args.insert(args.end(), opts.passOn.begin(), opts.passOn.end());
    args.insert(args.end(), {"--sched-seed", std::to_string(seed), opts.file});
    args.insert(args.end(), opts.scriptArgs.begin(), opts.scriptArgs.end());
    const ChildRun r = runChild(args, opts.stressTimeout);
    const std::string why =
        stressFailure(r, seed == opts.seedFirst ? nullptr : &first, opts.stressTimeout);
    if (!why.empty()) {
      printTo(stdout, "spindle stress: seed {} failed: the run {}\n", seed, why);
      if (!r.err.empty()) printTo(stdout, "its stderr:\n{}{}", r.err, r.err.back() == '\n' ? "" : "\n");
      printTo(stdout, "replay: {}\n", shellQuote(args));
      return 1;
    }
    if (seed == opts.seedFirst) first = r.out;
    if (seed == opts.seedLast) break;
  }
  printTo(stdout, "spindle stress: seeds {}..{} passed (exit status 0, the same output)\n",
          opts.seedFirst, opts.seedLast);
  return 0;
}


int exitCodeFor(const spindle::Result& r) {
  if (r.ok()) return 0;
  printTo(stderr, "{}{}", r.error().kind == spindle::Error::Kind::Io ? "spindle: " : "",
          r.error().format());
  switch (r.error().kind) {
    case spindle::Error::Kind::Compile: return kExitCompile;
    case spindle::Error::Kind::Io: return kExitNoInput;
    case spindle::Error::Kind::Runtime: return kExitRuntime;
  }
  return kExitRuntime;
}

void printStats(const spindle::Vm& vm) {
  spindle::Stats s = vm.stats();
  printTo(stderr,
             "stats: {} objects, {} bytes allocated; heap {} bytes in use, {} bytes mapped; {} GC "
             "cycles, max pause {:.3f} ms, total pause {:.3f} ms\n",
             s.objects, s.bytes, s.heap_in_use, s.heap_sys, s.gc_cycles, s.gc_max_pause_ns / 1e6,
             s.gc_total_pause_ns / 1e6);
  for (const auto& [kind, n] : s.by_kind) printTo(stderr, "stats:   {:<14} {}\n", kind, n);
  spindle::cli::printGCSummary(stderr, s.bytes);
}

// Opens any of stdin, stdout and stderr that is closed on /dev/null, read-only: reads see
// end of input and writes fail as on the closed descriptor (stdout's are reported at
// exit), and no file the program opens later takes the descriptor's place.
void openStandardFds() {
  for (int fd = 0; fd <= 2; ++fd) {
    // open() takes the lowest free descriptor: fd, as those below it are open.
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) open("/dev/null", O_RDONLY);
  }
}

// Flushes stdout and reports a failed write (a full disk, /dev/full, a closed stdout): the
// script's output was lost, so an otherwise clean exit becomes kExitIo.
int checkStdout(int rc) {
  if (std::fflush(stdout) == 0 && std::ferror(stdout) == 0) return rc;
  const int err = errno;
  printTo(stderr, "spindle: error writing output: {}\n", std::strerror(err));
  return rc == 0 ? kExitIo : rc;
}

int runVm(const CliOptions& opts, const std::string& source);

int runMain(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "trace") return spindle::cli::traceCommand(argc, argv);
  // spindle prof top|svg FILE: reads a profile; runs no program.
  if (argc >= 2 && std::string_view(argv[1]) == "prof") return spindle::cli::profCommand(argc - 1, argv + 1);
  CliOptions opts;
  if (int rc = parseArgs(argc, argv, opts); rc >= 0) return rc;
  if (opts.stress) return stress(opts, argv[0]);

  std::string source = opts.code;
  if (opts.haveFile) {
    spindle::Result read = spindle::readFile(opts.file);
    if (!read.ok()) return exitCodeFor(read);
    source = read.value().asString();
  }

  // --gclog: the collector's event log (runtime/gcevents.h), one JSON line per cycle as
  // each cycle's sweep completes, flushed line by line (a later fatal error keeps them).
  std::FILE* gclog = nullptr;
  if (!opts.gclog.empty()) {
    gclog = std::fopen(opts.gclog.c_str(), "w");
    if (gclog == nullptr) {
      printTo(stderr, "spindle: cannot write --gclog file {}: {}\n", opts.gclog, std::strerror(errno));
      return kExitIo;
    }
    spindle::runtime::setGCEventSink(
        [](void* f, const spindle::runtime::GCEvent& e) {
          auto* out = static_cast<std::FILE*>(f);
          printTo(out, "{}\n", spindle::runtime::gcEventJSON(e));
          std::fflush(out);
        },
        gclog);
  }
  // --trace: the execution trace (runtime/trace.h), written when the run ends.
  std::string traceErr;
  if (!opts.trace.empty() && !spindle::startTrace(opts.trace, &traceErr)) {
    printTo(stderr, "spindle: --trace: {}\n", traceErr);
    return kExitIo;
  }
  if (opts.haveFile) opts.prof.source = opts.file;
  if (int prc = spindle::cli::startProfiles(opts.prof); prc >= 0) return prc;
  int rc = runVm(opts, source);
  if (!spindle::cli::finishCPUProfile(opts.prof) && rc == 0) rc = kExitIo;
  if (!opts.trace.empty() && !spindle::stopTrace(&traceErr)) {
    printTo(stderr, "spindle: --trace: {}\n", traceErr);
    if (rc == 0) rc = kExitIo;
  }
  if (gclog != nullptr) {
    spindle::runtime::setGCEventSink(nullptr, nullptr);
    std::fclose(gclog);
  }
  return rc;
}

int runVm(const CliOptions& opts, const std::string& source) {
  const bool replMode = !opts.disasm && !opts.haveCode && !opts.haveFile;
  spindle::Options vmOptions = opts.vm;
  // Imports are relative to the script's directory; exit(code) ends the process.
  if (opts.haveFile) vmOptions.script_path = opts.file;
  vmOptions.on_exit = [](int code) {
    if (std::fflush(stdout) != 0 && code == 0) code = kExitIo;
    std::fflush(stderr);
    std::_Exit(code);
  };
  spindle::Vm vm(replMode ? spindle::cli::replOptions(vmOptions) : vmOptions);  // vm/cli/repl.h
  std::vector<spindle::Value> args;
  for (const std::string& a : opts.scriptArgs) args.push_back(spindle::Value::string(a));
  vm.setGlobal("args", vm.list(args));

  int rc;
  if (opts.disasm) {
    spindle::Result r = vm.disassemble(source);
    if (r.ok()) printTo(stdout, "{}", r.value().asString());
    rc = exitCodeFor(r);
  } else if (!opts.haveCode && !opts.haveFile) {
    rc = spindle::cli::repl(vm, kVersion);
  } else {
    rc = exitCodeFor(vm.run(source));
  }
  // The program ended (as Go's, with main): failures no join() saw, after its own error.
  for (const std::string& line : vm.neverJoined()) printTo(stderr, "{}\n", line);
  // A Pinner dropped with pins is reported by its finalizer (Go's rule); one last cycle
  // finds those the program dropped since the last one, so every leak is reported (not in
  // seeded mode, where the finalizer G runs only during host calls).
  if (!opts.disasm && opts.vm.sched_seed == 0) {
    for (const auto& [kind, n] : vm.stats().by_kind) {
      if (kind == "pinner") vm.collect();
    }
  }
  std::fflush(stdout);  // the script's output before the stats; main checks it
  if (rc != 0 && opts.vm.sched_seed != 0) {
    printTo(stderr, "spindle: sched seed {} (replay with --sched-seed {})\n", opts.vm.sched_seed,
            opts.vm.sched_seed);
  }
  if (!spindle::cli::finishMemProfile(opts.prof, vm, !opts.disasm && opts.vm.sched_seed == 0) && rc == 0)
    rc = kExitIo;
  if (opts.vm.stats) printStats(vm);
  // Nothing is left to write: end as exit(code) does, the OS freeing what ~Vm would
  // tear down (cli/fast_exit.h). --trace, --cpuprofile and --gclog (the last cycles'
  // records) finish after the Vm is gone.
  if (spindle::cli::kFastExit && opts.trace.empty() && opts.prof.cpuprofile.empty() && opts.gclog.empty()) {
    spindle::cli::fastExit(checkStdout(rc));
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  openStandardFds();
  spindle::runtime::installQuitHandler();
  return checkStdout(runMain(argc, argv));
}
