// lib.h: what the built-in libraries (strlib.cc, mathlib.cc) share: argument checks and
// a meter of bounded work.
//
// Argument checks raise (VM::raise) a runtime error naming the function and the argument
// (1-based), e.g. "sub() argument 1 must be an integer.", and return false; a native
// returns false right after. They never throw: a bad argument is the script's error.
//
// WorkMeter: a long operation (split, replace, repeat, join, find, upper, ...) charges
// the bytes it scans or writes; every kCheckpointBytes charged it passes a checkpoint
// (runtime/pheap.h), so the world can stop midway (ARCHITECTURE "What bounds a pause").
// The rule for raw pointers held across those checkpoints is the interpreter's: they
// are valid for the run() slice (no scan point of the G inside it).
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "runtime/pheap.h"
#include "vm/object.h"
#include "vm/vm.h"

namespace spindle::vm::lib {

// The longest string an ObjString can hold (its length is 32 bits). Every way a script
// grows a string (concat, repeat, join, format, str, split, replace, Bytes.string, ...)
// checks its result against maxStringLength() before building it and raises
// "String too long." past it, so no length wraps.
inline constexpr std::size_t kMaxStringLength = UINT32_MAX;

// The limit in force: kMaxStringLength, lowered by tests (setMaxStringLengthForTest) to
// reach it without allocating 4 GiB. Relaxed: a knob set before the scripts it governs run.
inline std::atomic<std::size_t> gMaxStringLength{kMaxStringLength};
inline std::size_t maxStringLength() { return gMaxStringLength.load(std::memory_order_relaxed); }
inline void setMaxStringLengthForTest(std::size_t n) {
  gMaxStringLength.store(std::min(n, kMaxStringLength), std::memory_order_relaxed);
}

inline bool numberArg(VM& vm, std::string_view fn, int i, Value v, double* out) {
  if (!v.isNumber()) return vm.raise(fmt::format("{}() argument {} must be a number.", fn, i));
  *out = v.asNumber();
  return true;
}

inline bool intArg(VM& vm, std::string_view fn, int i, Value v, double* out) {
  if (!v.isNumber() || std::trunc(v.asNumber()) != v.asNumber()) {
    return vm.raise(fmt::format("{}() argument {} must be an integer.", fn, i));
  }
  *out = v.asNumber();
  return true;
}

inline bool stringArg(VM& vm, std::string_view fn, int i, Value v, ObjString** out) {
  if (!isKind(v, ObjKind::String)) return vm.raise(fmt::format("{}() argument {} must be a string.", fn, i));
  *out = as<ObjString>(v);
  return true;
}

// s[i] and s.byte(i): the byte index, or the error message (as for lists).
inline const char* stringIndex(const ObjString* s, Value index, std::uint32_t* out) {
  if (!index.isNumber() || std::trunc(index.asNumber()) != index.asNumber()) {
    return "String index must be an integer.";
  }
  const double i = index.asNumber();
  if (i < 0 || i >= s->length) return "String index out of range.";
  *out = static_cast<std::uint32_t>(i);
  return nullptr;
}

// argCount's error (out of line: the check itself is inlined into every native).
[[gnu::noinline]] inline bool argCountError(VM& vm, int argc, int min, int max) {
  if (min == max) return vm.raise(fmt::format("Expected {} arguments but got {}.", min, argc));
  if (max == min + 1) return vm.raise(fmt::format("Expected {} or {} arguments but got {}.", min, max, argc));
  return vm.raise(fmt::format("Expected at least {} arguments but got {}.", min, argc));
}

// For natives with optional arguments (declared with arity -1).
inline bool argCount(VM& vm, int argc, int min, int max) {
  return (argc >= min && argc <= max) || argCountError(vm, argc, min, max);
}

// Runs fn in the scheduler's syscall state when called from a fiber's G (iolib.cc): the
// P serves other fibers while fn blocks in the OS. fn must not touch the GC'd heap.
void offSched(const std::function<void()>& fn);

class WorkMeter {
 public:
  void charge(std::size_t bytes) {
    done_ += bytes;
    if (done_ >= runtime::kCheckpointBytes) {
      done_ = 0;
      runtime::checkpoint();
    }
  }

 private:
  std::size_t done_ = 0;
};

// A string under construction: appends are copied in kCheckpointBytes pieces, charged
// to the meter. finish() interns the text (VM::intern: hashed and copied with
// checkpoints), or raises "String too long." past maxStringLength().
class StringBuilder {
 public:
  explicit StringBuilder(WorkMeter& meter) : meter_(meter) {}
  void append(std::string_view s) {
    if (tooLong_ || s.size() > maxStringLength() - std::min(text_.size(), maxStringLength())) {
      tooLong_ = true;  // nothing more is kept: finish() raises
      return;
    }
    while (!s.empty()) {
      const std::size_t n = std::min(s.size(), runtime::kCheckpointBytes);
      text_.append(s.data(), n);
      s.remove_prefix(n);
      meter_.charge(n);
    }
  }
  void append(char c) {
    if (tooLong_ || text_.size() >= maxStringLength()) {
      tooLong_ = true;
      return;
    }
    text_ += c;
    meter_.charge(1);
  }
  std::size_t size() const { return text_.size(); }
  std::string& text() { return text_; }
  bool finish(VM& vm, Value* result) {
    if (tooLong_) return vm.raise("String too long.");
    *result = Value::object(vm.intern(text_));
    return true;
  }

 private:
  WorkMeter& meter_;
  std::string text_;
  bool tooLong_ = false;
};

}  // namespace spindle::vm::lib
