// strlib_race_test.cc: fibers on two Ps using the string and math libraries at once,
// under gcstress and checkmark: the interned-string table (its lock, tombstones and
// rebuilds against clearWeak), the one-byte strings, results held across the libraries'
// checkpoints, and math.random's shared state (TSan must stay clean).
#include <doctest/doctest.h>

#include "vm/spindle.h"

namespace {

constexpr const char* kScript = R"(
var ch = Channel(0);
fun work(k) {
  var ok = true;
  for (var i = 0; i < 200; i = i + 1) {
    var s = format("{}-{}-{}", k, i, math.randomInt(0, 9));
    var parts = s.split("-");
    if (num(parts[0]) != k or num(parts[1]) != i) ok = false;
    if (parts.join("-") != s) ok = false;
    if (s.sub(0, 1) != s[0] or chr(s.byte(0)) != s[0]) ok = false;
    if (("x".repeat(i) + s).find(s) != i) ok = false;
    if (s.upper().lower() != s or s.replace("-", "+").split("+").len() != 3) ok = false;
    var r = math.random();
    if (r < 0 or r >= 1 or !(s < s + "!")) ok = false;
  }
  ch.send(ok);
}
for (var k = 0; k < 4; k = k + 1) spawn work(k);
var all = true;
for (var k = 0; k < 4; k = k + 1) if (!ch.recv()) all = false;
)";

TEST_CASE("fibers use the string and math libraries in parallel under gcstress") {
  spindle::Options o;
  o.procs = 2;
  o.gcstress_continuous = 50;
  o.gccheckmark = true;
  spindle::Vm vm(o);
  REQUIRE(vm.run(kScript).ok());
  const std::optional<spindle::Value> all = vm.global("all");
  REQUIRE(all.has_value());
  CHECK(all->asBool());
}

}  // namespace
