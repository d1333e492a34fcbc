// SpanSet: nothing lost or duplicated under concurrent push/pop, blocks recycled.
#include "runtime/mspanset.h"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "runtime/heap_testing.h"

using namespace spindle::runtime;

namespace {
// Spans are never dereferenced by SpanSet: distinct fake pointers will do.
MSpan* fake(std::size_t i) { return reinterpret_cast<MSpan*>((i + 1) * 64); }
std::size_t unfake(MSpan* s) { return reinterpret_cast<std::uintptr_t>(s) / 64 - 1; }
}  // namespace

TEST_CASE("spanset: push then pop returns each span once, then empty") {
  SpanSet set;
  CHECK(set.pop() == nullptr);
  const std::size_t n = 3 * kSpanSetBlockEntries + 17;
  for (std::size_t i = 0; i < n; ++i) set.push(fake(i));
  CHECK(set.size() == n);
  std::vector<int> seen(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    MSpan* s = set.pop();
    REQUIRE(s != nullptr);
    seen[unfake(s)]++;
  }
  CHECK(set.pop() == nullptr);
  for (int c : seen) CHECK(c == 1);
  set.reset();
}

TEST_CASE("spanset: blocks return to the pool as they empty and the pool stays bounded") {
  SpanSetBlockPool& pool = spanSetBlockPool();
  SpanSet set;
  // Warm up: one round allocates what the steady state needs.
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < 4 * kSpanSetBlockEntries + 5; ++i) set.push(fake(i));
    const std::size_t pooledBefore = pool.pooled();
    for (std::size_t i = 0; i < kSpanSetBlockEntries; ++i) REQUIRE(set.pop() != nullptr);
    // The first block was fully popped: it is back in the pool already.
    CHECK(pool.pooled() == pooledBefore + 1);
    while (set.pop() != nullptr) {
    }
    set.reset();
  }
  const std::size_t allocated = pool.allocated();
  for (int round = 0; round < 20; ++round) {
    for (std::size_t i = 0; i < 4 * kSpanSetBlockEntries + 5; ++i) set.push(fake(i));
    while (set.pop() != nullptr) {
    }
    set.reset();
  }
  CHECK(pool.allocated() == allocated);
}

TEST_CASE("spanset: concurrent pushers and poppers lose and duplicate nothing") {
  using testing::kScale;
  constexpr int kPushers = 3, kPoppers = 3;
  const std::size_t perPusher = 2000 * kScale;
  const std::size_t total = perPusher * kPushers;
  SpanSetBlockPool& pool = spanSetBlockPool();
  for (int round = 0; round < 4; ++round) {
    SpanSet set;
    std::vector<std::atomic<int>> seen(total);
    std::atomic<std::size_t> popped{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kPushers; ++t) {
      threads.emplace_back([&, t] {
        for (std::size_t i = 0; i < perPusher; ++i) set.push(fake(t * perPusher + i));
      });
    }
    for (int t = 0; t < kPoppers; ++t) {
      threads.emplace_back([&] {
        while (popped.load(std::memory_order_relaxed) < total) {
          if (MSpan* s = set.pop()) {
            seen[unfake(s)].fetch_add(1, std::memory_order_relaxed);
            popped.fetch_add(1, std::memory_order_relaxed);
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(set.pop() == nullptr);
    int bad = 0;
    for (auto& c : seen) bad += c.load() != 1;
    CHECK(bad == 0);
    set.reset();
  }
  // Every block went back to the pool: nothing is held by the (destroyed) sets.
  CHECK(pool.pooled() == pool.allocated());
  // Bounded: a round needs about total/512 blocks; we never hold more than a round's worth
  // plus the other tests' blocks.
  CHECK(pool.allocated() <= total / kSpanSetBlockEntries + 16);
}
