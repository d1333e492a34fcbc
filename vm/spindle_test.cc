// spindle_test.cc: the embedding API (vm/spindle.h): running code, errors as values,
// natives, globals, calling script functions, handles keeping objects alive, and the
// internals the collector will rely on (TypeInfos, roots, resumable run loop).
#include "vm/spindle.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>

#include <string>
#include <vector>

#include "vm/fiber.h"
#include "vm/vm.h"

namespace {

spindle::Options capture(std::string& out) {
  spindle::Options o;
  o.output = [&out](std::string_view s) { out.append(s); };
  return o;
}

TEST_CASE("run prints through the output sink and keeps globals across runs") {
  std::string out;
  spindle::Vm vm(capture(out));
  REQUIRE(vm.run("var x = 40;").ok());
  REQUIRE(vm.run("x = x + 2; print x;").ok());
  CHECK(out == "42\n");
  auto x = vm.global("x");
  REQUIRE(x.has_value());
  CHECK(x->asNumber() == 42);
  CHECK_FALSE(vm.global("nope").has_value());
}

TEST_CASE("compile and runtime errors are values with message and trace") {
  std::string out;
  spindle::Vm vm(capture(out));
  spindle::Result c = vm.run("print ;");
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().kind == spindle::Error::Kind::Compile);
  CHECK(c.error().message == "[line 1] Error at ';': Expect expression.");

  spindle::Result r = vm.run("fun f() {\n  return nil + 1;\n}\nf();");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == spindle::Error::Kind::Runtime);
  CHECK(r.error().message == "Operands must be two numbers or two strings.");
  REQUIRE(r.error().trace.size() == 2);
  CHECK(r.error().trace[0] == "[line 2] in f()");
  CHECK(r.error().trace[1] == "[line 4] in script");
  // The VM is still usable after an error.
  CHECK(vm.run("print 1;").ok());
  CHECK(out == "1\n");

  spindle::Result io = vm.runFile("/no/such/file.lox");
  REQUIRE_FALSE(io.ok());
  CHECK(io.error().kind == spindle::Error::Kind::Io);
}

TEST_CASE("natives receive values and raise errors") {
  std::string out;
  spindle::Vm vm(capture(out));
  vm.defineNative("twice", 1, [](spindle::Vm&, std::span<const spindle::Value> args) {
    if (!args[0].isNumber()) return spindle::Result::failure("twice needs a number.");
    return spindle::Result::success(spindle::Value::number(args[0].asNumber() * 2));
  });
  vm.defineNative("greet", 1, [](spindle::Vm&, std::span<const spindle::Value> args) {
    return spindle::Result::success(spindle::Value::string("hi " + args[0].asString()));
  });
  REQUIRE(vm.run("print twice(21); print greet(\"bob\"); print twice;").ok());
  CHECK(out == "42\nhi bob\n<native fn>\n");
  spindle::Result r = vm.run("twice(\"x\");");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "twice needs a number.");
  CHECK(r.error().trace == std::vector<std::string>{"[line 1] in script"});
  spindle::Result arity = vm.run("twice();");
  REQUIRE_FALSE(arity.ok());
  CHECK(arity.error().message == "Expected 1 arguments but got 0.");
}

TEST_CASE("call a script function, a class and a method from C++") {
  std::string out;
  spindle::Vm vm(capture(out));
  REQUIRE(vm.run("fun add(a, b) { return a + b; }\n"
                 "class Counter { init(n) { this.n = n; } inc() { this.n = this.n + 1; return this.n; } }")
              .ok());
  spindle::Result sum = vm.call(*vm.global("add"), {spindle::Value::number(1), spindle::Value::number(2)});
  REQUIRE(sum.ok());
  CHECK(sum.value().asNumber() == 3);
  spindle::Result cat = vm.call(*vm.global("add"), {spindle::Value::string("a"), spindle::Value::string("b")});
  REQUIRE(cat.ok());
  CHECK(cat.value().asString() == "ab");

  spindle::Result counter = vm.call(*vm.global("Counter"), {spindle::Value::number(10)});
  REQUIRE(counter.ok());
  CHECK(counter.value().isObject());
  CHECK(counter.value().toString() == "Counter instance");
  vm.setGlobal("c", counter.value());
  REQUIRE(vm.run("print c.inc();").ok());
  CHECK(out == "11\n");

  spindle::Result bad = vm.call(*vm.global("add"), {spindle::Value::number(1)});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message == "Expected 2 arguments but got 1.");
  spindle::Result notCallable = vm.call(spindle::Value::number(1), {});
  REQUIRE_FALSE(notCallable.ok());
  CHECK(notCallable.error().message == "Can only call functions and classes.");
}

