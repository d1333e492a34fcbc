// pinner.cc: Pinner (see pinner.h for the design; pinnerbits.h for the span side).
//
// The hot path (pin and unpin of an object nobody else pins, on a Pinner whose inner
// pinner cycles through the P's cache) is: findObject (inlined), the allocated check,
// take the inner pinner from the P, one CAS on the object's pin byte, record the ref;
// then per ref one CAS and the slot cleared, and the inner pinner back to the P. Two
// atomic read-modify-writes in all, the least a pin bit shared with neighbouring
// objects can cost. To keep it there:
//   - every ref is recorded with its span and object index (untraced), so unpin goes
//     straight to the pin byte without looking the object up again. The span stays
//     valid: the object is alive (the ref keeps it so) until the ref is dropped;
//   - the hot functions are flattened ([[gnu::flatten]]: findObject, setPinned and the
//     cache hand-offs inline into pin/unpin); the cold paths (allocating an inner
//     pinner, growing the ref store, the locked multi-pin path) are noinline;
//   - a Rooted Pinner's inner_ is C++ memory, not a heap slot, so it is written without
//     the write barrier (the inner pinner's holder word is what makes it a root).
#include "runtime/pinner.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <new>
#include <vector>

#include "runtime/gc.h"
#include "runtime/malloc.h"
#include "runtime/mcache.h"
#include "runtime/mheap.h"
#include "runtime/phooks.h"
#include "runtime/pinnerbits.h"
#include "runtime/throw.h"

namespace spindle::runtime {

namespace {

// Holder states of an inner pinner (pinner.h). kFinalized: its finalizer ran; it is
// unlinked and must never be cached again.
enum Holder : std::uint8_t { kFree, kRooted, kTraced, kCached, kFinalized };

constexpr std::uint32_t kInlineRefs = 5;

// A pinner's refs: cap slots laid out as three arrays back to back,
//   void* obj[cap]         the pinned objects (reported by trace: they keep them alive)
//   MSpan* span[cap]       obj[k]'s span      (not references: runtime bookkeeping)
//   uint32_t index[cap]    obj[k]'s index in its span
// so that unpin reaches each pin byte without findObject.
constexpr std::size_t kRefBytes = sizeof(void*) + sizeof(MSpan*) + sizeof(std::uint32_t);
struct RefSlots {
  void** obj;
  MSpan** span;
  std::uint32_t* index;
};
inline RefSlots refSlotsAt(void* base, std::uint32_t cap) {
  auto** obj = static_cast<void**>(base);
  auto** span = reinterpret_cast<MSpan**>(obj + cap);
  return {obj, span, reinterpret_cast<std::uint32_t*>(span + cap)};
}

}  // namespace

// Growable storage for refs beyond the inline ones: a scan object whose trace reports
// every obj slot (unused slots are null), followed by its RefSlots arrays.
struct PinRefStore {
  ObjectHeader header;
  std::uint64_t cap;
  void* slots() { return this + 1; }
};

// The inner pinner (Go's pinner). refs points at inlineRefs or at store->slots(); it
// and the list links are not references the collector sees (refs is interior, the
// links are the runtime's own bookkeeping).
struct PinnerObject {
  ObjectHeader header;
  void* refs;           // RefSlots base, cap slots (owner only)
  PinRefStore* store;   // reported; kept across unpin()
  PinnerObject* prev;   // all-pinners list, under gList.lock
  PinnerObject* next;
  std::uint32_t len;    // refs in use (owner only)
  std::uint32_t cap;    // capacity of refs (owner only)
  // Written by the owner, read by the root scanner. Release/acquire: a scanner that
  // sees a holder sees the inner pinner initialised.
  std::atomic<std::uint8_t> holder;
  alignas(void*) unsigned char inlineRefs[kInlineRefs * kRefBytes];

