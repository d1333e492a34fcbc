// interrupt_seeded_test.cc: Vm::interrupt and time_limit under a reproducible schedule
// (Options::sched_seed). Seeded sysmon runs only the embedder's hook (runtime/sysmon.cc),
// which wakes the interrupted fibers parked on channels and checks the time limit; without
// it these runs never end (the interrupt holds the deadlock report while nothing wakes the
// parked fibers, and a spinning loop never meets its deadline). Its own process: the
// schedule's seed is process-wide, fixed by the first Vm.
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "doctest/doctest.h"
#include "vm/spindle.h"

namespace {

spindle::Options seeded() {
  spindle::Options o;
  o.procs = 2;
  o.sched_seed = 7;
  return o;
}

}  // namespace

TEST_CASE("seeded: an interrupt wakes fibers parked on a channel while another spins") {
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  std::string out;  // written by print, read after the runs
  spindle::Options o = seeded();
  o.output = [&](std::string_view s) {
    std::lock_guard<std::mutex> lk(mu);
    out += s;
  };
  spindle::Vm vm(o);
  vm.defineNative("ready", 0, [&](spindle::Vm&, spindle::Args) {
    std::lock_guard<std::mutex> lk(mu);
    ++arrived;
    cv.notify_all();
    return spindle::Result::success({});
  });
  std::thread t([&] {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return arrived >= 3; });
    vm.interrupt();
  });
  spindle::Result r = vm.run(R"(
var c = Channel();
fun waiter() { ready(); return c.recv(); }
fun spin() { ready(); while (true) {} }
var w = spawn waiter();
var s = spawn spin();
ready();
c.recv();
)");
  t.join();
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Interrupted.");
  // The Vm runs on; the parked waiter failed too.
  spindle::Result later = vm.run("try { w.join(); print \"returned\"; } catch (e) { print e.message; }");
  CHECK(later.ok());
  std::lock_guard<std::mutex> lk(mu);
  CHECK(out == "Interrupted.\n");
}

TEST_CASE("seeded: time_limit ends a spinning loop and a parked main fiber") {
  spindle::Options o = seeded();
  o.time_limit = 0.05;
  spindle::Vm vm(o);
  spindle::Result r = vm.run("var i = 0; while (true) { i = i + 1; }");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Time limit exceeded.");
  r = vm.run("var c = Channel(); fun spin() { while (true) {} } spawn spin(); c.recv();");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Time limit exceeded.");
  CHECK(vm.run("var x = 6 * 7;").ok());
}
