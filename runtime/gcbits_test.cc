// gcBits arenas: zeroed bits, recycling by epoch, and an arena ready at each epoch.
#include "runtime/gcbits.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>

using namespace spindle::runtime;

namespace {
bool allZero(const std::uint8_t* p, std::size_t n) {
  return std::all_of(p, p + n, [](std::uint8_t b) { return b == 0; });
}
}  // namespace

TEST_CASE("gcbits: bits are zeroed, and so are recycled arenas") {
  GCBitsArenas arenas;
  constexpr std::size_t kElems = 4096;
  const std::size_t bytes = gcBitsBytes(kElems);
  std::uint8_t* first = arenas.newMarkBits(kElems);
  CHECK(allZero(first, bytes));
  std::memset(first, 0xff, bytes);
  // next -> current -> previous -> free: after three epochs the arena is reused.
  for (int epoch = 0; epoch < 3; ++epoch) arenas.nextEpoch();
  bool sawReuse = false;
  for (int i = 0; i < 8; ++i) {
    std::uint8_t* b = arenas.newMarkBits(kElems);
    CHECK(allZero(b, bytes));
    sawReuse |= b == first;
    arenas.nextEpoch();
  }
  CHECK(sawReuse);
  // Recycling keeps the number of arenas bounded (next, current, previous, one free).
  CHECK(arenas.arenasAllocated() <= 4);
}

TEST_CASE("gcbits: each epoch starts with an arena ready, so its first bits need no new one") {
  GCBitsArenas arenas;
  arenas.newMarkBits(64);
  CHECK(arenas.arenasAllocated() == 1);
  arenas.nextEpoch();
  // The new epoch's arena was provisioned by nextEpoch (the free list was empty).
  CHECK(arenas.arenasAllocated() == 2);
  std::uint8_t* b = arenas.newMarkBits(64);
  CHECK(arenas.arenasAllocated() == 2);
  CHECK(allZero(b, gcBitsBytes(64)));
}

TEST_CASE("gcbits: a P's chunk serves its bits locally, and only within the epoch it was taken") {
  GCBitsArenas arenas;
  GCBitsCache cache;
  std::uint8_t* a = arenas.newMarkBits(512, &cache);
  std::uint8_t* b = arenas.newMarkBits(512, &cache);
  CHECK(b == a + gcBitsBytes(512));  // bumped in the chunk
  CHECK(cache.end - a == GCBitsArenas::kCacheChunk);
  CHECK(allZero(a, 2 * gcBitsBytes(512)));
  // Another caller (no cache) gets bytes past the whole chunk.
  std::uint8_t* shared = arenas.newMarkBits(512);
  CHECK(shared >= cache.end);
  std::memset(a, 0xff, 2 * gcBitsBytes(512));
  // A new epoch: the rest of the chunk belongs to what is now `current`, so it is left.
  arenas.nextEpoch();
  std::uint8_t* c = arenas.newMarkBits(512, &cache);
  CHECK((c < a || c >= a + GCBitsArenas::kCacheChunk));
  CHECK(allZero(c, gcBitsBytes(512)));
  // Requests too big for a chunk go to the arena directly.
  std::uint8_t* big = arenas.newMarkBits(8 * GCBitsArenas::kCacheChunk, &cache);
  CHECK((big < cache.end - GCBitsArenas::kCacheChunk || big >= cache.end));
}
