// mfinal.h: finalizers and cleanups as span specials and the finalizer queue (Go's
// mfinal.go, the finalizer and cleanup halves of mheap.go's specials, Go 1.24's
// runtime.AddCleanup).
//
// Design.
//   - setFinalizer(obj, fn, arg) (gc.h, implemented in fing.cc) records a
//     SpecialFinalizer (kind kSpecialFinalizer) in the `specials` list of obj's span,
//     under span->specialLock. The list is shared with the pinner's pin counters
//     (kind 2) and kept sorted by (offset, kind). An object has at most one finalizer:
//     setting another replaces it; fn == nullptr removes it.
//   - addCleanup(obj, fn, arg) (gc.h, fing.cc) records a SpecialFinalizer of kind
//     kSpecialCleanup: fn(arg) runs on the finalizer G once obj was freed. A cleanup does
//     not trace or resurrect obj: an object with a cleanup is freed by the sweep of the
//     cycle in which it became unreachable, so cycles through it (a channel whose buffer
//     points back at it) are collected. An object may have any number of cleanups.
//   - The spans that hold at least one finalizer or cleanup special are kept in an index
//     (a set under finIndexLock) so that marking and sweeping need not walk every span.
//   - Liveness, as in Go: while marking, everything reachable FROM a finalizable object
//     stays alive but not the object itself. scanFinalizerRoots reports, for each
//     finalizer special, the object's fields (its TypeInfo::trace; nothing for noscan
//     objects) and the `arg` slot; for each cleanup special only its `arg` slot (never
//     the object's fields); then every queued entry's obj and arg slots. fing.cc
//     registers it with registerRoots.
//   - Sweeping: sweepSpan calls sweepSpecials(h, s) before it counts marks. An object
//     with a finalizer special whose mark bit is clear is resurrected (mark bit set, so
//     this sweep keeps it), its special is removed and (obj, fn, arg) is queued. The
//     queue is a root, so obj and what it reaches survive until the finalizer G ran fn;
//     the first cycle after that frees obj (unless fn stored it somewhere). An object
//     with a cleanup special whose mark bit is clear keeps it clear (this sweep frees
//     it); its special is removed and (fn, arg) is queued with obj null.
//   - The finalizer G (fing.cc) pops entries one at a time (finqTakeOrPark) and parks
//     when the queue is empty. Sweeping never readies it directly (a sweep may run under
//     the scheduler's lock, e.g. procresize flushing a stale cache): it only raises the
//     wake flag; the scheduler's findRunnable calls wakefing() (Go's wakefing) and
//     readies the G it returns; wakeFinalizerG() (fing.h) does the same from any thread
//     that holds no scheduler lock.
//
// Invariants.
//   - A span is in the index iff its list holds at least one finalizer or cleanup
//     special. Sweeping leaves only the specials of marked objects (finalizable ones
//     were resurrected, dead ones' cleanups queued), so a span its sweep frees has left
//     the index first: the index never points at a freed MSpan.
//   - Specials are added and removed only on swept spans (ensureSwept) and by the
//     sweeper that owns the span (sweepgen == sg-1); so the sweeper never races an adder.
//   - Lock order: finIndexLock -> span->specialLock -> finqLock (never the reverse).
//   - Each queued entry is handed to exactly one fing run (popped under finqLock).
//   - Entries run in queue order, one at a time, and `run` is counted (under finqLock)
//     after each: so once run >= N, the first N entries ever queued have all run. A G
//     waiting for that (fing.h waitFinalizersStep) is readied for the noteFinalizerRan
//     that makes run reach its target, or by its own park commit if run already has
//     (addFinalizerWaiter false); both look under finqLock, so no wake-up is lost.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "runtime/mheap.h"
#include "runtime/mspan.h"
#include "runtime/typeinfo.h"

