// diagnostic.h: compile errors as data.
//
// lang/ never prints or exits: the compiler returns every error it found, in source
// order, and the host prints them. `format()` renders one the way clox prints it:
//   [line N] Error at 'x': message     (at a token)
//   [line N] Error at end: message     (at the end of the source)
//   [line N] Error: message            (at a scanner error token)
#pragma once

#include <string>
#include <vector>

namespace spindle::lang {

struct Diagnostic {
  int line = 0;
  std::string where;    // " at 'x'", " at end", or "" (no space added when empty)
  std::string message;  // "Expect expression."

  std::string format() const;  // no trailing newline
  bool operator==(const Diagnostic&) const = default;
};

// All diagnostics, one formatted line each, every line ending in '\n'.
std::string formatDiagnostics(const std::vector<Diagnostic>& diagnostics);

}  // namespace spindle::lang
