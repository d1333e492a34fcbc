// MHeap: allocSpan/freeSpan, the page -> span map, findObject, the MSpan cache.
#include "runtime/mheap.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <atomic>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "runtime/heap_testing.h"

using namespace spindle::runtime;
using testing::kScale;
using testing::TestP;

TEST_CASE("mheap: allocSpan gives a published span found by spanOf; freeSpan forgets it") {
  TestP p(0);
  MHeap& h = mheap();
  const SpanClass spc = SpanClass::make(5, true);
  const std::uint8_t pages = kSizeClasses[5].npages;
  MSpan* s = h.allocSpan(pages, SpanKind::Heap, spc);
  REQUIRE(s != nullptr);
  CHECK(s->state() == SpanState::InUse);
  CHECK(s->base() % kPageSize == 0);
  CHECK(s->npages == pages);
  CHECK(s->elemsize == kSizeClasses[5].size);
  CHECK(s->nelems == kSizeClasses[5].nelems);
  CHECK(s->sweepgen.load() == h.sweepgenLoad());
  CHECK(h.spanOf(s->base()) == s);
  CHECK(h.spanOf(s->base() + s->elemsize * s->nelems - 1) == s);
  const std::uintptr_t base = s->base();
  h.freeSpan(s);
  CHECK(h.spanOf(base) == nullptr);
  h.checkPageAlloc();
}

TEST_CASE("mheap: spanOf and findObject reject foreign addresses") {
  TestP p(0);
  MHeap& h = mheap();
  int onStack = 0;
  void* fromMalloc = std::malloc(64);
  ObjectRef ref;
  CHECK(h.spanOf(&onStack) == nullptr);
  CHECK(h.spanOf(fromMalloc) == nullptr);
  CHECK(h.spanOf(nullptr) == nullptr);
  CHECK(h.spanOf(h.arenas().base() - 1) == nullptr);
  CHECK_FALSE(h.findObject(&onStack, &ref));
  CHECK_FALSE(h.findObject(fromMalloc, &ref));
  CHECK_FALSE(h.findObject(reinterpret_cast<void*>(~std::uintptr_t{0}), &ref));
  std::free(fromMalloc);
}

TEST_CASE("mheap: findObject on interior, tail-waste, manual and freed addresses") {
  TestP p(0);
  MHeap& h = mheap();
  // Class with tail waste: pick the first whose span is not filled exactly.
  std::uint8_t sc = 1;
  for (; sc < kNumSizeClasses; ++sc) {
    if (kSizeClasses[sc].npages * kPageSize % kSizeClasses[sc].size != 0) break;
  }
  REQUIRE(sc < kNumSizeClasses);
  const SizeClassInfo& info = kSizeClasses[sc];
  MSpan* s = h.allocSpan(info.npages, SpanKind::Heap, SpanClass::make(sc, false));
  REQUIRE(s != nullptr);
  for (std::uint32_t i = 0; i < info.nelems; i += std::max<std::uint32_t>(1, info.nelems / 37)) {
    const std::uintptr_t obj = s->base() + std::uintptr_t{i} * info.size;
    for (std::uintptr_t off : {std::uintptr_t{0}, std::uintptr_t{1}, std::uintptr_t{info.size / 2},
                               std::uintptr_t{info.size - 1}}) {
      ObjectRef ref;
      REQUIRE(h.findObject(reinterpret_cast<void*>(obj + off), &ref));
      CHECK(ref.span == s);
      CHECK(ref.index == i);
      CHECK(ref.base == obj);
    }
  }
  ObjectRef ref;
  // The tail beyond the last object is not an object.
  CHECK_FALSE(h.findObject(reinterpret_cast<void*>(s->base() + std::uintptr_t{info.nelems} * info.size), &ref));
  // A manual span is found by spanOf but holds no heap objects.
  MSpan* m = h.allocSpan(3, SpanKind::Manual, SpanClass{});
  REQUIRE(m != nullptr);
  CHECK(m->state() == SpanState::Manual);
  CHECK(h.spanOf(m->base() + 2 * kPageSize + 5) == m);
  CHECK_FALSE(h.findObject(reinterpret_cast<void*>(m->base()), &ref));
  // Freed spans: their addresses are no longer heap objects.
  const std::uintptr_t sb = s->base();
  const std::uintptr_t mb = m->base();
  h.freeSpan(s);
  h.freeSpan(m);
  CHECK_FALSE(h.findObject(reinterpret_cast<void*>(sb + 3), &ref));
  CHECK(h.spanOf(mb) == nullptr);
}

