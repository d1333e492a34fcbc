// pinner_test.cc: Pinner (pinner.h) and the span side of pinning (pinnerbits.h).
//
// The cycle tests here use a small stand-in collector (testCycle below) so that they
// control exactly what is marked: flush the P, start a sweep cycle, mark transitively
// from the pinner's registered root scanner and the test's own roots through TypeInfo
// trace functions, run the finalizer of every unmarked inner pinner (what the
// collector's finalizer queue does), then sweep. No world is attached in this binary,
// so the real gcCollect() calls below return at once; pinner_gc_test.cc runs the leak
// finalizer through the real collector (gcAttach, gcCollect, the finalizer G).
#include "runtime/pinner.h"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <functional>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "runtime/gc.h"
#include "runtime/heap_testing.h"
#include "runtime/malloc.h"
#include "runtime/mgcsweep.h"
#include "runtime/phooks.h"
#include "runtime/pinnerbits.h"

namespace spindle::runtime {
namespace {

using testing::TestP;

ObjectRef refOf(const void* p) {
  ObjectRef ref;
  REQUIRE(mheap().findObject(p, &ref));
  return ref;
}

std::uint8_t stateOf(const void* p) {
  ObjectRef ref = refOf(p);
  std::uint8_t* bits = loadPinnerBits(ref.span);
  return bits == nullptr ? 0 : pinState(bits, ref.index);
}

// --- the stand-in collector -----------------------------------------------------------
void markFrom(void* root, std::vector<void*>& work) {
  work.push_back(root);
  while (!work.empty()) {
    void* p = work.back();
    work.pop_back();
    ObjectRef ref;
    if (p == nullptr || !mheap().findObject(p, &ref) || ref.span->isMarked(ref.index)) continue;
    ref.span->setMarked(ref.index);
    if (ref.span->spanclass.noscan()) continue;
    auto* hdr = reinterpret_cast<ObjectHeader*>(ref.base);
    if (hdr->type == nullptr || hdr->type->trace == nullptr) continue;
    hdr->type->trace(reinterpret_cast<void*>(ref.base),
                     [](void* ctx, void** slot) { static_cast<std::vector<void*>*>(ctx)->push_back(*slot); },
                     &work);
  }
}

// The set of objects reachable from the pinner's roots.
std::vector<void*> pinnerRootObjects() {
  std::vector<void*> out;
  forEachPinnerRoot([](void* ctx, void** slot) { static_cast<std::vector<void*>*>(ctx)->push_back(*slot); },
                    &out);
  return out;
}

bool isMarkedObj(const void* p) {
  ObjectRef ref = refOf(p);
  return ref.span->isMarked(ref.index);
}

// One cycle of the stand-in collector. `mark` marks the live set (by default: from the
// pinner's roots and `roots`); unmarked inner pinners are then kept for their finalizer,
// which runs; `beforeSweep` may inspect the marks.
void testCycleWith(P* p, const std::function<void(std::vector<void*>&)>& mark,
                   const std::function<void()>& beforeSweep = {}) {
  MHeap& h = mheap();
  p->mcache->releaseAll();
  startSweepCycle(h);
  std::vector<void*> work;
  mark(work);
  std::vector<void*> inners;
  forEachInnerPinner([](void* ctx, void** slot) { static_cast<std::vector<void*>*>(ctx)->push_back(*slot); },
                     &inners);
  for (void* in : inners) {
    if (!isMarkedObj(in)) {
      markFrom(in, work);  // kept alive for its finalizer, as the collector does
      pinnerFinalizer(in, nullptr);
    }
  }
  if (beforeSweep) beforeSweep();
  finishSweep(h);
}

void testCycle(P* p, const std::vector<void*>& roots) {
  testCycleWith(p, [&](std::vector<void*>& work) {
    for (void* r : pinnerRootObjects()) markFrom(r, work);
    for (void* r : roots) markFrom(r, work);
  });
}

// The inner pinner of a Pinner (the only pointer in it; test-only peek).
void* innerOf(Pinner& pinner) {
  void* in = nullptr;
  pinner.trace([](void* ctx, void** slot) { *static_cast<void**>(ctx) = *slot; }, &in);
  return in;
}

// A heap object holding a Traced Pinner, as the VM's script-level Pinner does.
struct Holder {
  ObjectHeader header;
  Pinner pinner;
};
void traceHolder(void* o, VisitFn visit, void* ctx) { static_cast<Holder*>(o)->pinner.trace(visit, ctx); }
const TypeInfo kHolderType{"test pinner holder", sizeof(Holder), traceHolder};
Holder* newHolder() {
  auto* h = new (mallocgc(sizeof(Holder), &kHolderType)) Holder{{&kHolderType}, Pinner(Pinner::Holding::Traced)};
  return h;
}

// Capture stderr around f.
template <typename F>
std::string captureStderr(F f) {
  std::fflush(stderr);
  char name[] = "/tmp/pinner_test_XXXXXX";
  const int fd = mkstemp(name);
  REQUIRE(fd >= 0);
  const int saved = dup(2);
  dup2(fd, 2);
  f();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::string out;
  char buf[512];
  lseek(fd, 0, SEEK_SET);
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  close(fd);
  unlink(name);
  return out;
}

TEST_CASE("pin sets the object's pin bit; unpin clears it") {
  TestP p(0);
  char* obj = static_cast<char*>(mallocgc(48, nullptr));
  char* neighbour = static_cast<char*>(mallocgc(48, nullptr));
  Pinner pinner;
  CHECK_FALSE(Pinner::isPinned(obj));
  REQUIRE(pinner.pin(obj + 7) == PinError::Ok);  // interior pointers pin the object
  CHECK(Pinner::isPinned(obj));
  CHECK(Pinner::isPinned(obj + 47));
  CHECK_FALSE(Pinner::isPinned(neighbour));
  CHECK(refOf(obj).span->pinnerBits != nullptr);
  CHECK(stateOf(obj) == kPinnedBit);
  CHECK(pinner.pinCount() == 1);
  REQUIRE(pinner.pin(neighbour) == PinError::Ok);
  CHECK(Pinner::isPinned(neighbour));
  pinner.unpin();
  CHECK(pinner.pinCount() == 0);
  CHECK_FALSE(Pinner::isPinned(obj));
  CHECK_FALSE(Pinner::isPinned(neighbour));
  CHECK(stateOf(obj) == 0);
  // Large objects (their own span) too.
  void* big = mallocgc(100 << 10, nullptr);
  REQUIRE(pinner.pin(big) == PinError::Ok);
  CHECK(Pinner::isPinned(static_cast<char*>(big) + 99999));
  pinner.unpin();
  CHECK_FALSE(Pinner::isPinned(big));
}

TEST_CASE("pinning the same object many times counts in a pin-counter special") {
  TestP p(0);
  void* obj = mallocgc(32, nullptr);
  MSpan* s = refOf(obj).span;
  Pinner a;
  for (int i = 0; i < 1000; ++i) REQUIRE(a.pin(obj) == PinError::Ok);
  CHECK(a.pinCount() == 1000);
  CHECK(stateOf(obj) == (kPinnedBit | kMultiPinnedBit));
  {
    std::lock_guard<std::mutex> g(s->specialLock);
    SpecialPinCounter* c = findPinCounter(s, refOf(obj).index * s->elemsize);
    REQUIRE(c != nullptr);
    CHECK(c->count == 999);
  }
  // A second Pinner's pins count too; unpinning one leaves the other's.
  Pinner b;
  REQUIRE(b.pin(obj) == PinError::Ok);
  a.unpin();
  CHECK(Pinner::isPinned(obj));
  CHECK(stateOf(obj) == kPinnedBit);
  {
    std::lock_guard<std::mutex> g(s->specialLock);
    CHECK(findPinCounter(s, refOf(obj).index * s->elemsize) == nullptr);
  }
  b.unpin();
  CHECK_FALSE(Pinner::isPinned(obj));
  CHECK(stateOf(obj) == 0);
}

TEST_CASE("counters keep the specials list sorted by offset, then kind") {
  TestP p(0);
  std::vector<void*> objs;
  for (int i = 0; i < 8; ++i) objs.push_back(mallocgc(16, nullptr));
  Pinner pinner;
  for (int k = 7; k >= 0; k -= 2) {  // reverse order, every other object, twice each
    REQUIRE(pinner.pin(objs[k]) == PinError::Ok);
    REQUIRE(pinner.pin(objs[k]) == PinError::Ok);
  }
  MSpan* s = refOf(objs[0]).span;
  {
    std::lock_guard<std::mutex> g(s->specialLock);
    std::uint32_t last = 0;
    int n = 0;
    for (Special* sp = s->specials; sp != nullptr; sp = sp->next) {
      if (n++ > 0) CHECK(sp->offset > last);
      last = sp->offset;
    }
    CHECK(n >= 4);
  }
  pinner.unpin();
  for (void* o : objs) CHECK_FALSE(Pinner::isPinned(o));
}

int aGlobal;

TEST_CASE("pinning a non-heap or free pointer is an error, not a crash") {
  TestP p(0);
  Pinner pinner;
  int local = 0;
  CHECK(pinner.pin(&local) == PinError::NotHeapObject);
  CHECK(pinner.pin(&aGlobal) == PinError::NotHeapObject);
  CHECK(pinner.pin(nullptr) == PinError::NotHeapObject);
  std::vector<int> v(16);
  CHECK(pinner.pin(v.data()) == PinError::NotHeapObject);
  // Manual (runtime-owned) spans are not heap objects either.
  MSpan* manual = mheap().allocSpan(1, SpanKind::Manual, SpanClass{});
  REQUIRE(manual != nullptr);
  CHECK(pinner.pin(reinterpret_cast<void*>(manual->base())) == PinError::NotHeapObject);
  // A freed span: its pages no longer belong to any span.
  const std::uintptr_t freedAddr = manual->base();
  mheap().freeSpan(manual);
  CHECK(pinner.pin(reinterpret_cast<void*>(freedAddr)) == PinError::NotHeapObject);
  // A free slot of the span this P allocates from.
  char* obj = nullptr;
  ObjectRef ref;
  for (int i = 0; i < 16; ++i) {  // an object whose next slot is free
    obj = static_cast<char*>(mallocgc(3000, nullptr));
    ref = refOf(obj);
    if (ref.index + 1 < ref.span->nelems && ref.span->isFree(ref.index + 1)) break;
  }
  REQUIRE(ref.span->isFree(ref.index + 1));
  CHECK(pinner.pin(obj + ref.span->elemsize) == PinError::FreeObject);
  CHECK(pinner.pinCount() == 0);
  CHECK(std::string(pinErrorMessage(PinError::FreeObject)).find("free") != std::string::npos);
  CHECK_FALSE(Pinner::isPinned(&local));
}

TEST_CASE("the root scanner reports held pinners, and their refs reach the pinned objects") {
  TestP p(0);
  std::vector<void*> objs;
  for (int i = 0; i < 40; ++i) objs.push_back(mallocgc(64, nullptr));  // > inline refs: a store
  Pinner pinner;
  for (void* o : objs) REQUIRE(pinner.pin(o) == PinError::Ok);
  void* inner = innerOf(pinner);
  REQUIRE(inner != nullptr);
  std::vector<void*> roots = pinnerRootObjects();
  CHECK(std::find(roots.begin(), roots.end(), inner) != roots.end());
  // Trace from the roots: every pinned object is reached.
  testCycleWith(
      p.get(), [&](std::vector<void*>& work) { for (void* r : roots) markFrom(r, work); },
      [&] { for (void* o : objs) CHECK(isMarkedObj(o)); });
  pinner.unpin();
}

TEST_CASE("a pinned object with no other reference survives cycles at its address; after unpin it goes") {
  TestP p(0);
  MHeap& h = mheap();
  auto* obj = static_cast<std::uint64_t*>(mallocgc(64, nullptr));
  for (int i = 0; i < 8; ++i) obj[i] = 0xC0FFEE00u + static_cast<std::uint64_t>(i);
  const std::uintptr_t addr = reinterpret_cast<std::uintptr_t>(obj);
  Pinner pinner;
  REQUIRE(pinner.pin(obj) == PinError::Ok);
  obj = nullptr;  // only the pinner refers to it now
  for (int cycle = 0; cycle < 10; ++cycle) {
    testCycle(p.get(), {});
    unbindP();  // gcCollect: from a thread without a P
    gcCollect();
    bindP(p.get());
    for (int i = 0; i < 1000; ++i) mallocgc(64, nullptr);  // garbage that reuses freed slots
    ObjectRef ref;
    REQUIRE(h.findObject(reinterpret_cast<void*>(addr), &ref));
    CHECK(ref.base == addr);
    CHECK(Pinner::isPinned(reinterpret_cast<void*>(addr)));
    auto* words = reinterpret_cast<std::uint64_t*>(addr);
    for (int i = 0; i < 8; ++i) REQUIRE(words[i] == 0xC0FFEE00u + static_cast<std::uint64_t>(i));
  }
  pinner.unpin();
  testCycle(p.get(), {});
  // Gone: its span was freed, or its slot is free again.
  ObjectRef ref;
  const bool freed = !h.findObject(reinterpret_cast<void*>(addr), &ref) || !ref.span->isAllocatedBit(ref.index);
  CHECK(freed);
}

TEST_CASE("sweep drops pin bits and counters of dead objects and keeps live ones") {
  TestP p(0);
  void* live = mallocgc(80, nullptr);
  void* dead = mallocgc(80, nullptr);
  MSpan* s = refOf(live).span;
  REQUIRE(refOf(dead).span == s);
  Pinner pinner;
  REQUIRE(pinner.pin(live) == PinError::Ok);
  REQUIRE(pinner.pin(live) == PinError::Ok);
  // `dead` carries a pin state (bits and counter) but no pinner refers to it: what a
  // runtime bug would leave. Sweep must not keep its state once it is freed.
  const std::uint32_t deadIndex = refOf(dead).index;
  {
    std::lock_guard<std::mutex> g(s->specialLock);
    pinByte(s->pinnerBits, deadIndex).fetch_or(static_cast<std::uint8_t>(3u << pinShift(deadIndex)));
    addPinCounter(s, deadIndex * s->elemsize)->count = 1;
  }
  std::uint8_t* before = s->pinnerBits;
  testCycle(p.get(), {});
  CHECK(s->pinnerBits != before);  // copied into this epoch's bits
  CHECK(stateOf(live) == (kPinnedBit | kMultiPinnedBit));
  CHECK(pinState(s->pinnerBits, deadIndex) == 0);
  {
    std::lock_guard<std::mutex> g(s->specialLock);
    int counters = 0;
    for (Special* sp = s->specials; sp != nullptr; sp = sp->next) counters += sp->kind == kSpecialPinCounter;
    CHECK(counters == 1);
    CHECK(findPinCounter(s, refOf(live).index * s->elemsize) != nullptr);
  }
  pinner.unpin();
  CHECK_FALSE(Pinner::isPinned(live));
  // After a cycle with no pinned object left in the span, it has no bits at all.
  testCycle(p.get(), {live});
  CHECK(s->pinnerBits == nullptr);
}

TEST_CASE("the second Pinner on a P allocates nothing; the cache is dropped by the P hooks") {
  TestP p(0);
  void* obj = mallocgc(16, nullptr);
  {
    Pinner first;
    REQUIRE(first.pin(obj) == PinError::Ok);
    first.unpin();  // the inner pinner goes to the P's cache
  }
  CHECK(p.get()->pinnerCache != nullptr);
  const PinnerStats before = pinnerStats();
  for (int i = 0; i < 100; ++i) {
    Pinner second;
    REQUIRE(second.pin(obj) == PinError::Ok);
    second.unpin();
  }
  {
    Pinner reused;
    for (int k = 0; k < 3; ++k) {  // repeated Pin+Unpin on one Pinner
      REQUIRE(reused.pin(obj) == PinError::Ok);
      reused.unpin();
    }
  }
  CHECK(pinnerStats().heapAllocs() == before.heapAllocs());
  // Growth keeps its store across unpin: a second batch of 100 allocates nothing.
  {
    std::vector<void*> objs;
    for (int i = 0; i < 100; ++i) objs.push_back(mallocgc(16, nullptr));
    Pinner batch;
    for (void* o : objs) REQUIRE(batch.pin(o) == PinError::Ok);
    batch.unpin();
    const PinnerStats mid = pinnerStats();
    for (void* o : objs) REQUIRE(batch.pin(o) == PinError::Ok);
    batch.unpin();
    CHECK(pinnerStats().heapAllocs() == mid.heapAllocs());
  }
  void* cached = p.get()->pinnerCache;
  REQUIRE(cached != nullptr);
  runPGCMarkDoneHooks(p.get());
  CHECK(p.get()->pinnerCache == nullptr);
  // A dropped pinner is no longer a root; its finalizer, when it comes, is silent.
  std::vector<void*> roots = pinnerRootObjects();
  CHECK(std::find(roots.begin(), roots.end(), cached) == roots.end());
  CHECK(captureStderr([&] { pinnerFinalizer(cached, nullptr); }).empty());
  // The next Pinner allocates a fresh inner pinner; P destruction drops it again.
  {
    Pinner third;
    REQUIRE(third.pin(obj) == PinError::Ok);
    third.unpin();
  }
  CHECK(pinnerStats().innerAllocs == before.innerAllocs + 1);
  REQUIRE(p.get()->pinnerCache != nullptr);
  runPDestroyHooks(p.get());
  CHECK(p.get()->pinnerCache == nullptr);
}

TEST_CASE("the leak finalizer reports a pinner dropped with pins, and unpins") {
  TestP p(0);
  void* obj = mallocgc(24, nullptr);
  // Called directly (through the real collector: pinner_gc_test.cc).
  Holder* holder = newHolder();
  REQUIRE(holder->pinner.pin(obj) == PinError::Ok);
  void* inner = innerOf(holder->pinner);
  const std::uint64_t leaks0 = pinnerStats().leaks;
  const std::string err = captureStderr([&] { pinnerFinalizer(inner, nullptr); });
  CHECK(err == "pinner: found leaking pinned pointer; forgot to call unpin()?\n");
  CHECK(pinnerStats().leaks == leaks0 + 1);
  CHECK_FALSE(Pinner::isPinned(obj));
  CHECK(holder->pinner.pinCount() == 0);
  // A finalized inner pinner never goes back to the cache.
  runPGCMarkDoneHooks(p.get());
  holder->pinner.unpin();
  CHECK(p.get()->pinnerCache == nullptr);

  // Through a cycle: a holder nobody references any more.
  Holder* lost = newHolder();
  REQUIRE(lost->pinner.pin(obj) == PinError::Ok);
  lost = nullptr;
  std::string err2 = captureStderr([&] { testCycle(p.get(), {obj}); });
  CHECK(err2.find("forgot to call unpin()") != std::string::npos);
  CHECK_FALSE(Pinner::isPinned(obj));
  // A held, a cached and an empty pinner are all tolerated silently.
  Pinner held;
  REQUIRE(held.pin(obj) == PinError::Ok);
  CHECK(captureStderr([&] { pinnerFinalizer(innerOf(held), nullptr); }).empty());
  CHECK(Pinner::isPinned(obj));
  held.unpin();
  REQUIRE(p.get()->pinnerCache != nullptr);
  CHECK(captureStderr([&] { pinnerFinalizer(p.get()->pinnerCache, nullptr); }).empty());
  runPGCMarkDoneHooks(p.get());
}

TEST_CASE("a C++ Pinner destroyed while holding pins is reported and unpins") {
  TestP p(0);
  void* obj = mallocgc(24, nullptr);
  std::string err = captureStderr([&] {
    Pinner pinner;
    REQUIRE(pinner.pin(obj) == PinError::Ok);
  });
  CHECK(err == "pinner: found leaking pinned pointer; forgot to call unpin()?\n");
  CHECK_FALSE(Pinner::isPinned(obj));
}

TEST_CASE("Ps pin concurrently, sharing objects") {
  constexpr int kThreads = 4;
  std::vector<void*> shared;
  {
    TestP p(100);
    for (int i = 0; i < 64; ++i) shared.push_back(mallocgc(16, nullptr));
  }
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      TestP p(101 + t);
      std::vector<void*> own;
      for (int i = 0; i < 64; ++i) own.push_back(mallocgc(16, nullptr));
      Pinner pinner;
      for (int round = 0; round < 200 * testing::kScale; ++round) {
        for (int i = 0; i < 8; ++i) {
          REQUIRE(pinner.pin(own[static_cast<std::size_t>((round + i) % 64)]) == PinError::Ok);
          REQUIRE(pinner.pin(shared[static_cast<std::size_t>((round * 7 + i + t) % 64)]) == PinError::Ok);
        }
        CHECK(Pinner::isPinned(own[static_cast<std::size_t>(round % 64)]));
        pinner.unpin();
      }
      for (void* o : own) CHECK_FALSE(Pinner::isPinned(o));
      runPDestroyHooks(p.get());
    });
  }
  for (auto& t : ts) t.join();
  for (void* o : shared) CHECK_FALSE(Pinner::isPinned(o));
}

