// mfinal.cc: see mfinal.h.
#include "runtime/mfinal.h"


#include <fmt/format.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <unordered_set>
#include <vector>

#include "runtime/fixalloc.h"
#include "runtime/mgcsweep.h"
#include "runtime/throw.h"

namespace spindle::runtime {

namespace mfinal_detail {
std::atomic<bool> finWake{false};
}  // namespace mfinal_detail

namespace {

struct FinState {
  std::mutex indexLock;                  // finIndexLock
  std::unordered_set<MSpan*> spans;      // spans with finalizer specials (indexLock)
  std::atomic<std::uint64_t> nspans{0};  // spans.size(), read without the lock
  std::atomic<std::uint64_t> nset{0};    // finalizer specials recorded
  std::atomic<std::uint64_t> ncleanups{0};  // cleanup specials recorded

  std::mutex finqLock;
  std::deque<FinalizerEntry> finq;  // finqLock
  const void* fingOwner = nullptr;  // finqLock: the finalizer G's body
  G* fing = nullptr;                // finqLock: its G, once it ran
  Sched* fingSched = nullptr;       // finqLock
  bool fingParked = false;          // finqLock: fing is (about to be) Waiting
  // Written under finqLock (queued, cleanupsQueued by sweepSpecials; run by
  // noteFinalizerRan); atomics so that finalizerStats reads them without it.
  std::atomic<std::uint64_t> queued{0}, cleanupsQueued{0}, run{0};
  // Gs parked in waitFinalizersStep until run >= target (finqLock).
  struct Waiter {
    G* g;
    std::uint64_t target;
  };
  std::vector<Waiter> finWaiters;