  RefSlots slots() { return refSlotsAt(refs, cap); }
  void** inlineObjs() { return reinterpret_cast<void**>(inlineRefs); }
};
static_assert(sizeof(PinnerObject) == 160, "PinnerObject fills the 160-byte size class");

namespace {

void tracePinnerObject(void* o, VisitFn visit, void* ctx) {
  auto* in = static_cast<PinnerObject*>(o);
  visit(ctx, reinterpret_cast<void**>(&in->store));
  void** objs = in->inlineObjs();
  for (std::uint32_t k = 0; k < kInlineRefs; ++k) visit(ctx, &objs[k]);
}
void tracePinRefStore(void* o, VisitFn visit, void* ctx) {
  auto* s = static_cast<PinRefStore*>(o);
  void** objs = static_cast<void**>(s->slots());
  for (std::uint64_t i = 0; i < s->cap; ++i) visit(ctx, &objs[i]);
}
const TypeInfo kPinnerObjectType{"pinner", sizeof(PinnerObject), tracePinnerObject};
const TypeInfo kPinRefStoreType{"pinner ref store", sizeof(PinRefStore), tracePinRefStore};

struct Stats {
  std::atomic<std::uint64_t> innerAllocs{0}, storeAllocs{0}, leaks{0};
};
Stats gStats;

// The process heap, looked up once (mheap() is out of line). Set during static
// initialisation, before any thread can pin; the fallback covers a Pinner used by
// another file's static initialiser.
MHeap* const gHeap = &mheap();
inline MHeap& heap() {
  if (gHeap == nullptr) [[unlikely]] return mheap();
  return *gHeap;
}

// Every inner pinner not yet finalized. The root scanner walks it.
struct PinnerList {
  std::mutex lock;
  PinnerObject* head = nullptr;  // under lock
  std::once_flag registered;
};
PinnerList& pinnerList() {
  static PinnerList* l = new PinnerList;
  return *l;
}

void linkPinner(PinnerObject* in) {
  PinnerList& l = pinnerList();
  std::call_once(l.registered, [] { registerRoots([](void*, VisitFn v, void* c) { forEachPinnerRoot(v, c); }, nullptr); });
  std::lock_guard<std::mutex> g(l.lock);
  in->prev = nullptr;
  in->next = l.head;
  if (l.head != nullptr) l.head->prev = in;
  l.head = in;
}

void unlinkPinner(PinnerObject* in) {
  PinnerList& l = pinnerList();
  std::lock_guard<std::mutex> g(l.lock);
  if (in->prev != nullptr) {
    in->prev->next = in->next;
  } else {
    SPINDLE_CHECK(l.head == in, "unlinkPinner: inner pinner {} is not in the pinner list",
                  static_cast<void*>(in));
    l.head = in->next;
  }
  if (in->next != nullptr) in->next->prev = in->prev;
  in->prev = in->next = nullptr;
}

[[gnu::noinline]] PinnerObject* newPinnerObject() {
  void* mem = mallocgc(sizeof(PinnerObject), &kPinnerObjectType);
  auto* in = new (mem) PinnerObject{};
  in->header.type = &kPinnerObjectType;
  in->refs = in->inlineRefs;
  in->cap = kInlineRefs;
  in->holder.store(kFree, std::memory_order_relaxed);
  gStats.innerAllocs.fetch_add(1, std::memory_order_relaxed);
  linkPinner(in);
  SPINDLE_CHECK(setFinalizer(in, pinnerFinalizer, nullptr),
                "pinner: setFinalizer refused inner pinner {}", static_cast<void*>(in));
  return in;
}

// Is the object at ref allocated? Exact for large objects and for spans the calling P
// allocates from; other spans' free slots cannot be told apart without racing their
// owner (freeindex is theirs), so they count as allocated.
inline bool objectAllocated(P* p, const ObjectRef& ref) {
  MSpan* s = ref.span;
  if (s->spanclass.sizeclass() == 0) return true;
  if (p != nullptr && p->mcache != nullptr && p->mcache->alloc[s->spanclass.value] == s) {
    return !s->isFree(ref.index);
  }
  return true;
}

// Everything but the lock-free first pin / last unpin: allocating the bits, 01 <-> 11
// and the counter, or a lock-free attempt that lost to a neighbour's change.
[[gnu::noinline]] void setPinnedSlow(MSpan* s, std::uint32_t i, bool pin) {
  std::lock_guard<std::mutex> g(s->specialLock);
  std::uint8_t* bits = s->pinnerBits;  // written only under specialLock
  if (bits == nullptr) {
    SPINDLE_CHECK(pin, "pinner: unpin of object {} in span {:#x} that has no pin bits", i, s->base());
    bits = newPinnerBits(s);
    storePinnerBits(s, bits);
  }
  const std::uint32_t offset = i * s->elemsize;
  const unsigned sh = pinShift(i);
  std::atomic_ref<std::uint8_t> b = pinByte(bits, i);
  std::uint8_t old = b.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint8_t st = static_cast<std::uint8_t>((old >> sh) & 3);
    std::uint8_t next;
    if (pin) {
      if (st == 0) {
        next = kPinnedBit;
      } else if (st == kPinnedBit) {
        next = kPinnedBit | kMultiPinnedBit;
      } else {
        // Already multipinned: only the counter changes (under the lock).
        SpecialPinCounter* c = findPinCounter(s, offset);
        SPINDLE_CHECK(c != nullptr, "pinner: multipinned object at {:#x} has no pin counter",
                      s->base() + offset);
        ++c->count;
        return;
      }
    } else {
      SPINDLE_CHECK(st & kPinnedBit, "pinner: object at {:#x} already unpinned", s->base() + offset);
      if (st == kPinnedBit) {
        next = 0;
      } else {
        SpecialPinCounter* c = findPinCounter(s, offset);
        SPINDLE_CHECK(c != nullptr && c->count > 0,
                      "pinner: multipinned object at {:#x} has no pin counter", s->base() + offset);
        if (--c->count > 0) return;
        removePinCounter(s, c);
        next = kPinnedBit;
        // The counter is gone; the bits must follow (retry below never re-reads it).
        while (!b.compare_exchange_weak(
            old, static_cast<std::uint8_t>((old & ~(3u << sh)) | (next << sh)),
            std::memory_order_relaxed)) {
        }
        return;
      }
    }
    if (b.compare_exchange_weak(old, static_cast<std::uint8_t>((old & ~(3u << sh)) | (next << sh)),
                                std::memory_order_relaxed)) {
      if (next == (kPinnedBit | kMultiPinnedBit)) addPinCounter(s, offset)->count = 1;
      return;
    }
    // A lock-free 00 <-> 01 change (this object or a neighbour) won: re-decide.
  }
}

// Sets or clears the pin of object i of s. Lock-free for the first pin and last unpin
// when s is swept and stable (see pinnerbits.h). The CAS is relaxed: the pin byte
// guards no other data (the counter is under specialLock; sweep reads the bits under
// specialLock only for spans it has claimed, which this path never touches, because a
// span cannot be claimed for sweeping before the next STW and this thread holds a P).
// It must be an atomic read-modify-write all the same: the byte holds 3 neighbours'
// bits too, which other Pinners may change concurrently.
#if SPINDLE_DCHECKS_ON
std::atomic<void (*)(MSpan*)> gSetPinnedTestHook{nullptr};
#endif

inline void setPinned(MHeap& h, MSpan* s, std::uint32_t i, bool pin) {
  // The span's sweepgen first (acquire), then its bitmap: a sweep replaces the bitmap
  // before its release store of sweepgen, so seeing the span swept (sg or sg+3) orders the
  // bitmap load after that replacement, and no new sweep can start while we hold a P.
  // Loaded the other way round, a sweep finishing between the two loads would hand us
  // the old bitmap with a current sweepgen, and the pin would be lost with it.
  const std::uint32_t sg = h.sweepgenLoad();
  const std::uint32_t ssg = s->sweepgen.load(std::memory_order_acquire);
#if SPINDLE_DCHECKS_ON
  if (gSetPinnedTestHook.load(std::memory_order_relaxed) != nullptr) [[unlikely]] {
    if (auto hook = gSetPinnedTestHook.exchange(nullptr)) hook(s);
  }
#endif
  if (ssg == sg || ssg == sg + 3) [[likely]] {
    if (std::uint8_t* bits = loadPinnerBits(s)) [[likely]] {
      std::atomic_ref<std::uint8_t> b = pinByte(bits, i);
      const unsigned sh = pinShift(i);
      std::uint8_t old = b.load(std::memory_order_relaxed);
      const std::uint8_t st = static_cast<std::uint8_t>((old >> sh) & 3);
      if (pin ? st == 0 : st == kPinnedBit) [[likely]] {
        const auto next = static_cast<std::uint8_t>(pin ? old | (kPinnedBit << sh)
                                                        : old & ~(kPinnedBit << sh));
        if (b.compare_exchange_strong(old, next, std::memory_order_relaxed)) [[likely]] return;
      }
    }
  }
  setPinnedSlow(s, i, pin);
}

// Unpins every ref of `in` and clears its slots (through the barrier: the inner pinner
// is a heap object, and a cached one stays reachable, so stale refs would keep their
// objects alive).
inline void unpinAll(PinnerObject* in) {
  SPINDLE_DCHECK(currentP() != nullptr, "pinner: unpin of {} pins on a thread without a P (setPinned's "
                 "lock-free path needs one)", in->len);
  MHeap& h = heap();
  const RefSlots r = in->slots();
  const std::uint32_t n = in->len;
  for (std::uint32_t k = 0; k < n; ++k) {
    SPINDLE_DCHECK(
        [&] {
          ObjectRef ref;
          return h.findObject(r.obj[k], &ref) && ref.span == r.span[k] && ref.index == r.index[k];
        }(),
        "pinner: ref {} ({}) no longer at span {} index {}", k, r.obj[k],
        static_cast<void*>(r.span[k]), r.index[k]);
    setPinned(h, r.span[k], r.index[k], false);
    writePointer(&r.obj[k], nullptr);
  }
  in->len = 0;
}

[[gnu::noinline]] void grow(PinnerObject* in) {
  const std::uint32_t cap = in->cap < 16 ? 16 : in->cap * 2;
  SPINDLE_CHECK(cap > in->cap, "pinner: too many pins in one Pinner ({})", in->cap);
  auto* st = static_cast<PinRefStore*>(
      mallocgc(sizeof(PinRefStore) + cap * kRefBytes, &kPinRefStoreType));
  st->cap = cap;
  gStats.storeAllocs.fetch_add(1, std::memory_order_relaxed);
  // st is new (allocated black while marking, unreachable): plain initialising stores.
  const RefSlots from = in->slots();
  const RefSlots to = refSlotsAt(st->slots(), cap);
  for (std::uint32_t k = 0; k < in->len; ++k) {
    to.obj[k] = from.obj[k];
    to.span[k] = from.span[k];
    to.index[k] = from.index[k];
  }
  writePointer(reinterpret_cast<void**>(&in->store), st);
  if (in->refs == in->inlineRefs) {
    void** objs = in->inlineObjs();
    for (std::uint32_t k = 0; k < kInlineRefs; ++k) writePointer(&objs[k], nullptr);
  }
  in->refs = st->slots();
  in->cap = cap;
}

// Called after the leaking pinner's pins are dropped. Release: whoever reads the count
// with acquire (pinnerStats) sees those pins gone.
void reportLeak() {
  gStats.leaks.fetch_add(1, std::memory_order_release);
  std::fputs("pinner: found leaking pinned pointer; forgot to call unpin()?\n", stderr);
}

// Puts `in` (empty) into p's cache if the slot is free; returns whether it did.
inline bool cacheInner(P* p, PinnerObject* in) {
  if (p == nullptr || p->pinnerCache != nullptr ||
      in->holder.load(std::memory_order_relaxed) == kFinalized) [[unlikely]] {
    return false;
  }
  in->holder.store(kCached, std::memory_order_release);
  p->pinnerCache = in;
  return true;
}

[[maybe_unused]] const int gPinnerHooks = registerPLifecycleHooks(
    PLifecycleHooks{.init = nullptr, .destroy = dropPinnerCache, .acquire = nullptr,
                    .gcMarkDone = dropPinnerCache});

}  // namespace

