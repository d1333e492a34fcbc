#include "runtime/throw.h"

#include <cstdio>
#include <cstdlib>

#include "runtime/print.h"

namespace spindle::runtime {

void fatalMessage(std::string_view message, const std::source_location& where) {
  // printTo stderr (a failed write is ignored), then flush: nothing after this point may
  // allocate on our heap.
  printTo(stderr, "fatal error: {}\n\tat {}:{} ({})\n", message, where.file_name(),
          where.line(), where.function_name());
  std::fflush(stderr);
  std::abort();
}

}  // namespace spindle::runtime
