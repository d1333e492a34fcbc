// hostnative_test.cc: the script -> C++ call (vm/hostnative.cc): every form of native and
// native method gives the script the same answers and errors, object arguments borrowed
// from the fiber's stack stay valid for the call and survive as copies after it (also
// while the collector runs continuously and fibers call natives in parallel), and the
// host's global lookups by name (vm/global_cache.h) resolve every name to its slot.
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "vm/spindle.h"

namespace {

struct Captured {
  std::vector<std::string> lines;
  spindle::Options options(int procs = 1) {
    spindle::Options o;
    o.output = [this](std::string_view s) { lines.emplace_back(s); };
    o.procs = procs;
    return o;
  }
};

spindle::Result addNumbers(spindle::Vm&, spindle::Args args) {
  return spindle::Result::success(spindle::Value::number(spindle::checkNumber(args, 0) + spindle::checkNumber(args, 1)));
}

spindle::Result countCalls(spindle::Vm&, spindle::Args args, void* data) {
  auto* n = static_cast<int*>(data);
  *n += static_cast<int>(args.size());
  return spindle::Result::success(spindle::Value::number(*n));
}

struct Acc {
  double total = 0;
};

}  // namespace

TEST_CASE("plain natives: a function, a captureless lambda, data, checks and errors") {
  Captured out;
  spindle::Vm vm(out.options());
  int calls = 0;
  vm.defineNative("add", 2, &addNumbers);
  vm.defineNative("twice", 1, [](spindle::Vm&, spindle::Args args) {
    return spindle::Result::success(spindle::Value::number(args[0].asNumber() * 2));
  });
  vm.defineNative("count", -1, &countCalls, &calls);
  vm.defineNative("fail", 0, [](spindle::Vm&, spindle::Args) { return spindle::Result::failure("no luck"); });
  REQUIRE(vm.run("print add(1, 2); print twice(21); print count(1, 2, 3); print count();").ok());
  CHECK(out.lines == std::vector<std::string>{"3\n", "42\n", "3\n", "3\n"});
  CHECK(calls == 3);
  spindle::Result r = vm.run("add(1, \"x\");");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Argument 2 of add() must be a number (string given).");
  r = vm.run("twice(nil);");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "twice() expected a number (nil given).");
  r = vm.run("fail();");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "no luck");
  r = vm.run("add(1);");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Expected 2 arguments but got 1.");
  // A plain native that blocks runs and returns as any other.
  vm.defineNative("slowAdd", 2, &addNumbers, spindle::Blocking::Yes);
  REQUIRE(vm.run("print slowAdd(2, 3);").ok());
  CHECK(out.lines.back() == "5\n");
}

TEST_CASE("object arguments are borrowed for the call; a copy outlives it") {
  Captured out;
  spindle::Vm vm(out.options());
  std::vector<spindle::Value> kept;
  std::vector<std::string> seen;
  vm.defineNative("keep", -1, [&](spindle::Vm&, spindle::Args args) {
    for (const spindle::Value& a : args) {
      seen.push_back(a.typeName() + ":" + a.toString());
      kept.push_back(a);  // a copy: its own handle
    }
    return spindle::Result::success(args.empty() ? spindle::Value() : args[0]);
  });
  // More arguments than fit in place (the vector path) and fewer, objects and strings.
  REQUIRE(vm.run("class P { init(x) { this.x = x; } } fun nothing() {}\n"
                 "var r = keep([1, 2], P(3), \"s\", 4, nil, true, nothing, P(5), [6], 7);\n"
                 "print r;\n"
                 "print keep([8])[0];")
              .ok());
  CHECK(out.lines == std::vector<std::string>{"[1, 2]\n", "8\n"});
  REQUIRE(seen.size() == 11);
  CHECK(seen[0] == "list:[1, 2]");
  CHECK(seen[2] == "string:s");
  CHECK(seen[4] == "nil:nil");
  CHECK(seen[10] == "list:[8]");
  // The script no longer holds them: the copies do, across full collections.
  REQUIRE(vm.run("r = nil;").ok());
  vm.collect();
  vm.collect();
  CHECK(vm.listLength(kept[0]) == std::optional<std::size_t>(2));
  CHECK(vm.field(kept[1], "x")->asNumber() == 3);
  CHECK(vm.field(kept[7], "x")->asNumber() == 5);
  CHECK(vm.listGet(kept[10], 0)->asNumber() == 8);
  // A borrowed argument passed back into the Vm from inside the native.
  vm.defineNative("len", 1, [](spindle::Vm& v, spindle::Args args) {
    return spindle::Result::success(spindle::Value::number(static_cast<double>(v.listLength(args[0]).value_or(99))));
  });
  REQUIRE(vm.run("print len([1, 2, 3]); print len(4);").ok());
  CHECK(out.lines.back() == "99\n");
  CHECK(out.lines[out.lines.size() - 2] == "3\n");
}

