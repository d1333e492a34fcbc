// host_race_test.cc: a host thread (no P) reading and calling into a Vm while fibers
// replace what it reads, under gcstress and checkmark. The host's entry points must root
// what they hand back before any collection can finish (Vm::global and Vm::field read
// with a P, the handle table takes the barrier, a call's result is rooted before its
// fiber stops being a root); a miss is a checkmark fatal error or a corrupted Box. The
// second case holds a mark open to make a handle after the root scan, deterministically.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "runtime/gc.h"
#include "runtime/proc.h"
#include "vm/spindle.h"
#include "vm/vm.h"

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
  o.gcstress_continuous = 1;
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

namespace {

// The handle table is a root scanned once per cycle: a handle made while the collector
// marks must shade its value. Here the mark is held open on purpose: a fiber spins in a
// native that passes checkpoints (the world may stop; its G is never scanned there, so
// the mark cannot finish). Before it, a Box was read from a global that was then cleared,
// so no root reaches it when the mark begins; the handle made during the mark is then its
// only reference. Checkmark (on) is fatal if the Box stays unmarked; and it must survive
// the cycle.
TEST_CASE("a handle made while the collector marks shades its value") {
  std::string out;
  spindle::Options o;
  o.procs = 2;
  o.gccheckmark = true;
  o.output = [&out](std::string_view s) { out.append(s); };
  spindle::Vm vm(o);
  std::atomic<bool> spinning{false}, release{false};
  vm.defineNative("spin", 0, [&](spindle::Vm&, std::span<const spindle::Value>) {
    spinning.store(true);
    while (!release.load()) spindle::runtime::Sched::checkpoint();
    return spindle::Result::success(spindle::Value::nil());
  });
  REQUIRE(vm.run("class Box { init() { this.items = [1, 2, 3]; } }\n"
                 "var g = Box();\n"
                 "fun spinner() { spin(); }\n")
              .ok());
  spindle::vm::VM& in = vm.internal();
  const std::uint32_t slot = in.globalSlot("g");
  spindle::vm::Value box;
  in.withP([&] {
    box = in.global(slot);
    in.setGlobal(slot, spindle::vm::Value::nil());  // no root reaches the Box any more
  });
  REQUIRE(vm.run("spawn spinner();").ok());
  while (!spinning.load()) std::this_thread::yield();
  std::thread collector([] { spindle::runtime::gcCollect(); });
  while (!spindle::runtime::writeBarrierEnabled()) std::this_thread::yield();
  // Marking. The controller scans the roots right after the mark begins (microseconds);
  // the wait makes the handle come after that scan (were it earlier, the scan would find
  // it and the test would prove nothing, but not fail).
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::uint32_t h = in.newHandle(box);
  release.store(true);
  collector.join();
  spindle::runtime::gcCollect();
  in.withP([&] { in.setGlobal(slot, in.handleValue(h)); });
  in.releaseHandle(h);
  REQUIRE(vm.run("print g.items.len();").ok());
  CHECK(out == "3\n");
}

}  // namespace
