// mheap.h: MHeap, the page heap (Go's mheap.go).
//
// The heap owns the arena address space (arena.h), the page allocator (pagealloc.h),
// the MSpan FixAlloc, the MCentrals, and the page -> span map (in the HeapArenas).
//
// allocSpan(npages, kind, spanclass) is the single way to get a span:
//   1. take an MSpan struct from the current P's cache without the lock
//      (tryAllocMSpan), and, for spans under kPageCacheMaxPages pages, pages from the
//      P's freed runs or its page cache (pagecache.h), also without the lock;
//   2. only if either failed: lock; refill the P's page cache or find pages in the
//      page allocator (growing the arena space if needed); take an MSpan struct
//      (allocMSpanLocked refills half the P's cache); unlock;
//      then decide needzero (HeapArena::zeroedBase, CAS) and account (atomics);
//   3. initialise the span without the lock, point the page -> span map at it, and
//      publish it with a release store of its state (MSpan::publish).
// freeSpan reverses this: publish Dead, clear the map, then return the pages (the page
// allocator coalesces them with free neighbours) and the MSpan struct (to the current
// P's cache first: freeMSpanLocked). A small span's pages go to the current P's freed
// runs without the lock (pagecache.h), where step 1 reuses them; they reach the page
// allocator in batches, under one lock acquisition per batch.
//
// spanOf(addr) is lock-free and safe for any address: arena lookup (foreign -> null),
// map slot (acquire), state (acquire), range check, then a re-read of the state word to
// detect that the MSpan was freed and reused in between. It returns null or a span
// whose initialisation happens-before the return.
//
// Invariants (debug-checked): a span's pages are in use in the page allocator for as
// long as its state is InUse/Manual; map slots of its pages point at it; every heap span
// with a size class has nelems objects of elemsize within [startAddr, limit).
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "runtime/arena.h"
#include "runtime/fixalloc.h"
#include "runtime/mcentral.h"
#include "runtime/mspan.h"
#include "runtime/mstats.h"
#include "runtime/pagealloc.h"
#include "runtime/pagecache.h"
#include "runtime/throw.h"

namespace spindle::runtime {

struct MCache;
struct P;

// The result of findObject.
struct ObjectRef {
  std::uintptr_t base = 0;  // first byte of the object
  MSpan* span = nullptr;
  std::uint32_t index = 0;  // object index within the span
};

// Heap statistics. The counters moved once per span live in shards (mstats.h): each
// MCache's, owned by its P, and `shared`; read them with MHeap::readStats(). The rest
// are global atomics, read with relaxed loads.
struct HeapStats {
  std::atomic<std::uint64_t> heapSys{0};  // bytes of committed arenas
  std::atomic<std::uint64_t> heapLockAcquisitions{0};
  std::atomic<std::uint64_t> mspanCacheRefills{0};  // allocMSpanLocked refills
  std::atomic<std::uint64_t> sweptByUncache{0};  // stale (sg+1) spans swept by uncacheSpan
  // Updates made without a P, and the shards of destroyed MCaches (folded in).
  HeapStatsDelta shared;
};

class MHeap {
 public:
  static constexpr std::size_t kDefaultMaxArenas = 256;  // 16 GiB of address space

  explicit MHeap(std::size_t maxArenas = kDefaultMaxArenas);
  ~MHeap();
  MHeap(const MHeap&) = delete;
  MHeap& operator=(const MHeap&) = delete;

  // Returns a published span of npages pages, or null when out of address space.
  MSpan* allocSpan(std::size_t npages, SpanKind kind, SpanClass spanclass);
  // Returns a heap or manual span's pages and struct. The caller owns the span.
  void freeSpan(MSpan* s);

  MSpan* spanOf(const void* p) const { return spanOf(reinterpret_cast<std::uintptr_t>(p)); }
  MSpan* spanOf(std::uintptr_t p) const;
  // The heap object containing p (interior pointers included), or false.
  bool findObject(const void* p, ObjectRef* out) const;

  // The class's MCentral, made at its first use (makeCentral): a program uses a few of
  // the kNumSpanClasses classes, and the centrals' sets (4 KiB each, 557 KiB in all)
  // would otherwise be zeroed at start-up (138 of the 419 page faults of
  // `spindle -e 'print 1;'`). Acquire: pairs with makeCentral's publishing CAS.
  MCentral& central(SpanClass spc) {
    MCentral* c = central_[spc.value].load(std::memory_order_acquire);
    if (c == nullptr) [[unlikely]] c = makeCentral(spc);
    return *c;
  }

