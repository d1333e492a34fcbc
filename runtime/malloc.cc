#include "runtime/malloc.h"

#include "runtime/mgcsweep.h"
#include "runtime/mheap.h"
#include "runtime/oom.h"
#include "runtime/throw.h"

namespace spindle::runtime {

void* nextFreeSlow(MCache* c, SpanClass spc) {
  MSpan* s = c->alloc[spc.value];
  // gcstress keeps allocCache zeroed so every allocation comes here: restore it first.
  s->resetAllocCache();
  std::uint32_t idx = s->nextFreeIndex();
  if (idx == s->nelems) {
    s = c->refill(spc);
    idx = s->nextFreeIndex();
    SPINDLE_CHECK(idx < s->nelems, "refill gave span {:#x} with no free slot (freeindex={})",
                  s->base(), s->freeindex);
  }
  ++s->allocCount;
  SPINDLE_DCHECK(s->allocCount <= s->nelems, "span {:#x}: allocCount {} > nelems {}", s->base(),
                 s->allocCount, s->nelems);
  auto stress = mheap().allocStressHook.load(std::memory_order_relaxed);
  if (stress != nullptr || s->poisoned) [[unlikely]] {
    // gcstress counts allocations, not slow paths, and a poisoned slot is checked as it
    // is handed out: with the cache empty, the next allocation from this span misses the
    // fast path and comes back here.
    s->allocCache = 0;
    if (s->poisoned) s->checkPoisonedSlot(idx);
    if (stress != nullptr) stress();
  }
  return reinterpret_cast<void*>(s->base() + std::uintptr_t{idx} * s->elemsize);
}

void throwNeedZeroScan(const TypeInfo* type) {
  SPINDLE_FATAL("mallocgc: needzero=false for scan type {} (only noscan memory may be "
                "returned unzeroed)",
                type->name);
}

#if SPINDLE_DCHECKS_ON
void dcheckAllocSpan(const MSpan* s) {
  // The P owns s, and sweepgen moves only with the world stopped: relaxed loads suffice.
  const std::uint32_t sg = mheap().sweepgenLoad();
  const std::uint32_t have = s->sweepgen.load(std::memory_order_relaxed);
  if (have != sg + 3) [[unlikely]] {
    SPINDLE_FATAL("mallocgc: allocation from span {:#x} (class {}) with sweepgen={}, heap sg={}: "
                  "want sg+3 (swept and cached this sweep cycle); an MCache was not flushed "
                  "after the last sg += 2, so this object would be freed by the span's pending sweep",
                  s->base(), s->spanclass.value, have, sg);
  }
}
#endif

void zeroRest(MSpan* s, void* v) {
  const std::uintptr_t end = s->limit.load(std::memory_order_relaxed);
  std::memset(v, 0, end - reinterpret_cast<std::uintptr_t>(v));
  s->needzero = NeedZero::No;
}

void memclrChunked(void* p, std::size_t n) {
  auto* b = static_cast<unsigned char*>(p);
  while (n > kCheckpointBytes) {
    std::memset(b, 0, kCheckpointBytes);
    b += kCheckpointBytes;
    n -= kCheckpointBytes;
    checkpoint();
  }
  std::memset(b, 0, n);
}

void memmoveChunked(void* dst, const void* src, std::size_t n) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  SPINDLE_DCHECK(d + n <= s || s + n <= d, "memmoveChunked: overlapping {:#x} and {:#x} ({} bytes)",
                 reinterpret_cast<std::uintptr_t>(d), reinterpret_cast<std::uintptr_t>(s), n);
  while (n > kCheckpointBytes) {
    std::memcpy(d, s, kCheckpointBytes);
    d += kCheckpointBytes;
    s += kCheckpointBytes;
    n -= kCheckpointBytes;
    checkpoint();
  }
  std::memcpy(d, s, n);
}

// Every step that depends on the P or on the collector's phase (accounting, born-marked,
// the MCentral set for the current sweepgen) happens before the zeroing, which passes
// checkpoints: a stop there may run a whole sweep termination, or a mark termination
// (sg += 2), and the G may come back on another P. The span is then an ordinary in-use
// large span whose one object the caller alone can reach: sweeping it needs its mark bit
// (set here when marking; otherwise the mark that could free it cannot finish before the
// caller's G is scanned, which needs it to return to the scheduler), and nothing scans it
// (born marked, or unreachable). The header of a scan object is written by mallocgc
// after the zeroing.
void* largeAlloc(std::size_t size, bool noscan, bool needzero) {
  MHeap& h = mheap();
  const std::size_t npages = (size + kPageSize - 1) / kPageSize;
  // A size no span can describe (elemsize is 32 bits) or no reservation can hold, and a
  // heap that cannot grow, are the caller's out of memory (oom.h), never fatal.
  if (npages == 0 || npages * kPageSize > std::size_t{UINT32_MAX}) throwOutOfMemory();
  const SpanClass spc = SpanClass::make(0, noscan);
  reclaimLarge(h, npages);
  MSpan* s = h.allocSpan(npages, SpanKind::Heap, spc);
  if (s == nullptr) throwOutOfMemory();
  s->freeindex = 1;
  s->allocCount = 1;
  s->allocCache = 0;
  void* v = reinterpret_cast<void*>(s->base());
  const bool zero = needzero && s->needzero != NeedZero::No;
  bool owned;
  HeapStatsDelta& shard = h.statsShard(&owned);
  statAdd(shard.largeAllocs, 1, owned);
  statAdd(shard.largeBytesInUse, s->elemsize, owned);
  const std::size_t bytes = npages * kPageSize;
  h.heapLive.fetch_add(static_cast<std::int64_t>(bytes), std::memory_order_relaxed);
  // Allocate-black: born marked while the collector marks (never scanned: it is fresh).
  if (h.gcAllocBlack.load(std::memory_order_relaxed)) {
    s->setMarked(0);
    h.allocBlackBytes.fetch_add(s->elemsize, std::memory_order_relaxed);
  }
  // The sweeper finds large spans in the class-0 MCentral's full swept set.
  s->shard = MCentral::currentShard();
  h.central(spc).fullSwept(h.sweepgenLoad(), s->shard).push(s);
  if (auto hook = h.allocSlowHook.load(std::memory_order_acquire)) hook(bytes);
  if (auto stress = h.allocStressHook.load(std::memory_order_relaxed)) [[unlikely]] stress();
  if (zero) memclrChunked(v, bytes);
  return v;
}

}  // namespace spindle::runtime
