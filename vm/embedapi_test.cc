// embedapi_test.cc: the embedding API's chunks and memory figures (vm/chunk.cc,
// vm/hostmem.cc): Vm::compile and run(source, name) (compile without running, compile
// errors and traces naming the chunk), the process-wide soft memory limit
// (Runtime::setMemoryLimit) and Vm::heapStats; and the header's first examples compiled
// and run as written in vm/spindle.h.
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "doctest/doctest.h"
#include "runtime/gc.h"
#include "vm/spindle.h"

namespace {

spindle::Options capture(std::string* out) {
  spindle::Options o;
  o.output = [out](std::string_view s) { *out += s; };
  return o;
}

}  // namespace

TEST_CASE("compile makes a function without running the chunk; calling it runs it") {
  std::string out;
  spindle::Vm vm(capture(&out));
  spindle::Result fn = vm.compile("var hits = 1; print \"top\"; fun update(dt) { hits = hits + dt; return hits; }",
                                  "game.lox");
  REQUIRE(fn.ok());
  CHECK(fn.value().isObject());
  CHECK(out.empty());                       // nothing ran
  CHECK(!vm.global("update").has_value());  // its globals are not defined yet
  REQUIRE(vm.call(fn.value(), {}).ok());
  CHECK(out == "top\n");
  spindle::Value update = *vm.global("update");
  spindle::Result r = vm.call(update, {spindle::Value::number(2)});
  REQUIRE(r.ok());
  CHECK(r.value().asNumber() == 3);
  // The chunk's globals are the program's: an unnamed run sees them.
  REQUIRE(vm.run("print hits;").ok());
  CHECK(out == "top\n3\n");
  // Calling the chunk again runs its top level again.
  REQUIRE(vm.call(fn.value(), {}).ok());
  CHECK(out == "top\n3\ntop\n");
}

TEST_CASE("compile errors name the chunk, every line") {
  spindle::Vm vm;
  spindle::Result r = vm.compile("var = 1;\nprint ;", "broken.lox");
  REQUIRE(!r.ok());
  CHECK(r.error().kind == spindle::Error::Kind::Compile);
  CHECK(r.error().message ==
        "broken.lox: [line 1] Error at '=': Expect variable name.\n"
        "broken.lox: [line 2] Error at ';': Expect expression.");
  // Unnamed: the diagnostics as run() gives them.
  spindle::Result unnamed = vm.compile("print ;");
  REQUIRE(!unnamed.ok());
  CHECK(unnamed.error().message == vm.run("print ;").error().message);
  CHECK(vm.run("print ;", "x.lox").error().message == "x.lox: [line 1] Error at ';': Expect expression.");
}

TEST_CASE("runtime traces name the chunk's frames, as for imported modules") {
  spindle::Vm vm;
  REQUIRE(vm.run("fun helper(x) {\n  return x.missing;\n}\nfun update(dt) {\n  return helper(dt);\n}",
                 "update.lox")
              .ok());
  spindle::Result r = vm.call(*vm.global("update"), {spindle::Value::number(1)});
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Only instances have properties.");
  REQUIRE(r.error().trace.size() == 2);
  CHECK(r.error().trace[0] == "[line 2] in helper() (update.lox)");
  CHECK(r.error().trace[1] == "[line 5] in update() (update.lox)");
  // An error in the chunk's top level, run by name.
  spindle::Result top = vm.run("var a = 1;\nprint a + nil;", "main.lox");
  REQUIRE(!top.ok());
  REQUIRE(top.error().trace.size() == 1);
  CHECK(top.error().trace[0] == "[line 2] in script (main.lox)");
  // A chunk calling unnamed code and back: each frame names its own chunk (or none).
  REQUIRE(vm.run("fun bridge(x) { return update(x); }").ok());
  spindle::Result mixed = vm.call(*vm.global("bridge"), {spindle::Value::number(1)});
  REQUIRE(!mixed.ok());
  REQUIRE(mixed.error().trace.size() == 3);
  CHECK(mixed.error().trace[2] == "[line 1] in bridge()");
}

