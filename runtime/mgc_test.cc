// mgc_test.cc: the concurrent collector (mgc*.cc) with a Sched attached.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "runtime/chan.h"
#include "runtime/gc.h"
#include "runtime/gcevents.h"
#include "runtime/heap_testing.h"
#include "runtime/malloc.h"
#include "runtime/mheap.h"
#include "runtime/pheap.h"
#include "runtime/proc.h"
#include "runtime/testing/child.h"
#include "runtime/testing/fnbody.h"

using namespace spindle::runtime;
using spindle::runtime::testing::fn;
using spindle::runtime::testing::kScale;

namespace {

// A scan object: kids[0..1] point at nodes of the same G (walked and checked by it),
// kids[2..3] at any node (only held).
struct Node {
  ObjectHeader h;
  void* kids[4];
  std::uint64_t id;
  std::uint64_t check;
};
std::uint64_t hashId(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x | 1;
}
void traceNode(void* obj, VisitFn visit, void* ctx) {
  auto* n = static_cast<Node*>(obj);
  for (auto& k : n->kids) visit(ctx, &k);
}
const TypeInfo kNode{"Node", sizeof(Node), traceNode};

std::atomic<std::uint64_t> gNextId{1};

Node* newNode() {
  auto* n = static_cast<Node*>(mallocgc(sizeof(Node), &kNode));
  n->id = gNextId.fetch_add(1, std::memory_order_relaxed);
  n->check = hashId(n->id);
  return n;
}

void checkNode(const Node* n) {
  REQUIRE(n->h.type == &kNode);
  REQUIRE(n->check == hashId(n->id));
}

// Global roots: slots written through writePointer, scanned by a registered scanner.
constexpr int kShared = 64;
void* gShared[kShared];
void scanShared(void*, VisitFn visit, void* ctx) {
  for (auto& s : gShared) visit(ctx, &s);
}

// Attaches a Sched for a test and resets the verification modes after it.
struct World {
  explicit World(int procs) : s(procs) {
    for (auto& x : gShared) x = nullptr;
    rootId = registerRoots(scanShared, nullptr);
    gcAttach(&s);
  }
  ~World() {
    gcDetach(&s);
    unregisterRoots(rootId);
    setGCStress(0);
    setCheckmark(false);
    setGCStopTheWorld(false);
    setGCPercent(100);
  }
  Sched s;
  int rootId;
};

// A mutator G: S and foreign are its stack (reported by traceStack); it links, unlinks,
// loads and publishes nodes through the barrier, and checks every node it can reach
// through same-G edges.
class Mutator final : public GBody {
 public:
  // Runs `steps` steps, and on until the collector completed cycle `untilCycle`, so
  // several cycles overlap the mutation however fast or slow this machine is.
  Mutator(std::uint32_t seed, int steps, std::uint64_t untilCycle, std::atomic<int>* done)
      : rng_(seed), steps_(steps), untilCycle_(untilCycle), done_(done) {}
  Step run(G*, std::uint32_t) override {
    for (int op = 0; op < 64; op++) step();
    walk();
    return (--steps_ > 0 || gcStats().cycles < untilCycle_) ? Step::yield() : Step::exit();
  }
  void traceStack(G*, VisitFn visit, void* ctx) override {
    for (auto& n : S_) visit(ctx, reinterpret_cast<void**>(&n));
    for (auto& n : foreign_) visit(ctx, &n);
  }
  void exited(G*) override {
    done_->fetch_add(1);
    delete this;
  }
  void abandoned(G*) override { delete this; }

 private:
  int pick(int n) { return static_cast<int>(rng_() % static_cast<std::uint32_t>(n)); }
  void step() {
    const int i = pick(kS), j = pick(kS);
    switch (pick(8)) {
      case 0:
      case 1:
        S_[i] = newNode();
        break;
      case 2:  // link same-G nodes (heap write: barrier)
        if (S_[i] && S_[j]) writePointer(&S_[i]->kids[pick(2)], S_[j]);
        break;
      case 3:  // unlink
        if (S_[i]) writePointer(&S_[i]->kids[pick(2)], nullptr);
        break;
      case 4:  // load from the heap onto the stack (no barrier), then drop the edge
        if (S_[j]) {
          void** slot = &S_[j]->kids[pick(2)];
          S_[i] = static_cast<Node*>(std::atomic_ref<void*>(*slot).load(std::memory_order_relaxed));
          writePointer(slot, nullptr);
        }
        break;
      case 5:  // publish to a global root
        writePointer(&gShared[pick(kShared)], S_[i]);
        break;
      case 6: {  // take any node from a global root and hold it / store it (never read)
        void* f = std::atomic_ref<void*>(gShared[pick(kShared)]).load(std::memory_order_relaxed);
        foreign_[pick(kF)] = f;
        if (S_[i]) writePointer(&S_[i]->kids[2 + pick(2)], foreign_[pick(kF)]);
        break;
      }
      case 7:
        S_[i] = nullptr;
        break;
    }
  }
  void walk() {
    std::vector<Node*> stack(S_, S_ + kS);
    int budget = 256;
    while (!stack.empty() && budget-- > 0) {
      Node* n = stack.back();
      stack.pop_back();
      if (n == nullptr) continue;
      checkNode(n);
      for (int k = 0; k < 2; k++)
        stack.push_back(static_cast<Node*>(std::atomic_ref<void*>(n->kids[k]).load(std::memory_order_relaxed)));
    }
  }
  static constexpr int kS = 16, kF = 8;
  Node* S_[kS] = {};
  void* foreign_[kF] = {};
  std::minstd_rand rng_;
  int steps_;
  std::uint64_t untilCycle_;
  std::atomic<int>* done_;
};

// Runs `n` mutators to completion from a main G that waits by yielding; at least three
// cycles complete while they run (callers set gcstress).
void runMutators(Sched& s, int n, int steps) {
  std::atomic<int> done{0};
  const std::uint64_t untilCycle = gcStats().cycles + 3;
  RunStatus st = s.runMain(fn([pc = 0, &s, &done, n, steps, untilCycle](G*) mutable -> Step {
    if (pc++ == 0) {
      for (int i = 0; i < n; i++)
        s.newproc(new Mutator(1234u + static_cast<std::uint32_t>(i), steps, untilCycle, &done));
    }
    return done.load() == n ? Step::exit() : Step::yield();
  }));
  REQUIRE(st == RunStatus::Ok);
}

}  // namespace

