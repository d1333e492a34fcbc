// mallocgc: size classes, scan/noscan, zeroing, large objects, bulk release by
// sweeping, the sweepgen protocol on cached spans, and allocation from several Ps.
#include "runtime/malloc.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "runtime/heap_testing.h"
#include "runtime/testing/child.h"

using namespace spindle::runtime;
using testing::bulkReleaseAll;
using testing::kScale;
using testing::PoisonOff;
using testing::TestP;

namespace {
void traceNothing(void*, VisitFn, void*) {}
const TypeInfo kScanType{"Pair", 24, &traceNothing};
const TypeInfo kNoscanTyped{"Blob", 32, nullptr};
}  // namespace

TEST_CASE("mallocgc: every small size gets a distinct object of its class") {
  TestP p(0);
  MHeap& h = mheap();
  std::set<std::uintptr_t> seen;
  for (std::size_t size = 1; size <= kMaxSmallSize; size += (size < 1024 ? 7 : 509)) {
    void* v = mallocgc(size, nullptr);
    REQUIRE(v != nullptr);
    const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(v);
    CHECK(a % 8 == 0);
    CHECK(seen.insert(a).second);
    ObjectRef ref;
    REQUIRE(h.findObject(v, &ref));
    CHECK(ref.base == a);
    CHECK(ref.span->spanclass == SpanClass::make(sizeToClass(size), true));
    CHECK(ref.span->elemsize >= size);
    std::memset(v, 0x5a, size);
  }
  bulkReleaseAll(p.get());
}

TEST_CASE("mallocgc: scan objects carry their TypeInfo header and live in scan spans") {
  TestP p(0);
  MHeap& h = mheap();
  void* scan = mallocgc(kScanType.size, &kScanType);
  void* noscanTyped = mallocgc(kNoscanTyped.size, &kNoscanTyped);
  void* raw = mallocgc(24, nullptr);
  CHECK(static_cast<ObjectHeader*>(scan)->type == &kScanType);
  CHECK(static_cast<ObjectHeader*>(noscanTyped)->type == &kNoscanTyped);
  ObjectRef r1, r2, r3;
  REQUIRE(h.findObject(scan, &r1));
  REQUIRE(h.findObject(noscanTyped, &r2));
  REQUIRE(h.findObject(raw, &r3));
  CHECK_FALSE(r1.span->spanclass.noscan());
  CHECK(r2.span->spanclass.noscan());
  CHECK(r3.span->spanclass.noscan());
  CHECK(r1.span != r3.span);  // same size, different span classes
  bulkReleaseAll(p.get());
}

TEST_CASE("mallocgc: reused memory is zeroed, fresh memory is not touched twice") {
  TestP p(0);
  constexpr std::size_t kSize = 256;
  std::vector<void*> objs;
  for (int i = 0; i < 200; ++i) {
    void* v = mallocgc(kSize, nullptr);
    const auto* bytes = static_cast<const unsigned char*>(v);
    CHECK(std::all_of(bytes, bytes + kSize, [](unsigned char b) { return b == 0; }));
    std::memset(v, 0xab, kSize);
    objs.push_back(v);
  }
  bulkReleaseAll(p.get());
  // Empty spans went back to the page allocator; hand back the P's page cache too so
  // the next spans come from the lowest free pages: the ones just released.
  mheap().flushPageCache(p.get());
  std::set<void*> old(objs.begin(), objs.end());
  int reused = 0;
  for (int i = 0; i < 200; ++i) {
    void* v = mallocgc(kSize, nullptr);
    reused += old.count(v) != 0;
    const auto* bytes = static_cast<const unsigned char*>(v);
    REQUIRE(std::all_of(bytes, bytes + kSize, [](unsigned char b) { return b == 0; }));
  }
  CHECK(reused > 0);  // the released memory really was handed out again
  bulkReleaseAll(p.get());
}

namespace {
bool allBytes(const void* v, std::size_t n, unsigned char want) {
  const auto* p = static_cast<const unsigned char*>(v);
  return std::all_of(p, p + n, [want](unsigned char b) { return b == want; });
}
MSpan* spanOfObject(void* v) {
  ObjectRef ref;
  REQUIRE(mheap().findObject(v, &ref));
  return ref.span;
}
}  // namespace

