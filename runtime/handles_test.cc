// The typed C++ API: make<T> and TypeInfos, Member (trace + barrier), HandleScope/Local
// and Persistent as roots (what their scanners report, concurrently with their owners),
// and liveness through a hand-driven cycle (and through gcCollect once the real
// collector is linked).
#include "runtime/handles.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "runtime/proc.h"
#include "runtime/testing/handmark.h"

using namespace spindle::runtime;
using testing::handCollect;
using testing::isLive;
using testing::TestP;

namespace {

class Tree : public GarbageCollected<Tree> {
 public:
  explicit Tree(int v = 0, Tree* l = nullptr, Tree* r = nullptr) : left(l), right(r), value(v) {}
  Member<Tree> left, right;
  int value;
  void trace(Visitor& v) const {
    v.trace(left);
    v.trace(right);
  }
};

class Blob : public GarbageCollected<Blob> {  // no trace: noscan
 public:
  std::size_t n = 0;
  double* data() { return reinterpret_cast<double*>(this + 1); }
};

std::set<void*> reported(void (*scan)(VisitFn, void*)) {
  std::set<void*> out;
  scan([](void* ctx, void** slot) {
         static_cast<std::set<void*>*>(ctx)->insert(std::atomic_ref<void*>(*slot).load());
       },
       &out);
  return out;
}

testing::RootsFn handleRoots() {
  return [](VisitFn visit, void* ctx) {
    scanHandleStacks(visit, ctx);
    scanPersistents(visit, ctx);
  };
}

}  // namespace

TEST_CASE("make<T>: header, TypeInfo, scan and noscan spans, sized payload") {
  TestP p(200);
  Tree* t = make<Tree>(7);
  CHECK(reinterpret_cast<ObjectHeader*>(t)->type == Tree::typeInfo());
  CHECK((Tree::typeInfo()->trace != nullptr));
  CHECK(Tree::typeInfo()->size == sizeof(Tree));
  CHECK(t->value == 7);
  CHECK(t->left.get() == nullptr);
  ObjectRef ref;
  REQUIRE(mheap().findObject(t, &ref));
  CHECK(ref.base == reinterpret_cast<std::uintptr_t>(t));
  CHECK_FALSE(ref.span->spanclass.noscan());

  Blob* b = makeSized<Blob>(sizeof(Blob) + 1000 * sizeof(double));
  b->n = 1000;
  b->data()[999] = 1.5;
  CHECK((Blob::typeInfo()->trace == nullptr));
  REQUIRE(mheap().findObject(b, &ref));
  CHECK(ref.span->spanclass.noscan());
  CHECK(ref.span->elemsize >= sizeof(Blob) + 1000 * sizeof(double));

  // The trace thunk reports exactly the Members.
  Tree* l = make<Tree>(1);
  t->left = l;
  std::vector<void**> slots;
  Tree::typeInfo()->trace(t, [](void* ctx, void** s) { static_cast<std::vector<void**>*>(ctx)->push_back(s); },
                          &slots);
  REQUIRE(slots.size() == 2);
  CHECK(slots[0] == t->left.slot());
  CHECK(*slots[0] == l);
  CHECK(*slots[1] == nullptr);
  handCollect(p.get(), [](VisitFn, void*) {});
}

TEST_CASE("Local and HandleScope: the scanner reports live Locals only, scopes nest") {
  TestP p(201);
  Tree* a = make<Tree>(1);
  Tree* b = make<Tree>(2);
  Tree* c = make<Tree>(3);
  const std::set<void*> before = reported(&scanHandleStacks);
  {
    HandleScope outer;
    Local<Tree> la(a);
    Local<Tree> copy = la;  // same slot
    CHECK(copy.get() == a);
    {
      HandleScope inner;
      Local<Tree> lb(b);
      Local<Tree> lc(c);
      std::set<void*> r = reported(&scanHandleStacks);
      CHECK(r.count(a) == 1);
      CHECK(r.count(b) == 1);
      CHECK(r.count(c) == 1);
      CHECK(lb->value == 2);
    }
    std::set<void*> r = reported(&scanHandleStacks);
    CHECK(r.count(a) == 1);
    CHECK(r.count(b) == 0);
    CHECK(r.count(c) == 0);
    // Many handles: the stack grows by blocks.
    HandleScope many;
    std::vector<Local<Tree>> ls;
    for (int i = 0; i < 1000; i++) ls.emplace_back(i % 2 ? b : c);
    r = reported(&scanHandleStacks);
    CHECK(r.count(b) == 1);
    CHECK(ls[999].get() == b);
  }
  CHECK(reported(&scanHandleStacks) == before);
  handCollect(p.get(), [](VisitFn, void*) {});
}

