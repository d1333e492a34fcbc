// mspan.h: MSpan, a run of pages holding objects of one span class (Go's mspan).
//
// A span is either a heap span (objects of one size class, or one large object) or a
// manually managed span (stacks, runtime metadata). Fields:
//   startAddr/limit  [startAddr, limit) is the usable object area; atomics only because
//                    a lock-free spanOf may read a recycled MSpan (see publish()).
//   npages, spanclass, elemsize, nelems, divMagic (objectIndex by multiply-shift)
//   freeindex        slots below freeindex are allocated or were skipped; the next free
//                    slot is found from allocCache.
//   allocCache       the complement of allocBits, 64 slots starting at freeindex & ~63,
//                    shifted so bit 0 is slot freeindex: ctz gives the next free slot.
//   allocBits        1 = allocated at the last sweep; gcmarkBits: 1 = marked (live).
//                    Both come from gcBits arenas. Sweeping makes gcmarkBits the new
//                    allocBits and takes fresh zeroed gcmarkBits.
//   allocCount       objects allocated (counting from allocBits plus fast-path allocs).
//   sweepgen         atomic; relative to the heap's sg (see mgcsweep.h):
//                    sg-2 needs sweeping, sg-1 being swept, sg swept, sg+1 cached before
//                    the sweep began, sg+3 swept then cached.
//   state            atomic word: (publication count << 8) | SpanState. Published with a
//                    release store after every other field is written (publish()); a
//                    reader that loads it with acquire and sees InUse sees a fully
//                    initialised span. The count makes reuse of an MSpan detectable.
//   needzero         whether free slots may hold garbage (NeedZero): No (all zero),
//                    Each (zero each slot as it is handed out), Rest (every slot from
//                    freeindex on is free and may be dirty: the first allocation that
//                    wants zeroed memory clears them all in one memset).
//   shard            the MCentral shard of the P that last cached it (mcentral.h).
//   pinnerBits       slot for the pinner's per-object pin bits (later issue).
//   specials         finalizers and pin counts (later), a list under specialLock.
// Ownership: the fields other than the atomics belong to whoever owns the span: the
// MCache that caches it, the sweeper that set sweepgen to sg-1, or the heap lock holder
// while the span is not in use.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>

#include "runtime/sizeclasses.h"

namespace spindle::runtime {

enum class SpanState : std::uint8_t { Dead = 0, InUse = 1, Manual = 2 };
// MSpan::needzero. Rest holds only while every slot at or after freeindex is free (a
// fresh span, or one swept empty), which is what lets one memset serve them all; it is
// never set on a poisoned span (the memset would erase the poison in free slots).
enum class NeedZero : std::uint8_t { No = 0, Each = 1, Rest = 2 };
enum class SpanKind : std::uint8_t { Heap, Manual };
struct MSpan;
// Poisons every slot of a fresh small span (MCentral::grow when MHeap::poisonFreed).
void poisonSpan(MSpan* s);

// A size class and whether its objects contain no pointers (noscan).
struct SpanClass {
  std::uint8_t value = 0;
  static constexpr SpanClass make(std::uint8_t sizeclass, bool noscan) {
    return SpanClass{static_cast<std::uint8_t>(sizeclass << 1 | (noscan ? 1 : 0))};
  }
  constexpr std::uint8_t sizeclass() const { return value >> 1; }
  constexpr bool noscan() const { return value & 1; }
  constexpr bool operator==(const SpanClass&) const = default;
};
inline constexpr std::size_t kNumSpanClasses = kNumSizeClasses * 2;

// A per-span record for finalizers / pin counts (filled by later issues).
struct Special {
  Special* next = nullptr;
  std::uint32_t offset = 0;  // object offset within the span
  std::uint8_t kind = 0;
};

// Cache-line aligned: Ps allocate from their own spans at once, and the fields the
// fast path writes (allocCache, freeindex, allocCount) must not share a line with
// another span's.
struct alignas(64) MSpan {
  MSpan* fixNext = nullptr;  // FixAlloc free-list link; unused while allocated

