// trace_test.cc (vm): the host side of the execution trace (spindle.h startTrace,
// stopTrace, tracing, Options::trace_file): run spans named by the Lox function, a trace
// bound to a Vm's life, one trace at a time, errors as values.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "runtime/testing/files.h"
#include "vm/spindle.h"

namespace {

using spindle::runtime::testing::slurp;
using spindle::runtime::testing::tempPath;

constexpr const char* kScript =
    "fun worker(ch) { for (var i = 0; i < 50; i = i + 1) ch.send(i); ch.send(-1); }\n"
    "var ch = Channel(0);\n"
    "spawn worker(ch);\n"
    "var n = 0;\n"
    "while (ch.recv() >= 0) n = n + 1;\n"
    "gc();\n";

}  // namespace

TEST_CASE("startTrace / stopTrace: a host records its Vm's fibers, named by their function") {
  const std::string path = tempPath("vm_trace_api") + ".json";
  spindle::Vm vm;
  std::string err;
  REQUIRE(spindle::startTrace(path, &err));
  CHECK(spindle::tracing());
  CHECK_FALSE(spindle::startTrace(path, &err));
  CHECK(err.find("already") != std::string::npos);
  REQUIRE(vm.run(kScript).ok());
  REQUIRE(spindle::stopTrace(&err));
  CHECK_FALSE(spindle::tracing());
  CHECK_FALSE(spindle::stopTrace(&err));
  const std::string json = slurp(path);
  CHECK(json.find("\"name\":\"worker()\"") != std::string::npos);
  CHECK(json.find("\"reason\":\"chan send\"") != std::string::npos);
  CHECK(json.find("\"name\":\"mark termination\"") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("Options::trace_file: the trace runs from the Vm's creation to its destruction") {
  const std::string path = tempPath("vm_trace_options") + ".json";
  {
    spindle::Options o;
    o.trace_file = path;
    spindle::Vm vm(o);
    CHECK(spindle::tracing());
    REQUIRE(vm.run(kScript).ok());
    // Another Vm with a trace_file while this one traces: ignored (a message on stderr).
    spindle::Options o2;
    o2.trace_file = path + ".other";
    { spindle::Vm other(o2); }
    CHECK(spindle::tracing());  // the other Vm did not stop this Vm's trace
  }
  CHECK_FALSE(spindle::tracing());
  const std::string json = slurp(path);
  CHECK(json.find("\"traceEvents\"") != std::string::npos);
  CHECK(json.find("\"name\":\"worker()\"") != std::string::npos);
  CHECK(slurp(path + ".other").empty());
  std::remove(path.c_str());
}

TEST_CASE("Options::trace_file that cannot be opened: the Vm runs untraced") {
  spindle::Options o;
  o.trace_file = "/nonexistent-dir/t.json";
  spindle::Vm vm(o);
  CHECK_FALSE(spindle::tracing());
  CHECK(vm.run("print 1;").ok());
}
