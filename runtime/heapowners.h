// heapowners.h: live-heap accounting per owner on the one process heap (the language
// layer's per-Vm memory limits: vm/memlimit.cc). The runtime knows nothing of what an
// owner is: the language layer records a small id in each object it allocates and tells
// the runtime how to read it back (setHeapOwnerFn).
//
// Design (Go's heapMarked + heapLive accounting, split by owner):
//   - Each owner keeps its own monotonic count of bytes allocated (a std::atomic it bumps
//     with fetch_add; the runtime only reads it).
//   - While marking, greyInline charges each object it marks (elemsize) to the owner the
//     owner function returns for it (relaxed fetch_add into the owner's `marking`); only
//     while some owner is registered (heapOwnersOn): otherwise the mark pays one relaxed
//     load of a bool per object marked. Objects allocated black during the mark are not
//     greyed; they are covered by the allocation count below.
//   - At sweep termination (world stopped) each owner's allocation count is snapshotted
//     (allocAtMarkStart) and `marking` cleared; at mark termination (world stopped)
//     marked = marking and base = allocAtMarkStart.
//   - An owner's live heap is then marked + (allocated now - base): what the last
//     completed mark found reachable of it, plus everything it allocated since that mark
//     began (objects allocated black included, garbage allocated since included). It never
//     counts less than the owner's reachable heap (up to allocations not yet counted:
//     the owner increments its count before it allocates) and overcounts by the garbage
//     made since the last mark began; a cycle brings it back down.
//   - Objects the runtime allocates itself (channels' hchan, pinner stores) have owner 0
//     and are not charged. Ids are 1..kMaxHeapOwners-1; a released id is reused only after
//     two more mark terminations, so an object of the old owner greyed late in a cycle is
//     never charged to the next one.
//
// Invariants: the owner table changes under its lock, which the two world-stopped hooks
// take too (an owner may come or go on a host thread that the stop does not stop); the
// per-owner words are atomics read relaxed: the world stops order the hooks' writes
// before any G's reads.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace spindle::runtime {

inline constexpr std::uint32_t kMaxHeapOwners = 1024;

// The owner of the object at `base` (the start of a heap object), 0 when it has none.
// Called while marking on any marking thread; must not allocate, lock or block.
using HeapOwnerFn = std::uint32_t (*)(std::uintptr_t base);
// Set by the language layer before it acquires an owner (the same function every time).
void setHeapOwnerFn(HeapOwnerFn fn);

// A new owner id, its allocations counted by the caller in *allocated (which must outlive
// releaseHeapOwner); 0 when every id is in use.
std::uint32_t acquireHeapOwner(const std::atomic<std::uint64_t>* allocated);
void releaseHeapOwner(std::uint32_t id);

// The owner's live heap in bytes (see Design); 0 for id 0.
std::uint64_t heapOwnerLive(std::uint32_t id);
// What the last completed mark found reachable of the owner (objects allocated black not
// included).
std::uint64_t heapOwnerMarked(std::uint32_t id);
// Mark terminations since the process started (the owner table's clock).
std::uint64_t heapOwnerCycles();
// Asks for a collector cycle without waiting (cause "memory limit"); from any thread.
void requestMemoryLimitCycle();

namespace gc_detail {
// True while any owner is registered (relaxed: a mark that misses a new owner's first
// objects has them in its allocation count anyway, see Design).
extern std::atomic<bool> heapOwnersOn;
// greyInline's charge of a newly marked object.
void heapOwnerMark(std::uintptr_t base, std::size_t bytes);
// The world-stopped hooks of the cycle (mgc.cc).
void heapOwnersMarkStart();
void heapOwnersMarkEnd();
}  // namespace gc_detail

}  // namespace spindle::runtime
