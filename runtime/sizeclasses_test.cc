#include "runtime/sizeclasses.h"

#include <doctest/doctest.h>

#include <cstdint>

using namespace spindle::runtime;

TEST_CASE("size classes: sizes increase and are aligned") {
  CHECK(kSizeClasses[0].size == 0);
  for (std::size_t c = 1; c < kNumSizeClasses; ++c) {
    const auto& info = kSizeClasses[c];
    INFO("class ", c, " size ", info.size);
    CHECK(info.size % 8 == 0);
    if (info.size >= 32) CHECK(info.size % 16 == 0);
    if (c > 1) CHECK(info.size > kSizeClasses[c - 1].size);
  }
}

TEST_CASE("size classes: tail waste is at most 1/8 of each span") {
  for (std::size_t c = 1; c < kNumSizeClasses; ++c) {
    const auto& info = kSizeClasses[c];
    const std::size_t spanBytes = std::size_t{info.npages} * kPageSize;
    INFO("class ", c, " size ", info.size, " pages ", info.npages);
    CHECK(info.nelems == spanBytes / info.size);
    CHECK(info.nelems >= 1);
    CHECK(spanBytes % info.size <= spanBytes / 8);
  }
}

TEST_CASE("size classes: sizeToClass is the smallest class that fits") {
  for (std::size_t n = 1; n <= kMaxSmallSize; ++n) {
    const auto c = sizeToClass(n);
    REQUIRE(c >= 1);
    REQUIRE(c < kNumSizeClasses);
    REQUIRE(kSizeClasses[c].size >= n);
    REQUIRE(kSizeClasses[c - 1].size < n);
  }
}

TEST_CASE("size classes: objectIndex equals division for every offset in a span") {
  for (std::size_t c = 1; c < kNumSizeClasses; ++c) {
    const auto& info = kSizeClasses[c];
    const std::uintptr_t spanBytes = std::uintptr_t{info.npages} * kPageSize;
    for (std::uintptr_t off = 0; off < spanBytes; ++off) {
      if (objectIndex(static_cast<std::uint8_t>(c), off) != off / info.size) {
        FAIL("class ", c, " size ", info.size, " offset ", off);
      }
    }
  }
}

TEST_CASE("size classes: every span is the fewest pages of at least kMinSpanBytes within the waste bound") {
  for (std::size_t c = 1; c < kNumSizeClasses; ++c) {
    const auto& info = kSizeClasses[c];
    const std::size_t spanBytes = std::size_t{info.npages} * kPageSize;
    INFO("class ", c, " size ", info.size, " pages ", info.npages);
    CHECK(spanBytes >= kMinSpanBytes);
    // One page less would be under the minimum or waste more than 1/8 at the tail.
    const std::size_t smaller = spanBytes - kPageSize;
    CHECK((smaller < kMinSpanBytes || smaller % info.size > smaller / 8));
  }
}
