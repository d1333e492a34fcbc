// pause_bench: stop-the-world pauses with a live heap held at 64 MiB, 256 MiB and 1 GiB
// while garbage is allocated (as much garbage as live data), and parallel allocation
// churn (objects per second) at 1 and 2 Ps; Spindle and Boehm side by side, each
// measurement in a child process of its own (peak RSS is per measurement).
//
// Live heap: a spine of nodes, each holding a binary tree of depth 10 (2047 nodes of
// 32 bytes), rooted in a Persistent handle (Spindle) or a global (Boehm). Garbage: trees
// of depth 6 (127 nodes) built and dropped. Spindle runs in a G of a 1-P scheduler
// attached to the collector, yielding between trees when preemption is requested or every
// 64 trees. Pause and cycle measurement: gc_bench_util.h.
//
// Churn: each P (Spindle: a G per P; Boehm: a registered thread per "P" with Boehm's
// thread-local allocation) allocates 16-byte objects holding one pointer and drops them.
// Boehm's thread registration API (threads are registered explicitly, not redirected).
#define GC_THREADS 1
#include <gc.h>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "benchmarks/gc_bench_util.h"
#include "runtime/handles.h"
#include "runtime/proc.h"

namespace {

namespace rt = spindle::runtime;
using gcbench::Clock;
using gcbench::inChild;

constexpr int kLiveTreeDepth = 10;
constexpr int kGarbageTreeDepth = 6;
constexpr std::size_t kNodeBytes = 32;
std::size_t treeNodes(int depth) { return (std::size_t{1} << (depth + 1)) - 1; }

// --- Boehm ---------------------------------------------------------------------------
struct BNode {
  BNode* left;
  BNode* right;
  long pad[2];
};
BNode* bnode(BNode* l, BNode* r) {
  auto* n = static_cast<BNode*>(GC_MALLOC(sizeof(BNode)));
  n->left = l;
  n->right = r;
  return n;
}
BNode* btree(int d) { return d <= 0 ? bnode(nullptr, nullptr) : bnode(btree(d - 1), btree(d - 1)); }
BNode* gBoehmLive = nullptr;

int boehmPauses(std::size_t liveMiB) {
  gcbench::BoehmRecorder::init();
  const std::size_t trees = (liveMiB << 20) / (treeNodes(kLiveTreeDepth) * kNodeBytes);
  const auto start = Clock::now();
  for (std::size_t i = 0; i < trees; i++) gBoehmLive = bnode(btree(kLiveTreeDepth), gBoehmLive);
  const std::size_t garbageTrees = (liveMiB << 20) / (treeNodes(kGarbageTreeDepth) * kNodeBytes);
  for (std::size_t i = 0; i < garbageTrees; i++) btree(kGarbageTreeDepth);
  const double s = std::chrono::duration<double>(Clock::now() - start).count();
  const gcbench::PauseSummary p = gcbench::summarize(gcbench::BoehmRecorder::pauses());
  fmt::print("{:>6} MiB  {:<8} {:>7.2f} s {:>5} pauses  max {:>9.3f} ms  p99 {:>9.3f} ms  peak RSS {:>7.1f} MiB\n",
             liveMiB, "Boehm", s, p.count, p.maxMs, p.p99Ms, gcbench::peakRssMiB());
  return gBoehmLive != nullptr ? 0 : 1;
}

// --- Spindle -------------------------------------------------------------------------
class SNode : public rt::GarbageCollected<SNode> {
 public:
  SNode() = default;
  SNode(SNode* l, SNode* r) : left(l), right(r) {}
  rt::Member<SNode> left, right;
  long pad = 0;
  void trace(rt::Visitor& v) const {
    v.trace(left);
    v.trace(right);
  }
};
SNode* stree(int d) { return d <= 0 ? rt::make<SNode>() : rt::make<SNode>(stree(d - 1), stree(d - 1)); }

class PauseBody final : public rt::GBody {
 public:
  PauseBody(gcbench::SpindleRecorder* rec, std::size_t liveTrees, std::size_t garbageTrees)
      : rec_(rec), liveTrees_(liveTrees), garbageTrees_(garbageTrees) {}
  rt::Step run(rt::G* g, std::uint32_t) override {
    for (int n = 0;; ++n) {
      if (n > 0 && (g->preemptRequested() || n >= 64)) {
        rec_->poll();
        return rt::Step::yield();
      }
      if (built_ < liveTrees_) {
        live_ = rt::make<SNode>(stree(kLiveTreeDepth), live_.get());
        ++built_;
      } else if (garbage_ < garbageTrees_) {
        stree(kGarbageTreeDepth);
        ++garbage_;
      } else {
        rec_->poll();
        ok = live_.get() != nullptr;
        live_.reset();
        return rt::Step::exit();
      }
    }
  }
  bool ok = false;

