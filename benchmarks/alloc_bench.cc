// Small- and large-object allocation in steady state: each round allocates a batch of
// 4096 objects, then releases the whole batch, so reused memory (not page faults) is
// measured.
//   Spindle   mallocgc; release = the sweeper's bulk path: flush the MCache
//             (releaseAll), start a sweep cycle, sweep every span with no marks.
//             With several threads the cycle is shared: the threads meet at a barrier
//             whose completion starts the cycle, all sweep (sweepone), and meet again
//             (finishSweep). The barriers are part of the measured time.
//   Boehm     GC_MALLOC, GC_FREE of each object.
//   Malloc    glibc (__libc_malloc / __libc_free, so mimalloc's override cannot
//             interpose), free of each.
//   Mimalloc  mi_malloc, mi_free of each.
//   MimallocZero  mi_zalloc, mi_free of each: context only, the zeroed allocation that
//             mallocgc and GC_MALLOC provide (mi_malloc and malloc return memory as is).
// Names: <Allocator>/<size>B/threads:<n>; the counter ns/obj is the wall time per
// object seen by one thread. Spindle also reports heap-lock acquisitions per million
// objects (heapLocks/Mobj).
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

// --- Spindle ----------------------------------------------------------------------

// A spinning barrier (a futex-based std::barrier costs more than a round of 4096
// allocations here): the last thread to arrive runs `completion`, then releases the
// others by bumping the generation.
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
      if (spins > 200) std::this_thread::yield();
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

void BM_Spindle(benchmark::State& state, std::size_t size) {
  rt::MHeap& h = rt::mheap();
  rt::P p(state.thread_index());
  rt::initHeapP(&p);
  rt::bindP(&p);
  std::vector<void*> objs(kBatch);
  const bool shared = state.threads() > 1;
  auto round = [&] {
    for (int i = 0; i < kBatch; ++i) objs[i] = rt::mallocgc(size, nullptr);
    benchmark::DoNotOptimize(objs.data());
    p.mcache->releaseAll();
    if (!shared) {
      rt::startSweepCycle(h);
      rt::finishSweep(h);
    } else {
      // The world "stops": every P has flushed; one thread starts the sweep cycle.
      gBarrier->arriveAndWait([&] { rt::startSweepCycle(h); });
      while (rt::sweepone(h)) {
      }
      gBarrier->arriveAndWait([&] { rt::finishSweep(h); });
    }
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
    for (int i = 0; i < kBatch; ++i) objs[i] = alloc(size);
    benchmark::DoNotOptimize(objs);
    for (int i = 0; i < kBatch; ++i) release(objs[i]);
  };
  for (int w = 0; w < 3; ++w) round();  // warm-up, as for Spindle
  for (auto _ : state) round();
  setCounters(state);
}

void BM_Boehm(benchmark::State& state, std::size_t size) {
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
  runFreeEach(state, size, objs, [](std::size_t n) { return GC_MALLOC(n); },
              [](void* p) { GC_FREE(p); });
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
      common(benchmark::RegisterBenchmark(("Spindle" + shape).c_str(), BM_Spindle, n)
                 ->Setup(spindleSetup));
      common(benchmark::RegisterBenchmark(("Boehm" + shape).c_str(), BM_Boehm, n));
      common(benchmark::RegisterBenchmark(("Malloc" + shape).c_str(), BM_Malloc, n));
      common(benchmark::RegisterBenchmark(("Mimalloc" + shape).c_str(), BM_Mimalloc, n));
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
