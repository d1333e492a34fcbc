#include "runtime/mgcsweep.h"

#include <algorithm>
#include <chrono>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "runtime/gcbits.h"
#include "runtime/gcevents.h"
#include "runtime/mcache.h"
#include "runtime/mfinal.h"
#include "runtime/pheap.h"
#include "runtime/pinnerbits.h"
#include "runtime/throw.h"

namespace spindle::runtime {

namespace {
// Calls fn(i) for each slot this sweep of s frees: allocated (before freeindex, or set in
// allocBits) and not marked.
template <typename Fn>
void forEachFreed(const MSpan* s, Fn fn) {
  for (std::uint32_t i = 0; i < s->nelems; ++i) {
    const bool allocated = i < s->freeindex || s->isAllocatedBit(i);
    if (allocated && !s->isMarked(i)) fn(i);
  }
}

// Poisoning (MSpan::poisoned, clobberfree): fill every object this sweep frees
// (allocated, not marked) with a pattern, so a use after free reads garbage loudly (a
// header word that is no TypeInfo, pointers into nowhere) and a write after free is
// caught when the slot is handed out again (nextFreeSlow). Allocation zeroes them
// (needzero).
void poisonFreed(MSpan* s) {
  forEachFreed(s, [s](std::uint32_t i) { s->poisonSlot(i); });
}

// The weak hooks (gc.h registerWeak). Sweepers call them under the shared lock;
// unregisterWeak takes it exclusively, so a hook's owner can go once it returned. A hook
// takes its table's lock, so the order is hooks lock -> table lock; neither is held while
// allocating or sweeping by anyone else.
struct WeakHook {
  const TypeInfo* type = nullptr;  // null: a free slot
  WeakFreeFn fn = nullptr;
  void* ctx = nullptr;
  const char* name = nullptr;  // the event log's table name (gcevents.h)
};
struct WeakHooks {
  std::shared_mutex lock;
  std::vector<WeakHook> hooks;  // lock
};
WeakHooks& weakHooks() {
  static auto* w = new WeakHooks;  // never destroyed: sweeps may outlive statics
  return *w;
}

// s is claimed, its marks final, nothing freed yet: report the dead objects of weakly
// tabled types before their slots are poisoned or reused, to each hook in batches of
// kWeakBatch (one pass over the span per hook; there is one hook per VM).
void sweepWeak(MSpan* s) {
  WeakHooks& w = weakHooks();
  std::shared_lock<std::shared_mutex> lk(w.lock);
  for (const WeakHook& hk : w.hooks) {
    if (hk.type == nullptr || s->elemsize < hk.type->size) continue;
    void* batch[kWeakBatch];
    std::size_t n = 0, total = 0;
    const auto t0 = std::chrono::steady_clock::now();
    forEachFreed(s, [&](std::uint32_t i) {
      void* obj = reinterpret_cast<void*>(s->base() + std::size_t{i} * s->elemsize);
      // The header word of an object with a type (a headerless noscan object's first
      // word never passes the check for a registered type unless it is that type's).
      if (static_cast<const ObjectHeader*>(obj)->type != hk.type) return;
      batch[n++] = obj;
      total++;
      if (n == kWeakBatch) {
        hk.fn(hk.ctx, batch, n);
        n = 0;
      }
    });
    if (n != 0) hk.fn(hk.ctx, batch, n);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0);
    gc_detail::noteWeakClear(hk.name, ns.count(), total);
  }
}
}  // namespace

int registerWeak(const TypeInfo* type, WeakFreeFn fn, void* ctx, const char* name) {
  if (name == nullptr) name = type->name;
  SPINDLE_CHECK(type != nullptr && fn != nullptr, "registerWeak: type {} fn {}",
                static_cast<const void*>(type), reinterpret_cast<void*>(fn));
  WeakHooks& w = weakHooks();
  std::unique_lock<std::shared_mutex> lk(w.lock);
  for (std::size_t i = 0; i < w.hooks.size(); ++i) {
    if (w.hooks[i].type == nullptr) {
      w.hooks[i] = WeakHook{type, fn, ctx, name};
      return static_cast<int>(i);
    }
  }
  w.hooks.push_back(WeakHook{type, fn, ctx, name});
  return static_cast<int>(w.hooks.size() - 1);
}

void unregisterWeak(int id) {
  WeakHooks& w = weakHooks();
  std::unique_lock<std::shared_mutex> lk(w.lock);
  w.hooks.at(static_cast<std::size_t>(id)) = WeakHook{};
}

void markWeakTabled(void* obj) {
  ObjectRef r;
  const bool found = mheap().findObject(obj, &r);
  SPINDLE_CHECK(found, "markWeakTabled: {} is not a heap object", obj);
  if (!r.span->weakTabled.load(std::memory_order_relaxed)) {
    r.span->weakTabled.store(true, std::memory_order_relaxed);
  }
}

