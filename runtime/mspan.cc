#include "runtime/mspan.h"

#include <algorithm>

#include "runtime/throw.h"

namespace spindle::runtime {

void MSpan::init(std::uintptr_t base, std::size_t np) {
  // Release: a spanOf that reads these with acquire also sees the span's earlier Dead
  // publication, so its state re-check detects the reuse (see MHeap::spanOf).
  startAddr.store(base, std::memory_order_release);
  limit.store(base + np * kPageSize, std::memory_order_release);
  npages = np;
  spanclass = SpanClass{};
  kind = SpanKind::Heap;
  needzero = NeedZero::No;
  shard = 0;
  elemsize = 0;
  nelems = 0;
  divMagic = 0;
  freeindex = 0;
  allocCount = 0;
  allocCountBeforeCache = 0;
  allocCache = 0;
  allocBits = nullptr;
  gcmarkBits = nullptr;
  pinnerBits = nullptr;
  allocBlackStart = kNoAllocBlack;
  poisoned = false;
  // No lock: the span is not published yet, and whoever freed it last handed it over
  // through the heap lock or this P's MSpan cache (happens-before).
  specials = nullptr;
}

std::uint32_t MSpan::nextFreeIndex() {
  std::uint32_t sfreeindex = freeindex;
  const std::uint32_t snelems = nelems;
  if (sfreeindex == snelems) return sfreeindex;
  SPINDLE_DCHECK(sfreeindex < snelems, "span.freeindex {} > nelems {} (span {:#x})", sfreeindex,
                 snelems, base());
  std::uint64_t cache = allocCache;
  std::uint32_t bit = static_cast<std::uint32_t>(std::countr_zero(cache));
  while (bit == 64) {
    // The cache is exhausted: move to the next 64-slot word.
    sfreeindex = (sfreeindex + 64) & ~std::uint32_t{63};
    if (sfreeindex >= snelems) {
      freeindex = snelems;
      return snelems;
    }
    refillAllocCache(sfreeindex / 8);
    cache = allocCache;
    bit = static_cast<std::uint32_t>(std::countr_zero(cache));
  }
  const std::uint32_t result = sfreeindex + bit;
  if (result >= snelems) {
    freeindex = snelems;
    return snelems;
  }
  allocCache = (allocCache >> bit) >> 1;  // two shifts: bit + 1 may be 64
  sfreeindex = result + 1;
  if (sfreeindex % 64 == 0 && sfreeindex != snelems) refillAllocCache(sfreeindex / 8);
  freeindex = sfreeindex;
  return result;
}

void MSpan::poisonSlot(std::uint32_t i) {
  auto* w = reinterpret_cast<std::uint64_t*>(base() + std::uintptr_t{i} * elemsize);
  for (std::size_t k = 0; k < elemsize / 8; ++k) w[k] = kFreedPoison;
}

void poisonSpan(MSpan* s) {
  for (std::uint32_t i = 0; i < s->nelems; ++i) s->poisonSlot(i);
  s->needzero = NeedZero::Each;
  s->poisoned = true;
}

void MSpan::checkPoisonedSlot(std::uint32_t i) const {
  const auto* w = reinterpret_cast<const std::uint64_t*>(base() + std::uintptr_t{i} * elemsize);
  for (std::size_t k = 0; k < elemsize / 8; ++k) {
    if (w[k] != kFreedPoison) [[unlikely]] {
      SPINDLE_FATAL(
          "malloc: free object {:#x} (span {:#x}, size class {}, elemsize {}, slot {}) was "
          "written after it was freed: word {} (address {:#x}) = {:#x}, want poison {:#x}",
          base() + std::uintptr_t{i} * elemsize, base(), spanclass.sizeclass(), elemsize, i, k,
          reinterpret_cast<std::uintptr_t>(&w[k]), w[k], kFreedPoison);
    }
  }
}

std::uint32_t MSpan::countMarked() const {
  std::uint32_t n = 0;
  const std::size_t words = (nelems + 63) / 64;
  for (std::size_t w = 0; w < words; ++w) {
    std::uint64_t x;
    std::memcpy(&x, gcmarkBits + w * 8, 8);
    if (w == words - 1 && nelems % 64 != 0) x &= (std::uint64_t{1} << (nelems % 64)) - 1;
    n += static_cast<std::uint32_t>(std::popcount(x));
  }
  return n;
}

namespace {
// Bits [lo, hi) of 64-bit word w (slot indices), as a mask.
std::uint64_t rangeMask(std::uint32_t w, std::uint32_t lo, std::uint32_t hi) {
  const std::uint32_t wlo = w * 64, whi = wlo + 64;
  const std::uint32_t a = std::max(lo, wlo), b = std::min(hi, whi);
  if (a >= b) return 0;
  const std::uint64_t upper = (b - wlo == 64) ? ~std::uint64_t{0} : (std::uint64_t{1} << (b - wlo)) - 1;
  return upper & ~((std::uint64_t{1} << (a - wlo)) - 1);
}
std::uint64_t loadWord(const std::uint8_t* bits, std::uint32_t w) {
  std::uint64_t x;
  std::memcpy(&x, bits + w * 8, 8);
  return x;
}
// Atomic OR / AND-NOT of a 64-bit mask into mark bits, byte by byte (markers use byte
// atomics on the same bits).
void orMarks(std::uint8_t* bits, std::uint32_t w, std::uint64_t m) {
  for (int i = 0; i < 8 && m != 0; i++, m >>= 8) {
    if (m & 0xff)
      std::atomic_ref<std::uint8_t>(bits[w * 8 + i]).fetch_or(static_cast<std::uint8_t>(m & 0xff), std::memory_order_relaxed);
  }
}
void clearMarks(std::uint8_t* bits, std::uint32_t w, std::uint64_t m) {
  for (int i = 0; i < 8 && m != 0; i++, m >>= 8) {
    if (m & 0xff)
      std::atomic_ref<std::uint8_t>(bits[w * 8 + i]).fetch_and(static_cast<std::uint8_t>(~m & 0xff), std::memory_order_relaxed);
  }
}
}  // namespace

void MSpan::allocBlackBegin() {
  SPINDLE_DCHECK(allocBlackStart == kNoAllocBlack, "allocBlackBegin: span {:#x} already pre-marked", base());
  allocBlackStart = freeindex;
  for (std::uint32_t w = freeindex / 64; w < (nelems + 63) / 64; ++w) {
    const std::uint64_t freeSlots = ~loadWord(allocBits, w) & rangeMask(w, freeindex, nelems);
    orMarks(gcmarkBits, w, freeSlots);
  }
}

std::uint32_t MSpan::allocBlackEnd() {
  SPINDLE_DCHECK(allocBlackStart != kNoAllocBlack, "allocBlackEnd: span {:#x} not pre-marked", base());
  std::uint32_t n = 0;
  for (std::uint32_t w = allocBlackStart / 64; w < (nelems + 63) / 64; ++w) {
    const std::uint64_t notAlloc = ~loadWord(allocBits, w);
    n += static_cast<std::uint32_t>(std::popcount(notAlloc & rangeMask(w, allocBlackStart, freeindex)));
    clearMarks(gcmarkBits, w, notAlloc & rangeMask(w, freeindex, nelems));
  }
  allocBlackStart = kNoAllocBlack;
  return n;
}

std::uint32_t MSpan::countAllocated() const {
  std::uint32_t n = freeindex;
  for (std::uint32_t w = freeindex / 64; w < (nelems + 63) / 64; ++w)
    n += static_cast<std::uint32_t>(std::popcount(loadWord(allocBits, w) & rangeMask(w, freeindex, nelems)));
  return n;
}

}  // namespace spindle::runtime
