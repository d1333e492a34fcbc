#include "runtime/pagealloc.h"

#include <algorithm>
#include <bit>

#include "runtime/arena.h"
#include "runtime/throw.h"

namespace spindle::runtime {

namespace {
constexpr std::size_t kWordsPerChunk = PageAlloc::kPagesPerChunk / 64;
}

PageAlloc::PageAlloc(std::size_t maxPages, std::size_t maxTop)
    : maxTop_(std::max(maxTop, kFanout)) {
  nchunks_ = (maxPages + kPagesPerChunk - 1) / kPagesPerChunk;
  maxPages_ = maxPages;
  bitsBytes_ = nchunks_ * kWordsPerChunk * sizeof(std::uint64_t);
  bits_ = static_cast<std::uint64_t*>(sysAllocZeroed(bitsBytes_));
  scav_ = static_cast<std::uint64_t*>(sysAllocZeroed(bitsBytes_));
  rebuild(0);
}

void PageAlloc::rebuild(std::size_t activeChunks) {
  activeChunks_ = activeChunks;
  // Level sizes bottom-up, then reversed so levels_[0] is the top.
  std::vector<std::size_t> sizes{std::max<std::size_t>(activeChunks, 1)};
  while (sizes.back() > maxTop_) sizes.push_back((sizes.back() + kFanout - 1) / kFanout);
  std::reverse(sizes.begin(), sizes.end());
  std::size_t pages = kPagesPerChunk;
  entryPages_.assign(sizes.size(), 0);
  for (std::size_t l = sizes.size(); l-- > 0;) {
    entryPages_[l] = pages;
    pages *= kFanout;
  }
  levels_.clear();
  for (std::size_t s : sizes) levels_.emplace_back(s);
  std::vector<Sum>& leaves = levels_.back();
  for (std::size_t c = 0; c < leaves.size(); ++c) leaves[c] = chunkSummary(c);
  for (std::size_t l = levels_.size() - 1; l-- > 0;) {
    for (std::size_t i = 0; i < levels_[l].size(); ++i) levels_[l][i] = mergeChildren(l, i);
  }
}

PageAlloc::~PageAlloc() {
  sysFree(bits_, bitsBytes_);
  sysFree(scav_, bitsBytes_);
}

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
  // The summary tree covers only the chunks in use so far (fewer levels to update in a
  // small heap); growing past it rebuilds the tree for the new size.
  const std::size_t active = (first + n + kPagesPerChunk - 1) / kPagesPerChunk;
  if (active > activeChunks_) {
    rebuild(active);
  } else {
    update(first, n);
  }
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

void PageAlloc::checkFreeRun(std::size_t first, std::size_t n) const {
  SPINDLE_CHECK(first + n <= activeChunks_ * kPagesPerChunk && n > 0,
                "PageAlloc::free out of range: first={} n={} (heap has {} chunks)", first, n,
                activeChunks_);
#ifdef SPINDLE_DEBUG
  for (std::size_t i = first; i < first + n; ++i) {
    SPINDLE_CHECK(!isFree(i), "PageAlloc::free: page {} of run [{}, +{}) is already free", i,
                  first, n);
  }
#endif
}

void PageAlloc::free(std::size_t first, std::size_t n) {
  checkFreeRun(first, n);
  setRange(first, n, true);
  freePages_ += n;
  update(first, n);
}

std::size_t PageAlloc::findScavengeCandidate(std::size_t maxPages, std::size_t* n) {
  const std::size_t words = activeChunks_ * kWordsPerChunk;
  if (words == 0 || maxPages == 0) return kNotFound;
  if (scavCursor_ >= words) scavCursor_ = words - 1;
  for (std::size_t k = 0; k < words; ++k) {
    const std::size_t w = scavCursor_;
    const std::uint64_t cand = bits_[w] & ~scav_[w];
    if (cand != 0) {
      const unsigned first = static_cast<unsigned>(std::countr_zero(cand));
      const std::size_t run = static_cast<std::size_t>(std::countr_one(cand >> first));
      *n = std::min(run, maxPages);
      return w * 64 + first;
    }
    scavCursor_ = w == 0 ? words - 1 : w - 1;
  }
  return kNotFound;
}

void PageAlloc::allocRange(std::size_t first, std::size_t n) {
  setRange(first, n, false);
  freePages_ -= n;
  update(first, n);
}

void PageAlloc::freeScavenged(std::size_t first, std::size_t n) {
  free(first, n);
  for (std::size_t i = first; i < first + n; ++i) scav_[i / 64] |= std::uint64_t{1} << (i % 64);
  scavengedPages_ += n;
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
      // Pages in use are not "released": whoever uses them will touch them.
      scavengedPages_ -= static_cast<std::size_t>(std::popcount(scav_[i / 64] & mask));
      scav_[i / 64] &= ~mask;
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
    // Longest run of ones strictly inside the word: walk its runs with ctz.
    std::uint64_t y = x;
    while (y != 0) {
      y >>= std::countr_zero(y);
      const int ones = std::countr_one(y);
      max = std::max<std::size_t>(max, static_cast<std::size_t>(ones));
      y = ones == 64 ? 0 : y >> ones;
    }
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
  const std::uint32_t p = static_cast<std::uint32_t>(entryPages_[level + 1]);
  const std::size_t lo = parent * kFanout;
  const std::size_t count = std::min(kFanout, kids.size() - lo);
  const Sum* c = kids.data() + lo;
  // start: the run of fully free children, then the first partial child's start.
  std::size_t i = 0;
  std::uint32_t start = 0;
  while (i < count && c[i].start == p) {
    start += p;
    ++i;
  }
  if (i < count) start += c[i].start;
  // Every child free (and none missing): the node is one free run.
  if (i == kFanout) return Sum{start, start, start};
  std::uint32_t max = start, run = 0;
  for (std::size_t j = 0; j < count; ++j) {
    const Sum& k = c[j];
    const std::uint32_t cross = run + k.start;
    if (cross > max) max = cross;
    if (k.max > max) max = k.max;
    run = k.start == p ? run + p : k.end;
  }
  if (run > max) max = run;
  // Children missing past the end of the level count as in use.
  const std::uint32_t end = count == kFanout ? run : 0;
  return Sum{start, max, end};
}

void PageAlloc::update(std::size_t first, std::size_t n) {
  std::size_t lo = first / kPagesPerChunk;
  std::size_t hi = (first + n - 1) / kPagesPerChunk;
  std::vector<Sum>& leaves = levels_.back();
  bool changed = false;
  for (std::size_t c = lo; c <= hi; ++c) {
    const Sum s = chunkSummary(c);
    if (!(s == leaves[c])) {
      leaves[c] = s;
      changed = true;
    }
  }
  // Propagate upward only while some summary actually changed.
  for (std::size_t l = levels_.size() - 1; changed && l-- > 0;) {
    lo /= kFanout;
    hi /= kFanout;
    changed = false;
    for (std::size_t i = lo; i <= hi; ++i) {
      const Sum s = mergeChildren(l, i);
      if (!(s == levels_[l][i])) {
        levels_[l][i] = s;
        changed = true;
      }
    }
  }
}

std::size_t PageAlloc::scanChunk(std::size_t chunk, std::size_t n) const {
  const std::uint64_t* w = bits_ + chunk * kWordsPerChunk;
  std::size_t run = 0;  // free pages ending at the top of the previous word
  for (std::size_t i = 0; i < kWordsPerChunk; ++i) {
    const std::uint64_t x = w[i];
    // A run that started in earlier words (or at bit 0 of this one) comes first.
    if (run + std::countr_one(x) >= n) return chunk * kPagesPerChunk + i * 64 - run;
    if (n <= 64 && x != 0) {
      // m bit j set <=> bits j .. j+len-1 of x are all free; grow len to n by doubling.
      std::uint64_t m = x;
      std::size_t len = 1;
      while (len < n && m != 0) {
        const std::size_t sh = std::min(len, n - len);
        m &= m >> sh;
        len += sh;
      }
      if (m != 0) return chunk * kPagesPerChunk + i * 64 + std::countr_zero(m);
    }
    run = x == ~std::uint64_t{0} ? run + 64 : std::countl_one(x);
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
  std::size_t scav = 0;
  for (std::size_t i = 0; i < nchunks_ * kWordsPerChunk; ++i) {
    SPINDLE_CHECK((scav_[i] & ~bits_[i]) == 0,
                  "PageAlloc: scavenged pages {:#x} of word {} are not free (free bits {:#x})",
                  scav_[i], i, bits_[i]);
    scav += static_cast<std::size_t>(std::popcount(scav_[i]));
  }
  SPINDLE_CHECK(scav == scavengedPages_, "PageAlloc: scavengedPages={} but bitmap has {}",
                scavengedPages_, scav);
  for (std::size_t i = activeChunks_ * kWordsPerChunk; i < nchunks_ * kWordsPerChunk; ++i) {
    SPINDLE_CHECK(bits_[i] == 0, "PageAlloc: free pages in word {} beyond the active chunks", i);
  }
  for (std::size_t c = 0; c < levels_.back().size(); ++c) {
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
