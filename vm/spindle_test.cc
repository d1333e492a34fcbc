// spindle_test.cc: the embedding API (vm/spindle.h): running code, errors as values,
// natives, globals, calling script functions, handles keeping objects alive, and the
// internals the collector will rely on (TypeInfos, roots, resumable run loop).
#include "vm/spindle.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/gc.h"
#include "runtime/m.h"
#include "runtime/pheap.h"
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
  CHECK(io.error().message == "cannot open '/no/such/file.lox': No such file or directory");
  // A directory opens but cannot be read: the error says why (it never runs as empty).
  io = vm.runFile("/");
  REQUIRE_FALSE(io.ok());
  CHECK(io.error().kind == spindle::Error::Kind::Io);
  CHECK(io.error().message == "cannot read '/': Is a directory");
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

TEST_CASE("a native that forgets to check its arguments cannot kill the host") {
  std::string out;
  spindle::Vm vm(capture(out));
  // Unchecked: asNumber on a string throws spindle::TypeError, which the Vm turns into
  // the script's runtime error (catchable; the host goes on).
  vm.defineNative("hostAdd", 2, [](spindle::Vm&, spindle::Args args) {
    return spindle::Result::success(spindle::Value::number(args[0].asNumber() + args[1].asNumber()));
  });
  // Checked, as Lua's luaL_checknumber.
  vm.defineNative("hostMul", -1, [](spindle::Vm&, spindle::Args args) {
    return spindle::Result::success(
        spindle::Value::number(spindle::checkNumber(args, 0) * spindle::checkNumber(args, 1)));
  });
  vm.defineNative("hostThrows", 0, [](spindle::Vm&, spindle::Args) -> spindle::Result {
    throw std::runtime_error("disk on fire");
  });
  vm.defineClass("Box")
      .method("put", 1, [](spindle::Vm&, const spindle::Value&, spindle::Args args) {
        return spindle::Result::success(spindle::Value::string(spindle::checkString(args, 0)));
      })
      .define();
  REQUIRE(vm.run("print hostAdd(1, 2); print hostMul(3, 4);").ok());
  const std::pair<const char*, const char*> cases[] = {
      {"hostAdd(1, \"x\");", "hostAdd() expected a number (string given)."},
      {"hostMul(1, \"x\");", "Argument 2 of hostMul() must be a number (string given)."},
      {"hostMul(nil, 2);", "Argument 1 of hostMul() must be a number (nil given)."},
      {"hostMul(2);", "Argument 2 of hostMul() must be a number (none given)."},
      {"hostThrows();", "hostThrows() failed: disk on fire."},
      {"Box().put(1);", "Argument 1 of Box.put() must be a string (number given)."},
  };
  for (const auto& [script, message] : cases) {
    spindle::Result r = vm.run(script);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == message);
    CHECK(r.error().trace == std::vector<std::string>{"[line 1] in script"});
  }
  REQUIRE(vm.run("try { hostAdd([], 1); } catch (e) { print e.message; }").ok());
  CHECK(out == "3\n12\nhostAdd() expected a number (list given).\n");
  // Outside a native the accessor throws to the host, which may catch it.
  CHECK_THROWS_AS(spindle::Value::string("s").asNumber(), spindle::TypeError);
}

TEST_CASE("a sandboxed Vm has no FFI, and only the built-in globals its Options allow") {
  std::string out;
  spindle::Options o = capture(out);
  o.ffi = false;
  o.without = {"sleep", "gc"};
  spindle::Vm vm(o);
  for (const char* name : {"FFI", "Bytes", "Pinner", "sleep", "gc"}) {
    spindle::Result r = vm.run(std::string("print ") + name + ";");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == std::string("Undefined variable '") + name + "'.");
  }
  REQUIRE(vm.run("print math.sqrt(16); print str(1) + \"!\";").ok());
  CHECK(out == "4\n1!\n");
  // A script may still define a global of that name.
  REQUIRE(vm.run("fun gc() { return \"mine\"; } print gc();").ok());
  CHECK(out == "4\n1!\nmine\n");

  spindle::Options strict = capture(out);
  strict.only = std::vector<std::string>{"str"};
  spindle::Vm only(strict);
  only.defineNative("hostFn", 0, [](spindle::Vm&, spindle::Args) { return spindle::Result::success({}); });
  REQUIRE(only.run("print str(2); hostFn();").ok());
  for (const char* name : {"math", "clock", "Map", "gcstats", "FFI", "chr"}) {
    spindle::Result r = only.run(std::string(name) + ";");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == std::string("Undefined variable '") + name + "'.");
  }
  // The language itself stays: lists, maps literals, strings' methods, errors.
  REQUIRE(only.run("var m = {\"a\": [1]}; print m; try { throw 1; } catch (e) { print e; }").ok());

  // Unsandboxed, the same names are defined.
  spindle::Vm open(capture(out));
  REQUIRE(open.run("FFI; Bytes; Pinner; sleep; gc;").ok());
}

TEST_CASE("a host reads and writes list elements and length") {
  std::string out;
  spindle::Vm vm(capture(out));
  REQUIRE(vm.run("var l = [1, \"two\", nil]; var notList = {};").ok());
  const spindle::Value l = *vm.global("l");
  REQUIRE(vm.listLength(l) == std::optional<std::size_t>(3));
  CHECK(vm.listGet(l, 0)->asNumber() == 1);
  CHECK(vm.listGet(l, 1)->asString() == "two");
  CHECK(vm.listGet(l, 2)->isNil());
  CHECK_FALSE(vm.listGet(l, 3).has_value());
  CHECK(vm.listSet(l, 2, spindle::Value::number(3)));
  CHECK_FALSE(vm.listSet(l, 3, spindle::Value::number(4)));
  for (int i = 0; i < 100; i++) REQUIRE(vm.listPush(l, vm.list(std::vector<spindle::Value>{spindle::Value::number(i)})));
  REQUIRE(vm.run("gc(); print l.len(); print l[2]; print l[102];").ok());
  CHECK(out == "103\n3\n[99]\n");
  const spindle::Value notList = *vm.global("notList");
  CHECK_FALSE(vm.listLength(notList).has_value());
  CHECK_FALSE(vm.listGet(spindle::Value::number(1), 0).has_value());
  CHECK_FALSE(vm.listPush(notList, spindle::Value::nil()));
}

