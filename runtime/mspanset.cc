#include "runtime/mspanset.h"

#include <cstddef>
#include <new>
#include <type_traits>

#include "runtime/arena.h"
#include "runtime/throw.h"

namespace spindle::runtime {

SpanSetBlockPool& spanSetBlockPool() {
  static SpanSetBlockPool* pool = new (sysAllocZeroed(sizeof(SpanSetBlockPool))) SpanSetBlockPool();
  return *pool;
}

SpanSetBlock* SpanSetBlockPool::alloc() {
  std::uint64_t old = head_.load(std::memory_order_acquire);
  while (SpanSetBlock* b = unpack(old)) {
    // Reading lfnext of a block another thread may pop and reuse is safe: blocks are
    // never unmapped, lfnext is atomic, and the CAS fails if head_ changed meanwhile.
    const std::uint64_t next = b->lfnext.load(std::memory_order_relaxed);
    // Acquire on success: we own b and see what the pusher wrote into it.
    if (head_.compare_exchange_weak(old, pack(unpack(next), (old & ((1u << 22) - 1)) + 1),
                                    std::memory_order_acquire, std::memory_order_acquire)) {
      pooled_.fetch_sub(1, std::memory_order_relaxed);
      return b;
    }
  }
  allocated_.fetch_add(1, std::memory_order_relaxed);
  // From OS memory that is never returned: a stale pointer to a block stays readable.
  // An untouched block of a fresh chunk is all zero bytes, SpanSetBlock's value-initialised
  // state (null slots, counters 0); an aggregate is an implicit-lifetime type, so the
  // mapping already holds the block and nothing is written (untouched pages stay unfaulted).
  static_assert(std::is_aggregate_v<SpanSetBlock>);
  static_assert(kSpanSetBlockChunk % alignof(SpanSetBlock) == 0);
  std::lock_guard<std::mutex> lk(chunkLock_);
  if (chunkEnd_ - chunkNext_ < static_cast<std::ptrdiff_t>(sizeof(SpanSetBlock))) {
    chunkNext_ = static_cast<char*>(sysAllocZeroed(kSpanSetBlockChunk));  // page-aligned
    chunkEnd_ = chunkNext_ + kSpanSetBlockChunk;
  }
  auto* b = reinterpret_cast<SpanSetBlock*>(chunkNext_);
  chunkNext_ += sizeof(SpanSetBlock);
  return b;
}

void SpanSetBlockPool::free(SpanSetBlock* b) {
  SPINDLE_DCHECK(b->popped.load(std::memory_order_relaxed) == 0,
                 "SpanSetBlock returned to the pool with popped={}",
                 b->popped.load(std::memory_order_relaxed));
  pooled_.fetch_add(1, std::memory_order_relaxed);
  std::uint64_t old = head_.load(std::memory_order_relaxed);
  for (;;) {
    b->lfnext.store(pack(unpack(old), 0), std::memory_order_relaxed);
    // Release: b's contents (all slots null) are visible to the next alloc().
    if (head_.compare_exchange_weak(old, pack(b, (old & ((1u << 22) - 1)) + 1),
                                    std::memory_order_release, std::memory_order_relaxed)) {
      return;
    }
  }
}

SpanSet::~SpanSet() {
  Spine* spine = spine_.load(std::memory_order_relaxed);
  const std::size_t len = spineLen_.load(std::memory_order_relaxed);
  // Only blocks at or after the head's block can still be live. Entries below it are
  // fully popped blocks, already back in the pool; a grown spine may still hold stale
  // pointers to them (the last popper cleared the entry in the spine it had loaded).
  const std::size_t first =
      static_cast<std::uint32_t>(index_.load(std::memory_order_relaxed) >> 32) /
      kSpanSetBlockEntries;
  for (std::size_t i = first; spine != nullptr && i < len; ++i) {
    SpanSetBlock* b = spine[i].load(std::memory_order_relaxed);
    if (b != nullptr) {
      for (auto& slot : b->spans) slot.store(nullptr, std::memory_order_relaxed);
      b->popped.store(0, std::memory_order_relaxed);
      spanSetBlockPool().free(b);
    }
  }
  delete[] spine;
  for (Spine* s : oldSpines_) delete[] s;
}

void SpanSet::push(MSpan* s) {
  // Claim a slot: increment the tail (low half).
  const std::uint64_t cursor =
      static_cast<std::uint32_t>(index_.fetch_add(1, std::memory_order_acq_rel));
  const std::size_t top = cursor / kSpanSetBlockEntries;
  const std::size_t bottom = cursor % kSpanSetBlockEntries;
  SpanSetBlock* block = nullptr;
  if (top < spineLen_.load(std::memory_order_acquire)) {
    block = spine_.load(std::memory_order_acquire)[top].load(std::memory_order_acquire);
  } else {
    std::lock_guard<std::mutex> g(spineLock_);
    const std::size_t len = spineLen_.load(std::memory_order_relaxed);
    if (top < len) {
      block = spine_.load(std::memory_order_relaxed)[top].load(std::memory_order_acquire);
    } else {
      SPINDLE_CHECK(top == len, "SpanSet: pushing at block {} but spine length is {}", top, len);
      Spine* spine = spine_.load(std::memory_order_relaxed);
      if (len == spineCap_) {
        const std::size_t cap = spineCap_ == 0 ? 64 : spineCap_ * 2;
        Spine* grown = new Spine[cap];
        for (std::size_t i = 0; i < cap; ++i) {
          grown[i].store(i < len ? spine[i].load(std::memory_order_relaxed) : nullptr,
                         std::memory_order_relaxed);
        }
        if (spine != nullptr) oldSpines_.push_back(spine);
        // Release: the copied entries are visible through the new spine.
        spine_.store(grown, std::memory_order_release);
        spine = grown;
        spineCap_ = cap;
      }
      block = spanSetBlockPool().alloc();
      spine[top].store(block, std::memory_order_release);
      // Release: a reader that sees the new length sees the block in the spine.
      spineLen_.store(len + 1, std::memory_order_release);
    }
  }
  // Release: the span's contents are visible to the popper.
  block->spans[bottom].store(s, std::memory_order_release);
}

MSpan* SpanSet::pop() {
  std::uint64_t ht = index_.load(std::memory_order_acquire);
  std::uint32_t head;
  for (;;) {
    head = static_cast<std::uint32_t>(ht >> 32);
    const std::uint32_t tail = static_cast<std::uint32_t>(ht);
    if (head >= tail) return nullptr;
    // The slot's block may not be installed yet (racing with a push that grows the
    // spine): report empty rather than spin, as Go does.
    if (spineLen_.load(std::memory_order_acquire) <= head / kSpanSetBlockEntries) return nullptr;
    const std::uint64_t want = (std::uint64_t{head} + 1) << 32 | tail;
    if (index_.compare_exchange_weak(ht, want, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      break;
    }
  }
  const std::size_t top = head / kSpanSetBlockEntries;
  const std::size_t bottom = head % kSpanSetBlockEntries;
  Spine* spine = spine_.load(std::memory_order_acquire);
  SpanSetBlock* block = spine[top].load(std::memory_order_acquire);
  SPINDLE_CHECK(block != nullptr, "SpanSet: no block at spine index {} (head {})", top, head);
  MSpan* s = block->spans[bottom].load(std::memory_order_acquire);
  while (s == nullptr) {  // the pusher claimed the slot but has not stored yet
    s = block->spans[bottom].load(std::memory_order_acquire);
  }
  block->spans[bottom].store(nullptr, std::memory_order_relaxed);
  // acq_rel: the last popper sees every other popper's slot clear before recycling.
  if (block->popped.fetch_add(1, std::memory_order_acq_rel) + 1 == kSpanSetBlockEntries) {
    spine[top].store(nullptr, std::memory_order_relaxed);
    block->popped.store(0, std::memory_order_relaxed);
    spanSetBlockPool().free(block);
  }
  return s;
}

void SpanSet::reset() {
  const std::uint64_t ht = index_.load(std::memory_order_acquire);
  const std::uint32_t head = static_cast<std::uint32_t>(ht >> 32);
  const std::uint32_t tail = static_cast<std::uint32_t>(ht);
  SPINDLE_CHECK(head >= tail, "SpanSet::reset of a non-empty set: head={} tail={}", head, tail);
  const std::size_t top = head / kSpanSetBlockEntries;
  Spine* spine = spine_.load(std::memory_order_acquire);
  if (top < spineLen_.load(std::memory_order_acquire)) {
    SpanSetBlock* block = spine[top].load(std::memory_order_relaxed);
    if (block != nullptr) {
      const std::uint32_t popped = block->popped.load(std::memory_order_relaxed);
      SPINDLE_CHECK(popped > 0 && popped < kSpanSetBlockEntries,
                    "SpanSet::reset: last block has popped={}", popped);
      spine[top].store(nullptr, std::memory_order_relaxed);
      block->popped.store(0, std::memory_order_relaxed);
      spanSetBlockPool().free(block);
    }
  }
  index_.store(0, std::memory_order_release);
  spineLen_.store(0, std::memory_order_release);
}

}  // namespace spindle::runtime
