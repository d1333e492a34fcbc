// Small- and large-object allocation in steady state: each round allocates a batch of
// 4096 pointer-free objects, then releases the whole batch, so reused memory (not page
// faults) is measured. Two families, like for like:
//   memory returned as it is (the allocator's own cost):
//     Spindle       mallocgc(size, no type, needzero=false): noscan, not zeroed.
//     Boehm         GC_MALLOC_ATOMIC (pointer-free, not cleared), GC_FREE of each.
//     Malloc        glibc (__libc_malloc / __libc_free, so mimalloc's override cannot
//                   interpose), free of each.
//     Mimalloc      mi_malloc, mi_free of each.
//   zeroed memory (what a scan object, or Lox's objects, get):
//     SpindleZero   mallocgc(size, no type): zeroed.
//     BoehmZero     GC_MALLOC (cleared), GC_FREE of each.
//     MimallocZero  mi_zalloc, mi_free of each.
// Spindle's release is the collector's own path with nothing marked: the Ps meet at a
// barrier (the world stops) whose last arrival ends the previous sweep (finishSweep) and
// starts a cycle (startSweepCycle); then each P flushes its MCache (lazily, as after
// mark termination: uncacheSpan sweeps the stale spans on the P that filled them) and
// sweeps the rest on demand: each refill sweeps the span it takes (cacheSpan, from the
// P's own MCentral shard first). Whatever no P took is swept at the next stop
// (finishSweep). The barrier is part of the measured time.
// Names: <Allocator>/<size>B/threads:<n>. The counter ns/obj is wall time divided by
// the objects all threads allocated (the inverse of the aggregate rate): with n threads
// each thread spends n * ns/obj per object, and perfect scaling divides it by n.
// Spindle also reports heap-lock acquisitions per million objects (heapLocks/Mobj).
#include <benchmark/benchmark.h>
#define GC_THREADS
#include <gc/gc.h>
#include <mimalloc.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/malloc.h"
#include "runtime/mgcsweep.h"
#include "runtime/mheap.h"
#include "runtime/pheap.h"

extern "C" void* __libc_malloc(std::size_t);
extern "C" void __libc_free(void*);

namespace rt = spindle::runtime;

namespace {

constexpr int kBatch = 4096;

void setCounters(benchmark::State& state) {
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["ns/obj"] = benchmark::Counter(
      static_cast<double>(kBatch), benchmark::Counter::kIsIterationInvariantRate |
                                       benchmark::Counter::kInvert |
                                       benchmark::Counter::kAvgThreads);
}

// The caller initialises its object: one word, as a header store would. (Memory nobody
// writes is never faulted in, so an uninitialised allocation would measure unmapped
// pages.)
inline void* touch(void* v, int i) {
  *static_cast<std::uintptr_t*>(v) = static_cast<std::uintptr_t>(i);
  return v;
}

// --- Spindle ----------------------------------------------------------------------

// A spinning barrier (a futex-based std::barrier costs more than a round of 4096
// allocations here): the last thread to arrive runs `completion`, then releases the
// others by bumping the generation. Waiters spin with pause for a while before
// yielding: a sched_yield here costs microseconds, as long as a round's imbalance.
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  template <typename F>
  void arriveAndWait(F completion) {
    const unsigned gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
      completion();
      count_.store(0, std::memory_order_relaxed);
      gen_.store(gen + 1, std::memory_order_release);  // publishes completion's effects
      return;
    }
    for (int spins = 0; gen_.load(std::memory_order_acquire) == gen; ++spins) {
      if (spins > 20000) {
        std::this_thread::yield();
      } else {
        __builtin_ia32_pause();
      }
    }
  }

 private:
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<unsigned> gen_{0};
};
std::unique_ptr<SpinBarrier> gBarrier;

void spindleSetup(const benchmark::State& state) {
  gBarrier = std::make_unique<SpinBarrier>(state.threads());
}

template <bool kNeedZero>
void BM_Spindle(benchmark::State& state, std::size_t size) {
  rt::MHeap& h = rt::mheap();
  rt::P p(state.thread_index());
  rt::initHeapP(&p);
  rt::bindP(&p);
  std::vector<void*> objs(kBatch);
  auto round = [&] {
    for (int i = 0; i < kBatch; ++i) objs[i] = touch(rt::mallocgc(size, nullptr, kNeedZero), i);
    benchmark::DoNotOptimize(objs.data());
    gBarrier->arriveAndWait([&] {
      rt::finishSweep(h);
      rt::startSweepCycle(h);
    });
    p.mcache->releaseAll();
  };
  for (int w = 0; w < 3; ++w) round();  // warm-up: first-touch page faults are not measured
  const auto locks0 = h.stats.heapLockAcquisitions.load(std::memory_order_relaxed);
  for (auto _ : state) round();
  const auto locks = h.stats.heapLockAcquisitions.load(std::memory_order_relaxed) - locks0;
  setCounters(state);
  if (state.thread_index() == 0) {
    const double objects = static_cast<double>(state.iterations()) * kBatch * state.threads();
    state.counters["heapLocks/Mobj"] = static_cast<double>(locks) / objects * 1e6;
    state.counters["heapSysMiB"] =
        static_cast<double>(h.stats.heapSys.load(std::memory_order_relaxed)) / (1 << 20);
  }
  rt::unbindP();
  rt::destroyHeapP(&p);
}