  // MSpan structs (Go's names). tryAllocMSpan needs no lock; the others need lock_.
  MSpan* tryAllocMSpan(P* p);
  MSpan* allocMSpanLocked(P* p);
  void freeMSpanLocked(MSpan* s, P* p);

  // MCache structs, for P creation/destruction (pheap.h).
  MCache* allocMCache();
  void freeMCache(MCache* c);
  // Returns a P's cached MSpan structs to the FixAlloc.
  void releaseMSpanCache(P* p);
  // Returns a P's cached pages to the page allocator.
  void flushPageCache(P* p);

  // The sweep generation (see mgcsweep.h). Acquire/release pairs with its updates.
  std::uint32_t sweepgenLoad() const { return sweepgen.load(std::memory_order_acquire); }
  std::atomic<std::uint32_t> sweepgen{0};
  // Next (span class, shard, full/partial) index sweepone() looks at (mgcsweep.cc).
  std::atomic<std::uint32_t> sweepCentralIndex{0};

  // Span classes whose MCentral has ever held a span: allocSpan sets the bit before the
  // span exists (release), and it is never cleared. A central without its bit has empty
  // sets, so sweepone and finishSweep skip it (acquire): a sweep cycle costs the classes
  // in use, not all kNumSpanClasses. Every span in an unswept set was pushed before the
  // sweepgen += 2 that a sweeper acquires, and its bit was set before that push.
  bool centralInUse(SpanClass spc) const {
    return (centralsInUse_[spc.value / 64].load(std::memory_order_acquire) >>
            (spc.value % 64)) & 1;
  }
  // The first span class >= from whose central is in use, or kNumSpanClasses.
  std::size_t nextCentralInUse(std::size_t from) const {
    for (std::size_t w = from / 64; w < kCentralWords; ++w) {
      std::uint64_t bits = centralsInUse_[w].load(std::memory_order_acquire);
      if (w == from / 64) bits &= ~std::uint64_t{0} << (from % 64);
      if (bits != 0) return w * 64 + static_cast<std::size_t>(std::countr_zero(bits));
    }
    return kNumSpanClasses;
  }

  HeapStats stats;
  // The sum of every stats shard (mstats.h), under the heap lock.
  HeapStatsSnapshot readStats();
  // The shard the calling thread updates: its P's MCache's (*owned = true: plain
  // load/store adds) or, without one, stats.shared (atomic adds). See statAdd.
  HeapStatsDelta& statsShard(bool* owned);

  // The scavenger's part (mgcscavenge.cc): returns up to maxPages free pages that are
  // not yet released to the OS (madvise DONTNEED), without holding the heap lock during
  // the system call; returns the number of pages released.
  std::size_t scavenge(std::size_t maxPages);
  // Free pages currently released to the OS (takes the lock).
  std::size_t scavengedPages();
  // --- the collector's view of allocation (mgc.h) ----------------------------------
  // True while the collector marks (set and cleared with the world stopped): spans an
  // MCache takes are pre-marked (MSpan::allocBlackBegin), large objects born marked.
  std::atomic<bool> gcAllocBlack{false};
  // Freed-memory poisoning (Go's clobberfree; gc.h setClobberFree): small spans created
  // while it is set are poisoned (MSpan::poisoned): sweeping poisons what it frees and
  // nextFreeSlow checks each slot it hands out, in every build. On by default in debug
  // builds (SPINDLE_DEBUG).
#ifdef SPINDLE_DEBUG
  std::atomic<bool> poisonFreed{true};
#else
  std::atomic<bool> poisonFreed{false};
#endif
  // Go's heapLive: bytes of objects allocated or reserved. + a span's free bytes when an
  // MCache takes it, - its unused bytes when it leaves the cache in the same cycle, +
  // large objects; reset to the marked bytes at mark termination. Relaxed: a pacing hint.
  std::atomic<std::int64_t> heapLive{0};
  // Adds every MCache's pending heapLive delta (mcache.h) to heapLive. World stopped
  // (the owners do not run), or a test's single thread.
  void foldHeapLiveDeltas();
  // Bytes of objects allocated black (while marking); part of the marked total.
  std::atomic<std::uint64_t> allocBlackBytes{0};
  // Called at the end of every allocation slow path (MCache::refill, largeAlloc) with
  // the bytes just reserved, on the allocating thread (holding its P): the pacer's
  // trigger, mark assists, proportional sweeping and gcstress live behind it.
  std::atomic<void (*)(std::size_t)> allocSlowHook{nullptr};
  // gcstress (gc.h setGCStress): when set, called once per allocation. The fast path
  // never sees it: nextFreeSlow leaves the span's allocCache empty while it is set, so
  // every small allocation takes the slow path (large ones always do).
  std::atomic<void (*)()> allocStressHook{nullptr};

