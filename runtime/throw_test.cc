#include "runtime/throw.h"

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace {

// Runs fn in a child process with stderr captured; returns {died abnormally, stderr}.
// (Under TSan, abort() may surface as a non-zero exit rather than SIGABRT.)
template <typename Fn>
std::pair<bool, std::string> runChild(Fn fn) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  std::fflush(nullptr);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    fn();
    _exit(0);
  }
  close(fds[1]);
  std::string err;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return {!(WIFEXITED(status) && WEXITSTATUS(status) == 0), err};
}

}  // namespace

TEST_CASE("SPINDLE_CHECK names the invariant and the values, then aborts") {
  auto [aborted, err] = runChild([] {
    int sweepgen = 7;
    SPINDLE_CHECK(sweepgen % 2 == 0, "span.sweepgen odd: sweepgen={}", sweepgen);
  });
  CHECK(aborted);
  CHECK(err.find("fatal error: span.sweepgen odd: sweepgen=7") != std::string::npos);
  CHECK(err.find("throw_test.cc") != std::string::npos);
}

TEST_CASE("SPINDLE_CHECK passes silently when the invariant holds") {
  auto [aborted, err] = runChild([] { SPINDLE_CHECK(1 + 1 == 2, "arithmetic"); });
  CHECK_FALSE(aborted);
  CHECK(err.empty());
}

TEST_CASE("SPINDLE_DCHECK is on in test builds") {
  auto [aborted, err] = runChild([] { SPINDLE_DCHECK(false, "dcheck {}", 1); });
  CHECK(aborted == static_cast<bool>(SPINDLE_DCHECKS_ON));
#ifndef NDEBUG
  CHECK(SPINDLE_DCHECKS_ON);
#endif
}
