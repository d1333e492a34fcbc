#include "runtime/mheap.h"

#include <new>

#include "runtime/gcbits.h"
#include "runtime/mcache.h"
#include "runtime/pheap.h"
#include "runtime/throw.h"

namespace spindle::runtime {

MHeap& mheap_detail::mheapSlow() {
  // Never destroyed: spans may be in use until the process exits. Plain `new` so the
  // leak checker sees what the heap owns through this pointer.
  static MHeap* h = [] {
    auto* made = new MHeap(reservationArenas(MHeap::kDefaultMaxArenas));
    heap.store(made, std::memory_order_release);
    return made;
  }();
  return *h;
}

MHeap::MHeap(std::size_t maxArenas)
    : arenas_(maxArenas), pages_(maxArenas * kPagesPerArena) {}

MHeap::~MHeap() {
  for (std::atomic<MCentral*>& c : central_) delete c.load(std::memory_order_relaxed);
}

MCentral* MHeap::makeCentral(SpanClass spc) {
  auto* c = new MCentral;
  c->init(spc, this);
  MCentral* seen = nullptr;
  // Release: whoever loads the pointer sees an initialised central. A racing maker
  // that lost keeps the winner's (its own was never visible).
  if (central_[spc.value].compare_exchange_strong(seen, c, std::memory_order_acq_rel,
                                                  std::memory_order_acquire))
    return c;
  delete c;
  return seen;
}

MSpan* MHeap::tryAllocMSpan(P* p) {
  if (p == nullptr || p->mspancache.len == 0) return nullptr;
  if (p->mcache != nullptr) statAdd(p->mcache->stats.mspanCacheHits, 1, /*owned=*/true);
  return p->mspancache.buf[--p->mspancache.len];
}

MSpan* MHeap::allocMSpanLocked(P* p) {
  if (p == nullptr) return spanalloc_.alloc();
  if (p->mspancache.len == 0) {
    // Refill half the cache while we hold the lock anyway.
    stats.mspanCacheRefills.fetch_add(1, std::memory_order_relaxed);
    while (p->mspancache.len < P::kMSpanCacheSize / 2) {
      p->mspancache.buf[p->mspancache.len++] = spanalloc_.alloc();
    }
  }
  return p->mspancache.buf[--p->mspancache.len];
}

void MHeap::freeMSpanLocked(MSpan* s, P* p) {
  if (p == nullptr) {
    spanalloc_.free(s);
    return;
  }
  if (p->mspancache.len == P::kMSpanCacheSize) {
    // Full: hand half back while we hold the lock anyway (the mirror of the refill), so
    // freeing many spans takes the lock once per kMSpanCacheSize/2 of them.
    while (p->mspancache.len > P::kMSpanCacheSize / 2) spanalloc_.free(p->mspancache.buf[--p->mspancache.len]);
  }
  p->mspancache.buf[p->mspancache.len++] = s;
}

void MHeap::releaseMSpanCache(P* p) {
  lockHeap();
  while (p->mspancache.len > 0) spanalloc_.free(p->mspancache.buf[--p->mspancache.len]);
  lock_.unlock();
}

MCache* MHeap::allocMCache() {
  lockHeap();
  MCache* c = cachealloc_.alloc();
  // A recycled MCache's shard was zeroed when it was folded (freeMCache).
  c->allPrev = nullptr;
  c->allNext = allMCaches_;
  if (allMCaches_ != nullptr) allMCaches_->allPrev = c;
  allMCaches_ = c;
  lock_.unlock();
  c->init(this);
  return c;
}

void MHeap::freeMCache(MCache* c) {
  lockHeap();
  // Under the lock, so readStats counts c's deltas either in c or in stats.shared.
  c->stats.foldInto(stats.shared);
  if (const std::int64_t d = takeHeapLiveDelta(c); d != 0) {
    heapLive.fetch_add(d, std::memory_order_relaxed);
  }
  (c->allPrev != nullptr ? c->allPrev->allNext : allMCaches_) = c->allNext;
  if (c->allNext != nullptr) c->allNext->allPrev = c->allPrev;
  cachealloc_.free(c);
  lock_.unlock();
}

HeapStatsSnapshot MHeap::readStats() {
  HeapStatsSnapshot out;
  out.heapSys = stats.heapSys.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> g(lock_);
  stats.shared.sumInto(&out);
  for (MCache* c = allMCaches_; c != nullptr; c = c->allNext) c->stats.sumInto(&out);
  return out;
}

std::int64_t MHeap::takeHeapLiveDelta(MCache* c) {
  return c->heapLiveDelta.exchange(0, std::memory_order_relaxed);
}

void MHeap::foldHeapLiveDeltas() {
  std::lock_guard<std::mutex> g(lock_);
  std::int64_t sum = 0;
  for (MCache* c = allMCaches_; c != nullptr; c = c->allNext) sum += takeHeapLiveDelta(c);
  if (sum != 0) heapLive.fetch_add(sum, std::memory_order_relaxed);
}

HeapStatsDelta& MHeap::statsShard(bool* owned) {
  P* p = currentP();
  *owned = p != nullptr && p->mcache != nullptr;
  return *owned ? p->mcache->stats : stats.shared;
}

bool MHeap::allocNeedsZero(std::size_t page, std::size_t npages) {
  bool needzero = false;
  std::size_t p = page;
  const std::size_t end = page + npages;
  while (p < end) {
    const std::size_t ai = p / kPagesPerArena;
    HeapArena* ha = arenas_.arenaAtIndex(ai);
    const std::size_t lo = p % kPagesPerArena;
    const std::size_t hi = std::min(end - ai * kPagesPerArena, kPagesPerArena);
    std::size_t zb = ha->zeroedBase.load(std::memory_order_relaxed);
    if (lo < zb) needzero = true;
    while (hi > zb &&
           !ha->zeroedBase.compare_exchange_weak(zb, hi, std::memory_order_relaxed)) {
    }
    // A racing allocation below us may have raised zeroedBase past lo first: pages are
    // never handed out twice, so our pages [lo, hi) are still fresh in that case.
    p = ai * kPagesPerArena + hi;
  }
  return needzero;
}

bool MHeap::growLocked(std::size_t npages) {
  std::size_t added = 0;
  const std::size_t first = arenas_.grow(npages, &added);
  if (first == SIZE_MAX) return false;
  pages_.grow(first, added);
  stats.heapSys.fetch_add(added * kPageSize, std::memory_order_relaxed);
  return true;
}

void MHeap::flushPageCache(P* p) {
  lockHeap();
  pages_.flushCache(p->pcache);
  pages_.flushFreed(p->pcache);
  lock_.unlock();
}

MSpan* MHeap::allocSpan(std::size_t npages, SpanKind kind, SpanClass spanclass) {
  SPINDLE_CHECK(npages > 0, "allocSpan of 0 pages");
  P* p = currentP();
  MSpan* s = tryAllocMSpan(p);
  std::size_t page = PageAlloc::kNotFound;
  // Small spans: pages from the P's page cache, without the lock.
  const bool useCache = p != nullptr && npages < kPageCacheMaxPages;
  if (useCache) {
    page = pageCacheAllocFreed(p->pcache, npages);
    if (page == PageAlloc::kNotFound) page = pageCacheAlloc(p->pcache, npages);
  }
  if (page == PageAlloc::kNotFound || s == nullptr) {
    lockHeap();
    if (page == PageAlloc::kNotFound && useCache) {
      // Refill the P's page cache (returning what is left of the old one and of its
      // freed runs, which did not fit), then retry.
      pages_.flushFreed(p->pcache);
      pages_.flushCache(p->pcache);
      if (!pages_.allocToCache(p->pcache)) growLocked(1);
      if (p->pcache.cache == 0) pages_.allocToCache(p->pcache);
      page = pageCacheAlloc(p->pcache, npages);
    }
    if (page == PageAlloc::kNotFound) {
      page = pages_.alloc(npages);
      if (page == PageAlloc::kNotFound && growLocked(npages)) page = pages_.alloc(npages);
    }
    if (page == PageAlloc::kNotFound) {
      if (s != nullptr) freeMSpanLocked(s, p);
      lock_.unlock();
      return nullptr;
    }
    if (s == nullptr) s = allocMSpanLocked(p);
    lock_.unlock();
  }
  const bool needzero = allocNeedsZero(page, npages);
  bool owned;
  HeapStatsDelta& shard = statsShard(&owned);
  statAdd(kind == SpanKind::Heap ? shard.heapInUse : shard.manualInUse,
          static_cast<std::int64_t>(npages * kPageSize), owned);

  // Initialise without the lock: nobody can reach s until it is published.
  SPINDLE_DCHECK(s->state() == SpanState::Dead, "allocSpan: MSpan from the cache is not dead");
  const std::uintptr_t base = arenas_.pageAddr(page);
  s->init(base, npages);
  s->kind = kind;
  s->needzero = needzero ? NeedZero::Each : NeedZero::No;
  if (kind == SpanKind::Heap) {
    std::atomic<std::uint64_t>& inUse = centralsInUse_[spanclass.value / 64];
    const std::uint64_t bit = std::uint64_t{1} << (spanclass.value % 64);
    // Release: pairs with centralInUse/nextCentralInUse (see mheap.h).
    if ((inUse.load(std::memory_order_relaxed) & bit) == 0) {
      inUse.fetch_or(bit, std::memory_order_release);
    }
    s->spanclass = spanclass;
    const std::uint8_t sc = spanclass.sizeclass();
    if (sc == 0) {
      s->elemsize = static_cast<std::uint32_t>(npages * kPageSize);
      s->nelems = 1;
      s->divMagic = 0;
    } else {
      const SizeClassInfo& info = kSizeClasses[sc];
      SPINDLE_DCHECK(info.npages == npages, "allocSpan: class {} wants {} pages, got {}", sc,
                     info.npages, npages);
      s->elemsize = info.size;
      s->nelems = info.nelems;
      s->divMagic = info.divMagic;
    }
    s->limit.store(base + std::size_t{s->elemsize} * s->nelems, std::memory_order_release);
    gcBitsArenas().newSpanBits(s->nelems, &s->allocBits, &s->gcmarkBits, currentBitsCache());
    s->refillAllocCache(0);
    s->sweepgen.store(sweepgenLoad(), std::memory_order_relaxed);
    s->weakTabled.store(false, std::memory_order_relaxed);
  } else {
    s->elemsize = static_cast<std::uint32_t>(npages * kPageSize);
    s->nelems = 0;
  }
  for (std::size_t i = 0; i < npages; ++i) {
    // Release: a reader that finds s here sees the initialisation (state check follows).
    arenas_.spanSlot(base + i * kPageSize).store(s, std::memory_order_release);
  }
  s->publish(kind == SpanKind::Heap ? SpanState::InUse : SpanState::Manual);
  return s;
}

void MHeap::freeSpan(MSpan* s) {
  const SpanState st = s->state();
  SPINDLE_CHECK(st == SpanState::InUse || st == SpanState::Manual,
                "freeSpan: span {:#x} has state {}", s->base(), static_cast<int>(st));
  const std::uintptr_t base = s->base();
  const std::size_t npages = s->npages;
  const bool heap = s->kind == SpanKind::Heap;
  SPINDLE_DCHECK(s->specials == nullptr, "freeSpan: span {:#x} still has specials", base);
  s->publish(SpanState::Dead);
  for (std::size_t i = 0; i < npages; ++i) {
    auto& slot = arenas_.spanSlot(base + i * kPageSize);
    SPINDLE_DCHECK(slot.load(std::memory_order_relaxed) == s,
                   "freeSpan: map slot of page {:#x} does not point at span {:#x}",
                   base + i * kPageSize, base);
    slot.store(nullptr, std::memory_order_release);
  }
  bool owned;
  HeapStatsDelta& shard = statsShard(&owned);
  statAdd(heap ? shard.heapInUse : shard.manualInUse,
          -static_cast<std::int64_t>(npages * kPageSize), owned);
  P* p = currentP();
  const std::size_t page = arenas_.pageIndex(base);
  // Small spans: pages to the P's freed runs and the MSpan to the P's cache, both
  // without the lock while they have room (pagecache.h).
  const bool small = p != nullptr && npages < kPageCacheMaxPages;
  bool pagesDone = small && pageCacheFree(p->pcache, page, npages);
  if (pagesDone && p->mspancache.len < P::kMSpanCacheSize) {
    p->mspancache.buf[p->mspancache.len++] = s;
    return;
  }
  lockHeap();
  if (!pagesDone) {
    if (small) {
      // The freed list is full: return it in one batch and start a new one with this run.
      pages_.flushFreed(p->pcache);
      pagesDone = pageCacheFree(p->pcache, page, npages);
    }
    if (!pagesDone) pages_.free(page, npages);
  }
  freeMSpanLocked(s, p);
  lock_.unlock();
}



std::size_t MHeap::freePages() {
  std::lock_guard<std::mutex> g(lock_);
  return pages_.freePages();
}

std::size_t MHeap::mspansInUse() {
  std::lock_guard<std::mutex> g(lock_);
  return spanalloc_.inuse();
}

void MHeap::checkPageAlloc() {
  std::lock_guard<std::mutex> g(lock_);
  pages_.checkInvariants();
}

}  // namespace spindle::runtime