TEST_CASE("unreachable objects are freed and their memory reused") {
  World w(2);
  const int kKeep = 100, kGarbage = 20000 * kScale;
  std::unordered_set<std::uintptr_t> garbage;
  // Pacing off: only the explicit gcCollects below run, so how much the heap holds at each
  // step does not depend on when a paced cycle happens to start (a loaded machine delays
  // the controller and the mutator runs far past the goal).
  setGCPercent(-1);
  // A cycle may still be finishing from an earlier test: count from before.
  const std::uint8_t nodeClass = sizeToClass(sizeof(Node));
  const std::int64_t freedBefore = mheap().readStats().smallFreeCount[nodeClass];
  RunStatus st = w.s.runMain(fn([&](G*) -> Step {
    for (int i = 0; i < kKeep; i++) writePointer(&gShared[i % kShared], newNode());
    for (int i = 0; i < kGarbage; i++) garbage.insert(reinterpret_cast<std::uintptr_t>(newNode()));
    return Step::exit();
  }));
  REQUIRE(st == RunStatus::Ok);
  const std::int64_t inUse = mheap().readStats().heapInUse;  // with all the garbage
  gcCollect();  // from the host thread (no P)
  gcCollect();
  const std::int64_t freed = mheap().readStats().smallFreeCount[nodeClass] - freedBefore;
  CHECK(freed >= std::int64_t{kGarbage} * 9 / 10);
  for (void* p : gShared) checkNode(static_cast<Node*>(p));
  // As much garbage again: it lands in the freed memory (freed slots, or the pages of
  // freed spans), so the heap ends no bigger than it was with the first garbage.
  int reused = 0;
  st = w.s.runMain(fn([&](G*) -> Step {
    for (int i = 0; i < kGarbage; i++) reused += garbage.count(reinterpret_cast<std::uintptr_t>(newNode()));
    return Step::exit();
  }));
  CHECK(reused > 0);
  const std::int64_t grown = std::max<std::int64_t>(mheap().readStats().heapInUse - inUse, 0);
  MESSAGE("reused addresses " << reused << "/" << kGarbage << ", heap grew " << grown
                              << " bytes beyond its size with the first garbage, for "
                              << std::uint64_t{kGarbage} * sizeof(Node) << " bytes of new objects");
  CHECK(grown < std::int64_t{kGarbage} * std::int64_t{sizeof(Node)} / 4);
  verifyHeap();
  GCStats gs = gcStats();
  CHECK(gs.cycles >= 2);
  CHECK(gs.pausesNs.size() >= 4);
  setGCPercent(100);
}

TEST_CASE("gcCollect from a G at a safepoint keeps what its stack holds") {
  World w(2);
  struct Holder final : GBody {
    Node* held[32] = {};
    int pc = 0;
    Step run(G*, std::uint32_t) override {
      if (pc == 0) {
        for (auto& h : held) h = newNode();
        for (int i = 0; i < 5000; i++) newNode();  // garbage
      } else if (pc <= 3) {
        gcCollect();  // scanned while it waits (gcAtSafepoint)
        for (auto* h : held) checkNode(h);
        for (int i = 0; i < 5000; i++) newNode();
      } else {
        return Step::exit();
      }
      pc++;
      return Step::yield();
    }
    void traceStack(G*, VisitFn visit, void* ctx) override {
      for (auto& h : held) visit(ctx, reinterpret_cast<void**>(&h));
    }
  } holder;
  REQUIRE(w.s.runMain(&holder) == RunStatus::Ok);
  for (auto* h : holder.held) checkNode(h);
  CHECK(gcStats().stacksScannedByCollector > 0);
  verifyHeap();
}

TEST_CASE("mutators racing the barrier under gcstress with checkmark: nothing reachable is freed") {
  World w(3);
  setCheckmark(true);
  setGCStress(3, GCStressMode::Continuous);
  const GCStats before = gcStats();
  runMutators(w.s, 4, 40 * kScale);
  setGCStress(0);
  gcCollect();
  const GCStats after = gcStats();
  MESSAGE("cycles: " << after.cycles - before.cycles << ", checkmarked objects: "
                     << after.checkmarkObjects - before.checkmarkObjects);
  CHECK(after.cycles - before.cycles >= 3);
  CHECK(after.checkmarkObjects > before.checkmarkObjects);
  CHECK(after.stacksScannedByCollector + after.stacksScannedBeforeRun >
        before.stacksScannedByCollector + before.stacksScannedBeforeRun);
  // Everything still reachable from the global roots is intact (single-threaded walk).
  std::vector<void*> stack(gShared, gShared + kShared);
  std::unordered_set<void*> seen;
  while (!stack.empty()) {
    void* p = stack.back();
    stack.pop_back();
    if (p == nullptr || !seen.insert(p).second) continue;
    checkNode(static_cast<Node*>(p));
    for (void* k : static_cast<Node*>(p)->kids) stack.push_back(k);
  }
  verifyHeap();
}

