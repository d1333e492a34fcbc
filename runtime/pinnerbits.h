// pinnerbits.h: the heap's side of pinning (Go's pinnerBits and pin-counter specials in
// pinner.go): per-object pin state in a span, and its upkeep at sweep.
//
// Pin state. A span's pinnerBits (allocated on demand from the gcBits arenas, like mark
// bits) hold 2 bits per object: bit 2i "pinned", bit 2i+1 "multipinned". An object
// pinned N times has state 00 (N = 0), 01 (N = 1) or 11 with a SpecialPinCounter of
// count N - 1 in the span's specials (N >= 2). The pinner (pinner.h) changes the bits:
//   - 00 <-> 01 with one CAS on the byte, without a lock, when the span is swept and
//     stable (sweepgen sg or sg+3: no sweep of it can run before the next STW);
//   - every other change (allocating the bits, 01 <-> 11, the counter) under the span's
//     specialLock, still by CAS since lock-free changes touch neighbouring objects.
// Readers (isPinned) load the bits pointer with acquire and the byte relaxed.
//
// Sweep (sweepPinnerBits, called from sweepSpan while the span is claimed, before its
// mark bits become its alloc bits): under specialLock, pin counters of unmarked (dead)
// objects are freed, and the bits of marked objects are copied into fresh bits from the
// current gcBits epoch, or the span's bits are dropped when no live object is pinned.
// The copy is required: gcBits arenas are recycled two epochs later. A span freed or
// reused starts with no bits (MSpan::init).
//
// Specials. A span's specials list is sorted by (offset, kind); kind 2 is a pin counter
// (kind 1, finalizers, belongs to the collector). Counters come from a FixAlloc under
// its own lock (they are rare: only objects pinned more than once).
#pragma once

#include <atomic>
#include <cstdint>

#include "runtime/mspan.h"

namespace spindle::runtime {

inline constexpr std::uint8_t kSpecialPinCounter = 2;

struct SpecialPinCounter : Special {
  SpecialPinCounter* fixNext = nullptr;  // FixAlloc link while free
  std::uint64_t count = 0;               // pins beyond the first
};

inline constexpr std::uint8_t kPinnedBit = 1;
inline constexpr std::uint8_t kMultiPinnedBit = 2;

// Bytes of pin bits for a span of nelems objects (2 bits each, whole 64-bit words).
inline std::size_t pinnerBitsBytes(std::size_t nelems) { return (2 * nelems + 63) / 64 * 8; }

// The span's bits or null. Acquire: pairs with storePinnerBits (the bytes are zeroed or
// copied before publication).
inline std::uint8_t* loadPinnerBits(MSpan* s) {
  return std::atomic_ref<std::uint8_t*>(s->pinnerBits).load(std::memory_order_acquire);
}
// Under s->specialLock.
inline void storePinnerBits(MSpan* s, std::uint8_t* bits) {
  std::atomic_ref<std::uint8_t*>(s->pinnerBits).store(bits, std::memory_order_release);
}
// Zeroed bits for s from the current gcBits epoch.
std::uint8_t* newPinnerBits(const MSpan* s);

// The byte holding object i's 2 bits, and their shift within it.
inline std::atomic_ref<std::uint8_t> pinByte(std::uint8_t* bits, std::uint32_t i) {
  return std::atomic_ref<std::uint8_t>(bits[i / 4]);
}
inline unsigned pinShift(std::uint32_t i) { return (i % 4) * 2; }
// Object i's state (kPinnedBit | kMultiPinnedBit), relaxed.
inline std::uint8_t pinState(std::uint8_t* bits, std::uint32_t i) {
  return static_cast<std::uint8_t>((pinByte(bits, i).load(std::memory_order_relaxed) >> pinShift(i)) & 3);
}

// Pin counters (under s->specialLock).
SpecialPinCounter* findPinCounter(MSpan* s, std::uint32_t offset);
SpecialPinCounter* addPinCounter(MSpan* s, std::uint32_t offset);
void removePinCounter(MSpan* s, SpecialPinCounter* c);
// Counter records allocated so far (for allocation accounting in tests/benchmarks).
std::uint64_t pinCountersAllocated();

// Called by sweepSpan (see above). The caller has claimed s (sweepgen sg-1).
void sweepPinnerBits(MSpan* s);

}  // namespace spindle::runtime
