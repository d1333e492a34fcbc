#include "runtime/pagealloc.h"

#include <algorithm>
#include <bit>

#include "runtime/arena.h"
#include "runtime/throw.h"

namespace spindle::runtime {

namespace {
constexpr std::size_t kWordsPerChunk = PageAlloc::kPagesPerChunk / 64;
}

PageAlloc::PageAlloc(std::size_t maxPages) {
  nchunks_ = (maxPages + kPagesPerChunk - 1) / kPagesPerChunk;
  maxPages_ = maxPages;
  bitsBytes_ = nchunks_ * kWordsPerChunk * sizeof(std::uint64_t);
  bits_ = static_cast<std::uint64_t*>(sysAllocZeroed(bitsBytes_));
  // Build levels bottom-up, then reverse so levels_[0] is the top.
  std::vector<std::size_t> sizes{nchunks_};
  while (sizes.back() > kFanout) sizes.push_back((sizes.back() + kFanout - 1) / kFanout);
  std::reverse(sizes.begin(), sizes.end());
  std::size_t pages = kPagesPerChunk;
  entryPages_.assign(sizes.size(), 0);
  for (std::size_t l = sizes.size(); l-- > 0;) {
    entryPages_[l] = pages;
    pages *= kFanout;
  }
  for (std::size_t s : sizes) levels_.emplace_back(s);
}

PageAlloc::~PageAlloc() { sysFree(bits_, bitsBytes_); }

std::size_t PageAlloc::longestFreeRun() const {
  std::size_t best = 0, run = 0;
  const std::size_t p = entryPages_[0];
  for (const Sum& s : levels_[0]) {
    best = std::max<std::size_t>({best, s.max, run + s.start});
    run = s.start == p ? run + p : s.end;
  }
  return best;
}

void PageAlloc::grow(std::size_t first, std::size_t n) {
  SPINDLE_CHECK(first + n <= maxPages_, "PageAlloc::grow past maxPages: first={} n={} max={}",
                first, n, maxPages_);
  for (std::size_t i = first; i < first + n; ++i) {
    SPINDLE_DCHECK(!isFree(i), "PageAlloc::grow: page {} already free", i);
  }
  setRange(first, n, true);
  freePages_ += n;
  update(first, n);
}

std::size_t PageAlloc::alloc(std::size_t n) {
  SPINDLE_DCHECK(n > 0, "PageAlloc::alloc of 0 pages");
  const std::size_t first = find(n);
  if (first == kNotFound) return kNotFound;
  setRange(first, n, false);
  freePages_ -= n;
  update(first, n);
  return first;
}

void PageAlloc::free(std::size_t first, std::size_t n) {
  SPINDLE_CHECK(first + n <= maxPages_ && n > 0, "PageAlloc::free out of range: first={} n={}",
                first, n);
#ifdef SPINDLE_DEBUG
  for (std::size_t i = first; i < first + n; ++i) {
    SPINDLE_CHECK(!isFree(i), "PageAlloc::free: page {} of run [{}, +{}) is already free", i,
                  first, n);
  }
#endif
  setRange(first, n, true);
  freePages_ += n;
  update(first, n);
}

void PageAlloc::setRange(std::size_t first, std::size_t n, bool free) {
  std::size_t i = first;
  const std::size_t end = first + n;
  while (i < end) {
    const std::size_t bit = i % 64;
    const std::size_t take = std::min<std::size_t>(64 - bit, end - i);
    const std::uint64_t mask = take == 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << take) - 1) << bit;
    if (free) {
      bits_[i / 64] |= mask;
    } else {
      SPINDLE_DCHECK((bits_[i / 64] & mask) == mask,
                     "PageAlloc: allocating pages that are not free near page {}", i);
      bits_[i / 64] &= ~mask;
    }
    i += take;
  }
}

PageAlloc::Sum PageAlloc::chunkSummary(std::size_t chunk) const {
  const std::uint64_t* w = bits_ + chunk * kWordsPerChunk;
  Sum s;
  // start: free bits from bit 0 upward.
  std::size_t start = 0;
  for (std::size_t i = 0; i < kWordsPerChunk; ++i) {
    const std::size_t ones = std::countr_one(w[i]);
    start += ones;
    if (ones < 64) break;
  }
  std::size_t end = 0;
  for (std::size_t i = kWordsPerChunk; i-- > 0;) {
    const std::size_t ones = std::countl_one(w[i]);
    end += ones;
    if (ones < 64) break;
  }
  std::size_t max = 0, run = 0;
  for (std::size_t i = 0; i < kWordsPerChunk; ++i) {
    std::uint64_t x = w[i];
    if (x == ~std::uint64_t{0}) {
      run += 64;
      continue;
    }
    if (x == 0) {
      max = std::max(max, run);
      run = 0;
      continue;
    }
    run += std::countr_one(x);
    max = std::max(max, run);
    // Longest run of ones strictly inside the word: shift-and trick.
    std::uint64_t y = x;
    std::size_t inner = 0;
    while (y) {
      y &= y << 1;
      ++inner;
    }
    max = std::max(max, inner);
    run = std::countl_one(x);
  }
  max = std::max(max, run);
  s.start = static_cast<std::uint32_t>(start);
  s.end = static_cast<std::uint32_t>(end);
  s.max = static_cast<std::uint32_t>(max);
  return s;
}