  // Special records come from a FixAlloc (Go's specialfinalizeralloc): off the C++ heap,
  // like the spans that point at them. A leaf lock.
  std::mutex allocLock;
  FixAlloc<SpecialFinalizer> alloc;  // allocLock
};

FinState& fin() {
  static FinState* s = new FinState;
  return *s;
}

// Finds obj's span and index; false unless obj is the start of an allocated object.
bool objectStart(MHeap& h, void* obj, ObjectRef* ref) {
  if (obj == nullptr || !h.findObject(obj, ref)) return false;
  if (ref->base != reinterpret_cast<std::uintptr_t>(obj)) return false;
  return ref->span->state() == SpanState::InUse && ref->span->kind == SpanKind::Heap;
}

// The link that points at the first special with (offset, kind) >= the given one.
Special** findSpecialLink(MSpan* s, std::uint32_t offset, std::uint8_t kind) {
  Special** link = &s->specials;
  while (*link != nullptr &&
         ((*link)->offset < offset || ((*link)->offset == offset && (*link)->kind < kind))) {
    link = &(*link)->next;
  }
  return link;
}

bool isIndexedKind(std::uint8_t kind) {
  return kind == kSpecialFinalizer || kind == kSpecialCleanup;
}

// Does s hold a special that keeps it in the index?
bool hasIndexedSpecial(const MSpan* s) {
  for (const Special* sp = s->specials; sp != nullptr; sp = sp->next) {
    if (isIndexedKind(sp->kind)) return true;
  }
  return false;
}

// ensureSwept(obj's span), then checks that obj survived that sweep: a caller holds it,
// so it must have been marked (or allocated black).
MSpan* swept(MHeap& h, void* obj, ObjectRef* ref) {
  ensureSwept(h, ref->span);
  ObjectRef again;
  SPINDLE_CHECK(objectStart(h, obj, &again) && again.span == ref->span,
                "setFinalizer: object {} was freed by the sweep of its span: it was unreachable "
                "(not marked) while the caller held it",
                obj);
  return ref->span;
}

}  // namespace

namespace {

SpecialFinalizer* newSpecialFinalizer() {
  std::lock_guard<std::mutex> lk(fin().allocLock);
  return fin().alloc.alloc();
}

void freeSpecialFinalizer(SpecialFinalizer* sf) {
  *sf = SpecialFinalizer{};
  std::lock_guard<std::mutex> lk(fin().allocLock);
  fin().alloc.free(sf);
}

}  // namespace

bool addFinalizer(MHeap& h, void* obj, FinalizerFn fn, void* arg) {
  ObjectRef ref;
  if (!objectStart(h, obj, &ref)) return false;
  MSpan* s = swept(h, obj, &ref);
  const auto offset = static_cast<std::uint32_t>(ref.base - s->base());
  FinState& f = fin();
  std::lock_guard<std::mutex> ilk(f.indexLock);
  std::lock_guard<std::mutex> slk(s->specialLock);
  Special** link = findSpecialLink(s, offset, kSpecialFinalizer);
  const bool present =
      *link != nullptr && (*link)->offset == offset && (*link)->kind == kSpecialFinalizer;
  if (fn == nullptr) {  // remove
    if (!present) return true;  // no finalizer: nothing to remove
    Special* sp = *link;
    *link = sp->next;
    freeSpecialFinalizer(static_cast<SpecialFinalizer*>(sp));
    f.nset.fetch_sub(1, std::memory_order_relaxed);
    if (!hasIndexedSpecial(s) && f.spans.erase(s) == 1) {
      f.nspans.fetch_sub(1, std::memory_order_relaxed);
    }
    return true;
  }
  if (present) {
    auto* sf = static_cast<SpecialFinalizer*>(*link);
    sf->fn = fn;
    std::atomic_ref<void*>(sf->arg).store(arg, std::memory_order_relaxed);
    return true;
  }
  auto* sf = newSpecialFinalizer();
  sf->offset = offset;
  sf->kind = kSpecialFinalizer;
  sf->fn = fn;
  sf->arg = arg;
  sf->next = *link;
  *link = sf;
  f.nset.fetch_add(1, std::memory_order_relaxed);
  if (f.spans.insert(s).second) f.nspans.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool removeFinalizer(MHeap& h, void* obj) { return addFinalizer(h, obj, nullptr, nullptr); }

bool addCleanup(MHeap& h, void* obj, CleanupFn cleanup, void* arg) {
  SPINDLE_CHECK(cleanup != nullptr, "addCleanup: null cleanup for object {}", obj);
  ObjectRef ref;
  if (!objectStart(h, obj, &ref)) return false;
  MSpan* s = swept(h, obj, &ref);
  auto* sf = newSpecialFinalizer();
  sf->offset = static_cast<std::uint32_t>(ref.base - s->base());
  sf->kind = kSpecialCleanup;
  sf->cleanup = cleanup;
  sf->arg = arg;
  FinState& f = fin();
  std::lock_guard<std::mutex> ilk(f.indexLock);
  std::lock_guard<std::mutex> slk(s->specialLock);
  Special** link = findSpecialLink(s, sf->offset, kSpecialCleanup);
  sf->next = *link;
  *link = sf;
  f.ncleanups.fetch_add(1, std::memory_order_relaxed);
  if (f.spans.insert(s).second) f.nspans.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool hasFinalizer(MHeap& h, void* obj) {
  ObjectRef ref;
  if (!objectStart(h, obj, &ref)) return false;
  const auto offset = static_cast<std::uint32_t>(ref.base - ref.span->base());
  std::lock_guard<std::mutex> slk(ref.span->specialLock);
  Special* sp = *findSpecialLink(ref.span, offset, kSpecialFinalizer);
  return sp != nullptr && sp->offset == offset && sp->kind == kSpecialFinalizer;
}

void sweepSpecials(MHeap& h, MSpan* s) {
  FinState& f = fin();
  // Relaxed: a span gains specials only while swept (ensureSwept), and the sweep cycle
  // that sweeps it again began with the world stopped, which ordered that insertion.
  if (f.nspans.load(std::memory_order_relaxed) == 0) return;
  SPINDLE_DCHECK(s->sweepgen.load(std::memory_order_relaxed) == h.sweepgenLoad() - 1,
                 "sweepSpecials: span {:#x} sweepgen={} heap sg={} (want sg-1)", s->base(),
                 s->sweepgen.load(std::memory_order_relaxed), h.sweepgenLoad());
  std::vector<FinalizerEntry> dead;
  std::size_t nfinalizers = 0;
  {
    std::lock_guard<std::mutex> ilk(f.indexLock);
    if (f.spans.count(s) == 0) return;
    std::lock_guard<std::mutex> slk(s->specialLock);
    bool left = false;
    for (Special** link = &s->specials; *link != nullptr;) {
      Special* sp = *link;
      if (!isIndexedKind(sp->kind)) {  // the pinner's: not ours
        link = &sp->next;
        continue;
      }
      const std::uint32_t idx = s->objIndex(s->base() + sp->offset);
      if (s->isMarked(idx)) {
        left = true;
        link = &sp->next;
        continue;
      }
      auto* sf = static_cast<SpecialFinalizer*>(sp);
      if (sp->kind == kSpecialFinalizer) {
        // Unreachable: resurrect it for its finalizer (this sweep keeps it).
        s->setMarked(idx);
        dead.push_back(FinalizerEntry{reinterpret_cast<void*>(s->base() + sp->offset), sf->fn,
                                      nullptr, sf->arg});
        ++nfinalizers;
      } else {
        // Unreachable: this sweep frees it; only (cleanup, arg) outlives it.
        dead.push_back(FinalizerEntry{nullptr, nullptr, sf->cleanup, sf->arg});
      }
      *link = sp->next;
      freeSpecialFinalizer(sf);
    }
    f.nset.fetch_sub(nfinalizers, std::memory_order_relaxed);
    f.ncleanups.fetch_sub(dead.size() - nfinalizers, std::memory_order_relaxed);
    if (!left) {
      f.spans.erase(s);
      f.nspans.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  if (dead.empty()) return;
  std::lock_guard<std::mutex> qlk(f.finqLock);
  for (const FinalizerEntry& e : dead) f.finq.push_back(e);
  f.queued.fetch_add(nfinalizers, std::memory_order_relaxed);
  f.cleanupsQueued.fetch_add(dead.size() - nfinalizers, std::memory_order_relaxed);
  mfinal_detail::finWake.store(true, std::memory_order_relaxed);
}

namespace {
// The finalizer roots, once for marking and once with names: traced(obj, type) for an
// object with a finalizer whose fields are roots (not obj itself), slot(slot, what,
// obj) for a root word (`obj` the object it belongs to; what: "argument" or "queue").
template <typename Traced, typename Slot>
void forEachFinalizerRoot(Traced&& traced, Slot&& slot) {
  FinState& f = fin();
  {
    std::lock_guard<std::mutex> ilk(f.indexLock);
    for (MSpan* s : f.spans) {
      std::lock_guard<std::mutex> slk(s->specialLock);
      const bool noscan = s->spanclass.noscan();
      for (Special* sp = s->specials; sp != nullptr; sp = sp->next) {
        if (!isIndexedKind(sp->kind)) continue;
        auto* sf = static_cast<SpecialFinalizer*>(sp);
        void* obj = reinterpret_cast<void*>(s->base() + sp->offset);
        if (!noscan && sp->kind == kSpecialFinalizer) {
          const TypeInfo* t = static_cast<ObjectHeader*>(obj)->type;
          if (t != nullptr && t->trace != nullptr) traced(obj, t);
        }
        slot(&sf->arg, "argument", obj);
      }
    }
  }
  std::lock_guard<std::mutex> qlk(f.finqLock);
  for (FinalizerEntry& e : f.finq) {
    slot(&e.obj, "queue", e.obj);
    slot(&e.arg, "queue", e.obj);
  }
}

const char* typeNameOf(void* obj) {
  ObjectRef r;
  if (!mheap().findObject(obj, &r) || r.span->spanclass.noscan()) return "object";
  const TypeInfo* t = static_cast<ObjectHeader*>(obj)->type;
  return t != nullptr ? t->name : "object";
}

// A labelled visit nested in a finalizer root: "finalizer root of <type>", then what the
// type's own labelled trace names.
struct FinalizerLabels {
  LabelVisitFn visit;
  void* ctx;
  const TypeInfo* type;
  static void inner(void* self, void* p, const SlotName& name) {
    auto* fl = static_cast<FinalizerLabels*>(self);
    visitNamed(fl->visit, fl->ctx, p, [&](std::vector<std::string>* out) {
      out->push_back(fmt::format("finalizer root of <{}>", fl->type->name));
      if (name.name != nullptr) name.name(name.env, out);
    });
  }
  static void plain(void* self, void** slot) {
    inner(self, std::atomic_ref<void*>(*slot).load(std::memory_order_relaxed), SlotName{nullptr, nullptr});
  }
};
}  // namespace

void scanFinalizerRoots(VisitFn visit, void* ctx) {
  forEachFinalizerRoot([&](void* obj, const TypeInfo* t) { t->trace(obj, visit, ctx); },
                       [&](void** slot, const char*, void*) { visit(ctx, slot); });
}

void scanFinalizerRootsLabelled(LabelVisitFn visit, void* ctx) {
  forEachFinalizerRoot(
      [&](void* obj, const TypeInfo* t) {
        FinalizerLabels fl{visit, ctx, t};
        if (t->traceLabelled != nullptr) {
          t->traceLabelled(obj, FinalizerLabels::inner, &fl);
        } else {
          t->trace(obj, FinalizerLabels::plain, &fl);
        }
      },
      [&](void** slot, const char* what, void* obj) {
        visitNamed(visit, ctx, std::atomic_ref<void*>(*slot).load(std::memory_order_relaxed),
                   [&](std::vector<std::string>* out) {
                     out->push_back(fmt::format("finalizer {} of <{}>", what, typeNameOf(obj)));
                   });
      });
}

FinalizerStats finalizerStats() {
  FinState& f = fin();
  FinalizerStats st;
  st.set = f.nset.load(std::memory_order_relaxed);
  st.queued = f.queued.load(std::memory_order_relaxed);
  st.run = f.run.load(std::memory_order_relaxed);
  st.cleanupsSet = f.ncleanups.load(std::memory_order_relaxed);
  st.cleanupsQueued = f.cleanupsQueued.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> qlk(f.finqLock);
  st.pending = f.finq.size();
  return st;
}

void setFinalizerG(const void* owner, Sched* sched) {
  FinState& f = fin();
  std::lock_guard<std::mutex> qlk(f.finqLock);
  f.fingOwner = owner;
  f.fing = nullptr;
  f.fingSched = sched;
  f.fingParked = false;
}

FinqTake finqTakeOrPark(const void* owner, G* g, FinalizerEntry* out) {
  FinState& f = fin();
  f.finqLock.lock();
  if (f.fingOwner != owner) {
    f.finqLock.unlock();
    return FinqTake::Exit;
  }
  f.fing = g;
  if (f.finq.empty()) {
    f.fingParked = true;
    mfinal_detail::finWake.store(false, std::memory_order_relaxed);
    return FinqTake::Park;  // finqParkCommit unlocks
  }
  *out = f.finq.front();
  f.finq.pop_front();
  f.finqLock.unlock();
  return FinqTake::Entry;
}

void finqParkCommit(G*, void*) { fin().finqLock.unlock(); }

void noteFinalizerRan(std::vector<G*>* due) {
  FinState& f = fin();
  std::lock_guard<std::mutex> qlk(f.finqLock);
  const std::uint64_t run = f.run.fetch_add(1, std::memory_order_relaxed) + 1;
  if (f.finWaiters.empty()) return;
  auto done = [run](const FinState::Waiter& w) { return w.target <= run; };
  for (const FinState::Waiter& w : f.finWaiters)
    if (done(w)) due->push_back(w.g);
  std::erase_if(f.finWaiters, done);
}

std::uint64_t finalizersQueuedTotal() {
  FinState& f = fin();
  std::lock_guard<std::mutex> qlk(f.finqLock);
  return f.queued.load(std::memory_order_relaxed) + f.cleanupsQueued.load(std::memory_order_relaxed);
}

bool finalizersRan(std::uint64_t target) {
  FinState& f = fin();
  std::lock_guard<std::mutex> qlk(f.finqLock);
  return f.run.load(std::memory_order_relaxed) >= target;
}

bool addFinalizerWaiter(G* g, std::uint64_t target) {
  FinState& f = fin();
  std::lock_guard<std::mutex> qlk(f.finqLock);
  if (f.run.load(std::memory_order_relaxed) >= target) return false;
  f.finWaiters.push_back(FinState::Waiter{g, target});
  return true;
}

G* wakefing(const Sched* sched) {
  FinState& f = fin();
  if (!mfinal_detail::finWake.load(std::memory_order_relaxed)) return nullptr;
  std::lock_guard<std::mutex> qlk(f.finqLock);
  if (f.fing == nullptr || !f.fingParked || f.finq.empty()) {
    // Nothing to wake: a finalizer G that is not parked looks at the queue before it
    // parks (under finqLock), so the hint can go.
    mfinal_detail::finWake.store(false, std::memory_order_relaxed);
    return nullptr;
  }
  if (sched != nullptr && f.fingSched != sched) return nullptr;
  // The park commit released finqLock after the G became Waiting: ready() may run now.
  f.fingParked = false;
  mfinal_detail::finWake.store(false, std::memory_order_relaxed);
  return f.fing;
}

}  // namespace spindle::runtime
