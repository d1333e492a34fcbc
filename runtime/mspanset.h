// mspanset.h: SpanSet, a lock-free set of spans (Go's mspanset.go).
//
// A SpanSet is a queue of MSpan* in a "spine" of blocks of 512 slots. push() claims a
// slot by atomically incrementing the tail; pop() claims one by CAS on the head. Head
// and tail share one 64-bit word (head << 32 | tail), so a pop can check "not empty"
// and claim in a single CAS.
//   - A pushed slot is written after its index is claimed, so pop spins briefly on a
//     null slot (the pusher is between the two steps).
//   - The spine grows under spineLock_ (rare: once per 512 pushes when a block is
//     missing); readers load the spine and spineLen_ with acquire. Old spines are kept
//     until the set is destroyed, so a racing reader never touches freed memory.
//   - Blocks come from a global SpanSetBlockPool, a lock-free stack (ABA-safe: the head
//     word packs a pointer and a modification counter). New blocks are carved from
//     256 KiB chunks of OS memory (Go's persistentalloc) and not written: the kernel's
//     zero pages are a block's initial state, so a page faults in when a span is pushed. A block goes back to the pool
//     as soon as its last slot is popped (its `popped` count reaches 512); reset()
//     returns a partly popped last block when the set is empty.
//   - When the spine grows while a block's last slot is being popped, the popper may
//     clear the block's entry in the old spine only, leaving a stale pointer in the new
//     one. Nothing reads spine entries below the head's block (reset() and the
//     destructor start at head / 512), so stale entries are harmless.
// Invariants: every pushed span is popped exactly once; a block's slots are all null
// when it returns to the pool; spineLen_ only grows until reset().
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace spindle::runtime {

struct MSpan;

inline constexpr std::size_t kSpanSetBlockEntries = 512;
// Bytes of OS memory the pool takes at a time for new blocks (63 blocks).
inline constexpr std::size_t kSpanSetBlockChunk = 256 << 10;

struct alignas(64) SpanSetBlock {
  std::atomic<std::uint64_t> lfnext{0};  // lock-free stack link (packed, see pool)
  std::atomic<std::uint32_t> popped{0};  // slots popped so far
  std::atomic<MSpan*> spans[kSpanSetBlockEntries];
};

// The global pool of blocks: a Treiber stack with a counter against ABA.
class SpanSetBlockPool {
 public:
  SpanSetBlock* alloc();
  void free(SpanSetBlock* b);
  // Blocks ever taken from the OS / blocks currently in the pool.
  std::size_t allocated() const { return allocated_.load(std::memory_order_relaxed); }
  std::size_t pooled() const { return pooled_.load(std::memory_order_relaxed); }

 private:
  // head_ = (pointer >> 6) << 22 | counter (22 bits). Blocks are 64-byte aligned and
  // user addresses fit in 48 bits, so the pointer needs 42 bits.
  static std::uint64_t pack(SpanSetBlock* b, std::uint64_t cnt) {
    return (reinterpret_cast<std::uint64_t>(b) >> 6) << 22 | (cnt & ((1u << 22) - 1));
  }
  static SpanSetBlock* unpack(std::uint64_t v) {
    return reinterpret_cast<SpanSetBlock*>((v >> 22) << 6);
  }
  std::atomic<std::uint64_t> head_{0};
  std::atomic<std::size_t> allocated_{0};
  std::atomic<std::size_t> pooled_{0};
  // The chunk new blocks are carved from: [chunkNext_, chunkEnd_), under chunkLock_.
  std::mutex chunkLock_;
  char* chunkNext_ = nullptr;
  char* chunkEnd_ = nullptr;
};

SpanSetBlockPool& spanSetBlockPool();

// Cache-line aligned: neighbouring sets (an MCentral's shards, mcentral.h) are used by
// different Ps at once and must not share lines.
class alignas(64) SpanSet {
 public:
  SpanSet() = default;
  ~SpanSet();
  SpanSet(const SpanSet&) = delete;
  SpanSet& operator=(const SpanSet&) = delete;

  void push(MSpan* s);
  MSpan* pop();  // null if empty (or the head slot's block is still being installed)
  // Precondition: the set is empty and nobody is pushing or popping (world stopped).
  void reset();
  std::size_t size() const {
    const std::uint64_t ht = index_.load(std::memory_order_acquire);
    return static_cast<std::uint32_t>(ht) - static_cast<std::uint32_t>(ht >> 32);
  }

 private:
  using Spine = std::atomic<SpanSetBlock*>;
  std::mutex spineLock_;
  std::atomic<Spine*> spine_{nullptr};   // acquire/release
  std::atomic<std::size_t> spineLen_{0};  // blocks installed; acquire/release
  std::size_t spineCap_ = 0;              // under spineLock_
  std::vector<Spine*> oldSpines_;         // under spineLock_, freed in the destructor
  std::atomic<std::uint64_t> index_{0};   // head << 32 | tail
};

}  // namespace spindle::runtime
