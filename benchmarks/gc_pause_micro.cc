// gc_pause_micro: STW pauses of Spindle's concurrent collector for one configuration,
// side by side with Boehm GC (stop-the-world mark-sweep) on the same workload, same run.
//
// Workload: a live heap of binary trees (LIVE_MB, default 64 MiB) held by a root, then
// GARBAGE_MB (default 1024) of short-lived trees of depth 6 allocated on 2 Ps (Spindle:
// two Gs; Boehm: the main thread). Spindle: every STW pause (two per cycle) from
// gcStats(); Boehm: each collection's GC_EVENT_START..GC_EVENT_END (its whole
// collection is a pause). Prints max and p99 pause, cycles and wall time for each.
// Run: bazel run -c opt //benchmarks:gc_pause_micro [-- LIVE_MB GARBAGE_MB]
#include <fmt/format.h>
#include <gc/gc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/gc.h"
#include "runtime/malloc.h"
#include "runtime/proc.h"

using namespace spindle::runtime;

namespace {

struct Node {
  ObjectHeader h;
  Node* left;
  Node* right;
};
void traceNode(void* obj, VisitFn visit, void* ctx) {
  auto* n = static_cast<Node*>(obj);
  visit(ctx, reinterpret_cast<void**>(&n->left));
  visit(ctx, reinterpret_cast<void**>(&n->right));
}
const TypeInfo kNode{"Node", sizeof(Node), traceNode};

// Built bottom-up: children exist before the parent, plain stores into a fresh (black)
// object need no barrier.
Node* tree(int depth) {
  auto* n = static_cast<Node*>(mallocgc(sizeof(Node), &kNode));
  if (depth > 0) {
    Node* l = tree(depth - 1);
    Node* r = tree(depth - 1);
    writePointer(reinterpret_cast<void**>(&n->left), l);
    writePointer(reinterpret_cast<void**>(&n->right), r);
  }
  return n;
}
struct BNode {
  BNode* left;
  BNode* right;
  void* pad;
};
BNode* btree(int depth) {
  auto* n = static_cast<BNode*>(GC_MALLOC(sizeof(BNode)));
  if (depth > 0) {
    n->left = btree(depth - 1);
    n->right = btree(depth - 1);
  }
  return n;
}

// A G body from a callable: void() runs once; bool() runs until it returns true.
template <typename F>
struct LambdaBody final : GBody {
  F f;
  explicit LambdaBody(F fn) : f(std::move(fn)) {}
  Step run(G*, std::uint32_t) override {
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      return Step::exit();
    } else {
      return f() ? Step::exit() : Step::yield();
    }
  }
  void exited(G*) override { delete this; }
};
template <typename F>
GBody* testingFn(F f) {
  return new LambdaBody<F>(std::move(f));
}

std::vector<void*> gLive;
void scanLive(void*, VisitFn visit, void* ctx) {
  for (auto& p : gLive) visit(ctx, &p);
}

struct Result {
  double seconds;
  std::uint64_t cycles;
  std::int64_t maxNs, p99Ns;
};

Result summarize(std::vector<std::int64_t> p, double secs, std::uint64_t cycles) {
  std::sort(p.begin(), p.end());
  Result r{secs, cycles, p.empty() ? 0 : p.back(), 0};
  if (!p.empty()) r.p99Ns = p[std::min(p.size() - 1, p.size() * 99 / 100)];
  return r;
}

constexpr std::size_t kTreeBytes6 = ((1 << 7) - 1) * 32;  // depth-6 tree, 32-B nodes

