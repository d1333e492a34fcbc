// ffi_fuzzer.cc: the FFI's C type names and the conversions at its boundary. The input
// chooses type names (real ones, near misses and arbitrary bytes), offsets and values;
// they become a script that declares foreign functions with those types, reads and
// writes Bytes in them, and calls a correctly declared libc function with arbitrary
// numbers. Every misuse must be a catchable runtime error (the script catches them all):
// a Vm error that escapes, a crash or a sanitizer report is a bug. Functions declared
// with fuzzed types are never called (calling a C function through a wrong signature is
// undefined in C itself).
#include <cstddef>
#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "fuzz/fuzz_util.h"
#include "vm/spindle.h"

namespace {

constexpr const char* kTypes[] = {
    "void",  "int8",   "int16",  "int32",   "int64", "uint8",   "uint16", "uint32",
    "uint64", "float", "double", "pointer", "cstring", "char",  "short",  "int",
    "long",  "size_t", "ssize_t", "bool",   "",       "int33",  "Int32",  "pointer ",
};

// A Lox string literal of arbitrary bytes (escaped) or of a known type name.
std::string typeName(spindle::fuzz::Bytes& in) {
  const std::size_t k = in.pick(std::size(kTypes) + 1);
  std::string raw;
  if (k < std::size(kTypes)) {
    raw = kTypes[k];
  } else {
    for (std::size_t n = in.pick(8); n > 0; --n) raw += static_cast<char>(in.byte());
  }
  std::string lit = "\"";
  for (unsigned char c : raw) lit += fmt::format("\\x{:02x}", c);
  return lit + "\"";
}

// A number literal: small integers, boundaries, huge, fractional, inf and nan.
std::string number(spindle::fuzz::Bytes& in) {
  switch (in.pick(8)) {
    case 0: return fmt::format("{}", static_cast<int>(in.byte()) - 128);
    case 1: return fmt::format("{}", in.u64());
    case 2: return fmt::format("-{}", in.u64());
    case 3: return "1/0";
    case 4: return "0/0";
    case 5: return "-1/0";
    case 6: return fmt::format("{}.5", static_cast<int>(in.byte()) - 128);
    default: return fmt::format("{}{}", in.pick(10), std::string(in.pick(40), '0'));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  spindle::fuzz::Bytes in(data, size);
  std::string src = fmt::format("var b = Bytes({});\n", in.pick(64));
  for (int step = 0; step < 16 && !in.empty(); ++step) {
    std::string stmt;
    switch (in.pick(5)) {
      case 0: stmt = fmt::format("b.write({}, {}, {});", typeName(in), number(in), number(in)); break;
      case 1: {
        // Reading a cstring follows the pointer the Bytes hold, which the input wrote:
        // an arbitrary address, undefined in C itself (as a call through a wrong
        // signature). Every other type reads only the Bytes' own memory.
        std::string type = typeName(in);
        if (type == "\"\\x63\\x73\\x74\\x72\\x69\\x6e\\x67\"") type = "\"uint64\"";
        stmt = fmt::format("print b.read({}, {});", type, number(in));
        break;
      }
      case 2: {
        std::string args;
        for (std::size_t n = in.pick(5); n > 0; --n) args += (args.empty() ? "" : ", ") + typeName(in);
        stmt = fmt::format("FFI.fn(\"abs\", {}, [{}]);", typeName(in), args);
        break;
      }
      case 3: stmt = fmt::format("print FFI.fn(\"abs\", \"int\", [\"int\"])({});", number(in)); break;
      default: stmt = fmt::format("b.set({}, {}); print b.get({});", number(in), number(in), number(in)); break;
    }
    src += "try { " + stmt + " } catch (e) { print e; }\n";
  }
  spindle::Options o;
  o.output = [](std::string_view) {};
  spindle::Vm vm(o);
  const spindle::Result r = vm.run(src);
  spindle::fuzz::require(r.ok(), r.ok() ? "" : r.error().message.c_str(), src);
  return 0;
}
