// print.h: formatted output that never throws or aborts (Go's runtime print/writeErr).
//
// fmt::print throws when the stream cannot be written (stderr closed, a full disk,
// /dev/full). Diagnostics (gctrace, fatal errors, a host's messages) must not turn a
// failed write into a crash: `printTo` formats with fmt and hands the text to one
// std::fwrite, whose failure stays in the stream's error indicator (std::ferror), for
// a caller that wants to report it (the CLI checks stdout at exit). Each call is one
// fwrite, so concurrent lines on one stream do not interleave within a line (stdio's
// stream lock).
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <string_view>
#include <utility>

namespace spindle::runtime {

// Writes s to f; a failure is left in std::ferror(f).
void writeTo(std::FILE* f, std::string_view s) noexcept;

template <typename... Args>
void printTo(std::FILE* f, fmt::format_string<Args...> format, Args&&... args) {
  writeTo(f, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace spindle::runtime
