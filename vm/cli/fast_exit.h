// fast_exit.h: how the spindle CLI ends a finished run.
//
// Design. Once a run's output is complete (the script, the never-joined failures, the
// memory profile, --stats), the process ends at once with _Exit, as Lua's os.exit and
// Spindle's own exit(code) native do: the OS unmaps the heap and ends the threads, so
// the Vm's teardown (stopping the world, joining sysmon and the idle Ms, freeing every
// span and object) is skipped. Every stdio stream is flushed first. Sanitizer builds
// (ASan, TSan) tear down in full: LeakSanitizer checks at exit, and the teardown's
// races and frees stay exercised there.
// Invariant: called only when nothing else is left to write (no --trace, no CPU
// profile, no --gclog: those finish after the Vm is gone).
#pragma once

namespace spindle::cli {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kFastExit = false;
#else
inline constexpr bool kFastExit = true;
#endif

// Flushes every open output stream and ends the process with status rc.
[[noreturn]] void fastExit(int rc);

}  // namespace spindle::cli
