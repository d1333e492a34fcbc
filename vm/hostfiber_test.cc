// hostfiber_test.cc: host calls (VM::call's main fiber, kept between calls by
// vm/hostcall.cc when kKeepHostFiber is on) under a collector that never stops: many
// calls per Vm with continuous gcstress cycles each verified by checkmark, spawned fibers
// that outlive the calls, results kept as host Values, stacks grown by deep calls, and
// each Vm destroyed right after its last call (~VM drops a kept fiber first). Under ASan
// (debug checks and freed-memory poisoning on) a main fiber freed while cached or in use
// fails here as a poisoned read or a fatal error.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "vm/spindle.h"

namespace {

spindle::Options stressed(int procs) {
  spindle::Options o;
  o.output = [](std::string_view) {};
  o.procs = procs;
  o.gcstress_continuous = 1;
  o.gccheckmark = true;
  return o;
}

constexpr const char* kScript = R"(
fun noop(x) {}
fun make(n) { return [n, [n, "s" + str(n)]]; }
fun churn(n) { var i = 0; while (i < n) { i = i + 1; var j = [i, [i]]; } }
fun spawner(n) { spawn churn(n); return n; }
fun grow(n) { if (n == 0) return 0; return 1 + grow(n - 1); }
)";

TEST_CASE("kept main fibers under continuous cycles, fibers outliving calls, Vm dropped at once (threads)") {
  for (int round = 0; round < 40; ++round) {
    spindle::Vm vm(stressed(1 + round % 2));
    REQUIRE(vm.run(kScript).ok());
    const spindle::Value noop = *vm.global("noop"), make = *vm.global("make"),
                         spawner = *vm.global("spawner"), grow = *vm.global("grow");
    std::vector<spindle::Value> kept;
    int good = 0;
    for (int i = 0; i < 30; ++i) {
      if (vm.call(noop, {spindle::Value::number(i)}).ok()) ++good;
      spindle::Result m = vm.call(make, {spindle::Value::number(i)});
      if (m.ok() && m.value().isObject()) {
        ++good;
        kept.push_back(m.value());
      }
      if (vm.call(spawner, {spindle::Value::number(50)}).ok()) ++good;
      if (i % 10 == 0 && vm.call(grow, {spindle::Value::number(100)}).ok()) ++good;
    }
    CHECK(good == 30 * 3 + 3);
    CHECK(kept.size() == 30);
  }
}

}  // namespace
