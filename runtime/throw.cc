#include "runtime/throw.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "runtime/print.h"

namespace spindle::runtime {

namespace {
constexpr int kMaxFatalContexts = 8;
std::atomic<void (*)(std::FILE*)> gFatalContexts[kMaxFatalContexts];
std::atomic<int> gFatalContextCount{0};
std::atomic<bool> gDying{false};  // a fatal error is being reported
}  // namespace

void addFatalContext(void (*print)(std::FILE* out)) {
  const int i = gFatalContextCount.fetch_add(1);
  if (i < kMaxFatalContexts) gFatalContexts[i].store(print, std::memory_order_release);
}

void fatalMessage(std::string_view message, const SourceLocation& where) {
  // printTo stderr (a failed write is ignored), then flush: nothing after this point may
  // allocate on our heap.
  printTo(stderr, "fatal error: {}\n\tat {}:{} ({})\n", message, where.file,
          where.line, where.function);
  std::fflush(stderr);
  // The first fatal error prints the context; one raised while printing it (or racing
  // on another thread) does not print it again.
  if (!gDying.exchange(true)) {
    const int n = std::min(gFatalContextCount.load(), kMaxFatalContexts);
    for (int i = 0; i < n; ++i) {
      if (auto print = gFatalContexts[i].load(std::memory_order_acquire)) print(stderr);
    }
    std::fflush(stderr);
  }
  std::abort();
}

}  // namespace spindle::runtime