Result runSpindle(std::size_t liveMB, std::size_t garbageMB) {
  Sched s(2);
  const int rid = registerRoots(scanLive, nullptr);
  gcAttach(&s);
  const auto t0 = std::chrono::steady_clock::now();
  const int liveTrees = static_cast<int>((liveMB << 20) / (((1 << 13) - 1) * 32));
  gLive.assign(static_cast<std::size_t>(liveTrees), nullptr);
  // One tree per run(): a safepoint between trees (an interpreter has one per call).
  s.runMain(testingFn([&, i = std::size_t{0}]() mutable -> bool {
    writePointer(&gLive[i], tree(12));
    return ++i == gLive.size();
  }));
  const std::uint64_t c0 = gcStats().cycles;
  const std::size_t pauses0 = gcStats().pausesNs.size();
  const std::size_t perG = (garbageMB << 20) / kTreeBytes6 / 2;
  std::atomic<int> done{0};
  struct Churn final : GBody {
    std::size_t left;
    std::atomic<int>* done;
    Step run(G*, std::uint32_t) override {
      for (int i = 0; i < 16 && left > 0; i++, left--) tree(6);
      if (left > 0) return Step::yield();
      done->fetch_add(1);
      return Step::exit();
    }
  };
  Churn a, b;
  a.left = b.left = perG;
  a.done = b.done = &done;
  s.runMain(testingFn([&, pc = 0]() mutable -> bool {
    if (pc++ == 0) {
      s.newproc(&a);
      s.newproc(&b);
    }
    return done.load() == 2;
  }));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  GCStats st = gcStats();
  gcDetach(&s);
  unregisterRoots(rid);
  std::vector<std::int64_t> p(st.pausesNs.begin() + static_cast<std::ptrdiff_t>(std::min(pauses0, st.pausesNs.size())),
                              st.pausesNs.end());
  return summarize(p, secs, st.cycles - c0);
}

std::vector<std::int64_t> gBoehmPauses;
std::chrono::steady_clock::time_point gBoehmStart;
void onBoehmEvent(GC_EventType e) {
  if (e == GC_EVENT_START) gBoehmStart = std::chrono::steady_clock::now();
  if (e == GC_EVENT_END)
    gBoehmPauses.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now() - gBoehmStart).count());
}

Result runBoehm(std::size_t liveMB, std::size_t garbageMB) {
  GC_INIT();
  GC_set_on_collection_event(onBoehmEvent);
  const auto t0 = std::chrono::steady_clock::now();
  const int liveTrees = static_cast<int>((liveMB << 20) / (((1 << 13) - 1) * 32));
  auto** live = static_cast<BNode**>(GC_MALLOC(sizeof(BNode*) * static_cast<std::size_t>(liveTrees)));
  for (int i = 0; i < liveTrees; i++) live[i] = btree(12);
  const std::size_t before = gBoehmPauses.size();
  const std::uint64_t c0 = GC_get_gc_no();
  const std::size_t n = (garbageMB << 20) / kTreeBytes6;
  for (std::size_t i = 0; i < n; i++) btree(6);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<std::int64_t> p(gBoehmPauses.begin() + static_cast<std::ptrdiff_t>(before), gBoehmPauses.end());
  GC_reachable_here(live);
  return summarize(p, secs, GC_get_gc_no() - c0);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t liveMB = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 64;
  const std::size_t garbageMB = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1024;
  fmt::print("live heap {} MiB, garbage {} MiB (depth-6 trees), gc_percent 100\n", liveMB, garbageMB);
  const Result s = runSpindle(liveMB, garbageMB);
  const Result b = runBoehm(liveMB, garbageMB);
  fmt::print("{:<10} {:>8} {:>8} {:>12} {:>12}\n", "", "time s", "cycles", "max pause", "p99 pause");
  fmt::print("{:<10} {:>8.3f} {:>8} {:>9.3f} ms {:>9.3f} ms\n", "spindle", s.seconds, s.cycles,
             static_cast<double>(s.maxNs) / 1e6, static_cast<double>(s.p99Ns) / 1e6);
  fmt::print("{:<10} {:>8.3f} {:>8} {:>9.3f} ms {:>9.3f} ms\n", "boehm", b.seconds, b.cycles,
             static_cast<double>(b.maxNs) / 1e6, static_cast<double>(b.p99Ns) / 1e6);
  fmt::print("max pause ratio spindle/boehm: {:.3f}\n",
             b.maxNs > 0 ? static_cast<double>(s.maxNs) / static_cast<double>(b.maxNs) : 0.0);
  return 0;
}
