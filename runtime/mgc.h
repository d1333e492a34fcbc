// mgc.h: the collector's internals shared by mgc.cc (cycle driver, stats),
// mgcmark.cc (roots, marking, stacks, checkmark), mbarrier.cc (write barrier),
// mgcpacer.cc (pacer, assists) and mgcverify.cc (heap verifier). Not a public header:
// users see gc.h.
//
// Phases (Go's gcphase): Off (sweeping may be in progress) -> Mark (barrier on,
// allocate-black, stacks scanned as Gs stop) -> Off. Each change happens with the world
// stopped, so mutators read the phase with relaxed loads.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "runtime/gc.h"
#include "runtime/gcevents.h"
#include "runtime/heapowners.h"
#include "runtime/mgcwork.h"
#include "runtime/mheap.h"

namespace spindle::runtime {

struct G;
struct P;
class Sched;

namespace gc_detail {

// True from sweep termination to mark termination (world stopped at both ends).
extern std::atomic<bool> gcMarking;
// Incremented at each sweep termination; a G whose gcscangen equals it was scanned.
extern std::atomic<std::uint32_t> markGen;

// Registered roots (mgc.cc). Every caller of a root scanner holds `scanning` shared from
// before it reads `roots` until its last call returns; unregisterRoots holds it
// exclusively while it clears the entry. So once unregisterRoots returns, no scan of that
// scanner runs or will start, and its owner may free what the scanner reads (a VM's
// globals and handles). Lock order: scanning, then lock.
struct Registry {
  std::shared_mutex scanning;
  std::mutex lock;
  std::vector<std::pair<RootScanFn, void*>> roots;
  std::vector<LabelRootsFn> labelledRoots;  // by id, beside roots (null: none)
};
Registry& registry();

// --- mgcmark.cc ---
// Marks the object containing p (interior pointers resolved, non-heap ignored) and
// queues it on gcw if it may hold pointers.
void greyObject(std::uintptr_t p, GCWork* gcw);
// greyObject's body (p != 0), inlined into the scan loop's slot visitor and the write
// barrier: one call per object scanned (its trace function), none per pointer.
[[gnu::always_inline]] inline void greyInline(std::uintptr_t p, GCWork* gcw) {
  ObjectRef r;
  if (!mheap().findObject(reinterpret_cast<const void*>(p), &r)) return;
  MSpan* s = r.span;
  const std::uint8_t mask = static_cast<std::uint8_t>(1u << (r.index % 8));
  std::atomic_ref<std::uint8_t> byte(s->gcmarkBits[r.index / 8]);
  // Relaxed: the mark bit guards nothing but itself; the object's contents were
  // published to us through the pointer we followed. A plain load first: most pointers
  // in a cycle lead to objects already marked, which then cost no locked instruction.
  if (byte.load(std::memory_order_relaxed) & mask) return;
  if (byte.fetch_or(mask, std::memory_order_relaxed) & mask) return;
  gcw->bytesMarked += s->elemsize;
  // Per-owner accounting (heapowners.h), only while some owner is registered.
  if (heapOwnersOn.load(std::memory_order_relaxed)) [[unlikely]] heapOwnerMark(r.base, s->elemsize);
  if (s->spanclass.noscan()) return;
  gcw->put(r.base);  // drain prefetches it a few objects before scanning it
}
// Drains gcw (and the global full list) until no work is left or `budget` bytes of scan
// work are done (budget < 0: unbounded). Returns the scan work done.
std::int64_t drain(GCWork* gcw, std::int64_t budget);
// Calls every registered root scanner.
void scanRoots(GCWork* gcw);
// Tries to scan g's stack for the current mark generation: true if it is scanned (now
// or before) or holds nothing; false if g is running (ask it to stop and retry).
bool tryScanG(G* g, GCWork* gcw, bool byCollector);
// The scheduler's before-run hook while marking (phooks.h).
void gBeforeRun(G* g);
// Stack shrinking (see mgcmark.cc): after mark termination, start a G draining the Gs the
// controller flagged (unless one is queued already); drain them on the calling thread,
// which holds a P of s (gcCollect from a G); forget them when s detaches.
void startStackShrinker(Sched* s);
void drainStackShrinks(Sched* s);
void clearStackShrinks(Sched* s);
// The controller's wait for stacks that others scan (gBeforeRun, a G parking): clear
// before looking, wait (up to ns) after finding a stack it could not scan; wake on a
// scan or a park.
void markProgressClear();
void markProgressWait(std::int64_t ns);
void markProgressWake();
// The checkmark pass (world stopped, after mark): fatal on a reachable unmarked object.
// Returns the number of objects it reached.
std::uint64_t checkmark(const std::vector<G*>& gs);
// Every G of s (world stopped, or under the scheduler's own locking: Sched::forEachG).
std::vector<G*> allGs(Sched* s);
// Where a pointer was found: a root (kind "root scanner" / "the stack of G", id; g: that
// G) or a field of the object obj (type).
struct ReachSource {
  const char* kind = "";
  std::uint64_t id = 0;
  std::uintptr_t obj = 0;
  const TypeInfo* type = nullptr;
  G* g = nullptr;
};
std::string describeSource(const ReachSource& from);
// mgcverify.cc: verifyHeap's body, with the cycle lock held and the world stopped (sched
// null: none attached). phase names the caller in a failure; afterMark: after mark
// termination (every reachable object must be marked).
void verifyHeapStopped(Sched* sched, const char* phase, bool afterMark);
// Called once per heap object reached (r: its span and slot; p: the pointer as found). A
// pointer into the heap's pages where no span is in use comes with r.span that span and
// r.base == p. Returning means "scan it": the callback rejects fatally.
using ReachFn = void (*)(void* ctx, const ObjectRef& r, std::uintptr_t p, const ReachSource& from);
// World stopped: walks everything reachable from the registered roots and the stacks of
// gs (those stopped at a safepoint), each object once, breadth first (so the first
// source reported for an object lies on a shortest path to it); returns how many it
// reached. labelledRoots: roots are read through their labelled variants where they
// have one (the sources retainingPath names).
std::uint64_t walkReachable(const std::vector<G*>& gs, ReachFn reached, void* ctx, bool labelledRoots = false);
// The root-reading variant walkReachable(labelledRoots) uses for a source: root scanner
// `id` or G g, through its labelled variant when it has one; visit gets null names from
// a plain one. Returns false if that source has gone.
bool scanRootSource(const ReachSource& root, LabelVisitFn visit, void* ctx);
// mgcverify.cc: runs fn(sched, ctx) with the cycle lock held and the attached world (if
// any: sched null otherwise) stopped, from a thread without a P or a G at a safepoint.
void withWorldStopped(const char* why, void (*fn)(Sched* sched, void* ctx), void* ctx);

// --- mgcpacer.cc ---
struct Pacer {
  std::atomic<int> percent{100};
  std::atomic<std::uint64_t> heapMarked{0};  // live bytes found by the last mark
  std::atomic<std::uint64_t> goal{0};
  std::atomic<std::uint64_t> memoryLimit{~std::uint64_t{0}};  // setMemoryLimit; ~0: none
  std::atomic<std::uint64_t> trigger{0};
  double triggerRatio = 0.7;                 // controller only
  // Assist ratio: scan work owed per byte allocated while marking (bits of a double).
  std::atomic<double> assistWorkPerByte{0.0};
  std::atomic<std::int64_t> scanWorkDone{0};  // this cycle, by everyone
};
Pacer& pacer();
inline constexpr std::uint64_t kMinHeap = 4u << 20;
// At mark termination: new goal and trigger from the marked bytes.
void pacerEndCycle(std::uint64_t marked, std::uint64_t heapAtTermination);
// Goal and trigger from the marked bytes, gc_percent and the memory limit.
void pacerSetGoal(std::uint64_t marked, double triggerRatio);
// At sweep termination: the assist ratio for this cycle.
void pacerStartCycle();
// MHeap::allocSlowHook.
void allocSlowHook(std::size_t bytes);
// MHeap::allocStressHook (set by setGCStress): every N allocations of a P, one owed
// cycle (exact) or one cycle request (continuous).
void allocStressHook();

// --- mgc.cc ---
// Asks the controller for a new cycle without waiting (the pacer trigger, gcstress); cause:
// for the event log, unless the request folds into one pending. In seeded mode
// (Counters::seeded) a running G owes the cycle instead (seededOwed) and is asked to
// yield: it runs the cycle at its next safepoint (gcStressSafepoint), blocking.
void requestCycle(GCCause cause);
// gcCollectNew's caller. Forced: gcCollect (GCStats::forcedCycles). Stress: a cycle of
// its own, started after every one requested so far (never folded into another
// caller's), counted in GCStats::stressCycles. Paced: a seeded run's pacer or continuous
// gcstress request, paid at a safepoint (folds like Forced, counted in neither).
enum class CycleCause { Forced, Stress, Paced };
void gcCollectNew(CycleCause cause);
bool sweepingDone();
struct Counters {
  std::atomic<std::int64_t> assistTimeNs{0}, workerTimeNs{0};
  std::atomic<std::uint64_t> assistWork{0}, workerWork{0};
  std::atomic<std::uint64_t> sweptBackground{0}, sweptProportional{0};
  std::atomic<std::uint64_t> flushesAcquireP{0}, flushesForEachP{0};
  std::atomic<std::uint64_t> stacksByCollector{0}, stacksBeforeRun{0};
  std::atomic<std::uint64_t> checkmarkObjects{0};
  std::atomic<std::uint64_t> assistParks{0};
  std::atomic<std::uint64_t> extraWorkerWork{0};
  std::atomic<std::int64_t> idleMarkTimeNs{0};
  std::atomic<std::uint64_t> idleMarkWork{0};
  std::atomic<int> gcstress{0};
  std::atomic<std::uint32_t> stressGen{0};  // bumped by setGCStress: Ps reset their counts
  std::atomic<bool> gcstressContinuous{false};  // GCStressMode::Continuous
  std::atomic<bool> stwMark{false};  // gcstoptheworld
  std::atomic<bool> verify{false};   // gcverify: verifyHeap before and after every cycle
  std::atomic<std::uint64_t> heapVerifications{0};
  std::atomic<bool> checkmark{false};
  // Seeded mode (the attached Sched has a seed): cycles run synchronously on the G that
  // requested them, at its next safepoint; seededOwed: one is owed. Set at attach; the
  // owed flag is touched only by the one M that runs Gs at a time (relaxed).
  std::atomic<bool> seeded{false};
  std::atomic<bool> seededOwed{false};
};
Counters& counters();

}  // namespace gc_detail
}  // namespace spindle::runtime