TEST_CASE("invoke calls a method by name as a script's receiver.method(...) does") {
  std::string out;
  spindle::Vm vm(capture(out));
  REQUIRE(vm.run("fun fun2(x) { return x * 2; }\n"
                 "class Counter { init(n) { this.n = n; } add(k) { this.n = this.n + k; return this.n; } }\n"
                 "var c = Counter(10); c.twice = fun2; var l = [1]; var m = {\"a\": 1};")
              .ok());
  const spindle::Value c = *vm.global("c");
  CHECK(vm.invoke(c, "add", {spindle::Value::number(5)}).value().asNumber() == 15);
  CHECK(vm.invoke(c, "add", {spindle::Value::number(1)}).value().asNumber() == 16);  // cached
  CHECK(vm.invoke(c, "twice", {spindle::Value::number(4)}).value().asNumber() == 8);  // a field
  const spindle::Value l = *vm.global("l");
  REQUIRE(vm.invoke(l, "push", {spindle::Value::number(2)}).ok());
  CHECK(vm.invoke(l, "len", {}).value().asNumber() == 2);
  CHECK(vm.invoke(*vm.global("m"), "has", {spindle::Value::string("a")}).value().asBool());
  CHECK(vm.invoke(spindle::Value::string("abc"), "upper", {}).value().asString() == "ABC");
  spindle::Result missing = vm.invoke(c, "nope", {});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message == "Undefined property 'nope'.");
  spindle::Result arity = vm.invoke(c, "add", {});
  REQUIRE_FALSE(arity.ok());
  CHECK(arity.error().message == "Expected 1 arguments but got 0.");
  for (const char* bad : {"", "1x", "a-b", "while", "this"}) {
    spindle::Result r = vm.invoke(c, bad, {});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == std::string("Invalid method name '") + bad + "'.");
  }
  // The trampolines are no globals a script sees.
  spindle::Result hidden = vm.run("print __invoke_add_1;");
  REQUIRE_FALSE(hidden.ok());
  CHECK(hidden.error().message == "Undefined variable '__invoke_add_1'.");
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