const char* pinErrorMessage(PinError e) {
  switch (e) {
    case PinError::Ok: return "ok";
    case PinError::NotHeapObject: return "pointer does not point into a live heap object";
    case PinError::FreeObject: return "pointer points at a free (unallocated or freed) heap slot";
  }
  return "unknown pin error";
}

// Takes p's cached inner pinner, or allocates one.
inline PinnerObject* Pinner::acquireInner(P* p) {
  PinnerObject* in;
  if (p != nullptr && p->pinnerCache != nullptr) [[likely]] {
    in = p->pinnerCache;
    p->pinnerCache = nullptr;
  } else {
    in = newPinnerObject();
  }
  in->holder.store(holding_ == Holding::Rooted ? kRooted : kTraced, std::memory_order_release);
  if (holding_ == Holding::Rooted) {
    // C++ memory, never scanned: no barrier (the holder word makes `in` a root).
    inner_ = in;
  } else {
    writePointer(reinterpret_cast<void**>(&inner_), in);
  }
  return in;
}

[[gnu::flatten]] PinError Pinner::pin(const void* obj) {
  MHeap& h = heap();
  ObjectRef ref;
  if (!h.findObject(obj, &ref)) [[unlikely]] return PinError::NotHeapObject;
  P* p = currentP();
  SPINDLE_DCHECK(p != nullptr, "pinner: pin({}) on a thread without a P", obj);
  if (!objectAllocated(p, ref)) [[unlikely]] return PinError::FreeObject;
  PinnerObject* in = inner_;
  if (in == nullptr) in = acquireInner(p);
  setPinned(h, ref.span, ref.index, true);
  if (in->len == in->cap) [[unlikely]] grow(in);
  const RefSlots r = in->slots();
  const std::uint32_t k = in->len;
  writePointer(&r.obj[k], reinterpret_cast<void*>(ref.base));
  r.span[k] = ref.span;
  r.index[k] = ref.index;
  in->len = k + 1;
  return PinError::Ok;
}