TEST_CASE("mheap: freeSpan coalesces pages, so a bigger span fits where two were") {
  TestP p(0);
  MHeap& h = mheap();
  MSpan* a = h.allocSpan(64, SpanKind::Manual, SpanClass{});
  MSpan* b = h.allocSpan(64, SpanKind::Manual, SpanClass{});
  REQUIRE((a && b));
  const std::uintptr_t lo = std::min(a->base(), b->base());
  const bool adjacent = (a->base() + 64 * kPageSize == b->base());
  h.freeSpan(a);
  h.freeSpan(b);
  if (adjacent) {
    // First fit: the 128-page span starts at or below where the pair was.
    MSpan* c = h.allocSpan(128, SpanKind::Manual, SpanClass{});
    REQUIRE(c != nullptr);
    CHECK(c->base() <= lo);
    h.freeSpan(c);
  }
  h.checkPageAlloc();
}

TEST_CASE("mheap: the P's MSpan cache refills half under the lock and empties on P destroy") {
  MHeap& h = mheap();
  const std::size_t structsBefore = h.mspansInUse();
  {
    P p(7);
    initHeapP(&p);
    bindP(&p);
    CHECK(p.mspancache.len == 0);
    const auto refills = h.stats.mspanCacheRefills.load();
    const auto hits = h.readStats().mspanCacheHits;
    MSpan* s1 = h.allocSpan(1, SpanKind::Manual, SpanClass{});
    CHECK(h.stats.mspanCacheRefills.load() == refills + 1);
    CHECK(p.mspancache.len == P::kMSpanCacheSize / 2 - 1);
    MSpan* s2 = h.allocSpan(1, SpanKind::Manual, SpanClass{});
    CHECK(h.readStats().mspanCacheHits == hits + 1);
    CHECK(p.mspancache.len == P::kMSpanCacheSize / 2 - 2);
    h.freeSpan(s1);
    h.freeSpan(s2);
    // Freed structs go to the P's cache first.
    CHECK(p.mspancache.len == P::kMSpanCacheSize / 2);
    // ... up to its capacity; beyond it, half of the cache goes back to the FixAlloc at
    // once (one lock acquisition per kMSpanCacheSize/2 frees).
    std::vector<MSpan*> many;
    for (std::uint32_t i = 0; i < 2 * P::kMSpanCacheSize + 40; ++i) {
      many.push_back(h.allocSpan(1, SpanKind::Manual, SpanClass{}));
    }
    int halvings = 0;
    for (MSpan* s : many) {
      const std::uint32_t before = p.mspancache.len;
      h.freeSpan(s);
      if (before == P::kMSpanCacheSize) {
        CHECK(p.mspancache.len == P::kMSpanCacheSize / 2 + 1);
        ++halvings;
      } else {
        CHECK(p.mspancache.len == before + 1);
      }
    }
    CHECK(halvings >= 1);
    unbindP();
    destroyHeapP(&p);
    CHECK(p.mspancache.len == 0);
    CHECK(p.mcache == nullptr);
  }
  CHECK(h.mspansInUse() == structsBefore);
}

