// gc.h: the collector's public contract: what the heap's users (the VM, the pinner, C++
// hosts, tests and benchmarks) see of the concurrent mark-sweep collector (mgc*.cc).
//
// This header is the seam between the collector and everything above it; the
// implementation lives in mgc.cc (cycle, pacer, stats), mgcmark.cc (roots, marking,
// assists, workers), mbarrier.cc (write barrier slow path), mfinal.cc (finalizers),
// mgcscavenge.cc (scavenger). Until a World is attached no cycle ever runs.
//
// The world. The collector stops and restarts the world and runs per-P work through one
// attached scheduler (gcAttach). Every P that allocates must belong to it. One world at
// a time; detach before destroying the Sched.
//
// Roots. Nothing scans C++ stacks. The collector finds live objects from:
//   - registered root scanners (registerRoots): global tables, handle stacks, persistent
//     handles, the pinner's refs; called during concurrent mark (and again with the
//     world stopped by checkmark), each reporting every root slot to `visit`;
//   - every G's stack: GBody::traceStack (g.h), called while that G alone is paused
//     (not running: Runnable or Waiting), never during the STW phases;
//   - the finalizer queue and objects with finalizers (kept alive until their finalizer
//     has run once).
// A slot passed to `visit` holds an object pointer (the start of a heap object), null, or
// a non-heap address (ignored). Interior pointers are resolved with findObject.
//
// Safepoints. A cycle starts, and a G's stack is scanned, only when the G is at a
// safepoint: between two calls of GBody::run. Inside run(), C++ locals may hold objects
// that are in no root: allocation is black while marking, and the hybrid barrier keeps
// anything loaded from the heap alive until the G's next scan, so this is safe.
//
// Write barrier (Go's hybrid barrier). Every store of a heap pointer into a heap object,
// or into a root that is not rescanned (a global, a handle), or into ANOTHER G's stack
// (e.g. a value handed to a parked receiver), goes through writePointer (or shade() of
// both the overwritten and the new pointer, then the store). When marking is off this is
// one relaxed load and one branch. Stores into the running G's own stack need no barrier.
//
// Weak tables (Go's weak handles, cleared by the sweeper, never with the world stopped).
// A table registers a hook for a TypeInfo (registerWeak) and flags each object it holds
// (markWeakTabled: one bit on the object's span). A sweep that frees objects of that
// type in a flagged span calls the hook with them first (in batches), while its bytes are intact and
// before its slot can be reused; the table drops the entry that points at it. The table
// is no root and costs mark termination nothing. Lookups must not hand out an object the
// sweeper will free: see weakSwept. (Implemented in mgcsweep.cc.)
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/throw.h"
#include "runtime/typeinfo.h"

