#include "runtime/mcache.h"

#include "runtime/mheap.h"
#include "runtime/oom.h"
#include "runtime/throw.h"

namespace spindle::runtime {

MSpan emptymspan;

void MCache::init(MHeap* heap) {
  heap_ = heap;
  for (auto& s : alloc) s = &emptymspan;
  heapLiveDelta.store(0, std::memory_order_relaxed);
  flushGen.store(heap->sweepgenLoad(), std::memory_order_release);
}

namespace {
// Accounting for a span leaving the cache: allocation counts and the end of
// allocate-black. Returns the heapLive adjustment, which the caller applies together
// with its own (one atomic add per refill): minus the unused part of the span, reserved
// in heapLive when it was cached this cycle (a stale sg+1 span was cached before
// heapLive was reset: nothing).
std::int64_t countUncached(MHeap* heap, HeapStatsDelta& stats, MSpan* s) {
  const std::uint8_t sc = s->spanclass.sizeclass();
  statAdd(stats.smallAllocCount[sc], s->allocCount - s->allocCountBeforeCache, /*owned=*/true);
  if (s->allocBlackStart != MSpan::kNoAllocBlack) {
    heap->allocBlackBytes.fetch_add(std::uint64_t{s->allocBlackEnd()} * s->elemsize,
                                    std::memory_order_relaxed);
  }
  if (s->sweepgen.load(std::memory_order_relaxed) == heap->sweepgenLoad() + 3) {
    return -std::int64_t{s->nelems - s->allocCount} * s->elemsize;
  }
  return 0;
}
}  // namespace

void MCache::addHeapLive(std::int64_t d, bool flush) {
  std::int64_t v = heapLiveDelta.load(std::memory_order_relaxed) + d;
  if (flush || v >= kHeapLiveSlack || v <= -kHeapLiveSlack) {
    if (v != 0) heap_->heapLive.fetch_add(v, std::memory_order_relaxed);
    v = 0;
  }
  heapLiveDelta.store(v, std::memory_order_relaxed);
}

MSpan* MCache::refill(SpanClass spc) {
  MSpan* s = alloc[spc.value];
  std::int64_t live = 0;
  if (s != &emptymspan) {
    SPINDLE_CHECK(s->allocCount == s->nelems,
                  "refill of span {:#x} with free space: allocCount={} nelems={}", s->base(),
                  s->allocCount, s->nelems);
    SPINDLE_DCHECK(s->sweepgen.load(std::memory_order_relaxed) == heap_->sweepgenLoad() + 3,
                   "refill: cached span {:#x} has sweepgen={} heap sg={} (want sg+3)",
                   s->base(), s->sweepgen.load(std::memory_order_relaxed),
                   heap_->sweepgenLoad());
    live = countUncached(heap_, stats, s);
    heap_->central(spc).uncacheSpan(s);
  }
  s = heap_->central(spc).cacheSpan();
  if (s == nullptr) {
    // The heap cannot grow: the old span is uncached already, so the slot must not keep
    // it (the next refill would uncache it twice). The allocation fails (oom.h).
    alloc[spc.value] = &emptymspan;
    if (live != 0) addHeapLive(live, /*flush=*/false);
    throwOutOfMemory();
  }
  // Cached: no sweeper touches it until it is uncached (sg + 3, see mgcsweep.h).
  s->sweepgen.store(heap_->sweepgenLoad() + 3, std::memory_order_relaxed);
  s->allocCountBeforeCache = s->allocCount;
  alloc[spc.value] = s;
  const std::size_t reserved = std::size_t{s->nelems - s->allocCount} * s->elemsize;
  addHeapLive(live + static_cast<std::int64_t>(reserved), /*flush=*/false);
  if (heap_->gcAllocBlack.load(std::memory_order_relaxed)) s->allocBlackBegin();
  if (auto hook = heap_->allocSlowHook.load(std::memory_order_acquire)) hook(reserved);
  return alloc[spc.value];
}

void MCache::releaseAll() {
  std::int64_t live = 0;
  for (std::size_t i = 0; i < kNumSpanClasses; ++i) {
    MSpan* s = alloc[i];
    if (s == &emptymspan) continue;
    SPINDLE_DCHECK(s->sweepgen.load(std::memory_order_relaxed) == heap_->sweepgenLoad() + 1 ||
                       s->sweepgen.load(std::memory_order_relaxed) == heap_->sweepgenLoad() + 3,
                   "releaseAll: cached span {:#x} sweepgen={} heap sg={} (want sg+1 or sg+3)",
                   s->base(), s->sweepgen.load(std::memory_order_relaxed), heap_->sweepgenLoad());
    live += countUncached(heap_, stats, s);
    heap_->central(SpanClass{static_cast<std::uint8_t>(i)}).uncacheSpan(s);
    alloc[i] = &emptymspan;
  }
  addHeapLive(live, /*flush=*/true);
  // Release: a collector that reads flushGen sees the cache empty.
  flushGen.store(heap_->sweepgenLoad(), std::memory_order_release);
}

}  // namespace spindle::runtime
