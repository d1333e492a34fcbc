// GCBench (Ellis, Kovac, Boehm): the classic collector benchmark, run on each heap in a
// child process of its own so that peak RSS is measured per heap.
//
// Shape: a stretch tree of depth 18 (built, then dropped), a long-lived tree of depth 16
// and an array of 500000 doubles kept for the whole run, then for depths 4..16 step 2,
// NumIters(depth) trees built top-down (Populate) and as many bottom-up (MakeTree).
// Reported per heap: total time, GC cycles, max and p99 stop-the-world pause, peak RSS.
//
// Boehm runs the classic recursive C++ version. Spindle runs the same shape on its typed
// C++ API (runtime/handles.h) inside a G of a 1-P scheduler attached to the collector:
// trees are built within one run() call each (C++ locals are safe between two safepoints,
// gc.h), the long-lived tree and the array are held by Persistent handles, and the G
// yields between trees when preemption is requested (a stop-the-world or a stack scan)
// or every 64 trees. How pauses and cycles are read: gc_bench_util.h.
#include <fmt/format.h>
#include <gc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "benchmarks/gc_bench_util.h"
#include "runtime/handles.h"
#include "runtime/proc.h"

namespace {

using gcbench::Clock;
using gcbench::inChild;
namespace rt = spindle::runtime;

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
  static const char* name() { return "Boehm"; }
  static void init() { gcbench::BoehmRecorder::init(); }
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
  static std::vector<double> pauses() { return gcbench::BoehmRecorder::pauses(); }
};

void printRow(const char* name, double seconds, std::uint64_t cycles, const std::vector<double>& pausesNs,
              const char* note = "") {
  const gcbench::PauseSummary p = gcbench::summarize(pausesNs);
  fmt::print("{:<8} {:>8.3f} s {:>6} cycles  max pause {:>8.3f} ms  p99 {:>8.3f} ms  peak RSS {:>7.1f} MiB{}\n",
             name, seconds, cycles, p.maxMs, p.p99Ms, gcbench::peakRssMiB(), note);
  std::fflush(stdout);
}

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
  printRow(Heap::name(), seconds, Heap::cycles(), Heap::pauses());
  return 0;
}

// --- Spindle: the same shape on the typed C++ API, in a G ----------------------------

class SNode : public rt::GarbageCollected<SNode> {
 public:
  SNode() = default;
  SNode(SNode* l, SNode* r) : left(l), right(r) {}
  rt::Member<SNode> left, right;
  int i = 0, j = 0;
  void trace(rt::Visitor& v) const {
    v.trace(left);
    v.trace(right);
  }
};

class DoubleArray : public rt::GarbageCollected<DoubleArray> {  // noscan
 public:
  double* data() { return reinterpret_cast<double*>(this + 1); }
};

// Every 256 nodes a checkpoint: a pending stop-the-world proceeds in place
// (Sched::checkpoint) instead of waiting for the whole tree (a depth-18 tree is ~60 ms),
// as the VM's interpreter polls at calls and backward jumps.
template <typename... A>
SNode* snew(A... a) {
  static thread_local unsigned tick = 0;
  if ((++tick & 255) == 0) rt::Sched::checkpoint();
  return rt::make<SNode>(a...);
}

void spopulate(int depth, SNode* node) {
  if (depth <= 0) return;
  --depth;
  node->left = snew();
  node->right = snew();
  spopulate(depth, node->left.get());
  spopulate(depth, node->right.get());
}

SNode* smakeTree(int depth) {
  if (depth <= 0) return snew();
  SNode* l = smakeTree(depth - 1);
  SNode* r = smakeTree(depth - 1);
  return snew(l, r);
}

