// child.h: death tests. runChild(fn) runs fn in a forked child with stderr captured and
// returns {died abnormally, stderr}: a fatal error (SPINDLE_CHECK/FATAL aborts) is
// observed from the parent. Fork only while this process runs no other threads of ours
// (no World attached), as the child gets only the calling thread.
// (Under TSan, abort() may surface as a non-zero exit rather than SIGABRT.)
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <utility>

namespace spindle::runtime::testing {

template <typename Fn>
std::pair<bool, std::string> runChild(Fn fn) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  std::fflush(nullptr);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child's abort must not run doctest's crash report (it would print a second
    // summary on the shared stdout): default SIGABRT, and stdout discarded.
    std::signal(SIGABRT, SIG_DFL);
    if (const int devnull = open("/dev/null", O_WRONLY); devnull >= 0) dup2(devnull, 1);
    dup2(fds[1], 2);
    close(fds[0]);
    fn();
    std::fflush(nullptr);
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

}  // namespace spindle::runtime::testing