  // Test/diagnostic accessors (take the lock).
  std::size_t freePages();
  std::size_t mspansInUse();
  void checkPageAlloc();
  const ArenaSpace& arenas() const { return arenas_; }
  bool isScavenged(std::size_t page);

 private:
  void lockHeap() {
    lock_.lock();
    // Under the lock: no RMW needed, but the counter is read without it.
    stats.heapLockAcquisitions.store(
        stats.heapLockAcquisitions.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  bool allocNeedsZero(std::size_t page, std::size_t npages);
  // c's pending heapLive bytes, leaving it 0 (under the lock; c's owner not running).
  static std::int64_t takeHeapLiveDelta(MCache* c);
  bool growLocked(std::size_t npages);

  std::mutex lock_;
  ArenaSpace arenas_;
  PageAlloc pages_;             // under lock_
  FixAlloc<MSpan> spanalloc_;   // under lock_
  FixAlloc<MCache> cachealloc_; // under lock_
  MCache* allMCaches_ = nullptr; // live MCaches (MCache::allNext/allPrev), under lock_
  // Made by makeCentral (published by CAS, never replaced), deleted by ~MHeap.
  MCentral* makeCentral(SpanClass spc);
  std::atomic<MCentral*> central_[kNumSpanClasses] = {};
  static constexpr std::size_t kCentralWords = (kNumSpanClasses + 63) / 64;
  std::atomic<std::uint64_t> centralsInUse_[kCentralWords] = {};
};

// The process-wide heap (created on first use, never destroyed).
// spanOf and findObject are inline: the pinner, the collector's greyObject and the write
// barrier call them on every pointer.
[[gnu::always_inline]] inline MSpan* MHeap::spanOf(std::uintptr_t p) const {
  HeapArena* ha = arenas_.arenaOf(p);
  if (ha == nullptr) return nullptr;
  MSpan* s = ha->spans[((p - arenas_.base()) >> kPageShift) & (kPagesPerArena - 1)].load(
      std::memory_order_acquire);
  if (s == nullptr) return nullptr;
  const std::uint64_t v1 = s->stateWord.load(std::memory_order_acquire);
  if ((v1 & 0xff) == static_cast<std::uint8_t>(SpanState::Dead)) return nullptr;
  // Acquire loads: the re-check below cannot be satisfied by a state older than these.
  const std::uintptr_t lo = s->startAddr.load(std::memory_order_acquire);
  const std::uintptr_t hi = s->limit.load(std::memory_order_acquire);
  if (p < lo || p >= hi) return nullptr;
  // The MSpan may have been freed and reused while we looked: the publication count in
  // the state word changes on every publish, so an unchanged word means a stable span.
  if (s->stateWord.load(std::memory_order_acquire) != v1) return nullptr;
  return s;
}

[[gnu::always_inline]] inline bool MHeap::findObject(const void* ptr, ObjectRef* out) const {
  const std::uintptr_t p = reinterpret_cast<std::uintptr_t>(ptr);
  MSpan* s = spanOf(p);
  if (s == nullptr || s->state() != SpanState::InUse) return false;
  const std::uint32_t idx = s->objIndex(p);
  SPINDLE_DCHECK(idx < s->nelems, "findObject: index {} >= nelems {} in span {:#x}", idx,
                 s->nelems, s->base());
  out->span = s;
  out->index = idx;
  out->base = s->base() + std::uintptr_t{idx} * s->elemsize;
  return true;
}

// The process's heap, made at the first call (mheapSlow). The pointer is published with
// release by mheapSlow and read with acquire, so the inlined fast path (the grey step
// runs it per pointer scanned) is a load and a branch instead of a call.
namespace mheap_detail {
inline std::atomic<MHeap*> heap{nullptr};
MHeap& mheapSlow();
}  // namespace mheap_detail
inline MHeap& mheap() {
  if (MHeap* h = mheap_detail::heap.load(std::memory_order_acquire)) [[likely]]
    return *h;
  return mheap_detail::mheapSlow();
}

}  // namespace spindle::runtime