#if SPINDLE_DCHECKS_ON
// setPinned's lock-free path loads the span's sweepgen, then its pin bitmap. A sweep of
// the span replaces the bitmap (copying the marked objects' bits into the new epoch)
// before its release store of sweepgen. Here that sweep finishes exactly between the two
// loads: read in this order, the pin goes to the slow path and is kept; read the other
// way round, it would be CASed into the replaced bitmap and lost (the later unpin then
// fatal: "already unpinned").
TEST_CASE("a sweep finishing between setPinned's two loads keeps the pin") {
  TestP p(0);
  MHeap& h = mheap();
  void* a = mallocgc(80, nullptr);
  void* x = mallocgc(80, nullptr);
  MSpan* s = refOf(a).span;
  REQUIRE(refOf(x).span == s);
  Pinner keep;  // gives the span a bitmap that the sweep below replaces
  REQUIRE(keep.pin(a) == PinError::Ok);
  // A cycle whose mark keeps a and x, with s left unswept.
  p.get()->mcache->releaseAll();
  startSweepCycle(h);
  for (void* o : {a, x}) refOf(o).span->setMarked(refOf(o).index);
  std::uint8_t* before = loadPinnerBits(s);
  setPinnedTestHook([](MSpan* sp) { ensureSwept(mheap(), sp); });
  Pinner pinner;
  REQUIRE(pinner.pin(x) == PinError::Ok);
  CHECK(loadPinnerBits(s) != before);  // the sweep ran inside pin and replaced the bits
  CHECK(Pinner::isPinned(x));
  CHECK(Pinner::isPinned(a));
  finishSweep(h);
  pinner.unpin();  // fatal if the pin was lost
  keep.unpin();
  CHECK_FALSE(Pinner::isPinned(x));
}
#endif

}  // namespace
}  // namespace spindle::runtime
