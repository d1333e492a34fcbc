// pagecache.h: a P's private cache of free pages (Go's mpagecache.go).
//
// P::PageCache holds an aligned group of 64 pages (base, a multiple of 64) and a bitmap
// of the ones it owns and has not handed out. The page allocator marks the whole group
// in use when it fills a cache (PageAlloc::allocToCache), so the P can carve spans of
// fewer than kPageCacheMaxPages pages out of it without the heap lock. Freed pages go
// back to the page allocator, never to a cache. PageAlloc::flushCache returns a cache's
// remaining pages (P destruction, or before a refill).
// Invariant: a page is either free in the page allocator, owned by one P's cache, or in
// a span; never two of these.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#include "runtime/p.h"
#include "runtime/pagealloc.h"

namespace spindle::runtime {

inline constexpr std::size_t kPageCacheMaxPages = 16;

// Takes the lowest run of npages free pages from the cache; kNotFound if none.
inline std::size_t pageCacheAlloc(P::PageCache& c, std::size_t npages) {
  if (c.cache == 0) return PageAlloc::kNotFound;
  if (npages == 1) {
    const int i = std::countr_zero(c.cache);
    c.cache &= c.cache - 1;
    return c.base + i;
  }
  // m bit j set <=> pages j .. j+npages-1 all free.
  std::uint64_t m = c.cache;
  std::size_t len = 1;
  while (len < npages && m != 0) {
    const std::size_t sh = std::min(len, npages - len);
    m &= m >> sh;
    len += sh;
  }
  if (m == 0) return PageAlloc::kNotFound;
  const int i = std::countr_zero(m);
  c.cache &= ~((((std::uint64_t{1} << npages) - 1)) << i);
  return c.base + i;
}

}  // namespace spindle::runtime