// The benchmark as a state machine: one tree per step.
class GCBenchBody final : public rt::GBody {
 public:
  explicit GCBenchBody(gcbench::SpindleRecorder* rec) : rec_(rec) {}
  rt::Step run(rt::G* g, std::uint32_t) override {
    for (int trees = 0;; ++trees) {
      if (trees > 0 && (g->preemptRequested() || trees >= 64)) {
        rec_->poll();
        return rt::Step::yield();
      }
      switch (phase_) {
        case Phase::Stretch:
          smakeTree(kStretchTreeDepth);
          phase_ = Phase::LongLived;
          break;
        case Phase::LongLived: {
          longLived_ = rt::make<SNode>();
          spopulate(kLongLivedTreeDepth, longLived_.get());
          auto* a = rt::makeSized<DoubleArray>(sizeof(DoubleArray) + sizeof(double) * kArraySize);
          for (int i = 0; i < kArraySize / 2; ++i) a->data()[i] = 1.0 / i;
          array_ = a;
          depth_ = kMinTreeDepth;
          iter_ = 0;
          phase_ = Phase::TopDown;
          break;
        }
        case Phase::TopDown:
          spopulate(depth_, rt::make<SNode>());
          if (++iter_ == numIters(depth_)) {
            iter_ = 0;
            phase_ = Phase::BottomUp;
          }
          break;
        case Phase::BottomUp:
          smakeTree(depth_);
          if (++iter_ == numIters(depth_)) {
            iter_ = 0;
            depth_ += 2;
            phase_ = depth_ > kMaxTreeDepth ? Phase::Done : Phase::TopDown;
          }
          break;
        case Phase::Done:
          rec_->poll();
          ok = longLived_.get() != nullptr && array_->data()[1000] == 1.0 / 1000;
          longLived_.reset();
          array_.reset();
          return rt::Step::exit();
      }
    }
  }
  bool ok = false;

 private:
  enum class Phase { Stretch, LongLived, TopDown, BottomUp, Done };
  gcbench::SpindleRecorder* rec_;
  Phase phase_ = Phase::Stretch;
  int depth_ = 0, iter_ = 0;
  rt::Persistent<SNode> longLived_;
  rt::Persistent<DoubleArray> array_;
};

int runSpindle() {
  rt::Sched sched(1);
  rt::gcAttach(&sched);
  if (std::getenv("GCBENCH_GCPERCENT")) rt::setGCPercent(std::atoi(std::getenv("GCBENCH_GCPERCENT")));
  int rc = 0;
  {
    gcbench::SpindleRecorder rec;
    GCBenchBody body(&rec);
    const auto start = Clock::now();
    sched.runMain(&body);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (!body.ok) {
      fmt::print(stderr, "Spindle: the long-lived data did not survive\n");
      rc = 1;
    }
    printRow("Spindle", seconds, rec.cycles(), rec.pauses(),
             rec.cycles() == 0 ? "  (no cycle ran)" : "");
    if (const auto& w = rec.longestStop(); w.totalNs > 0)
      fmt::print("  longest stop: cycle {} {}: to safepoint {:.3f} ms + stopped {:.3f} ms\n", w.cycle, w.phase,
                 w.toSafepointNs / 1e6, w.workNs / 1e6);
    if (rec.missed() > 0) fmt::print("  ({} STW pauses not sampled)\n", rec.missed());
  }
  rt::gcDetach(&sched);
  return rc;
}

}  // namespace

// Arguments: none (both heaps), or "spindle" / "boehm" (one, e.g. under perf).
int main(int argc, char** argv) {
  const bool spindle = argc < 2 || std::strcmp(argv[1], "boehm") != 0;
  const bool boehm = argc < 2 || std::strcmp(argv[1], "spindle") != 0;
  fmt::print("GCBench: stretch tree {}, long-lived tree {}, array {} doubles, trees {}..{}\n",
             kStretchTreeDepth, kLongLivedTreeDepth, kArraySize, kMinTreeDepth, kMaxTreeDepth);
  int rc = 0;
  if (spindle) rc |= inChild(runSpindle);
  if (boehm) rc |= inChild(runOne<BoehmHeap>);
  return rc;
}
