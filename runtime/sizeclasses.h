// sizeclasses.h: the size-class table, generated at compile time.
//
// Small objects (up to kMaxSmallSize = 32 KiB) are rounded up to one of about 68
// size classes; each class has a span size (a whole number of 8 KiB pages, at least
// 64 KiB) chosen so that the space left over at the end of a span is at most 1/8 of
// the span. Objects
// larger than kMaxSmallSize get a span of their own (size class 0).
//
// The table is not typed in: generateSizeClasses() derives it, in a constexpr
// function, from these rules (the same rules as Go's mksizeclasses.go):
//   1. Candidate sizes step by an alignment that grows with the size: 8 B below 32 B,
//      16 B below 128 B, size/8 from 128 B to 2 KiB, then 256 B.
//   2. A candidate's span is the fewest pages whose tail waste is <= 1/8 of the span.
//   3. A candidate that uses the same pages and fits the same number of objects as the
//      previous class replaces it (the bigger size costs nothing).
//   4. Finally each class grows to the largest size (a multiple of kLargeSizeDiv) that
//      still fits the same number of objects in its span.
//   5. (Not in Go.) The sizes fixed, every span is widened to at least kMinSpanBytes
//      (64 KiB, mimalloc's small page): the fewest pages >= kMinSpanBytes whose tail
//      waste is still <= 1/8. Rules 1-4 use 8 KiB spans, so the classes (and their
//      number) are Go's; only spans grow, so a span holds 8x as many objects of a
//      small class and the per-span costs (MCache refill, MCentral, sweeping a span,
//      allocSpan/freeSpan) are paid 8x less often. The cost: an MCache holds up to
//      64 KiB per span class in use (Go: 8 KiB).
//
// Invariants (checked by static_asserts here and by tests/sizeclasses_test.cc):
//   - sizes strictly increase; every size is a multiple of 8 (of 16 from 32 B up);
//   - tail waste (span bytes mod size) <= span bytes / 8;
//   - sizeToClass(n) is the smallest class whose size is >= n;
//   - objectIndex(offset) == offset / size for every offset within the span, computed
//     as a 32x32->64 multiply and shift by divMagic (no division on the hot path).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace spindle::runtime {

inline constexpr std::size_t kPageShift = 13;
inline constexpr std::size_t kPageSize = std::size_t{1} << kPageShift;  // 8 KiB
inline constexpr std::size_t kMaxSmallSize = 32 << 10;                  // 32 KiB
inline constexpr std::size_t kSmallSizeDiv = 8;
inline constexpr std::size_t kSmallSizeMax = 1024;
inline constexpr std::size_t kLargeSizeDiv = 128;
inline constexpr std::size_t kMinSpanBytes = 64 << 10;  // rule 5

struct SizeClassInfo {
  std::uint32_t size = 0;      // object size in bytes
  std::uint32_t npages = 0;    // pages per span
  std::uint32_t nelems = 0;    // objects per span
  std::uint32_t divMagic = 0;  // ceil(2^32 / size): index = (offset * divMagic) >> 32
};