 private:
  gcbench::SpindleRecorder* rec_;
  std::size_t liveTrees_, garbageTrees_, built_ = 0, garbage_ = 0;
  rt::Persistent<SNode> live_;
};

int spindlePauses(std::size_t liveMiB) {
  rt::Sched sched(1);
  rt::gcAttach(&sched);
  int rc = 0;
  {
    gcbench::SpindleRecorder rec;
    PauseBody body(&rec, (liveMiB << 20) / (treeNodes(kLiveTreeDepth) * kNodeBytes),
                   (liveMiB << 20) / (treeNodes(kGarbageTreeDepth) * kNodeBytes));
    const auto start = Clock::now();
    sched.runMain(&body);
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    const gcbench::PauseSummary p = gcbench::summarize(rec.pauses());
    fmt::print("{:>6} MiB  {:<8} {:>7.2f} s {:>5} pauses  max {:>9.3f} ms  p99 {:>9.3f} ms  peak RSS {:>7.1f} MiB{}\n",
               liveMiB, "Spindle", s, p.count, p.maxMs, p.p99Ms, gcbench::peakRssMiB(),
               rec.cycles() == 0 ? "  (no cycle ran)" : "");
    if (rec.missed() > 0) fmt::print("  ({} STW pauses not sampled)\n", rec.missed());
    rc = body.ok ? 0 : 1;
  }
  rt::gcDetach(&sched);
  return rc;
}

// --- churn ---------------------------------------------------------------------------
constexpr std::uint64_t kChurnPerP = std::uint64_t{1} << 24;

class Cell : public rt::GarbageCollected<Cell> {
 public:
  rt::Member<Cell> next;
  void trace(rt::Visitor& v) const { v.trace(next); }
};

class ChurnBody final : public rt::GBody {
 public:
  explicit ChurnBody(std::atomic<int>* done) : done_(done) {}
  rt::Step run(rt::G*, std::uint32_t) override {
    Cell* prev = nullptr;
    for (int i = 0; i < 4096 && left_ > 0; i++, left_--) {
      Cell* c = rt::make<Cell>();
      c->next = prev;  // a pointer store through the barrier, then dropped
      prev = (i % 64 == 0) ? nullptr : c;
    }
    if (left_ > 0) return rt::Step::yield();
    done_->fetch_add(1);
    return rt::Step::exit();
  }
  void exited(rt::G*) override { delete this; }

 private:
  std::atomic<int>* done_;
  std::uint64_t left_ = kChurnPerP;
};

// Spawns one churn G per P and waits for them (yielding).
class ChurnMain final : public rt::GBody {
 public:
  ChurnMain(rt::Sched* s, int procs) : sched_(s), procs_(procs) {}
  rt::Step run(rt::G*, std::uint32_t) override {
    if (!started_) {
      started_ = true;
      for (int i = 0; i < procs_; i++) sched_->newproc(new ChurnBody(&done_));
    }
    return done_.load() == procs_ ? rt::Step::exit() : rt::Step::yield();
  }

 private:
  rt::Sched* sched_;
  int procs_;
  bool started_ = false;
  std::atomic<int> done_{0};
};

void printChurn(const char* name, int procs, double seconds) {
  const double rate = static_cast<double>(kChurnPerP) * procs / seconds;
  fmt::print("churn {} P  {:<8} {:>8.1f} M objects/s  ({:.2f} s)  peak RSS {:>7.1f} MiB\n", procs, name,
             rate / 1e6, seconds, gcbench::peakRssMiB());
  std::fflush(stdout);
}

int spindleChurn(int procs) {
  rt::Sched sched(procs);
  rt::gcAttach(&sched);
  ChurnMain main(&sched, procs);
  const auto start = Clock::now();
  sched.runMain(&main);
  printChurn("Spindle", procs, std::chrono::duration<double>(Clock::now() - start).count());
  rt::gcDetach(&sched);
  return 0;
}

struct BCell {
  BCell* next;
  void* pad;
};

int boehmChurn(int procs) {
  GC_INIT();
  GC_allow_register_threads();
  std::vector<std::thread> ts;
  const auto start = Clock::now();
  for (int t = 0; t < procs; t++) {
    ts.emplace_back([] {
      GC_stack_base sb;
      GC_get_stack_base(&sb);
      GC_register_my_thread(&sb);
      BCell* prev = nullptr;
      for (std::uint64_t i = 0; i < kChurnPerP; i++) {
        auto* c = static_cast<BCell*>(GC_MALLOC(sizeof(BCell)));
        c->next = prev;
        prev = (i % 64 == 0) ? nullptr : c;
      }
      GC_unregister_my_thread();
    });
  }
  for (auto& t : ts) t.join();
  printChurn("Boehm", procs, std::chrono::duration<double>(Clock::now() - start).count());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Optional: the largest live size in MiB (default 1024).
  const std::size_t maxMiB = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1024;
  fmt::print("pause_bench: live heap of trees (depth {}), as much garbage as live data\n", kLiveTreeDepth);
  int rc = 0;
  for (std::size_t mib : {64, 256, 1024}) {
    if (mib > maxMiB) break;
    rc |= inChild([mib] { return spindlePauses(mib); });
    rc |= inChild([mib] { return boehmPauses(mib); });
  }
  fmt::print("churn: {} objects of 16 bytes per P\n", kChurnPerP);
  for (int procs : {1, 2}) {
    rc |= inChild([procs] { return spindleChurn(procs); });
    rc |= inChild([procs] { return boehmChurn(procs); });
  }
  return rc;
}
