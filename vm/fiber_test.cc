// fiber_test.cc: fiber results and timers as scripts see them (spawn expressions, join,
// done, after), the deadlock report and a fatal error's fiber dump.
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "runtime/g.h"
#include "runtime/proc.h"
#include "runtime/testing/child.h"
#include "runtime/throw.h"
#include "vm/fiber.h"
#include "vm/spindle.h"
#include "vm/vm.h"

namespace {

spindle::Options capture(std::string& out) {
  spindle::Options o;
  o.output = [&out](std::string_view s) { out.append(s); };
  return o;
}

}  // namespace

TEST_CASE("a spawn expression gives a Fiber: join returns the result to every joiner") {
  std::string out;
  spindle::Vm vm(capture(out));
  spindle::Result r = vm.run(R"(
var go = Channel();
fun work(x) { go.recv(); return x * 2; }
var f = spawn work(21);
fun joiner(k) { return f.join() + k; }
var js = [spawn joiner(1), spawn joiner(2), spawn joiner(3)];
print f.done();
go.send(nil);
print f.join();
for (var j in js) print j.join();
print f.done();
print f.join();
)");
  REQUIRE(r.ok());
  CHECK(out == "false\n42\n43\n44\n45\ntrue\n42\n");
}

TEST_CASE("join of a failed fiber raises its error: an Error, or the thrown value itself") {
  std::string out;
  spindle::Vm vm(capture(out));
  spindle::Result r = vm.run(R"(
fun bad() { var n = nil; return n + 1; }
var a = spawn bad();
try { a.join(); print "not raised"; } catch (e) { print e.message; print e.trace; }
try { a.join(); } catch (e) { print "again: " + e.message; }
var mine = Error("mine");
fun thrower(v) { throw v; }
var b = spawn thrower(mine);
try { b.join(); } catch (e) { print e == mine; }
var c = spawn thrower(7);
try { c.join(); } catch (e) { print e + 1; }
)");
  REQUIRE(r.ok());
  CHECK(out ==
        "Operands must be two numbers or two strings.\n[[line 2] in bad()]\n"
        "again: Operands must be two numbers or two strings.\ntrue\n8\n");
  CHECK(vm.neverJoined().empty());

  // Uncaught in the joiner: the failed fiber's message, its trace, then the joiner's.
  spindle::Result u = vm.run("fun worse() {\n  return nil + 1;\n}\nvar d = spawn worse();\nd.join();");
  REQUIRE_FALSE(u.ok());
  CHECK(u.error().message == "Operands must be two numbers or two strings.");
  CHECK(u.error().trace == std::vector<std::string>{"[line 2] in worse()", "[line 5] in script"});
}

TEST_CASE("a fiber joining itself is a runtime error") {
  std::string out;
  spindle::Vm vm(capture(out));
  spindle::Result r = vm.run(R"(
var f;
var go = Channel();
fun self() { go.recv(); return f.join(); }
f = spawn self();
go.send(nil);
f.join();
)");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "A fiber cannot join itself.");
  CHECK(r.error().trace ==
        std::vector<std::string>{"[line 4] in self()", "[line 7] in script"});
}

TEST_CASE("in a native's callback, join returns an ended fiber's result and refuses to wait") {
  std::string out;
  spindle::Vm vm(capture(out));
  vm.defineNative("callback", 1, [](spindle::Vm& v, std::span<const spindle::Value> args) {
    return v.call(args[0], {});
  });
  spindle::Result r = vm.run(R"(
fun answer() { return 42; }
var done = spawn answer();
while (!done.done()) yield();
fun joinDone() { return done.join(); }
print callback(joinDone);
var go = Channel();
fun waits() { go.recv(); }
var running = spawn waits();
fun joinRunning() { return running.join(); }
callback(joinRunning);
)");
  CHECK(out == "42\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "A join would block in a native callback.");
}

TEST_CASE("a failure no join saw is reported once, whether or not its Fiber was collected") {
  std::string out;
  spindle::Vm vm(capture(out));
  // Fiber 2 fails and is joined; 3 fails and its Fiber becomes garbage before two full
  // cycles; 4 fails and is kept; 5 returns. A spawn statement's fiber has no record (its
  // error would end the program).
  spindle::Result r = vm.run(R"(
fun bad(m) { throw m; }
fun ok() { return 1; }
var a = spawn bad("a");
var b = spawn bad("b");
var c = spawn bad("c");
var d = spawn ok();
try { a.join(); } catch (e) {}
while (!b.done()) yield();
b = nil;
gc(); gc();
while (!c.done()) yield();
d.join();
)");
  REQUIRE(r.ok());
  CHECK(vm.neverJoined() == std::vector<std::string>{
                                "fiber 3 failed and was never joined: Uncaught b.",
                                "fiber 4 failed and was never joined: Uncaught c."});
  CHECK(vm.neverJoined().empty());  // taken
  // Joined in a later host call: no record.
  REQUIRE(vm.run("var e = spawn bad(\"e\"); while (!e.done()) yield();").ok());
  REQUIRE(vm.run("try { e.join(); } catch (x) { print x; }").ok());
  CHECK(vm.neverJoined().empty());
  CHECK(out == "e\n");
}

// A spawned fiber's error ends its generation's host call (VM::fiberFailed ->
// endHostRun) from the fiber's M, after it marked every G preempted. Meanwhile the busy
// main fiber stops at that mark, its call returns, and the host's next call may reuse
// the main G (the P's free list): the late end must not cut that call short (VM::withP's
// fatal "a host G that never parks ended with 2", or a next run failing with the old
// error). Many parked fibers make the marking, hence the window, long.
TEST_CASE("a spawned fiber's error never ends the host call after its own") {
  std::string out;
  spindle::Options o = capture(out);
  o.procs = 2;
  spindle::Vm vm(o);
  REQUIRE(vm.run("var c = Channel(); fun wait() { c.recv(); }\n"
                 "for (var i = 0; i < 4000; i = i + 1) spawn wait();")
              .ok());
  for (int i = 0; i < 200; ++i) {
    spindle::Result busy = vm.run("fun bad() { return nil + 1; }\nspawn bad();\nwhile (true) {}");
    REQUIRE_FALSE(busy.ok());
    REQUIRE(busy.error().message == "Operands must be two numbers or two strings.");
    spindle::Result next = vm.run("print 1;");
    REQUIRE(next.ok());
  }
  CHECK(out.size() == 400);
}

TEST_CASE("after: a select times out through it while another case never fires; nil, once") {
  std::string out;
  spindle::Vm vm(capture(out));
  spindle::Result r = vm.run(R"(
var never = Channel();
var timeout = after(0.01);
select {
  case var v = never.recv(): print "never";
  case var v = timeout.recv(): print "timed out with " + str(v);
}
select {
  case timeout.recv(): print "a second value";
  default: print "only once";
}
print after(0).recv();
print after(-1).len();
)");
  REQUIRE(r.ok());
  CHECK(out == "timed out with nil\nonly once\nnil\n1\n");
  spindle::Result bad = vm.run("after(\"soon\");");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message == "after() takes a number of seconds.");
}