namespace sizeclass_detail {

inline constexpr std::size_t kMaxClasses = 128;

struct Generated {
  std::array<SizeClassInfo, kMaxClasses> classes{};
  std::size_t count = 0;  // including the dummy class 0
};

constexpr bool isPowerOfTwo(std::size_t x) { return x != 0 && (x & (x - 1)) == 0; }

constexpr Generated generateSizeClasses() {
  Generated g;
  g.count = 1;  // class 0 stands for "large object, own span"
  std::size_t align = 8;
  for (std::size_t size = align; size <= kMaxSmallSize; size += align) {
    if (isPowerOfTwo(size)) {
      if (size >= 2048) {
        align = 256;
      } else if (size >= 128) {
        align = size / 8;
      } else if (size >= 32) {
        align = 16;
      }
    }
    // Rule 2: the fewest pages whose tail waste is at most 1/8 of the span.
    std::size_t spanBytes = kPageSize;
    while (spanBytes % size > spanBytes / 8) spanBytes += kPageSize;
    const std::size_t npages = spanBytes / kPageSize;
    // Rule 3: same span and same object count as the previous class: widen it.
    if (g.count > 1) {
      SizeClassInfo& prev = g.classes[g.count - 1];
      if (npages == prev.npages && spanBytes / size == spanBytes / prev.size) {
        prev.size = static_cast<std::uint32_t>(size);
        continue;
      }
    }
    g.classes[g.count].size = static_cast<std::uint32_t>(size);
    g.classes[g.count].npages = static_cast<std::uint32_t>(npages);
    ++g.count;
  }
  // Rule 4: grow each class while the same number of objects still fits.
  for (std::size_t i = 1; i < g.count; ++i) {
    SizeClassInfo& c = g.classes[i];
    const std::size_t spanBytes = std::size_t{c.npages} * kPageSize;
    const std::size_t grown = (spanBytes / (spanBytes / c.size)) & ~(kLargeSizeDiv - 1);
    if (grown > c.size) c.size = static_cast<std::uint32_t>(grown);
  }
  // Rule 5: widen small spans to at least kMinSpanBytes, keeping the tail-waste bound.
  for (std::size_t i = 1; i < g.count; ++i) {
    SizeClassInfo& c = g.classes[i];
    std::size_t spanBytes = std::size_t{c.npages} * kPageSize;
    if (spanBytes >= kMinSpanBytes) continue;
    spanBytes = kMinSpanBytes;
    while (spanBytes % c.size > spanBytes / 8) spanBytes += kPageSize;
    c.npages = static_cast<std::uint32_t>(spanBytes / kPageSize);
  }
  for (std::size_t i = 1; i < g.count; ++i) {
    SizeClassInfo& c = g.classes[i];
    const std::size_t spanBytes = std::size_t{c.npages} * kPageSize;
    c.nelems = static_cast<std::uint32_t>(spanBytes / c.size);
    c.divMagic = static_cast<std::uint32_t>((std::uint64_t{1} << 32) / c.size +
                                            ((std::uint64_t{1} << 32) % c.size != 0));
  }
  return g;
}

inline constexpr Generated kGenerated = generateSizeClasses();

}  // namespace sizeclass_detail

// Number of size classes, including class 0 (large objects).
inline constexpr std::size_t kNumSizeClasses = sizeclass_detail::kGenerated.count;

inline constexpr auto kSizeClasses = [] {
  std::array<SizeClassInfo, kNumSizeClasses> table{};
  for (std::size_t i = 0; i < kNumSizeClasses; ++i) table[i] = sizeclass_detail::kGenerated.classes[i];
  return table;
}();

namespace sizeclass_detail {

// Lookup tables: sizes up to kSmallSizeMax in steps of 8, then up to kMaxSmallSize
// in steps of 128. Entry = smallest class whose size is >= the step's upper bound.
constexpr std::uint8_t classFor(std::size_t size) {
  for (std::size_t c = 1; c < kNumSizeClasses; ++c) {
    if (kSizeClasses[c].size >= size) return static_cast<std::uint8_t>(c);
  }
  return 0;
}

inline constexpr auto kSizeToClass8 = [] {
  std::array<std::uint8_t, kSmallSizeMax / kSmallSizeDiv + 1> t{};
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = classFor(i * kSmallSizeDiv);
  return t;
}();

inline constexpr auto kSizeToClass128 = [] {
  std::array<std::uint8_t, (kMaxSmallSize - kSmallSizeMax) / kLargeSizeDiv + 1> t{};
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = classFor(kSmallSizeMax + i * kLargeSizeDiv);
  return t;
}();

}  // namespace sizeclass_detail

// The size class for an allocation of `size` bytes (1 <= size <= kMaxSmallSize).
constexpr std::uint8_t sizeToClass(std::size_t size) {
  if (size <= kSmallSizeMax) {
    return sizeclass_detail::kSizeToClass8[(size + kSmallSizeDiv - 1) / kSmallSizeDiv];
  }
  return sizeclass_detail::kSizeToClass128[(size - kSmallSizeMax + kLargeSizeDiv - 1) /
                                           kLargeSizeDiv];
}

// offset / size for an offset inside a span of class `sizeclass`, by multiply-shift.
constexpr std::uint32_t objectIndex(std::uint8_t sizeclass, std::uintptr_t offset) {
  return static_cast<std::uint32_t>(
      (static_cast<std::uint64_t>(offset) * kSizeClasses[sizeclass].divMagic) >> 32);
}

static_assert(kNumSizeClasses > 60 && kNumSizeClasses < 80, "about 68 size classes");
static_assert(kSizeClasses[1].size == 8, "smallest class is 8 bytes");
static_assert(kSizeClasses[kNumSizeClasses - 1].size == kMaxSmallSize,
              "largest class is kMaxSmallSize");
static_assert(sizeToClass(kMaxSmallSize) == kNumSizeClasses - 1);

}  // namespace spindle::runtime
