// blocking_test.cc: a native declared Blocking::Yes runs in the scheduler's syscall state
// (vm/blocking.h): with procs = 1 the other fibers keep running while it blocks, and it
// may call back into its Vm. The waits are on events; the bound on each only turns a
// regression (the native holding the only P: the releasing fiber never runs) into a
// failure instead of a hang.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

#include "doctest/doctest.h"
#include "vm/spindle.h"

namespace {

struct Latch {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void release() {
    std::lock_guard<std::mutex> lk(mu);
    open = true;
    cv.notify_all();
  }
  bool wait() {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, std::chrono::seconds(60), [&] { return open; });
  }
};

struct Host {
  explicit Host(spindle::Blocking blocking) : vm(options()) {
    vm.defineNative(
        "block", 0,
        [this](spindle::Vm&, spindle::Args) {
          if (!latch.wait()) return spindle::Result::failure("never released");
          return spindle::Result::success(spindle::Value::string("released"));
        },
        blocking);
    vm.defineNative("release", 0, [this](spindle::Vm&, spindle::Args) {
      latch.release();
      return spindle::Result::success({});
    });
  }
  spindle::Options options() {
    spindle::Options o;
    o.procs = 1;
    o.output = [this](std::string_view s) {
      std::lock_guard<std::mutex> lk(outMu);
      out += s;
    };
    return o;
  }
  std::string output() {
    std::lock_guard<std::mutex> lk(outMu);
    return out;
  }
  Latch latch;
  std::mutex outMu;
  std::string out;
  spindle::Vm vm;
};

}  // namespace

TEST_CASE("a blocking native leaves the only P to the other fibers") {
  Host h(spindle::Blocking::Yes);
  // The main fiber blocks in block() until a spawned fiber, which needs the P, releases it.
  spindle::Result r = h.vm.run(R"(
fun releaser() { print "releasing"; release(); }
spawn releaser();
print block();
)");
  CHECK(r.ok());
  CHECK(h.output() == "releasing\nreleased\n");
}

TEST_CASE("a blocking native may call back into its Vm") {
  Host h(spindle::Blocking::Yes);
  h.vm.defineNative(
      "callback", 1,
      [](spindle::Vm& vm, spindle::Args args) {
        spindle::Result r = vm.call(args[0], {spindle::Value::number(20)});
        if (!r.ok()) return r;
        std::optional<spindle::Value> base = vm.global("base");
        if (!base) return spindle::Result::failure("no base");
        vm.setGlobal("seen", r.value());
        return spindle::Result::success(spindle::Value::number(r.value().asNumber() + base->asNumber()));
      },
      spindle::Blocking::Yes);
  spindle::Result r = h.vm.run(R"(
var base = 2;
fun twice(x) { return [x, x]; }
fun add(x) { return twice(x)[0] + twice(x)[1]; }
print callback(add);
print seen;
)");
  CHECK(r.ok());
  CHECK(h.output() == "42\n40\n");
  // A type error inside a blocking native is still the script's runtime error.
  h.vm.defineNative(
      "strict", 1, [](spindle::Vm&, spindle::Args args) { return spindle::Result::success(spindle::Value::number(spindle::checkNumber(args, 0))); },
      spindle::Blocking::Yes);
  r = h.vm.run("strict(\"x\");");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Argument 1 of strict() must be a number (string given).");
  CHECK(h.vm.run("print strict(1);").ok());
}
