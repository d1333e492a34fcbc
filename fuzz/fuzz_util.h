// fuzz_util.h: what the fuzz targets share: a failed property aborts (libFuzzer saves the
// input as a crasher), and a reader that turns fuzzer bytes into choices.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace spindle::fuzz {

// Aborts naming the property and the input when `ok` is false.
inline void require(bool ok, const char* property, std::string_view input) {
  if (ok) return;
  std::fprintf(stderr, "fuzz: %s\ninput (%zu bytes):\n%.*s\n", property, input.size(),
               static_cast<int>(input.size() < 4000 ? input.size() : 4000), input.data());
  std::abort();
}

// Consumes fuzzer bytes front to back; past the end every choice is 0.
class Bytes {
 public:
  Bytes(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ == end_; }
  std::uint8_t byte() { return p_ == end_ ? 0 : *p_++; }
  // A choice in [0, n) (n > 0).
  std::size_t pick(std::size_t n) { return byte() % n; }
  std::uint64_t u64() {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | byte();
    return v;
  }
  // The rest of the input, as text.
  std::string_view rest() {
    std::string_view s(reinterpret_cast<const char*>(p_), static_cast<std::size_t>(end_ - p_));
    p_ = end_;
    return s;
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

}  // namespace spindle::fuzz
