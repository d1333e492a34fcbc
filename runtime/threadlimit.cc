#include "runtime/threadlimit.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "runtime/print.h"

namespace spindle::runtime {

namespace {
std::atomic<int> gMaxThreads{kDefaultMaxThreads};
std::atomic<int> gBlocking{0};
}  // namespace

void setMaxThreads(int n) {
  gMaxThreads.store(n <= 0 ? kDefaultMaxThreads : n, std::memory_order_relaxed);
}

int maxThreads() { return gMaxThreads.load(std::memory_order_relaxed); }

bool acquireBlockingThread(int procs) {
  // The Ms that run fibers (one per P) and the host thread blocked in runMain (an M that
  // runs only its own G) must still fit.
  int allowed = maxThreads() - procs - 1;
  if (allowed < 1) allowed = 1;
  int n = gBlocking.load(std::memory_order_relaxed);
  do {
    if (n >= allowed) return false;
  } while (!gBlocking.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel,
                                            std::memory_order_relaxed));
  return true;
}

void releaseBlockingThread() { gBlocking.fetch_sub(1, std::memory_order_acq_rel); }

int blockingThreads() { return gBlocking.load(std::memory_order_relaxed); }

void threadExhaustion(int count, const char* osError) {
  std::fflush(stdout);
  if (osError != nullptr) {
    printTo(stderr, "runtime: failed to create new OS thread (have {}): {}\n", count, osError);
  } else {
    printTo(stderr, "runtime: program exceeds {}-thread limit\n", maxThreads());
  }
  printTo(stderr, "fatal error: thread exhaustion\n");
  std::fflush(stderr);
  _exit(2);
}

}  // namespace spindle::runtime