TEST_CASE("method<T> of a captureless lambda and of a capturing one") {
  Captured out;
  spindle::Vm vm(out.options());
  double offset = 100;
  vm.defineClass("Acc")
      .init(0, [](spindle::Vm& v, const spindle::Value& self, spindle::Args) {
        v.setHostData(self, std::make_unique<Acc>());
        return spindle::Result::success({});
      })
      .method<Acc>("add", 1,
                   [](spindle::Vm&, const spindle::Value& self, Acc& a, spindle::Args args) {
                     CHECK(self.typeName() == "instance");
                     a.total += spindle::checkNumber(args, 0);
                     return spindle::Result::success(spindle::Value::number(a.total));
                   })
      .method<Acc>("shifted", 0,
                   [&offset](spindle::Vm&, const spindle::Value&, Acc& a, spindle::Args) {
                     return spindle::Result::success(spindle::Value::number(a.total + offset));
                   })
      .method("me", 0, [](spindle::Vm&, const spindle::Value& self, spindle::Args) {
        return spindle::Result::success(self);
      })
      .define();
  REQUIRE(vm.run("var a = Acc(); a.add(1); print a.add(2); print a.shifted(); print a.me() == a;\n"
                 "class Sub < Acc { init() {} }\n"
                 "var s = Sub();")
              .ok());
  CHECK(out.lines == std::vector<std::string>{"3\n", "103\n", "true\n"});
  spindle::Result r = vm.run("s.add(1);");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Acc.add() needs an instance whose init ran.");
  r = vm.run("s.shifted();");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Acc.shifted() needs an instance whose init ran.");
  r = vm.run("a.add(\"x\");");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Argument 1 of Acc.add() must be a number (string given).");
}

TEST_CASE("borrowed arguments and their copies while the collector runs and fibers call in parallel (threads)") {
  spindle::Options o;
  o.output = [](std::string_view) {};
  o.procs = 4;
  o.gcstress_continuous = 1;
  spindle::Vm vm(o);
  std::mutex lock;
  std::vector<spindle::Value> kept;
  std::atomic<int> calls{0};
  vm.defineNative("keep", 2, [&](spindle::Vm&, spindle::Args args) {
    calls.fetch_add(1, std::memory_order_relaxed);
    if (spindle::checkNumber(args, 1) == 0) {
      std::lock_guard<std::mutex> lk(lock);
      kept.push_back(args[0]);
    }
    return spindle::Result::success(args[0]);
  });
  REQUIRE(vm.run("fun work(k) {\n"
                 "  var total = 0;\n"
                 "  for (var i = 0; i < 200; i = i + 1) {\n"
                 "    var l = keep([k, i, [i]], i % 50);\n"
                 "    total = total + l[1];\n"
                 "  }\n"
                 "  return total;\n"
                 "}\n"
                 "var fs = [];\n"
                 "for (var k = 0; k < 8; k = k + 1) fs.push(spawn work(k));\n"
                 "var sum = 0;\n"
                 "for (var k = 0; k < 8; k = k + 1) sum = sum + fs[k].join();\n")
              .ok());
  CHECK(vm.global("sum")->asNumber() == 8 * 19900);
  CHECK(calls.load() == 1600);
  vm.collect();
  REQUIRE(kept.size() == 8 * 4);
  double total = 0;
  for (const spindle::Value& l : kept) {
    REQUIRE(vm.listLength(l) == std::optional<std::size_t>(3));
    total += vm.listGet(l, 1)->asNumber();
    CHECK(vm.listLength(*vm.listGet(l, 2)) == std::optional<std::size_t>(1));
  }
  CHECK(total == 8 * (0 + 50 + 100 + 150));
}

TEST_CASE("globals by name: every name keeps its slot through the host's cache") {
  Captured out;
  spindle::Vm vm(out.options());
  // More names than the cache has buckets: lookups that collide replace each other.
  constexpr int kNames = 300;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < kNames; ++i) vm.setGlobal("g" + std::to_string(i), spindle::Value::number(i * 10 + round));
  }
  REQUIRE(vm.run("print g0 + g299; g7 = \"seven\";").ok());
  CHECK(out.lines.back() == std::to_string(2 + 2992) + "\n");
  for (int i = 0; i < kNames; ++i) {
    const std::optional<spindle::Value> v = vm.global("g" + std::to_string(i));
    REQUIRE(v.has_value());
    if (i == 7) {
      CHECK(v->asString() == "seven");
    } else {
      CHECK(v->asNumber() == i * 10 + 2);
    }
  }
  // A name the host sets first and a script declares later is one global.
  vm.setGlobal("later", spindle::Value::string("host"));
  REQUIRE(vm.run("print later; var later = 1;").ok());
  vm.setGlobal("later", spindle::Value::number(2));
  REQUIRE(vm.run("print later;").ok());
  CHECK(out.lines[out.lines.size() - 2] == "host\n");
  CHECK(out.lines.back() == "2\n");
}