TEST_CASE("mallocgc: needzero=false returns noscan memory as is; one memset zeroes a fresh span") {
  PoisonOff noPoison;  // poisoned spans are zeroed slot by slot, never with Rest
  TestP p(0);
  constexpr std::size_t kSize = 256;
  std::set<void*> dirty;
  for (int i = 0; i < 300; ++i) {
    void* v = mallocgc(kSize, nullptr);
    std::memset(v, 0xab, kSize);
    dirty.insert(v);
  }
  bulkReleaseAll(p.get());
  mheap().flushPageCache(p.get());  // the next span takes the pages just released

  void* a = mallocgc(kSize, nullptr, /*needzero=*/false);
  MSpan* s = spanOfObject(a);
  REQUIRE(dirty.count(a) == 1);
  CHECK(s->needzero == NeedZero::Rest);  // a fresh span on used pages
  CHECK(allBytes(a, kSize, 0xab));        // handed out as it was
  std::memset(a, 0x11, kSize);
  // The first zeroing allocation clears every slot from its own to the span's end...
  void* b = mallocgc(kSize, nullptr);
  CHECK(spanOfObject(b) == s);
  CHECK(allBytes(b, kSize, 0));
  CHECK(s->needzero == NeedZero::No);
  CHECK(allBytes(a, kSize, 0x11));  // ...and nothing before it
  const auto end = s->limit.load(std::memory_order_relaxed);
  const auto from = reinterpret_cast<std::uintptr_t>(b);
  CHECK(allBytes(b, end - from, 0));
  // The span is clean now: even needzero=false allocations from it are zero.
  void* c = mallocgc(kSize, nullptr, /*needzero=*/false);
  CHECK(spanOfObject(c) == s);
  CHECK(allBytes(c, kSize, 0));
  bulkReleaseAll(p.get());
}

TEST_CASE("mallocgc: a span swept empty for reuse is zeroed in one pass; with survivors, each") {
  PoisonOff noPoison;
  TestP p(0);
  MHeap& h = mheap();
  constexpr std::size_t kSize = 1024;
  std::vector<void*> objs;
  for (int i = 0; i < 200; ++i) {
    objs.push_back(mallocgc(kSize, nullptr));
    std::memset(objs.back(), 0xcd, kSize);
  }
  MSpan* keep = spanOfObject(objs.front());
  keep->setMarked(keep->objIndex(reinterpret_cast<std::uintptr_t>(objs.front())));
  p.get()->mcache->releaseAll();
  startSweepCycle(h);
  // No background sweep: the allocations below sweep what cacheSpan takes (preserve).
  int rest = 0, each = 0;
  for (int i = 0; i < 200; ++i) {
    void* v = mallocgc(kSize, nullptr);
    MSpan* s = spanOfObject(v);
    if (s == keep) {
      ++each;
      CHECK(v != objs.front());  // the marked object survived
    } else {
      ++rest;
    }
    CHECK(allBytes(v, kSize, 0));
  }
  CHECK(rest > 0);
  CHECK(each > 0);
  CHECK(allBytes(objs.front(), kSize, 0xcd));  // the survivor was not cleared
  CHECK(keep->needzero == NeedZero::Each);
  p.get()->mcache->releaseAll();
  finishSweep(h);
  bulkReleaseAll(p.get());
}

TEST_CASE("mallocgc: needzero=false for a scan type is a fatal error") {
  auto [died, err] = testing::runChild([] {
    TestP p(0);
    mallocgc(kScanType.size, &kScanType, /*needzero=*/false);
  });
  CHECK(died);
  CHECK(err.find("needzero=false for scan type Pair") != std::string::npos);
}

TEST_CASE("mallocgc: large objects get their own span, zeroed, and are released by sweeping") {
  TestP p(0);
  MHeap& h = mheap();
  const std::size_t size = 100 * 1024 + 5;
  const auto inUseBefore = h.readStats().heapInUse;
  void* v = mallocgc(size, &kScanType);
  ObjectRef ref;
  REQUIRE(h.findObject(static_cast<char*>(v) + size - 1, &ref));
  CHECK(ref.base == reinterpret_cast<std::uintptr_t>(v));
  CHECK(ref.index == 0);
  CHECK(ref.span->spanclass.sizeclass() == 0);
  CHECK(ref.span->npages == (size + kPageSize - 1) / kPageSize);
  CHECK(static_cast<ObjectHeader*>(v)->type == &kScanType);
  std::memset(static_cast<char*>(v) + 8, 0xcd, size - 8);
  CHECK(h.readStats().heapInUse >= inUseBefore + static_cast<std::int64_t>(size));
  bulkReleaseAll(p.get());
  CHECK_FALSE(h.findObject(v, &ref));
  CHECK(h.readStats().heapInUse == inUseBefore);
  // Same pages again (first fit), zeroed.
  void* w = mallocgc(size, nullptr);
  const auto* bytes = static_cast<const unsigned char*>(w);
  CHECK(std::all_of(bytes, bytes + size, [](unsigned char b) { return b == 0; }));
  bulkReleaseAll(p.get());
}