PageAlloc::Sum PageAlloc::mergeChildren(std::size_t level, std::size_t parent) const {
  const std::vector<Sum>& kids = levels_[level + 1];
  const std::size_t p = entryPages_[level + 1];
  const std::size_t lo = parent * kFanout;
  const std::size_t hi = std::min(lo + kFanout, kids.size());
  Sum out;
  std::size_t start = 0, max = 0, run = 0;
  bool prefix = true;
  for (std::size_t i = lo; i < hi; ++i) {
    const Sum& c = kids[i];
    if (prefix) {
      start += c.start;
      if (c.start != p) prefix = false;
    }
    max = std::max<std::size_t>({max, c.max, run + c.start});
    run = c.start == p ? run + p : c.end;
  }
  // Children missing past the end of the level count as fully in use.
  if (hi - lo < kFanout) prefix = false;
  max = std::max(max, run);
  std::size_t end = (hi - lo == kFanout) ? run : 0;
  (void)prefix;
  out.start = static_cast<std::uint32_t>(start);
  out.max = static_cast<std::uint32_t>(max);
  out.end = static_cast<std::uint32_t>(end);
  return out;
}

void PageAlloc::update(std::size_t first, std::size_t n) {
  std::size_t lo = first / kPagesPerChunk;
  std::size_t hi = (first + n - 1) / kPagesPerChunk;
  std::vector<Sum>& leaves = levels_.back();
  for (std::size_t c = lo; c <= hi; ++c) leaves[c] = chunkSummary(c);
  for (std::size_t l = levels_.size() - 1; l-- > 0;) {
    lo /= kFanout;
    hi /= kFanout;
    for (std::size_t i = lo; i <= hi; ++i) levels_[l][i] = mergeChildren(l, i);
  }
}

std::size_t PageAlloc::scanChunk(std::size_t chunk, std::size_t n) const {
  const std::uint64_t* w = bits_ + chunk * kWordsPerChunk;
  std::size_t run = 0, runStart = 0;
  for (std::size_t i = 0; i < kWordsPerChunk; ++i) {
    const std::uint64_t x = w[i];
    if (x == ~std::uint64_t{0} && run + 64 < n) {
      if (run == 0) runStart = i * 64;
      run += 64;
      continue;
    }
    for (std::size_t b = 0; b < 64; ++b) {
      if ((x >> b) & 1) {
        if (run == 0) runStart = i * 64 + b;
        if (++run >= n) return chunk * kPagesPerChunk + runStart;
      } else {
        run = 0;
      }
    }
  }
  SPINDLE_FATAL("PageAlloc: chunk {} summary promised a run of {} pages that is not there",
                chunk, n);
}

std::size_t PageAlloc::find(std::size_t n) const {
  std::size_t level = 0, first = 0, count = levels_[0].size();
  for (;;) {
    const std::vector<Sum>& lv = levels_[level];
    const std::size_t p = entryPages_[level];
    std::size_t run = 0, runStart = 0;
    bool descended = false;
    for (std::size_t i = first; i < first + count && i < lv.size(); ++i) {
      const Sum& s = lv[i];
      const std::size_t base = i * p;
      if (run + s.start >= n) return run > 0 ? runStart : base;
      if (s.max >= n) {
        if (level + 1 == levels_.size()) return scanChunk(i, n);
        ++level;
        first = i * kFanout;
        count = kFanout;
        descended = true;
        break;
      }
      if (s.start == p) {
        if (run == 0) runStart = base;
        run += p;
      } else {
        run = s.end;
        runStart = base + p - s.end;
      }
    }
    if (!descended) {
      SPINDLE_CHECK(level == 0, "PageAlloc: summary at level {} promised a run of {} pages",
                    level, n);
      return kNotFound;
    }
  }
}

void PageAlloc::checkInvariants() const {
  std::size_t free = 0;
  for (std::size_t i = 0; i < nchunks_ * kWordsPerChunk; ++i) free += std::popcount(bits_[i]);
  SPINDLE_CHECK(free == freePages_, "PageAlloc: freePages={} but bitmap has {} free bits",
                freePages_, free);
  for (std::size_t c = 0; c < nchunks_; ++c) {
    const Sum want = chunkSummary(c);
    const Sum& got = levels_.back()[c];
    SPINDLE_CHECK(want == got, "PageAlloc: chunk {} summary {}/{}/{} != bitmap {}/{}/{}", c,
                  got.start, got.max, got.end, want.start, want.max, want.end);
  }
  for (std::size_t l = levels_.size() - 1; l-- > 0;) {
    for (std::size_t i = 0; i < levels_[l].size(); ++i) {
      const Sum want = mergeChildren(l, i);
      const Sum& got = levels_[l][i];
      SPINDLE_CHECK(want == got, "PageAlloc: level {} entry {} summary {}/{}/{} != merge {}/{}/{}",
                    l, i, got.start, got.max, got.end, want.start, want.max, want.end);
    }
  }
}

}  // namespace spindle::runtime
