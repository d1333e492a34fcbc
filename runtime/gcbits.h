// gcbits.h: arenas holding spans' allocBits and gcmarkBits (Go's gcBitsArenas).
//
// Bits are bump-allocated from 64 KiB arenas and never freed one by one; whole arenas
// are recycled by epoch, in step with the sweep cycle:
//   - newMarkBits(nelems) takes zeroed bits from the `next` arenas (lock-free bump with
//     an atomic fetch_add; a lock only to start a new arena);
//   - every span's bits live in `next` (fresh spans, and the fresh gcmarkBits of a
//     swept span), `current` (allocBits of a span swept this cycle) or `previous`
//     (allocBits of a span not yet swept this cycle);
//   - nextEpoch(), called once every span in use has been swept (Go's finishsweep_m),
//     frees `previous` (nothing refers to it any more), then previous <- current,
//     current <- next, next <- a fresh arena (so the first bits of the new epoch need
//     no lock). A freed arena is zeroed (the part handed out) before reuse.
// A block is (nelems rounded up to 64) / 8 bytes, so allocCache refills can always
// read whole 64-bit words.
// Per-P chunks (not in Go): a caller with a GCBitsCache (its P's) bumps in a chunk of
// kCacheChunk bytes it took from `next` with one fetch_add, so Ps sweeping at once do not
// all hit the arena's counter. A chunk is only used in the epoch it was taken in (the
// cache records the epoch; nextEpoch runs with the world stopped, so a P sees the new
// epoch before it sweeps again); what is left of it then is wasted.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace spindle::runtime {

inline std::size_t gcBitsBytes(std::size_t nelems) { return (nelems + 63) / 64 * 8; }

// A P's chunk of the current epoch's `next` arena (owner only).
struct GCBitsCache {
  std::uint8_t* next = nullptr;
  std::uint8_t* end = nullptr;
  std::uint64_t epoch = 0;  // GCBitsArenas epochs start at 1: an empty cache is stale
};

class GCBitsArenas {
 public:
  static constexpr std::size_t kArenaBytes = 64 << 10;
  static constexpr std::uint32_t kCacheChunk = 8 << 10;

  GCBitsArenas() = default;
  GCBitsArenas(const GCBitsArenas&) = delete;
  GCBitsArenas& operator=(const GCBitsArenas&) = delete;

  // Zeroed bits for a span of nelems objects, from the `next` arenas: from `cache`'s
  // chunk when given one (the caller's P's), else straight from the arena.
  std::uint8_t* newMarkBits(std::size_t nelems, GCBitsCache* cache = nullptr);
  // Both bitmaps of a new span in one bump: *alloc then *mark, each zeroed.
  void newSpanBits(std::size_t nelems, std::uint8_t** alloc, std::uint8_t** mark,
                   GCBitsCache* cache = nullptr) {
    std::uint8_t* both = newMarkBits(2 * ((nelems + 63) / 64 * 64), cache);
    *alloc = both;
    *mark = both + gcBitsBytes(nelems);
  }
  // Precondition: every in-use span has been swept since the previous epoch.
  void nextEpoch();

  std::size_t arenasAllocated() const { return arenasAllocated_.load(std::memory_order_relaxed); }

 private:
  struct Arena {
    Arena* next;                  // list link, under lock_
    std::atomic<std::uint32_t> used;  // bytes handed out from data
    alignas(64) std::uint8_t data[kArenaBytes - 64];
  };
  static_assert(sizeof(Arena) == kArenaBytes);

  Arena* newArenaLocked();
  // bytes zeroed bytes from the `next` arena (a new one if it is full).
  std::uint8_t* bump(std::uint32_t bytes);

  std::mutex lock_;
  // Head of `next`: the arena bump allocation happens in. Acquire/release: a reader
  // that sees the pointer sees the arena's initialisation.
  std::atomic<Arena*> next_{nullptr};
  Arena* current_ = nullptr;   // under lock_
  Arena* previous_ = nullptr;  // under lock_
  Arena* free_ = nullptr;      // under lock_
  std::atomic<std::size_t> arenasAllocated_{0};
  // Bumped by nextEpoch (world stopped); relaxed: Ps read it after the world restarts.
  std::atomic<std::uint64_t> epoch_{1};
};

GCBitsArenas& gcBitsArenas();

}  // namespace spindle::runtime
