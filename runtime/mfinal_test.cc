// Finalizers: recorded as span specials, kept (with what they reach) until their
// finalizer ran once on the finalizer G, removed by setFinalizer(nullptr), rejected for
// non-heap objects. Cycles are driven by hand (testing/handmark.h) so these tests do not
// depend on the collector core; the last test goes through gcCollect() and runs once the
// real collector is linked.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "runtime/fing.h"
#include "runtime/gc.h"
#include "runtime/malloc.h"
#include "runtime/mfinal.h"
#include "runtime/proc.h"
#include "runtime/testing/handmark.h"

using namespace spindle::runtime;
using testing::handCollect;
using testing::isLive;
using testing::TestP;

namespace {

struct Node {
  ObjectHeader header;
  Node* child;
  std::uint64_t id;
};
void traceNode(void* obj, VisitFn visit, void* ctx) {
  visit(ctx, reinterpret_cast<void**>(&static_cast<Node*>(obj)->child));
}
const TypeInfo kNode{"Node", sizeof(Node), &traceNode};

Node* newNode(std::uint64_t id, Node* child = nullptr) {
  auto* n = static_cast<Node*>(mallocgc(sizeof(Node), &kNode));
  n->child = child;
  n->id = id;
  return n;
}

// What a finalizer saw.
struct Record {
  std::atomic<int> runs{0};
  std::atomic<G*> g{nullptr};
  std::atomic<std::uint64_t> id{0};
  std::atomic<std::uint64_t> childId{0};
};
void recordFinalizer(void* obj, void* arg) {
  auto* r = static_cast<Record*>(arg);
  auto* n = static_cast<Node*>(obj);
  r->g.store(runningFinalizerG());
  r->id.store(n->id);
  r->childId.store(n->child != nullptr ? n->child->id : 0);
  r->runs.fetch_add(1);
}

// Roots: the finalizer roots plus the given objects.
testing::RootsFn rootsWith(std::vector<void*>* keep) {
  return [keep](VisitFn visit, void* ctx) {
    scanFinalizerRoots(visit, ctx);
    for (void*& v : *keep) visit(ctx, &v);
  };
}

// Waits (bounded) for cond; wakes the finalizer G as the collector would after a sweep.
template <typename F>
bool eventually(F cond) {
  for (int i = 0; i < 20000; i++) {
    if (cond()) return true;
    wakeFinalizerG();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return cond();
}

}  // namespace

TEST_CASE("finalizer: runs once, on the finalizer G, only after its object is unreachable") {
  Sched sched(2);
  G* fing = startFinalizerG(&sched);
  REQUIRE(fing != nullptr);
  TestP p(100);
  Record rec;
  const FinalizerStats before = finalizerStats();

  Node* child = newNode(7);
  Node* obj = newNode(42, child);
  REQUIRE(setFinalizer(obj, &recordFinalizer, &rec));
  CHECK(hasFinalizer(mheap(), obj));
  CHECK(finalizerStats().set == before.set + 1);

  // Reachable: two cycles keep it and queue nothing.
  std::vector<void*> keep{obj};
  handCollect(p.get(), rootsWith(&keep));
  handCollect(p.get(), rootsWith(&keep));
  CHECK(isLive(obj));
  CHECK(isLive(child));
  CHECK(hasFinalizer(mheap(), obj));
  CHECK(finalizerStats().queued == before.queued);

  // Unreachable: resurrected and queued; what it reaches survives too.
  keep.clear();
  handCollect(p.get(), rootsWith(&keep));
  CHECK(isLive(obj));
  CHECK(isLive(child));
  CHECK_FALSE(hasFinalizer(mheap(), obj));
  CHECK(finalizerStats().queued == before.queued + 1);
  CHECK(finalizerStats().set == before.set);

  // The queue is a root: a cycle before the finalizer ran keeps both.
  if (rec.runs.load() == 0) {
    handCollect(p.get(), rootsWith(&keep));
    if (rec.runs.load() == 0) {
      CHECK(isLive(obj));
      CHECK(isLive(child));
    }
  }

  REQUIRE(eventually([&] { return rec.runs.load() == 1; }));
  CHECK(rec.g.load() == fing);
  CHECK(rec.id.load() == 42);
  CHECK(rec.childId.load() == 7);
  CHECK(finalizerStats().run >= before.run + 1);
  CHECK(finalizerStats().pending == 0);

  // Now nothing keeps it: the next cycle frees both, and the finalizer never runs again.
  handCollect(p.get(), rootsWith(&keep));
  CHECK_FALSE(isLive(obj));
  CHECK_FALSE(isLive(child));
  handCollect(p.get(), rootsWith(&keep));
  wakeFinalizerG();
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(rec.runs.load() == 1);
  stopFinalizerG(&sched);
}

TEST_CASE("finalizer: the scheduler wakes the finalizer G (findRunnable -> wakefing)") {
  Sched sched(1);
  G* fing = startFinalizerG(&sched);
  // Wait until the finalizer G has run and parked on the empty queue: from then on only
  // a wake-up can run it.
  for (int i = 0; i < 10000 && fing->status.load() != GStatus::Waiting; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  REQUIRE(fing->status.load() == GStatus::Waiting);
  Record rec;
  const std::uint64_t runsBefore = finalizerStats().run;
  {
    TestP p(105);
    REQUIRE(setFinalizer(newNode(11), &recordFinalizer, &rec));
    std::vector<void*> keep;
    handCollect(p.get(), rootsWith(&keep));  // queues it; nobody calls wakeFinalizerG
    REQUIRE(finalizerStats().pending >= 1);
  }  // runMain below binds a P of sched to this thread
  // A G that only yields: each return to schedule() passes findRunnable, which must
  // ready the parked finalizer G.
  struct Spin final : GBody {
    Record* rec;
    int yields = 0;
    explicit Spin(Record* r) : rec(r) {}
    Step run(G*, std::uint32_t) override {
      if (rec->runs.load() == 1 || ++yields > 2000000) return Step::exit();
      return Step::yield();
    }
  } spin(&rec);
  REQUIRE(sched.runMain(&spin) == RunStatus::Ok);
  CHECK(rec.runs.load() == 1);
  CHECK(finalizerStats().run >= runsBefore + 1);
  stopFinalizerG(&sched);
}

TEST_CASE("finalizer: objects reachable from a finalizable object survive until it ran") {
  Sched sched(1);
  startFinalizerG(&sched);
  TestP p(101);
  Record rec;
  // obj -> a -> b; only obj has a finalizer. Before the finalizer G is woken, run
  // several cycles: the chain must survive all of them (finalizer roots, then the queue).
  Node* b = newNode(3);
  Node* a = newNode(2, b);
  Node* obj = newNode(1, a);
  REQUIRE(setFinalizer(obj, &recordFinalizer, &rec));
  std::vector<void*> keep;
  stopFinalizerG(&sched);  // no finalizer G: entries stay queued
  for (int i = 0; i < 3; i++) {
    handCollect(p.get(), rootsWith(&keep));
    CHECK(isLive(obj));
    CHECK(isLive(a));
    CHECK(isLive(b));
    CHECK(b->id == 3);
  }
  CHECK(rec.runs.load() == 0);
  CHECK(finalizerStats().pending >= 1);
  startFinalizerG(&sched);  // a new finalizer G takes the queued entries
  REQUIRE(eventually([&] { return rec.runs.load() == 1; }));
  CHECK(rec.childId.load() == 2);
  handCollect(p.get(), rootsWith(&keep));
  CHECK_FALSE(isLive(obj));
  CHECK_FALSE(isLive(a));
  CHECK_FALSE(isLive(b));
  stopFinalizerG(&sched);
}

TEST_CASE("finalizer: setFinalizer(nullptr) removes it; replacing keeps one") {
  Sched sched(1);
  startFinalizerG(&sched);
  TestP p(102);
  Record rec1, rec2;
  Node* obj = newNode(9);
  Node* other = newNode(10);
  REQUIRE(setFinalizer(obj, &recordFinalizer, &rec1));
  REQUIRE(setFinalizer(other, &recordFinalizer, &rec1));
  REQUIRE(setFinalizer(other, &recordFinalizer, &rec2));  // replaces
  const std::uint64_t set = finalizerStats().set;
  REQUIRE(setFinalizer(obj, nullptr, nullptr));
  CHECK_FALSE(hasFinalizer(mheap(), obj));
  CHECK(hasFinalizer(mheap(), other));
  CHECK(finalizerStats().set == set - 1);
  std::vector<void*> keep;
  handCollect(p.get(), rootsWith(&keep));
  CHECK_FALSE(isLive(obj));  // no finalizer: freed at once
  REQUIRE(eventually([&] { return rec2.runs.load() == 1; }));
  CHECK(rec1.runs.load() == 0);
  stopFinalizerG(&sched);
}

TEST_CASE("finalizer: specials stay sorted by offset then kind next to other kinds") {
  TestP p(103);
  std::vector<Node*> nodes;
  for (int i = 0; i < 8; i++) nodes.push_back(newNode(static_cast<std::uint64_t>(i)));
  ObjectRef ref;
  REQUIRE(mheap().findObject(nodes[3], &ref));
  MSpan* s = ref.span;
  // A foreign special (the pinner's kind 2) on nodes[3], then finalizers out of order.
  Special pin;
  pin.kind = 2;
  pin.offset = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(nodes[3]) - s->base());
  {
    std::lock_guard<std::mutex> lk(s->specialLock);
    pin.next = s->specials;
    s->specials = &pin;
  }
  Record rec;
  for (int i : {5, 3, 1, 7}) REQUIRE(setFinalizer(nodes[i], &recordFinalizer, &rec));
  {
    std::lock_guard<std::mutex> lk(s->specialLock);
    std::vector<std::pair<std::uint32_t, int>> seen;
    for (Special* sp = s->specials; sp != nullptr; sp = sp->next) seen.push_back({sp->offset, sp->kind});
    REQUIRE(seen.size() == 5);
    for (std::size_t i = 1; i < seen.size(); i++) CHECK(seen[i - 1] < seen[i]);
  }
  for (int i : {5, 3, 1, 7}) REQUIRE(setFinalizer(nodes[i], nullptr, nullptr));
  {
    std::lock_guard<std::mutex> lk(s->specialLock);
    CHECK(s->specials == &pin);
    CHECK(pin.next == nullptr);
    s->specials = nullptr;
  }
  std::vector<void*> keep;
  handCollect(p.get(), rootsWith(&keep));
}

TEST_CASE("finalizer: non-heap objects and interior pointers are rejected") {
  TestP p(104);
  Record rec;
  Node onStack{};
  static Node global{};
  CHECK_FALSE(setFinalizer(&onStack, &recordFinalizer, &rec));
  CHECK_FALSE(setFinalizer(&global, &recordFinalizer, &rec));
  CHECK_FALSE(setFinalizer(nullptr, &recordFinalizer, &rec));
  Node* obj = newNode(1);
  CHECK_FALSE(setFinalizer(reinterpret_cast<char*>(obj) + 8, &recordFinalizer, &rec));
  CHECK_FALSE(hasFinalizer(mheap(), obj));
  std::vector<void*> keep;
  handCollect(p.get(), rootsWith(&keep));
}

// Through the collector's own entry points: needs the real collector (the placeholder
// never frees anything; the test detects that and only checks what it can).
// A cleanup (Go 1.24's AddCleanup): no tracing, no resurrection. An object on a cycle
// with what it references is freed, with all of it, by the first cycle that finds it
// unreachable, and cleanup(arg) runs once afterwards.
struct CleanupRecord {
  std::atomic<int> runs{0};
  std::atomic<void*> arg{nullptr};
  std::atomic<G*> g{nullptr};
};
CleanupRecord cleanupRec;
void recordCleanup(void* arg) {
  cleanupRec.arg.store(arg);
  cleanupRec.g.store(runningFinalizerG());
  cleanupRec.runs.fetch_add(1);
}

TEST_CASE("cleanup: freed in the cycle it became unreachable, fn(arg) once, nothing kept") {
  Sched sched(2);
  G* fing = startFinalizerG(&sched);
  REQUIRE(fing != nullptr);
  TestP p(100);
  cleanupRec.runs = 0;
  const FinalizerStats before = finalizerStats();
  static int token;  // arg: not a heap object

  // obj -> child -> obj: a cycle, as a channel whose buffer points back at it.
  Node* obj = newNode(1);
  Node* child = newNode(2, obj);
  obj->child = child;
  REQUIRE(addCleanup(obj, &recordCleanup, &token));
  CHECK(finalizerStats().cleanupsSet == before.cleanupsSet + 1);
  CHECK_FALSE(hasFinalizer(mheap(), obj));  // its own kind, not a finalizer

  // Reachable: kept, nothing queued.
  std::vector<void*> keep{obj};
  handCollect(p.get(), rootsWith(&keep));
  CHECK(isLive(obj));
  CHECK(isLive(child));
  CHECK(finalizerStats().cleanupsQueued == before.cleanupsQueued);

  // Unreachable: the same cycle frees both (a finalizer would keep them a cycle, and
  // what the object reaches for as long as it is set: forever on a cycle through it).
  keep.clear();
  handCollect(p.get(), rootsWith(&keep));
  CHECK_FALSE(isLive(obj));
  CHECK_FALSE(isLive(child));
  CHECK(finalizerStats().cleanupsQueued == before.cleanupsQueued + 1);
  CHECK(finalizerStats().cleanupsSet == before.cleanupsSet);
  CHECK(finalizerStats().queued == before.queued);

  REQUIRE(eventually([&] { return cleanupRec.runs.load() == 1; }));
  CHECK(cleanupRec.arg.load() == &token);
  CHECK(cleanupRec.g.load() == fing);
  handCollect(p.get(), rootsWith(&keep));
  wakeFinalizerG();
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(cleanupRec.runs.load() == 1);
  stopFinalizerG(&sched);
}

TEST_CASE("finalizer: through gcAttach/gcCollect") {
  Sched sched(2);
  gcAttach(&sched);
  startFinalizerG(&sched);  // idempotent once gcAttach starts it
  static Record rec;
  rec.runs = 0;
  static std::atomic<bool> collectorFrees{false};
  struct Body final : GBody {
    int phase = 0;
    Node* obj = nullptr;
    Step run(G*, std::uint32_t) override {
      if (phase == 0) {
        // Garbage with a finalizer, and a probe without one.
        obj = newNode(5, newNode(6));
        REQUIRE(setFinalizer(obj, &recordFinalizer, &rec));
        void* probe = newNode(99);
        gcCollect();
        collectorFrees = !isLive(probe);
        phase = 1;
        return Step::yield();
      }
      if (!collectorFrees.load()) {
        setFinalizer(obj, nullptr, nullptr);  // the placeholder kept it: drop the special
        return Step::exit();
      }
      if (rec.runs.load() == 0) {
        wakeFinalizerG();
        return Step::yield();
      }
      gcCollect();
      return Step::exit();
    }
  } body;
  REQUIRE(sched.runMain(&body) == RunStatus::Ok);
  if (collectorFrees.load()) {
    CHECK(rec.runs.load() == 1);
    CHECK(rec.g.load() == finalizerG());
    CHECK(rec.childId.load() == 6);
  } else {
    MESSAGE("placeholder collector: gcCollect frees nothing; finalizer path checked by hand above");
  }
  stopFinalizerG(&sched);
  gcDetach(&sched);
}

TEST_CASE("waitFinalizersStep: the waiter parks until the finalizers queued before it ran") {
  Sched sched(2);
  gcAttach(&sched);
  setGCPercent(-1);  // only the explicit cycle: none stops the world while fn blocks
  static Record rec;
  rec.runs = 0;
  static std::atomic<bool> release{false}, started{false};
  release = false;
  started = false;
  // Runs on the finalizer G's M and holds it until the helper below lets it go. It waits
  // in the syscall state, as a finalizer that blocks must: holding its P, it would keep
  // the stop of the cycle that queued it (or a later one) waiting, and so keep the waiter
  // from ever parking, until the helper gives up.
  auto blockingFinalizer = [](void* obj, void* arg) {
    started = true;
    Sched::enterSyscall(/*stackQuiescent=*/true);
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    Sched::exitSyscall();
    recordFinalizer(obj, arg);
  };
  std::atomic<G*> waiter{nullptr};
  bool ranBeforePark = true, ranAfterWake = false;
  struct Body final : GBody {
    int phase = 0;
    std::uint64_t target = 0;
    std::atomic<G*>* waiter;
    bool *ranBeforePark, *ranAfterWake;
    FinalizerFn fn;
    Step run(G* g, std::uint32_t) override {
      switch (phase++) {
        case 0: {
          Node* obj = newNode(7);
          REQUIRE(setFinalizer(obj, fn, &rec));
          gcCollect();  // obj is unreachable: its sweep queues the finalizer
          return Step::yield();
        }
        case 1:
          // Until obj's finalizer has begun (and blocks), it may not be queued yet, and
          // finalizers of earlier tests' garbage, freed by this cycle, may run meanwhile:
          // a target taken before it would count them instead.
          if (!started.load()) {
            phase = 1;
            return Step::yield();
          }
          target = finalizersQueuedTotal();
          *ranBeforePark = finalizersRan(target);
          if (*ranBeforePark) return Step::exit();
          waiter->store(g);
          return waitFinalizersStep(g, target);
        default:
          *ranAfterWake = finalizersRan(target);
          return Step::exit();
      }
    }
  } body;
  body.waiter = &waiter;
  body.ranBeforePark = &ranBeforePark;
  body.ranAfterWake = &ranAfterWake;
  body.fn = blockingFinalizer;
  // Sees the waiter parked (Waiting, FinalizersRunWait: not spinning) while the finalizer
  // it waits for is still held, then lets the finalizer go.
  bool sawParked = false;
  std::thread helper([&] {
    sawParked = eventually([&] {
      G* g = waiter.load();
      return g != nullptr && g->status.load(std::memory_order_acquire) == GStatus::Waiting &&
             g->waitreason == WaitReason::FinalizersRunWait;
    });
    release = true;
  });
  REQUIRE(sched.runMain(&body) == RunStatus::Ok);
  helper.join();
  CHECK_FALSE(ranBeforePark);
  CHECK(sawParked);
  CHECK(ranAfterWake);
  CHECK(rec.runs.load() == 1);
  setGCPercent(100);
  gcDetach(&sched);
}

TEST_CASE("a world that ends while a G waits for finalizers leaves no waiter behind") {
  // The finalizer queue and its run count outlive a world. A G of the first world waits
  // for one finalizer more than were ever queued; the world ends (its main G exits, the
  // Sched frees the waiter). A finalizer run of the second world must not ready it.
  const std::size_t waiters0 = finalizerWaiterCount();
  {
    Sched first(1);
    gcAttach(&first);
    struct Waiter final : GBody {
      Step run(G* g, std::uint32_t) override {
        if (parked) return Step::exit();
        parked = true;
        return waitFinalizersStep(g, finalizersQueuedTotal() + 1);
      }
      bool parked = false;
    } waiter;
    struct Main final : GBody {
      Sched* sched;
      GBody* waiter;
      G* w = nullptr;
      Step run(G*, std::uint32_t) override {
        if (w == nullptr) w = sched->newproc(waiter);
        // Until the waiter is parked in the waiters' list.
        if (w->status.load(std::memory_order_acquire) != GStatus::Waiting) return Step::yield();
        return Step::exit();
      }
    } main;
    main.sched = &first;
    main.waiter = &waiter;
    REQUIRE(first.runMain(&main) == RunStatus::Ok);
    CHECK(finalizerWaiterCount() == waiters0 + 1);
    gcDetach(&first);
  }
  CHECK(finalizerWaiterCount() == waiters0);

  Sched second(1);
  gcAttach(&second);
  setGCPercent(-1);
  static Record rec;
  rec.runs = 0;
  struct Body final : GBody {
    int phase = 0;
    Step run(G*, std::uint32_t) override {
      if (phase++ == 0) {
        REQUIRE(setFinalizer(newNode(3), &recordFinalizer, &rec));
        gcCollect();  // the node is garbage: its sweep queues the finalizer
        return Step::yield();
      }
      if (rec.runs.load() == 0) {  // the finalizer's run reaches the old waiter's target
        wakeFinalizerG();
        return Step::yield();
      }
      return Step::exit();
    }
  } body;
  REQUIRE(second.runMain(&body) == RunStatus::Ok);
  CHECK(rec.runs.load() == 1);
  setGCPercent(100);
  gcDetach(&second);
}