TEST_CASE("lazy mcache flushing: both acquireP and forEachP flush, stale spans swept by uncacheSpan") {
  World w(4);
  setGCStress(4, GCStressMode::Continuous);
  const GCStats before = gcStats();
  runMutators(w.s, 2, 30 * kScale);
  setGCStress(0);
  gcCollect();
  const GCStats after = gcStats();
  MESSAGE("flushes: acquireP " << after.flushesAcquireP - before.flushesAcquireP << ", forEachP "
                               << after.flushesForEachP - before.flushesForEachP << ", uncache sweeps "
                               << after.sweptByUncache - before.sweptByUncache);
  CHECK(after.flushesAcquireP > before.flushesAcquireP);
  CHECK(after.flushesForEachP > before.flushesForEachP);
  CHECK(after.sweptByUncache > before.sweptByUncache);
  CHECK(after.sweptBackground + after.sweptProportional > before.sweptBackground + before.sweptProportional);
  verifyHeap();
}

TEST_CASE("the heap follows gc_percent") {
  // Live: kLive bytes of 8 KiB noscan objects held by a root; then garbage of the same size.
  const std::size_t kObj = 8 << 10;
  const std::size_t kLive = std::size_t{16} << 20;
  const int nLive = static_cast<int>(kLive / kObj);
  std::vector<void*> live(static_cast<std::size_t>(nLive));
  auto scanLive = [](void* ctx, VisitFn visit, void* vctx) {
    for (auto& p : *static_cast<std::vector<void*>*>(ctx)) visit(vctx, &p);
  };
  const int id = registerRoots(scanLive, &live);
  std::uint64_t cycles[3] = {};
  const int percents[3] = {50, 100, 200};
  for (int k = 0; k < 3; k++) {
    World w(2);
    setGCPercent(percents[k]);
    std::uint64_t peak = 0, maxGoal = 0;
    RunStatus st = w.s.runMain(fn([&](G*) -> Step {
      for (auto& p : live) writePointer(&p, mallocgc(kObj, nullptr));
      return Step::exit();
    }));
    REQUIRE(st == RunStatus::Ok);
    gcCollect();  // the goal now reflects the live heap
    const std::uint64_t cycles0 = gcStats().cycles;
    st = w.s.runMain(fn([&, n = 0](G*) mutable -> Step {
      // A safepoint every 32 allocations (256 KiB), as an interpreter would have.
      for (int i = 0; i < 32; i++) {
        mallocgc(kObj, nullptr);
        peak = std::max<std::uint64_t>(peak, mheap().heapLive.load(std::memory_order_relaxed));
      }
      maxGoal = std::max(maxGoal, gcStats().heapGoal);
      return ++n < 100 * kScale ? Step::yield() : Step::exit();
    }));
    REQUIRE(st == RunStatus::Ok);

    cycles[k] = gcStats().cycles - cycles0;
    const double bound = static_cast<double>(kLive) * (1 + percents[k] / 100.0);
    MESSAGE("gc_percent " << percents[k] << ": peak heapLive " << (peak >> 20) << " MiB, L*(1+p/100) "
                          << bound / (1 << 20) << " MiB, largest goal " << (maxGoal >> 20) << " MiB, cycles "
                          << cycles[k]);
    // The pacer's goal is exactly live * (1 + p/100) after a cycle that found only L.
    const GCStats gs = gcStats();
    CHECK(gs.heapGoal == std::max<std::uint64_t>(4 << 20, gs.heapMarked + gs.heapMarked * static_cast<std::uint64_t>(percents[k]) / 100));
    // A G allocating past the goal is parked at its next safepoint until mark
    // termination, so the heap overshoots the goal only by what is allocated while a
    // cycle starts and marks; the slack allows for a slow (loaded, sanitized) mark. The
    // goal is L * (1 + p/100) plus, as in Go, what the last mark allocated black (L
    // alone when the mark is quick; more when a slow mark overlapped much allocation).
    CHECK(static_cast<double>(peak) <= static_cast<double>(std::max<std::uint64_t>(maxGoal, static_cast<std::uint64_t>(bound))) * 1.25 + (4 << 20));
    CHECK(static_cast<double>(peak) >= static_cast<double>(kLive));
    for (auto& p : live) writePointer(&p, nullptr);  // the collector may be scanning it
  }
  CHECK(cycles[0] > cycles[2]);  // a lower gc_percent collects more often
  unregisterRoots(id);
}

