// pagecache.h: a P's private cache of free pages (Go's mpagecache.go).
//
// P::PageCache holds an aligned group of 64 pages (base, a multiple of 64) and a bitmap
// of the ones it owns and has not handed out. The page allocator marks the whole group
// in use when it fills a cache (PageAlloc::allocToCache), so the P can carve spans of
// fewer than kPageCacheMaxPages pages out of it without the heap lock.
// PageAlloc::flushCache returns a cache's remaining pages (P destruction, or before a
// refill).
//
// Freed runs (not in Go, whose sweeper frees each span under the heap lock): the pages
// of a small span freed by a P are kept in that P's `freed` list (at most kMaxFreedRuns
// runs, kMaxFreedPages pages), still marked in use in the page allocator. The P's next
// allocSpan of the same size takes the most recent one (LIFO: warm memory) without the
// lock; when the list is full, PageAlloc::flushFreed returns all of it under one lock
// acquisition. So sweeping n small spans costs n/kMaxFreedRuns lock acquisitions, not n.
// Invariant: a page is either free in the page allocator, owned by one P's cache (bitmap
// or freed list), or in a span; never two of these.
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

// Takes the most recently freed run of exactly npages pages; kNotFound if none.
inline std::size_t pageCacheAllocFreed(P::PageCache& c, std::size_t npages) {
  for (std::uint32_t i = c.nfreed; i-- > 0;) {
    if (c.freed[i].npages != npages) continue;
    const std::size_t page = c.freed[i].page;
    c.freed[i] = c.freed[--c.nfreed];
    c.freedPages -= static_cast<std::uint32_t>(npages);
    return page;
  }
  return PageAlloc::kNotFound;
}

// Keeps the run [page, page + npages) in the freed list; false if the list is full (the
// caller flushes it with PageAlloc::flushFreed under the heap lock and retries).
inline bool pageCacheFree(P::PageCache& c, std::size_t page, std::size_t npages) {
  if (c.nfreed == P::PageCache::kMaxFreedRuns ||
      c.freedPages + npages > P::PageCache::kMaxFreedPages) {
    return false;
  }
  c.freed[c.nfreed++] = P::PageCache::Run{page, npages};
  c.freedPages += static_cast<std::uint32_t>(npages);
  return true;
}

}  // namespace spindle::runtime