[[gnu::flatten]] void Pinner::unpin() {
  PinnerObject* in = inner_;
  if (in == nullptr) return;
  unpinAll(in);
  // Back to the P's cache when its slot is free (Go does the same); otherwise this
  // Pinner keeps its inner pinner.
  if (!cacheInner(currentP(), in)) return;
  if (holding_ == Holding::Rooted) {
    inner_ = nullptr;
  } else {
    writePointer(reinterpret_cast<void**>(&inner_), nullptr);
  }
}

Pinner::~Pinner() {
  PinnerObject* in = inner_;
  if (in == nullptr) return;
  if (in->len > 0) {
    unpinAll(in);
    reportLeak();
  }
  if (!cacheInner(currentP(), in) && in->holder.load(std::memory_order_relaxed) != kFinalized) {
    in->holder.store(kFree, std::memory_order_release);
  }
  inner_ = nullptr;
}

std::size_t Pinner::pinCount() const { return inner_ == nullptr ? 0 : inner_->len; }

[[gnu::flatten]] bool Pinner::isPinned(const void* p) {
  ObjectRef ref;
  if (!heap().findObject(p, &ref)) return false;
  std::uint8_t* bits = loadPinnerBits(ref.span);
  return bits != nullptr && (pinState(bits, ref.index) & kPinnedBit) != 0;
}