TEST_CASE("gctrace prints one line per cycle in Go's format") {
  World w(2);
  std::fflush(stderr);
  char path[] = "/tmp/gctraceXXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  const int saved = dup(2);
  dup2(fd, 2);
  setGCTrace(true);
  gcCollect();
  gcCollect();
  setGCTrace(false);
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::ifstream in(path);
  std::string line;
  // gc N @T s P%: A+B+C ms clock, a+b/c/d+e ms cpu, X->Y->Z MB, G MB goal, S MB stacks,
  // R MB globals, K P (forced)
  int lines = 0;
  while (std::getline(in, line)) {
    INFO(line);
    unsigned n, pct, x, y, z, goal, stacks, globals, procs;
    double t, a, b, c, ca, cb, cc, cd, ce;
    char sec = 0;
    int used = 0;
    const int fields = std::sscanf(
        line.c_str(),
        "gc %u @%lf%c %u%%: %lf+%lf+%lf ms clock, %lf+%lf/%lf/%lf+%lf ms cpu, %u->%u->%u MB, %u MB goal, "
        "%u MB stacks, %u MB globals, %u P (forced)%n",
        &n, &t, &sec, &pct, &a, &b, &c, &ca, &cb, &cc, &cd, &ce, &x, &y, &z, &goal, &stacks, &globals, &procs,
        &used);
    CHECK(fields == 19);
    CHECK(sec == 's');
    CHECK(static_cast<std::size_t>(used) == line.size());
    CHECK(procs == 2);
    CHECK(goal >= 4);
    lines++;
  }
  close(fd);
  std::remove(path);
  CHECK(lines >= 2);
}

TEST_CASE("8 Ps: extra background mark workers share the marking, checkmark stays clean") {
  World w(8);
  setCheckmark(true);
  setGCStress(2, GCStressMode::Continuous);
  // A live graph big enough that the workers find buffers to take.
  std::vector<void*> live(4096);
  auto scanLive = [](void* ctx, VisitFn visit, void* vctx) {
    for (auto& p : *static_cast<std::vector<void*>*>(ctx)) visit(vctx, &p);
  };
  const int id = registerRoots(scanLive, &live);
  RunStatus st = w.s.runMain(fn([&, i = std::size_t{0}](G*) mutable -> Step {
    // Chains of 64 nodes per root slot.
    Node* head = nullptr;
    for (int k = 0; k < 64; k++) {
      Node* n = newNode();
      writePointer(&n->kids[0], head);
      head = n;
    }
    writePointer(&live[i], head);
    return ++i == live.size() ? Step::exit() : Step::yield();
  }));
  REQUIRE(st == RunStatus::Ok);
  const GCStats before = gcStats();
  runMutators(w.s, 8, 10 * kScale);
  setGCStress(0);
  gcCollect();
  const GCStats after = gcStats();
  MESSAGE("extra worker scan work: " << after.extraWorkerWork - before.extraWorkerWork
                                     << " of " << after.workerWork - before.workerWork);
  CHECK(after.extraWorkerWork > before.extraWorkerWork);
  for (void* p : live) {
    for (auto* n = static_cast<Node*>(p); n != nullptr; n = static_cast<Node*>(n->kids[0])) checkNode(n);
  }
  for (auto& p : live) writePointer(&p, nullptr);
  unregisterRoots(id);
  verifyHeap();
}

TEST_CASE("gcstress: a complete cycle every N allocations, run at the next safepoint") {
  // A fresh world: its P's MCache starts empty, so no span with a filled allocCache
  // lets allocations bypass the count. Pacing off: only gcstress starts cycles.
  World w(1);
  setGCPercent(-1);
  constexpr int kN = 10;
  constexpr int kPerStep = 25;  // several owed cycles per step: none folds into another
  constexpr int kSteps = 40;
  setGCStress(kN);
  const GCStats before = gcStats();
  std::uint64_t allocs = 0;
  int step = 0, mismatches = 0;
  RunStatus st = w.s.runMain(fn([&](G*) -> Step {
    // A safepoint: the cycles owed for the allocations so far run (and complete) here.
    gcStressSafepoint();
    if (gcStats().cycles - before.cycles != allocs / kN) mismatches++;
    if (step++ == kSteps) return Step::exit();
    for (int i = 0; i < kPerStep; i++) mallocgc(16, nullptr);
    allocs += kPerStep;
    return Step::yield();
  }));
  REQUIRE(st == RunStatus::Ok);
  const GCStats gs = gcStats();
  MESSAGE("allocations " << allocs << ", cycles " << gs.cycles - before.cycles);
  CHECK(mismatches == 0);
  CHECK(gs.cycles - before.cycles == allocs / kN);
  CHECK(gs.stressCycles - before.stressCycles == allocs / kN);
}

TEST_CASE("gcstoptheworld: each cycle marks in one pause; checkmark clean, nothing reachable freed") {
  World w(2);
  setCheckmark(true);
  setGCStopTheWorld(true);
  setGCStress(8, GCStressMode::Continuous);
  const GCStats before = gcStats();
  runMutators(w.s, 3, 20 * kScale);
  setGCStress(0);
  gcCollect();
  const GCStats after = gcStats();
  const std::uint64_t cycles = after.cycles - before.cycles;
  MESSAGE("cycles " << cycles << ", pauses " << after.numPauses - before.numPauses);
  CHECK(cycles >= 3);
  CHECK(after.stwMarkCycles - before.stwMarkCycles == cycles);  // every mark in a pause
  CHECK(after.numPauses - before.numPauses == cycles);          // one pause per cycle
  CHECK(after.checkmarkObjects > before.checkmarkObjects);
  for (void* p : gShared)
    if (p != nullptr) checkNode(static_cast<Node*>(p));
  verifyHeap();
}

