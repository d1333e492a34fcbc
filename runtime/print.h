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

// Writes s to f's file descriptor with write(2), past stdio's buffer and lock: safe in a
// signal handler. Flush f before mixing it with printTo.
void writeRaw(std::FILE* f, std::string_view s) noexcept;

// printTo for the fatal-error and SIGQUIT context printers (throw.h): formats into a
// stack buffer (a line longer than 1 KiB is cut) and writes it raw; no heap, no lock.
template <typename... Args>
void printNoHeap(std::FILE* f, fmt::format_string<Args...> format, Args&&... args) {
  char buf[1024];
  auto r = fmt::format_to_n(buf, sizeof buf, format, std::forward<Args>(args)...);
  writeRaw(f, std::string_view(buf, r.size < sizeof buf ? r.size : sizeof buf));
}

template <typename... Args>
void printTo(std::FILE* f, fmt::format_string<Args...> format, Args&&... args) {
  writeTo(f, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace spindle::runtime
