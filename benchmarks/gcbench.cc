// GCBench (Ellis, Kovac, Boehm): the classic collector benchmark, run on each heap in a
// child process of its own so that peak RSS is measured per heap.
//
// Shape: a stretch tree of depth 18 (built, then dropped), a long-lived tree of depth 16
// and an array of 500000 doubles kept for the whole run, then for depths 4..16 step 2,
// NumIters(depth) trees built top-down (Populate) and as many bottom-up (MakeTree).
// Reported per heap: total time, GC cycles, max and p99 stop-the-world pause, peak RSS.
//
// Each heap is a policy with: init(), Node* newNode(l, r), double* newArray(n), cycles(),
// pauses() (nanoseconds of each stop-the-world pause). Spindle's policy joins when the
// collector lands; until then only Boehm runs.
#include <fmt/format.h>
#include <gc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr int kStretchTreeDepth = 18;
constexpr int kLongLivedTreeDepth = 16;
constexpr int kArraySize = 500000;
constexpr int kMinTreeDepth = 4;
constexpr int kMaxTreeDepth = 16;

struct Node {
  Node* left;
  Node* right;
  int i, j;
};

int treeSize(int depth) { return (1 << (depth + 1)) - 1; }
int numIters(int depth) { return 2 * treeSize(kStretchTreeDepth) / treeSize(depth); }

using Clock = std::chrono::steady_clock;

// --- Boehm GC ----------------------------------------------------------------------

struct BoehmHeap {
  static inline std::vector<double> pausesNs;
  static inline Clock::time_point pauseStart;

  static void onEvent(GC_EventType event) {
    if (event == GC_EVENT_START) pauseStart = Clock::now();
    if (event == GC_EVENT_END) {
      pausesNs.push_back(
          std::chrono::duration<double, std::nano>(Clock::now() - pauseStart).count());
    }
  }
  static const char* name() { return "Boehm"; }
  static void init() {
    GC_INIT();
    GC_set_on_collection_event(onEvent);
  }
  static Node* newNode(Node* l, Node* r) {
    auto* n = static_cast<Node*>(GC_MALLOC(sizeof(Node)));
    n->left = l;
    n->right = r;
    return n;
  }
  static double* newArray(int n) {
    return static_cast<double*>(GC_MALLOC_ATOMIC(sizeof(double) * static_cast<size_t>(n)));
  }
  static unsigned long cycles() { return GC_get_gc_no(); }
  static std::vector<double> pauses() { return pausesNs; }
};

// --- the benchmark, generic over the heap --------------------------------------------

template <class Heap>
void populate(int depth, Node* node) {
  if (depth <= 0) return;
  --depth;
  node->left = Heap::newNode(nullptr, nullptr);
  node->right = Heap::newNode(nullptr, nullptr);
  populate<Heap>(depth, node->left);
  populate<Heap>(depth, node->right);
}

template <class Heap>
Node* makeTree(int depth) {
  if (depth <= 0) return Heap::newNode(nullptr, nullptr);
  Node* l = makeTree<Heap>(depth - 1);
  Node* r = makeTree<Heap>(depth - 1);
  return Heap::newNode(l, r);
}

template <class Heap>
void timeConstruction(int depth) {
  const int iters = numIters(depth);
  for (int i = 0; i < iters; ++i) {
    Node* temp = Heap::newNode(nullptr, nullptr);
    populate<Heap>(depth, temp);
  }
  for (int i = 0; i < iters; ++i) makeTree<Heap>(depth);
}

template <class Heap>
int runOne() {
  Heap::init();
  const auto start = Clock::now();
  makeTree<Heap>(kStretchTreeDepth);
  Node* longLived = Heap::newNode(nullptr, nullptr);
  populate<Heap>(kLongLivedTreeDepth, longLived);
  double* array = Heap::newArray(kArraySize);
  for (int i = 0; i < kArraySize / 2; ++i) array[i] = 1.0 / i;
  for (int d = kMinTreeDepth; d <= kMaxTreeDepth; d += 2) timeConstruction<Heap>(d);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (longLived == nullptr || array[1000] != 1.0 / 1000) {
    fmt::print(stderr, "{}: the long-lived data did not survive\n", Heap::name());
    return 1;
  }
  std::vector<double> p = Heap::pauses();
  std::sort(p.begin(), p.end());
  const double maxMs = p.empty() ? 0 : p.back() / 1e6;
  const double p99Ms = p.empty() ? 0 : p[std::min(p.size() - 1, p.size() * 99 / 100)] / 1e6;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  fmt::print("{:<8} {:>8.3f} s {:>6} cycles  max pause {:>8.3f} ms  p99 {:>8.3f} ms  peak RSS {:>6.1f} MiB\n",
             Heap::name(), seconds, Heap::cycles(), maxMs, p99Ms, usage.ru_maxrss / 1024.0);
  std::fflush(stdout);
  return 0;
}

// Runs fn in a child process so each heap's peak RSS is its own.
template <class Fn>
int inChild(Fn fn) {
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    return 1;
  }
  if (pid == 0) _exit(fn());
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

}  // namespace

int main() {
  fmt::print("GCBench: stretch tree {}, long-lived tree {}, array {} doubles, trees {}..{}\n",
             kStretchTreeDepth, kLongLivedTreeDepth, kArraySize, kMinTreeDepth, kMaxTreeDepth);
  int rc = 0;
  rc |= inChild(runOne<BoehmHeap>);
  return rc;
}
