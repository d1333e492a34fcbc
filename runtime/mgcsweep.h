// mgcsweep.h: the sweep primitive and its cycle bookkeeping (Go's mgcsweep.go).
//
// The sweepgen protocol, relative to the heap's sg (always even):
//   span.sweepgen == sg - 2  needs sweeping        sg - 1  being swept
//                 == sg      swept, ready to use   sg + 1  cached before the sweep began
//                 == sg + 3  swept, then cached
// A sweeper claims a span by CAS sg-2 -> sg-1 and stores sg (release) when done.
//
// sweepSpan(s): s's free slots become the complement of its mark bits:
//   allocBits <- gcmarkBits, gcmarkBits <- fresh zeroed bits (gcbits.h),
//   allocCount <- number of marks, freeindex <- 0, allocCache refilled, needzero Each if
//   any object was freed (Rest if the span is now empty). Unless `preserve` (the caller
//   keeps using s), an empty span goes back to the heap and any other span to its
//   MCentral's swept partial/full set (its shard's).
// Before anything is freed, a span flagged weakTabled reports each dead object of a
// registered type to its weak hook (gc.h registerWeak; the registry lives here), so weak
// tables are cleared concurrently by the sweepers, never with the world stopped.
// With nothing marked a sweep releases every object of the span: the "bulk release"
// path tests and benchmarks use.
//
// A cycle: startSweepCycle() (world stopped, every MCache flushed: at mark termination
// in the collector) does sg += 2, turning every swept set unswept; sweepone() sweeps one
// span from an unswept set (any thread holding a P); finishSweep() (world stopped;
// Go's finishsweep_m) sweeps what is left, resets the empty unswept sets and advances
// the gcBits epoch.
#pragma once

#include "runtime/mheap.h"
#include "runtime/typeinfo.h"

namespace spindle::runtime {

// Claims s for sweeping in cycle sg (sweepgen sg-2 -> sg-1); false if someone else
// already has (it is swept, or being swept). Acq_rel: the claimer sees the span as its
// last owner left it.
inline bool claimForSweep(MSpan* s, std::uint32_t sg) {
  std::uint32_t want = sg - 2;
  return s->sweepgen.compare_exchange_strong(want, sg - 1, std::memory_order_acq_rel);
}
// Precondition: s->sweepgen == sg - 1 and the caller claimed it. Returns true if s was
// freed to the heap.
bool sweepSpan(MHeap& h, MSpan* s, bool preserve);
// Sweeps one span; false when no unswept span is left.
bool sweepone(MHeap& h);
// Makes sure s (a span the caller knows is in use) is swept in this cycle (Go's
// ensureSwept): sweeps it if nobody has, waits if someone is sweeping it or another P
// still caches it from before the sweep began. Before that wait it flushes our own P's
// MCache if stale (which sweeps s if we cache it), so no P waits here on one waiting
// on it.
void ensureSwept(MHeap& h, MSpan* s);
#if SPINDLE_DCHECKS_ON
// Test seam (builds with invariant checks only): called once, then cleared, between
// ensureSwept's load of an unswept span's sweepgen and its claim, so a test can have
// another sweeper claim and finish the span exactly there.
void setEnsureSweptTestHook(void (*hook)(MSpan* s));
#endif
// Go's mheap.reclaim, for large objects: before a large allocation, sweeps the unswept
// large spans of the caller's MCentral shard until npages pages were freed or none is
// left, so the allocation reuses dead large objects' pages rather than growing the heap
// (and each P sweeps the large spans it allocated). Returns the pages freed.
std::size_t reclaimLarge(MHeap& h, std::size_t npages);
void startSweepCycle(MHeap& h);
void finishSweep(MHeap& h);

// Weak tables cleared by the sweepers: the registry lives here, below the collector.
// Declared for users in gc.h (same declarations; see there).
using WeakFreeFn = void (*)(void* ctx, void* const* objs, std::size_t n);
inline constexpr std::size_t kWeakBatch = 64;  // objects per call of a weak hook, at most
int registerWeak(const TypeInfo* type, WeakFreeFn fn, void* ctx);
void unregisterWeak(int id);
void markWeakTabled(void* obj);
bool weakSwept(void* obj);
void sweepSpanOf(void* obj);

}  // namespace spindle::runtime