namespace {
// The poisoning scenario, in a child process: 1 KiB noscan objects held by a root, one
// of them (in a poisoned span that keeps other live objects, so the span survives the
// sweep) dropped and collected; then, if `writeAfterFree`, a word of it is written;
// then 1 KiB objects are allocated until that slot is handed out again (prints
// "reused"). Exits 0 unless a fatal error ends it.
void freedSlotScenario(bool writeAfterFree) {
  setClobberFree(true);
  World w(1);
  setGCPercent(-1);  // only the explicit cycle
  constexpr int kObjs = 64;
  static void* held[kObjs];
  const int id = registerRoots(
      [](void*, VisitFn visit, void* ctx) {
        for (auto& p : held) visit(ctx, &p);
      },
      nullptr);
  void* victim = nullptr;
  RunStatus st = w.s.runMain(fn([&](G*) -> Step {
    for (auto& p : held) writePointer(&p, mallocgc(1024, nullptr));
    for (int i = 1; i < kObjs && victim == nullptr; i++) {
      MSpan* s = mheap().spanOf(held[i]);
      if (s->poisoned && s == mheap().spanOf(held[i - 1])) {
        victim = held[i];
        writePointer(&held[i], nullptr);
      }
    }
    return Step::exit();
  }));
  if (st != RunStatus::Ok || victim == nullptr) std::_Exit(3);
  gcCollect();  // victim is freed and poisoned by the sweep
  if (writeAfterFree) static_cast<std::uint64_t*>(victim)[5] = 42;  // use after free
  bool reused = false;
  st = w.s.runMain(fn([&](G*) -> Step {
    for (int i = 0; i < 4096 && !reused; i++) reused = mallocgc(1024, nullptr) == victim;
    return Step::exit();
  }));
  std::fprintf(stderr, "%s %p\n", reused ? "reused" : "not reused", victim);
  for (auto& p : held) writePointer(&p, nullptr);
  unregisterRoots(id);
}
}  // namespace

TEST_CASE("freed-memory poisoning: a write to a freed object is fatal when its slot is reused") {
  using spindle::runtime::testing::runChild;
  SUBCASE("intact poison: the slot is handed out again silently") {
    auto [died, err] = runChild([] { freedSlotScenario(false); });
    CHECK_FALSE(died);
    CHECK(err.find("reused 0x") != std::string::npos);
  }
  SUBCASE("a word written after free: fatal error naming the object, span and class") {
    auto [died, err] = runChild([] { freedSlotScenario(true); });
    MESSAGE(err);
    // The check is no DCHECK: -c opt (--clobberfree) takes this same path.
    CHECK(died);
    CHECK(err.find("was written after it was freed: word 5") != std::string::npos);
    CHECK(err.find("size class") != std::string::npos);
    CHECK(err.find("= 0x2a") != std::string::npos);
    // The fatal error's context (throw.h addFatalContext): the collector's state and
    // the M, P and G it happened on.
    CHECK(err.find("gc: phase off (sweeping or idle), sweepgen ") != std::string::npos);
    CHECK(err.find("on M ") != std::string::npos);
  }
}

TEST_CASE("idle Ps run the idle mark worker while the collector marks") {
  // A rooted tree of scan objects, big enough that marking it takes a while; then
  // cycles with no G running, so both Ps are idle: the Ms woken for them at mark start
  // find no G and mark on them (GCStats::idleMarkTimeNs / idleMarkWork).
  World w(2);
  setGCPercent(-1);
  const int kNodes = 25000 * kScale;
  RunStatus st = w.s.runMain(fn([&](G*) -> Step {
    // A complete binary tree (kids[2], kids[3]), so several markers can share it. No
    // cycle runs while it is built (pacing off), so the vector may hold it meanwhile.
    std::vector<Node*> nodes(static_cast<std::size_t>(kNodes));
    for (auto& n : nodes) n = newNode();
    for (std::size_t i = 1; i < nodes.size(); i++) writePointer(&nodes[(i - 1) / 2]->kids[2 + (i - 1) % 2], nodes[i]);
    writePointer(&gShared[0], nodes[0]);
    return Step::exit();
  }));
  REQUIRE(st == RunStatus::Ok);
  const GCStats before = gcStats();
  GCStats after = before;
  for (int i = 0; i < 50 && after.idleMarkWork == before.idleMarkWork; i++) {
    gcCollect();
    after = gcStats();
  }
  MESSAGE("idle mark work " << after.idleMarkWork - before.idleMarkWork << " bytes in "
                            << (after.idleMarkTimeNs - before.idleMarkTimeNs) / 1000 << " us, cycles "
                            << after.cycles - before.cycles);
  CHECK(after.idleMarkWork > before.idleMarkWork);
  CHECK(after.idleMarkTimeNs > before.idleMarkTimeNs);
  verifyHeap();
  writePointer(&gShared[0], nullptr);
}