TEST_CASE("mheap: allocSpan from many threads: no overlap, spans published whole") {
  MHeap& h = mheap();
  constexpr int kThreads = 4;
  const int perThread = 150 * kScale;
  const std::size_t freeBefore = h.freePages();
  std::vector<std::vector<MSpan*>> got(kThreads);
  // Published spans, for the reader thread.
  std::vector<std::atomic<MSpan*>> board(kThreads * perThread);
  std::atomic<int> writersDone{0};
  std::atomic<long> probes{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      TestP p(100 + t);
      std::mt19937 rng(t);
      for (int i = 0; i < perThread; ++i) {
        MSpan* s;
        if (rng() % 4 == 0) {
          s = h.allocSpan(1 + rng() % 9, SpanKind::Manual, SpanClass{});
        } else {
          const std::uint8_t sc = 1 + rng() % (kNumSizeClasses - 1);
          s = h.allocSpan(kSizeClasses[sc].npages, SpanKind::Heap, SpanClass::make(sc, rng() & 1));
        }
        if (s == nullptr) {
          failures.fetch_add(1);
          break;
        }
        got[t].push_back(s);
        board[t * perThread + i].store(s, std::memory_order_release);
      }
      writersDone.fetch_add(1);
      // Keep the P (and its spans) until every reader check is over: freed below.
    });
  }
  // Reader: every published span is found by spanOf at random interior addresses and
  // is fully initialised when found.
  std::thread reader([&] {
    std::mt19937 rng(99);
    for (;;) {
      const bool last = writersDone.load() == kThreads;  // one full pass after the writers
      for (auto& slot : board) {
        MSpan* s = slot.load(std::memory_order_acquire);
        if (s == nullptr) continue;
        const std::uintptr_t base = s->base();
        const std::uintptr_t lim = s->limit.load(std::memory_order_acquire);
        const std::uintptr_t addr = base + rng() % (lim - base);
        MSpan* found = h.spanOf(addr);
        bool ok = found == s && found->npages > 0;
        if (ok && found->state() == SpanState::InUse) {
          ok = found->allocBits != nullptr &&
               found->nelems == kSizeClasses[found->spanclass.sizeclass()].nelems;
        } else if (ok) {
          ok = found->state() == SpanState::Manual;
        }
        if (!ok) failures.fetch_add(1);
        probes.fetch_add(1, std::memory_order_relaxed);
      }
      if (last) break;
    }
  });
  for (auto& th : threads) th.join();
  reader.join();
  CHECK(failures.load() == 0);
  CHECK(probes.load() > 0);
  // No two spans overlap; every span is found at both ends.
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> ranges;
  for (auto& v : got) {
    for (MSpan* s : v) {
      ranges.emplace_back(s->base(), s->base() + s->npages * kPageSize);
      CHECK(h.spanOf(s->base()) == s);
      CHECK(h.spanOf(s->limit.load() - 1) == s);
    }
  }
  std::sort(ranges.begin(), ranges.end());
  int overlaps = 0;
  for (std::size_t i = 1; i < ranges.size(); ++i) overlaps += ranges[i].first < ranges[i - 1].second;
  CHECK(overlaps == 0);
  {
    TestP p(200);
    for (auto& v : got) {
      for (MSpan* s : v) h.freeSpan(s);
    }
  }
  h.checkPageAlloc();
  // Pages all came back (the heap may have grown meanwhile: compare against in-use 0 delta).
  CHECK(h.freePages() >= freeBefore);
}

TEST_CASE("mheap: small spans take pages from the P's page cache without the lock") {
  TestP p(0);
  MHeap& h = mheap();
  MSpan* first = h.allocSpan(1, SpanKind::Manual, SpanClass{});  // fills the page cache
  REQUIRE(first != nullptr);
  const auto locks0 = h.stats.heapLockAcquisitions.load();
  const int cached = std::popcount(p.get()->pcache.cache);
  std::vector<MSpan*> spans;
  for (int i = 0; i < cached; ++i) spans.push_back(h.allocSpan(1, SpanKind::Manual, SpanClass{}));
  CHECK(h.stats.heapLockAcquisitions.load() == locks0);
  CHECK(p.get()->pcache.cache == 0);
  for (MSpan* s : spans) CHECK(s->base() / kPageSize / 64 == first->base() / kPageSize / 64);
  // Pages in a P's cache are not free in the page allocator; flushing returns them.
  spans.push_back(h.allocSpan(2, SpanKind::Manual, SpanClass{}));  // refills the cache
  const std::size_t freeBefore = h.freePages();
  const int left = std::popcount(p.get()->pcache.cache);
  h.flushPageCache(p.get());
  CHECK(h.freePages() == freeBefore + left);
  for (MSpan* s : spans) h.freeSpan(s);
  h.freeSpan(first);
  h.checkPageAlloc();
}

