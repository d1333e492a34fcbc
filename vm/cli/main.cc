// spindle: the command-line host of the Spindle VM.
//
// A thin host of the embedding API (vm/spindle.h): it parses flags, then runs a file,
// a -e string or a REPL (libedit: line editing and history) through spindle::Vm.
// Exit codes follow sysexits(3) and clox:
//   0 ok, 64 usage error, 65 compile error, 66 missing or unreadable input,
//   70 runtime error, 74 output error (stdout could not be written).
//
// Output never throws (runtime::printTo): a closed or full stderr loses the messages but
// keeps the exit code. Standard descriptors closed at start are opened on /dev/null
// (read-only), so no file the program opens takes their place. stdout is checked at exit.
#include <editline/readline.h>
#include <fcntl.h>
#include <unistd.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/print.h"
#include "vm/spindle.h"

namespace {

constexpr std::string_view kVersion = "0.1.0";

constexpr int kExitUsage = 64;
constexpr int kExitCompile = 65;
constexpr int kExitNoInput = 66;
constexpr int kExitRuntime = 70;
constexpr int kExitIo = 74;

using spindle::runtime::printTo;

void printUsage(std::FILE* out) {
  printTo(out,
             "usage: spindle [options] [FILE [ARGS...]]\n"
             "       spindle [options] run FILE [ARGS...]\n"
             "       spindle [options] -e CODE\n"
             "\n"
             "Runs a Spindle (Lox) script. With no FILE and no -e, opens a REPL.\n"
             "\n"
             "options:\n"
             "  -e CODE            run CODE instead of a file\n"
             "  --disasm           print the bytecode listing instead of running\n"
             "  --procs N          worker Ps (default: one per core)\n"
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
             "  --ffi-check        reject unpinned heap pointers passed to foreign code\n"
             "  --no-ffi-check     turn that check off (it is on in debug builds)\n"
             "  --help             print this help and exit\n"
             "  --version          print the version and exit\n"
             "\n"
             "Fibers (spawn) run in parallel on --procs Ps. --gc-percent sets the collector's\n"
             "pacing; the other --gc* flags and --clobberfree are passed to the collector\n"
             "(process-wide). docs/STRESS.md: stress testing the collector.\n");
}

struct CliOptions {
  spindle::Options vm;
  std::string file;
  bool haveFile = false;  // a FILE argument was given (an empty one too: it cannot be read)
  std::string code;
  bool haveCode = false;
  bool disasm = false;
  std::vector<std::string> scriptArgs;
};

// Parses all of s as an integer in [min, max].
bool parseInt(std::string_view s, int min, int max, int& out) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max) return false;
  out = v;
  return true;
}

// Returns -1 to continue, or an exit code.
int parseArgs(int argc, char** argv, CliOptions& opts) {
  int i = 1;
  bool runCommand = false;
  for (; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "run" && !runCommand && !opts.haveCode) {
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
      continue;
    }
    if (arg == "--ffi-check" || arg == "--no-ffi-check") {
      opts.vm.ffi_check = arg == "--ffi-check";
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
  for (; i < argc; ++i) opts.scriptArgs.emplace_back(argv[i]);
  return -1;
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

int repl(spindle::Vm& vm) {
  printTo(stdout, "spindle {} (Lox). Ctrl-D to exit.\n", kVersion);
  for (;;) {
    char* line = readline("> ");
    if (line == nullptr) {
      printTo(stdout, "\n");
      return 0;
    }
    std::string source = line;
    std::free(line);
    if (source.find_first_not_of(" \t") == std::string::npos) continue;
    add_history(source.c_str());
    std::fflush(stdout);
    spindle::Result r = vm.run(source);
    if (!r.ok()) printTo(stderr, "{}", r.error().format());
    std::fflush(stderr);
  }
}

void printStats(const spindle::Vm& vm) {
  spindle::Stats s = vm.stats();
  printTo(stderr,
             "stats: {} objects, {} bytes allocated; heap {} bytes in use, {} bytes mapped; {} GC "
             "cycles, max pause {:.3f} ms, total pause {:.3f} ms\n",
             s.objects, s.bytes, s.heap_in_use, s.heap_sys, s.gc_cycles, s.gc_max_pause_ns / 1e6,
             s.gc_total_pause_ns / 1e6);
  for (const auto& [kind, n] : s.by_kind) printTo(stderr, "stats:   {:<14} {}\n", kind, n);
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

int runMain(int argc, char** argv) {
  CliOptions opts;
  if (int rc = parseArgs(argc, argv, opts); rc >= 0) return rc;

  std::string source = opts.code;
  if (opts.haveFile) {
    spindle::Result read = spindle::readFile(opts.file);
    if (!read.ok()) return exitCodeFor(read);
    source = read.value().asString();
  }

  spindle::Vm vm(opts.vm);
  std::vector<spindle::Value> args;
  for (const std::string& a : opts.scriptArgs) args.push_back(spindle::Value::string(a));
  vm.setGlobal("args", vm.list(args));

  int rc;
  if (opts.disasm) {
    spindle::Result r = vm.disassemble(source);
    if (r.ok()) printTo(stdout, "{}", r.value().asString());
    rc = exitCodeFor(r);
  } else if (!opts.haveCode && !opts.haveFile) {
    rc = repl(vm);
  } else {
    rc = exitCodeFor(vm.run(source));
  }
  // The program ended (as Go's, with main): failures no join() saw, after its own error.
  for (const std::string& line : vm.neverJoined()) printTo(stderr, "{}\n", line);
  std::fflush(stdout);  // the script's output before the stats; main checks it
  if (opts.vm.stats) printStats(vm);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  openStandardFds();
  return checkStdout(runMain(argc, argv));
}
