// host_race_test.cc: a host thread (no P) reading and calling into a Vm while fibers
// replace what it reads, under gcstress and checkmark. The host's entry points must root
// what they hand back before any collection can finish (Vm::global and Vm::field read
// with a P, the handle table takes the barrier, a call's result is rooted before its
// fiber stops being a root); a miss is a checkmark fatal error or a corrupted Box.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "vm/spindle.h"

namespace {

constexpr const char* kScript = R"(
class Box {
  init(n) { this.n = n; this.items = [n, n + 1, n + 2]; }
}
fun check(b) {
  return b.items.len() == 3 and b.items[0] == b.n and b.items[2] == b.n + 2;
}
fun fresh(n) { return Box(n); }
var g = Box(0);
var stop = false;
fun churn() {
  var i = 0;
  while (!stop) {
    i = i + 1;
    g = Box(i);
    var junk = [i, [i], [i, i]];
  }
}
spawn churn();
)";

TEST_CASE("a host holds what it reads and what calls return while fibers overwrite it") {
  spindle::Options o;
  o.procs = 2;
  o.gcstress = 1;
  o.gccheckmark = true;
  spindle::Vm vm(o);
  REQUIRE(vm.run(kScript).ok());
  const spindle::Value check = *vm.global("check");
  const spindle::Value fresh = *vm.global("fresh");
  int good = 0;
  constexpr int kRounds = 1500;
  for (int i = 0; i < kRounds; ++i) {
    // A global a fiber keeps replacing: read, then used after more collections.
    std::optional<spindle::Value> box = vm.global("g");
    REQUIRE(box.has_value());
    // A field of it, read the same way.
    std::optional<spindle::Value> items = vm.field(*box, "items");
    REQUIRE(items.has_value());
    // A result only the call's fiber held.
    spindle::Result made = vm.call(fresh, std::vector<spindle::Value>{spindle::Value::number(i)});
    REQUIRE(made.ok());
    spindle::Result a = vm.call(check, std::vector<spindle::Value>{*box});
    spindle::Result b = vm.call(check, std::vector<spindle::Value>{made.value()});
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    if (a.value().asBool() && b.value().asBool()) ++good;
  }
  CHECK(good == kRounds);
  REQUIRE(vm.run("stop = true;").ok());
}

}  // namespace