  std::atomic<std::uintptr_t> startAddr{0};
  std::atomic<std::uintptr_t> limit{0};
  std::size_t npages = 0;
  SpanClass spanclass{};
  SpanKind kind = SpanKind::Heap;
  NeedZero needzero = NeedZero::No;
  std::uint8_t shard = 0;  // MCentral shard it returns to (mcentral.h); owner only
  std::uint32_t elemsize = 0;
  std::uint32_t nelems = 0;
  std::uint32_t divMagic = 0;  // 0 for large spans (one object)
  std::uint32_t freeindex = 0;
  std::uint32_t allocCount = 0;
  std::uint32_t allocCountBeforeCache = 0;  // allocCount when an MCache took the span
  // Allocate-black (mgc.h): while the collector marks, a cached span has every free slot
  // at or after allocBlackStart pre-marked; kNoAllocBlack otherwise. Owner only.
  static constexpr std::uint32_t kNoAllocBlack = ~std::uint32_t{0};
  std::uint32_t allocBlackStart = kNoAllocBlack;
  std::uint64_t allocCache = 0;
  std::uint8_t* allocBits = nullptr;
  std::uint8_t* gcmarkBits = nullptr;
  std::uint8_t* pinnerBits = nullptr;
  // Freed-memory poisoning (MHeap::poisonFreed): every free slot holds kFreedPoison;
  // sweeping poisons what it frees, allocation checks the slot it hands out
  // (nextFreeSlow: allocCache stays empty, fatal if a word changed) and zeroes it
  // (needzero stays Each).
  bool poisoned = false;
  // Holds objects of a weakly tabled type (gc.h registerWeak, set by markWeakTabled):
  // its sweeps report the dead ones to the weak hooks. Cleared when the span is
  // allocated. Relaxed: set by the P that allocated the object, read by the sweeper
  // after a mark termination (world stopped) and its claim of the span.
  std::atomic<bool> weakTabled{false};
  std::atomic<std::uint32_t> sweepgen{0};
  std::atomic<std::uint64_t> stateWord{0};

  std::mutex specialLock;
  Special* specials = nullptr;  // guarded by specialLock

  std::uintptr_t base() const { return startAddr.load(std::memory_order_relaxed); }
  // Acquire: pairs with publish(); seeing InUse/Manual means the span is initialised.
  SpanState state() const {
    return static_cast<SpanState>(stateWord.load(std::memory_order_acquire) & 0xff);
  }
  // Sets the state and bumps the publication count. Release: every earlier write to the
  // span happens-before any acquire load that observes this state.
  void publish(SpanState s) {
    const std::uint64_t old = stateWord.load(std::memory_order_relaxed);
    stateWord.store(((old >> 8) + 1) << 8 | static_cast<std::uint8_t>(s),
                    std::memory_order_release);
  }

  // Object index of address p (inside the span) by multiply-shift.
  std::uint32_t objIndex(std::uintptr_t p) const {
    if (divMagic == 0) return 0;
    return static_cast<std::uint32_t>(
        (static_cast<std::uint64_t>(p - base()) * divMagic) >> 32);
  }
  bool isAllocatedBit(std::uint32_t i) const { return (allocBits[i / 8] >> (i % 8)) & 1; }
  bool isMarked(std::uint32_t i) const { return (gcmarkBits[i / 8] >> (i % 8)) & 1; }
  // Sets a mark bit. The collector will mark concurrently; this atomic OR is what it uses.
  void setMarked(std::uint32_t i) {
    std::atomic_ref<std::uint8_t>(gcmarkBits[i / 8])
        .fetch_or(static_cast<std::uint8_t>(1u << (i % 8)), std::memory_order_relaxed);
  }
  // Is object i free? (Go's isFree: below freeindex use allocCache history via allocBits.)
  bool isFree(std::uint32_t i) const {
    if (i < freeindex) return false;
    return !isAllocatedBit(i);
  }

  // Loads allocCache with the complement of the 64 alloc bits starting at byte whichByte.
  void refillAllocCache(std::uint32_t whichByte) {
    std::uint64_t bits;
    std::memcpy(&bits, allocBits + whichByte, sizeof(bits));  // little-endian
    allocCache = ~bits;
  }
  // Points allocCache at freeindex again (from allocBits: the slots from freeindex to
  // the end of its 64-slot word). Allocation only ever clears cache bits, so this is
  // always what the cache holds, or would hold had it not been zeroed (gcstress).
  void resetAllocCache() {
    if (freeindex >= nelems) return;
    refillAllocCache((freeindex & ~std::uint32_t{63}) / 8);
    allocCache >>= freeindex % 64;
  }
  // The next free slot at or after freeindex, or nelems; advances freeindex past it.
  std::uint32_t nextFreeIndex();
  // Number of marked objects (popcount of gcmarkBits over nelems).
  std::uint32_t countMarked() const;
  // Allocate-black, for the span's owner while the collector marks. begin: pre-mark
  // every free slot at or after freeindex (atomic ORs: markers set bits concurrently),
  // so objects handed out later are born marked and never scanned. end: un-mark the
  // slots that are still free; returns the number of objects allocated in between
  // (they stay marked).
  void allocBlackBegin();
  std::uint32_t allocBlackEnd();
  // Objects currently allocated: every slot below freeindex plus alloc bits above it.
  std::uint32_t countAllocated() const;

  // Sets up a span for [base, base + npages pages) with no objects yet (allocSpan).
  void init(std::uintptr_t base, std::size_t npages);

  // Poisoning (see `poisoned`): fill free slot i / every freed slot; check slot i.
  static constexpr std::uint64_t kFreedPoison = 0xdeadbeefdeadbeefull;
  void poisonSlot(std::uint32_t i);
  // Fatal error naming the object, span and class if slot i's poison was overwritten.
  void checkPoisonedSlot(std::uint32_t i) const;
};

}  // namespace spindle::runtime
