// diagnostic.cc: see diagnostic.h.
#include "lang/diagnostic.h"

#include <fmt/format.h>

namespace spindle::lang {

std::string Diagnostic::format() const {
  return fmt::format("[line {}] Error{}: {}", line, where, message);
}

std::string formatDiagnostics(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const Diagnostic& d : diagnostics) {
    out += d.format();
    out += '\n';
  }
  return out;
}

}  // namespace spindle::lang
