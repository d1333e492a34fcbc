#include "runtime/throw.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <csignal>

#include <unistd.h>

#include "runtime/print.h"

namespace spindle::runtime {

namespace {
constexpr int kMaxFatalContexts = 8;
std::atomic<void (*)(std::FILE*)> gFatalContexts[kMaxFatalContexts];
std::atomic<int> gFatalContextCount{0};
std::atomic<bool> gDying{false};  // a fatal error is being reported

// The first caller prints the registered context; a later one (a fatal error raised while
// printing it, or racing on another thread) does not print it again.
void printFatalContextOnce() {
  if (gDying.exchange(true)) return;
  const int n = std::min(gFatalContextCount.load(), kMaxFatalContexts);
  for (int i = 0; i < n; ++i) {
    if (auto print = gFatalContexts[i].load(std::memory_order_acquire)) print(stderr);
  }
}

// Runs on whichever thread took the signal, maybe with runtime locks held or inside
// stdio: the context printers take no lock and write raw (printNoHeap), and so does this.
void onQuit(int) {
  writeRaw(stderr, "SIGQUIT: quit\n");
  printFatalContextOnce();
  _exit(2);
}
}  // namespace

void installQuitHandler() {
  struct sigaction sa {};
  sa.sa_handler = &onQuit;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGQUIT, &sa, nullptr);
}

void addFatalContext(void (*print)(std::FILE* out)) {
  const int i = gFatalContextCount.fetch_add(1);
  if (i < kMaxFatalContexts) gFatalContexts[i].store(print, std::memory_order_release);
}

void fatalMessage(std::string_view message, const SourceLocation& where) {
  // printTo stderr (a failed write is ignored), then flush: the context printers write
  // past stdio, and nothing after this point may allocate on our heap.
  printTo(stderr, "fatal error: {}\n\tat {}:{} ({})\n", message, where.file,
          where.line, where.function);
  std::fflush(stderr);
  printFatalContextOnce();
  std::abort();
}

}  // namespace spindle::runtime