namespace spindle::runtime::gc_detail {
// mbarrier.cc: hands the barrier's no-P buffer to the global full list.
void flushNoPWork();
// Whether the no-P buffer holds no grey object.
bool noPWorkEmpty();
// Mark termination: turns the write barrier off if the no-P buffer is empty (true);
// otherwise flushes it to the global list and returns false (drain, then retry).
bool noPWorkDisableBarrier();
}  // namespace spindle::runtime::gc_detail

namespace spindle::runtime::gc_detail {
// mgc.cc: verifyHeap holds the cycle lock (no cycle, no background sweep step).
Sched* lockForVerify();
void unlockForVerify();
}  // namespace spindle::runtime::gc_detail

namespace spindle::runtime::gc_detail {
// mgcworker.cc: extra background mark workers (the controller is always one).
int markWorkersFor(int procs);
void startMarkWorkers(int n);
void stopMarkWorkers();
void markWorkersBegin();
// Work was handed to the global list: wake idle Ps to run the idle mark worker (Go's
// enlistWorker). Cheap when no P is idle.
void enlistWorker();
// How many idle Ps may run the idle mark worker now (Go's maxIdleMarkWorkers): the
// controller and the extra workers each keep a CPU busy, so with procs CPUs the Ps held
// by Ms (mutators and idle markers) plus those dedicated threads stay within procs.
// A single fiber with 2 Ps thus gets no idle marker (it would only take a CPU from the
// fiber or the controller); with 2 Ps and none running, one. Seeded schedules keep
// every idle P (their interleaving is the seed's, not the CPUs').
int idleMarkSlots(Sched* s);
// The idle-P mark worker hook (phooks.h), set/cleared with the world stopped.
void idleMarkBegin();
void idleMarkEnd();
bool markWorkersIdle();
// Stops the workers taking work and waits until none holds any; returns their bytes
// marked this cycle.
std::uint64_t markWorkersEnd();
}  // namespace spindle::runtime::gc_detail