TEST_CASE("a named chunk imports relative to the main script, through module_loader") {
  spindle::Options o;
  o.module_loader = [](const std::string& path) -> std::optional<std::string> {
    if (path == "lib.lox") return std::string("fun twice(x) { return 2 * x; }");
    return std::nullopt;
  };
  o.io = false;
  spindle::Vm vm(o);
  REQUIRE(vm.run("import \"lib.lox\" as lib; var four = lib.twice(2);", "scripts/main.lox").ok());
  CHECK(vm.global("four")->asNumber() == 4);
}

TEST_CASE("the process-wide soft memory limit caps the collector's goal") {
  const std::uint64_t before = spindle::Runtime::memoryLimit();
  spindle::Runtime runtime;
  const std::uint64_t limit = 6u << 20;
  CHECK(spindle::Runtime::setMemoryLimit(limit) == before);
  CHECK(spindle::Runtime::memoryLimit() == limit);
  spindle::Vm vm;
  const spindle::HeapStats start = vm.heapStats();
  // About 40 MiB of garbage: with a 6 MiB limit the collector must cycle to keep the goal.
  REQUIRE(vm.run("for (var i = 0; i < 20000; i = i + 1) { var l = []; for (var j = 0; j < 64; j = j + 1) l.push(j); }")
              .ok());
  CHECK(spindle::runtime::gcStats().heapGoal <= limit);
  CHECK(vm.heapStats().gc_cycles > start.gc_cycles);
  // Scripts read and write the same limit.
  REQUIRE(vm.run("var old = setMemoryLimit(1/0);").ok());
  CHECK(vm.global("old")->asNumber() == static_cast<double>(limit));
  CHECK(spindle::Runtime::memoryLimit() == spindle::Runtime::kNoMemoryLimit);
  spindle::Runtime::setMemoryLimit(before);
}

TEST_CASE("heapStats counts one Vm's allocations, not another's") {
  spindle::Runtime runtime;
  spindle::Vm a;
  spindle::Vm b;
  const spindle::HeapStats a0 = a.heapStats();
  const spindle::HeapStats b0 = b.heapStats();
  REQUIRE(a.run("var keep = []; for (var i = 0; i < 100; i = i + 1) keep.push([i]);").ok());
  const spindle::HeapStats a1 = a.heapStats();
  CHECK(a1.objects_allocated >= a0.objects_allocated + 101);
  CHECK(a1.bytes_allocated > a0.bytes_allocated);
  CHECK(b.heapStats().objects_allocated == b0.objects_allocated);
  CHECK(b.heapStats().bytes_allocated == b0.bytes_allocated);
  // Objects the host makes through a Vm count for it.
  spindle::Value l = b.list({});
  CHECK(b.heapStats().objects_allocated > b0.objects_allocated);
  // Cycles are counted from each Vm's creation.
  const std::uint64_t seenA = a.heapStats().gc_cycles;
  a.collect();
  CHECK(a.heapStats().gc_cycles >= seenA + 1);
  CHECK(b.heapStats().gc_cycles >= 1);
}

// vm/spindle.h's first example, as written there.
TEST_CASE("the header's first example compiles and runs") {
  spindle::Vm vm({.gc_percent = 100});
  vm.defineNative("twice", 1, [](spindle::Vm&, std::span<const spindle::Value> args) {
    return spindle::Result::success(spindle::Value::number(spindle::checkNumber(args, 0) * 2));
  });
  spindle::Result r = vm.run("fun add(a, b) { return a + b; } print twice(21);");
  if (!r.ok()) std::fputs(r.error().format().c_str(), stderr);
  spindle::Value add = *vm.global("add");
  spindle::Result sum = vm.call(add, {spindle::Value::number(1), spindle::Value::number(2)});
  CHECK(r.ok());
  REQUIRE(sum.ok());
  CHECK(sum.value().asNumber() == 3);
}

// The header's native class example, as written there.
TEST_CASE("the header's native class example compiles and runs") {
  std::string out;
  spindle::Vm vm(capture(&out));
  struct Counter { double n; };
  vm.defineClass("Counter")
      .init(1, [](spindle::Vm& vm, const spindle::Value& self, spindle::Args args) {
        vm.setHostData(self, std::make_unique<Counter>(Counter{spindle::checkNumber(args, 0)}));
        return spindle::Result::success({});
      })
      .method<Counter>("add", 1, [](spindle::Vm&, const spindle::Value&, Counter& c,
                                    spindle::Args args) {
        c.n += spindle::checkNumber(args, 0);
        return spindle::Result::success(spindle::Value::number(c.n));
      })
      .define();
  vm.run("var c = Counter(1); print c.add(2);");  // 3
  CHECK(out == "3\n");
}

