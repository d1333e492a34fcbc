// compile_fuzzer.cc: the scanner and compiler on arbitrary bytes. Every input either
// compiles to code that verifies and disassembles, or yields at least one diagnostic:
// never a crash, a hang, a sanitizer report or an empty failure.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "lang/compiler.h"
#include "lang/disassembler.h"
#include "lang/verifier.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spindle::lang;
  const std::string src(reinterpret_cast<const char*>(data), size);
  GlobalTable globals;
  CompileResult r = compile(src, globals);
  if (r.ok()) {
    const auto problems = verify(*r.script, globals.size());
    spindle::fuzz::require(problems.empty(), "compiled code does not verify", src);
    spindle::fuzz::require(!disassemble(*r.script, &globals).empty(), "empty disassembly", src);
  } else {
    spindle::fuzz::require(!r.diagnostics.empty(), "a failed compile without a diagnostic", src);
  }
  return 0;
}
