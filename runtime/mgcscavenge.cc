// mgcscavenge.cc: see mgcscavenge.h.
#include "runtime/mgcscavenge.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "runtime/gctrace.h"
#include "runtime/mheap.h"
#include "runtime/print.h"
#include "runtime/threadname.h"
#include "runtime/throw.h"

namespace spindle::runtime {

namespace {
std::atomic<std::uint64_t> gBytesReleased{0};
std::atomic<std::uint64_t> gChunks{0};
std::atomic<std::uint64_t> gGoal{0};

struct Background {
  std::mutex lock;
  std::condition_variable cv;
  bool stop = false;
  bool woken = false;
  MHeap* armed = nullptr;  // set by startBackgroundScavenger; the thread starts at the first wake
  std::thread thread;
};
Background& background() {
  static Background* b = new Background;
  return *b;
}

std::uint64_t retainedGoal(MHeap& h) {
  const std::uint64_t explicitGoal = gGoal.load(std::memory_order_relaxed);
  if (explicitGoal != 0) return explicitGoal;
  const HeapStatsSnapshot st = h.readStats();
  const std::uint64_t inUse = static_cast<std::uint64_t>(st.heapInUse + st.manualInUse);
  return inUse + inUse / 10 + kMinRetained;
}

void backgroundLoop(MHeap* h) {
  using Clock = std::chrono::steady_clock;
  Background& b = background();
  std::chrono::nanoseconds sleep{0};
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(b.lock);
      if (sleep.count() > 0) b.cv.wait_for(lk, sleep, [&] { return b.stop || b.woken; });
      if (b.stop) return;
      b.woken = false;
    }
    const std::uint64_t released = h->scavengedPages() * kPageSize;
    const std::uint64_t retained = h->stats.heapSys.load(std::memory_order_relaxed) - released;
    const std::uint64_t goal = retainedGoal(*h);
    if (retained <= goal) {
      gc_detail::traceScavenge(0, /*flush=*/true);  // the pass is over
      sleep = std::chrono::milliseconds(100);  // idle: wait for a wake-up or the next look
      continue;
    }
    const std::size_t want =
        std::min<std::size_t>(kScavengeChunkPages, (retained - goal + kPageSize - 1) / kPageSize);
    const auto t0 = Clock::now();
    const std::size_t n = h->scavenge(want);
    const auto work = Clock::now() - t0;
    gChunks.fetch_add(1, std::memory_order_relaxed);
    if (n > 0) gc_detail::traceScavenge(n * kPageSize, /*flush=*/false);
    if (n == 0) {
      sleep = std::chrono::milliseconds(100);
      continue;
    }
    // Pace to kScavengePercent of one CPU, at least 50 us between chunks.
    sleep = std::max<std::chrono::nanoseconds>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(work) * (100 - kScavengePercent) /
            kScavengePercent,
        std::chrono::microseconds(50));
  }
}

}  // namespace

std::size_t MHeap::scavenge(std::size_t maxPages) {
  std::size_t released = 0;
  while (released < maxPages) {
    std::size_t n = 0;
    lockHeap();
    const std::size_t first = pages_.findScavengeCandidate(maxPages - released, &n);
    if (first == PageAlloc::kNotFound) {
      lock_.unlock();
      break;
    }
    pages_.allocRange(first, n);  // nobody can allocate them while we release them
    lock_.unlock();
    void* addr = reinterpret_cast<void*>(arenas_.pageAddr(first));
    const int rc = madvise(addr, n * kPageSize, MADV_DONTNEED);
    SPINDLE_CHECK(rc == 0, "scavenge: madvise({}, {} pages) failed", addr, n);
    lockHeap();
    pages_.freeScavenged(first, n);
    lock_.unlock();
    released += n;
  }
  gBytesReleased.fetch_add(released * kPageSize, std::memory_order_relaxed);
  return released;
}

std::size_t MHeap::scavengedPages() {
  std::lock_guard<std::mutex> g(lock_);
  return pages_.scavengedPages();
}

bool MHeap::isScavenged(std::size_t page) {
  std::lock_guard<std::mutex> g(lock_);
  return pages_.isScavenged(page);
}

std::uint64_t scavengeAll(MHeap& h) {
  std::uint64_t total = 0;
  while (const std::size_t n = h.scavenge(kScavengeChunkPages * 16)) total += n * kPageSize;
  gc_detail::traceScavenge(total, /*flush=*/true);
  return total;
}

ScavengerStats scavengerStats(MHeap& h) {
  ScavengerStats s;
  s.bytesReleased = gBytesReleased.load(std::memory_order_relaxed);
  s.heapReleased = h.scavengedPages() * kPageSize;
  s.cycles = gChunks.load(std::memory_order_relaxed);
  return s;
}

// Arms the scavenger; its thread starts at the first scavengerWake (the end of a
// cycle's sweep, when free pages first exist in bulk), so a program that never collects
// has no scavenger thread.
void startBackgroundScavenger(MHeap& h) {
  Background& b = background();
  std::lock_guard<std::mutex> lk(b.lock);
  b.stop = false;
  b.armed = &h;
}

void stopBackgroundScavenger() {
  Background& b = background();
  std::thread t;
  {
    std::lock_guard<std::mutex> lk(b.lock);
    b.stop = true;
    b.armed = nullptr;
    t = std::move(b.thread);
  }
  b.cv.notify_all();
  if (t.joinable()) t.join();
}

void setScavengeGoal(std::uint64_t bytes) { gGoal.store(bytes, std::memory_order_relaxed); }

void scavengerWake() {
  Background& b = background();
  {
    std::lock_guard<std::mutex> lk(b.lock);
    b.woken = true;
    if (b.armed != nullptr && !b.thread.joinable()) {
      b.thread = std::thread(backgroundLoop, b.armed);
      setThreadName(b.thread, "spindle-scvg");
    }
  }
  b.cv.notify_all();
}

namespace gc_detail {
void traceScavenge(std::uint64_t releasedBytes, bool flush) {
  if (!gcTraceOn()) return;
  static std::atomic<std::uint64_t> seq{0};  // lines printed
  static std::atomic<std::uint64_t> pending{0};  // released since the last line
  const std::uint64_t total = pending.fetch_add(releasedBytes, std::memory_order_relaxed) + releasedBytes;
  if (total == 0 || (!flush && total < (std::uint64_t{64} << 20))) return;
  // One printer takes what is pending (a racing one finds less, or nothing).
  releasedBytes = pending.exchange(0, std::memory_order_relaxed);
  if (releasedBytes == 0) return;
  MHeap& h = mheap();
  const HeapStatsSnapshot st = h.readStats();
  ScvgTrace t;
  t.seq = seq.fetch_add(1, std::memory_order_relaxed) + 1;
  t.released = releasedBytes;
  t.inuse = static_cast<std::uint64_t>(st.heapInUse + st.manualInUse);
  t.sys = st.heapSys;
  t.idle = st.heapIdle();
  t.heapReleased = h.scavengedPages() * kPageSize;
  printTo(stderr, "{}", formatScvgTrace(t));
}
}  // namespace gc_detail

std::uint64_t residentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int got = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return got == 2 ? resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace spindle::runtime