TEST_CASE("sweep: bulk release frees every unmarked object; marked objects survive") {
  TestP p(0);
  MHeap& h = mheap();
  const std::uint8_t sc = sizeToClass(64);
  const auto inUse0 = h.readStats().objectsInUse(sc);
  std::vector<void*> objs;
  for (int i = 0; i < 4096; ++i) {
    objs.push_back(mallocgc(64, nullptr));
    std::memset(objs.back(), 0xee, 64);
  }
  p.get()->mcache->releaseAll();
  CHECK(h.readStats().objectsInUse(sc) == inUse0 + 4096);
  // Mark every 3rd object (what the collector will do), then run a cycle.
  startSweepCycle(h);
  std::set<void*> live;
  for (std::size_t i = 0; i < objs.size(); i += 3) {
    ObjectRef ref;
    REQUIRE(h.findObject(objs[i], &ref));
    ref.span->setMarked(ref.index);
    live.insert(objs[i]);
  }
  finishSweep(h);
  CHECK(h.readStats().objectsInUse(sc) == inUse0 + static_cast<std::int64_t>(live.size()));
  // Allocation now fills the freed slots, never a live one.
  for (int i = 0; i < 2000; ++i) {
    void* v = mallocgc(64, nullptr);
    REQUIRE(live.count(v) == 0);
    // Freed slots of a surviving span hold garbage: they must come back zeroed.
    const auto* bytes = static_cast<const unsigned char*>(v);
    REQUIRE(std::all_of(bytes, bytes + 64, [](unsigned char b) { return b == 0; }));
  }
  bulkReleaseAll(p.get());  // nothing marked this time: everything goes
  CHECK(h.readStats().objectsInUse(sc) == inUse0);
}

TEST_CASE("sweep: a span cached before the sweep began is swept when uncached") {
  TestP p(0);
  MHeap& h = mheap();
  void* v = mallocgc(48, nullptr);
  ObjectRef ref;
  REQUIRE(h.findObject(v, &ref));
  MSpan* s = ref.span;
  const std::uint32_t sg = h.sweepgenLoad();
  CHECK(s->sweepgen.load() == sg + 3);  // swept, then cached
  startSweepCycle(h);
  CHECK(s->sweepgen.load() == h.sweepgenLoad() + 1);  // cached before this sweep: stale
  // The background sweep never touches it...
  while (sweepone(h)) {
  }
  CHECK(s->state() == SpanState::InUse);
  // ...its flush sweeps it. Nothing was marked, so it is empty; it stays in its P's
  // shard, which hands it out first.
  p.get()->mcache->releaseAll();
  CHECK(s->sweepgen.load() == h.sweepgenLoad());
  CHECK(s->allocCount == 0);
  CHECK(s->state() == SpanState::InUse);
  void* w = mallocgc(48, nullptr);
  REQUIRE(h.findObject(w, &ref));
  CHECK(ref.span == s);
  // The next cycle frees it to the heap.
  bulkReleaseAll(p.get());
  CHECK_FALSE(h.findObject(v, &ref));
}

TEST_CASE("mallocgc: several threads, each with its own P, never share an object") {
  constexpr int kThreads = 4;
  const int perThread = 3000 * kScale;
  std::vector<std::vector<std::uint64_t*>> objs(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  static const std::size_t kSizes[] = {8, 16, 24, 48, 64, 100, 256, 700, 1024, 3000, 40000};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      TestP p(t + 1);
      for (int i = 0; i < perThread; ++i) {
        const std::size_t size = kSizes[(i + t) % std::size(kSizes)];
        auto* o = static_cast<std::uint64_t*>(mallocgc(size, nullptr));
        if (o[0] != 0) bad.fetch_add(1);  // must be zero
        o[0] = (std::uint64_t(t) << 32) | std::uint64_t(i);
        objs[t].push_back(o);
      }
      // Check our own objects were not overwritten by another thread.
      for (int i = 0; i < perThread; ++i) {
        if (objs[t][i][0] != ((std::uint64_t(t) << 32) | std::uint64_t(i))) bad.fetch_add(1);
      }
      p.get()->mcache->releaseAll();
    });
  }
  for (auto& th : threads) th.join();
  CHECK(bad.load() == 0);
  std::set<std::uint64_t*> all;
  for (auto& v : objs) all.insert(v.begin(), v.end());
  CHECK(all.size() == std::size_t{kThreads} * perThread);
  // Release everything: one cycle, swept by the main thread.
  TestP p(50);
  startSweepCycle(mheap());
  finishSweep(mheap());
}