TEST_CASE("a deadlock with three fibers blocked on a receive, a send and a join") {
  std::string out;
  spindle::Vm vm(capture(out));
  spindle::Result r = vm.run(R"(var a = Channel();
var b = Channel();
fun sender() { b.send(1); }
fun receiver() {
  a.recv();
}
fun waiter(f) { return f.join(); }
spawn sender();
var r = spawn receiver();
spawn waiter(r);
Channel().recv();
)");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "all fibers are asleep - deadlock!");
  std::vector<std::string> trace = r.error().trace;
  REQUIRE_FALSE(trace.empty());
  // Last, the collector's state (its cycle count depends on the tests before).
  CHECK(trace.back().starts_with("gc: phase off (sweeping or idle), sweepgen "));
  trace.pop_back();
  CHECK(trace == std::vector<std::string>{
                               "[line 11] in script", "fiber 1 [chan receive]:", "[line 11] in script",
                               "fiber 2 [chan send]:", "[line 3] in sender()",
                               "fiber 3 [chan receive]:", "[line 5] in receiver()",
                               "fiber 4 [join]:", "[line 7] in waiter()"});
}

TEST_CASE("a fatal error prints every G, with the Lox trace of each parked fiber") {
  using spindle::runtime::testing::runChild;
  auto [died, err] = runChild([] {
    spindle::Vm vm;
    spindle::Result r = vm.run(R"(var c = Channel();
fun parked() {
  c.recv();
}
fun joiner(f) { f.join(); }
var p = spawn parked();
spawn joiner(p);
)");
    if (!r.ok()) std::_Exit(3);
    // Wait (no time limit) until both fibers are parked, then die.
    for (;;) {
      int parked = 0;
      vm.internal().sched().forEachG([&](spindle::runtime::G* g) {
        if (g->status.load() == spindle::runtime::GStatus::Waiting &&
            (g->waitreason == spindle::runtime::WaitReason::ChanRecv ||
             g->waitreason == spindle::runtime::WaitReason::Join)) {
          ++parked;
        }
      });
      if (parked == 2) break;
      std::this_thread::yield();
    }
    SPINDLE_FATAL("test: dying with parked fibers");
  });
  MESSAGE(err);
  CHECK(died);
  CHECK(err.find("fatal error: test: dying with parked fibers") != std::string::npos);
  CHECK(err.find("[chan receive]:\n\tfiber 2\n\t[line 3] in parked()\n") != std::string::npos);
  CHECK(err.find("[join]:\n\tfiber 3\n\t[line 5] in joiner()\n") != std::string::npos);
}

TEST_CASE("fibers joining fibers while cycles run back to back (2 Ps, checkmark)") {
  std::string out;
  spindle::Options o = capture(out);
  o.procs = 2;
  o.gcstress_continuous = 1;
  o.gccheckmark = true;
  spindle::Vm vm(o);
  spindle::Result r = vm.run(R"(
fun leaf(i) {
  var garbage = [];
  for (var k = 0; k < 20; k = k + 1) garbage.push(str(k));
  return i;
}
fun mid(i) {
  var a = spawn leaf(i);
  var b = spawn leaf(i + 1);
  return a.join() + b.join();
}
var fibers = [];
for (var i = 0; i < 100; i = i + 1) fibers.push(spawn mid(i));
var sum = 0;
for (var f in fibers) sum = sum + f.join();
print sum;
)");
  REQUIRE(r.ok());
  CHECK(out == "10000\n");
}

TEST_CASE("destroying a Vm stops its pending after() timers at once") {
  spindle::Vm other;  // keeps the runtime alive: ~Vm below stops its own fibers and timers
  std::string out;
  {
    spindle::Vm vm(capture(out));
    REQUIRE(vm.run("var t = after(100000); var u = after(100000);").ok());
  }  // returns without waiting out the timers (their G exits without sending)
  REQUIRE(other.run("var c = after(0.001); c.recv();").ok());
}