TEST_CASE("Local: another thread's handles are roots until that thread exits") {
  TestP p(202);
  Tree* t = make<Tree>(5);
  std::atomic<int> stage{0};
  std::thread th([&] {
    HandleScope scope;
    Local<Tree> l(t);
    stage = 1;
    while (stage.load() != 2) std::this_thread::yield();
  });
  while (stage.load() != 1) std::this_thread::yield();
  CHECK(reported(&scanHandleStacks).count(t) == 1);
  stage = 2;
  th.join();
  CHECK(reported(&scanHandleStacks).count(t) == 0);
  handCollect(p.get(), [](VisitFn, void*) {});
}

TEST_CASE("Persistent: a global root until destroyed; copy, assign, reset") {
  TestP p(203);
  Tree* a = make<Tree>(1);
  Tree* b = make<Tree>(2);
  {
    Persistent<Tree> pa(a);
    CHECK(reported(&scanPersistents).count(a) == 1);
    Persistent<Tree> copy = pa;
    pa = b;
    CHECK(pa.get() == b);
    CHECK(copy.get() == a);
    std::set<void*> r = reported(&scanPersistents);
    CHECK(r.count(a) == 1);
    CHECK(r.count(b) == 1);
    copy.reset();
    CHECK(reported(&scanPersistents).count(a) == 0);
  }
  CHECK(reported(&scanPersistents).count(b) == 0);
  handCollect(p.get(), [](VisitFn, void*) {});
}

TEST_CASE("Persistent and Local: created and dropped on several threads while scanned") {
  TestP p(204);
  std::vector<Tree*> objs;
  for (int i = 0; i < 8; i++) objs.push_back(make<Tree>(i));
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> seen{0};
  std::thread scanner([&] {
    while (!stop.load()) {
      scanPersistents([](void* ctx, void** s) {
        if (std::atomic_ref<void*>(*s).load(std::memory_order_relaxed) != nullptr)
          static_cast<std::atomic<std::uint64_t>*>(ctx)->fetch_add(1, std::memory_order_relaxed);
      }, &seen);
      scanHandleStacks([](void*, void** s) { (void)std::atomic_ref<void*>(*s).load(std::memory_order_relaxed); },
                       nullptr);
    }
  });
  std::vector<std::thread> ts;
  for (int t = 0; t < 3; t++) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 2000; i++) {
        HandleScope scope;
        Persistent<Tree> keep(objs[(t + i) % 8]);
        Local<Tree> l(keep.get());
        keep = objs[(t + i + 1) % 8];
        CHECK(l.get() == objs[(t + i) % 8]);
      }
    });
  }
  for (auto& t : ts) t.join();
  stop = true;
  scanner.join();
  for (Tree* o : objs) CHECK(reported(&scanPersistents).count(o) == 0);
  handCollect(p.get(), [](VisitFn, void*) {});
}

TEST_CASE("handles keep objects and what their Members reach alive through a cycle") {
  TestP p(205);
  Tree* garbage = make<Tree>(0, make<Tree>(-1));
  Tree* viaLocal;
  Tree* viaPersistent;
  Tree* leaf;
  Persistent<Tree> root;
  {
    HandleScope scope;
    Local<Tree> l(make<Tree>(1));
    viaLocal = l.get();
    leaf = make<Tree>(3);
    root = make<Tree>(2, leaf);
    viaPersistent = root.get();
    l->right = make<Tree>(4);  // reachable only through a Member of a Local
    handCollect(p.get(), handleRoots());
    CHECK(isLive(viaLocal));
    CHECK(isLive(l->right.get()));
    CHECK(l->right->value == 4);
    CHECK(isLive(viaPersistent));
    CHECK(isLive(leaf));
    CHECK_FALSE(isLive(garbage));
  }
  handCollect(p.get(), handleRoots());
  CHECK_FALSE(isLive(viaLocal));
  CHECK(isLive(viaPersistent));
  CHECK(root->left->value == 3);
  root->left = nullptr;
  handCollect(p.get(), handleRoots());
  CHECK_FALSE(isLive(leaf));
  root.reset();
  handCollect(p.get(), handleRoots());
  CHECK_FALSE(isLive(viaPersistent));
}

// Through the collector: runs its checks once gcCollect really frees (the placeholder
// frees nothing; then only the API is exercised).
TEST_CASE("handles through gcAttach/gcCollect") {
  Sched sched(1);
  gcAttach(&sched);
  struct Body final : GBody {
    bool real = false, ok = true;
    Step run(G*, std::uint32_t) override {
      Persistent<Tree> keep(make<Tree>(1, make<Tree>(2)));
      HandleScope scope;
      Local<Tree> local(make<Tree>(3));
      Tree* probe = make<Tree>(4);
      gcCollect();
      real = !isLive(probe);
      ok = isLive(keep.get()) && isLive(keep->left.get()) && isLive(local.get()) &&
           keep->left->value == 2 && local->value == 3;
      return Step::exit();
    }
  } body;
  REQUIRE(sched.runMain(&body) == RunStatus::Ok);
  CHECK(body.ok);
  if (!body.real) MESSAGE("placeholder collector: gcCollect frees nothing");
  gcDetach(&sched);
}
