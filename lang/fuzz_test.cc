// fuzz_test.cc: robustness. Random bytes, random token soups and every truncation of
// every corpus file must compile to either diagnostics or verifiable code: never a
// crash, hang or sanitizer report (this target runs under ASan in CI). Iteration counts
// are fixed and the generator is seeded, so runs are reproducible.
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "lang/compiler.h"
#include "lang/disassembler.h"
#include "lang/verifier.h"
#include "tests/lang/expectations.h"

namespace spindle::lang {
namespace {

// Compiles `src`; when it compiles, the code must verify and disassemble.
void compileAndCheck(const std::string& src) {
  GlobalTable globals;
  CompileResult r = compile(src, globals);
  if (r.ok()) {
    auto problems = verify(*r.script, globals.size());
    INFO(src);
    CHECK(problems.empty());
    CHECK(!disassemble(*r.script, &globals).empty());
  } else {
    CHECK(!r.diagnostics.empty());
  }
}

TEST_CASE("random bytes") {
  std::mt19937 rng(12345);
  for (int i = 0; i < 3000; ++i) {
    std::string src(rng() % 200, '\0');
    for (char& c : src) c = static_cast<char>(rng() % 256);
    compileAndCheck(src);
  }
}

TEST_CASE("random token soups") {
  static const char* kTokens[] = {
      "(", ")", "{", "}", "[", "]", ",", ".", "-", "+", ";", "/", "*", "%", ":", "!", "!=",
      "=", "==", ">", ">=", "<", "<=", "a", "b", "init", "recv", "send", "\"s\"", "1", "2.5",
      "and", "class", "else", "false", "for", "fun", "if", "nil", "or", "print", "return",
      "super", "this", "true", "var", "while", "spawn", "select", "case", "default", "\n",
      "\"open", "@"};
  std::mt19937 rng(777);
  for (int i = 0; i < 6000; ++i) {
    std::string src;
    int n = static_cast<int>(rng() % 80);
    for (int t = 0; t < n; ++t) {
      src += kTokens[rng() % std::size(kTokens)];
      src += ' ';
    }
    compileAndCheck(src);
  }
}

TEST_CASE("every truncation of every corpus file") {
  std::vector<std::string> files = corpus::listCorpus("tests/lang");
  REQUIRE(!files.empty());
  for (const std::string& path : files) {
    std::string source;
    REQUIRE(corpus::readFile(path, source));
    // Large generated files: a few hundred cut points instead of every byte.
    std::size_t step = source.size() > 4000 ? source.size() / 200 : 1;
    for (std::size_t cut = 0; cut <= source.size(); cut += step) {
      compileAndCheck(source.substr(0, cut));
    }
  }
}

}  // namespace
}  // namespace spindle::lang
