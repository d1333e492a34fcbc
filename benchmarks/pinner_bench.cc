// Pinner microbenchmarks (Go's BenchmarkPinner* set, runtime/pinner_test.go):
//   PinUnpin            Pin+Unpin of one object, one Pinner reused (steady state: the
//                       inner pinner cycles through the P's cache)
//   PinUnpinTiny        Pin+Unpin of 8-byte objects, a different one each time
//   PinUnpinDouble      Pin two objects (the same one twice: the counter path), Unpin
//   PinUnpinTwo         Pin two distinct objects, Unpin
//   ...Parallel         the same on every thread, each with its own P and objects
//   IsPinnedOnPinned / IsPinnedOnUnpinned
//   Batch100            Pin 100 objects (the ref store), Unpin
// Counters: ns/op is the time per iteration; heapallocs/op the heap allocations the
// pinner made per iteration (inner pinners, ref stores); specials/op the pin-counter
// records taken from the runtime's FixAlloc (pinning one object twice needs one).
//
// Reference (same run): PinTable, what a runtime without per-object pin bits does: a
// global table (std::mutex + unordered_map object -> count) plus the Pinner's list.
// Go 1.21+ (not installed here: Go 1.19 has no Pinner) measured PinUnpin at ~40 ns and
// 0 allocs after "cache inner pinner on P".
#include <benchmark/benchmark.h>

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "runtime/malloc.h"
#include "runtime/p.h"
#include "runtime/pheap.h"
#include "runtime/phooks.h"
#include "runtime/pinner.h"

namespace rt = spindle::runtime;

namespace {

// A P bound to the calling thread for the benchmark's duration (one per thread).
class BenchP {
 public:
  explicit BenchP(int id) : p_(id) {
    rt::initHeapP(&p_);
    rt::bindP(&p_);
  }
  ~BenchP() {
    rt::runPDestroyHooks(&p_);
    rt::unbindP();
    rt::destroyHeapP(&p_);
  }