bool weakSwept(void* obj) {
  MHeap& h = mheap();
  ObjectRef r;
  const bool found = h.findObject(obj, &r);
  SPINDLE_CHECK(found, "weakSwept: {} is not a heap object (a weak table kept a freed entry)", obj);
  const std::uint32_t sg = h.sweepgenLoad();
  // Acquire: pairs with the sweeper's release store of sg (its hooks ran before it).
  const std::uint32_t state = r.span->sweepgen.load(std::memory_order_acquire);
  return state == sg || state == sg + 3;
}

void sweepSpanOf(void* obj) {
  MHeap& h = mheap();
  ObjectRef r;
  // Freed meanwhile (its span swept and perhaps reused: a span is allocated with the
  // current sweepgen, so ensureSwept returns at once for it).
  if (!h.findObject(obj, &r)) return;
  ensureSwept(h, r.span);
}

bool sweepSpan(MHeap& h, MSpan* s, bool preserve) {
  const std::uint32_t sg = h.sweepgenLoad();
  SPINDLE_CHECK(s->sweepgen.load(std::memory_order_relaxed) == sg - 1,
                "sweepSpan: span {:#x} sweepgen={} heap sg={} (want sg-1: claimed by sweeper)",
                s->base(), s->sweepgen.load(std::memory_order_relaxed), sg);
  SPINDLE_CHECK(s->state() == SpanState::InUse, "sweepSpan: span {:#x} state={} (want InUse)",
                s->base(), static_cast<int>(s->state()));
  sweepSpecials(h, s);  // resurrects unmarked finalizable objects (mfinal.h)
  const std::uint8_t sc = s->spanclass.sizeclass();
  const std::uint32_t nalloc = s->countMarked();
  SPINDLE_CHECK(nalloc <= s->allocCount,
                "sweepSpan: span {:#x} has {} marked objects but allocCount={}", s->base(),
                nalloc, s->allocCount);
  const std::uint32_t nfreed = s->allocCount - nalloc;
  if (nfreed > 0 && s->weakTabled.load(std::memory_order_relaxed)) sweepWeak(s);
  sweepPinnerBits(s);  // pin bits of live objects into this epoch, dead ones dropped
  if (s->poisoned && nfreed > 0) poisonFreed(s);
  bool owned;
  HeapStatsDelta& shard = h.statsShard(&owned);
  if (sc != 0) {
    statAdd(shard.smallFreeCount[sc], nfreed, owned);
  } else if (nfreed > 0) {
    statAdd(shard.largeFrees, 1, owned);
    statAdd(shard.largeBytesInUse, -std::int64_t{s->elemsize}, owned);
  }
  if (nalloc == 0 && !preserve) {
    // Empty: straight back to the heap. Its bits die with it (no fresh mark bits).
    s->allocCount = 0;
    s->sweepgen.store(sg, std::memory_order_release);
    h.freeSpan(s);
    return true;
  }
  s->allocCount = nalloc;
  s->freeindex = 0;
  s->allocBits = s->gcmarkBits;
  s->gcmarkBits = gcBitsArenas().newMarkBits(s->nelems, currentBitsCache());
  s->refillAllocCache(0);
  if (nalloc == 0 && !s->poisoned) {
    // Kept empty (preserve): every slot is free, so one memset can clear them all.
    if (nfreed > 0 || s->needzero != NeedZero::No) s->needzero = NeedZero::Rest;
  } else if (nfreed > 0) {
    s->needzero = NeedZero::Each;
  }
  if (preserve) {
    // Release: the span is swept; its new bits are visible to the next owner.
    s->sweepgen.store(sg, std::memory_order_release);
    return false;
  }
  s->sweepgen.store(sg, std::memory_order_release);
  h.central(s->spanclass).pushSwept(s, sg);
  return false;
}

bool sweepone(MHeap& h) {
  const std::uint32_t sg = h.sweepgenLoad();
  // The index walks every unswept set: class, then shard, then full/partial.
  constexpr std::uint32_t kPerClass = MCentral::kShards * 2;
  constexpr std::uint32_t kDone = kNumSpanClasses * kPerClass;
  for (std::uint32_t i = h.sweepCentralIndex.load(std::memory_order_relaxed); i < kDone; ++i) {
    // Skip the classes that never had a span (their sets are empty).
    const std::size_t spc = h.nextCentralInUse(i / kPerClass);
    if (spc == kNumSpanClasses) break;
    if (spc != i / kPerClass) i = static_cast<std::uint32_t>(spc * kPerClass);
    MCentral& c = h.central(SpanClass{static_cast<std::uint8_t>(spc)});
    const std::uint32_t shard = i % kPerClass / 2;
    SpanSet& set = (i % 2 == 0) ? c.fullUnswept(sg, shard) : c.partialUnswept(sg, shard);
    for (;;) {
      MSpan* s = set.pop();
      if (s == nullptr) break;
      // Remember where we are (monotonic max); relaxed: only a hint.
      std::uint32_t cur = h.sweepCentralIndex.load(std::memory_order_relaxed);
      while (cur < i && !h.sweepCentralIndex.compare_exchange_weak(cur, i,
                                                                  std::memory_order_relaxed)) {
      }
      if (claimForSweep(s, sg)) {
        sweepSpan(h, s, /*preserve=*/false);
        return true;
      }
      // Already swept (or being swept) by someone else: skip it.
    }
  }
  std::uint32_t cur = h.sweepCentralIndex.load(std::memory_order_relaxed);
  while (cur < kDone &&
         !h.sweepCentralIndex.compare_exchange_weak(cur, kDone, std::memory_order_relaxed)) {
  }
  return false;
}

