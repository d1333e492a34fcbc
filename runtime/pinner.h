// pinner.h: Pinner, a set of pinned heap objects (Go's runtime.Pinner, pinner.go).
//
// A pinned object stays alive and at its address until it is unpinned, so its address
// may be kept by foreign code (FFI) between calls. The collector does not move objects;
// "pinned" here means "alive no matter what else refers to it", plus a pin bit that
// foreign-call checks and isPinned() can read.
//
//   runtime::Pinner pinner;
//   if (pinner.pin(obj) != PinError::Ok) ...;   // obj: any address inside a heap object
//   ... hand obj to foreign code that keeps it ...
//   pinner.unpin();                              // releases every pin of this Pinner
//
// Design (Go's, including "cache inner pinner on P"):
//   - The outer Pinner is a small value; its state is an inner pinner, a heap object
//     (PinnerObject, 160 bytes) holding the references it pinned: 5 inline slots, then a
//     growable PinRefStore heap object. Its trace function reports them, so a reachable
//     inner pinner keeps every object it pinned alive. Each slot also records the
//     object's span and index (not references), so unpin() goes straight to the pin
//     bits without looking the object up again.
//   - What keeps an inner pinner reachable depends on its holder, an atomic state word:
//       Rooted  held by a Pinner in C++ memory (stacks are never scanned): a root;
//       Traced  held by a Pinner embedded in a heap object whose trace calls
//               Pinner::trace (the VM's script-level Pinner): not a root;
//       Cached  in a P's pinnerCache slot, empty: a root;
//       Free    dropped from a cache, or left by a destroyed Pinner: not a root.
//     One root scanner (registerRoots in gc.h) reports the Rooted and Cached inner
//     pinners from a list of all inner pinners (linked at allocation, unlinked by their
//     finalizer).
//   - Per-P cache: pin() on a Pinner without an inner pinner takes its P's cached one
//     before allocating; unpin() puts it back when the slot is empty (keeping its
//     PinRefStore). The cache is dropped (holder Free) in the gcMarkDone and destroy
//     P hooks, so an idle P does not keep one alive forever. In steady state Pin+Unpin
//     allocates nothing.
//   - Leaks: each inner pinner gets a finalizer once, at allocation. If it becomes
//     unreachable while holding pins (a script dropped its Pinner without unpin()), the
//     finalizer prints "pinner: found leaking pinned pointer; forgot to call unpin()?"
//     on stderr and unpins. It ignores empty, cached or still-held pinners. A C++
//     Pinner destroyed while holding pins is a leak found at once: ~Pinner reports and
//     unpins the same way.
//   - Pin state lives in the object's span (pinnerbits.h): one CAS on a byte for the
//     first pin and the last unpin of an object, the span's specialLock and a counter
//     special for repeated pins of the same object.
//
// Errors: pin() returns a PinError (errors are values; nothing throws): NotHeapObject
// for an address outside every in-use heap span (a stack, a global, malloc memory, a
// freed span), FreeObject for a free slot of a span the calling P allocates from.
// Unpinning an object whose pin state says it is not pinned is a fatal error (an
// invariant of the runtime, like Go's throw).
//
// Threads: a Pinner is used by one thread at a time, which must hold a P for pin and
// unpin (pin allocates; the lock-free pin-bit path needs the P, see pinner.cc).
// isPinned may be called by any thread. Pins of different Pinners on the
// same object from different threads are safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/throw.h"
#include "runtime/typeinfo.h"

namespace spindle::runtime {

struct MSpan;
struct P;
struct PinnerObject;

enum class PinError : std::uint8_t { Ok = 0, NotHeapObject, FreeObject };
const char* pinErrorMessage(PinError e);

class Pinner {
 public:
  enum class Holding : std::uint8_t { Rooted, Traced };

  explicit Pinner(Holding holding = Holding::Rooted) : holding_(holding) {}
  ~Pinner();
  Pinner(const Pinner&) = delete;
  Pinner& operator=(const Pinner&) = delete;

  // Pins the heap object containing `obj`. Pinning an object again counts.
  [[nodiscard]] PinError pin(const void* obj);
  // Unpins every object pinned through this Pinner.
  void unpin();
  // Pins currently held (repeated pins count).
  std::size_t pinCount() const;
  // Is the heap object containing p pinned (by any Pinner)? False for non-heap addresses.
  static bool isPinned(const void* p);

  // Holding::Traced: the heap object holding this Pinner reports it from its trace.
  void trace(VisitFn visit, void* ctx);

 private:
  PinnerObject* acquireInner(P* p);
  PinnerObject* inner_ = nullptr;
  Holding holding_;
};

// --- runtime hooks and introspection -------------------------------------------------

// The root scanner registered with the collector (Rooted and Cached inner pinners).
void forEachPinnerRoot(VisitFn visit, void* ctx);
// Every inner pinner not yet finalized, held or not (tests and diagnostics: a stand-in
// collector finalizes the unreachable ones).
void forEachInnerPinner(VisitFn visit, void* ctx);
// The inner pinner's finalizer (exposed so tests can run it without a collector).
void pinnerFinalizer(void* obj, void* arg);
// Drops p's cached inner pinner (the gcMarkDone and destroy P hooks).
void dropPinnerCache(P* p);

struct PinnerStats {
  std::uint64_t innerAllocs = 0;     // inner pinners allocated (heap)
  std::uint64_t storeAllocs = 0;     // PinRefStores allocated (heap, growth)
  std::uint64_t counterAllocs = 0;   // pin-counter specials (runtime FixAlloc, not heap)
  std::uint64_t leaks = 0;           // leaking pinners reported (their pins already dropped)
  // Heap allocations made by pinners.
  std::uint64_t heapAllocs() const { return innerAllocs + storeAllocs; }
};
PinnerStats pinnerStats();

#if SPINDLE_DCHECKS_ON
// Test seam (builds with invariant checks only): called once, then cleared, between the
// two loads of setPinned's lock-free path (the span's sweepgen, then its pin bitmap), so
// a test can finish a sweep of the span exactly there.
void setPinnedTestHook(void (*hook)(MSpan* s));
#endif

}  // namespace spindle::runtime
