// value.h: Value, the VM's NaN-boxed 64-bit value.
//
// Design (clox's NaN boxing): a Value is a double unless its quiet-NaN bits are all set.
//   - number:  any double whose bits are not a boxed pattern (real NaNs are canonical
//              quiet NaNs 0x7ff8..., which lack bit 50 of kQnan, so they stay numbers)
//   - object:  kSignBit | kQnan | pointer (48-bit address)
//   - nil / false / true / undefined: kQnan | tag 1..4 (undefined marks an unset global
//              slot and never reaches Lox code)
// Invariants: isObj(v) implies asObj(v) is a live heap object allocated by mallocgc with
// one of the TypeInfos in object.h. Values are trivially copyable; the collector finds
// object values precisely through TypeInfo trace functions and the VM's roots.
#pragma once

#include <cstdint>
#include <cstring>
#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace spindle::vm {

struct Obj;

class Value {
 public:
  static constexpr std::uint64_t kSignBit = 0x8000000000000000ull;
  static constexpr std::uint64_t kQnan = 0x7ffc000000000000ull;
  static constexpr std::uint64_t kTagNil = 1, kTagFalse = 2, kTagTrue = 3, kTagUndef = 4;

  constexpr Value() : bits_(kQnan | kTagNil) {}
  // A number from any double. A NaN becomes the canonical quiet NaN (0x7ff8...): a NaN's
  // payload can come from outside (Bytes memory read as a double, a foreign function's
  // result, a host's double, text such as "nan(0xfffffffffffff)"), and a payload with
  // the boxed bits set would turn the number into an object pointer of the script's
  // choosing.
  static Value number(double d) {
    if (d != d) [[unlikely]] d = __builtin_nan("");
    return arith(d);
  }
  // A number from IEEE arithmetic on doubles read from number Values. Their NaNs are
  // canonical (number() makes them so), and an IEEE operation's NaN result is either an
  // operand's NaN (payload kept, sign possibly flipped) or the machine's default NaN
  // (0xfff8... on x86-64, 0x7ff8... on ARM), so the result needs no check. The
  // interpreter's arithmetic uses this; everything else uses number().
  static Value arith(double d) {
    Value v;
    std::memcpy(&v.bits_, &d, sizeof d);
    return v;
  }
  static constexpr Value nil() { return fromBits(kQnan | kTagNil); }
  static constexpr Value boolean(bool b) { return fromBits(kQnan | (b ? kTagTrue : kTagFalse)); }
  static constexpr Value undefined() { return fromBits(kQnan | kTagUndef); }
  static Value object(Obj* o) {
    return fromBits(kSignBit | kQnan | reinterpret_cast<std::uintptr_t>(o));
  }
  static constexpr Value fromBits(std::uint64_t b) {
    Value v;
    v.bits_ = b;
    return v;
  }

  bool isNumber() const { return (bits_ & kQnan) != kQnan; }
  bool isNil() const { return bits_ == (kQnan | kTagNil); }
  bool isBool() const { return (bits_ | 1) == (kQnan | kTagTrue); }
  bool isUndefined() const { return bits_ == (kQnan | kTagUndef); }
  bool isObj() const { return (bits_ & (kQnan | kSignBit)) == (kQnan | kSignBit); }

  double asNumber() const {
    double d;
    std::memcpy(&d, &bits_, sizeof d);
    return d;
  }
  bool asBool() const { return bits_ == (kQnan | kTagTrue); }
  Obj* asObj() const { return reinterpret_cast<Obj*>(bits_ & ~(kSignBit | kQnan)); }

  bool isFalsey() const { return isNil() || bits_ == (kQnan | kTagFalse); }
  std::uint64_t bits() const { return bits_; }
  // The representation word, for atomic access to shared slots (barrier.h).
  std::uint64_t& rawBits() { return bits_; }

  // Lox `==`: numbers by IEEE comparison (NaN != NaN), everything else by identity
  // (strings are interned, so equal strings are the same object).
  // Equal bits are equal values except a NaN; different bits are equal only for numbers
  // that compare equal (0 and -0). (Strings, the common case, take one compare and one
  // mask test.)
  friend bool operator==(Value a, Value b) {
    if (a.bits_ == b.bits_) return !a.isNumber() || a.asNumber() == a.asNumber();
    return a.isNumber() && b.isNumber() && a.asNumber() == b.asNumber();
  }

 private:
  std::uint64_t bits_;
};

static_assert(sizeof(Value) == 8);

// Whether d is an integer that fits an int64_t (-0 is 0): then *i is it and *back its
// double (d itself, +0 for -0). False for fractions, NaNs, infinities and anything beyond
// 2^63. On x86-64 one truncating conversion and its round trip decide it (the conversion
// gives INT64_MIN for what it cannot represent, which never converts back to d unless d
// is -2^63 itself, an integer); elsewhere a range check guards the cast.
[[gnu::always_inline]] inline bool numberToInt64(double d, std::int64_t* i, double* back) {
#if defined(__x86_64__) && defined(__SSE2__)
  const std::int64_t n = _mm_cvttsd_si64(_mm_set_sd(d));
#else
  if (!(d >= -9.0e18 && d <= 9.0e18)) return false;
  const auto n = static_cast<std::int64_t>(d);
#endif
  *back = static_cast<double>(n);
  if (*back != d) return false;
  *i = n;
  return true;
}

}  // namespace spindle::vm
