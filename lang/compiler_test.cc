// compiler_test.cc: the bytecode the compiler emits, its encoding without limits, globals,
// inline-cache slots, the extensions (lists, spawn, select) and diagnostics.
#include "lang/compiler.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "lang/disassembler.h"
#include "lang/test_util.h"
#include "lang/verifier.h"

namespace spindle::lang {
namespace {

using testing::errorsOf;
using testing::instructionsOf;
using testing::nested;
using testing::opsOf;
using O = OpCode;

// How many times op occurs in ops.
std::ptrdiff_t countOf(const std::vector<O>& ops, O op) {
  return std::count(ops.begin(), ops.end(), op);
}

std::shared_ptr<const FunctionProto> compileOk(std::string_view src, GlobalTable& globals) {
  CompileResult r = compile(src, globals);
  INFO(formatDiagnostics(r.diagnostics));
  REQUIRE(r.ok());
  CHECK(verify(*r.script, globals.size()) == std::vector<std::string>{});
  return r.script;
}

std::shared_ptr<const FunctionProto> compileOk(std::string_view src) {
  static GlobalTable globals;
  return compileOk(src, globals);
}

TEST_CASE("expressions compile to stack code") {
  auto fn = compileOk("print 1 + 2 * 3 % 4;");
  CHECK(opsOf(*fn) == std::vector<O>{O::CONSTANT, O::CONSTANT, O::CONSTANT, O::MULTIPLY,
                                     O::CONSTANT, O::MODULO, O::ADD, O::PRINT, O::NIL,
                                     O::RETURN});
  fn = compileOk("print !(1 != 2) == (3 >= 4) and 5 <= 6 or -7 < 8;");
  auto ops = opsOf(*fn);
  CHECK(countOf(ops, O::NOT_EQUAL) == 1);
  CHECK(countOf(ops, O::GREATER_EQUAL) == 1);
  CHECK(countOf(ops, O::LESS_EQUAL) == 1);
  CHECK(countOf(ops, O::NEGATE) == 1);
  CHECK(countOf(ops, O::JUMP_IF_FALSE) == 2);
}

TEST_CASE("superinstructions: conditions, constant operands, assignment statements") {
  GlobalTable globals;
  // A comparison consumed by a condition becomes one compare-and-branch (the right
  // operands here are expressions: a variable is folded in, see the next test case).
  auto fn = compileOk("var a; var b; if (a < -b) print 1; else print 2;", globals);
  auto ops = opsOf(*fn);
  CHECK(countOf(ops, O::JUMP_UNLESS_LESS) == 1);
  CHECK(countOf(ops, O::LESS) == 0);
  CHECK(countOf(ops, O::POP) == 0);
  fn = compileOk("while (a == -b) a = 1; for (;a != -b;) {} if (a >= -b) {} if (a <= -b) {} if (a > -b) {}",
                 globals);
  ops = opsOf(*fn);
  for (O op : {O::JUMP_UNLESS_EQUAL, O::JUMP_UNLESS_NOT_EQUAL, O::JUMP_UNLESS_GREATER_EQUAL,
               O::JUMP_UNLESS_LESS_EQUAL, O::JUMP_UNLESS_GREATER}) {
    CHECK(countOf(ops, op) == 1);
  }
  // A constant right operand is folded in too (the index operand, then the distance).
  fn = compileOk("if (a <= 2) print 1; while (a != \"s\") {} for (;a > 1;) {} if (a >= 0 == -b) {}",
                 globals);
  auto ins = instructionsOf(*fn);
  std::vector<O> withConstant;
  for (const Instruction& in : ins) {
    if (operandShape(in.op) == OperandShape::IndexJump) withConstant.push_back(in.op);
  }
  CHECK(withConstant == std::vector<O>{O::JUMP_UNLESS_LESS_EQUAL_CONSTANT,
                                       O::JUMP_UNLESS_NOT_EQUAL_CONSTANT,
                                       O::JUMP_UNLESS_GREATER_CONSTANT});
  ops = opsOf(*fn);  // (a >= 0) == b: the constant comparison is a value, not a condition
  CHECK(countOf(ops, O::GREATER_EQUAL) == 1);
  CHECK(countOf(ops, O::JUMP_UNLESS_EQUAL) == 1);
  CHECK(ins[1].operandCount == 2);
  CHECK(std::holds_alternative<double>(fn->chunk.constants[ins[1].operands[0]]));
  CHECK(ins[1].jumpTarget() == ins[4].offset);
  // Any other condition is popped by the jump.
  fn = compileOk("if (a) print 1;", globals);
  CHECK(opsOf(*fn) == std::vector<O>{O::GET_GLOBAL, O::POP_JUMP_IF_FALSE, O::CONSTANT, O::PRINT,
                                     O::NIL, O::RETURN});
  // A comparison an `or` jumps past is not fused: the jump lands between the two.
  fn = compileOk("if (a or a == b) print 1;", globals);
  ops = opsOf(*fn);
  CHECK(countOf(ops, O::EQUAL) == 1);
  CHECK(countOf(ops, O::POP_JUMP_IF_FALSE) == 1);
  // Constant right operands of + and -.
  fn = compileOk("print a + 1 - 2;", globals);
  CHECK(opsOf(*fn) == std::vector<O>{O::GET_GLOBAL, O::ADD_CONSTANT, O::SUBTRACT_CONSTANT,
                                     O::PRINT, O::NIL, O::RETURN});
  fn = compileOk("print a + \"s\"; print a - \"s\";", globals);  // only numbers are folded
  ops = opsOf(*fn);
  CHECK(countOf(ops, O::ADD) == 1);
  CHECK(countOf(ops, O::SUBTRACT) == 1);
  fn = compileOk("if (a < \"s\") {} if (a == \"s\") {}", globals);
  ops = opsOf(*fn);
  CHECK(countOf(ops, O::JUMP_UNLESS_LESS) == 1);
  CHECK(countOf(ops, O::JUMP_UNLESS_EQUAL_CONSTANT) == 1);
  fn = compileOk("print a + (b and 1);", globals);  // the `and` jumps past the constant
  ops = opsOf(*fn);
  CHECK(countOf(ops, O::ADD_CONSTANT) == 0);
  CHECK(countOf(ops, O::ADD) == 1);
  // Assignment statements store and pop in one instruction.
  fn = compileOk("a = 1; { var l; l = 2; fun f() { l = 3; } }", globals);
  ops = opsOf(*fn);
  CHECK(countOf(ops, O::SET_GLOBAL_POP) == 1);
  CHECK(countOf(ops, O::SET_LOCAL_POP) == 1);
  const FunctionProto* f = nested(*fn, "f");
  REQUIRE(f != nullptr);
  CHECK(opsOf(*f)[1] == O::SET_UPVALUE_POP);
  fn = compileOk("a or (b = 1);", globals);  // the `or` jumps past the store to the pop
  ops = opsOf(*fn);
  CHECK(countOf(ops, O::SET_GLOBAL) == 1);
  CHECK(countOf(ops, O::SET_GLOBAL_POP) == 0);
  // `x = x + k;` on one line is one instruction (locals and globals).
  fn = compileOk("a = a + 1; { var l = 0; l = l + 2; }", globals);
  ins = instructionsOf(*fn);
  CHECK(ins[0].op == O::ADD_TO_GLOBAL);
  CHECK(ins[0].operands[0] == static_cast<std::uint32_t>(globals.find("a")));
  CHECK(ins[2].op == O::ADD_TO_LOCAL);
  CHECK(ins[2].operands[0] == 1);
  // ... but not another variable, a non-constant, an assignment used as a value, an upvalue,
  // or a statement whose parts lie on different lines (errors keep their lines).
  for (const char* src : {"a = b + 1;", "a = a + b;", "a = a + \"s\";", "print a = a + 1;", "a = a - 1;",
                          "a = a +\n 1;", "{ var l = 0; fun f() { l = l + 1; } }"}) {
    INFO(src);
    fn = compileOk(src, globals);
    std::vector<O> all = opsOf(*fn);
    if (const FunctionProto* f = nested(*fn, "f")) {
      auto inner = opsOf(*f);
      all.insert(all.end(), inner.begin(), inner.end());
    }
    CHECK(std::count(all.begin(), all.end(), O::ADD_TO_GLOBAL) == 0);
    CHECK(std::count(all.begin(), all.end(), O::ADD_TO_LOCAL) == 0);
  }
  // A jump landing inside the statement prevents it.
  fn = compileOk("a = (b or a) + 1;", globals);
  ops = opsOf(*fn);
  CHECK(countOf(ops, O::ADD_TO_GLOBAL) == 0);
  // A wide constant is folded too (the WIDE prefix stays).
  std::string many = "var w = 0;";
  for (int i = 0; i < 300; ++i) many += fmt::format(" w = w + {};", i + 1);
  fn = compileOk(many, globals);
  bool wideAdd = false;
  for (const Instruction& in : instructionsOf(*fn)) wideAdd |= in.op == O::ADD_TO_GLOBAL && in.wide;
  CHECK(wideAdd);
  // The fused jump carries the comparison's line (runtime errors report it).
  fn = compileOk("if (a <\n -b\n) print 1;", globals);
  for (const Instruction& in : instructionsOf(*fn)) {
    if (in.op == O::JUMP_UNLESS_LESS) {
      CHECK(fn->chunk.lines.lineAt(in.offset) == 2);
      CHECK(fn->chunk.lines.lineAt(in.offset + in.length - 1) == 2);
    }
  }
}

TEST_CASE("a condition comparing with a variable fuses the read: JUMP_UNLESS_<cmp>_GLOBAL / _LOCAL") {
  GlobalTable globals;
  auto fn = compileOk(
      "var a; var b; if (a == b) {} if (a != b) {} if (a > b) {} if (a >= b) {} if (a < b) {} "
      "if (a <= b) {}",
      globals);
  auto ins = instructionsOf(*fn);
  std::vector<O> fused;
  for (const Instruction& in : ins) {
    if (comparesGlobal(in.op)) {
      fused.push_back(in.op);
      CHECK(in.operands[0] == static_cast<std::uint32_t>(globals.find("b")));
      CHECK(operandShape(in.op) == OperandShape::IndexJump);
    }
    CHECK(!comparesLocal(in.op));
  }
  CHECK(fused == std::vector<O>{O::JUMP_UNLESS_EQUAL_GLOBAL, O::JUMP_UNLESS_NOT_EQUAL_GLOBAL,
                                O::JUMP_UNLESS_GREATER_GLOBAL, O::JUMP_UNLESS_GREATER_EQUAL_GLOBAL,
                                O::JUMP_UNLESS_LESS_GLOBAL, O::JUMP_UNLESS_LESS_EQUAL_GLOBAL});
  CHECK(countOf(opsOf(*fn), O::GET_GLOBAL) == 6);  // the left operands only
  const auto withGlobals = fn;
  // Locals: `i < n` of a loop in a function; the jump lands after the loop.
  fn = compileOk("fun f(n) { for (var i = 0; i < n; i = i + 1) { if (i == n) {} if (n >= i) {} } }",
                 globals);
  const FunctionProto* f = nested(*fn, "f");
  REQUIRE(f != nullptr);
  ins = instructionsOf(*f);
  REQUIRE(ins.size() > 3);
  CHECK(ins[1].op == O::GET_LOCAL);
  CHECK(ins[1].operands[0] == 2);  // i
  CHECK(ins[2].op == O::JUMP_UNLESS_LESS_LOCAL);
  CHECK(ins[2].operands[0] == 1);  // n
  CHECK(ins[ins.size() - 4].op == O::ADD_TO_LOCAL_LOOP);
  CHECK(ins[2].jumpTarget() == ins[ins.size() - 3].offset);  // the POP of i
  std::vector<O> fops = opsOf(*f);
  CHECK(countOf(fops, O::JUMP_UNLESS_EQUAL_LOCAL) == 1);
  CHECK(countOf(fops, O::JUMP_UNLESS_GREATER_EQUAL_LOCAL) == 1);
  // Disassembled with the global's name, a local with its slot.
  const std::string listing = disassemble(*withGlobals, &globals);
  CHECK(listing.find("OP_JUMP_UNLESS_LESS_GLOBAL") != std::string::npos);
  CHECK(listing.find("'b'") != std::string::npos);
  CHECK(disassemble(*f, &globals).find("OP_JUMP_UNLESS_LESS_LOCAL    1 ") != std::string::npos);
  CHECK(verify(*withGlobals, globals.size()).empty());
  CHECK(verify(*fn, globals.size()).empty());
  // Not fused: a variable read on another line than the comparison (an undefined global
  // reports its own line), a jump landing between the read and the comparison, an
  // upvalue, a comparison used as a value.
  for (const char* src : {"if (a < (b\n)) {}", "if (a < (a or b)) {}", "print a < b;",
                          "{ var l; fun g() { if (a < l) {} } }"}) {
    INFO(src);
    fn = compileOk(src, globals);
    std::vector<O> all = opsOf(*fn);
    if (const FunctionProto* g = nested(*fn, "g")) {
      auto inner = opsOf(*g);
      all.insert(all.end(), inner.begin(), inner.end());
    }
    for (O op : all) CHECK(!comparesGlobal(op));
    for (O op : all) CHECK(!comparesLocal(op));
  }
  // A wide global slot: the WIDE prefix stays, the jump operand stays 4 bytes.
  std::string many;
  for (int i = 0; i < 300; ++i) many += fmt::format("var g{} = {}; ", i, i);
  many += "if (g0 < g299) print 1;";
  fn = compileOk(many, globals);
  bool wide = false;
  for (const Instruction& in : instructionsOf(*fn)) {
    if (in.op == O::JUMP_UNLESS_LESS_GLOBAL) {
      wide = in.wide;
      CHECK(in.operands[0] == static_cast<std::uint32_t>(globals.find("g299")));
    }
  }
  CHECK(wide);
  CHECK(verify(*fn, globals.size()).empty());
}

TEST_CASE("a for loop's `i = i + k` and jump back fuse into ADD_TO_LOCAL_LOOP") {
  GlobalTable globals;
  // Lines: the fused instruction carries the increment's (its error is the add's).
  auto fn = compileOk("fun f(n) {\n for (var i = 0; i < n;\n i = i + 2) {\n print i;\n }\n}", globals);
  const FunctionProto* f = nested(*fn, "f");
  REQUIRE(f != nullptr);
  auto ins = instructionsOf(*f);
  const Instruction* loop = nullptr;
  for (const Instruction& in : ins) {
    if (in.op == O::ADD_TO_LOCAL_LOOP) loop = &in;
    CHECK(in.op != O::LOOP);
  }
  REQUIRE(loop != nullptr);
  CHECK(loop->operandCount == 3);
  CHECK(loop->operands[0] == 2);  // i
  CHECK(std::get<double>(f->chunk.constants[loop->operands[1]]) == 2);
  CHECK(loop->jumpTarget() == ins[2].offset);  // after GET_LOCAL i at ins[1]
  CHECK(f->chunk.lines.lineAt(loop->offset) == 3);
  CHECK(f->chunk.lines.lineAt(loop->offset + loop->length - 1) == 3);
  CHECK(verify(*fn, globals.size()).empty());
  CHECK(disassemble(*f, &globals).find("OP_ADD_TO_LOCAL_LOOP    2 += ") != std::string::npos);
  // Not fused: another increment, a condition not starting with the loop variable, no
  // condition with a body starting otherwise, a global loop variable, a while loop, an
  // increment split over lines.
  for (const char* src : {"{ for (var i = 0; i < 3; i = i - 1) {} }", "{ for (var i = 0; 3 > i; i = i + 1) {} }",
                          "{ var j = 0; for (var i = 0; j < 3; i = i + 1) {} }",
                          "{ for (var i = 0;; i = i + 1) print 1; }", "var g = 0; for (g = 0; g < 3; g = g + 1) {}",
                          "{ var i = 0; while (i < 3) i = i + 1; }", "{ for (var i = 0; i < 3; i = i +\n 1) {} }",
                          "{ for (var i = 0; i < 3; i = i + 1 + 1) {} }"}) {
    INFO(src);
    fn = compileOk(src, globals);
    CHECK(countOf(opsOf(*fn), O::ADD_TO_LOCAL_LOOP) == 0);
    CHECK(countOf(opsOf(*fn), O::LOOP) == 1);
  }
  // No condition, a body that starts by reading i: fused (the jump lands after that read).
  fn = compileOk("{ for (var i = 0;; i = i + 1) print i; }", globals);
  CHECK(countOf(opsOf(*fn), O::ADD_TO_LOCAL_LOOP) == 1);
  CHECK(verify(*fn, globals.size()).empty());
  // A wide constant: the WIDE prefix covers both index operands, the distance stays 4 bytes.
  std::string many = "{ var x = 0;";
  for (int i = 0; i < 300; ++i) many += fmt::format(" x = {};", i + 1000);
  many += " for (var i = 0; i < 3; i = i + 0.5) x = i; }";
  fn = compileOk(many, globals);
  bool wide = false;
  for (const Instruction& in : instructionsOf(*fn)) {
    if (in.op == O::ADD_TO_LOCAL_LOOP) {
      wide = in.wide;
      CHECK(in.operands[0] == 2);
      CHECK(std::get<double>(fn->chunk.constants[in.operands[1]]) == 0.5);
    }
  }
  CHECK(wide);
  CHECK(verify(*fn, globals.size()).empty());
}

TEST_CASE("for: the increment's code follows the body") {
  GlobalTable globals;
  auto fn = compileOk("var n = 3; for (var i = 0; i < n; i = i * 2) print i;", globals);
  // init; condition; body; increment; one backward jump to the condition.
  CHECK(opsOf(*fn) == std::vector<O>{O::CONSTANT, O::DEFINE_GLOBAL, O::CONSTANT, O::GET_LOCAL,
                                     O::JUMP_UNLESS_LESS_GLOBAL, O::GET_LOCAL, O::PRINT,
                                     O::GET_LOCAL, O::CONSTANT, O::MULTIPLY, O::SET_LOCAL_POP,
                                     O::LOOP, O::POP, O::NIL, O::RETURN});
  auto ins = instructionsOf(*fn);
  CHECK(ins[11].jumpTarget() == ins[3].offset);
  CHECK(ins[4].jumpTarget() == ins[12].offset);
  // `i = i + k` and a condition reading i first: the increment and the jump back are one
  // ADD_TO_LOCAL_LOOP, landing after the condition's GET_LOCAL.
  fn = compileOk("var n = 3; for (var i = 0; i < n; i = i + 1) print i;", globals);
  CHECK(opsOf(*fn) == std::vector<O>{O::CONSTANT, O::DEFINE_GLOBAL, O::CONSTANT, O::GET_LOCAL,
                                     O::JUMP_UNLESS_LESS_GLOBAL, O::GET_LOCAL, O::PRINT,
                                     O::ADD_TO_LOCAL_LOOP, O::POP, O::NIL, O::RETURN});
  ins = instructionsOf(*fn);
  CHECK(ins[7].operands[0] == 1);  // i
  CHECK(ins[7].jumpTarget() == ins[4].offset);
  CHECK(ins[4].jumpTarget() == ins[8].offset);
  CHECK(verify(*fn, globals.size()).empty());
  // The moved code keeps its lines.
  fn = compileOk("for (var i = 0; i < 3;\n i = i * 2) {\n print i;\n}", globals);
  ins = instructionsOf(*fn);
  CHECK(ins[2].op == O::JUMP_UNLESS_LESS_CONSTANT);
  CHECK(fn->chunk.lines.lineAt(ins[4].offset) == 3);  // PRINT
  CHECK(ins[7].op == O::MULTIPLY);
  CHECK(fn->chunk.lines.lineAt(ins[7].offset) == 2);
  CHECK(fn->chunk.lines.lineAt(ins[9].offset) == 4);  // LOOP
}

TEST_CASE("constants are shared within a function") {
  auto fn = compileOk("print 1; print 1; print \"a\"; print \"a\"; print 2;");
  CHECK(fn->chunk.constants.size() == 3);
}

TEST_CASE("globals resolve to slots that persist across compile calls") {
  GlobalTable globals;
  globals.slotFor("clock");  // a host-defined native takes slot 0
  auto a = compileOk("var x = 1; print x;", globals);
  REQUIRE(globals.find("x") == 1);
  auto ins = instructionsOf(*a);
  CHECK(ins[1].op == O::DEFINE_GLOBAL);
  CHECK(ins[1].operands[0] == 1);
  CHECK(ins[2].op == O::GET_GLOBAL);
  CHECK(ins[2].operands[0] == 1);
  // A later script (a REPL line) sees the same slot, and new names get new slots.
  auto b = compileOk("x = y; print clock;", globals);
  ins = instructionsOf(*b);
  CHECK(ins[0].op == O::GET_GLOBAL);
  CHECK(ins[0].operands[0] == 2);
  CHECK(globals.name(2) == "y");
  CHECK(ins[1].op == O::SET_GLOBAL_POP);  // an assignment statement: SET_GLOBAL + POP fused
  CHECK(ins[1].operands[0] == 1);
  CHECK(ins[2].operands[0] == 0);
  CHECK(globals.find("nope") == -1);
}

TEST_CASE("locals, upvalues and closures") {
  auto fn = compileOk(
      "fun outer() { var a = 1; var b = 2; fun inner() { return a + b; } return inner; }");
  const FunctionProto* inner = nested(*fn, "inner");
  REQUIRE(inner != nullptr);
  REQUIRE(inner->upvalues.size() == 2);
  CHECK(inner->upvalues[0].isLocal);
  CHECK(inner->upvalues[0].index == 1);
  CHECK(inner->upvalues[1].index == 2);
  const FunctionProto* outer = nested(*fn, "outer");
  REQUIRE(outer != nullptr);
  CHECK(outer->kind == FunctionKind::Function);
  // Captured locals are closed, not popped, when their scope ends.
  auto block = compileOk("{ var a = 1; fun f() { return a; } var b = 2; }");
  auto ops = opsOf(*block);
  CHECK(countOf(ops, O::CLOSE_UPVALUE) == 1);
  CHECK(countOf(ops, O::POP) == 2);
}

TEST_CASE("classes, methods, invoke and super") {
  auto fn = compileOk(
      "class A { init(x) { this.x = x; } get() { return this.x; } }\n"
      "class B < A { get() { return super.get() + super.get; } }\n"
      "var b = B(1); print b.get(); b.y = 2; print b.y;");
  auto ops = opsOf(*fn);
  CHECK(countOf(ops, O::CLASS) == 2);
  CHECK(countOf(ops, O::INHERIT) == 1);
  CHECK(countOf(ops, O::METHOD) == 3);
  CHECK(countOf(ops, O::INVOKE) == 1);
  const FunctionProto* init = nested(*fn, "init");
  REQUIRE(init != nullptr);
  CHECK(init->kind == FunctionKind::Initializer);
  CHECK(init->arity == 1);
  // An initializer returns `this` (slot 0).
  auto initOps = instructionsOf(*init);
  REQUIRE(initOps.size() >= 2);
  CHECK(initOps[initOps.size() - 2].op == O::GET_LOCAL);
  CHECK(initOps[initOps.size() - 2].operands[0] == 0);
  // A method's super calls use SUPER_INVOKE and GET_SUPER.
  const FunctionProto* bget = nullptr;
  for (const Constant& c : fn->chunk.constants) {
    if (auto* p = std::get_if<std::shared_ptr<const FunctionProto>>(&c)) {
      if ((*p)->name == "get" && (*p)->upvalues.size() == 1) bget = p->get();
    }
  }
  REQUIRE(bget != nullptr);
  auto bops = opsOf(*bget);
  CHECK(std::count(bops.begin(), bops.end(), O::SUPER_INVOKE) == 1);
  CHECK(std::count(bops.begin(), bops.end(), O::GET_SUPER) == 1);
}

TEST_CASE("inline-cache slots are numbered 0..n-1 per function") {
  auto fn = compileOk("var o; o.a; o.b = 1; o.c(); o.a; { o.d(1, 2); }");
  CHECK(fn->icSlots == 5);
  std::vector<std::uint32_t> slots;
  for (const Instruction& in : instructionsOf(*fn)) {
    if (in.op == O::GET_PROPERTY || in.op == O::SET_PROPERTY) slots.push_back(in.operands[1]);
    if (in.op == O::INVOKE) slots.push_back(in.operands[2]);
  }
  CHECK(slots == std::vector<std::uint32_t>{0, 1, 2, 3, 4});
}

TEST_CASE("no limit on constants: WIDE operands") {
  std::string src;
  for (int i = 0; i < 70000; ++i) src += fmt::format("print {};\n", i);
  auto fn = compileOk(src);
  CHECK(fn->chunk.constants.size() == 70000);
  auto ins = instructionsOf(*fn);
  CHECK_FALSE(ins[2 * 255].wide);
  CHECK(ins[2 * 256].wide);
  CHECK(ins[2 * 256].operands[0] == 256);
  CHECK(ins[2 * 69999].operands[0] == 69999);
  CHECK(fn->chunk.lines.lineAt(ins[2 * 69999].offset) == 70000);
}

TEST_CASE("no limit on locals, parameters, arguments and upvalues") {
  std::string params, args, locals, uses;
  for (int i = 0; i < 300; ++i) {
    params += fmt::format("{}p{}", i ? ", " : "", i);
    args += fmt::format("{}{}", i ? ", " : "", i);
    locals += fmt::format("var l{} = {};\n", i, i);
    uses += fmt::format(" + l{}", i);
  }
  auto fn = compileOk(fmt::format(
      "fun many({}) {{ {} fun inner() {{ return 0{}; }} return inner() + p299; }}\n"
      "print many({});",
      params, locals, uses, args));
  const FunctionProto* many = nested(*fn, "many");
  REQUIRE(many != nullptr);
  CHECK(many->arity == 300);
  const FunctionProto* inner = nested(*fn, "inner");
  REQUIRE(inner != nullptr);
  CHECK(inner->upvalues.size() == 300);
  CHECK(inner->upvalues[299].index == 600);  // slot 0 + 300 params + 300th local
  bool wideUpvalue = false;
  for (const Instruction& in : instructionsOf(*inner)) {
    wideUpvalue |= in.op == O::GET_UPVALUE && in.wide && in.operands[0] == 299;
  }
  CHECK(wideUpvalue);
  bool wideCall = false;
  for (const Instruction& in : instructionsOf(*fn)) {
    wideCall |= in.op == O::CALL && in.wide && in.operands[0] == 300;
  }
  CHECK(wideCall);
}

TEST_CASE("jumps beyond 64 KiB") {
  std::string src = "var x = 0; var i = 0; while (i < 2) { i = i + 1; if (i == 1) {\n";
  for (int i = 0; i < 20000; ++i) src += "x = x * 1;\n";
  src += "} }\nprint x;";
  auto fn = compileOk(src);
  std::uint32_t longest = 0;
  bool longLoop = false;
  for (const Instruction& in : instructionsOf(*fn)) {
    if (in.op == O::JUMP_UNLESS_EQUAL_CONSTANT) longest = std::max(longest, in.operands[1]);
    if (in.op == O::LOOP && in.operands[0] > 65535) longLoop = true;
  }
  CHECK(longest > 65535);
  CHECK(longLoop);
}

TEST_CASE("lists and indexing") {
  auto fn = compileOk("var l = [1, 2, 3,]; l[0] = l[1][2]; print [];");
  auto ins = instructionsOf(*fn);
  CHECK(ins[3].op == O::LIST);
  CHECK(ins[3].operands[0] == 3);
  auto ops = opsOf(*fn);
  CHECK(countOf(ops, O::GET_INDEX) == 2);
  CHECK(countOf(ops, O::SET_INDEX_POP) == 1);  // the statement `l[0] = ...;`
  CHECK(countOf(ops, O::SET_INDEX) == 0);
  CHECK(errorsOf("[1, 2") == std::vector<std::string>{
                                 "[line 1] Error at end: Expect ']' after list elements."});
  CHECK(errorsOf("[,];") == std::vector<std::string>{"[line 1] Error at ',': Expect expression."});
  CHECK(errorsOf("var l; l[0;") ==
        std::vector<std::string>{"[line 1] Error at ';': Expect ']' after index."});
  CHECK(errorsOf("var l; l[0] + 1 = 2;") ==
        std::vector<std::string>{"[line 1] Error at '=': Invalid assignment target."});
}

TEST_CASE("an index read from a local fuses into GET_INDEX_LOCAL; an index store statement into SET_INDEX_POP") {
  // In a block, so i is a local: `l[i]` is GET_LOCAL; GET_INDEX on one line.
  auto ins = instructionsOf(*compileOk("{ var l = [1]; var i = 0; print l[i]; l[i] = 2; print l[i] = 3; }"));
  std::vector<O> ops;
  for (const Instruction& in : ins) ops.push_back(in.op);
  CHECK(countOf(ops, O::GET_INDEX_LOCAL) == 1);
  CHECK(countOf(ops, O::GET_INDEX) == 0);
  for (const Instruction& in : ins) {
    if (in.op == O::GET_INDEX_LOCAL) CHECK(in.operands[0] == 2);  // i's slot (0 is the script)
  }
  CHECK(countOf(ops, O::SET_INDEX_POP) == 1);  // the statement
  CHECK(countOf(ops, O::SET_INDEX) == 1);      // the expression printed keeps its value
  // Not fused: the index on another line than the `]` (an error reports the GET_INDEX's
  // line), a global index, a local that is the target rather than the index.
  auto split = opsOf(*compileOk("{ var l = [1]; var i = 0; print l[i\n]; }"));
  CHECK(countOf(split, O::GET_INDEX_LOCAL) == 0);
  CHECK(countOf(split, O::GET_INDEX) == 1);
  auto global = opsOf(*compileOk("var l = [1]; var i = 0; print l[i]; { var m = l; print m[0]; }"));
  CHECK(countOf(global, O::GET_INDEX_LOCAL) == 0);
  CHECK(countOf(global, O::GET_INDEX) == 2);
}

TEST_CASE("a spawn expression rewrites its final call to OP_SPAWN_FIBER; the statement stays") {
  auto ops = opsOf(*compileOk("fun f(a) {} var x = spawn f(1); print spawn f(spawn f(2)); spawn f(3);"));
  CHECK(countOf(ops, O::SPAWN_FIBER) == 3);  // x's, print's and the argument's
  CHECK(countOf(ops, O::SPAWN) == 1);        // the statement
  CHECK(countOf(ops, O::CALL) == 0);
  const std::string notCall = "Expect function call after 'spawn'.";
  CHECK(errorsOf("var f; var x = spawn f;") ==
        std::vector<std::string>{"[line 1] Error at 'f': " + notCall});
  CHECK(errorsOf("fun f() {} var x = spawn f().y;") ==
        std::vector<std::string>{"[line 1] Error at 'y': " + notCall});
}

TEST_CASE("spawn rewrites the final call to OP_SPAWN") {
  auto fn = compileOk("fun f(a, b) {} spawn f(1, 2);");
  auto ins = instructionsOf(*fn);
  bool found = false;
  for (const Instruction& in : ins) {
    if (in.op == O::SPAWN) {
      found = true;
      CHECK(in.operands[0] == 2);
    }
  }
  CHECK(found);
  // A method call is a property get plus the spawned call, never an invoke.
  fn = compileOk("var o; spawn o.m(1).n(o.k(2));");
  auto ops = opsOf(*fn);
  CHECK(countOf(ops, O::INVOKE) == 1);  // o.k(2) in the arguments
  CHECK(countOf(ops, O::GET_PROPERTY) == 2);
  CHECK(countOf(ops, O::CALL) == 1);
  CHECK(countOf(ops, O::SPAWN) == 1);
  fn = compileOk("class A { m() {} } class B < A { m() { spawn super.m(); } }");
  const FunctionProto* m = nullptr;
  for (const Constant& c : fn->chunk.constants) {
    if (auto* p = std::get_if<std::shared_ptr<const FunctionProto>>(&c)) {
      if ((*p)->name == "m" && !(*p)->upvalues.empty()) m = p->get();
    }
  }
  REQUIRE(m != nullptr);
  auto mops = opsOf(*m);
  CHECK(std::count(mops.begin(), mops.end(), O::GET_SUPER) == 1);
  CHECK(std::count(mops.begin(), mops.end(), O::SPAWN) == 1);

  const std::string notCall = "Expect function call after 'spawn'.";
  CHECK(errorsOf("spawn 1;") == std::vector<std::string>{"[line 1] Error at '1': " + notCall});
  CHECK(errorsOf("var f; spawn f;") ==
        std::vector<std::string>{"[line 1] Error at 'f': " + notCall});
  CHECK(errorsOf("var f; spawn f().x;") ==
        std::vector<std::string>{"[line 1] Error at 'x': " + notCall});
  CHECK(errorsOf("var f; spawn f()[0];") ==
        std::vector<std::string>{"[line 1] Error at ']': " + notCall});
  CHECK(errorsOf("var f; spawn f() + 1;") ==
        std::vector<std::string>{"[line 1] Error at '+': Expect ';' after spawn call."});
}

TEST_CASE("select: heads, OP_SELECT, jump table") {
  auto fn = compileOk(
      "var a; var b; var r;\n"
      "select {\n"
      "  case var v = a.recv(): print v;\n"
      "  case b.send(1): print 1;\n"
      "  case r = a.recv(): print r;\n"
      "  case b.recv():\n"
      "  default: print 0;\n"
      "}\n");
  auto ins = instructionsOf(*fn);
  const Instruction* select = nullptr;
  const Instruction* table = nullptr;
  for (const Instruction& in : ins) {
    if (in.op == O::SELECT) select = &in;
    if (in.op == O::JUMP_TABLE) table = &in;
  }
  REQUIRE(select != nullptr);
  REQUIRE(table != nullptr);
  CHECK(select->operands[0] == 4);
  CHECK(select->selectFlags == kSelectHasDefault);
  const auto& code = fn->chunk.code;
  CHECK(code[select->tableOffset + 0] == kSelectRecv);
  CHECK(code[select->tableOffset + 1] == kSelectSend);
  CHECK(code[select->tableOffset + 2] == kSelectRecv);
  CHECK(code[select->tableOffset + 3] == kSelectRecv);
  CHECK(table->operands[0] == 5);
  // Each table entry lands on a case body: the first binds v (no POP: the value is the
  // local), the others pop or store the value first.
  std::size_t end = table->offset + table->length;
  std::vector<O> firstOps;
  for (std::uint32_t i = 0; i < 5; ++i) {
    std::size_t target = end - readU32(&code[table->tableOffset + 4 * i]);
    Instruction at;
    REQUIRE(decode(code.data(), code.size(), target, at));
    firstOps.push_back(at.op);
  }
  CHECK(firstOps == std::vector<O>{O::GET_LOCAL, O::POP, O::SET_GLOBAL_POP, O::POP, O::POP});

  fn = compileOk("select {}");
  ins = instructionsOf(*fn);
  CHECK(ins[0].op == O::SELECT);
  CHECK(ins[0].operands[0] == 0);

  CHECK(errorsOf("var a; select { case a.foo(): }") ==
        std::vector<std::string>{
            "[line 1] Error at ')': Expect channel send or receive in select case."});
  CHECK(errorsOf("var a; select { case var x = a.send(1): }") ==
        std::vector<std::string>{"[line 1] Error at ')': Can only bind the value of a receive."});
  CHECK(errorsOf("var a; select { default: default: }") ==
        std::vector<std::string>{"[line 1] Error at 'default': Already a default case in this select."});
  CHECK(errorsOf("var a; select { case a.recv() print 1; }") ==
        std::vector<std::string>{"[line 1] Error at 'print': Expect ':' after select case."});
  CHECK(errorsOf("var a; select { print 1; }") ==
        std::vector<std::string>{"[line 1] Error at 'print': Expect 'case' or 'default' in select.",
                                 "[line 1] Error at '}': Expect expression."});
  CHECK(errorsOf("select a") ==
        std::vector<std::string>{"[line 1] Error at 'a': Expect '{' after 'select'."});
}

TEST_CASE("every error is reported, with clox's formats") {
  CHECK(errorsOf("print 1\nprint 2;\nvar 3;\nx = ;\n\"open") ==
        std::vector<std::string>{
            "[line 2] Error at 'print': Expect ';' after value.",
            "[line 3] Error at '3': Expect variable name.",
            // The scanner reports the string while the parser looks ahead past ';', and
            // panic mode then swallows "Expect expression." (as in clox).
            "[line 5] Error: Unterminated string.",
        });
  CHECK(errorsOf("x = ;\nprint 1 +;\n") ==
        std::vector<std::string>{"[line 1] Error at ';': Expect expression.",
                                 "[line 2] Error at ';': Expect expression."});
  CHECK(errorsOf("{") == std::vector<std::string>{"[line 1] Error at end: Expect '}' after block."});
  CHECK(errorsOf("print #;") == std::vector<std::string>{"[line 1] Error: Unexpected character."});
  CHECK(errorsOf("return 1;") ==
        std::vector<std::string>{"[line 1] Error at 'return': Can't return from top-level code."});
}

// `n` copies of `open`, then `body`, then `n` copies of `close`.
std::string nestedSource(int n, std::string_view open, std::string_view body, std::string_view close) {
  std::string s;
  for (int i = 0; i < n; ++i) s += open;
  s += body;
  for (int i = 0; i < n; ++i) s += close;
  return s;
}

TEST_CASE("deep nesting is one error, not a crash or a cascade") {
  // Complete programs (every level closed) 50,000 levels deep: each kind of recursion of
  // the parser is counted, and the levels left open are not reported one by one.
  constexpr int kDeep = 50000;
  const std::string sources[] = {
      nestedSource(kDeep, "if (true) ", "print 1;", ""),
      nestedSource(kDeep, "while (false) ", "print 1;", ""),
      nestedSource(kDeep, "for (;false;) ", "print 1;", ""),
      nestedSource(kDeep, "for (var x in []) ", "print 1;", ""),
      "if (false) print 0;" + nestedSource(kDeep, " else if (false) print 0;", " else print 1;", ""),
      nestedSource(kDeep, "{ ", "print 1;", " }"),
      nestedSource(kDeep, "fun f() { ", "", "} "),
      nestedSource(kDeep, "class C { m() { ", "", "} } "),
      "print " + nestedSource(kDeep, "(", "1", ")") + ";",
      "print " + nestedSource(kDeep, "-", "1", "") + ";",
      "print " + nestedSource(kDeep, "[", "1", "]") + ";",
      "print " + nestedSource(kDeep, "1 + (", "1", ")") + ";",
  };
  for (const std::string& source : sources) {
    INFO(source.substr(0, 60));
    auto errs = errorsOf(source);
    REQUIRE(errs.size() == 1);
    CHECK(errs[0].find("Error at '") != std::string::npos);
    CHECK(errs[0].ends_with(": Too much nesting."));
  }
  std::string deep(100000, '(');
  CHECK(errorsOf("print " + deep + "1;") ==
        std::vector<std::string>{"[line 1] Error at '(': Too much nesting."});
  CHECK(errorsOf(std::string(50000, '{')) ==
        std::vector<std::string>{"[line 1] Error at '{': Too much nesting."});
  // Just under the limit compiles.
  std::string ok = "print " + std::string(kMaxNesting - 2, '(') + "1" +
                   std::string(kMaxNesting - 2, ')') + ";";
  CHECK(errorsOf(ok).empty());
}

TEST_CASE("line table") {
  auto fn = compileOk("print 1;\n\nprint 2;\n");
  auto ins = instructionsOf(*fn);
  CHECK(fn->chunk.lines.lineAt(ins[0].offset) == 1);
  CHECK(fn->chunk.lines.lineAt(ins[2].offset) == 3);
}

TEST_CASE("disassembler") {
  GlobalTable globals;
  auto fn = compileOk(
      "var x = 1;\nfun f(a) { var b = a; fun g() { return b; } return g; }\n"
      "class C { m() { return this.y; } }\nC().m();\nvar l = [1]; l[0] = 2;\n"
      "select { case var v = x.recv(): print v; default: print 0; }\n",
      globals);
  std::string listing = disassemble(*fn, &globals);
  INFO(listing);
  CHECK(listing.find("== <script> ==\n0000    1 OP_CONSTANT         0 '1'\n") == 0);
  CHECK(listing.find("OP_DEFINE_GLOBAL    0 'x'") != std::string::npos);
  CHECK(listing.find("== f ==") != std::string::npos);
  CHECK(listing.find("== g ==") != std::string::npos);
  CHECK(listing.find("local 2") != std::string::npos);
  CHECK(listing.find("OP_GET_PROPERTY     0 'y' ic 0") != std::string::npos);
  CHECK(listing.find("OP_INVOKE        (0 args)") != std::string::npos);
  CHECK(listing.find("OP_SELECT           1 [recv] default") != std::string::npos);
  CHECK(listing.find("OP_JUMP_TABLE") != std::string::npos);
  CHECK(listing.find("OP_SET_INDEX") != std::string::npos);
  // Wide operands are marked.
  std::string many;
  for (int i = 0; i < 300; ++i) many += fmt::format("print {};", i);
  auto big = compileOk(many, globals);
  CHECK(disassemble(*big).find("WIDE OP_CONSTANT  299 '299'") != std::string::npos);
}

TEST_CASE("try/catch/finally: handlers, the catch local, finally's hidden locals, return") {
  auto fn = compileOk("try { print 1; } catch (e) { print e; }");
  CHECK(opsOf(*fn) == std::vector<O>{O::TRY, O::CONSTANT, O::PRINT, O::END_TRY, O::JUMP,
                                     O::GET_LOCAL, O::PRINT, O::POP, O::NIL, O::RETURN});
  auto ins = instructionsOf(*fn);
  CHECK(ins[0].operands[0] == 1);  // the error's slot: the script's locals (slot 0) end there
  CHECK(ins[0].jumpTarget() == ins[5].offset);  // the handler is the catch block
  CHECK(ins[4].jumpTarget() == ins[8].offset);
  // With a finally, the catch block has its own handler (pasted in front of it); both
  // ways in reach the finally block with [error, thrown?].
  fn = compileOk("try { print 1; } catch (e) { print e; } finally { print 2; }");
  CHECK(opsOf(*fn) == std::vector<O>{O::TRY, O::CONSTANT, O::PRINT, O::END_TRY, O::JUMP,
                                     O::TRY, O::GET_LOCAL, O::PRINT, O::END_TRY, O::POP,
                                     O::JUMP, O::TRUE, O::JUMP, O::NIL, O::FALSE, O::CONSTANT,
                                     O::PRINT, O::END_FINALLY, O::JUMP, O::RETURN, O::NIL,
                                     O::RETURN});
  ins = instructionsOf(*fn);
  CHECK(ins[0].jumpTarget() == ins[5].offset);
  CHECK(ins[5].operands[0] == 1);
  CHECK(ins[5].jumpTarget() == ins[11].offset);
  CHECK(ins[12].jumpTarget() == ins[15].offset);
  CHECK(ins[17].jumpTarget() == ins[19].offset);  // a return under way goes on returning
  CHECK(ins[18].jumpTarget() == ins[20].offset);
  // A return goes through the return path of each try it leaves: the body's handler is
  // popped, a catch block's has none without a finally.
  fn = compileOk("fun f(a) { try { try { return 1; } catch (e) { return 2; } } catch (e) { return 3; } }");
  const FunctionProto* f = nested(*fn, "f");
  REQUIRE(f != nullptr);
  CHECK(opsOf(*f) == std::vector<O>{
                         O::TRY, O::TRY, O::CONSTANT, O::JUMP, O::END_TRY, O::JUMP,  // inner
                         O::CONSTANT, O::JUMP, O::POP, O::JUMP, O::END_TRY, O::JUMP,
                         O::JUMP,                                                    // inner paths
                         O::END_TRY, O::JUMP, O::CONSTANT, O::JUMP, O::POP, O::JUMP, // outer
                         O::END_TRY, O::RETURN, O::RETURN,                           // outer paths
                         O::NIL, O::RETURN});
  CHECK(instructionsOf(*f)[0].operands[0] == 2);  // callee and `a`
  // With a finally, the return path moves the value into the error slot and enters the
  // finally block with flag nil.
  fn = compileOk("fun g() { try { var x; return 1; } finally { print 2; } }");
  const FunctionProto* g = nested(*fn, "g");
  REQUIRE(g != nullptr);
  const auto gi = instructionsOf(*g);
  const auto unwind = std::find_if(gi.begin(), gi.end(), [](const Instruction& in) { return in.op == O::UNWIND_TO; });
  REQUIRE(unwind != gi.end());
  CHECK(unwind->operands[0] == 1);
  CHECK((unwind - 1)->op == O::END_TRY);
  CHECK((unwind + 1)->op == O::NIL);
  CHECK((unwind + 2)->op == O::LOOP);
}

}  // namespace
}  // namespace spindle::lang
