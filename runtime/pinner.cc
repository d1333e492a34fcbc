// pinner.cc: Pinner (see pinner.h for the design; pinnerbits.h for the span side).
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

}  // namespace

// Growable storage for refs beyond the inline ones: a scan object whose trace reports
// every slot (unused slots are null).
struct PinRefStore {
  ObjectHeader header;
  std::uint64_t cap;
  void** slots() { return reinterpret_cast<void**>(this + 1); }
};

// The inner pinner (Go's pinner). refs points at refStore or at store->slots(); it and
// the list links are not references the collector sees (refs is interior, the links
// are the runtime's own bookkeeping).
struct PinnerObject {
  ObjectHeader header;
  void** refs;          // owner only
  PinRefStore* store;   // reported; kept across unpin()
  PinnerObject* prev;   // all-pinners list, under gList.lock
  PinnerObject* next;
  std::uint32_t len;    // refs in use (owner only)
  std::uint32_t cap;    // capacity of refs (owner only)
  // Written by the owner, read by the root scanner. Release/acquire: a scanner that
  // sees a holder sees the inner pinner initialised.
  std::atomic<std::uint8_t> holder;
  void* refStore[kInlineRefs];
};
static_assert(sizeof(PinnerObject) == 96, "PinnerObject fills the 96-byte size class");

