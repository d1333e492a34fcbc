// hostcall_test.cc: what a host entry costs in heap objects, and that its cheap paths
// (vm/hostcall.cc: the cached main fiber; vm/hostcall_api.cc: calls, field reads and
// global sets without a P) give the same answers as the paths with a P, also while
// fibers write what the host reads and the collector runs.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "vm/spindle.h"

namespace {

spindle::Options quiet(int procs = 1) {
  spindle::Options o;
  o.output = [](std::string_view) {};
  o.procs = procs;
  return o;
}

std::uint64_t objects(spindle::Vm& vm) { return vm.stats().objects; }

TEST_CASE("a host call that allocates nothing in Lox allocates no heap object") {
  spindle::Vm vm(quiet());
  REQUIRE(vm.run("fun noop(x) {} fun id(x) { return x; }").ok());
  const spindle::Value noop = *vm.global("noop");
  const spindle::Value id = *vm.global("id");
  REQUIRE(vm.call(noop, {spindle::Value::number(0)}).ok());  // the first call makes the fiber
  const std::uint64_t before = objects(vm);
  constexpr int kCalls = 10000;
  int ok = 0;
  for (int i = 0; i < kCalls; ++i) {
    spindle::Result r = vm.call(noop, {spindle::Value::number(i)});
    if (r.ok() && r.value().isNil()) ++ok;
  }
  // A fiber (object, stack, frames) per call would be 3 * kCalls objects.
  CHECK(objects(vm) - before == 0);
  CHECK(ok == kCalls);
  // Results of every kind that needs no allocation, through the same path.
  double sum = 0;
  for (int i = 0; i < 100; ++i) sum += vm.call(id, {spindle::Value::number(i)}).value().asNumber();
  CHECK(sum == 4950);
  CHECK(vm.call(id, {spindle::Value::boolean(true)}).value().asBool());
  CHECK(vm.call(id, {spindle::Value()}).value().isNil());
  CHECK(objects(vm) - before == 0);
}

TEST_CASE("setGlobal of a number and a field read of a number allocate nothing") {
  spindle::Vm vm(quiet());
  REQUIRE(vm.run("class P { init() { this.x = 7; } } var p = P();").ok());
  const spindle::Value p = *vm.global("p");
  vm.setGlobal("g", spindle::Value::number(0));
  const std::uint64_t before = objects(vm);
  double sum = 0;
  for (int i = 0; i < 1000; ++i) {
    vm.setGlobal("g", spindle::Value::number(i));
    sum += vm.field(p, "x")->asNumber();
  }
  CHECK(objects(vm) - before == 0);
  CHECK(sum == 7000);
  CHECK(vm.global("g")->asNumber() == 999);
}

TEST_CASE("the cached main fiber gives every kind of result and error, call after call") {
  spindle::Vm vm(quiet());
  REQUIRE(vm.run(R"(
class Box { init(n) { this.n = n; } }
fun make(n) { return Box(n); }
fun str(n) { return "s" + str0(n); }
fun str0(n) { if (n == 0) return "0"; return "n"; }
fun fail(n) { if (n > 0) return n.nope; return n; }
fun deep(n) { if (n == 0) return 0; return 1 + deep(n - 1); }
fun many(a, b, c, d, e, f, g, h, i, j) { return a + b + c + d + e + f + g + h + i + j; }
fun parks(n) { var ch = Channel(); spawn send1(ch, n); return ch.recv(); }
fun send1(ch, n) { ch.send(n * 2); }
fun throws(n) { throw n; }
)").ok());
  const spindle::Value make = *vm.global("make"), str = *vm.global("str"), fail = *vm.global("fail"),
                       deep = *vm.global("deep"), many = *vm.global("many"), parks = *vm.global("parks"),
                       throws = *vm.global("throws");
  for (int round = 0; round < 3; ++round) {
    spindle::Result b = vm.call(make, {spindle::Value::number(round)});
    REQUIRE(b.ok());
    REQUIRE(b.value().isObject());
    CHECK(vm.field(b.value(), "n")->asNumber() == round);
    CHECK(vm.call(str, {spindle::Value::number(0)}).value().asString() == "s0");
    // A failure leaves its fiber behind; the next call runs on another.
    spindle::Result f = vm.call(fail, {spindle::Value::number(1)});
    REQUIRE_FALSE(f.ok());
    CHECK(f.error().message.find("propert") != std::string::npos);  // a number has no fields
    CHECK(vm.call(fail, {spindle::Value::number(0)}).value().asNumber() == 0);
    CHECK_FALSE(vm.call(throws, {spindle::Value::number(3)}).ok());
    // A call that grew the stack and frames, then small calls on the same fiber.
    CHECK(vm.call(deep, {spindle::Value::number(500)}).value().asNumber() == 500);
    std::vector<spindle::Value> ten;
    for (int i = 1; i <= 10; ++i) ten.push_back(spindle::Value::number(i));
    CHECK(vm.call(many, ten).value().asNumber() == 55);
    // A call whose main fiber parks (a channel) before it returns.
    CHECK(vm.call(parks, {spindle::Value::number(21)}).value().asNumber() == 42);
    // A string argument takes the way with a P; its result is right too.
    CHECK(vm.call(*vm.global("str0"), {spindle::Value::string("x")}).value().asString() == "n");
    vm.collect();
  }
}

TEST_CASE("direct field reads and global sets race fibers and the collector (threads)") {
  spindle::Options o = quiet(2);
  o.gcstress_continuous = 1;
  o.gccheckmark = true;
  spindle::Vm vm(o);
  REQUIRE(vm.run(R"(
class P { init() { this.x = 0; this.s = "a"; } }
var p = P();
var g = 0;
var seen = 0;
var stop = false;
fun churn() {
  var i = 0;
  while (!stop) {
    i = i + 1;
    p.x = i;
    p.s = "v" + str(i);
    seen = g;
    var junk = [i, [i]];
  }
}
fun add(a, b) { return a + b; }
spawn churn();
)").ok());
  const spindle::Value p = *vm.global("p");
  const spindle::Value add = *vm.global("add");
  int good = 0;
  constexpr int kRounds = 2000;
  double last = -1;
  for (int i = 0; i < kRounds; ++i) {
    std::optional<spindle::Value> x = vm.field(p, "x");
    std::optional<spindle::Value> s = vm.field(p, "s");  // a string: read with a P
    vm.setGlobal("g", spindle::Value::number(i));
    spindle::Result r = vm.call(add, {spindle::Value::number(i), spindle::Value::number(1)});
    const bool xOk = x.has_value() && x->isNumber() && x->asNumber() >= last;
    if (xOk) last = x->asNumber();
    if (xOk && s.has_value() && s->isString() && r.ok() && r.value().asNumber() == i + 1) ++good;
  }
  CHECK(good == kRounds);
  REQUIRE(vm.run("stop = true;").ok());
  CHECK(vm.global("g")->asNumber() == kRounds - 1);
}

TEST_CASE("a Vm destroyed with a cached main fiber, and Vms that each keep one") {
  for (int i = 0; i < 20; ++i) {
    spindle::Vm a(quiet()), b(quiet());
    REQUIRE(a.run("fun f(x) { return x + 1; }").ok());
    REQUIRE(b.run("fun f(x) { return x * 2; }").ok());
    CHECK(a.call(*a.global("f"), {spindle::Value::number(i)}).value().asNumber() == i + 1);
    CHECK(b.call(*b.global("f"), {spindle::Value::number(i)}).value().asNumber() == i * 2);
  }
}

}  // namespace
