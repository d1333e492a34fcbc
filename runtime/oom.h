// oom.h: an allocation that cannot be satisfied, as an exception the embedder catches.
//
// Design. Go treats a heap that cannot grow as fatal ("fatal error: out of memory"); an
// embedded VM must not take its host down with it, so here the allocation point throws
// OutOfMemory instead, and the language layer turns it into a runtime error of the code
// that asked (vm/interpreter.cc catches it where the interpreter's state can be saved).
// OutOfMemory derives from std::bad_alloc, so one handler serves both the runtime heap
// (mallocgc, channel buffers) and the C++ library (std::string growth).
//
// Invariants:
//   - It is thrown only where the runtime's own state is consistent: no runtime lock is
//     held, no half-built span or cache is left behind (the thrower restores them first).
//   - The message is the script-visible one: "Out of memory."
#pragma once

#include <new>

namespace spindle::runtime {

struct OutOfMemory : std::bad_alloc {
  const char* what() const noexcept override { return "Out of memory."; }
};

// Cold and out of line, so the allocation fast paths carry only a call.
[[noreturn, gnu::cold, gnu::noinline]] void throwOutOfMemory();

}  // namespace spindle::runtime