namespace {

void tracePinnerObject(void* o, VisitFn visit, void* ctx) {
  auto* in = static_cast<PinnerObject*>(o);
  visit(ctx, reinterpret_cast<void**>(&in->store));
  for (void*& slot : in->refStore) visit(ctx, &slot);
}
void tracePinRefStore(void* o, VisitFn visit, void* ctx) {
  auto* s = static_cast<PinRefStore*>(o);
  for (std::uint64_t i = 0; i < s->cap; ++i) visit(ctx, &s->slots()[i]);
}
const TypeInfo kPinnerObjectType{"pinner", sizeof(PinnerObject), tracePinnerObject};
const TypeInfo kPinRefStoreType{"pinner ref store", sizeof(PinRefStore), tracePinRefStore};

struct Stats {
  std::atomic<std::uint64_t> innerAllocs{0}, storeAllocs{0}, leaks{0};
};
Stats gStats;

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

PinnerObject* newPinnerObject() {
  void* mem = mallocgc(sizeof(PinnerObject), &kPinnerObjectType);
  auto* in = new (mem) PinnerObject{};
  in->header.type = &kPinnerObjectType;
  in->refs = in->refStore;
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
bool objectAllocated(const ObjectRef& ref) {
  MSpan* s = ref.span;
  if (s->spanclass.sizeclass() == 0) return true;
  P* p = currentP();
  if (p != nullptr && p->mcache != nullptr && p->mcache->alloc[s->spanclass.value] == s) {
    return !s->isFree(ref.index);
  }
  return true;
}

void setPinnedSlow(MSpan* s, std::uint32_t i, bool pin) {
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
// when s is swept and stable (see pinnerbits.h).
inline void setPinned(MHeap& h, MSpan* s, std::uint32_t i, bool pin) {
  if (std::uint8_t* bits = loadPinnerBits(s)) {
    const std::uint32_t sg = h.sweepgenLoad();
    const std::uint32_t ssg = s->sweepgen.load(std::memory_order_acquire);
    if (ssg == sg || ssg == sg + 3) [[likely]] {
      std::atomic_ref<std::uint8_t> b = pinByte(bits, i);
      const unsigned sh = pinShift(i);
      std::uint8_t old = b.load(std::memory_order_relaxed);
      const std::uint8_t st = static_cast<std::uint8_t>((old >> sh) & 3);
      if (pin ? st == 0 : st == kPinnedBit) {
        const auto next = static_cast<std::uint8_t>(pin ? old | (kPinnedBit << sh)
                                                        : old & ~(kPinnedBit << sh));
        if (b.compare_exchange_strong(old, next, std::memory_order_relaxed)) return;
      }
    }
  }
  setPinnedSlow(s, i, pin);
}

void unpinAll(PinnerObject* in) {
  MHeap& h = mheap();
  for (std::uint32_t k = 0; k < in->len; ++k) {
    void* obj = in->refs[k];
    ObjectRef ref;
    SPINDLE_CHECK(h.findObject(obj, &ref), "pinner: pinned object {} is not in the heap", obj);
    setPinned(h, ref.span, ref.index, false);
    writePointer(&in->refs[k], nullptr);
  }
  in->len = 0;
}

void grow(PinnerObject* in) {
  const std::uint64_t cap = in->cap < 16 ? 16 : std::uint64_t{in->cap} * 2;
  auto* st = static_cast<PinRefStore*>(
      mallocgc(sizeof(PinRefStore) + cap * sizeof(void*), &kPinRefStoreType));
  st->cap = cap;
  gStats.storeAllocs.fetch_add(1, std::memory_order_relaxed);
  // st is new (allocated black while marking, unreachable): plain initialising stores.
  for (std::uint32_t k = 0; k < in->len; ++k) st->slots()[k] = in->refs[k];
  writePointer(reinterpret_cast<void**>(&in->store), st);
  if (in->refs == in->refStore) {
    for (void*& slot : in->refStore) writePointer(&slot, nullptr);
  }
  in->refs = st->slots();
  in->cap = static_cast<std::uint32_t>(cap);
}

void reportLeak() {
  gStats.leaks.fetch_add(1, std::memory_order_relaxed);
  std::fputs("pinner: found leaking pinned pointer; forgot to call unpin()?\n", stderr);
}

// Puts `in` (empty) into p's cache if the slot is free; returns whether it did.
bool cacheInner(P* p, PinnerObject* in) {
  if (p == nullptr || p->pinnerCache != nullptr ||
      in->holder.load(std::memory_order_relaxed) == kFinalized) {
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

void Pinner::acquireInner() {
  P* p = currentP();
  PinnerObject* in = nullptr;
  if (p != nullptr && p->pinnerCache != nullptr) {
    in = p->pinnerCache;
    p->pinnerCache = nullptr;
  } else {
    in = newPinnerObject();
  }
  writePointer(reinterpret_cast<void**>(&inner_), in);
  in->holder.store(holding_ == Holding::Rooted ? kRooted : kTraced, std::memory_order_release);
}

PinError Pinner::pin(const void* obj) {
  MHeap& h = mheap();
  ObjectRef ref;
  if (!h.findObject(obj, &ref)) return PinError::NotHeapObject;
  if (!objectAllocated(ref)) return PinError::FreeObject;
  if (inner_ == nullptr) acquireInner();
  PinnerObject* in = inner_;
  setPinned(h, ref.span, ref.index, true);
  if (in->len == in->cap) [[unlikely]] grow(in);
  writePointer(&in->refs[in->len], reinterpret_cast<void*>(ref.base));
  ++in->len;
  return PinError::Ok;
}

void Pinner::unpin() {
  PinnerObject* in = inner_;
  if (in == nullptr) return;
  unpinAll(in);
  if (holding_ == Holding::Rooted) {
    // Keep the Pinner's inner pinner when the cache is full (Go does the same).
    if (cacheInner(currentP(), in)) inner_ = nullptr;
  } else if (cacheInner(currentP(), in)) {
    writePointer(reinterpret_cast<void**>(&inner_), nullptr);
  }
}

Pinner::~Pinner() {
  PinnerObject* in = inner_;
  if (in == nullptr) return;
  if (in->len > 0) {
    reportLeak();
    unpinAll(in);
  }
  if (!cacheInner(currentP(), in) && in->holder.load(std::memory_order_relaxed) != kFinalized) {
    in->holder.store(kFree, std::memory_order_release);
  }
  inner_ = nullptr;
}

std::size_t Pinner::pinCount() const { return inner_ == nullptr ? 0 : inner_->len; }

bool Pinner::isPinned(const void* p) {
  ObjectRef ref;
  if (!mheap().findObject(p, &ref)) return false;
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
    reportLeak();
    unpinAll(in);
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

PinnerStats pinnerStats() {
  PinnerStats s;
  s.innerAllocs = gStats.innerAllocs.load(std::memory_order_relaxed);
  s.storeAllocs = gStats.storeAllocs.load(std::memory_order_relaxed);
  s.counterAllocs = pinCountersAllocated();
  s.leaks = gStats.leaks.load(std::memory_order_relaxed);
  return s;
}

}  // namespace spindle::runtime
