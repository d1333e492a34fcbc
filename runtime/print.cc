// print.cc: see print.h.
#include "runtime/print.h"

namespace spindle::runtime {

void writeTo(std::FILE* f, std::string_view s) noexcept {
  if (!s.empty()) std::fwrite(s.data(), 1, s.size(), f);
}

}  // namespace spindle::runtime