TEST_CASE("errors cross a native that calls back into the VM; traces stop at 20 frames") {
  std::string out;
  spindle::Vm vm(capture(out));
  vm.defineNative("apply", 2, [](spindle::Vm& v, std::span<const spindle::Value> args) {
    return v.call(args[0], {args[1]});
  });
  // A thrown value crosses the native as itself; a runtime error as an Error.
  REQUIRE(vm.run("fun boom(x) { throw [x]; }\n"
                 "fun bad(x) { return x.field; }\n"
                 "try { apply(boom, 7); } catch (e) { print e; }\n"
                 "try { apply(bad, 7); } catch (e) { print e.message; print e.trace; }\n"
                 "try { apply(apply, boom); } catch (e) { print e.message; }\n")
              .ok());
  // The callback's frames come first in the trace, then the caller's.
  CHECK(out == "[7]\nOnly instances have properties.\n[[line 2] in bad(), [line 4] in script]\n"
               "Expected 2 arguments but got 1.\n");
  // 31 frames of the callback and one of the script: 20 kept, the rest counted.
  spindle::Result cb = vm.run("fun down(n) { if (n == 0) return nil.x; return down(n - 1); }\n"
                              "apply(down, 30);");
  REQUIRE_FALSE(cb.ok());
  CHECK(cb.error().message == "Only instances have properties.");
  REQUIRE(cb.error().trace.size() == 21);
  CHECK(cb.error().trace[0] == "[line 1] in down()");
  CHECK(cb.error().trace[20] == "... 12 more frames");
  // A native that fails with a message of its own keeps only the caller's trace.
  vm.defineNative("swallow", 1, [](spindle::Vm& v, std::span<const spindle::Value> args) {
    spindle::Result r = v.call(args[0], {});
    return r.ok() ? r : spindle::Result::failure(spindle::Error{spindle::Error::Kind::Runtime, "wrapped", {}});
  });
  spindle::Result own = vm.run("fun bad0() { return nil.x; }\nswallow(bad0);");
  REQUIRE_FALSE(own.ok());
  CHECK(own.error().message == "wrapped");
  CHECK(own.error().trace == std::vector<std::string>{"[line 2] in script"});
  // Uncaught, it ends the run with its message.
  spindle::Result r = vm.run("apply(boom, 1);");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "Uncaught [1].");
  spindle::Result deep = vm.run("fun f(n) { return f(n + 1); }\nf(0);");
  REQUIRE_FALSE(deep.ok());
  CHECK(deep.error().message == "Stack overflow.");
  REQUIRE(deep.error().trace.size() == 21);
  CHECK(deep.error().trace[0] == "[line 1] in f()");
  CHECK(deep.error().trace[20] == "... 9980 more frames");
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
  // Every held object is reported as a root.
  std::vector<void*> strong;
  vm.internal().forEachRoot(
      [](void* ctx, void** slot) { static_cast<std::vector<void*>*>(ctx)->push_back(*slot); },
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

TEST_CASE("procs outside 0..kMaxProcs is an error Result of every entry point, not fatal") {
  for (int procs : {1000, -1}) {
    std::string out;
    spindle::Options o = capture(out);
    o.procs = procs;
    spindle::Vm vm(o);
    const std::string want = "Options::procs is " + std::to_string(procs) + ": it must be 0 (one per core) to " +
                             std::to_string(spindle::kMaxProcs) + ".";
    spindle::Result r = vm.run("print procs();");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == want);
    CHECK(vm.compile("print 1;", "x.lox").error().message == want);
    CHECK(vm.call(spindle::Value::number(1), {}).error().message == want);
    CHECK(vm.invoke(spindle::Value::number(1), "f", {}).error().message == want);
    CHECK(out.empty());
  }
  // The limit itself is valid.
  std::string out;
  spindle::Options o = capture(out);
  o.procs = spindle::kMaxProcs;
  spindle::Vm vm(o);
  REQUIRE(vm.run("print procs();").ok());
  CHECK(out == std::to_string(spindle::kMaxProcs) + "\n");
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
  // The error's place, then every blocked fiber (here only main) with its trace, then the
  // collector's state.
  std::vector<std::string> trace = d.error().trace;
  REQUIRE(trace.size() == 4);
  CHECK(trace.back().starts_with("gc: phase "));
  trace.pop_back();
  CHECK(trace == std::vector<std::string>{"[line 2] in script", "fiber 1 [chan receive]:", "[line 2] in script"});
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

TEST_CASE("channels outlive their VM: later cycles trace and clean them up without the VM") {
  spindle::Options o;
  o.procs = 2;
  o.output = [](std::string_view) {};
  {
    spindle::Vm a(o);
    // Live channels (a global, one holding a list) and dead ones whose cleanups the gc()
    // queues: ~Vm frees every hchan still owned, whichever way each one went.
    REQUIRE(a.run("var keep = Channel(4); keep.send([1, 2, 3]); var c2 = Channel();\n"
                  "fun f() { var t = Channel(1); t.send([4]); }\n"
                  "for (var i = 0; i < 200; i = i + 1) f();\n"
                  "gc();")
                .ok());
  }
  // The dead VM's channels are now garbage with cleanups: the next cycles free them and
  // run the cleanups on this VM's finalizer G, which must touch neither the old VM nor a
  // freed hchan (ASan would report it; an hchan lock read from freed memory hung).
  spindle::Vm b(o);
  for (int i = 0; i < 4; ++i) REQUIRE(b.run("gc(); var c = Channel(1); c.send([1]); c.recv();").ok());
  CHECK(b.stats().gc_cycles >= 4);
}

TEST_CASE("an actor cycle (a channel whose buffer points back at it) is collected") {
  spindle::Options o;
  o.procs = 2;
  o.output = [](std::string_view) {};
  spindle::Vm vm(o);
  spindle::vm::VM& in = vm.internal();
  REQUIRE(vm.run("var keep = Channel(1); gc();").ok());
  const std::size_t base = in.ownedCount();
  // Each actor's mailbox holds a message that points at the actor, which holds the
  // mailbox: only a collector that does not trace from the channel's owner frees it.
  REQUIRE(vm.run("class Actor { init() { this.mailbox = Channel(1); this.mailbox.send([this]); } }\n"
                 "for (var i = 0; i < 300; i = i + 1) Actor();")
              .ok());
  CHECK(in.ownedCount() >= base + 300);
  // Unreachable: the cleanups run on the finalizer G after the cycles that freed them.
  // Owned records are also the proto trees of scripts (function.cc): at the end one more
  // than at `base` stays, the tree of the script that declared the global class Actor
  // (base counted the tree of the script then running, as the end counts the last
  // `gc();` snippet's).
  for (int i = 0; i < 2000 && in.ownedCount() > base + 1; ++i) {
    REQUIRE(vm.run("gc();").ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(in.ownedCount() == base + 1);
  REQUIRE(vm.run("keep.send(1); print keep.recv();").ok());
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

TEST_CASE("Options::output is called for one print at a time, from fibers on every P") {
  std::atomic<int> inside{0}, overlaps{0};
  std::vector<std::string> lines;  // appended only inside the callback
  spindle::Options o;
  o.procs = 2;
  o.output = [&](std::string_view s) {
    if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
    volatile int spin = 0;
    while (spin < 20000) spin = spin + 1;  // widens the window
    lines.emplace_back(s);
    inside.fetch_sub(1);
  };
  spindle::Vm vm(o);
  REQUIRE(vm.run("var done = Channel();\n"
                 "fun w(k) { for (var i = 0; i < 300; i = i + 1) print k; done.send(k); }\n"
                 "for (var k = 0; k < 6; k = k + 1) spawn w(k);\n"
                 "for (var k = 0; k < 6; k = k + 1) done.recv();")
              .ok());
  CHECK(overlaps.load() == 0);
  CHECK(lines.size() == 1800);
  for (const std::string& l : lines) CHECK(l.size() == 2);  // "k\n", never torn
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

namespace {
std::vector<void*> rootsOf(spindle::vm::VM& in) {
  std::vector<void*> roots;
  in.forEachRoot([](void* ctx, void** slot) { static_cast<std::vector<void*>*>(ctx)->push_back(*slot); },
                 &roots);
  return roots;
}
}  // namespace

TEST_CASE("the VM's roots cover globals and handles, not the interned strings") {
  using namespace spindle::vm;
  spindle::Vm vm;
  REQUIRE(vm.run("var g = [\"kept\"]; var l = []; var a = \"\";").ok());
  spindle::Value held = vm.list(std::vector<spindle::Value>{spindle::Value::number(1)});
  VM& in = vm.internal();
  const std::vector<void*> before = rootsOf(in);
  const Value g = in.global(static_cast<std::uint32_t>(in.globalNames().find("g")));
  CHECK(std::find(before.begin(), before.end(), g.asObj()) != before.end());
  CHECK(held.typeName() == "list");
  // 5000 more interned strings (kept alive by a list): the root scan, which the
  // collector runs every cycle, reports exactly as many slots as before: the table is
  // not walked by it (nor, world stopped, at mark termination: no weak callback exists).
  // (The table is the process's: strings of earlier tests may be cleared meanwhile, so
  // only the 5000 distinct strings l holds are counted on.)
  REQUIRE(vm.run("for (var i = 0; i < 5000; i = i + 1) l.push(\"s\" + (\"\" + \"x\"));\n"
                 "for (var i = 0; i < 5000; i = i + 1) { a = a + \"y\"; l.push(a); }")
              .ok());
  CHECK(in.internedCount() >= 5000);
  CHECK(rootsOf(in).size() == before.size());
}

TEST_CASE("300k interned strings, dropped, leave the table as the sweepers free them") {
  spindle::Options o;
  o.output = [](std::string_view) {};
  o.gc_percent = -1;  // no paced cycle: only gc() collects
  spindle::Vm vm(o);
  spindle::vm::VM& in = vm.internal();
  const std::size_t base = in.internedCount();
  // Distinct strings by concatenation: 300 prefixes x 1000 suffixes, each interned.
  REQUIRE(vm.run("var p = []; var q = [];\n"
                 "var s = \"\"; for (var i = 0; i < 300; i = i + 1) { s = s + \"a\"; p.push(s); }\n"
                 "s = \"\"; for (var i = 0; i < 1000; i = i + 1) { s = s + \"b\"; q.push(s); }\n"
                 "fun churn() { var n = 0; for (var i = 0; i < 300; i = i + 1) {\n"
                 "  for (var j = 0; j < 1000; j = j + 1) { var t = p[i] + q[j]; n = n + t.len(); } }\n"
                 "  return n; }\n"
                 "var total = churn(); p = nil; q = nil;")
              .ok());
  CHECK(in.internedCount() >= base + 300000);
  const std::size_t peak = in.internedCount();
  // Two cycles: the first finds them unreachable, its sweep (finished before the next
  // cycle starts) unlinks them; the table shrinks as later interns move its buckets.
  for (int i = 0; i < 3; ++i) REQUIRE(vm.run("gc();").ok());
  CHECK(in.internedCount() < base + 1000);
  CHECK(in.internedCount() < peak);
  // The survivors are intact and interned: equal text is the same object.
  REQUIRE(vm.run("var x = \"to\" + \"tal\"; if (x != \"total\") print nil.boom;").ok());
}

// --- native classes and host data --------------------------------------------------------

struct Acc {
  double n;
};

// A native class with typed host state, an untyped method returning `this`, a method
// that fails, and one storing a script-visible field through the Value API.
void defineAcc(spindle::Vm& vm) {
  vm.defineClass("Acc")
      .init(1, [](spindle::Vm& v, const spindle::Value& self, spindle::Args args) {
        if (!args[0].isNumber()) return spindle::Result::failure("Acc(start) needs a number.");
        CHECK(v.setHostData(self, std::make_unique<Acc>(Acc{args[0].asNumber()})));
        CHECK(v.setField(self, "label", spindle::Value::string("acc")));
        return spindle::Result::success(spindle::Value::number(99));  // ignored: init returns this
      })
      .method<Acc>("add", 1,
                   [](spindle::Vm&, const spindle::Value&, Acc& a, spindle::Args args) {
                     if (!args[0].isNumber()) return spindle::Result::failure("add() needs a number.");
                     a.n += args[0].asNumber();
                     return spindle::Result::success(spindle::Value::number(a.n));
                   })
      .method("self", 0,
              [](spindle::Vm&, const spindle::Value& self, spindle::Args) {
                return spindle::Result::success(self);
              })
      .method("label2", 0,
              [](spindle::Vm& v, const spindle::Value& self, spindle::Args) {
                std::optional<spindle::Value> l = v.field(self, "label");
                if (!l) return spindle::Result::failure("no label");
                return spindle::Result::success(spindle::Value::string(l->asString() + "2"));
              })
      .define();
}


TEST_CASE("native classes: init, methods, this, bound methods, subclasses and super") {
  std::string out;
  spindle::Vm vm(capture(out));
  defineAcc(vm);
  REQUIRE(vm.run("var a = Acc(5);\n"
                 "print a; print Acc;\n"
                 "print a.add(2); print a.add(3);\n"
                 "print a.self() == a; print a.label; print a.label2();\n"
                 "var m = a.add; print m; print m(10);\n"
                 "class Sub < Acc {\n"
                 "  init(n) { super.init(n * 10); this.extra = 1; }\n"
                 "  add(x) { return super.add(x + this.extra); }\n"
                 "}\n"
                 "var s = Sub(1);\n"
                 "print s; print s.add(1); print s.self() == s; print s.label;\n"
                 "class Plain < Acc {}\n"
                 "print Plain(7).add(1);\n")
              .ok());
  CHECK(out ==
        "Acc instance\nAcc\n7\n10\ntrue\nacc\nacc2\n<fn add>\n20\n"
        "Sub instance\n12\ntrue\nacc\n8\n");

  // The state is typed: an Acc, not anything else.
  spindle::Value a = *vm.global("a");
  REQUIRE(vm.hostData<Acc>(a) != nullptr);
  CHECK(vm.hostData<Acc>(a)->n == 20);
  CHECK(vm.hostData<int>(a) == nullptr);
  CHECK(vm.hostData<Acc>(spindle::Value::number(1)) == nullptr);
  CHECK(vm.hostData<Acc>(*vm.global("Acc")) == nullptr);  // a class, not an instance
  // The hidden field is not a field.
  CHECK_FALSE(vm.field(a, "(host data)").has_value());
  CHECK_FALSE(vm.setField(a, "(host data)", spindle::Value::nil()));
  CHECK(vm.field(a, "label")->asString() == "acc");
  CHECK_FALSE(vm.field(a, "nope").has_value());
  CHECK_FALSE(vm.setField(spindle::Value::number(1), "x", spindle::Value::nil()));
  // A C++ call of a native method through a bound method.
  spindle::Result bound = vm.run("var bm = a.add;");
  REQUIRE(bound.ok());
  spindle::Result r = vm.call(*vm.global("bm"), {spindle::Value::number(1)});
  REQUIRE(r.ok());
  CHECK(r.value().asNumber() == 21);
}

TEST_CASE("native methods: errors are runtime errors traced from the caller") {
  std::string out;
  spindle::Vm vm(capture(out));
  defineAcc(vm);
  spindle::Result e = vm.run("var a = Acc(1);\nfun f() {\n  return a.add(\"x\");\n}\nf();");
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().message == "add() needs a number.");
  CHECK(e.error().trace == std::vector<std::string>{"[line 3] in f()", "[line 5] in script"});

  spindle::Result arity = vm.run("a.add();");
  REQUIRE_FALSE(arity.ok());
  CHECK(arity.error().message == "Expected 1 arguments but got 0.");
  CHECK(arity.error().trace == std::vector<std::string>{"[line 1] in script"});

  spindle::Result init = vm.run("Acc(\"no\");");
  REQUIRE_FALSE(init.ok());
  CHECK(init.error().message == "Acc(start) needs a number.");

  // A subclass whose init does not call super.init has no host state.
  spindle::Result noState = vm.run("class Bad < Acc { init() {} }\nBad().add(1);");
  REQUIRE_FALSE(noState.ok());
  CHECK(noState.error().message == "Acc.add() needs an instance whose init ran.");
  CHECK(noState.error().trace == std::vector<std::string>{"[line 2] in script"});

  spindle::Result undefined = vm.run("a.nope();");
  REQUIRE_FALSE(undefined.ok());
  CHECK(undefined.error().message == "Undefined property 'nope'.");
  REQUIRE(vm.run("print a.add(1);").ok());  // still usable
  CHECK(out == "2\n");
}

TEST_CASE("native methods have no fixed arity limit (wide operands)") {
  std::string out;
  spindle::Vm vm(capture(out));
  vm.defineClass("Wide")
      .method("sum", 300,
              [](spindle::Vm&, const spindle::Value& self, spindle::Args args) {
                CHECK(self.toString() == "Wide instance");
                double t = 0;
                for (const spindle::Value& a : args) t += a.asNumber();
                return spindle::Result::success(spindle::Value::number(t));
              })
      .define();
  std::string call = "print Wide().sum(";
  for (int i = 1; i <= 300; ++i) call += std::to_string(i) + (i < 300 ? ", " : ");");
  REQUIRE(vm.run(call).ok());
  CHECK(out == "45150\n");
}

// Counts destructions of the host state.
struct Tracked {
  std::atomic<int>* destroyed;
  int id;
  ~Tracked() { destroyed->fetch_add(1); }
};

void defineRes(spindle::Vm& vm) {
  vm.defineClass("Res")
      .init(1, [](spindle::Vm& v, const spindle::Value& self, spindle::Args args) {
        auto* counter = reinterpret_cast<std::atomic<int>*>(static_cast<std::uintptr_t>(args[0].asNumber()));
        v.setHostData(self, std::unique_ptr<Tracked>(new Tracked{counter, 7}));
        return spindle::Result::success({});
      })
      .method<Tracked>("id", 0, [](spindle::Vm&, const spindle::Value&, Tracked& t, spindle::Args) {
        return spindle::Result::success(spindle::Value::number(t.id));
      })
      .define();
}

// Collects until `destroyed` reaches `want` (finalizers run on the finalizer G after the
// cycle), giving up after a generous deadline.
bool collectUntil(spindle::Vm& vm, const std::atomic<int>& destroyed, int want) {
  for (int i = 0; i < 2000 && destroyed.load() < want; ++i) {
    REQUIRE(vm.run("gc();").ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return destroyed.load() == want;
}

TEST_CASE("host state lives as long as its instance; the collector and ~Vm destroy it") {
  std::atomic<int> destroyed{0};
  const std::string counter = std::to_string(reinterpret_cast<std::uintptr_t>(&destroyed));
  {
    spindle::Vm vm;
    defineRes(vm);
    spindle::Value kept;  // a handle: the instance and its state stay alive
    {
      spindle::Result made = vm.call(*vm.global("Res"), {spindle::Value::number(static_cast<double>(
                                                             reinterpret_cast<std::uintptr_t>(&destroyed)))});
      REQUIRE(made.ok());
      kept = made.value();
    }
    REQUIRE(vm.run("var global = Res(" + counter + ");\n"
                   "for (var i = 0; i < 100; i = i + 1) Res(" + counter + ");\n"
                   "class SubRes < Res {}\n"
                   "for (var i = 0; i < 20; i = i + 1) SubRes(" + counter + ");")
                .ok());
    CHECK(collectUntil(vm, destroyed, 120));
    // More cycles destroy nothing that is still reachable.
    for (int i = 0; i < 3; ++i) REQUIRE(vm.run("gc();").ok());
    CHECK(destroyed.load() == 120);
    REQUIRE(vm.hostData<Tracked>(kept) != nullptr);
    CHECK(vm.hostData<Tracked>(kept)->id == 7);
    spindle::Result id = vm.run("print global.id();");
    CHECK(id.ok());

    // Dropping the handle lets the instance die.
    kept = spindle::Value();
    CHECK(collectUntil(vm, destroyed, 121));

    // Replacing state: the old state is destroyed once unreachable.
    REQUIRE(vm.run("var r2 = Res(" + counter + ");").ok());
    spindle::Value r2 = *vm.global("r2");
    REQUIRE(vm.setHostData(r2, std::unique_ptr<Tracked>(new Tracked{&destroyed, 8})));
    CHECK(vm.hostData<Tracked>(r2)->id == 8);
    CHECK(collectUntil(vm, destroyed, 122));
    CHECK(vm.hostData<Tracked>(r2)->id == 8);
    // Not an instance: the state is destroyed at once.
    CHECK_FALSE(vm.setHostData(spindle::Value::number(1), std::unique_ptr<Tracked>(new Tracked{&destroyed, 9})));
    CHECK(destroyed.load() == 123);
  }
  // ~Vm destroyed what was alive: `global` and r2.
  CHECK(destroyed.load() == 125);
}

TEST_CASE("native methods run from fibers on every P") {
  spindle::Options o;
  o.procs = 2;
  o.output = [](std::string_view) {};
  spindle::Vm vm(o);
  struct Shared {
    std::atomic<int> n{0};
  };
  vm.defineClass("Shared")
      .init(0, [](spindle::Vm& v, const spindle::Value& self, spindle::Args) {
        v.setHostData(self, std::make_unique<Shared>());
        return spindle::Result::success({});
      })
      .method<Shared>("inc", 0, [](spindle::Vm&, const spindle::Value&, Shared& s, spindle::Args) {
        return spindle::Result::success(spindle::Value::number(s.n.fetch_add(1) + 1));
      })
      .define();
  REQUIRE(vm.run("var shared = Shared();\n"
                 "var done = Channel();\n"
                 "fun w(n) { var mine = Shared(); for (var i = 0; i < n; i = i + 1) { shared.inc(); mine.inc(); }\n"
                 "  done.send(mine.inc()); }\n"
                 "for (var i = 0; i < 8; i = i + 1) spawn w(100);\n"
                 "for (var i = 0; i < 8; i = i + 1) if (done.recv() != 101) print nil + 1;\n")
              .ok());
  CHECK(vm.hostData<Shared>(*vm.global("shared"))->n.load() == 800);
}

double gcstatsField(spindle::Vm& vm, const char* field) {
  spindle::Result r = vm.call(*vm.global("gcstats"), {});
  REQUIRE(r.ok());
  return vm.field(r.value(), field)->asNumber();
}

TEST_CASE("--gcstress 10 with pacing off: exactly allocations / 10 complete cycles") {
  spindle::Options o;
  o.procs = 1;        // one P: its count is every allocation
  o.gc_percent = -1;  // only gcstress starts cycles
  o.gcstress = 10;
  o.output = [](std::string_view) {};
  // Cycles are process-wide: count from before this Vm (whose allocations all count). The
  // probe is gone before vm exists, so vm creates the runtime with o.
  double c0;
  {
    spindle::Vm probe;
    c0 = gcstatsField(probe, "cycles");
  }
  spindle::Vm vm(o);
  // yield(): a safepoint after the last allocation, where the owed cycles complete.
  REQUIRE(vm.run("var keep = nil;\n"
                 "for (var i = 0; i < 2000; i = i + 1) { keep = [i, [i]]; }\n"
                 "yield();\n"
                 "var s = gcstats();\n")
              .ok());
  const spindle::Value s = *vm.global("s");
  const double allocs = vm.field(s, "allocs")->asNumber();  // read before its own allocation
  const double cycles = vm.field(s, "cycles")->asNumber() - c0;
  MESSAGE("allocations " << allocs << ", cycles " << cycles);
  CHECK(allocs > 4000);
  CHECK(cycles == static_cast<double>(static_cast<std::uint64_t>(allocs) / 10));
  CHECK(vm.field(s, "stressCycles")->asNumber() >= cycles);
}

TEST_CASE("gcstoptheworld: every cycle marks with the world stopped, fibers running") {
  spindle::Options o;
  o.procs = 2;
  o.gcstoptheworld = true;
  o.gccheckmark = true;
  o.output = [](std::string_view) {};
  double c0, s0;
  {
    spindle::Vm probe;  // gone before vm, which creates the runtime with o
    c0 = gcstatsField(probe, "cycles");
    s0 = gcstatsField(probe, "stwMarkCycles");
  }
  spindle::Vm vm(o);
  REQUIRE(vm.run("var done = Channel(2);\n"
                 "fun churn(n) { var l = nil; for (var i = 0; i < n; i = i + 1) l = [i, l];\n"
                 "  done.send(true); }\n"
                 "spawn churn(20000); spawn churn(20000);\n"
                 "for (var i = 0; i < 3; i = i + 1) gc();\n"
                 "done.recv(); done.recv();\n"
                 "gc();\n")
              .ok());
  const double cycles = gcstatsField(vm, "cycles") - c0;
  MESSAGE("cycles " << cycles);
  CHECK(cycles >= 4);
  CHECK(gcstatsField(vm, "stwMarkCycles") - s0 == cycles);
}

TEST_CASE("gcstats() is a GCStats instance of numbers; its fields read through the API") {
  spindle::Vm vm;
  spindle::Result before = vm.call(*vm.global("gcstats"), {});
  REQUIRE(before.ok());
  CHECK(before.value().toString() == "GCStats instance");
  REQUIRE(vm.run("gc();").ok());
  spindle::Result after = vm.call(*vm.global("gcstats"), {});
  REQUIRE(after.ok());
  for (const char* f : {"cycles", "forcedCycles", "heapLive", "heapMarked", "heapGoal", "heapTrigger",
                        "heapInUse", "heapSys", "gcPercent", "numPauses", "stressCycles", "stwMarkCycles", "heapVerifications",
                        "finalizersQueued", "finalizersRun", "lastPauseNs", "maxPauseNs",
                        "totalPauseNs", "allocs", "allocBytes", "procs"}) {
    CAPTURE(f);
    std::optional<spindle::Value> v = vm.field(after.value(), f);
    REQUIRE(v.has_value());
    CHECK(v->isNumber());
  }
  CHECK(vm.field(after.value(), "cycles")->asNumber() > vm.field(before.value(), "cycles")->asNumber());
  CHECK(vm.field(after.value(), "gcPercent")->asNumber() == 100);
  // Not a global: scripts cannot make empty ones.
  CHECK_FALSE(vm.global("GCStats").has_value());
}

}  // namespace

// Long operations reach a checkpoint within bounded work (ARCHITECTURE "What bounds a
// pause"). checkStopsMidway(setup, op) runs op and, at the first runtime::checkpoint()
// op reaches (a test hook wraps Sched::checkpoint), has a host thread ask for a
// stopTheWorld and waits until that stop waits for this fiber's P; the checkpoint then
// hands the P over. When the stop returns, the G must be held inside the operation: in
// the checkpoint (the syscall state, in place), with finish() (run right after the
// operation) not yet run. An operation that reaches no checkpoint fails at once.
//
// armNest(f) ops check a nested VM::call instead: armNest arms the stop itself, then
// calls f nested, whose fiber must poll preemption (or give up its P in sleep()). The
// stopper re-preempts every 100 us, so an attempt can stop the G before f begins; such an
// attempt (neither in a checkpoint nor finished) is repeated, up to kStopAttempts times.
// inProgress (if given) is asked too, with the world stopped.
constexpr int kStopAttempts = 50;

// checkpointArmHook's state (the hook is a plain function pointer): the G whose next
// checkpoint arms the stop, and what arming does. Written before gArmG is (seq_cst).
std::atomic<spindle::runtime::G*> gArmG{nullptr};
std::function<void()> gArmAction;

void checkpointArmHook() {
  spindle::runtime::M* m = spindle::runtime::getm();
  spindle::runtime::G* g = m != nullptr ? m->curg : nullptr;
  if (g != nullptr && gArmG.load() == g && gArmG.compare_exchange_strong(g, nullptr)) gArmAction();
  spindle::runtime::Sched::checkpoint();
}

void checkStopsMidway(const std::string& setup, const std::string& op,
                      const std::function<void(spindle::Vm&)>& define = nullptr,
                      const std::function<bool()>& inProgress = nullptr) {
  std::string out;
  spindle::Options o = capture(out);
  o.procs = 1;
  // No paced cycle: a GC's own stop or forEachP request would make checkpointPending()
  // true in arm() before the stopper's stop is pending.
  o.gc_percent = -1;
  spindle::Vm vm(o);
  std::atomic<bool> armed{false}, finished{false}, opDone{false};
  spindle::runtime::G* g = nullptr;  // written before armed (seq_cst), read after it
  auto arm = [&] {
    g = spindle::runtime::getm()->curg;
    armed.store(true);
    while (!spindle::runtime::Sched::checkpointPending()) std::this_thread::yield();
  };
  vm.defineNative("armStop", 0, [&](spindle::Vm&, std::span<const spindle::Value>) {
    gArmAction = arm;
    gArmG.store(spindle::runtime::getm()->curg);
    return spindle::Result::success(spindle::Value::nil());
  });
  vm.defineNative("finish", 0, [&](spindle::Vm&, std::span<const spindle::Value>) {
    finished.store(true);
    return spindle::Result::success(spindle::Value::nil());
  });
  // Arms the stop itself and keeps the preemption request: the nested fiber must see it.
  vm.defineNative("armNest", 1, [&](spindle::Vm& v, std::span<const spindle::Value> args) {
    arm();
    return v.call(args[0], {});
  });
  if (define) define(vm);
  spindle::runtime::setCheckpointHook(&checkpointArmHook);
  const bool armsItself = op.starts_with("armNest(");
  bool inCheckpoint = false, finishedAtStop = false;
  for (int attempt = 0; attempt < kStopAttempts && !inCheckpoint && !finishedAtStop; attempt++) {
    armed.store(false);
    finished.store(false);
    opDone.store(false);
    REQUIRE(vm.run(setup).ok());
    std::thread stopper([&] {
      while (!armed.load() && !opDone.load()) std::this_thread::yield();
      if (!armed.load()) return;  // op reached no checkpoint: nothing to stop
      spindle::runtime::Sched& s = vm.internal().sched();
      s.stopTheWorld("test");
      finishedAtStop = finished.load();
      inCheckpoint = g->status.load() == spindle::runtime::GStatus::Syscall &&
                     (!inProgress || inProgress());
      s.startTheWorld();
    });
    const spindle::Result r = vm.run((armsItself ? "" : "armStop();\n") + op + "\nfinish();");
    opDone.store(true);
    stopper.join();
    REQUIRE(r.ok());
    CHECK(finished.load());
    if (!armsItself) {
      CHECK_MESSAGE(armed.load(), "the operation reached no checkpoint");
      break;  // armed at the checkpoint itself: one attempt decides
    }
  }
  gArmG.store(nullptr);
  spindle::runtime::setCheckpointHook(&spindle::runtime::Sched::checkpoint);
  CHECK_FALSE(finishedAtStop);
  CHECK(inCheckpoint);
}

TEST_CASE("printing a long list lets the world stop midway") {
  checkStopsMidway("var l = []; for (var i = 0; i < 20000; i = i + 1) l.push(i);", "print l;");
}

TEST_CASE("concatenating huge strings lets the world stop midway") {
  checkStopsMidway("var s = \"x\"; for (var i = 0; i < 20; i = i + 1) s = s + s;",
                   "var t = s + \"y\";");
}

TEST_CASE("interning a huge string lets the world stop midway (hashing)") {
  checkStopsMidway("", "internBig();", [](spindle::Vm& vm) {
    vm.defineNative("internBig", 0, [](spindle::Vm& v, std::span<const spindle::Value>) {
      const std::string big(std::size_t{1} << 20, 'z');
      v.internal().intern(big);
      return spindle::Result::success(spindle::Value::nil());
    });
  });
}

TEST_CASE("hashString: every byte and the length count (the word-at-a-time tail reads)") {
  // For each length, flipping any one byte changes the hash, and so does appending a zero
  // byte (the zero-padded tail word alone would not tell "ab" from "ab\0").
  for (std::size_t n = 0; n <= 40; ++n) {
    std::string s(n, 'a');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
    const std::uint32_t h = spindle::vm::hashString(s);
    INFO("length ", n);
    CHECK(spindle::vm::hashString(s + std::string(1, '\0')) != h);
    for (std::size_t i = 0; i < n; ++i) {
      std::string t = s;
      t[i] = static_cast<char>(t[i] ^ 0x40);
      INFO("byte ", i);
      CHECK(spindle::vm::hashString(t) != h);
    }
  }
}

// Strings outside the heap: StringTable reads only hash, length, the bytes and hnext.
struct FakeString {
  alignas(spindle::vm::ObjString) unsigned char bytes[sizeof(spindle::vm::ObjString) + 8] = {};
  explicit FakeString(std::string_view text, std::uint32_t hash) {
    auto* s = str();
    s->length = static_cast<std::uint32_t>(text.size());
    s->hash = hash;
    s->hnext = nullptr;
    std::memcpy(s->mutableChars(), text.data(), text.size());
  }
  spindle::vm::ObjString* str() { return reinterpret_cast<spindle::vm::ObjString*>(bytes); }
};

TEST_CASE("StringTable: the sweepers' hook unlinks a batch under one lock; a hit moves to the front") {
  spindle::vm::StringTable t;
  // One chain (equal hashes): a, b, c, inserted in that order (c at the front).
  FakeString a("a", 7), b("b", 7), c("c", 7);
  std::lock_guard<std::mutex> lk(t.lock());
  t.insert(a.str());
  t.insert(b.str());
  t.insert(c.str());
  CHECK(t.find("a", 7) == a.str());  // now at the front: a, c, b
  CHECK(t.find("b", 7) == b.str());
  CHECK(t.find("c", 7) == c.str());
  CHECK(t.count() == 3);
  void* dead[] = {a.str(), c.str()};
  t.lock().unlock();  // the hook takes the lock itself
  spindle::vm::StringTable::sweepFree(&t, dead, 2);
  t.lock().lock();
  CHECK(t.count() == 1);
  CHECK(t.find("a", 7) == nullptr);
  CHECK(t.find("c", 7) == nullptr);
  CHECK(t.find("b", 7) == b.str());
}

TEST_CASE("StringTable: shrinks only after capacity/2 inserts in a row left it under 1/8 full") {
  spindle::vm::StringTable t;
  std::lock_guard<std::mutex> lk(t.lock());
  std::vector<std::unique_ptr<FakeString>> strs;
  auto add = [&](std::uint32_t i) {
    strs.push_back(std::make_unique<FakeString>("s", i * 2654435761u));
    t.insert(strs.back()->str());
    if (const std::size_t want = t.wantedCapacity(); want != 0) {
      CHECK(t.startResize(new spindle::vm::ObjString*[want](), want) == nullptr);
    }
    t.find("none", 1);  // moves buckets while resizing
    t.find("none", 1);
  };
  for (std::uint32_t i = 0; i < 600; ++i) add(i);
  REQUIRE(t.capacity() == 1024);
  // The garbage of a cycle is swept: 10 strings left.
  while (strs.size() > 10) {
    t.remove(strs.back()->str());
    strs.pop_back();
  }
  add(1000);  // 11 of 1024: under 1/8, but one low insert only
  CHECK(t.wantedCapacity() == 0);
  // Garbage comes and goes, never filling 1/8: after 512 such inserts the table shrinks.
  for (std::uint32_t i = 0; i < 510; ++i) {
    add(2000 + i);
    t.remove(strs.back()->str());
    strs.pop_back();
  }
  CHECK(t.capacity() == 1024);
  add(3000);
  add(3001);
  CHECK(t.capacity() < 1024);
}

TEST_CASE("growing a long list lets the world stop midway (copying its items)") {
  // 16384 elements fill the storage exactly (4 doubled 12 times): the push copies them.
  checkStopsMidway("var l = []; for (var i = 0; i < 16384; i = i + 1) l.push(i);", "l.push(0);");
}

// A map whose 16384 entries (8, 16, 32, ...: growth to powers of two) fill its storage, all
// but one removed: the next new key copies the one live entry into a small storage (no
// zeroing to pass checkpoints), so only the scan over the removed entries can stop.
const char* const kMapOfRemoved =
    "var m = {}; for (var i = 0; i < 16384; i = i + 1) m[i] = i;"
    "for (var i = 1; i < 16384; i = i + 1) m.remove(i);";

TEST_CASE("growing a map lets the world stop midway (scanning its entries)") {
  checkStopsMidway(kMapOfRemoved, "m[\"new\"] = 1;");
}

TEST_CASE("listing a map's keys lets the world stop midway") {
  checkStopsMidway(kMapOfRemoved, "m.keys();");
}

// 20000 keys counting up (the dense prefix; the storage holds 32768, so no growth), the
// first removed: adding it again links the prefix's other entries into the index.
TEST_CASE("re-adding a removed key of a dense map lets the world stop midway (linking)") {
  checkStopsMidway("var m = {}; for (var i = 0; i < 20000; i = i + 1) m[i] = i; m.remove(0);",
                   "m[0] = 1;");
}

TEST_CASE("printing a big map lets the world stop midway") {
  checkStopsMidway("var m = {}; for (var i = 0; i < 20000; i = i + 1) m[i] = i;", "print m;");
}

TEST_CASE("a native's nested VM::call polls preemption: the world stops midway") {
  checkStopsMidway("fun spin() { var i = 0; while (i < 100000) i = i + 1; finish(); }",
                   "armNest(spin);");
}

TEST_CASE("sleep() in a nested VM::call gives up the P: the world stops during it") {
  // The stop must come while sleep() itself runs, not at the safepoint after it returns:
  // mark() records the nested fiber and its stack top inside a call without arguments;
  // inside sleep(s) the top is one higher (the argument), after it returned it is not
  // (the interpreter saved it before each call; read with the world stopped).
  spindle::vm::ObjFiber* nested = nullptr;
  std::uint32_t markTop = 0;
  checkStopsMidway(
      "fun nap() { mark(); sleep(0.02); finish(); }", "armNest(nap);",
      [&](spindle::Vm& vm) {
        vm.defineNative("mark", 0, [&](spindle::Vm&, std::span<const spindle::Value>) {
          nested = spindle::vm::currentFiber();
          markTop = nested->stackTop;
          // As armStop: the safepoint after this call must not take the stop.
          spindle::runtime::getm()->curg->preempt.store(false, std::memory_order_relaxed);
          return spindle::Result::success(spindle::Value::nil());
        });
      },
      [&] { return nested->stackTop == markTop + 1; });
}

// The string library's long operations (strlib.cc: their WorkMeter).
constexpr const char* kMiB = "var s = \"x\"; for (var i = 0; i < 20; i = i + 1) s = s + s;";

TEST_CASE("string library: find over a huge string lets the world stop midway") {
  checkStopsMidway(kMiB, "var i = s.find(\"y\");");
}

TEST_CASE("string library: comparing huge strings lets the world stop midway") {
  checkStopsMidway(std::string(kMiB) + " var s2 = s + \"a\";", "var c = s < s2;");
}

TEST_CASE("string library: split, replace, repeat, upper let the world stop midway") {
  checkStopsMidway(kMiB, "var l = s.split(\"\");");
  checkStopsMidway(kMiB, "var r = s.replace(\"x\", \"yy\");");
  checkStopsMidway(kMiB, "var r = s.repeat(4);");
  checkStopsMidway(kMiB, "var u = s.upper();");
}

TEST_CASE("string library: join and format let the world stop midway") {
  checkStopsMidway("var l = []; for (var i = 0; i < 20000; i = i + 1) l.push(\"abcdefgh\");",
                   "var j = l.join(\",\");");
  checkStopsMidway(kMiB, "var f = format(s);");
}

namespace {

// "Why is this alive": gcpath names the slots of a shortest retaining path.
TEST_CASE("gcpath names a path through a global, a field, a list index, a map key, a channel buffer and a frame slot") {
  std::string out;
  spindle::Vm vm(capture(out));
  REQUIRE(vm.run("class Node { init(next) { this.next = next; } }\n"
                 "var head = Node(Node(nil));\n"
                 "print gcpath(head.next);\n"
                 "var ring = [0, 1, 2, 3, Node(nil)];\n"
                 "print gcpath(ring[4]);\n"
                 "var m = Map(); m[\"k\"] = Node(nil);\n"
                 "print gcpath(m[\"k\"]);\n"
                 // The node is reached through the channel (2 steps) and through four
                 // nested lists (5 steps): the path is the shorter one.
                 "var ch = Channel(2); var inner = Node(nil); ch.send(inner);\n"
                 "var deep = [[[[inner]]]]; inner = nil;\n"
                 "print gcpath(deep[0][0][0][0]);\n"
                 "fun consume() { var a = 1; var n = Node(nil); return gcpath(n); }\n"
                 "print consume();\n")
              .ok());
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < out.size();) {
    const std::size_t nl = out.find('\n', at);
    lines.push_back(out.substr(at, nl - at));
    at = nl + 1;
  }
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == "[global head, field next]");
  CHECK(lines[1] == "[global ring, list index 4]");
  CHECK(lines[2] == "[global m, map value for key \"k\"]");
  CHECK(lines[3] == "[global ch, channel buffer]");
  CHECK(lines[4].rfind("[fiber ", 0) == 0);
  CHECK(lines[4].find(" frame consume() slot 2]") != std::string::npos);
}

TEST_CASE("gcpath of an object nothing but its argument retains is nil") {
  std::string out;
  spindle::Vm vm(capture(out));
  REQUIRE(vm.run("class Node {}\n"
                 "fun make() { return Node(); }\n"
                 "print gcpath(Node()); print gcpath(make());\n"
                 "var keep = Node(); print gcpath(keep);\n")
              .ok());
  CHECK(out == "nil\nnil\n[global keep]\n");
}

TEST_CASE("gcpath of a number, bool or nil is a runtime error naming what it got") {
  std::string out;
  spindle::Vm vm(capture(out));
  for (const auto& [arg, got] : {std::pair{"1", "a number."}, {"true", "a bool."}, {"nil", "nil."}}) {
    spindle::Result r = vm.run(std::string("gcpath(") + arg + ");");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message ==
          std::string("gcpath() takes a heap object (a string, list, map, instance, ...), got ") + got);
  }
  REQUIRE(vm.run("print gcpath(\"still usable\") != nil;").ok());
}

void noFinalizer(void*, void*) {}

TEST_CASE("retainingPath names a finalizer root: the fields of an object with a finalizer") {
  std::string out;
  spindle::Vm vm(capture(out));
  spindle::vm::VM& in = vm.internal();
  REQUIRE(vm.run("class Node {} var ch = Channel(1); var item = Node(); ch.send(item);").ok());
  void* ch = in.global(in.globalSlot("ch")).asObj();
  void* item = in.global(in.globalSlot("item")).asObj();
  in.withP([&] { REQUIRE(spindle::runtime::setFinalizer(ch, &noFinalizer, nullptr)); });
  // Neither is a global now: the channel is kept by its finalizer (not a root itself),
  // the item by the channel's buffer, which the finalizer root reports.
  REQUIRE(vm.run("ch = nil; item = nil;").ok());
  std::vector<std::string> path;
  REQUIRE(spindle::runtime::retainingPath(item, &path));
  CHECK(path == std::vector<std::string>{"finalizer root of <channel>", "channel buffer"});
  in.withP([&] { spindle::runtime::setFinalizer(ch, nullptr, nullptr); });
  REQUIRE(vm.run("gc();").ok());
}

TEST_CASE("gccensus counts the live instances of a class after a full cycle") {
  std::string out;
  spindle::Vm vm(capture(out));
  REQUIRE(vm.run("class Foo {} class Bar {}\n"
                 "var keep = [];\n"
                 "for (var i = 0; i < 7; i = i + 1) { keep.push(Foo()); Bar(); }\n"
                 "var c = gccensus();\n"
                 "print c[\"instance of Foo\"][0]; print c[\"instance of Bar\"];\n"
                 "print c[\"list\"][0] >= 1; print c[\"instance of Foo\"][1] >= 7 * 16;\n")
              .ok());
  CHECK(out == "7\nnil\ntrue\ntrue\n");
}

}  // namespace

namespace {

TEST_CASE("gcevents() returns the event log's records since the last call: gc() is a forced cycle") {
  std::string out;
  spindle::Vm vm(capture(out));
  // Interned strings dropped by the loop are cleared from the string table by the sweep.
  REQUIRE(vm.run("var before = gcevents();\n"
                 "var t = 0; for (var i = 0; i < 20000; i = i + 1) { var s = \"k\" + str(i); t = t + s.len(); }\n"
                 "gc();\n"
                 "var ev = gcevents();\n"
                 "var last = ev[ev.len() - 1];\n"
                 "print last[\"cause\"];\n"
                 "print last[\"cycle\"] >= 1 and last[\"phases\"][\"mark\"][\"duration_ns\"] >= 0;\n"
                 "print last[\"stw\"][1][\"phase\"]; print last[\"mark_termination_steps\"][0][\"step\"];\n"
                 "var weak = 0;\n"
                 "for (var e in ev) for (var w in e[\"weak\"]) if (w[\"table\"] == \"string table weak\") weak = weak + w[\"objects\"];\n"
                 "print weak > 0;\n"
                 // Since the last call: none of ev again (seq increases by one per record).
                 "var again = gcevents();\n"
                 "print again.len() == 0 or again[0][\"seq\"] > last[\"seq\"];\n"
                 "print before.len() == 0 or ev[0][\"seq\"] > before[before.len() - 1][\"seq\"];\n")
              .ok());
  CHECK(out == "forced\ntrue\nmark_termination\nroot flush\ntrue\ntrue\ntrue\n");
}

}  // namespace

namespace {

TEST_CASE("gcverify() in a native's callback is a runtime error, not a verification that never ran") {
  std::string out;
  spindle::Vm vm(capture(out));
  vm.defineNative("callback", 1, [](spindle::Vm& v, std::span<const spindle::Value> args) {
    return v.call(args[0], {});
  });
  spindle::Result r = vm.run("fun check() { gcverify(); }\n"
                             "var v0 = gcstats().heapVerifications;\n"
                             "gcverify(); yield();\n"
                             "print gcstats().heapVerifications - v0 >= 1;\n"
                             "callback(check);\n");
  CHECK(out == "true\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "gcverify() cannot run inside a native call.");
}

TEST_CASE("gcpath names a fiber by its number, as the deadlock report does") {
  std::string out;
  // One P: yield() runs the spawned sender (in the P's runnext) until it parks on its
  // send before main goes on; with more Ps main may resume first.
  spindle::Options o = capture(out);
  o.procs = 1;
  spindle::Vm vm(o);
  spindle::Result r = vm.run("class N {}\n"
                             "var ch = Channel(); var w = nil;\n"
                             "fun sender() { var o = N(); w = o; ch.send(o); }\n"
                             "spawn sender(); yield();\n"
                             "fun take() { var t = w; w = nil; return t; }\n"
                             "print gcpath(take());\n"
                             "Channel().recv();\n");
  CHECK(out == "[fiber 2 frame sender() slot 1]\n");
  REQUIRE_FALSE(r.ok());
  CHECK(std::find(r.error().trace.begin(), r.error().trace.end(), "fiber 2 [chan send]:") != r.error().trace.end());
}

}  // namespace
