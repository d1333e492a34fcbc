// pheap.h: the heap's part of a P: creation, destruction, and binding a P to the
// current thread for allocation.
//
// initHeapP(p) gives p an MCache; destroyHeapP(p) flushes the MCache (releaseAll),
// frees it, and returns p's cached MSpan structs to the heap (Go's p.destroy).
// bindP(p)/unbindP() make p the current thread's P for allocation (a thread_local):
// mallocgc and allocSpan use currentP(). This is the heap-level binding only; the
// scheduler's acquireP/releaseP will call it. Debug builds check that a P is bound to
// at most one thread (p->heapOwner).
//
// Checkpoints (what bounds a pause; Go's memclrNoHeapPointersChunked and goschedguarded):
// an operation whose work grows with its input (zeroing a large object, copying, hashing,
// printing) calls checkpoint() at least every kCheckpointBytes of work. The scheduler
// installs Sched::checkpoint as the hook (the heap sits below it): if a stopTheWorld or
// forEachP waits for the caller's P, the G hands the P over in place and resumes when it
// holds a P again, possibly a different one. So after a checkpoint a caller re-reads
// currentP() and anything cached from it. A checkpoint is never a scan point. The caller
// must hold no lock that world-stopped code or a forEachP function takes (the VM's string
// table, handles, specials, sched.lock): the stop would wait for the lock forever.
#pragma once

#include <atomic>
#include <cstddef>

#include "runtime/p.h"
#include "runtime/throw.h"

namespace spindle::runtime {

namespace pheap_detail {
inline thread_local P* tlsCurrentP = nullptr;
// A per-thread token: the address of a thread_local.
inline const void* threadToken() { return &tlsCurrentP; }
}  // namespace pheap_detail

inline P* currentP() { return pheap_detail::tlsCurrentP; }
// The current P's gcBits chunk (gcbits.h), or null without a P.
inline GCBitsCache* currentBitsCache() {
  P* p = currentP();
  return p == nullptr ? nullptr : &p->bitscache;
}

inline constexpr std::size_t kCheckpointBytes = std::size_t{64} << 10;

namespace pheap_detail {
// Set once by the first Sched (relaxed: the store happens before any G runs, through the
// thread creation / runMain that follows it).
inline std::atomic<void (*)()> checkpointHook{nullptr};
}  // namespace pheap_detail

inline void setCheckpointHook(void (*hook)()) {
  pheap_detail::checkpointHook.store(hook, std::memory_order_relaxed);
}
// A pending stop or forEachP proceeds here (no-op without a scheduler or outside a G).
inline void checkpoint() {
  if (auto hook = pheap_detail::checkpointHook.load(std::memory_order_relaxed)) hook();
}

void initHeapP(P* p);
void destroyHeapP(P* p);
void bindP(P* p);
void unbindP();

// Binds p to this thread for the scope.
class ScopedBindP {
 public:
  explicit ScopedBindP(P* p) { bindP(p); }
  ~ScopedBindP() { unbindP(); }
  ScopedBindP(const ScopedBindP&) = delete;
  ScopedBindP& operator=(const ScopedBindP&) = delete;
};

// Debug check: the current thread holds p.
inline void dcheckOwnsP([[maybe_unused]] P* p) {
  SPINDLE_DCHECK(p != nullptr, "heap allocation without a P: bind one with bindP");
  SPINDLE_DCHECK(p->heapOwner.load(std::memory_order_relaxed) == pheap_detail::threadToken(),
                 "P {} used by a thread that does not hold it", p->id);
}

}  // namespace spindle::runtime
