// handles.h: the typed C++ API for collected objects (in the spirit of cppgc/V8):
// GarbageCollected<T>, make<T>, Member<T>, Visitor, HandleScope + Local<T>, Persistent<T>.
//
//   class Node : public GarbageCollected<Node> {
//    public:
//     Member<Node> left, right;
//     void trace(Visitor& v) const { v.trace(left); v.trace(right); }
//   };
//   HandleScope scope;
//   Local<Node> n(make<Node>());
//   n->left = make<Node>();            // through the write barrier
//   Persistent<Node> keep(n.get());    // a global root until destroyed
//
// Design.
//   - A collected type T derives from GarbageCollected<T> (first and only base with
//     data, no virtual functions): its constructor writes the object header (typeinfo.h)
//     with T's TypeInfo, whose trace calls T::trace(Visitor&) (or is null when T has no
//     trace: the object lands in a noscan span). make<T>(args...) allocates with mallocgc
//     and constructs T in place; makeSized<T>(bytes, args...) adds a payload after T.
//     Destructors never run (T must be trivially destructible): use setFinalizer.
//   - Member<T> is a pointer field of a collected object: every store goes through
//     writePointer (gc.h, Go's hybrid barrier); loads are relaxed atomic loads (racing
//     fibers see an old or a new pointer, never a torn one). trace reports its slot.
//   - Local<T> is a slot in the current thread's handle stack; HandleScope pops the
//     slots created in its lifetime (LIFO, checked). A Local is a pointer to its slot:
//     copying it is cheap and both copies name the same slot. Locals must not outlive
//     their scope nor move to another thread.
//   - Persistent<T> is a slot in a global list (a root) until destroyed; creating and
//     destroying Persistents is thread-safe; one Persistent is used by one thread at a
//     time (like any C++ object).
//   - Roots: every thread's handle stack and the persistent list are scanned by two
//     scanners registered with registerRoots on first use. They run concurrently with
//     the owners: a handle stack publishes its top with a release store after writing
//     the slot, the scanner reads top with acquire and then only slots below it (each a
//     relaxed atomic load), so it never sees a slot's value from before its last push.
//     Insertion barrier: a value stored into a handle or persistent slot while marking
//     is shaded; popping a scope or dropping a persistent while marking shades what it
//     held (deletion barrier): so the roots behave like Go's non-rescanned globals.
//
// Invariants: HandleScopes nest (a scope's destructor finds the stack top at or above
// the mark it took; checked); a Local's slot index is below the top while it is used
// (checked in debug builds on access).
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <new>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "runtime/gc.h"
#include "runtime/malloc.h"
#include "runtime/throw.h"
#include "runtime/typeinfo.h"

namespace spindle::runtime {

class Visitor;

template <typename T>
class Member {
 public:
  Member() = default;
  Member(T* v) { init(v); }  // NOLINT: implicit, as a raw pointer field would be
  Member(const Member& o) { init(o.get()); }
  Member& operator=(T* v) {
    writePointer(&ptr_, v);
    return *this;
  }
  Member& operator=(const Member& o) { return *this = o.get(); }

  T* get() const {
    return static_cast<T*>(std::atomic_ref<void*>(const_cast<void*&>(ptr_)).load(std::memory_order_relaxed));
  }
  T* operator->() const { return get(); }
  T& operator*() const { return *get(); }
  explicit operator bool() const { return get() != nullptr; }

  // For the collector: the slot.
  void** slot() const { return const_cast<void**>(&ptr_); }

 private:
  void init(T* v) {
    if (writeBarrierEnabled()) shade(v);
    std::atomic_ref<void*>(ptr_).store(v, std::memory_order_relaxed);
  }
  void* ptr_ = nullptr;
};

// Passed to T::trace: report every Member (and any raw slot holding a heap pointer).
class Visitor {
 public:
  Visitor(VisitFn fn, void* ctx) : fn_(fn), ctx_(ctx) {}
  template <typename T>
  void trace(const Member<T>& m) const {
    fn_(ctx_, m.slot());
  }
  void traceSlot(void** slot) const { fn_(ctx_, slot); }

 private:
  VisitFn fn_;
  void* ctx_;
};

template <typename T>
concept Traceable = requires(const T& t, Visitor& v) { t.trace(v); };

template <typename T>
class GarbageCollected;

namespace handles_detail {
template <typename T>
void traceThunk(void* obj, VisitFn fn, void* ctx) {
  Visitor v(fn, ctx);
  static_cast<const T*>(static_cast<GarbageCollected<T>*>(obj))->trace(v);
}
template <typename T>
constexpr TraceFn traceFnOf() {
  if constexpr (Traceable<T>) {
    return &traceThunk<T>;
  } else {
    return nullptr;
  }
}
template <typename T>
struct TypeOf {
  static inline const TypeInfo info{typeid(T).name(), sizeof(T), traceFnOf<T>()};
};
}  // namespace handles_detail

// Base of every collected type: holds the object header.
template <typename T>
class GarbageCollected {
 public:
  static const TypeInfo* typeInfo() { return &handles_detail::TypeOf<T>::info; }

 protected:
  GarbageCollected() : header_{typeInfo()} {}
  GarbageCollected(const GarbageCollected&) : header_{typeInfo()} {}
  GarbageCollected& operator=(const GarbageCollected&) { return *this; }

