// pagealloc.h: the page allocator (Go's mpagealloc.go, simplified).
//
// Works in page indices [0, maxPages). A bitmap holds one bit per page: 1 = free,
// 0 = in use or not yet part of the heap (so zeroed memory means "nothing free").
// Pages become free through grow() (new arena) or free().
//
// Finding a run of n free pages must not scan the heap linearly, so the bitmap is
// summarised in a radix tree:
//   - leaf level: one summary per chunk of 512 pages (8 bitmap words);
//   - each level above merges 8 summaries of the level below; the top level has at
//     most 64 entries and is scanned directly (fewer levels to update per change).
// A summary is {start, max, end}: the free run at the start of the node, the longest
// free run inside it, and the free run at its end (in pages). find(n) walks the top
// level left to right, carrying the free run that ends at the current position; a run
// that crosses nodes is detected from (carried run + node.start), a run inside a node
// makes the search descend into that node. The search is first-fit (lowest address),
// which keeps the heap compact. Cost: at most 64 + 8 * depth summaries plus one
// 512-bit chunk. An update stops propagating at the first level whose summary is
// unchanged.
//
// The tree covers only the chunks grown so far (a 64 MiB heap has 16 chunks: one level,
// nothing to merge); grow() past them rebuilds it, O(chunks), once per new arena.
// Scavenging (mgcscavenge.h): a second bitmap marks free pages whose memory was returned
// to the OS (1 = scavenged). Allocation clears the bits of the pages it takes; the
// scavenger takes a run of free unscavenged pages (findScavengeCandidate + allocRange),
// releases it without the heap lock, then returns it with freeScavenged.
// Invariants (checked by checkInvariants(), used by tests and debug builds):
//   - scavenged pages are free; scavengedPages() equals the number of scavenged bits;
//   - every leaf summary equals the summary recomputed from its 8 bitmap words;
//   - every inner summary equals the merge of its 8 children;
//   - freePages() equals the number of 1 bits.
// Not thread-safe: the heap lock protects it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "runtime/throw.h"

#define SPINDLE_PAGEALLOC_DCHECK_DISJOINT(bits, cache)                                     \
  SPINDLE_DCHECK(((bits) & (cache)) == 0,                                                  \
                 "PageAlloc::flushCache: cached pages {:#x} are already free ({:#x})", cache, \
                 bits)

namespace spindle::runtime {

class PageAlloc {
 public:
  static constexpr std::size_t kPagesPerChunk = 512;
  static constexpr std::size_t kFanout = 8;
  static constexpr std::size_t kMaxTop = 64;  // top-level entries, scanned linearly
  static constexpr std::size_t kNotFound = SIZE_MAX;

  // maxTop: most entries in the top level (tests pass a small one for a deeper tree).
  explicit PageAlloc(std::size_t maxPages, std::size_t maxTop = kMaxTop);
  ~PageAlloc();
  PageAlloc(const PageAlloc&) = delete;
  PageAlloc& operator=(const PageAlloc&) = delete;

  // Pages [first, first + n) join the heap as free pages.
  void grow(std::size_t first, std::size_t n);
  // Allocates the lowest run of n free pages; returns its first page or kNotFound.
  std::size_t alloc(std::size_t n);
  // Returns [first, first + n) (all in use) to the free pool; neighbours coalesce.
  void free(std::size_t first, std::size_t n);

  // Scavenging. The lowest run (at most maxPages, within one 64-page word) of free,
  // unscavenged pages at or below the scavenger's cursor, which walks the heap from the
  // top down and wraps; kNotFound when every free page is scavenged.
  std::size_t findScavengeCandidate(std::size_t maxPages, std::size_t* n);
  // Takes [first, first + n) (all free) out of the free pool.
  void allocRange(std::size_t first, std::size_t n);
  // Returns [first, first + n) (in use) as free, scavenged pages.
  void freeScavenged(std::size_t first, std::size_t n);
  std::size_t scavengedPages() const { return scavengedPages_; }
  bool isScavenged(std::size_t page) const { return (scav_[page / 64] >> (page % 64)) & 1; }

