// limits_test.cc: hostile input at the language's size limits. Every limit a script can
// reach is a runtime error (never a wrapped length, a hang or quadratic work): strings
// past lib::maxStringLength() ("String too long.", the limit lowered through the test
// seam so no test allocates 4 GiB); printing a structure whose text doubles per level
// (bounded by the same limit); a million locals, parameters and fields on one instance,
// each compiled and run in linear time (quadratic, each takes minutes).
#include <doctest/doctest.h>

#include <string>

#include <fmt/format.h>

#include "vm/lib.h"
#include "vm/spindle.h"

namespace {

spindle::Options capture(std::string& out) {
  spindle::Options o;
  o.output = [&out](std::string_view s) { out.append(s); };
  return o;
}

// The message of the runtime error `source` ends with ("" when it succeeds).
std::string errorOf(spindle::Vm& vm, const std::string& source) {
  spindle::Result r = vm.run(source);
  return r.ok() ? "" : r.error().message;
}

// Lowers the string limit for one test case.
struct StringLimit {
  explicit StringLimit(std::size_t n) { spindle::vm::lib::setMaxStringLengthForTest(n); }
  ~StringLimit() { spindle::vm::lib::setMaxStringLengthForTest(spindle::vm::lib::kMaxStringLength); }
};

TEST_CASE("every way a string grows stops at the limit with String too long.") {
  StringLimit limit(64);
  std::string out;
  spindle::Vm vm(capture(out));
  REQUIRE(vm.run("var s32 = \"0123456789abcdef0123456789abcdef\";").ok());
  // Exactly at the limit is allowed everywhere.
  CHECK(errorOf(vm, "print (s32 + s32).len();") == "");
  CHECK(errorOf(vm, "print s32.repeat(2).len();") == "");
  CHECK(errorOf(vm, "print [s32, s32].join(\"\").len();") == "");
  CHECK(errorOf(vm, "print format(\"{}{}\", s32, s32).len();") == "");
  CHECK(out == "64\n64\n64\n64\n");
  // One byte past it.
  CHECK(errorOf(vm, "var t = s32 + s32 + \"x\";") == "String too long.");
  CHECK(errorOf(vm, "var t = \"x\" + s32 + s32;") == "String too long.");
  CHECK(errorOf(vm, "var t = s32.repeat(3);") == "String too long.");
  CHECK(errorOf(vm, "var t = [s32, s32, \"x\"].join(\"\");") == "String too long.");
  CHECK(errorOf(vm, "var t = [s32, s32].join(\"-\");") == "String too long.");
  CHECK(errorOf(vm, "var t = format(\"{}{}!\", s32, s32);") == "String too long.");
  CHECK(errorOf(vm, "var t = format(\"{}{}{{\", s32, s32);") == "String too long.");
  CHECK(errorOf(vm, "var t = str([s32, s32]);") == "String too long.");
  CHECK(errorOf(vm, "var t = s32.replace(\"0\", s32);") == "String too long.");
  CHECK(errorOf(vm, "var b = Bytes(100); b.write(\"uint8\", 0, 65); b.write(\"uint8\", 99, 0);"
                    "for (var i = 0; i < 99; i = i + 1) b.set(i, 65); var t = b.string(0);") ==
        "String too long.");
  // A growing loop ends at the limit with the error, and the VM stays usable.
  CHECK(errorOf(vm, "var g = \"x\"; while (true) g = g + g;") == "String too long.");
  out.clear();
  CHECK(errorOf(vm, "print g.len();") == "");
  CHECK(out == "64\n");
}

TEST_CASE("printing a DAG whose text doubles per level stops at the string limit") {
  StringLimit limit(1 << 20);
  std::string out;
  spindle::Vm vm(capture(out));
  // 2^60 leaves: without the bound this print never ends.
  REQUIRE(vm.run("var x = [1]; for (var i = 0; i < 60; i = i + 1) x = [x, x];").ok());
  CHECK(errorOf(vm, "print x;") == "String too long.");
  CHECK(errorOf(vm, "var t = str(x);") == "String too long.");
  CHECK(errorOf(vm, "var t = [x].join(\"\");") == "String too long.");
  CHECK(errorOf(vm, "var m = {}; m[1] = x; print m;") == "String too long.");
  CHECK(out.empty());
  // Shallow sharing still prints in full.
  CHECK(errorOf(vm, "var y = [1]; for (var i = 0; i < 3; i = i + 1) y = [y, y]; print y;") == "");
  CHECK(out == "[[[[1], [1]], [[1], [1]]], [[[1], [1]], [[1], [1]]]]\n");
}

constexpr int kMillion = 1000000;

TEST_CASE("a million locals in one function compile and run") {
  std::string src = "fun f() {\n";
  for (int i = 0; i < kMillion; ++i) src += fmt::format("var l{};\n", i);
  // Shadowing and scope checks keep working in a huge scope.
  src += "l0 = 1; l999999 = 2; { var l0 = 40; print l0 + l999999; } return l0 + l999999; }\n"
         "print f();";
  std::string out;
  spindle::Vm vm(capture(out));
  CHECK(errorOf(vm, src) == "");
  CHECK(out == "42\n3\n");
  std::string dup = "fun f() {\n";
  for (int i = 0; i < kMillion; ++i) dup += fmt::format("var l{};\n", i);
  dup += "var l7; }";
  spindle::Result r = vm.run(dup);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "[line 1000002] Error at 'l7': Already a variable with this name in this scope.");
}

