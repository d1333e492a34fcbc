// throw.h: fatal runtime errors and checked invariants, in the style of Go's throw().
//
// A broken invariant in the runtime is never recoverable: the heap may already be
// corrupt. `fatal` prints "fatal error: <invariant>" with the values involved, the
// source location, and aborts. `SPINDLE_CHECK(cond, fmt, args...)` is always on;
// `SPINDLE_DCHECK` is on in every build but `-c opt` (which defines NDEBUG), or when
// SPINDLE_DEBUG is set: tests and sanitizer runs check invariants, benchmarks and the
// optimised CLI do not, so hot paths can assert freely.
//
// Messages name the invariant and the values, e.g.
//   fatal error: span.sweepgen out of range: span 0x7f..000 sweepgen=7 heap sg=12
#pragma once

#include <fmt/format.h>

#include <string_view>

#include <cstdio>

namespace spindle::runtime {

// Context a fatal error prints after its message and location, as Go's throw prints the
// GC state and the goroutines: each registered function writes lines to the stream. They
// run on the dying thread, maybe with runtime locks held, so they read atomics and
// thread-locals only, take no lock and allocate nothing on the heap. At most 8; a fatal
// error inside one ends the process without the rest.
void addFatalContext(void (*print)(std::FILE* out));

// Makes SIGQUIT print "SIGQUIT: quit" and the same context as a fatal error (the GC
// state, every G and its stack where it can be read), then end the process with status 2,
// as Go does: what a hung program is doing, on demand (`kill -QUIT`, or `timeout -s QUIT`).
// For programs that own the process (the CLI); an embedding host keeps its own handler.
void installQuitHandler();

// Where a fatal error was raised. std::source_location would do, but clang 14 (the fuzz
// build's compiler) lacks the builtin libstdc++ 12's needs; these builtins both have.
struct SourceLocation {
  const char* file;
  unsigned line;
  const char* function;
};

[[noreturn]] void fatalMessage(std::string_view message, const SourceLocation& where);

template <typename... Args>
[[noreturn]] inline void fatalAt(const SourceLocation& where,
                                 fmt::format_string<Args...> format, Args&&... args) {
  fatalMessage(fmt::format(format, std::forward<Args>(args)...), where);
}

}  // namespace spindle::runtime

#define SPINDLE_FATAL(...) \
  ::spindle::runtime::fatalAt(                                                        \
      ::spindle::runtime::SourceLocation{__builtin_FILE(), __builtin_LINE(), __builtin_FUNCTION()}, \
      __VA_ARGS__)

#define SPINDLE_CHECK(cond, ...)            \
  do {                                      \
    if (__builtin_expect(!(cond), 0)) {     \
      SPINDLE_FATAL(__VA_ARGS__);           \
    }                                       \
  } while (0)

#if defined(SPINDLE_DEBUG) || !defined(NDEBUG)
#define SPINDLE_DCHECKS_ON 1
#define SPINDLE_DCHECK(cond, ...) SPINDLE_CHECK(cond, __VA_ARGS__)
#else
#define SPINDLE_DCHECKS_ON 0
#define SPINDLE_DCHECK(cond, ...) \
  do {                            \
    if (false && (cond)) {        \
    }                             \
  } while (0)
#endif