TEST_CASE("a native can call back into the VM") {
  std::string out;
  spindle::Vm vm(capture(out));
  vm.defineNative("apply", 2, [](spindle::Vm& v, std::span<const spindle::Value> args) {
    return v.call(args[0], {args[1]});
  });
  REQUIRE(vm.run("fun sq(x) { return x * x; } print apply(sq, 7);").ok());
  CHECK(out == "49\n");
}

TEST_CASE("object values are handles: copies and lists, roots") {
  spindle::Vm vm;
  spindle::Value l = vm.list(std::vector<spindle::Value>{spindle::Value::number(1),
                                                          spindle::Value::string("two")});
  CHECK(l.typeName() == "list");
  CHECK(l.toString() == "[1, two]");
  spindle::Value copy = l;
  {
    spindle::Value moved = std::move(copy);
    CHECK(moved.toString() == "[1, two]");
  }
  // Every held object is reported as a strong root.
  std::vector<void*> strong;
  vm.internal().forEachRoot(
      [](void* ctx, void** slot, spindle::vm::RootKind kind) {
        if (kind == spindle::vm::RootKind::Strong) static_cast<std::vector<void*>*>(ctx)->push_back(*slot);
      },
      &strong);
  spindle::vm::VM& in = vm.internal();
  (void)in;
  bool found = false;
  for (void* p : strong) {
    auto* o = static_cast<spindle::vm::Obj*>(p);
    if (o->kind == spindle::vm::ObjKind::List) found = true;
  }
  CHECK(found);
}

bool typeIsNoscanCheck(spindle::vm::ObjString* s) { return spindle::runtime::typeIsNoscan(s->header.type); }

// Counts the pointers an object's trace function reports.
int traced(spindle::vm::Obj* o) {
  int n = 0;
  o->header.type->trace(o, [](void* ctx, void** slot) {
    CHECK(*slot != nullptr);
    ++*static_cast<int*>(ctx);
  }, &n);
  return n;
}

TEST_CASE("objects carry TypeInfos; strings are noscan; traces are precise") {
  using namespace spindle::vm;
  VM vm;
  vm.withP([&] {
  ObjString* s = vm.intern("hello");
  CHECK(s->header.type == &kTypes[static_cast<int>(ObjKind::String)]);
  CHECK(typeIsNoscanCheck(s));
  CHECK(vm.intern("hello") == s);  // interned
  Value items[3] = {Value::object(s), Value::number(1), Value::nil()};
  ObjList* l = vm.newList(3, items);
  CHECK(traced(l) == 1);             // its storage
  CHECK(traced(l->items) == 1);      // one object among the elements
  });
}

TEST_CASE("run is resumable: a budget makes a loop yield and resume") {
  using namespace spindle::vm;
  std::string out;
  VMOptions o;
  o.output = [&out](std::string_view s) { out.append(s); };
  VM vm(o);
  vm.withP([&] {
  spindle::lang::CompileResult c = vm.compile("var s = 0; for (var i = 0; i < 100; i = i + 1) s = s + i; print s;");
  REQUIRE(c.ok());
  ObjFiber* f = vm.newFiber(Value::object(vm.load(c.script)), nullptr, 0);
  int yields = 0;
  RunStatus st;
  while ((st = vm.run(f, 10)) == RunStatus::Yield) ++yields;
  CHECK(st == RunStatus::Exit);
  CHECK(f->state == FiberState::Done);
  CHECK(yields >= 9);
  CHECK(out == "4950\n");
  f->body->release();
  });
}