TEST_CASE("mheap: freed small spans stay with the P: reused LIFO without the lock, returned in batches") {
  TestP p(0);
  MHeap& h = mheap();
  P::PageCache& c = p.get()->pcache;
  std::vector<MSpan*> spans;
  for (int i = 0; i < 200; ++i) spans.push_back(h.allocSpan(1 + i % 3, SpanKind::Manual, SpanClass{}));
  MSpan* two = h.allocSpan(2, SpanKind::Manual, SpanClass{});
  const std::uintptr_t twoBase = two->base();
  const auto locks0 = h.stats.heapLockAcquisitions.load();
  h.freeSpan(two);
  CHECK(c.nfreed == 1);
  CHECK(c.freedPages == 2);
  // The next span of that size gets the same pages, without the lock.
  MSpan* again = h.allocSpan(2, SpanKind::Manual, SpanClass{});
  CHECK(again->base() == twoBase);
  CHECK(c.nfreed == 0);
  CHECK(h.stats.heapLockAcquisitions.load() == locks0);
  spans.push_back(again);
  // Freeing many: the lock is taken once per full batch, and the batches reach the page
  // allocator (its invariants hold throughout).
  const std::size_t freeBefore = h.freePages();
  std::size_t pagesFreed = 0;
  for (MSpan* s : spans) {
    pagesFreed += s->npages;
    h.freeSpan(s);
    CHECK(c.freedPages <= P::PageCache::kMaxFreedPages);
    CHECK(c.nfreed <= P::PageCache::kMaxFreedRuns);
  }
  const auto locks = h.stats.heapLockAcquisitions.load() - locks0;
  CHECK(locks > 0);
  CHECK(locks <= pagesFreed / (P::PageCache::kMaxFreedPages - kPageCacheMaxPages) + 2);
  h.checkPageAlloc();
  CHECK(h.freePages() + c.freedPages == freeBefore + pagesFreed);
  // Flushing (as P destruction does) returns the rest, with the cache's unused pages.
  const std::size_t cached = static_cast<std::size_t>(std::popcount(c.cache));
  h.flushPageCache(p.get());
  CHECK(c.nfreed == 0);
  CHECK(h.freePages() == freeBefore + pagesFreed + cached);
  h.checkPageAlloc();
}

TEST_CASE("mheap: a central is in use once allocSpan made a span of its class (the sweeper visits only those)") {
  MHeap h(1);  // a heap of its own, used with no P bound: the locked paths only
  CHECK(h.nextCentralInUse(0) == kNumSpanClasses);
  MSpan* m = h.allocSpan(2, SpanKind::Manual, SpanClass{});
  CHECK(h.nextCentralInUse(0) == kNumSpanClasses);  // manual spans belong to no central
  const std::uint8_t sc = sizeToClass(96);
  const SpanClass spc = SpanClass::make(sc, /*noscan=*/true);
  MSpan* s = h.allocSpan(kSizeClasses[sc].npages, SpanKind::Heap, spc);
  REQUIRE(s != nullptr);
  CHECK(h.centralInUse(spc));
  CHECK_FALSE(h.centralInUse(SpanClass::make(sc, /*noscan=*/false)));
  CHECK(h.nextCentralInUse(0) == spc.value);
  CHECK(h.nextCentralInUse(spc.value + 1) == kNumSpanClasses);
  h.freeSpan(s);
  CHECK(h.centralInUse(spc));  // never cleared
  h.freeSpan(m);
}
