#include "runtime/throw.h"

#include <doctest/doctest.h>

#include <string>

#include "runtime/testing/child.h"

using spindle::runtime::testing::runChild;

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

namespace {
void printContext(std::FILE* out) { std::fputs("context: the state\n", out); }
void fatalInContext(std::FILE*) { SPINDLE_FATAL("inside the context"); }
}  // namespace

TEST_CASE("a fatal error prints the registered context once, after its message") {
  auto [aborted, err] = runChild([] {
    spindle::runtime::addFatalContext(&printContext);
    spindle::runtime::addFatalContext(&fatalInContext);  // a fatal error while printing
    SPINDLE_FATAL("broken: x={}", 1);
  });
  CHECK(aborted);
  const auto msg = err.find("fatal error: broken: x=1");
  const auto ctx = err.find("context: the state");
  REQUIRE(msg != std::string::npos);
  REQUIRE(ctx != std::string::npos);
  CHECK(msg < ctx);
  CHECK(err.find("context: the state", ctx + 1) == std::string::npos);
  CHECK(err.find("fatal error: inside the context") != std::string::npos);
}
