// corpus_run_test.cc: runs every tests/lang/**/*.lox file through the real `spindle`
// binary and checks stdout, stderr and the exit code against the expectations written in
// the file (tests/lang/expectations.h):
//   - compile errors: empty stdout, stderr exactly the error lines, exit 65;
//   - a runtime error: stdout the expected output, stderr the message, then a stack
//     trace whose first line is "[line N] in ..." for the expectation's line, exit 70;
//   - otherwise: stdout exactly the expected output, empty stderr, exit 0.
// Built three times: //tests/vm:corpus_run_test runs the binary plainly;
// //tests/vm:corpus_gcstress_test (SPINDLE_CORPUS_GCSTRESS=N) runs every file with
// `--gcstress-continuous N --gccheckmark`, so cycles run back to back, overlapping the
// fibers, and the collector checks its marking against a stop-the-world re-mark while
// every fiber allocates; //tests/vm:gcrace_repeat_test
// (SPINDLE_CORPUS_REPEAT=K, SPINDLE_CORPUS_DIR) runs only the adversarial programs of
// tests/lang/gcrace K times each with `--procs 2` added, because each of those catches
// its race in only some runs.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sys/wait.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "tests/lang/expectations.h"

namespace {

struct Run {
  std::string out, err;
  int code = -1;
};

#ifdef SPINDLE_CORPUS_GCSTRESS
const std::string kStressFlags =
    fmt::format("--gcstress-continuous {} --gccheckmark ", SPINDLE_CORPUS_GCSTRESS);
#else
const std::string kStressFlags;
#endif
#ifdef SPINDLE_CORPUS_REPEAT
constexpr int kRepeat = SPINDLE_CORPUS_REPEAT;
const std::string kFlags = kStressFlags + "--procs 2 ";
const std::string kDir = SPINDLE_CORPUS_DIR;
#else
constexpr int kRepeat = 1;
const std::string kFlags = kStressFlags;
const std::string kDir = "tests/lang";
#endif

// Far above the slowest file's time under TSan with continuous cycles (a few seconds).
constexpr int kFileLimitSeconds = 240;

Run runSpindle(const std::string& path) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = tmp != nullptr ? tmp : "/tmp";
  std::string outPath = dir + "/corpus.out", errPath = dir + "/corpus.err";
  // A run that hangs gets SIGQUIT after kFileLimit: it fails with its file named and its
  // Gs and the collector's state on stderr, instead of the whole test timing out.
  std::string cmd = fmt::format("timeout -s QUIT -k 10 {} vm/cli/spindle {}'{}' >'{}' 2>'{}' </dev/null",
                                kFileLimitSeconds, kFlags, path, outPath, errPath);
  int status = std::system(cmd.c_str());
  Run r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  spindle::corpus::readFile(outPath, r.out);
  spindle::corpus::readFile(errPath, r.err);
  return r;
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> v;
  std::size_t start = 0;
  while (start < s.size()) {
    std::size_t nl = s.find('\n', start);
    if (nl == std::string::npos) nl = s.size();
    v.push_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  return v;
}

// Runs one file once and checks it against its expectations; true when it all held.
bool runsAsExpected(const std::string& path, const spindle::corpus::Expectations& ex) {
  Run r = runSpindle(path);
  if (r.err.starts_with("SIGQUIT: quit")) {
    FAIL_CHECK(fmt::format("hung for {} s; its state when stopped:\n{}", kFileLimitSeconds, r.err));
    return false;
  }
  bool ok = r.code == ex.exitCode();
  CHECK(r.code == ex.exitCode());
  if (!ex.compileErrors.empty()) {
    CHECK(r.out == "");
    CHECK(r.err == ex.expectedCompileStderr());
    ok = ok && r.out.empty() && r.err == ex.expectedCompileStderr();
  } else {
    std::vector<std::string> got = lines(r.out);
    CHECK(got == ex.output);
    ok = ok && got == ex.output;
    if (ex.runtimeError) {
      std::vector<std::string> err = lines(r.err);
      REQUIRE(err.size() >= 2);
      CHECK(err[0] == *ex.runtimeError);
      const std::string where = fmt::format("[line {}] in ", ex.runtimeErrorLine);
      CHECK(err[1].rfind(where, 0) == 0);
      // The trace runs to the script, or (an error in a spawned fiber) to the fiber's
      // outermost function, as Go prints only the failing goroutine; past 20 frames it
      // ends with "... N more frames".
      const bool truncated = err.size() == 2 + 20 && err.back().rfind("... ", 0) == 0 &&
                             err.back().ends_with(" more frames");
      // A deadlock's report ends with the collector's state.
      const bool deadlock = *ex.runtimeError == "all fibers are asleep - deadlock!" &&
                            err.back().rfind("gc: phase ", 0) == 0;
      CHECK((err.back().rfind("[line ", 0) == 0 || truncated || deadlock));
      ok = ok && err[0] == *ex.runtimeError && err[1].rfind(where, 0) == 0;
    } else {
      CHECK(r.err == "");
      ok = ok && r.err.empty();
    }
  }
  return ok;
}

TEST_CASE("every corpus file runs as its expectations say") {
  std::vector<std::string> files = spindle::corpus::listCorpus(kDir);
  REQUIRE(files.size() >= (kRepeat > 1 ? 1 : 150));
  int passed = 0, failed = 0;
  for (const std::string& path : files) {
    CAPTURE(path);
    std::string source;
    REQUIRE(spindle::corpus::readFile(path, source));
    spindle::corpus::Expectations ex = spindle::corpus::parseExpectations(source);
    for (int run = 0; run < kRepeat; ++run) {
      CAPTURE(run);
      (runsAsExpected(path, ex) ? passed : failed) += 1;
    }
  }
  MESSAGE(fmt::format("corpus{}: {} passed, {} failed", kFlags.empty() ? "" : " (" + kFlags + ")",
                      passed, failed));
  CHECK(failed == 0);
}

}  // namespace