// --- references -------------------------------------------------------------------

// objs: where the batch's pointers live (Boehm needs them in memory it scans).
template <typename Alloc, typename Free>
void runFreeEach(benchmark::State& state, std::size_t size, void** objs, Alloc alloc,
                 Free release) {
  auto round = [&] {
    for (int i = 0; i < kBatch; ++i) objs[i] = touch(alloc(size), i);
    benchmark::DoNotOptimize(objs);
    for (int i = 0; i < kBatch; ++i) release(objs[i]);
  };
  for (int w = 0; w < 3; ++w) round();  // warm-up, as for Spindle
  for (auto _ : state) round();
  setCounters(state);
}

void BM_Boehm(benchmark::State& state, std::size_t size, bool clear) {
  GC_stack_base sb;
  // Thread 0 runs on the main thread, registered by GC_INIT.
  const bool registered = state.thread_index() != 0;
  if (registered) {
    GC_get_stack_base(&sb);
    GC_register_my_thread(&sb);
  }
  // The batch's pointers must be visible to Boehm's marker, or a collection in the
  // middle of a batch would reclaim objects we are about to GC_FREE.
  void** objs = static_cast<void**>(GC_MALLOC_UNCOLLECTABLE(kBatch * sizeof(void*)));
  if (clear) {
    runFreeEach(state, size, objs, [](std::size_t n) { return GC_MALLOC(n); },
                [](void* p) { GC_FREE(p); });
  } else {
    runFreeEach(state, size, objs, [](std::size_t n) { return GC_MALLOC_ATOMIC(n); },
                [](void* p) { GC_FREE(p); });
  }
  GC_FREE(objs);
  if (registered) GC_unregister_my_thread();
}

void BM_Malloc(benchmark::State& state, std::size_t size) {
  std::vector<void*> objs(kBatch);
  runFreeEach(state, size, objs.data(), [](std::size_t n) { return __libc_malloc(n); },
              [](void* p) { __libc_free(p); });
}

void BM_Mimalloc(benchmark::State& state, std::size_t size) {
  std::vector<void*> objs(kBatch);
  runFreeEach(state, size, objs.data(), [](std::size_t n) { return mi_malloc(n); },
              [](void* p) { mi_free(p); });
}

void BM_MimallocZero(benchmark::State& state, std::size_t size) {
  std::vector<void*> objs(kBatch);
  runFreeEach(state, size, objs.data(), [](std::size_t n) { return mi_zalloc(n); },
              [](void* p) { mi_free(p); });
}

void registerAll() {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::vector<int> sizes = {16, 64, 256, 1024, 48 << 10};
  const std::vector<int> threadCounts = cores > 1 ? std::vector<int>{1, cores} : std::vector<int>{1};
  for (int size : sizes) {
    for (int threads : threadCounts) {
      const std::string shape = "/" + std::to_string(size) + "B";
      auto common = [&](benchmark::internal::Benchmark* b) {
        b->Threads(threads)->UseRealTime()->Unit(benchmark::kMicrosecond);
      };
      const std::size_t n = static_cast<std::size_t>(size);
      common(benchmark::RegisterBenchmark(("Spindle" + shape).c_str(), BM_Spindle<false>, n)
                 ->Setup(spindleSetup));
      common(benchmark::RegisterBenchmark(("Boehm" + shape).c_str(), BM_Boehm, n, false));
      common(benchmark::RegisterBenchmark(("Malloc" + shape).c_str(), BM_Malloc, n));
      common(benchmark::RegisterBenchmark(("Mimalloc" + shape).c_str(), BM_Mimalloc, n));
      common(benchmark::RegisterBenchmark(("SpindleZero" + shape).c_str(), BM_Spindle<true>, n)
                 ->Setup(spindleSetup));
      common(benchmark::RegisterBenchmark(("BoehmZero" + shape).c_str(), BM_Boehm, n, true));
      common(benchmark::RegisterBenchmark(("MimallocZero" + shape).c_str(), BM_MimallocZero, n));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  GC_INIT();
  GC_allow_register_threads();
  registerAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
