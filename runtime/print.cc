// print.cc: see print.h.
#include "runtime/print.h"

#include <unistd.h>

namespace spindle::runtime {

void writeTo(std::FILE* f, std::string_view s) noexcept {
  if (!s.empty()) std::fwrite(s.data(), 1, s.size(), f);
}

void writeRaw(std::FILE* f, std::string_view s) noexcept {
  const int fd = fileno(f);
  while (!s.empty()) {
    const ssize_t n = ::write(fd, s.data(), s.size());
    if (n <= 0) return;  // EINTR included: a diagnostic, not worth a retry loop's risk
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace spindle::runtime
