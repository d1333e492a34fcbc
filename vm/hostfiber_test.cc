// hostfiber_test.cc: host calls (VM::call's main fiber, kept between calls by
// vm/hostcall.cc) under a collector that never stops: many calls per Vm with continuous
// gcstress cycles each verified by checkmark, spawned fibers that outlive the calls,
// results kept as host Values, stacks grown by deep calls, host calls from several
// threads and from natives, Vms made and destroyed beside a Vm that keeps its fiber, and
// each Vm destroyed right after its last call (~VM drops a kept fiber first: the short-Vm
// case is the one that caught a read of the fiber after it stopped being a root). Under
// ASan (debug checks and freed-memory poisoning on) a main fiber freed while cached or in
// use fails here as a poisoned read or a fatal error.
#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
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

TEST_CASE("host calls from several threads share one kept fiber, and natives call back (threads)") {
  spindle::Vm vm(stressed(2));
  vm.defineNative("back", 1, [](spindle::Vm& v, spindle::Args args) {
    // A native calling back: the nested call runs on its own fiber, never the kept one.
    return v.call(*v.global("make"), {args[0]});
  });
  REQUIRE(vm.run(kScript).ok());
  REQUIRE(vm.run("fun viaNative(n) { return back(n); }").ok());
  const spindle::Value make = *vm.global("make"), spawner = *vm.global("spawner"),
                       viaNative = *vm.global("viaNative"), grow = *vm.global("grow");
  constexpr int kThreads = 3, kCalls = 150;
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const spindle::Value n = spindle::Value::number(t * 1000 + i);
        spindle::Result r = vm.call(i % 3 == 0 ? viaNative : make, {n});
        if (r.ok() && r.value().isObject()) good.fetch_add(1, std::memory_order_relaxed);
        if (i % 25 == 0) (void)vm.call(spawner, {spindle::Value::number(20)});
        if (i % 50 == 0) (void)vm.call(grow, {spindle::Value::number(200)});
      }
    });
  }
  for (std::thread& th : threads) th.join();
  CHECK(good.load() == kThreads * kCalls);
}

TEST_CASE("Vms made and destroyed beside a Vm that keeps its fiber, errors between (threads)") {
  spindle::Vm outer(stressed(2));
  REQUIRE(outer.run(kScript).ok());
  REQUIRE(outer.run("fun fail(n) { return n.nope; }").ok());
  const spindle::Value make = *outer.global("make"), fail = *outer.global("fail");
  int good = 0;
  for (int round = 0; round < 30; ++round) {
    {
      spindle::Vm inner(stressed(2));
      REQUIRE(inner.run(kScript).ok());
      REQUIRE(inner.run("fun fail(n) { return n.nope; }").ok());
      const spindle::Value spawner = *inner.global("spawner"), innerMake = *inner.global("make"),
                           innerFail = *inner.global("fail");
      for (int i = 0; i < 5; ++i) {
        if (inner.call(innerMake, {spindle::Value::number(i)}).ok()) ++good;
        if (outer.call(make, {spindle::Value::number(i)}).ok()) ++good;
        if (inner.call(spawner, {spindle::Value::number(30)}).ok()) ++good;
      }
      // A failed call drops its fiber; the next call makes and keeps another.
      CHECK_FALSE(outer.call(fail, {spindle::Value::number(round)}).ok());
      CHECK_FALSE(inner.call(innerFail, {spindle::Value::number(round)}).ok());
    }  // inner goes with a kept fiber and spawned fibers still running
    if (outer.call(make, {spindle::Value::number(round)}).ok()) ++good;
  }
  CHECK(good == 30 * 16);
}

TEST_CASE("many short Vms on one host thread, each dropped with its fiber kept and fibers running (threads)") {
  int good = 0;
  for (int round = 0; round < 200; ++round) {
    spindle::Vm vm(stressed(1 + round % 2));
    REQUIRE(vm.run(kScript).ok());
    const spindle::Value make = *vm.global("make"), spawner = *vm.global("spawner");
    if (vm.call(spawner, {spindle::Value::number(200)}).ok()) ++good;
    if (vm.call(make, {spindle::Value::number(round)}).ok()) ++good;
  }
  CHECK(good == 400);
}

}  // namespace