 private:
  rt::P p_;
};

void must(rt::PinError e) {
  if (e != rt::PinError::Ok) std::abort();
}

// Pinner allocations: heap objects, and pin-counter specials (FixAlloc, not heap).
struct Allocs {
  std::uint64_t heap, specials;
  static Allocs now() {
    const rt::PinnerStats s = rt::pinnerStats();
    return {s.heapAllocs(), s.counterAllocs};
  }
};

// Allocation counts are global: each thread's baseline is taken on its first iteration,
// after the start barrier every thread passes once its warm-up is done.
#define TIMED_LOOP(state, a0)                 \
  Allocs a0{};                                \
  bool first_##a0 = true;                     \
  for (auto _ : state)                        \
    if (first_##a0 ? (a0 = Allocs::now(), first_##a0 = false, true) : true)

void setCounters(benchmark::State& state, Allocs a0) {
  state.counters["ns/op"] = benchmark::Counter(
      1, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert |
             benchmark::Counter::kAvgThreads);
  const Allocs a1 = Allocs::now();
  const double n = static_cast<double>(state.iterations()) * state.threads();
  // Every thread sees the global delta: average, do not sum.
  state.counters["heapallocs/op"] =
      benchmark::Counter(static_cast<double>(a1.heap - a0.heap) / n, benchmark::Counter::kAvgThreads);
  state.counters["specials/op"] = benchmark::Counter(static_cast<double>(a1.specials - a0.specials) / n,
                                                     benchmark::Counter::kAvgThreads);
}

// Reference: a global pin table.
struct PinTable {
  std::mutex lock;
  std::unordered_map<const void*, std::uint32_t> counts;
};
PinTable& table() {
  static PinTable* t = new PinTable;
  return *t;
}
class TablePinner {
 public:
  void pin(const void* p) {
    {
      std::lock_guard<std::mutex> g(table().lock);
      ++table().counts[p];
    }
    refs_.push_back(p);
  }
  void unpin() {
    {
      std::lock_guard<std::mutex> g(table().lock);
      for (const void* p : refs_) {
        auto it = table().counts.find(p);
        if (--it->second == 0) table().counts.erase(it);
      }
    }
    refs_.clear();
  }
  static bool isPinned(const void* p) {
    std::lock_guard<std::mutex> g(table().lock);
    return table().counts.count(p) != 0;
  }

 private:
  std::vector<const void*> refs_;
};

// --- Spindle ----------------------------------------------------------------------------

void BM_Spindle_PinUnpin(benchmark::State& state) {
  BenchP p(state.thread_index());
  void* obj = rt::mallocgc(16, nullptr);
  rt::Pinner pinner;
  must(pinner.pin(obj));  // warm: the inner pinner exists and is cached after unpin
  pinner.unpin();
  TIMED_LOOP(state, a0) {
    must(pinner.pin(obj));
    pinner.unpin();
  }
  setCounters(state, a0);
}

void BM_Spindle_PinUnpinTiny(benchmark::State& state) {
  BenchP p(state.thread_index());
  std::vector<void*> objs;
  for (int i = 0; i < 4096; ++i) objs.push_back(rt::mallocgc(8, nullptr));
  rt::Pinner pinner;
  must(pinner.pin(objs[0]));
  pinner.unpin();
  std::size_t i = 0;
  TIMED_LOOP(state, a0) {
    must(pinner.pin(objs[i++ & 4095]));
    pinner.unpin();
  }
  setCounters(state, a0);
}

void BM_Spindle_PinUnpinDouble(benchmark::State& state) {
  BenchP p(state.thread_index());
  void* obj = rt::mallocgc(16, nullptr);
  rt::Pinner pinner;
  must(pinner.pin(obj));
  must(pinner.pin(obj));
  pinner.unpin();
  TIMED_LOOP(state, a0) {
    must(pinner.pin(obj));
    must(pinner.pin(obj));
    pinner.unpin();
  }
  setCounters(state, a0);
}

void BM_Spindle_PinUnpinTwo(benchmark::State& state) {
  BenchP p(state.thread_index());
  void* a = rt::mallocgc(16, nullptr);
  void* b = rt::mallocgc(16, nullptr);
  rt::Pinner pinner;
  must(pinner.pin(a));
  pinner.unpin();
  TIMED_LOOP(state, a0) {
    must(pinner.pin(a));
    must(pinner.pin(b));
    pinner.unpin();
  }
  setCounters(state, a0);
}

void BM_Spindle_IsPinnedOnPinned(benchmark::State& state) {
  BenchP p(state.thread_index());
  void* obj = rt::mallocgc(16, nullptr);
  rt::Pinner pinner;
  must(pinner.pin(obj));
  TIMED_LOOP(state, a0) benchmark::DoNotOptimize(rt::Pinner::isPinned(obj));
  setCounters(state, a0);
  pinner.unpin();
}

void BM_Spindle_IsPinnedOnUnpinned(benchmark::State& state) {
  BenchP p(state.thread_index());
  void* obj = rt::mallocgc(16, nullptr);
  TIMED_LOOP(state, a0) benchmark::DoNotOptimize(rt::Pinner::isPinned(obj));
  setCounters(state, a0);
}

void BM_Spindle_Batch100(benchmark::State& state) {
  BenchP p(state.thread_index());
  std::vector<void*> objs;
  for (int i = 0; i < 100; ++i) objs.push_back(rt::mallocgc(16, nullptr));
  rt::Pinner pinner;
  for (void* o : objs) must(pinner.pin(o));
  pinner.unpin();
  TIMED_LOOP(state, a0) {
    for (void* o : objs) must(pinner.pin(o));
    pinner.unpin();
  }
  setCounters(state, a0);
}

// --- reference: PinTable ------------------------------------------------------------------

void BM_PinTable_PinUnpin(benchmark::State& state) {
  BenchP p(state.thread_index());
  void* obj = rt::mallocgc(16, nullptr);
  TablePinner pinner;
  TIMED_LOOP(state, a0) {
    pinner.pin(obj);
    pinner.unpin();
  }
  setCounters(state, a0);
}

void BM_PinTable_PinUnpinTwo(benchmark::State& state) {
  BenchP p(state.thread_index());
  void* a = rt::mallocgc(16, nullptr);
  void* b = rt::mallocgc(16, nullptr);
  TablePinner pinner;
  TIMED_LOOP(state, a0) {
    pinner.pin(a);
    pinner.pin(b);
    pinner.unpin();
  }
  setCounters(state, a0);
}

void BM_PinTable_IsPinnedOnPinned(benchmark::State& state) {
  BenchP p(state.thread_index());
  void* obj = rt::mallocgc(16, nullptr);
  TablePinner pinner;
  pinner.pin(obj);
  TIMED_LOOP(state, a0) benchmark::DoNotOptimize(TablePinner::isPinned(obj));
  setCounters(state, a0);
  pinner.unpin();
}

void BM_PinTable_Batch100(benchmark::State& state) {
  BenchP p(state.thread_index());
  std::vector<void*> objs;
  for (int i = 0; i < 100; ++i) objs.push_back(rt::mallocgc(16, nullptr));
  TablePinner pinner;
  TIMED_LOOP(state, a0) {
    for (void* o : objs) pinner.pin(o);
    pinner.unpin();
  }
  setCounters(state, a0);
}

// --- hardware floor ----------------------------------------------------------------------
// Pin+Unpin of an object that nobody else pins needs two atomic read-modify-writes (set
// the pin bit, clear it): their cost on this machine, for scale.
void BM_Floor_TwoCAS(benchmark::State& state) {
  std::atomic<std::uint8_t> byte{0};
  const Allocs a0 = Allocs::now();
  for (auto _ : state) {
    std::uint8_t old = byte.load(std::memory_order_relaxed);
    byte.compare_exchange_strong(old, static_cast<std::uint8_t>(old | 1), std::memory_order_relaxed);
    old = byte.load(std::memory_order_relaxed);
    byte.compare_exchange_strong(old, static_cast<std::uint8_t>(old & ~1), std::memory_order_relaxed);
  }
  setCounters(state, a0);
}

}  // namespace

BENCHMARK(BM_Floor_TwoCAS);
BENCHMARK(BM_Spindle_PinUnpin);
BENCHMARK(BM_PinTable_PinUnpin);
BENCHMARK(BM_Spindle_PinUnpinTiny);
BENCHMARK(BM_Spindle_PinUnpinDouble);
BENCHMARK(BM_Spindle_PinUnpinTwo);
BENCHMARK(BM_PinTable_PinUnpinTwo);
BENCHMARK(BM_Spindle_IsPinnedOnPinned);
BENCHMARK(BM_PinTable_IsPinnedOnPinned);
BENCHMARK(BM_Spindle_IsPinnedOnUnpinned);
BENCHMARK(BM_Spindle_Batch100);
BENCHMARK(BM_PinTable_Batch100);
// Parallel variants: every thread has its own P and objects.
BENCHMARK(BM_Spindle_PinUnpin)->Name("BM_Spindle_PinUnpinParallel")->ThreadRange(1, 2)->UseRealTime();
BENCHMARK(BM_PinTable_PinUnpin)->Name("BM_PinTable_PinUnpinParallel")->ThreadRange(1, 2)->UseRealTime();
BENCHMARK(BM_Spindle_PinUnpinTiny)->Name("BM_Spindle_PinUnpinTinyParallel")->ThreadRange(1, 2)->UseRealTime();
BENCHMARK(BM_Spindle_PinUnpinDouble)->Name("BM_Spindle_PinUnpinDoubleParallel")->ThreadRange(1, 2)->UseRealTime();
BENCHMARK(BM_Spindle_IsPinnedOnPinned)->Name("BM_Spindle_IsPinnedOnPinnedParallel")->ThreadRange(1, 2)->UseRealTime();

BENCHMARK_MAIN();
