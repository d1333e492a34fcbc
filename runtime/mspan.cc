#include "runtime/mspan.h"

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
  needzero = false;
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
  allocCache >>= bit + 1;
  sfreeindex = result + 1;
  if (sfreeindex % 64 == 0 && sfreeindex != snelems) refillAllocCache(sfreeindex / 8);
  freeindex = sfreeindex;
  return result;
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

}  // namespace spindle::runtime
