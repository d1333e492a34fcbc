// test_util.h: helpers shared by lang's tests (compile and inspect code).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "lang/compiler.h"
#include "lang/opcodes.h"

namespace doctest {
template <>
struct StringMaker<std::vector<std::string>> {
  static String convert(const std::vector<std::string>& v) {
    std::string s = "{";
    for (const auto& e : v) s += "\n  " + e;
    return String((s + "}").c_str());
  }
};
}  // namespace doctest

namespace spindle::lang::testing {

// Formatted diagnostics of compiling `source` ("[line N] Error ...").
inline std::vector<std::string> errorsOf(std::string_view source) {
  GlobalTable globals;
  CompileResult r = compile(source, globals);
  std::vector<std::string> out;
  for (const Diagnostic& d : r.diagnostics) out.push_back(d.format());
  return out;
}

// The opcodes of one proto's chunk, in order (WIDE prefixes folded into their op).
inline std::vector<OpCode> opsOf(const FunctionProto& fn) {
  std::vector<OpCode> ops;
  const auto& code = fn.chunk.code;
  for (std::size_t off = 0; off < code.size();) {
    Instruction in;
    if (!decode(code.data(), code.size(), off, in)) break;
    ops.push_back(in.op);
    off += in.length;
  }
  return ops;
}

inline std::vector<Instruction> instructionsOf(const FunctionProto& fn) {
  std::vector<Instruction> out;
  const auto& code = fn.chunk.code;
  for (std::size_t off = 0; off < code.size();) {
    Instruction in;
    if (!decode(code.data(), code.size(), off, in)) break;
    out.push_back(in);
    off += in.length;
  }
  return out;
}

// The first nested function constant of `fn` named `name`, or null.
inline const FunctionProto* nested(const FunctionProto& fn, std::string_view name) {
  for (const Constant& c : fn.chunk.constants) {
    if (const auto* p = std::get_if<std::shared_ptr<const FunctionProto>>(&c)) {
      if ((*p)->name == name) return p->get();
      if (const FunctionProto* inner = nested(**p, name)) return inner;
    }
  }
  return nullptr;
}

}  // namespace spindle::lang::testing