 private:
  ObjectHeader header_;
};

// Allocates a T with `bytes` bytes in all (>= sizeof(T)): T, then a payload that T's
// trace must describe. The current thread must hold a P.
template <typename T, typename... Args>
T* makeSized(std::size_t bytes, Args&&... args) {
  static_assert(std::is_base_of_v<GarbageCollected<T>, T>, "make<T>: T must derive from GarbageCollected<T>");
  static_assert(!std::is_polymorphic_v<T>, "make<T>: collected types have no vtable (the header comes first)");
  static_assert(std::is_trivially_destructible_v<T>, "make<T>: destructors never run; use setFinalizer");
  SPINDLE_DCHECK(bytes >= sizeof(T), "makeSized: {} bytes < sizeof(T) = {}", bytes, sizeof(T));
  void* mem = mallocgc(bytes, GarbageCollected<T>::typeInfo());
  T* t = ::new (mem) T(std::forward<Args>(args)...);
  SPINDLE_DCHECK(static_cast<void*>(static_cast<GarbageCollected<T>*>(t)) == mem,
                 "make<T>: GarbageCollected<T> is not at offset 0 of {}", typeid(T).name());
  return t;
}
template <typename T, typename... Args>
T* make(Args&&... args) {
  return makeSized<T>(sizeof(T), std::forward<Args>(args)...);
}

// --- handle stacks -------------------------------------------------------------------
namespace handles_detail {
// One per thread, created on first use and registered in a global list (handles.cc).
struct HandleStack {
  static constexpr std::size_t kBlock = 256;
  std::mutex lock;                // blocks: grown by the owner, read by the scanner
  std::vector<void**> blocks;     // kBlock slots each, never moved or freed while live
  std::atomic<std::size_t> top{0};  // release by the owner after writing the slot
  std::size_t capacity = 0;       // owner only
};
inline thread_local HandleStack* tlsHandles = nullptr;
HandleStack* newHandleStack();
void grow(HandleStack* h);
inline HandleStack* handles() {
  HandleStack* h = tlsHandles;
  return h != nullptr ? h : newHandleStack();
}
inline void** slotAt(HandleStack* h, std::size_t i) { return &h->blocks[i / HandleStack::kBlock][i % HandleStack::kBlock]; }
inline std::size_t top() { return handles()->top.load(std::memory_order_relaxed); }
// Pushes v on this thread's handle stack; returns its slot index.
inline std::size_t push(void* v) {
  HandleStack* h = handles();
  const std::size_t t = h->top.load(std::memory_order_relaxed);
  if (t == h->capacity) grow(h);
  if (writeBarrierEnabled()) shade(v);
  std::atomic_ref<void*>(*slotAt(h, t)).store(v, std::memory_order_relaxed);
  // Release: a scanner that sees top > t sees this slot's value (or a newer one).
  h->top.store(t + 1, std::memory_order_release);
  return t;
}
void popTo(std::size_t mark);
// Persistent list nodes.
struct PersistentNode {
  void* slot = nullptr;
  PersistentNode* prev = nullptr;
  PersistentNode* next = nullptr;
};
void link(PersistentNode* n, void* v);
void unlink(PersistentNode* n);
}  // namespace handles_detail

class HandleScope {
 public:
  HandleScope() : mark_(handles_detail::top()) {}
  ~HandleScope() { handles_detail::popTo(mark_); }
  HandleScope(const HandleScope&) = delete;
  HandleScope& operator=(const HandleScope&) = delete;

 private:
  std::size_t mark_;
};

template <typename T>
class Local {
 public:
  Local() = default;
  explicit Local(T* v) : index_(handles_detail::push(v)) {}
  T* get() const {
    if (index_ == kNone) return nullptr;
    handles_detail::HandleStack* h = handles_detail::tlsHandles;
    SPINDLE_DCHECK(h != nullptr && index_ < h->top.load(std::memory_order_relaxed),
                   "Local used after its HandleScope ended, or on another thread (slot {})", index_);
    return static_cast<T*>(
        std::atomic_ref<void*>(*handles_detail::slotAt(h, index_)).load(std::memory_order_relaxed));
  }
  T* operator->() const { return get(); }
  T& operator*() const { return *get(); }
  explicit operator bool() const { return get() != nullptr; }

 private:
  static constexpr std::size_t kNone = ~std::size_t{0};
  std::size_t index_ = kNone;
};

template <typename T>
class Persistent {
 public:
  Persistent() { handles_detail::link(&node_, nullptr); }
  explicit Persistent(T* v) { handles_detail::link(&node_, v); }
  Persistent(const Persistent& o) { handles_detail::link(&node_, o.get()); }
  ~Persistent() { handles_detail::unlink(&node_); }
  Persistent& operator=(T* v) {
    writePointer(&node_.slot, v);
    return *this;
  }
  Persistent& operator=(const Persistent& o) { return *this = o.get(); }
  void reset() { *this = nullptr; }

  T* get() const {
    return static_cast<T*>(std::atomic_ref<void*>(const_cast<void*&>(node_.slot)).load(std::memory_order_relaxed));
  }
  T* operator->() const { return get(); }
  T& operator*() const { return *get(); }
  explicit operator bool() const { return get() != nullptr; }

 private:
  handles_detail::PersistentNode node_;
};

// The two root scanners (registered with registerRoots on first use); exposed so tests
// can check what they report.
void scanHandleStacks(VisitFn visit, void* ctx);
void scanPersistents(VisitFn visit, void* ctx);

}  // namespace spindle::runtime
