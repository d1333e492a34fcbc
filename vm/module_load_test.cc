// module_load_test.cc: how a module's top level runs and how its object reads (module.cc):
// live reads and writes of a module's globals through its object (inline-cached), a top
// level that parks (channels, sleep, join) while its importer waits, exactly one run when
// many fibers import a new module at once on several Ps (the others wait and share its
// object or its error), cycles between concurrent importers, and the fatal-error fiber
// dump naming module files. Tagged "threads": it also runs under TSan and ASan.
#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "runtime/g.h"
#include "runtime/proc.h"
#include "runtime/testing/child.h"
#include "runtime/throw.h"
#include "vm/spindle.h"
#include "vm/vm.h"

namespace {

struct Host {
  std::string out;
  std::map<std::string, std::string> files;  // the loader's modules
  spindle::Options options() {
    spindle::Options o;
    o.procs = 4;  // process-wide: the first Vm of this binary sets it
    o.output = [this](std::string_view s) { out.append(s); };
    o.module_loader = [this](const std::string& path) -> std::optional<std::string> {
      auto it = files.find(path);
      if (it == files.end()) return std::nullopt;
      return it->second;
    };
    return o;
  }
};

int count(const std::string& text, const std::string& part) {
  int n = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// joinWaiters(): how many fibers are parked in a join or an import wait (both
// WaitReason::Join), so a module can hold its top level until every importer waits.
void defineJoinWaiters(spindle::Vm& vm) {
  vm.defineNative("joinWaiters", 0, [](spindle::Vm& v, std::span<const spindle::Value>) {
    int n = 0;
    v.internal().sched().forEachG([&](spindle::runtime::G* g) {
      if (g->status.load() == spindle::runtime::GStatus::Waiting &&
          g->waitreason == spindle::runtime::WaitReason::Join) {
        ++n;
      }
    });
    return spindle::Result::success(spindle::Value::number(n));
  });
}

}  // namespace

TEST_CASE("m.name reads the module's global live; m.name = v writes it") {
  Host h;
  h.files["state.lox"] =
      "var x = 1;\n"
      "fun setX(v) { x = v; }\n"
      "fun getX() { return x; }\n"
      "fun f() { return \"first\"; }\n"
      "fun g() { return \"second\"; }\n"
      "fun swap() { f = g; }\n";
  spindle::Vm vm(h.options());
  // Each read site runs several times, so its inline cache is hit after the first.
  REQUIRE(vm.run("import \"state.lox\" as m;\n"
                 "fun read() { return m.x; }\n"
                 "for (var i = 0; i < 3; i = i + 1) { m.setX(i * 10); print read(); }\n"
                 "for (var i = 0; i < 2; i = i + 1) { print m.f(); m.swap(); }\n"
                 "var ff = m.f; print ff();\n"
                 "m.x = 7; print m.getX(); print m.x;\n"
                 "for (var i = 0; i < 3; i = i + 1) m.x = m.x + 1;\n"
                 "print m.getX();")
              .ok());
  CHECK(h.out == "0\n10\n20\nfirst\nsecond\nsecond\n7\n7\n10\n");
  // The host's field and setField, and invoke, see the same globals.
  std::optional<spindle::Value> m = vm.global("m");
  REQUIRE(m.has_value());
  std::optional<spindle::Value> x = vm.field(*m, "x");
  REQUIRE(x.has_value());
  CHECK(x->asNumber() == 10);
  CHECK(vm.setField(*m, "x", spindle::Value::number(3)));
  CHECK(vm.invoke(*m, "getX", {}).value().asNumber() == 3);
  CHECK_FALSE(vm.setField(*m, "y", spindle::Value::number(3)));
  CHECK_FALSE(vm.field(*m, "y").has_value());
  spindle::Result r = vm.run("m.y = 1;");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Undefined property 'y'.");
  r = vm.run("print m.y;");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Undefined property 'y'.");
  r = vm.run("m.nothing();");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Undefined property 'nothing'.");
}

TEST_CASE("one read site over two modules reads each one's own global") {
  Host h;
  h.files["one.lox"] = "var x = \"one\"; fun f() { return 1; }";
  h.files["two.lox"] = "var x = \"two\"; fun f() { return 2; }";
  spindle::Vm vm(h.options());
  REQUIRE(vm.run("import \"one.lox\" as a; import \"two.lox\" as b;\n"
                 "fun get(mod) { return mod.x; }\n"
                 "fun call(mod) { return mod.f(); }\n"
                 "for (var mod in [a, b, a, b]) print get(mod) + str(call(mod));")
              .ok());
  CHECK(h.out == "one1\ntwo2\none1\ntwo2\n");
}

TEST_CASE("a module's top level may park: channels, sleep, join, a select with after") {
  Host h;
  h.files["parks.lox"] =
      "fun produce(ch) { ch.send(40); }\n"
      "fun work() { sleep(0.001); return 2; }\n"
      "var ch = Channel();\n"
      "spawn produce(ch);\n"
      "var got = ch.recv();\n"
      "var f = spawn work();\n"
      "var total = got + f.join();\n"
      "select { case after(0.001).recv(): total = total + 0; }\n"
      "print \"loaded\";\n";
  spindle::Vm vm(h.options());
  REQUIRE(vm.run("print \"before\"; import \"parks.lox\" as p; print p.total;").ok());
  CHECK(h.out == "before\nloaded\n42\n");
}

TEST_CASE("a module that fails after parking: its error at the import line, its trace first") {
  Host h;
  h.files["late.lox"] = "sleep(0.001);\nvar c = Channel();\nfun s() { c.send(1); }\nspawn s();\nc.recv();\nnil + 1;\n";
  spindle::Vm vm(h.options());
  spindle::Result r = vm.run("\n\nimport \"late.lox\" as late;");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Operands must be two numbers or two strings.");
  CHECK(r.error().trace == std::vector<std::string>{"[line 6] in script (late.lox)", "[line 3] in script"});
  // Caught, and tried again by a later import.
  h.files["late.lox"] = "sleep(0.001); var ok = true;";
  REQUIRE(vm.run("try { import \"late.lox\" as l; print l.ok; } catch (e) { print e.message; }").ok());
  CHECK(h.out == "true\n");
}

TEST_CASE("many fibers importing one new module at once: it runs once, all share it") {
  Host h;
  constexpr int kFibers = 24;
  // The top level holds until every importer waits for it (the first included).
  h.files["once.lox"] =
      "print \"ran\";\n"
      "while (joinWaiters() < " + std::to_string(kFibers) + ") yield();\n"
      "var token = Channel();\n";
  spindle::Vm vm(h.options());
  defineJoinWaiters(vm);
  REQUIRE(vm.run("var results = Channel(" + std::to_string(kFibers) + ");\n"
                 "fun importer() { import \"once.lox\" as o; results.send(o.token); }\n"
                 "for (var i = 0; i < " + std::to_string(kFibers) + "; i = i + 1) spawn importer();\n"
                 "var first = results.recv(); var same = 1;\n"
                 "for (var i = 1; i < " + std::to_string(kFibers) + "; i = i + 1) if (results.recv() == first) same = same + 1;\n"
                 "print same;\n"
                 "import \"once.lox\" as again; print again.token == first;")
              .ok());
  CHECK(count(h.out, "ran\n") == 1);
  CHECK(h.out == "ran\n" + std::to_string(kFibers) + "\ntrue\n");
}

TEST_CASE("many fibers importing a module that fails: each sees its error, it ran once") {
  Host h;
  constexpr int kFibers = 16;
  h.files["fails.lox"] =
      "print \"ran\";\n"
      "while (joinWaiters() < " + std::to_string(kFibers) + ") yield();\n"
      "nil + 1;\n";
  spindle::Vm vm(h.options());
  defineJoinWaiters(vm);
  REQUIRE(vm.run("var results = Channel(" + std::to_string(kFibers) + ");\n"
                 "fun importer() {\n"
                 "  try { import \"fails.lox\" as f; results.send(\"imported\"); }\n"
                 "  catch (e) { results.send(e.message + \" \" + e.trace[0]); }\n"
                 "}\n"
                 "for (var i = 0; i < " + std::to_string(kFibers) + "; i = i + 1) spawn importer();\n"
                 "for (var i = 0; i < " + std::to_string(kFibers) + "; i = i + 1) print results.recv();\n")
              .ok());
  CHECK(count(h.out, "ran\n") == 1);
  CHECK(count(h.out, "Operands must be two numbers or two strings. [line 3] in script (fails.lox)\n") ==
        kFibers);
}

TEST_CASE("two fibers importing the two halves of a cycle at once: both get a cycle error") {
  Host h;
  h.files["a.lox"] = "sleep(0.001); import \"b.lox\" as b;";
  h.files["b.lox"] = "sleep(0.001); import \"a.lox\" as a;";
  spindle::Vm vm(h.options());
  REQUIRE(vm.run("var results = Channel(2);\n"
                 "fun importA() { try { import \"a.lox\" as a; results.send(\"ok\"); } catch (e) { results.send(e.message); } }\n"
                 "fun importB() { try { import \"b.lox\" as b; results.send(\"ok\"); } catch (e) { results.send(e.message); } }\n"
                 "spawn importA(); spawn importB();\n"
                 "print results.recv(); print results.recv();")
              .ok());
  CHECK(count(h.out, "Import cycle: ") == 2);
  CHECK((count(h.out, "a.lox -> b.lox -> a.lox.") + count(h.out, "b.lox -> a.lox -> b.lox.")) == 2);
}

TEST_CASE("a native callback imports a loaded module, and runs a new one inline") {
  Host h;
  h.files["plain.lox"] = "var v = 5;";
  h.files["other.lox"] = "var w = 6;";
  h.files["parks.lox"] = "Channel().recv();";
  spindle::Vm vm(h.options());
  vm.defineNative("callBack", 1, [](spindle::Vm& v, std::span<const spindle::Value> args) {
    return v.call(args[0], {});
  });
  REQUIRE(vm.run("import \"plain.lox\" as p;\n"
                 "fun loaded() { import \"plain.lox\" as q; return q.v; }\n"
                 "fun fresh() { import \"other.lox\" as o; return o.w; }\n"
                 "print callBack(loaded); print callBack(fresh);\n"
                 "import \"other.lox\" as o2; print o2.w;")
              .ok());
  CHECK(h.out == "5\n6\n6\n");
  // Inline, a top level cannot park (as any native callback's code).
  spindle::Result r = vm.run("fun parks() { import \"parks.lox\" as p; } callBack(parks);");
  REQUIRE(!r.ok());
}

TEST_CASE("the fatal-error fiber dump names module files") {
  using spindle::runtime::testing::runChild;
  auto [died, err] = runChild([] {
    Host h;
    h.files["lib/util.lox"] = "fun wait(c) {\n  c.recv();\n}\n";
    spindle::Vm vm(h.options());
    spindle::Result r = vm.run("import \"lib/util.lox\" as u;\nvar c = Channel();\nvar p = spawn u.wait(c);\n");
    if (!r.ok()) std::_Exit(3);
    for (;;) {  // until the fiber is parked (no time limit), then die
      int parked = 0;
      vm.internal().sched().forEachG([&](spindle::runtime::G* g) {
        if (g->status.load() == spindle::runtime::GStatus::Waiting &&
            g->waitreason == spindle::runtime::WaitReason::ChanRecv) {
          ++parked;
        }
      });
      if (parked == 1) break;
      std::this_thread::yield();
    }
    SPINDLE_FATAL("test: dying with a parked module function");
  });
  MESSAGE(err);
  CHECK(died);
  CHECK(err.find("\t[line 2] in wait() (lib/util.lox)\n") != std::string::npos);
}