TEST_CASE("a large allocation's zeroing lets a whole sweep termination pass mid-way") {
  // The G starts a 32 MiB allocation on dirty pages only once the cycle's first stop waits
  // for its P. The zeroing passes checkpoints, so the stop proceeds and marking starts
  // while the object is still being zeroed; without them the stop would wait for the
  // whole memset and the barrier would still be off when mallocgc returns.
  World w(2);
  setGCPercent(-1);
  constexpr std::size_t kBig = std::size_t{32} << 20;
  REQUIRE(w.s.runMain(fn([&](G*) -> Step {  // dirty pages: a big object that dies
    std::memset(mallocgc(kBig, nullptr), 0xab, kBig);
    return Step::exit();
  })) == RunStatus::Ok);
  gcCollect();
  gcCollect();
  std::atomic<bool> started{false}, collected{false};
  struct Zeroer final : GBody {
    std::atomic<bool>* started;
    std::atomic<bool>* collected;
    unsigned char* big = nullptr;
    bool dirtyPages = false, markingWhenDone = false;
    Step run(G*, std::uint32_t) override {
      if (big == nullptr) {
        started->store(true);
        while (!Sched::checkpointPending()) std::this_thread::yield();
        big = static_cast<unsigned char*>(mallocgc(kBig, nullptr));
        dirtyPages = mheap().spanOf(big)->needzero != NeedZero::No;
        markingWhenDone = writeBarrierEnabled();
      }
      return collected->load() ? Step::exit() : Step::yield();
    }
    void traceStack(G*, VisitFn visit, void* ctx) override {
      visit(ctx, reinterpret_cast<void**>(&big));
    }
  } zeroer;
  zeroer.started = &started;
  zeroer.collected = &collected;
  std::thread collector([&] {
    while (!started.load()) std::this_thread::yield();
    gcCollect();  // from a thread without a P: the controller stops the world
    collected.store(true);
  });
  REQUIRE(w.s.runMain(&zeroer) == RunStatus::Ok);
  collector.join();
  CHECK(zeroer.dirtyPages);
  CHECK(zeroer.markingWhenDone);
  // Kept by the G's stack across the cycle, zero throughout, and the span still sound.
  CHECK(mheap().spanOf(zeroer.big)->state() == SpanState::InUse);
  std::size_t nonzero = 0;
  for (std::size_t i = 0; i < kBig; i++) nonzero += zeroer.big[i] != 0;
  CHECK(nonzero == 0);
  verifyHeap();
  setGCPercent(100);
}

// Stack shrinking (mgcmark.cc, g.h): bodies that always want a smaller stack, some
// yielding (scanned by the collector or before they run), some parked on a channel until
// the end (scanned by the collector only, so shrunk from the shrink queue). shrinkStack
// must only run on a paused G, on a thread holding a P, and every request must be
// served: a flag left set when a G exits is fatal when newproc reuses the G.
TEST_CASE("stack shrinks run on paused Gs only, with a P, for parked and running Gs") {
  World w(2);
  struct Shrinkable : GBody {
    std::atomic<bool> running{false};
    std::atomic<int> shrinks{0}, violations{0};
    bool wantsStackShrink(G*) override { return true; }
    void shrinkStack(G*) override {
      if (running.load() || currentP() == nullptr) violations.fetch_add(1);
      shrinks.fetch_add(1);
    }
  };
  struct Yielder final : Shrinkable {
    int steps = 0;
    std::atomic<int>* done;
    Step run(G*, std::uint32_t) override {
      running.store(true);
      for (int i = 0; i < 64; i++) newNode();
      running.store(false);
      if (++steps < 400) return Step::yield();
      done->fetch_add(1);
      return Step::exit();
    }
  };
  struct Parked final : Shrinkable {
    hchan* c;
    int pc = 0;
    std::atomic<int>* done;
    Step run(G* g, std::uint32_t) override {
      running.store(true);
      std::uint64_t elem;
      bool ok;
      Step st = Step::exit();
      if (pc++ == 0 && chanrecv(c, g, &elem, &ok) == ChanResult::Park) st = chanRecvParkStep(c);
      running.store(false);
      if (st.kind == Step::Kind::Exit) done->fetch_add(1);
      return st;
    }
  };
  hchan* c = makechan(0);
  std::atomic<int> done{0};
  std::vector<Yielder*> yielders(8);
  std::vector<Parked*> parked(8);
  int cycles = 0;
  bool started = false, closed = false;
  std::vector<int> parkedBeforeWake;
  auto mainBody = fn([&](G* g) -> Step {
    if (!started) {
      started = true;
      for (auto& y : yielders) {
        y = new Yielder;
        y->done = &done;
        g->sched->newproc(y);
      }
      for (auto& p : parked) {
        p = new Parked;
        p->c = c;
        p->done = &done;
        g->sched->newproc(p);
      }
      return Step::yield();
    }
    if (cycles < 6 || done.load() < static_cast<int>(yielders.size())) {
      gcCollect();
      cycles++;
      return Step::yield();
    }
    if (!closed) {
      // Parked since their first run: only the shrink queue can have shrunk them.
      for (auto* p : parked) parkedBeforeWake.push_back(p->shrinks.load());
      closed = closechan(c);  // the parked Gs exit
    }
    if (done.load() < static_cast<int>(yielders.size() + parked.size())) return Step::yield();
    // New Gs reuse the exited ones: none may still have a shrink pending.
    for (int i = 0; i < 32; i++) g->sched->newproc(fn([](G*) { return Step::exit(); }));
    return Step::exit();
  });
  REQUIRE(w.s.runMain(mainBody) == RunStatus::Ok);
  int parkedShrinks = 0, yielderShrinks = 0, violations = 0;
  for (int n : parkedBeforeWake) CHECK(n >= 1);  // scanned parked, drained by gcCollect
  for (auto* p : parked) {
    parkedShrinks += p->shrinks.load();
    violations += p->violations.load();
  }
  for (auto* y : yielders) {
    yielderShrinks += y->shrinks.load();
    violations += y->violations.load();
  }
  MESSAGE("shrinks: parked ", parkedShrinks, ", yielding ", yielderShrinks);
  CHECK(yielderShrinks > 0);
  CHECK(violations == 0);
  for (auto* p : parked) delete p;
  for (auto* y : yielders) delete y;
  freechan(c);
}