TEST_CASE("shadowing in a scope past the scanned locals restores the outer names") {
  // 100 locals (past LocalStack::kScannedLocals, so names resolve through the index); an
  // inner block hides every other one, a closure captures an inner and an outer local,
  // and after the block each name is the outer local again (the index entry goes back to
  // the slot it hid), twice over so a restored entry is hidden and restored again.
  std::string src = "fun f() {\n";
  for (int i = 0; i < 100; ++i) src += fmt::format("var v{} = {};\n", i, i);
  src += "var get; var sum = 0;\n";
  for (int round = 0; round < 2; ++round) {
    src += "{\n";
    for (int i = 0; i < 100; i += 2) src += fmt::format("var v{} = {};\n", i, 1000 + i);
    src += "fun g() { return v10 + v11; } get = g;\n";
    for (int i = 0; i < 100; ++i) src += fmt::format("sum = sum + v{};\n", i);
    src += "}\n";
    for (int i = 0; i < 100; ++i) src += fmt::format("sum = sum + v{};\n", i);
  }
  src += "return sum + get(); }\nprint f();";
  // Per round: inside 4950 + 50 * 1000 = 54950, after it 4950; get() = 1010 + 11.
  std::string out;
  spindle::Vm vm(capture(out));
  CHECK(errorOf(vm, src) == "");
  CHECK(out == fmt::format("{}\n", 2 * (54950 + 4950) + 1021));
}

TEST_CASE("a function of a million parameters compiles and is called") {
  std::string params, args;
  for (int i = 0; i < kMillion; ++i) {
    params += fmt::format("{}p{}", i == 0 ? "" : ", ", i);
    args += i == 0 ? "1" : ", 2";
  }
  std::string out;
  spindle::Vm vm(capture(out));
  CHECK(errorOf(vm, "fun g(" + params + ") { return p0 + p999999; } print g(" + args + ");") == "");
  CHECK(out == "3\n");
}

TEST_CASE("a million fields on one instance are added and read in linear time") {
  std::string src = "class C {}\nvar o = C();\n";
  for (int i = 0; i < kMillion; ++i) src += fmt::format("o.f{} = {};\n", i, i);
  // A second instance follows the same chain (every shape found, no table built); a
  // collection in between traces the tables.
  src += "gc(); var p = C(); p.f0 = 1; p.f1 = 2;\n"
         "print o.f0; print o.f8; print o.f123456; print o.f999999; print p.f1;\n";
  std::string out;
  spindle::Vm vm(capture(out));
  CHECK(errorOf(vm, src) == "");
  CHECK(out == "0\n8\n123456\n999999\n2\n");
  CHECK(errorOf(vm, "print p.f2;") == "Undefined property 'f2'.");
}

TEST_CASE("field tables of branching chains answer only for their own chain") {
  // a, b and c share the first 10 fields and then branch: b's 11th field is new at the
  // slot where a's table already holds a's 11th (b must not extend a's table), and c
  // adds b's fields in another order. Every read gives its own instance's value.
  std::string src = "class C {}\nvar a = C(); var b = C(); var c = C();\n";
  for (int i = 0; i < 30; ++i) src += fmt::format("a.f{} = {};\n", i, i);
  for (int i = 0; i < 10; ++i) src += fmt::format("b.f{} = {}; c.f{} = {};\n", i, 100 + i, i, 200 + i);
  for (int i = 10; i < 30; ++i) src += fmt::format("b.g{} = {};\n", i, 100 + i);
  for (int i = 29; i >= 10; --i) src += fmt::format("c.g{} = {};\n", i, 200 + i);
  src += "var s = 0; var t = 0; var u = 0;\n";
  for (int i = 0; i < 10; ++i) src += fmt::format("s = s + a.f{}; t = t + b.f{}; u = u + c.f{};\n", i, i, i);
  for (int i = 10; i < 30; ++i) src += fmt::format("s = s + a.f{}; t = t + b.g{}; u = u + c.g{};\n", i, i, i);
  src += "print s; print t; print u;";
  std::string out;
  spindle::Vm vm(capture(out));
  CHECK(errorOf(vm, src) == "");
  CHECK(out == "435\n3435\n6435\n");
  CHECK(errorOf(vm, "print b.f12;") == "Undefined property 'f12'.");
  CHECK(errorOf(vm, "print a.g12;") == "Undefined property 'g12'.");
  CHECK(errorOf(vm, "print c.f29;") == "Undefined property 'f29'.");
}

}  // namespace

namespace {

TEST_CASE("a script of a million constants loads and runs while cycles run back to back") {
  // The constant array is big enough that zeroing it passes checkpoints, where a mark may
  // begin: the function and closure made after it are born black and must shade it.
  std::string src = "var s = 0;\n";
  for (int i = 0; i < kMillion / 4; ++i) src += fmt::format("s = s + {}; var g{} = \"k{}\";\n", i, i, i);
  src += "print s; print g0 + g249999;";
  std::string out;
  spindle::Options o = capture(out);
  o.gcstress_continuous = 1;
  for (int round = 0; round < 3; ++round) {
    out.clear();
    spindle::Vm vm(o);
    CHECK(errorOf(vm, src) == "");
    CHECK(out == "3.12499e+10\nk0k249999\n");
  }
}

}  // namespace
