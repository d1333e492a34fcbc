// interrupt_test.cc: Vm::interrupt from another thread and the per-run limits
// (Options::time_limit, step_limit), interrupt.cc. A running loop, a spinning fiber, fibers
// parked on a channel, a select, a join and a sleep all fail with the uncatchable
// "Interrupted."; the Vm runs the next script normally. Every wait here is on an event
// (the script reached a point, a fiber ended), never on elapsed time.
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "doctest/doctest.h"
#include "vm/spindle.h"

namespace {

// Counts the script's ready() calls; wait(n) returns once there were n.
class Gate {
 public:
  void arrive() {
    std::lock_guard<std::mutex> lk(mu_);
    ++count_;
    cv_.notify_all();
  }
  void wait(int n) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return count_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

struct Host {
  explicit Host(spindle::Options o = {}) : vm(withOutput(std::move(o), this)) {
    vm.defineNative("ready", 0, [this](spindle::Vm&, spindle::Args) {
      gate.arrive();
      return spindle::Result::success({});
    });
  }
  static spindle::Options withOutput(spindle::Options o, Host* h) {
    o.output = [h](std::string_view s) {
      std::lock_guard<std::mutex> lk(h->outMu);
      h->out += s;
    };
    return o;
  }
  std::string output() {
    std::lock_guard<std::mutex> lk(outMu);
    return out;
  }
  // Runs source while another thread interrupts once ready() was called n times.
  spindle::Result runInterrupted(const char* source, int n = 1) {
    std::thread t([this, n] {
      gate.wait(n);
      vm.interrupt();
    });
    spindle::Result r = vm.run(source);
    t.join();
    return r;
  }
  Gate gate;
  std::mutex outMu;
  std::string out;
  spindle::Vm vm;
};

std::string lines(const std::vector<std::string>& trace) {
  std::string s;
  for (const std::string& l : trace) s += l + "\n";
  return s;
}

spindle::Options procs(int n) {
  spindle::Options o;
  o.procs = n;
  return o;
}

}  // namespace

TEST_CASE("while (true) {} is interrupted from another thread; the Vm runs on") {
  for (int p : {1, 2}) {
    CAPTURE(p);
    Host h(procs(p));
    spindle::Result r = h.runInterrupted("print 0;\nready(); while (true) {}\n");
    REQUIRE(!r.ok());
    CHECK(r.error().kind == spindle::Error::Kind::Runtime);
    CHECK(r.error().message == "Interrupted.");
    CHECK(lines(r.error().trace) == lines({"[line 2] in script"}));
    spindle::Result again = h.vm.run("var x = 1 + 2; print x;");
    CHECK(again.ok());
    CHECK(h.output() == "0\n3\n");
  }
}

TEST_CASE("try/catch does not catch an interrupt, nor does finally swallow it") {
  Host h(procs(2));
  spindle::Result r = h.runInterrupted(R"(
fun loop() { ready(); while (true) {} }
try {
  loop();
} catch (e) {
  print "caught";
}
print "after";
)");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Interrupted.");
  CHECK(lines(r.error().trace) == lines({"[line 2] in loop()", "[line 4] in script"}));
  CHECK(h.output().empty());
}

TEST_CASE("a spinning fiber and a main fiber parked on its join are interrupted") {
  Host h(procs(2));
  spindle::Result r = h.runInterrupted(R"(
var n = 0;
fun spin() { ready(); while (true) { n = n + 1; } }
var f = spawn spin();
f.join();
)");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Interrupted.");
  // The spinner ended with the interrupt as its error: a join in a later run (not
  // interrupted) waits for it and raises it.
  spindle::Result later = h.vm.run(R"(
try { f.join(); } catch (e) { print e.message; }
print f.done();
)");
  CHECK(later.ok());
  CHECK(h.output() == "Interrupted.\ntrue\n");
  CHECK(h.vm.neverJoined().empty());
}

