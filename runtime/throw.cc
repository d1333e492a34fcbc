#include "runtime/throw.h"

#include <cstdio>
#include <cstdlib>

namespace spindle::runtime {

void fatalMessage(std::string_view message, const std::source_location& where) {
  // fmt::print to stderr, then flush: nothing after this point may allocate on our heap.
  fmt::print(stderr, "fatal error: {}\n\tat {}:{} ({})\n", message, where.file_name(),
             where.line(), where.function_name());
  std::fflush(stderr);
  std::abort();
}

}  // namespace spindle::runtime