TEST_CASE("yielding at calls resumes in the callee (calls, invokes, super invokes)") {
  using namespace spindle::vm;
  std::string out;
  VMOptions o;
  o.output = [&out](std::string_view s) { out.append(s); };
  VM vm(o);
  vm.withP([&] {
  spindle::lang::CompileResult c = vm.compile(
      "fun fib(n) { if (n < 2) return n; return fib(n - 2) + fib(n - 1); }\n"
      "class A { f(x) { return x + 1; } }\n"
      "class B < A { f(x) { return super.f(x) * 2; } }\n"
      "var b = B(); var s = 0;\n"
      "for (var i = 0; i < 10; i = i + 1) s = s + b.f(i);\n"
      "print fib(15); print s;");
  REQUIRE(c.ok());
  ObjFiber* f = vm.newFiber(Value::object(vm.load(c.script)), nullptr, 0);
  int yields = 0;
  while (vm.run(f, 1) == RunStatus::Yield) ++yields;
  CHECK(f->state == FiberState::Done);
  CHECK(yields > 1000);
  CHECK(out == "610\n110\n");
  f->body->release();
  });
}

TEST_CASE("deep recursion reports Stack overflow.") {
  std::string out;
  spindle::Vm vm(capture(out));
  spindle::Result r = vm.run("fun f(n) { return f(n + 1); } f(0);");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "Stack overflow.");
  // Recursion well below the limit works (the stack grows).
  REQUIRE(vm.run("fun d(n) { if (n == 0) return 0; return 1 + d(n - 1); } print d(5000);").ok());
  CHECK(out == "5000\n");
}

TEST_CASE("spawned fibers and channels through the API") {
  std::string out;
  spindle::Options o = capture(out);
  o.procs = 2;
  spindle::Vm vm(o);
  REQUIRE(vm.run("var ch = Channel();\n"
                 "fun worker(i) { ch.send(i * i); }\n"
                 "for (var i = 0; i < 10; i = i + 1) spawn worker(i);\n"
                 "var sum = 0;\n"
                 "for (var i = 0; i < 10; i = i + 1) sum = sum + ch.recv();\n"
                 "print sum; print procs();")
              .ok());
  CHECK(out == "285\n2\n");
  // A function that blocks on a channel can be called from the host.
  REQUIRE(vm.run("fun put(c, v) { c.send(v); }\nfun relay(x) { var c = Channel(); spawn put(c, x + 1); return c.recv(); }").ok());
  spindle::Result r = vm.call(*vm.global("relay"), std::vector<spindle::Value>{spindle::Value::number(41)});
  REQUIRE(r.ok());
  CHECK(r.value().asNumber() == 42);
}

TEST_CASE("deadlock and errors in spawned fibers are error values; the VM stays usable") {
  std::string out;
  spindle::Vm vm(capture(out));
  spindle::Result d = vm.run("var c = Channel();\nc.recv();");
  REQUIRE_FALSE(d.ok());
  CHECK(d.error().message == "all fibers are asleep - deadlock!");
  REQUIRE(d.error().trace.size() == 1);
  CHECK(d.error().trace[0] == "[line 2] in script");
  spindle::Result e = vm.run("fun bad() {\n  return nil + 1;\n}\nspawn bad();\nChannel().recv();");
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().message == "Operands must be two numbers or two strings.");
  REQUIRE(e.error().trace.size() == 1);
  CHECK(e.error().trace[0] == "[line 2] in bad()");
  // An error in a fiber while main is busy (not blocked) also ends the call.
  spindle::Result busy = vm.run("fun bad2() { return nil + 1; }\nspawn bad2();\nwhile (true) {}");
  REQUIRE_FALSE(busy.ok());
  CHECK(busy.error().message == "Operands must be two numbers or two strings.");
  REQUIRE(vm.run("print \"still ok\";").ok());
  CHECK(out == "still ok\n");
}

