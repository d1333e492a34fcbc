// p.h: P, a worker context (Go's p in runtime2.go).
//
// A P is the right to run Go-style work: an M (OS thread) must hold a P to allocate
// on the heap or run fibers (Gs). There are `procs` Ps. Each P owns per-P caches so
// that its fast paths take no lock: its MCache (one span per span class), a cache of
// MSpan structs, (from the scheduler) a local run queue, (from the pinner) one cached
// inner pinner; later a GC work buffer.
//
// Ownership: at most one M holds a P at a time. P-local state is touched only by the
// M holding the P, or by a stopper while the world is stopped.
//
// Sections below are filled by the heap and the scheduler; each owns its own.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "runtime/gcbits.h"
#include "runtime/mgcwork.h"

namespace spindle::runtime {

struct MCache;
struct MSpan;
struct PinnerObject;
struct G;
struct M;

// P status (Go's _Pidle..._Pdead). Transitions: Idle<->Running by acquireP/releaseP under
// the owner; Running->Syscall by enterSyscall; Syscall->Running (exitSyscall fast path),
// Syscall->Idle (sysmon retake, forEachP) and Syscall->GCStop (stopTheWorld) by CAS; any
// -> GCStop at stopTheWorld; GCStop->Dead by procresize.
enum class PStatus : std::uint32_t { Idle, Running, Syscall, GCStop, Dead };

inline constexpr std::uint32_t kLocalRunQueueSize = 256;

struct P {
  explicit P(std::int32_t id) : id(id) {}
  P(const P&) = delete;
  P& operator=(const P&) = delete;

  const std::int32_t id;

  // --- heap (mcache.h, mheap.h) -------------------------------------------------
  // Set up by initHeapP() and handed back by destroyHeapP() (pheap.h).
  static constexpr std::uint32_t kMSpanCacheSize = 128;
  MCache* mcache = nullptr;  // this P's span cache: one span per span class
  // Free MSpan structs for allocSpan without the heap lock (tryAllocMSpan).
  struct MSpanCache {
    std::uint32_t len = 0;
    MSpan* buf[kMSpanCacheSize] = {};
  } mspancache;
  // A per-P cache of free pages (pagecache.h): an aligned group of 64 pages and a
  // bitmap of those still free, so small spans get pages without the heap lock.
  struct PageCache {
    std::uint64_t base = 0;   // first page index of the group (a multiple of 64)
    std::uint64_t cache = 0;  // bit i set: page base + i is free and owned by this P
    // Runs of pages of small spans this P freed (freeSpan), kept for reuse by its next
    // allocSpan of the same size and returned to the page allocator in batches, so a
    // sweep that frees many small spans does not take the heap lock per span.
    static constexpr std::uint32_t kMaxFreedRuns = 32;
    static constexpr std::uint32_t kMaxFreedPages = 64;
    struct Run {
      std::uint64_t page;
      std::uint64_t npages;
    };
    std::uint32_t nfreed = 0;       // runs in freed[0, nfreed), most recent last
    std::uint32_t freedPages = 0;   // pages in those runs
    Run freed[kMaxFreedRuns] = {};
  } pcache;
  // This P's chunk of gcBits (gcbits.h) for the spans it sweeps and allocates.
  GCBitsCache bitscache;
  // The thread bound to this P for allocation (bindP in pheap.h), for ownership checks.
  // Relaxed: only compared against the caller's own token.
  std::atomic<const void*> heapOwner{nullptr};

  // --- scheduler (proc.h) -------------------------------------------------------
  // status: seq_cst, it takes part in Dekker-style handshakes (enterSyscall vs
  // stopTheWorld, sysmon retake vs exitSyscall).
  std::atomic<PStatus> status{PStatus::GCStop};
  M* m = nullptr;     // the M holding this P (owner only; null when idle)
  P* link = nullptr;  // idle list link (under sched.lock)
  // The M this Idle P was handed to by startm (its nextp) while that M has not yet
  // claimed it. Set under sched.lock; cleared by one CAS, either by the M (it then
  // acquires the P) or by stopTheWorld (the P stops without waiting for the M to run).
  std::atomic<M*> handoff{nullptr};

  // Local run queue (Go's runq): a ring of kLocalRunQueueSize written only by the owner
  // at runqtail, consumed by the owner and stealers by CAS on runqhead. Slots are atomics
  // (relaxed) because a stealer may read a slot the owner is overwriting after a wrap;
  // the head CAS then fails and the stale value is dropped. tail is published with
  // release; head and tail are read with acquire.
  std::atomic<std::uint32_t> runqhead{0};
  std::atomic<std::uint32_t> runqtail{0};
  std::array<std::atomic<G*>, kLocalRunQueueSize> runq{};
  // runnext: a G readied by the running G, run next and inheriting the time slice.
  // Written by the owner; stealers take it only from a P that is not Running (CAS).
  std::atomic<G*> runnext{nullptr};

  // Counted by the owner (relaxed stores), read by sysmon to detect a G running too long
  // or a syscall lasting too long (Go's schedtick/syscalltick + sysmontick).
  std::atomic<std::uint32_t> schedtick{0};
  std::atomic<std::uint32_t> syscalltick{0};
  std::atomic<G*> curg{nullptr};  // the G running on this P (for preemption requests)
  std::uint32_t sysmonTick = 0;   // sysmon's own copy (sysmon only)
  std::int64_t sysmonWhen = 0;
  std::uint32_t sysmonSyscallTick = 0;
  std::int64_t sysmonSyscallWhen = 0;

  // G ids handed out by this P: [goidcache, goidcacheEnd) reserved from the global
  // counter a batch at a time (Go's goidcache), owner only.
  std::uint64_t goidcache = 0;
  std::uint64_t goidcacheEnd = 0;

  // Dead Gs kept for reuse (Go's gFree), owner only.
  G* gFree = nullptr;
  std::int32_t gFreeCount = 0;

  // forEachP: 1 when fn must run on this P at its next safepoint; whoever CASes it 1->0
  // runs fn (exactly once).
  std::atomic<std::uint32_t> runSafePointFn{0};

  // --- pinner (pinner.h) ------------------------------------------------------------
  // One empty inner pinner kept for the next Pinner on this P (Go's pinnerCache).
  // Owner only; dropped by the pinner's gcMarkDone and destroy hooks.
  PinnerObject* pinnerCache = nullptr;
  // --- gc (mgc.h, mgcwork.h) ----------------------------------------------------
  // Grey objects this P produced (write barrier, assists, stack scans before a G
  // runs). Owner only; the collector flushes it in forEachP or with the world stopped.
  GCWork gcw;
  // gcstress (mgcpacer.cc allocStressHook): allocations counted on this P since its last
  // stress cycle, for setGCStress generation gcStressGen; and the complete cycles this
  // P owes, run by the next G body to reach a safepoint on it (gcStressSafepoint). Owner
  // only: plain fields, so counting shares no cache line between Ps.
  std::uint32_t gcStressCount = 0;
  std::uint32_t gcStressGen = 0;
  std::uint32_t gcStressOwed = 0;
};

}  // namespace spindle::runtime
