// shape_table_test.cc: the field tables of long shape chains (shape.h, "Field tables")
// while fibers race and the collector runs. Fibers on two Ps grow instances of one class
// along the same chain at once (racing transitions and racing claims of one table), then
// branch off it in different orders, with a collection requested at every allocation and
// every mark checked by a stop-the-world re-mark: every field reads back its own value,
// and a name of another branch is an undefined property. A table freed while a shape still
// points at it, or an entry answering for the wrong chain, fails here (or as a sanitizer
// report: the test is tagged threads, so it runs under ASan and TSan).
#include <doctest/doctest.h>

#include <string>

#include <fmt/format.h>

#include "vm/spindle.h"

namespace {

constexpr int kShared = 200;  // fields every instance gets, in the same order
constexpr int kBranch = 60;   // fields of each branch, after the shared ones
constexpr int kFibers = 4;

// grow(o, base) sets f0..f{kShared-1}; branch{b}(o, base) then adds b-specific names;
// sum{b}(o) reads every field of branch b back. Branch 1 adds its names in reverse.
std::string script() {
  std::string s = "class C {}\nfun grow(o, base) {\n";
  for (int i = 0; i < kShared; ++i) s += fmt::format("  o.f{} = base + {};\n", i, i);
  s += "}\n";
  for (int b = 0; b < 2; ++b) {
    s += fmt::format("fun branch{}(o, base) {{\n", b);
    for (int k = 0; k < kBranch; ++k) {
      const int i = b == 0 ? k : kBranch - 1 - k;
      s += fmt::format("  o.b{}_{} = base + {};\n", b, i, kShared + i);
    }
    s += fmt::format("}}\nfun sum{}(o) {{\n  var s = 0;\n", b);
    for (int i = 0; i < kShared; ++i) s += fmt::format("  s = s + o.f{};\n", i);
    for (int i = 0; i < kBranch; ++i) s += fmt::format("  s = s + o.b{}_{};\n", b, i);
    s += "  return s;\n}\n";
  }
  // Each fiber builds instances, half of them on each branch, and checks them.
  s += fmt::format(
      "fun work(id) {{\n"
      "  var bad = 0;\n"
      "  for (var r = 0; r < 6; r = r + 1) {{\n"
      "    var base = id * 1000 + r;\n"
      "    var o = C(); grow(o, base);\n"
      "    var b = (id + r) - 2 * math.floor((id + r) / 2);\n"
      "    if (b == 0) branch0(o, base); else branch1(o, base);\n"
      "    var want = {} * base + {};\n"
      "    if (b == 0) {{ if (sum0(o) != want) bad = bad + 1; }}\n"
      "    else {{ if (sum1(o) != want) bad = bad + 1; }}\n"
      "  }}\n"
      "  return bad;\n"
      "}}\n",
      kShared + kBranch, (kShared + kBranch - 1) * (kShared + kBranch) / 2);
  s += "var fibers = [];\n";
  s += fmt::format("for (var id = 0; id < {}; id = id + 1) fibers.push(spawn work(id));\n", kFibers);
  s += "var bad = 0;\nfor (var i = 0; i < fibers.len(); i = i + 1) bad = bad + fibers[i].join();\n"
       "print bad;\n";
  return s;
}

TEST_CASE("racing fibers grow and branch one shape chain under collector stress") {
  std::string out;
  spindle::Options o;
  o.procs = 2;
  o.gcstress_continuous = 1;
  o.gccheckmark = true;
  o.output = [&out](std::string_view s) { out.append(s); };
  spindle::Vm vm(o);
  spindle::Result r = vm.run(script());
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  CHECK(out == "0\n");
  // A name of the other branch is not found through a table shared with the trunk.
  r = vm.run("var a = C(); grow(a, 0); branch0(a, 0); print a.b1_5;");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "Undefined property 'b1_5'.");
  r = vm.run("var t = C(); grow(t, 0); print t.b0_0;");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "Undefined property 'b0_0'.");
}

}  // namespace
