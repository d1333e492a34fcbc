// Size-class lookup: the table lookup and the multiply-shift object index that sit on
// the allocation and marking fast paths, against plain division.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "runtime/sizeclasses.h"

namespace {

using spindle::runtime::kMaxSmallSize;
using spindle::runtime::kNumSizeClasses;
using spindle::runtime::kSizeClasses;

void BM_SizeToClass(benchmark::State& state) {
  std::size_t size = 1;
  for (auto _ : state) {
    benchmark::DoNotOptimize(spindle::runtime::sizeToClass(size));
    size = size % kMaxSmallSize + 7;
  }
}
BENCHMARK(BM_SizeToClass);

void BM_ObjectIndexMagic(benchmark::State& state) {
  std::uint8_t c = 1;
  std::uintptr_t off = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(spindle::runtime::objectIndex(c, off));
    off = (off + 4099) & 8191;
    c = static_cast<std::uint8_t>(c % (kNumSizeClasses - 1) + 1);
  }
}
BENCHMARK(BM_ObjectIndexMagic);

void BM_ObjectIndexDivide(benchmark::State& state) {
  std::uint8_t c = 1;
  std::uintptr_t off = 0;
  for (auto _ : state) {
    std::uint32_t size = kSizeClasses[c].size;
    benchmark::DoNotOptimize(&size);
    benchmark::DoNotOptimize(off / size);
    off = (off + 4099) & 8191;
    c = static_cast<std::uint8_t>(c % (kNumSizeClasses - 1) + 1);
  }
}
BENCHMARK(BM_ObjectIndexDivide);

}  // namespace
