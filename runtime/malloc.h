// malloc.h: mallocgc, the allocation entry point (Go's malloc.go).
//
// mallocgc(size, type, needzero = true) returns `size` bytes from the heap, zeroed:
//   - type == null, or a type without a trace function: the object holds no pointers
//     and goes to a noscan span class;
//   - otherwise a scan object: size includes the header word, which mallocgc sets to
//     `type` (typeinfo.h).
//   - size <= 32 KiB: rounded to its size class; the fast path takes the next free slot
//     of the P's cached span with a ctz on the span's allocCache, with no lock and no
//     atomic read-modify-write; the slow path (nextFreeSlow) finds the next free slot in
//     the span's alloc bits or refills the MCache from the MCentral.
//   - larger: a span of its own (largeAlloc), registered in the class-0 MCentral's full
//     swept set so the sweeper will see it.
//   - gcstress (MHeap::allocStressHook set): nextFreeSlow empties the span's allocCache
//     after each allocation, so the fast path always misses and every allocation is
//     counted in the slow path; the fast path itself has no check.
//   - freed-memory poisoning (MSpan::poisoned, clobberfree): the same empty allocCache
//     sends every allocation from a poisoned span to nextFreeSlow, which checks the slot
//     it hands out (fatal if a word of the poison changed) in every build, -c opt too.
// A large object is zeroed in chunks of kCheckpointBytes with a checkpoint between them
// (pheap.h), so a stop never waits for a whole memset; mallocgc of a large object may
// therefore pass a checkpoint (its caller must hold no lock a stopped world needs).
// Zeroing: only when the span's needzero says its free slots may be dirty (its memory
// was used before; fresh pages from the OS are already zero), per object, or in one
// memset over every free slot of a span that is all free (NeedZero::Rest, mspan.h).
// needzero = false (Go's mallocgc needzero argument): the caller overwrites every byte
// it reads, so the memory is returned as it is. Only for noscan objects (no type, or a
// type without a trace function): a scan object's fields must be valid for the
// collector from the start (fatal otherwise). The VM's strings use it.
// The calling thread must hold a P (bindP in pheap.h).
#pragma once

#include <bit>
#include <cstddef>
#include <cstring>

#include "runtime/mcache.h"
#include "runtime/mspan.h"
#include "runtime/p.h"
#include "runtime/pheap.h"
#include "runtime/throw.h"
#include "runtime/typeinfo.h"

namespace spindle::runtime {

// Slow paths (malloc.cc). nextFreeSlow may replace c->alloc[spc] (refill).
void* nextFreeSlow(MCache* c, SpanClass spc);
void* largeAlloc(std::size_t size, bool noscan, bool needzero);
// Zeroes every slot from v (the slot just handed out) to the end of s, which are all
// free (NeedZero::Rest), and marks s clean.
void zeroRest(MSpan* s, void* v);
// memset(p, 0, n) / memcpy(dst, src, n) (no overlap) with a checkpoint after every
// kCheckpointBytes (pheap.h): for work that grows with its input.
void memclrChunked(void* p, std::size_t n);
void memmoveChunked(void* dst, const void* src, std::size_t n);
[[noreturn, gnu::cold, gnu::noinline]] void throwNeedZeroScan(const TypeInfo* type);
#if SPINDLE_DCHECKS_ON
// Builds with invariant checks: fatal unless s, the span an allocation just came from,
// was swept and cached in the current sweep cycle (sweepgen sg+3, mgcsweep.h). A span
// cached before the last sg += 2 (sg+1) still owes the sweep of the last mark, which
// frees every slot that mark left white: an object allocated in it after mark
// termination would be freed while in use. So a P flushes its MCache (prepareForSweep)
// before it allocates after an sg += 2.
void dcheckAllocSpan(const MSpan* s);
#endif

// Zeroes an object of n bytes (n a multiple of 8). Small sizes use a few overlapping
// fixed-size stores instead of a call to memset.
inline void memclrObject(void* v, std::size_t n) {
  char* p = static_cast<char*>(v);
  if (n <= 16) {
    std::memset(p, 0, 8);
    std::memset(p + n - 8, 0, 8);
  } else if (n <= 32) {
    std::memset(p, 0, 16);
    std::memset(p + n - 16, 0, 16);
  } else if (n <= 64) {
    std::memset(p, 0, 32);
    std::memset(p + n - 32, 0, 32);
  } else if (n <= 128) {
    std::memset(p, 0, 64);
    std::memset(p + n - 64, 0, 64);
  } else {
    std::memset(p, 0, n);
  }
}

// Always inlined: the fast path is a few instructions, and needzero folds away.
[[gnu::always_inline]] inline void* mallocgc(std::size_t size, const TypeInfo* type,
                                             bool needzero = true) {
  P* p = currentP();
  dcheckOwnsP(p);
  const bool noscan = typeIsNoscan(type);
  if (!needzero && !noscan) [[unlikely]] throwNeedZeroScan(type);
  SPINDLE_DCHECK(type == nullptr || size >= kObjectHeaderSize,
                 "mallocgc: scan object of {} bytes cannot hold its header", size);
  if (size > kMaxSmallSize) [[unlikely]] {
    void* v = largeAlloc(size, noscan, needzero);
    if (type != nullptr) static_cast<ObjectHeader*>(v)->type = type;
    return v;
  }
  const SpanClass spc = SpanClass::make(sizeToClass(size == 0 ? 1 : size), noscan);
  MCache* c = p->mcache;
  MSpan* s = c->alloc[spc.value];
  void* v;
  // Fast path (Go's nextFreeFast).
  const std::uint64_t cache = s->allocCache;
  const unsigned bit = static_cast<unsigned>(std::countr_zero(cache));
  const std::uint32_t result = s->freeindex + bit;
  const std::uint32_t next = result + 1;
  if (bit < 64 && result < s->nelems && (next % 64 != 0 || next == s->nelems)) [[likely]] {
    // (cache >> 1) >> bit, not (cache >> bit) >> 1: the first shift does not wait for
    // the ctz, so the chain from one allocation's allocCache to the next is shorter.
    s->allocCache = (cache >> 1) >> bit;
    s->freeindex = next;
    ++s->allocCount;
    v = reinterpret_cast<void*>(s->base() + std::uintptr_t{result} * s->elemsize);
    // Slots are handed out in address order: start fetching (for writing) the memory a
    // few allocations ahead, so zeroing and the header store do not wait on a miss.
    // A prefetch past the span's end is harmless.
    __builtin_prefetch(static_cast<char*>(v) + 256, 1);
  } else {
    v = nextFreeSlow(c, spc);
    s = c->alloc[spc.value];
  }
#if SPINDLE_DCHECKS_ON
  dcheckAllocSpan(s);
#endif
  if (needzero && s->needzero != NeedZero::No) {
    if (s->needzero == NeedZero::Rest) [[unlikely]] {
      zeroRest(s, v);
    } else {
      memclrObject(v, s->elemsize);
    }
  }
  if (type != nullptr) static_cast<ObjectHeader*>(v)->type = type;
  return v;
}

}  // namespace spindle::runtime