TEST_CASE("host natives run on every P; nested calls from fibers work") {
  spindle::Options o;
  o.procs = 2;
  o.output = [](std::string_view) {};
  spindle::Vm vm(o);
  std::atomic<int> calls{0};
  vm.defineNative("hostInc", 1, [&calls](spindle::Vm& v, std::span<const spindle::Value> args) {
    calls.fetch_add(1);
    // Calls back into the VM from a fiber's M (a nested fiber).
    return v.call(*v.global("twice"), std::vector<spindle::Value>{args[0]});
  });
  REQUIRE(vm.run("fun twice(x) { return x * 2; }\n"
                 "var done = Channel();\n"
                 "fun w(n) { var s = 0; for (var i = 0; i < n; i = i + 1) s = s + hostInc(i); done.send(s); }\n"
                 "for (var i = 0; i < 8; i = i + 1) spawn w(100);\n"
                 "var total = 0; for (var i = 0; i < 8; i = i + 1) total = total + done.recv();\n"
                 "if (total != 8 * 9900) print nil + 1;")
              .ok());
  CHECK(calls.load() == 800);
}

TEST_CASE("a parked fiber's G reports its stack, frames and the fiber to the collector") {
  using namespace spindle::vm;
  spindle::Options o;
  o.procs = 1;
  spindle::Vm vm(o);
  REQUIRE(vm.run("var c = Channel();\n"
                 "var marker = [1, 2, 3];\n"
                 "fun holder(m) { var local = [m]; c.recv(); }\n"
                 "spawn holder(marker);\n"
                 "yield();\n")
              .ok());
  VM& in = vm.internal();
  const Value marker = in.global(static_cast<std::uint32_t>(in.globalNames().find("marker")));
  const Value holder = in.global(static_cast<std::uint32_t>(in.globalNames().find("holder")));
  std::vector<void*> seen;
  int parked = 0;
  in.sched().forEachG([&](spindle::runtime::G* g) {
    if (g->status.load() != spindle::runtime::GStatus::Waiting || g->body == nullptr) return;
    auto* body = dynamic_cast<FiberBody*>(g->body);
    if (body == nullptr) return;
    ++parked;
    body->traceStack(g, [](void* ctx, void** slot) { static_cast<std::vector<void*>*>(ctx)->push_back(*slot); },
                     &seen);
    CHECK(std::find(seen.begin(), seen.end(), body->fiber()) != seen.end());
  });
  REQUIRE(parked == 1);
  auto has = [&](void* p) { return std::find(seen.begin(), seen.end(), p) != seen.end(); };
  CHECK(has(marker.asObj()));  // an argument on the stack
  CHECK(has(holder.asObj()));  // the frame's closure (also slot 0)
  // The local list [m] is on the stack too: some traced list other than marker.
  int lists = 0;
  for (void* p : seen) {
    if (static_cast<Obj*>(p)->kind == ObjKind::List) ++lists;
  }
  CHECK(lists == 2);
}

TEST_CASE("the VM's registered roots cover globals and handles; interned strings are weak") {
  using namespace spindle::vm;
  spindle::Vm vm;
  REQUIRE(vm.run("var g = [\"kept\"];").ok());
  spindle::Value held = vm.list(std::vector<spindle::Value>{spindle::Value::number(1)});
  std::vector<void*> strong;
  std::vector<void*> weak;
  std::pair<std::vector<void*>*, std::vector<void*>*> both(&strong, &weak);
  vm.internal().forEachRoot(
      [](void* ctx, void** slot, RootKind kind) {
        auto* v = static_cast<std::pair<std::vector<void*>*, std::vector<void*>*>*>(ctx);
        (kind == RootKind::Strong ? v->first : v->second)->push_back(*slot);
      },
      &both);
  VM& in = vm.internal();
  const Value g = in.global(static_cast<std::uint32_t>(in.globalNames().find("g")));
  CHECK(std::find(strong.begin(), strong.end(), g.asObj()) != strong.end());
  bool keptIsWeak = false;
  for (void* p : weak) keptIsWeak |= static_cast<ObjString*>(p)->view() == "kept";
  CHECK(keptIsWeak);
  CHECK(held.typeName() == "list");
}

}  // namespace