  // Per-P page caches (pagecache.h): fills `c` with the free pages of the 64-page
  // group holding the lowest free page, marking them in use; false if none is free.
  template <typename Cache>
  bool allocToCache(Cache& c) {
    const std::size_t page = find(1);
    if (page == kNotFound) return false;
    const std::size_t w = page / 64;
    c.base = w * 64;
    c.cache = bits_[w];
    freePages_ -= static_cast<std::size_t>(__builtin_popcountll(bits_[w]));
    bits_[w] = 0;
    scavengedPages_ -= static_cast<std::size_t>(__builtin_popcountll(scav_[w]));
    scav_[w] = 0;
    update(c.base, 64);
    return true;
  }
  // Returns a cache's remaining pages and empties it.
  template <typename Cache>
  void flushCache(Cache& c) {
    if (c.cache == 0) return;
    const std::size_t w = c.base / 64;
    SPINDLE_PAGEALLOC_DCHECK_DISJOINT(bits_[w], c.cache);
    bits_[w] |= c.cache;
    freePages_ += static_cast<std::size_t>(__builtin_popcountll(c.cache));
    update(c.base, 64);
    c.cache = 0;
  }

  // Returns every run in a cache's freed list (pagecache.h) to the free pool, updating
  // each touched chunk's summary once.
  template <typename Cache>
  void flushFreed(Cache& c) {
    if (c.nfreed == 0) return;
    std::size_t lo = SIZE_MAX, hi = 0;
    for (std::uint32_t i = 0; i < c.nfreed; ++i) {
      const std::size_t first = c.freed[i].page, n = c.freed[i].npages;
      checkFreeRun(first, n);
      setRange(first, n, true);
      freePages_ += n;
      lo = first < lo ? first : lo;
      hi = first + n > hi ? first + n : hi;
    }
    // One update over [lo, hi) recomputes each chunk in between once; runs freed in one
    // batch are usually in one or two chunks. A wide spread updates chunk by chunk.
    if ((hi - lo) / kPagesPerChunk <= 4) {
      update(lo, hi - lo);
    } else {
      for (std::uint32_t i = 0; i < c.nfreed; ++i) update(c.freed[i].page, c.freed[i].npages);
    }
    c.nfreed = 0;
    c.freedPages = 0;
  }
  std::size_t freePages() const { return freePages_; }
  std::size_t maxPages() const { return maxPages_; }
  bool isFree(std::size_t page) const { return (bits_[page / 64] >> (page % 64)) & 1; }
  // Longest free run anywhere (the root summary), in pages.
  std::size_t longestFreeRun() const;
  // Recomputes every summary and the free count; fatal error on any mismatch.
  void checkInvariants() const;

 private:
  struct Sum {
    std::uint32_t start = 0, max = 0, end = 0;
    bool operator==(const Sum&) const = default;
  };

  std::size_t find(std::size_t n) const;
  // free()'s range and (debug builds) in-use checks.
  void checkFreeRun(std::size_t first, std::size_t n) const;
  std::size_t scanChunk(std::size_t chunk, std::size_t n) const;
  void setRange(std::size_t first, std::size_t n, bool free);
  void update(std::size_t first, std::size_t n);
  Sum chunkSummary(std::size_t chunk) const;
  Sum mergeChildren(std::size_t level, std::size_t parent) const;
  std::size_t pagesPerEntry(std::size_t level) const { return entryPages_[level]; }
  void rebuild(std::size_t activeChunks);

  std::size_t maxPages_;
  std::size_t maxTop_;
  std::size_t nchunks_;
  std::size_t activeChunks_ = 0;  // chunks covered by the summary tree (grown so far)
  std::uint64_t* bits_;  // maxPages_/64 words (whole chunks), zeroed
  std::uint64_t* scav_;  // same shape: 1 = free and returned to the OS
  std::size_t scavengedPages_ = 0;
  std::size_t scavCursor_ = 0;  // next word the scavenger looks at (downwards)
  std::size_t bitsBytes_;
  // levels_[0] is the top (<= maxTop entries), levels_.back() the chunk summaries.
  std::vector<std::vector<Sum>> levels_;
  std::vector<std::size_t> entryPages_;
  std::size_t freePages_ = 0;
};

}  // namespace spindle::runtime