TEST_CASE("a G in a quiescent foreign call is scanned during the call: cycles do not wait for it") {
  World w(2);
  setCheckmark(true);
  std::atomic<int> phase{0};  // 1: in the call, 2: released, 3: returned
  struct Caller final : GBody {
    Node* held[16] = {};
    std::atomic<int>* phase;
    int pc = 0;
    Step run(G*, std::uint32_t) override {
      if (pc++ > 0) return Step::exit();
      for (auto& h : held) h = newNode();
      Sched::enterSyscall(/*stackQuiescent=*/true);  // a blocking C call, state saved
      phase->store(1);
      // Bounded (20 s) so that a collector waiting for the call fails the test below
      // instead of hanging it.
      for (int i = 0; i < 20000 && phase->load() != 2; i++) usleep(1000);
      Sched::exitSyscall();
      for (auto* h : held) checkNode(h);
      phase->store(3);
      return Step::yield();
    }
    void traceStack(G*, VisitFn visit, void* ctx) override {
      for (auto& h : held) visit(ctx, reinterpret_cast<void**>(&h));
    }
  } caller;
  caller.phase = &phase;
  std::thread host([&] { CHECK(w.s.runMain(&caller) == RunStatus::Ok); });
  while (phase.load() != 1) std::this_thread::yield();
  const std::uint64_t scanned = gcStats().stacksScannedByCollector;
  std::thread garbage([&] {
    w.s.runMain(fn([](G*) -> Step {
      for (int i = 0; i < 20000; i++) newNode();
      return Step::exit();
    }));
  });
  garbage.join();
  gcCollect();
  gcCollect();
  CHECK(phase.load() == 1);  // both cycles ended while the call still blocks
  CHECK(gcStats().stacksScannedByCollector > scanned);
  for (auto* h : caller.held) checkNode(h);
  phase.store(2);
  host.join();
  CHECK(phase.load() == 3);
  verifyHeap();
}

TEST_CASE("mark termination flushes every P's page cache") {
  World w(2);
  REQUIRE(w.s.runMain(fn([](G*) -> Step {
    for (int i = 0; i < 20000; i++) newNode();
    return Step::exit();
  })) == RunStatus::Ok);
  auto cached = [&] {
    int n = 0;
    for (int i = 0; i < w.s.procs(); i++) {
      const P::PageCache& c = w.s.allp(i)->pcache;
      n += std::popcount(c.cache) + static_cast<int>(c.nfreed);
    }
    return n;
  };
  CHECK(cached() > 0);  // allocation left pages in a cache
  gcCollect();
  CHECK(cached() == 0);
}

#if SPINDLE_DCHECKS_ON
// Threads without a P are not stopped by mark termination, so one may shade after the
// Ps' buffers and the barrier's no-P buffer were drained: here the collector's own thread
// (no P) publishes a node nothing else reaches into a root, through the barrier, at that
// point. The barrier goes off only once the no-P buffer is empty, so the node is marked:
// checkmark (on) would be fatal otherwise, and the node and its child must survive.
Node* gLateNode = nullptr;
TEST_CASE("a shade from a thread without a P late in mark termination is drained") {
  World w(1);
  setCheckmark(true);
  REQUIRE(w.s.runMain(fn([&](G*) -> Step {
    Node* n = newNode();
    writePointer(&n->kids[0], newNode());
    gLateNode = n;  // C++ only: no root reaches it
    return Step::exit();
  })) == RunStatus::Ok);
  setMarkTerminationTestHook([] { writePointer(&gShared[0], gLateNode); });
  gcCollect();
  gcCollect();
  REQUIRE(gShared[0] == gLateNode);
  checkNode(gLateNode);
  checkNode(static_cast<Node*>(gLateNode->kids[0]));
  verifyHeap();
}
#endif

namespace {
// verifyHeap's scenario, in a child process: a rooted chain of nodes, collected once;
// then `corrupt` (a test-only write, as a memory bug would make) and verifyHeap. Exits 0
// unless a fatal error ends it; prints the first node's address.
enum class Corruption { None, Header, Dangling };
void verifyScenario(Corruption corrupt) {
  World w(1);
  setGCPercent(-1);  // only the explicit cycles
  Node* dead = nullptr;
  RunStatus st = w.s.runMain(fn([&](G*) -> Step {
    Node* head = nullptr;
    for (int i = 0; i < 8; i++) {
      Node* n = newNode();
      writePointer(&n->kids[0], head);
      head = n;
    }
    writePointer(&gShared[0], head);
    dead = newNode();  // garbage: freed by the cycle below
    return Step::exit();
  }));
  if (st != RunStatus::Ok) std::_Exit(3);
  setGCVerify(true);  // before and after the cycle: the heap is healthy
  gcCollect();
  setGCVerify(false);
  auto* head = static_cast<Node*>(gShared[0]);
  std::fprintf(stderr, "head %p dead %p\n", static_cast<void*>(head), static_cast<void*>(dead));
  if (corrupt == Corruption::Header) {
    head->h.type = reinterpret_cast<const TypeInfo*>(std::uintptr_t{0xdeadbeefdeadbeef});
  } else if (corrupt == Corruption::Dangling) {
    static_cast<Node*>(head->kids[0])->kids[3] = dead;  // no barrier: a memory bug
  }
  verifyHeap();
  for (auto& p : gShared) p = nullptr;
}
}  // namespace

