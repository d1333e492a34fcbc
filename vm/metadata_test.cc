// metadata_test.cc: the VM's metadata about a program (inline-cache records, shapes,
// protos) is collected like the program's own objects: what a dropped program made
// leaves neither marked heap nor roots nor protos behind. Memory bounds, not timings.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/gc.h"
#include "vm/shape.h"
#include "vm/spindle.h"
#include "vm/vm.h"

namespace {

// Bytes marked by a full cycle started now.
std::uint64_t markedAfterGC(spindle::Vm& vm) {
  REQUIRE(vm.run("gc();").ok());
  return spindle::runtime::gcStats().heapMarked;
}

// The VM's roots (all strong: the interned-string table is none).
std::size_t strongRoots(spindle::Vm& vm) {
  std::size_t n = 0;
  vm.internal().forEachRoot([](void* ctx, void**) { ++*static_cast<std::size_t*>(ctx); }, &n);
  return n;
}

constexpr std::uint64_t kListBytes = 65536 * 8;  // one captured list's storage

TEST_CASE("inline-cache records die with their site; a live site keeps only its last one") {
  spindle::Vm vm;
  REQUIRE(vm.run("fun make(n) {\n"
                 "  var big = [];\n"
                 "  for (var i = 0; i < n; i = i + 1) big.push(i);\n"
                 "  class C { m() { return big.len(); } }\n"
                 "  return C();\n"
                 "}\n"
                 "fun site(o) { return o.m(); }")
              .ok());
  const std::uint64_t control = markedAfterGC(vm);
  // 16 classes at one site: 8 records (megamorphic after that), each with a method that
  // captured a 512 KiB list.
  REQUIRE(vm.run("for (var k = 0; k < 16; k = k + 1) site(make(65536));").ok());
  const std::uint64_t live = markedAfterGC(vm);
  CHECK(live < control + 2 * kListBytes);  // the site's current record: one list
  REQUIRE(vm.run("site = nil;").ok());
  const std::uint64_t dropped = markedAfterGC(vm);
  CHECK(dropped < control + kListBytes / 4);
}

TEST_CASE("shapes of a class declared in a function die with it: no root per shape") {
  spindle::Vm vm;
  REQUIRE(vm.run("fun make(i) {\n"
                 "  class P { init(x) { this.x = x; this.y = x; } }\n"
                 "  return P(i);\n"
                 "}\n"
                 "var s = 0;\n"
                 "fun many(n) { for (var i = 0; i < n; i = i + 1) s = s + make(i).y; }\n"
                 "many(100);")
              .ok());
  const std::uint64_t control = markedAfterGC(vm);
  const std::size_t roots = strongRoots(vm);
  REQUIRE(vm.run("many(20000);").ok());
  const std::uint64_t after = markedAfterGC(vm);
  // 20000 classes made 60000 shapes: none is a root, none survives.
  CHECK(strongRoots(vm) <= roots + 4);
  CHECK(after < control + 64 * 1024);
}

TEST_CASE("a script's protos are freed once nothing reaches its functions") {
  spindle::Vm vm;
  spindle::vm::VM& in = vm.internal();
  constexpr int kRuns = 200;
  std::vector<std::weak_ptr<const spindle::lang::FunctionProto>> protos;
  for (int i = 0; i < kRuns; ++i) {
    // Each snippet replaces the global `f`: only the last one's protos stay reachable.
    spindle::lang::CompileResult r =
        in.compile("fun f() { return " + std::to_string(i) + "; } f();");
    REQUIRE(r.ok());
    protos.push_back(r.script);
    std::uint32_t handle = 0;
    in.withP([&] { handle = in.newHandle(spindle::vm::Value::object(in.load(std::move(r.script)))); });
    spindle::vm::Value result;
    REQUIRE(in.call(in.handleValue(handle), nullptr, 0, &result));
    in.releaseHandle(handle);
  }
  // Finalizers run on the finalizer G after the cycle: collect until they did.
  auto expired = [&] {
    int n = 0;
    for (const auto& p : protos) n += p.expired() ? 1 : 0;
    return n;
  };
  for (int i = 0; i < 2000 && expired() < kRuns - 1; ++i) {
    REQUIRE(vm.run("gc();").ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(expired() == kRuns - 1);
  CHECK_FALSE(protos.back().expired());
  // The live one still runs (its code is intact after the cycles).
  auto v = vm.global("f");
  REQUIRE(v.has_value());
  spindle::Result called = vm.call(*v, {});
  REQUIRE(called.ok());
  CHECK(called.value().asNumber() == kRuns - 1);
}

TEST_CASE("vm.run of many snippets keeps the heap and the roots bounded") {
  spindle::Vm vm;
  REQUIRE(vm.run("class K { init() { this.a = 1; } get() { return this.a; } }").ok());
  const std::uint64_t control = markedAfterGC(vm);
  const std::size_t roots = strongRoots(vm);
  for (int i = 0; i < 2000; ++i) {
    REQUIRE(vm.run("fun g() { class L { m() { return 1; } } return L().m() + K().get(); } g();").ok());
  }
  CHECK(markedAfterGC(vm) < control + 64 * 1024);
  CHECK(strongRoots(vm) <= roots + 4);
}

TEST_CASE("fibers adding the same fields at once share one transition per key") {
  spindle::Options o;
  o.procs = 4;
  spindle::Vm vm(o);
  // 64 fresh classes; 4 fibers each make an instance of every class and add a, b, c, so
  // the first transitions of each class race (the sites go megamorphic after 8 classes).
  REQUIRE(vm.run("var classes = [];\n"
                 "for (var i = 0; i < 64; i = i + 1) { class R {} classes.push(R); }\n"
                 "var done = Channel(4);\n"
                 "fun work() {\n"
                 "  for (var i = 0; i < 64; i = i + 1) {\n"
                 "    var r = classes[i]();\n"
                 "    r.a = 1; r.b = 2; r.c = 3;\n"
                 "  }\n"
                 "  done.send(1);\n"
                 "}\n"
                 "for (var w = 0; w < 4; w = w + 1) spawn work();\n"
                 "for (var w = 0; w < 4; w = w + 1) done.recv();\n"
                 "gc();")
              .ok());
  spindle::vm::VM& in = vm.internal();
  auto classes = vm.global("classes");
  REQUIRE(classes.has_value());
  int checked = 0;
  for (int i = 0; i < 64; ++i) {
    spindle::Result k = vm.run("var k = classes[" + std::to_string(i) + "];");
    REQUIRE(k.ok());
    spindle::vm::Value kv = in.global(in.globalSlot("k"));
    REQUIRE(spindle::vm::isKind(kv, spindle::vm::ObjKind::Class));
    const spindle::vm::Shape* s = spindle::vm::as<spindle::vm::ObjClass>(kv)->rootShape;
    for (const char* key : {"a", "b", "c"}) {
      const spindle::vm::Shape* child = s->children;
      REQUIRE(child != nullptr);
      CHECK(child->sibling == nullptr);  // exactly one transition
      CHECK(child->key->view() == key);
      CHECK(child->count == s->count + 1);
      s = child;
    }
    CHECK(s->children == nullptr);
    ++checked;
  }
  CHECK(checked == 64);
}

}  // namespace

TEST_CASE("calling a callable field (math.floor) keeps the site's one record: no update per call") {
  spindle::Vm vm;
  REQUIRE(vm.run("fun g(o) { for (var i = 0; i < 100; i = i + 1) o.f(i); }\n"
                 "class C {}\n"
                 "var c = C();\n"
                 "c.f = math.floor;").ok());
  spindle::vm::VM& in = vm.internal();
  const std::uint64_t before = in.allocations(spindle::vm::ObjKind::InlineCache);
  REQUIRE(vm.run("g(c);").ok());
  CHECK(in.allocations(spindle::vm::ObjKind::InlineCache) - before == 1);
  // math's own fields are called the same way.
  const std::uint64_t mathBefore = in.allocations(spindle::vm::ObjKind::InlineCache);
  REQUIRE(vm.run("fun h() { var s = 0; for (var i = 0; i < 100; i = i + 1) s = s + math.abs(i); return s; }\n"
                 "h();").ok());
  CHECK(in.allocations(spindle::vm::ObjKind::InlineCache) - mathBefore == 1);
}

TEST_CASE("a string method site keeps one record (String's root shape): a hit skips the lookup") {
  spindle::Vm vm;
  REQUIRE(vm.run("fun g(s) { var n = 0; for (var i = 0; i < 100; i = i + 1) n = n + s.sub(1, 3).len(); return n; }").ok());
  spindle::vm::VM& in = vm.internal();
  const std::uint64_t before = in.allocations(spindle::vm::ObjKind::InlineCache);
  REQUIRE(vm.run("g(\"hello\");").ok());
  CHECK(in.allocations(spindle::vm::ObjKind::InlineCache) - before == 2);  // sub's site, len's
  // One site seeing strings and instances with a method of the same name calls each its own.
  auto r = vm.run(
      "class L { len() { return 100; } }\n"
      "fun h(x) { return x.len(); }\n"
      "if (h(\"ab\") + h(L()) + h(\"abc\") + h(L()) != 205) nil.wrongMethod;");
  CHECK(r.ok());
}
