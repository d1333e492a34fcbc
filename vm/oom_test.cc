// oom_test.cc: out of memory is a runtime error of the Vm whose script allocated (vm/oom.cc,
// runtime/oom.h): the host and every other Vm go on; and the thread cap's refusal of a
// foreign call is a runtime error of the calling fiber (runtime/threadlimit.h).
#include <atomic>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "doctest/doctest.h"
#include "runtime/threadlimit.h"
#include "vm/spindle.h"

namespace {

// A Vm whose prints are collected (one line per print).
struct Captured {
  std::mutex lock;
  std::vector<std::string> lines;
  spindle::Options options(int procs) {
    spindle::Options o;
    o.procs = procs;
    o.output = [this](std::string_view s) {
      std::lock_guard<std::mutex> lk(lock);
      lines.emplace_back(s);
    };
    return o;
  }
  std::string joined() {
    std::lock_guard<std::mutex> lk(lock);
    std::string out;
    for (const std::string& l : lines) out += l;
    return out;
  }
};

// More than the heap's whole reservation (16 GiB at most): never satisfiable.
constexpr const char* kHuge = "Bytes(17179869184 + 1);";

}  // namespace

TEST_CASE("one Vm's out of memory is its runtime error; another Vm running meanwhile goes on") {
  Captured outA, outB;
  spindle::Vm a(outA.options(2));
  spindle::Vm b(outB.options(2));
  std::atomic<bool> stop{false};
  std::atomic<int> bRuns{0};
  std::string bError;
  std::thread other([&] {
    while (!stop.load(std::memory_order_acquire)) {
      spindle::Result r = b.run(
          "var l = []; for (var i = 0; i < 2000; i = i + 1) l.push([i, \"x\" + \"y\"]); "
          "fun f() { return l.len(); } var g = spawn f(); print g.join();");
      if (!r.ok()) {
        bError = r.error().message;
        break;
      }
      bRuns.fetch_add(1, std::memory_order_release);
    }
  });
  for (int i = 0; i < 20; ++i) {
    spindle::Result r = a.run(std::string("print \"before\"; ") + kHuge + " print \"after\";");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == "Out of memory.");
    REQUIRE_FALSE(r.error().trace.empty());
    CHECK(r.error().trace.front() == "[line 1] in script");
  }
  // In a fiber of a, as well; then a itself still runs scripts.
  spindle::Result inFiber =
      a.run(std::string("fun f() { return ") + kHuge + " } var g = spawn f(); g.join();");
  REQUIRE_FALSE(inFiber.ok());
  CHECK(inFiber.error().message == "Out of memory.");
  REQUIRE(a.run("print 40 + 2;").ok());
  while (bRuns.load(std::memory_order_acquire) < 3 && bError.empty()) std::this_thread::yield();
  stop.store(true, std::memory_order_release);
  other.join();
  CHECK(bError.empty());
  CHECK(bRuns.load() >= 3);
  CHECK(outB.joined().find("2000\n") != std::string::npos);
  CHECK(outA.joined().find("after") == std::string::npos);
  CHECK(outA.joined().find("42\n") != std::string::npos);
}

TEST_CASE("out of memory is caught by try as an Error; the script goes on") {
  Captured out;
  spindle::Vm vm(out.options(1));
  spindle::Result r = vm.run(std::string("try { ") + kHuge +
                             " } catch (e) { print e.message; print e.trace[0]; } print \"on\";");
  REQUIRE(r.ok());
  CHECK(out.joined() == "Out of memory.\n[line 1] in script\non\n");
}

TEST_CASE("std::bad_alloc escaping a host native is the script's \"Out of memory.\"") {
  Captured out;
  spindle::Vm vm(out.options(1));
  vm.defineNative("grow", 0, [](spindle::Vm&, spindle::Args) -> spindle::Result {
    throw std::bad_alloc();
  });
  spindle::Result caught = vm.run("try { grow(); } catch (e) { print e.message; }");
  REQUIRE(caught.ok());
  CHECK(out.joined() == "Out of memory.\n");
  spindle::Result uncaught = vm.run("grow();");
  REQUIRE_FALSE(uncaught.ok());
  CHECK(uncaught.error().message == "Out of memory.");
}

TEST_CASE("Options::max_threads: foreign calls past the cap fail in their own fibers") {
  Captured out;
  spindle::Options o = out.options(2);
  o.max_threads = 6;  // 2 Ps and the host thread: at most 3 foreign calls block at once
  spindle::Vm vm(o);
  CHECK(spindle::runtime::maxThreads() == 6);
  spindle::Result r = vm.run(R"(
var usleep = FFI.fn("usleep", "int", ["uint32"]);
var done = Channel(20);
fun blocker() {
  try { usleep(300000); done.send("ok"); } catch (e) { done.send(e.message); }
}
for (var i = 0; i < 12; i = i + 1) spawn blocker();
var ok = 0; var refused = 0; var msg = "";
for (var i = 0; i < 12; i = i + 1) {
  var m = done.recv();
  if (m == "ok") ok = ok + 1; else { refused = refused + 1; msg = m; }
}
print ok + refused; print ok <= 3; print refused >= 9; print msg;
)");
  REQUIRE(r.ok());
  CHECK(out.joined() ==
        "12\ntrue\ntrue\nThread limit exceeded: 3 foreign calls are blocked (max threads 6).\n");
  CHECK(spindle::runtime::blockingThreads() == 0);
}