void Pinner::trace(VisitFn visit, void* ctx) {
  visit(ctx, reinterpret_cast<void**>(&inner_));
}

void forEachPinnerRoot(VisitFn visit, void* ctx) {
  PinnerList& l = pinnerList();
  std::lock_guard<std::mutex> g(l.lock);
  for (PinnerObject* in = l.head; in != nullptr; in = in->next) {
    const std::uint8_t h = in->holder.load(std::memory_order_acquire);
    if (h == kRooted || h == kCached) {
      void* slot = in;  // non-moving collector: nothing is written back
      visit(ctx, &slot);
    }
  }
}

void forEachInnerPinner(VisitFn visit, void* ctx) {
  std::vector<void*> all;
  {
    PinnerList& l = pinnerList();
    std::lock_guard<std::mutex> g(l.lock);
    for (PinnerObject* in = l.head; in != nullptr; in = in->next) all.push_back(in);
  }
  for (void*& slot : all) visit(ctx, &slot);
}

void pinnerFinalizer(void* obj, void*) {
  auto* in = static_cast<PinnerObject*>(obj);
  const std::uint8_t h = in->holder.load(std::memory_order_acquire);
  // A cached or held inner pinner is reachable (a root): nothing to do. An empty one
  // (dropped from a cache) just leaves the list.
  if (h == kRooted || h == kCached || h == kFinalized) return;
  if (in->len > 0) {
    unpinAll(in);
    reportLeak();
  }
  unlinkPinner(in);
  in->holder.store(kFinalized, std::memory_order_release);
}

void dropPinnerCache(P* p) {
  PinnerObject* in = p->pinnerCache;
  if (in == nullptr) return;
  p->pinnerCache = nullptr;
  in->holder.store(kFree, std::memory_order_release);
}

#if SPINDLE_DCHECKS_ON
void setPinnedTestHook(void (*hook)(MSpan* s)) { gSetPinnedTestHook.store(hook); }
#endif

PinnerStats pinnerStats() {
  PinnerStats s;
  s.innerAllocs = gStats.innerAllocs.load(std::memory_order_relaxed);
  s.storeAllocs = gStats.storeAllocs.load(std::memory_order_relaxed);
  s.counterAllocs = pinCountersAllocated();
  s.leaks = gStats.leaks.load(std::memory_order_acquire);  // pairs with reportLeak
  return s;
}

}  // namespace spindle::runtime