namespace spindle::runtime {

class Sched;
struct G;

// Same type as gc.h's FinalizerFn (an alias may be declared twice).
using FinalizerFn = void (*)(void* obj, void* arg);

// Same type as gc.h's CleanupFn.
using CleanupFn = void (*)(void* arg);

inline constexpr std::uint8_t kSpecialFinalizer = 1;
inline constexpr std::uint8_t kSpecialCleanup = 3;  // 2 is the pinner's counter

// A finalizer (kind kSpecialFinalizer: fn) or a cleanup (kind kSpecialCleanup: cleanup).
struct SpecialFinalizer : Special {
  SpecialFinalizer* fixNext = nullptr;  // FixAlloc link while free
  FinalizerFn fn = nullptr;
  CleanupFn cleanup = nullptr;
  void* arg = nullptr;
};

// What the finalizer G runs: fn(obj, arg) for a finalizer, cleanup(arg) for a cleanup
// (obj null: it was freed).
struct FinalizerEntry {
  void* obj = nullptr;
  FinalizerFn fn = nullptr;
  CleanupFn cleanup = nullptr;
  void* arg = nullptr;
};

struct FinalizerStats {
  std::uint64_t set = 0;      // finalizer specials currently recorded
  std::uint64_t queued = 0;   // finalizer entries ever queued by sweeping
  std::uint64_t run = 0;      // finalizers and cleanups ever run by the finalizer G
  std::uint64_t pending = 0;  // queued (finalizers and cleanups), not yet taken
  std::uint64_t cleanupsSet = 0;     // cleanup specials currently recorded
  std::uint64_t cleanupsQueued = 0;  // cleanups ever queued by sweeping
};

// Records (or replaces) obj's finalizer; fn == nullptr removes it. Returns false if obj
// is not the start of an allocated heap object of h. The caller holds a P (like
// allocation): this keeps it from racing a sweep cycle's start.
bool addFinalizer(MHeap& h, void* obj, FinalizerFn fn, void* arg);
bool removeFinalizer(MHeap& h, void* obj);
// Records a cleanup: cleanup(arg) runs once on the finalizer G after obj was freed. Same
// rules for obj and the caller as addFinalizer.
bool addCleanup(MHeap& h, void* obj, CleanupFn cleanup, void* arg);
// Does obj have a finalizer special? (Tests.)
bool hasFinalizer(MHeap& h, void* obj);

// Called by sweepSpan with s claimed (sweepgen == sg-1), before the marks are counted.
void sweepSpecials(MHeap& h, MSpan* s);

// The finalizer roots (see above). Callable concurrently with mutators.
void scanFinalizerRoots(VisitFn visit, void* ctx);
// The same roots with names (retainingPath): "finalizer root of <channel>" followed by
// the type's labelled trace's name for the field, "finalizer argument of <T>",
// "finalizer queue of <T>".
void scanFinalizerRootsLabelled(LabelVisitFn visit, void* ctx);

FinalizerStats finalizerStats();

// --- the finalizer G's side of the queue ---------------------------------------------
// Registers the finalizer G's body `owner` (running on sched); null unregisters. Keyed
// by the body, not the G, so it can be registered before the G first runs. Entries
// queued before stay queued for the next one.
void setFinalizerG(const void* owner, Sched* sched);
enum class FinqTake { Entry, Park, Exit };
// Called by the finalizer G g whose body is owner. Entry: *out is the next entry (no
// lock held). Park: the queue is empty and finqLock is held: the caller must set
// finqParkCommit as its park commit and park at once. Exit: owner is no longer the
// registered finalizer body.
FinqTake finqTakeOrPark(const void* owner, G* g, FinalizerEntry* out);
void finqParkCommit(G* g, void* arg);
// After each entry ran: counts it and appends to *due the waiting Gs whose target it
// reached (removed from the waiters: the caller readies them).
void noteFinalizerRan(std::vector<G*>* due);
// Finalizers and cleanups ever queued (under finqLock): the target for a wait.
std::uint64_t finalizersQueuedTotal();
// Whether the first `target` entries ever queued have all run.
bool finalizersRan(std::uint64_t target);
// Adds the Waiting G g to the waiters until `target` entries have run; false (nothing
// added) if they have already.
bool addFinalizerWaiter(G* g, std::uint64_t target);
// If the finalizer G of `sched` (any sched if null) is parked and the queue is not
// empty: marks it awake and returns it; the caller must ready() it.
G* wakefing(const Sched* sched);
namespace mfinal_detail {
// Raised (under finqLock) when entries are queued, cleared when the finalizer G parks or
// is woken. Relaxed: only a hint; wakefing decides under finqLock.
extern std::atomic<bool> finWake;
}  // namespace mfinal_detail
// The scheduler's fast check before wakefing: one relaxed load, inline.
inline bool finalizerWakePending() {
  return mfinal_detail::finWake.load(std::memory_order_relaxed);
}

}  // namespace spindle::runtime