namespace spindle::runtime {

class Sched;

// --- write barrier -------------------------------------------------------------------
namespace gc_detail {
// True from sweep termination to mark termination. Written only with the world stopped,
// so a relaxed load is enough: the STW hand-off orders it against every mutator.
extern std::atomic<bool> writeBarrierEnabled;
}  // namespace gc_detail

inline bool writeBarrierEnabled() {
  return gc_detail::writeBarrierEnabled.load(std::memory_order_relaxed);
}

// While marking, greys obj if it is a heap object not yet marked; a no-op outside a mark
// phase and for null or non-heap addresses.
// Callable from any thread holding a P (or from the collector's own threads).
void shade(void* obj);

// Stores value into *slot (a pointer field of a heap object or a root) through the
// barrier. Relaxed atomic store: racing fibers may read a stale pointer, never a torn one.
inline void writePointer(void** slot, void* value) {
  if (writeBarrierEnabled()) [[unlikely]] {
    shade(std::atomic_ref<void*>(*slot).load(std::memory_order_relaxed));
    shade(value);
  }
  std::atomic_ref<void*>(*slot).store(value, std::memory_order_relaxed);
}

// --- roots ---------------------------------------------------------------------------
// Reports root slots: call visit(visitCtx, slot) for each.
using RootScanFn = void (*)(void* ctx, VisitFn visit, void* visitCtx);
// The same root slots with names ("global ring"), for retainingPath.
using LabelRootsFn = void (*)(void* ctx, LabelVisitFn visit, void* visitCtx);
// Returns an id for unregisterRoots. Callable at any time (the collector takes a lock).
// labelled (optional) reports what fn reports, each pointer with a name.
int registerRoots(RootScanFn fn, void* ctx, LabelRootsFn labelled = nullptr);
void unregisterRoots(int id);

// fn(ctx, objs, n) for the objects of `type` a sweep frees in a flagged span (each slot
// at least type->size bytes, its header pointing at type), in batches of at most
// kWeakBatch (mgcsweep.h: 64) objects of one span, so a table takes its lock once per batch. Runs on any
// thread, with or without a P, possibly under the scheduler's lock (a stale cache flushed
// by procresize): fn may take only leaf locks, which no one holds while allocating or
// sweeping.
using WeakFreeFn = void (*)(void* ctx, void* const* objs, std::size_t n);
// name (a static string; default: type's name) is the table's name in the event log
// (gcevents.h: the sweeper's time in fn and the objects it was handed, per cycle).
int registerWeak(const TypeInfo* type, WeakFreeFn fn, void* ctx, const char* name = nullptr);
// When it returns, no sweeper is in (or will enter) that hook.
void unregisterWeak(int id);
// Flags obj's span (obj: a heap object of a registered type, just allocated by the
// caller). Takes no lock.
void markWeakTabled(void* obj);
// For a weak table's lookup, with the table's lock held (so the hook has not run for obj
// and obj is still allocated) and the collector not marking (while marking, shade obj
// instead): true if obj's span was swept this cycle, so obj survived and may be handed
// out. False: its span is not swept yet and obj may be dead: drop the lock, call
// sweepSpanOf(obj), and look again (the entry is gone if obj died).
bool weakSwept(void* obj);
// Sweeps obj's span (or waits for its sweeper) unless it is swept; obj may have been
// freed meanwhile. Called without the table's lock, holding a P (no cycle can start).
void sweepSpanOf(void* obj);

// --- control -------------------------------------------------------------------------
void gcAttach(Sched* sched);
void gcDetach(Sched* sched);
// Runs a full cycle (mark and sweep) and returns when it is done. From a G body only at a
// safepoint (the G's traceStack must describe all it holds); or from a thread without a P.
void gcCollect();

// The collector's state in one line, as fatal errors and the deadlock report print it:
// "gc: phase mark, sweepgen 12 (cycle 6)" (phase "off (sweeping or idle)" between cycles;
// ", gcstoptheworld" appended in that mode). Reads atomics only: no lock, no heap.
struct GCStateLine {
  char text[96];
  std::size_t size;
  std::string_view view() const { return {text, size}; }
};
GCStateLine gcStateLine();
#if SPINDLE_DCHECKS_ON
// Test seam (builds with invariant checks only): `hook` runs once, at the next mark
// termination, world stopped, on the collector's thread (no P), after the last drain of
// what the Ps and the barrier left and before the barrier goes off: where a thread
// without a P, which no stop of the world stops, may still shade.
void setMarkTerminationTestHook(void (*hook)());
// Test seam: `hook` runs once, at the next gcDetach, after the controller thread has
// stopped and before the world is let go: where a request from the leaving world (a
// fiber still allocating, a gcstress safepoint) lands.
void setDetachTestHook(void (*hook)());
#endif
// GOGC: 100 by default, negative turns pacing off (explicit gcCollect still works).
// Returns the old value.
int setGCPercent(int percent);
// Go's debug.FreeOSMemory: a full cycle (gcCollect, same callers), then every free page
// goes back to the OS at once (the scavenger's scavengeAll). Returns the bytes released.
std::uint64_t freeOSMemory();
// Go's SetMemoryLimit, a soft limit: the pacer's goal never exceeds `bytes` (with pacing
// on or off), so cycles come as often as needed to stay under it. ~0: no limit (the
// default). Returns the old one.
std::uint64_t setMemoryLimit(std::uint64_t bytes);
// The soft limit now (~0: none).
std::uint64_t memoryLimit();
int gcPercent();

// --- observability -------------------------------------------------------------------
struct GCStats {
  std::uint64_t cycles = 0;               // completed mark terminations
  std::uint64_t forcedCycles = 0;         // started by gcCollect
  std::uint64_t stressCycles = 0;         // run for gcstress (gcStressSafepoint)
  std::uint64_t stwMarkCycles = 0;        // marked in one pause (gcstoptheworld)
  std::uint64_t heapVerifications = 0;    // verifyHeap runs (calls and gcverify's)
  std::vector<std::int64_t> pausesNs;     // every STW pause (two per cycle), last 1024
  std::uint64_t numPauses = 0;            // STW pauses recorded since start (all of them)
  // pauseHist[i]: pauses in [2^i, 2^(i+1)) microseconds (i = 0 also holds < 1 us).
  std::uint64_t pauseHist[24] = {};
  std::int64_t maxPauseNs = 0;
  std::int64_t totalPauseNs = 0;
  std::uint64_t heapLive = 0;             // current heapLive (bytes)
  std::uint64_t heapMarked = 0;           // bytes marked by the last cycle (traced + allocated black)
  std::uint64_t heapGoal = 0;
  std::uint64_t heapTrigger = 0;
  std::int64_t assistTimeNs = 0;          // mutators assisting marking
  std::int64_t workerTimeNs = 0;          // background mark work (roots + drain)
  std::uint64_t assistWork = 0, workerWork = 0;  // scan work (bytes scanned)
  std::uint64_t assistParks = 0;         // Gs parked past the goal until mark termination
  std::uint64_t extraWorkerWork = 0;      // scan work by the extra mark worker threads
  std::int64_t idleMarkTimeNs = 0;        // idle Ps marking (Go's idle mark workers)
  std::uint64_t idleMarkWork = 0;         // their scan work (also in workerWork)
  std::uint64_t sweptBackground = 0;      // spans swept by the background sweeper
  std::uint64_t sweptProportional = 0;    // spans swept by allocating Ps (refill)
  std::uint64_t sweptByUncache = 0;       // stale (sg+1) spans swept by uncacheSpan
  std::uint64_t flushesAcquireP = 0;      // lazy mcache flushes done in acquireP
  std::uint64_t flushesForEachP = 0;      // ... done by forEachP after mark termination
  std::uint64_t stacksScannedByCollector = 0;
  std::uint64_t stacksScannedBeforeRun = 0;  // by the scheduler before resuming a G
  std::uint64_t checkmarkObjects = 0;     // objects verified by checkmark (all cycles)
};
GCStats gcStats();
// gctrace: one line per cycle on stderr in Go's format
//   gc N @T s P%: A+B+C ms clock, X->Y->Z MB, G MB goal, K P
// Also on when SPINDLE_GCTRACE=1 is in the environment at gcAttach.
void setGCTrace(bool on);

// --- verification ----------------------------------------------------------------------
// gcstress: every n allocations of each P (each P counts its own, so counting shares
// no cache line; small allocations then all take the slow path); 0 turns it off. Counts
// restart at every call.
//   Exact: a complete cycle. The n-th allocation makes the P owe a cycle and asks the
//   running G to yield; the G body runs what its P owes at its next safepoint
//   (gcStressSafepoint), blocked like gcCollect, each cycle its own (never folded into
//   another request). With pacing off (setGCPercent(-1)) and one P: cycles =
//   allocations / n exactly, once the allocating G has passed a safepoint.
//   Continuous: a cycle request that never blocks; requests made while a cycle is
//   pending or running fold into it, so with n = 1 cycles run back to back and marking
//   overlaps the mutators (for races between them and the collector).
enum class GCStressMode : std::uint8_t { Exact, Continuous };
void setGCStress(int n, GCStressMode mode = GCStressMode::Exact);
// Called by a G body at a safepoint (where it could call gcCollect): runs the cycles its
// P owes to gcstress, one after the other; returns how many. Cheap when none is owed.
int gcStressSafepoint();
// clobberfree (Go's GODEBUG=clobberfree=1): small spans created from now on are
// poisoned; sweeping fills what it frees with a pattern and allocation checks it as the
// slot is handed out (a changed word, a write after free, is fatal), in every build
// (-c opt too). On from the start in debug builds (SPINDLE_DEBUG).
void setClobberFree(bool on);
// gcstoptheworld (Go's GODEBUG=gcstoptheworld=1): a cycle marks with the world stopped
// from sweep termination to mark termination (one pause, GCStats::stwMarkCycles), to
// tell a marking bug from a concurrency bug.
void setGCStopTheWorld(bool on);
// checkmark: after every concurrent mark, re-mark from the roots with the world stopped
// into a separate bitmap; a reachable object the concurrent mark missed is fatal.
void setCheckmark(bool on);
// Checks every span's state, sweepgen, counts and bits, and that every pointer reachable
// from the roots points at a live object of a plausible type, with the world stopped
// (stops the attached world itself; call it from a thread without a P or a G at a
// safepoint). Fatal on a broken invariant, naming the object, its span, the pointer's
// source and the phase.
void verifyHeap();
// gcverify: verifyHeap runs in every cycle, with the world stopped, at sweep termination
// ("before cycle N") and after mark termination ("after cycle N", where every reachable
// object must also be marked).
void setGCVerify(bool on);

// --- heap inspection ("why is this alive") --------------------------------------------
// Both stop the world as verifyHeap does (call from a thread without a P or a G at a
// safepoint) and walk what is reachable from the roots (registered roots, Gs' stacks,
// finalizer roots) without marking anything.
// Calls fn(ctx, obj, bytes, noscan) once per reachable object (bytes: its slot size).
using ReachableFn = void (*)(void* ctx, void* obj, std::size_t bytes, bool noscan);
void forEachReachable(ReachableFn fn, void* ctx);
// A shortest retaining path from a root to the object at target, one string per step:
// the root's name (its scanner's labelled variant, a G body's traceStackLabelled, or
// "root scanner N" / "the stack of G N"), then for each object on the way the slot
// that holds the next one (the type's traceLabelled, or "a field of <type>"). Roots
// whose labelled variant leaves a pointer out do not retain it here. False (path
// untouched) when target is not reachable.
bool retainingPath(const void* target, std::vector<std::string>* path);

// --- finalizers ----------------------------------------------------------------------
// fn(obj, arg) runs once, on a finalizer G, after obj became unreachable; obj and
// everything it reaches stay alive until then. obj must be the start of a heap object.
// fn == nullptr removes a finalizer. Returns false if obj is not a heap object.
// fn runs holding the finalizer G's P: one that blocks must do so in the syscall state
// (Sched::enterSyscall/exitSyscall), or it keeps every stop of the world (and so every
// cycle, and whoever waits for one) waiting until it returns, as a Go finalizer
// spinning without preemption would.
using FinalizerFn = void (*)(void* obj, void* arg);
bool setFinalizer(void* obj, FinalizerFn fn, void* arg);
// Go 1.24's runtime.AddCleanup: cleanup(arg) runs once, on the finalizer G, after obj was
// freed. Unlike a finalizer it neither keeps what obj reaches alive nor resurrects obj,
// so obj is freed by the sweep of the cycle that found it unreachable, even when it lies
// on a cycle (arg is kept alive, so arg must not reach obj, or the cleanup never runs).
// Returns false if obj is not the start of a heap object. Callers hold a P.
using CleanupFn = void (*)(void* arg);
bool addCleanup(void* obj, CleanupFn cleanup, void* arg);

}  // namespace spindle::runtime
