// expectations.h: reads the expectations written in a corpus file (tests/lang/**/*.lox).
//
// The format is Crafting Interpreters' test format:
//   print 1;                   // expect: 1
//       one expected line of stdout (in order of appearance)
//   a + ;                      // Error at ';': Expect expression.
//       a compile error on THIS line; stands for "[line N] Error at ';': ..."
//   // [line 7] Error at end: Expect '}' after block.
//       a compile error on line 7 (for errors at lines that cannot hold a comment)
//   nil();                     // expect runtime error: Can only call functions and classes.
//       the runtime error message (first line of stderr), raised on this line
// A file with compile errors must print nothing and exit 65 (stderr: exactly the error
// lines, in order); one with a runtime error prints the expected output, then the message
// and a stack trace on stderr, and exits 70; any other file exits 0 with exactly the
// expected output and an empty stderr.
//
// Used by lang's corpus test (compile errors) and by the VM's end-to-end corpus runner.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace spindle::corpus {

struct Expectations {
  std::vector<std::string> output;         // stdout lines, without '\n'
  std::vector<std::string> compileErrors;  // "[line N] Error...: message", in order
  std::optional<std::string> runtimeError;  // the message
  int runtimeErrorLine = 0;                 // the line of the "expect runtime error"

  // 65 for compile errors, 70 for a runtime error, else 0.
  int exitCode() const;
  // The exact stderr a compile-error file must produce (every line ends in '\n').
  std::string expectedCompileStderr() const;
};

Expectations parseExpectations(std::string_view source);

// Reads a whole file; false when it cannot be read.
bool readFile(const std::string& path, std::string& out);

// Every "*.lox" file under `dir`, recursively, sorted by path.
std::vector<std::string> listCorpus(const std::string& dir);

}  // namespace spindle::corpus
