// The page allocator against a simple model: a vector<bool> searched first-fit.
#include "runtime/pagealloc.h"

#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "runtime/heap_testing.h"

using namespace spindle::runtime;

namespace {

struct Model {
  std::vector<char> free;
  explicit Model(std::size_t n) : free(n, 0) {}
  std::size_t alloc(std::size_t n) {
    std::size_t run = 0;
    for (std::size_t i = 0; i < free.size(); ++i) {
      run = free[i] ? run + 1 : 0;
      if (run == n) {
        for (std::size_t j = i + 1 - n; j <= i; ++j) free[j] = false;
        return i + 1 - n;
      }
    }
    return PageAlloc::kNotFound;
  }
  void release(std::size_t first, std::size_t n) {
    for (std::size_t j = first; j < first + n; ++j) free[j] = true;
  }
  std::size_t longest() const {
    std::size_t best = 0, run = 0;
    for (char f : free) {
      run = f ? run + 1 : 0;
      best = std::max(best, run);
    }
    return best;
  }
};

}  // namespace

TEST_CASE("pagealloc: empty allocator finds nothing, grown pages are found") {
  PageAlloc pa(4 * PageAlloc::kPagesPerChunk);
  CHECK(pa.alloc(1) == PageAlloc::kNotFound);
  pa.grow(0, 100);
  CHECK(pa.freePages() == 100);
  CHECK(pa.alloc(101) == PageAlloc::kNotFound);
  CHECK(pa.alloc(100) == 0);
  CHECK(pa.freePages() == 0);
  pa.checkInvariants();
}

TEST_CASE("pagealloc: runs cross chunk and summary-level boundaries and coalesce on free") {
  // 100 chunks with a top level of at most 8: three summary levels.
  PageAlloc pa(100 * PageAlloc::kPagesPerChunk, 8);
  pa.grow(0, 100 * PageAlloc::kPagesPerChunk);
  const std::size_t a = pa.alloc(500);
  const std::size_t b = pa.alloc(500);  // crosses the first chunk boundary
  const std::size_t c = pa.alloc(9000);  // crosses many chunks and a level-1 node
  CHECK(a == 0);
  CHECK(b == 500);
  CHECK(c == 1000);
  pa.checkInvariants();
  pa.free(a, 500);
  pa.free(b, 500);
  // The two freed runs coalesce: 1000 pages fit at 0 again.
  CHECK(pa.alloc(1000) == 0);
  pa.free(0, 1000);
  pa.free(c, 9000);
  CHECK(pa.longestFreeRun() == 100 * PageAlloc::kPagesPerChunk);
  CHECK(pa.alloc(100 * PageAlloc::kPagesPerChunk) == 0);
  pa.checkInvariants();
}

namespace {
void randomizedAgainstModel(std::size_t maxTop) {
  using testing::kScale;
  // Not a multiple of the chunk size, to cover the ragged end.
  const std::size_t maxPages = 70 * PageAlloc::kPagesPerChunk + 77;
  PageAlloc pa(maxPages, maxTop);
  Model model(maxPages);
  std::mt19937_64 rng(12345);
  struct Run {
    std::size_t first, n;
  };
  std::vector<Run> live;
  std::size_t grown = 0;
  const int steps = 2000 * kScale;
  for (int step = 0; step < steps; ++step) {
    const int op = static_cast<int>(rng() % 100);
    if (op < 2 && grown < maxPages) {
      const std::size_t n = std::min<std::size_t>(maxPages - grown, 1 + rng() % 5000);
      pa.grow(grown, n);
      model.release(grown, n);
      grown += n;
    } else if (op < 60) {
      std::size_t n = 1 + rng() % 16;
      if (rng() % 10 == 0) n = 1 + rng() % 3000;
      const std::size_t got = pa.alloc(n);
      const std::size_t want = model.alloc(n);
      REQUIRE(got == want);
      if (got != PageAlloc::kNotFound) live.push_back({got, n});
    } else if (!live.empty()) {
      const std::size_t i = rng() % live.size();
      pa.free(live[i].first, live[i].n);
      model.release(live[i].first, live[i].n);
      live[i] = live.back();
      live.pop_back();
    }
    if (step % 97 == 0) {
      pa.checkInvariants();
      REQUIRE(pa.longestFreeRun() == model.longest());
    }
  }
  std::size_t free = 0;
  for (char f : model.free) free += f != 0;
  CHECK(pa.freePages() == free);
  pa.checkInvariants();
}
}  // namespace

TEST_CASE("pagealloc: randomized against a first-fit model, deep summary tree") {
  randomizedAgainstModel(8);  // 70 chunks -> 9 -> 2: three levels
}

TEST_CASE("pagealloc: randomized against a first-fit model, wide top level") {
  randomizedAgainstModel(PageAlloc::kMaxTop);  // 70 chunks -> 9: two levels
}