TEST_CASE("fibers parked on a channel, a select and a sleep are woken and fail") {
  Host h(procs(2));
  spindle::Result r = h.runInterrupted(R"(
var c = Channel();
var d = Channel(1);
var e = Channel();
fun receiver() { ready(); return c.recv(); }
fun sender() { ready(); d.send(1); d.send(2); }
fun selecting() {
  ready();
  select {
    case var v = e.recv(): return v;
    case e.send(3): return 3;
  }
}
fun sleeper() { ready(); sleep(100000); }
var fs = [spawn receiver(), spawn sender(), spawn selecting(), spawn sleeper()];
ready(); c.recv();
)", 5);
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Interrupted.");
  CHECK(lines(r.error().trace) == lines({"[line 16] in script"}));
  spindle::Result later = h.vm.run(R"(
for (var f in fs) {
  try { f.join(); print "returned"; } catch (e) { print e.message; }
}
)");
  CHECK(later.ok());
  CHECK(h.output() == "Interrupted.\nInterrupted.\nInterrupted.\nInterrupted.\n");
}

TEST_CASE("an interrupt stops background fibers of earlier runs; later runs are not affected") {
  Host h(procs(2));
  REQUIRE(h.vm.run("var c = Channel(); fun wait() { ready(); return c.recv(); } var f = spawn wait();").ok());
  h.gate.wait(1);
  h.vm.interrupt();
  spindle::Result r = h.vm.run(R"(
try { f.join(); } catch (e) { print e.message; }
var g = spawn wait();
c.send(7);
print g.join();
)");
  CHECK(r.ok());
  CHECK(h.output() == "Interrupted.\n7\n");
}

TEST_CASE("time_limit ends a run with a running loop or a parked main fiber") {
  spindle::Options o = procs(2);
  o.time_limit = 0.05;
  Host h(o);
  spindle::Result r = h.vm.run("print 0;\nvar i = 0; while (true) { i = i + 1; }\n");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Time limit exceeded.");
  CHECK(lines(r.error().trace) == lines({"[line 2] in script"}));
  // Parked on a channel while a fiber of the same run spins (no deadlock to report).
  r = h.vm.run(R"(
var c = Channel();
fun spin() { while (true) {} }
var s = spawn spin();
c.recv();
)");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Time limit exceeded.");
  // The limit is per run, and catching cannot stop it.
  r = h.vm.run("try { while (true) {} } catch (e) { print \"caught\"; }");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Time limit exceeded.");
  r = h.vm.run("try { s.join(); } catch (e) { print e.message; } print 40 + 2;");
  CHECK(r.ok());
  CHECK(h.output() == "0\nTime limit exceeded.\n42\n");
}

TEST_CASE("step_limit counts the safepoints of each run") {
  spindle::Options o = procs(1);
  o.step_limit = 10000;
  Host h(o);
  spindle::Result r = h.vm.run("print 0;\nvar i = 0; while (true) { i = i + 1; }\n");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Instruction limit exceeded.");
  CHECK(lines(r.error().trace) == lines({"[line 2] in script"}));
  // One safepoint per iteration: the loop stopped at the limit.
  std::optional<spindle::Value> i = h.vm.global("i");
  REQUIRE(i.has_value());
  CHECK(i->asNumber() <= 10000);
  CHECK(i->asNumber() >= 9990);
  // Each run has its own count: two runs of 6000 steps both finish.
  for (int k = 0; k < 2; ++k) {
    CHECK(h.vm.run("for (var j = 0; j < 6000; j = j + 1) {}").ok());
  }
  // Calls count too, and so do spawned fibers of the run.
  r = h.vm.run("fun f() {} fun g() { while (true) f(); } spawn g(); var c = Channel(); c.recv();");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Instruction limit exceeded.");
  CHECK(h.vm.run("print 6 * 7;").ok());
  CHECK(h.output() == "0\n42\n");
}