TEST_CASE("verifyHeap: a healthy heap passes; a corrupted one is fatal naming the object and span") {
  using spindle::runtime::testing::runChild;
  SUBCASE("healthy: --gcverify's checks before and after a cycle, then verifyHeap()") {
    const std::uint64_t before = gcStats().heapVerifications;
    {
      World w(2);  // detached before the child below makes its own
      setGCVerify(true);
      runMutators(w.s, 2, 5 * kScale);
      gcCollect();
      setGCVerify(false);
    }
    const std::uint64_t ran = gcStats().heapVerifications - before;
    MESSAGE("verifications " << ran);
    CHECK(ran >= 2);
    CHECK(ran % 2 == 0);  // one before and one after each cycle
    auto [died, err] = runChild([] { verifyScenario(Corruption::None); });
    CHECK_FALSE(died);
    CHECK(err.find("head 0x") != std::string::npos);
  }
  SUBCASE("a reachable object's header overwritten: no plausible type") {
    auto [died, err] = runChild([] { verifyScenario(Corruption::Header); });
    MESSAGE(err);
    CHECK(died);
    const std::string head = err.substr(err.find("head ") + 5, err.find(" dead") - err.find("head ") - 5);
    CHECK(err.find("verifyHeap (verifyHeap()): object " + head) != std::string::npos);
    CHECK(err.find("has no plausible type: header word 0xdeadbeefdeadbeef") != std::string::npos);
    CHECK(err.find("(span 0x") != std::string::npos);
    CHECK(err.find("reached from root scanner") != std::string::npos);
  }
  SUBCASE("a reachable pointer to a freed object: a dangling pointer from the field that holds it") {
    auto [died, err] = runChild([] { verifyScenario(Corruption::Dangling); });
    MESSAGE(err);
    CHECK(died);
    const std::size_t d = err.find("dead ") + 5;
    const std::string dead = err.substr(d, err.find('\n', d) - d);
    CHECK(err.find("object " + dead + " (span 0x") != std::string::npos);
    CHECK(err.find("a dangling pointer") != std::string::npos);
    CHECK(err.find("reached from a field of object 0x") != std::string::npos);
    CHECK(err.find("(type Node)") != std::string::npos);
  }
}

namespace spindle::runtime {
namespace {

TEST_CASE("event log: a replaced sink first gets every record published before; gcevents' ring keeps order") {
  static std::vector<std::uint64_t> got;
  got.clear();
  setGCEventSink([](void*, const GCEvent& e) { got.push_back(e.cycle); }, nullptr);
  const std::uint64_t before = gcEventsLast();
  // Published but not yet handed over (the controller delivers after its step): removing
  // the sink must not drop them (a CLI exiting right after its last cycle).
  GCEvent e;
  e.cycle = 900001;
  gc_detail::publishGCEvent(e);
  e.cycle = 900002;
  gc_detail::publishGCEvent(e);
  setGCEventSink(nullptr, nullptr);
  CHECK(got == std::vector<std::uint64_t>{900001, 900002});
  std::vector<GCEvent> ring;
  const std::uint64_t last = gcEventsSince(before, &ring);
  REQUIRE(ring.size() == 2);
  CHECK(ring[0].seq == before + 1);
  CHECK(ring[1].seq == last);
  CHECK(ring[1].cycle == 900002);
  // A later sink starts with the next record.
  setGCEventSink([](void*, const GCEvent& ev) { got.push_back(ev.cycle); }, nullptr);
  gc_detail::deliverGCEvents();
  CHECK(got.size() == 2);
  setGCEventSink(nullptr, nullptr);
  CHECK(gcEventJSON(ring[1]).find(R"("cycle":900002,"cause":"pacer")") != std::string::npos);
}

}  // namespace
}  // namespace spindle::runtime

// A root scanner's owner frees what it reads as soon as unregisterRoots returns (a VM's
// destructor frees its globals), so unregisterRoots waits for a scan in progress: a TSan
// report in CI had ~VM free the globals array that the controller's root scan was
// reading. The scanner here stalls inside the cycle's root scan until released.
namespace {
struct StalledScanner {
  std::atomic<bool> inside{false}, release{false};
  static void scan(void* ctx, VisitFn, void*) {
    auto* s = static_cast<StalledScanner*>(ctx);
    if (s->inside.exchange(true)) return;  // the first scan only
    while (!s->release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
};
}  // namespace

TEST_CASE("unregisterRoots waits for a root scan in progress") {
  World w(1);
  StalledScanner stalled;
  const int id = registerRoots(StalledScanner::scan, &stalled);
  std::thread cycle([] { gcCollect(); });
  while (!stalled.inside.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::atomic<bool> returned{false};
  std::thread unregister([&] {
    unregisterRoots(id);
    returned.store(true);
  });
  // Without the wait, unregisterRoots returns at once; with it, never while the scanner
  // runs. (A loaded machine can only make the first case look like the second.)
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK_FALSE(returned.load());
  stalled.release.store(true);
  unregister.join();
  cycle.join();
  CHECK(returned.load());
}
