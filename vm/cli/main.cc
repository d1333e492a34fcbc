// spindle: the command-line host of the Spindle VM.
//
// A thin host: it parses flags, reads the script, and hands both to the embedding
// API (vm/spindle.h). Exit codes follow sysexits(3) and clox:
//   0 ok, 64 usage error, 65 compile error, 66 missing or unreadable input,
//   69 feature not available in this build, 70 runtime error.
#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view kVersion = "0.1.0";

constexpr int kExitUsage = 64;
constexpr int kExitNoInput = 66;
constexpr int kExitUnavailable = 69;

void printUsage(std::FILE* out) {
  fmt::print(out,
             "usage: spindle [options] [FILE [ARGS...]]\n"
             "       spindle run FILE [ARGS...]\n"
             "       spindle -e CODE\n"
             "\n"
             "Runs a Spindle (Lox) script. With no FILE, opens a REPL.\n"
             "\n"
             "options:\n"
             "  -e CODE           run CODE instead of a file\n"
             "  --help            print this help and exit\n"
             "  --version         print the version and exit\n");
}

struct Options {
  std::string file;
  std::string code;
  bool haveCode = false;
  std::vector<std::string> scriptArgs;
};

// Returns -1 to continue, or an exit code.
int parseArgs(int argc, char** argv, Options& opts) {
  int i = 1;
  if (i < argc && std::string_view(argv[i]) == "run") {
    ++i;
    if (i >= argc) {
      fmt::print(stderr, "spindle: 'run' needs a FILE\n");
      printUsage(stderr);
      return kExitUsage;
    }
  }
  for (; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      printUsage(stdout);
      return 0;
    }
    if (arg == "--version") {
      fmt::print("spindle {}\n", kVersion);
      return 0;
    }
    if (arg == "-e") {
      if (i + 1 >= argc) {
        fmt::print(stderr, "spindle: -e needs an argument\n");
        return kExitUsage;
      }
      opts.code = argv[++i];
      opts.haveCode = true;
      continue;
    }
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg.size() > 1 && arg[0] == '-') {
      fmt::print(stderr, "spindle: unknown option '{}'\n", arg);
      printUsage(stderr);
      return kExitUsage;
    }
    break;
  }
  if (!opts.haveCode && i < argc) opts.file = argv[i++];
  for (; i < argc; ++i) opts.scriptArgs.emplace_back(argv[i]);
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  if (int rc = parseArgs(argc, argv, opts); rc >= 0) return rc;

  std::string source = opts.code;
  if (!opts.haveCode && !opts.file.empty()) {
    std::ifstream in(opts.file, std::ios::binary);
    if (!in) {
      fmt::print(stderr, "spindle: cannot open '{}': {}\n", opts.file, std::strerror(errno));
      return kExitNoInput;
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    source = buf.str();
  }
  fmt::print(stderr,
             "spindle: the VM is not built yet; read {} ({} bytes) but cannot run it\n",
             opts.haveCode ? "-e CODE" : opts.file.empty() ? "the REPL" : opts.file,
             source.size());
  return kExitUnavailable;
}