TEST_CASE("mheap: heap-lock acquisitions follow span refills, not objects") {
  TestP p(0);
  MHeap& h = mheap();
  const auto locks0 = h.stats.heapLockAcquisitions.load();
  constexpr int kN = 100000;
  for (int i = 0; i < kN; ++i) mallocgc(16, nullptr);
  const auto locks = h.stats.heapLockAcquisitions.load() - locks0;
  const std::uint32_t perSpan = kSizeClasses[sizeToClass(16)].nelems;
  // At most one allocSpan per span takes the lock (and with the P's page and MSpan
  // caches most take none), never one per object.
  CHECK(locks <= kN / perSpan + 8);
  CHECK(locks >= 1);
  bulkReleaseAll(p.get());
}

namespace {
// A reusable barrier whose last arriver runs a completion (mutex + condvar: simple and
// well understood by TSan).
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  template <typename F>
  void arriveAndWait(F completion) {
    std::unique_lock<std::mutex> g(mu_);
    const int gen = gen_;
    if (++count_ == n_) {
      completion();
      count_ = 0;
      ++gen_;
      cv_.notify_all();
      return;
    }
    cv_.wait(g, [&] { return gen_ != gen; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  const int n_;
  int count_ = 0;
  int gen_ = 0;
};
}  // namespace

TEST_CASE("sweep: several Ps allocate, then sweep one shared cycle together") {
  constexpr int kThreads = 3;
  const int rounds = 2 * kScale;
  MHeap& h = mheap();
  const std::uint8_t sc = sizeToClass(32);
  const auto inUse0 = h.readStats().objectsInUse(sc);
  const auto heapInUse0 = h.readStats().heapInUse;
  Barrier barrier(kThreads);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      TestP p(300 + t);
      for (int r = 0; r < rounds; ++r) {
        std::vector<std::uint64_t*> objs;
        for (int i = 0; i < 4096; ++i) {
          auto* o = static_cast<std::uint64_t*>(mallocgc(32, nullptr));
          if (o[0] != 0 || o[3] != 0) bad.fetch_add(1);  // reused memory must be zeroed
          o[0] = o[3] = static_cast<std::uint64_t>(t + 1);
          objs.push_back(o);
        }
        for (auto* o : objs) {
          if (o[0] != static_cast<std::uint64_t>(t + 1)) bad.fetch_add(1);
        }
        p.get()->mcache->releaseAll();
        barrier.arriveAndWait([&] { startSweepCycle(h); });
        while (sweepone(h)) {
        }
        barrier.arriveAndWait([&] { finishSweep(h); });
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(bad.load() == 0);
  CHECK(h.readStats().objectsInUse(sc) == inUse0);
  CHECK(h.readStats().heapInUse == heapInUse0);
}

TEST_CASE("stats: per-P shards are summed by readStats and survive their P's destruction") {
  MHeap& h = mheap();
  const std::uint8_t sc = sizeToClass(200);
  const auto before = h.readStats();
  constexpr int kN = 1000;
  {
    TestP p(0);
    for (int i = 0; i < kN; ++i) mallocgc(200, nullptr);
    p.get()->mcache->releaseAll();  // counted in this P's shard when the span leaves
    CHECK(p.get()->mcache->stats.smallAllocCount[sc].load() >= kN);
    const auto during = h.readStats();
    CHECK(during.objectsInUse(sc) == before.objectsInUse(sc) + kN);
    CHECK(during.heapInUse > before.heapInUse);
  }  // destroyHeapP folds the shard into stats.shared
  const auto after = h.readStats();
  CHECK(after.objectsInUse(sc) == before.objectsInUse(sc) + kN);
  TestP q(1);
  bulkReleaseAll(q.get());  // another P sweeps them: its shard counts the frees
  const auto end = h.readStats();
  CHECK(end.objectsInUse(sc) == before.objectsInUse(sc));
  CHECK(end.heapInUse == before.heapInUse);
}

TEST_CASE("mcentral: a span returns to its P's shard; an empty shard takes another's, not grow") {
  MHeap& h = mheap();
  constexpr std::size_t kSize = 3072;  // a class no other test here uses
  const SpanClass spc = SpanClass::make(sizeToClass(kSize), true);
  MCentral& c = h.central(spc);
  constexpr std::int32_t kOwner = 3, kThief = 4;
  static_assert(kOwner % MCentral::kShards != kThief % MCentral::kShards);
  MSpan* s = nullptr;
  {
    TestP owner(kOwner);
    s = spanOfObject(mallocgc(kSize, nullptr));
    CHECK(s->shard == kOwner % MCentral::kShards);
    owner.get()->mcache->releaseAll();  // partly used: to the owner's partial swept set
    const std::uint32_t sg = h.sweepgenLoad();
    CHECK(c.partialSwept(sg, kOwner).size() == 1);
    CHECK(c.partialSwept(sg, kThief).size() == 0);
    // The owner gets its own span back.
    CHECK(spanOfObject(mallocgc(kSize, nullptr)) == s);
    owner.get()->mcache->releaseAll();
  }
  std::thread([&] {
    TestP thief(kThief);
    const auto inUse = h.readStats().heapInUse;
    void* v = mallocgc(kSize, nullptr);
    CHECK(spanOfObject(v) == s);                 // taken from the owner's shard...
    CHECK(h.readStats().heapInUse == inUse);     // ...rather than a new span
    CHECK(s->shard == kThief % MCentral::kShards);  // and it now returns to the thief's
    thief.get()->mcache->releaseAll();
    CHECK(c.partialSwept(h.sweepgenLoad(), kThief).size() == 1);
    bulkReleaseAll(thief.get());
  }).join();
}

TEST_CASE("mcache: heapLive changes wait in the P up to the slack, at releaseAll, or a fold") {
  TestP p(0);
  MHeap& h = mheap();
  MCache* c = p.get()->mcache;
  c->releaseAll();
  REQUIRE(c->heapLiveDelta.load() == 0);
  const std::int64_t live0 = h.heapLive.load();
  constexpr std::size_t kSize = 256;
  mallocgc(kSize, nullptr);  // one refill: a span's free bytes reserved, in the P
  const std::int64_t reserved = c->heapLiveDelta.load();
  CHECK(reserved > 0);
  CHECK(reserved < MCache::kHeapLiveSlack);
  CHECK(h.heapLive.load() == live0);
  // Refill until the pending bytes pass the slack: they go to heapLive in one add.
  std::int64_t flushedAt = 0;
  for (int i = 0; i < 100000 && flushedAt == 0; ++i) {
    mallocgc(kSize, nullptr);
    if (h.heapLive.load() != live0) flushedAt = h.heapLive.load() - live0;
  }
  CHECK(flushedAt >= MCache::kHeapLiveSlack);
  CHECK(c->heapLiveDelta.load() < MCache::kHeapLiveSlack);
  // The collector's fold (world stopped) takes what is left.
  mallocgc(kMaxSmallSize, nullptr);  // another class: another refill, pending
  const std::int64_t pending = c->heapLiveDelta.load();
  CHECK(pending > 0);
  const std::int64_t before = h.heapLive.load();
  h.foldHeapLiveDeltas();
  CHECK(c->heapLiveDelta.load() == 0);
  CHECK(h.heapLive.load() == before + pending);
  // releaseAll adds its own change (the unused bytes leaving) at once.
  c->releaseAll();
  CHECK(c->heapLiveDelta.load() == 0);
  CHECK(h.heapLive.load() < before + pending);
  bulkReleaseAll(p.get());
}

TEST_CASE("mallocgc: a large allocation first sweeps dead large spans of its shard (reclaim)") {
  TestP p(0);
  MHeap& h = mheap();
  constexpr std::size_t kSize = 48 << 10;
  std::set<void*> old;
  for (int i = 0; i < 8; ++i) old.insert(mallocgc(kSize, nullptr));
  startSweepCycle(h);  // nothing marked: all eight are dead, none swept yet
  const auto inUse = h.readStats().heapInUse;
  void* v = mallocgc(kSize, nullptr);
  CHECK(old.count(v) == 1);                     // a dead one's pages, reused...
  CHECK(h.readStats().heapInUse == inUse);      // ...so the heap did not grow
  int swept = 0;
  for (void* o : old) {
    ObjectRef ref;
    swept += o != v && !h.findObject(o, &ref);
  }
  CHECK(swept == 0);  // only as many pages as needed were reclaimed: the one reused
  finishSweep(h);
  bulkReleaseAll(p.get());
}