TEST_CASE("a Vm past its memory_limit fails in the allocating fiber; another Vm and the host go on") {
  spindle::Runtime runtime({.procs = 2});
  const std::uint64_t limit = 8u << 20;
  spindle::Vm limited({.memory_limit = limit});
  spindle::Vm other;
  // The other Vm churns garbage on another host thread meanwhile.
  spindle::Result churned;
  std::thread churn([&] {
    churned = other.run(
        "var total = 0;\n"
        "for (var i = 0; i < 200000; i = i + 1) { var l = [i, i, i, i]; total = total + l.len(); }");
  });
  spindle::Result r = limited.run(
      "fun grow() {\n"
      "  var keep = [];\n"
      "  try {\n"
      "    while (true) keep.push([1, 2, 3, 4, 5, 6, 7, 8]);\n"
      "  } catch (e) {\n"
      "    var n = keep.len();\n"
      "    keep = nil;\n"
      "    return [e.message, n];\n"
      "  }\n"
      "}\n"
      "var f = spawn grow();\n"
      "var got = f.join();\n");
  churn.join();
  REQUIRE(r.ok());
  spindle::Value got = *limited.global("got");
  CHECK(limited.listGet(got, 0)->asString() == "Out of memory.");
  // It failed near the limit, not early: the estimate counts what it holds plus the garbage
  // made since the last mark began (here the keep list's outgrown arrays, at most a tenth
  // of it), so it held at least half the limit in small lists (each over 64 bytes: its 8
  // values alone are 64).
  CHECK(limited.listGet(got, 1)->asNumber() * 64 > static_cast<double>(limit / 2));
  REQUIRE(churned.ok());
  CHECK(other.global("total")->asNumber() == 800000);
  CHECK(!other.heapStats().live_bytes_known);
  // The limited Vm works again once a cycle saw its heap dropped.
  limited.collect();
  const spindle::HeapStats hs = limited.heapStats();
  REQUIRE(hs.live_bytes_known);
  CHECK(hs.marked_bytes < limit);
  REQUIRE(limited.run("var again = []; for (var i = 0; i < 1000; i = i + 1) again.push([i]); var n = again.len();").ok());
  CHECK(limited.global("n")->asNumber() == 1000);
  // An uncaught one fails the run with the error, and the Vm goes on.
  spindle::Result uncaught = limited.run("var hog = []; while (true) hog.push([1, 2, 3, 4]);");
  REQUIRE(!uncaught.ok());
  CHECK(uncaught.error().message == "Out of memory.");
  REQUIRE(limited.run("hog = nil;").ok());
  limited.collect();
  REQUIRE(limited.run("var fine = [1, 2, 3];").ok());
}

TEST_CASE("heapStats' live bytes follow what one Vm holds, whatever another allocates") {
  spindle::Runtime runtime;
  spindle::Vm a({.memory_limit = spindle::Runtime::kNoMemoryLimit});
  spindle::Vm b({.memory_limit = spindle::Runtime::kNoMemoryLimit});
  REQUIRE(a.heapStats().live_bytes_known);
  REQUIRE(a.run("var keep = []; for (var i = 0; i < 10000; i = i + 1) keep.push([i]);").ok());
  a.collect();
  const std::uint64_t held = a.heapStats().marked_bytes;
  CHECK(held >= 10000u * 16u);  // each [i] is at least a list header
  CHECK(a.heapStats().live_bytes >= held);
  // b holds next to nothing however much garbage it makes.
  REQUIRE(b.run("for (var i = 0; i < 20000; i = i + 1) { var l = [i, i]; }").ok());
  b.collect();
  CHECK(b.heapStats().marked_bytes < held / 10);
  CHECK(a.heapStats().marked_bytes == held);  // a's reachable heap did not change
  // a drops its lists: the next cycle finds them gone.
  REQUIRE(a.run("keep = nil;").ok());
  a.collect();
  CHECK(a.heapStats().marked_bytes < held / 10);
}
