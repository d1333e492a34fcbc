// corpus_test.cc: compiles every tests/lang/**/*.lox file and checks that its compile
// errors are exactly (lines, messages, order) the ones the file expects, and that the
// code of every file that compiles passes the verifier.
#include <doctest/doctest.h>

#include <string>

#include "lang/compiler.h"
#include "lang/test_util.h"
#include "lang/verifier.h"
#include "tests/lang/expectations.h"

namespace spindle::lang {
namespace {

TEST_CASE("corpus compile errors match expectations") {
  std::vector<std::string> files = corpus::listCorpus("tests/lang");
  REQUIRE(files.size() >= 150);  // the glob and the runfiles are in place
  int withErrors = 0;
  for (const std::string& path : files) {
    CAPTURE(path);
    std::string source;
    REQUIRE(corpus::readFile(path, source));
    corpus::Expectations ex = corpus::parseExpectations(source);
    GlobalTable globals;
    CompileResult r = compile(source, globals);
    std::vector<std::string> got;
    for (const Diagnostic& d : r.diagnostics) got.push_back(d.format());
    CHECK(got == ex.compileErrors);
    if (!ex.compileErrors.empty()) {
      ++withErrors;
      CHECK(ex.output.empty());
      CHECK_FALSE(ex.runtimeError.has_value());
    }
    if (r.ok()) CHECK(verify(*r.script, globals.size()) == std::vector<std::string>{});
  }
  CHECK(withErrors >= 30);
}

TEST_CASE("expectation parser") {
  auto ex = corpus::parseExpectations(
      "print 1; // expect: 1\n"
      "print \"a b\"; // expect: a b\n"
      "x; // Error at 'x': Nope.\n"
      "// [line 9] Error at end: Expect.\n"
      "nil(); // expect runtime error: Can only call functions and classes.\n");
  CHECK(ex.output == std::vector<std::string>{"1", "a b"});
  CHECK(ex.compileErrors ==
        std::vector<std::string>{"[line 3] Error at 'x': Nope.", "[line 9] Error at end: Expect."});
  REQUIRE(ex.runtimeError.has_value());
  CHECK(*ex.runtimeError == "Can only call functions and classes.");
  CHECK(ex.runtimeErrorLine == 5);
  CHECK(ex.exitCode() == 65);
  CHECK(corpus::parseExpectations("print 1; // expect runtime error: x\n").exitCode() == 70);
  CHECK(corpus::parseExpectations("print 1; // expect: 1\n").exitCode() == 0);
}

}  // namespace
}  // namespace spindle::lang