#if SPINDLE_DCHECKS_ON
namespace {
std::atomic<void (*)(MSpan*)> gEnsureSweptTestHook{nullptr};
}  // namespace
void setEnsureSweptTestHook(void (*hook)(MSpan* s)) { gEnsureSweptTestHook.store(hook); }
#endif

void ensureSwept(MHeap& h, MSpan* s) {
  for (;;) {
    const std::uint32_t sg = h.sweepgenLoad();
    std::uint32_t state = s->sweepgen.load(std::memory_order_acquire);
    if (state == sg || state == sg + 3) return;
    if (state == sg - 2) {
#if SPINDLE_DCHECKS_ON
      if (gEnsureSweptTestHook.load(std::memory_order_relaxed) != nullptr) [[unlikely]] {
        if (auto hook = gEnsureSweptTestHook.exchange(nullptr)) hook(s);
      }
#endif
      if (s->sweepgen.compare_exchange_strong(state, sg - 1, std::memory_order_acq_rel)) {
        // Still in an unswept set: sweepone will find it swept (CAS fails) and skip it.
        sweepSpan(h, s, /*preserve=*/false);
        return;
      }
      // Another sweeper claimed it first: the failed CAS left its new state in `state`
      // (being swept, or already swept). Look again from the top.
      continue;
    }
    if (state == sg + 1) {
      // Cached before this sweep began: by us, or by another P until its flush. Flush our
      // own MCache first if it is stale (prepareForSweep), whichever P holds s: if ours,
      // uncacheSpan sweeps s; if another's, that P may itself be waiting here for a span
      // we cache, and neither is at a safepoint where forEachP would flush it, so the
      // waiter that flushes ends the other's wait (mgcsweep_test "two Ps waiting...").
      P* p = currentP();
      if (p != nullptr && p->mcache->flushGen.load(std::memory_order_acquire) != sg) {
        p->mcache->releaseAll();
        continue;
      }
    }
    SPINDLE_CHECK(state == sg - 1 || state == sg + 1 || state == sg - 2,
                  "ensureSwept: span {:#x} sweepgen={} heap sg={}", s->base(), state, sg);
    // Being swept by someone else (a sweep needs no P and takes no lock we hold), or
    // cached by another P until its flush: wait. Our cache is flushed, so that P is not
    // waiting for us; it flushes at its next safepoint (forEachP after mark termination),
    // at acquireP, or here if it comes to wait for one of its own. No stop of the world
    // that would leave it stopped unflushed comes between: the cycle runs that forEachP
    // under its cycle lock, which verifyHeap's stop also takes, and procresize and a
    // world's attach flush every P they stop.
    std::this_thread::yield();
  }
}

std::size_t reclaimLarge(MHeap& h, std::size_t npages) {
  const std::uint32_t sg = h.sweepgenLoad();
  const std::uint8_t shard = MCentral::currentShard();
  std::size_t freed = 0;
  for (const bool noscan : {true, false}) {
    // Large spans are always full (one object): only the full sets hold them.
    SpanSet& unswept = h.central(SpanClass::make(0, noscan)).fullUnswept(sg, shard);
    while (freed < npages) {
      MSpan* s = unswept.pop();
      if (s == nullptr) break;
      if (!claimForSweep(s, sg)) continue;  // swept by someone else meanwhile
      const std::size_t np = s->npages;
      if (sweepSpan(h, s, /*preserve=*/false)) freed += np;
    }
  }
  return freed;
}

void startSweepCycle(MHeap& h) {
  const std::uint32_t sg = h.sweepgen.load(std::memory_order_relaxed);
  SPINDLE_DCHECK(sg % 2 == 0, "startSweepCycle: sweepgen {} is odd", sg);
  h.sweepCentralIndex.store(0, std::memory_order_relaxed);
  // Release: sweepers that see the new sg see the reset index.
  h.sweepgen.store(sg + 2, std::memory_order_release);
}

void finishSweep(MHeap& h) {
  while (sweepone(h)) {
  }
  const std::uint32_t sg = h.sweepgenLoad();
  for (std::size_t i = h.nextCentralInUse(0); i < kNumSpanClasses;
       i = h.nextCentralInUse(i + 1)) {
    MCentral& c = h.central(SpanClass{static_cast<std::uint8_t>(i)});
    for (std::uint32_t k = 0; k < MCentral::kShards; ++k) {
      c.partialUnswept(sg, k).reset();
      c.fullUnswept(sg, k).reset();
    }
  }
  gcBitsArenas().nextEpoch();
}

}  // namespace spindle::runtime
