// mgcowners.cc: live-heap accounting per owner (heapowners.h, which states the design).
#include <mutex>

#include "runtime/gcevents.h"
#include "runtime/heapowners.h"
#include "runtime/mgc.h"

namespace spindle::runtime {

namespace {

struct Owner {
  // Null: the id is free (or quarantined until freeAfter).
  std::atomic<const std::atomic<std::uint64_t>*> allocated{nullptr};
  std::atomic<std::uint64_t> marking{0};          // charged by the running mark
  std::atomic<std::uint64_t> marked{0};           // the last completed mark's charge
  std::atomic<std::uint64_t> base{0};             // allocation count when that mark began
  std::atomic<std::uint64_t> allocAtMarkStart{0}; // allocation count at this mark's start
  std::uint64_t freeAfter = 0;                    // reusable once cycles >= it (lock)
};

struct Owners {
  std::mutex lock;
  Owner slot[kMaxHeapOwners];
  std::atomic<HeapOwnerFn> fn{nullptr};
  std::atomic<std::uint64_t> cycles{0};
  std::uint32_t active = 0;  // lock
};

// Never destroyed: marking threads may read it while the process exits.
Owners& owners() {
  static Owners* o = new Owners;
  return *o;
}

}  // namespace

namespace gc_detail {

std::atomic<bool> heapOwnersOn{false};

void heapOwnerMark(std::uintptr_t base, std::size_t bytes) {
  Owners& o = owners();
  const HeapOwnerFn fn = o.fn.load(std::memory_order_relaxed);
  if (fn == nullptr) return;
  const std::uint32_t id = fn(base);
  if (id == 0 || id >= kMaxHeapOwners) return;
  o.slot[id].marking.fetch_add(bytes, std::memory_order_relaxed);
}

void heapOwnersMarkStart() {
  Owners& o = owners();
  std::lock_guard<std::mutex> lk(o.lock);
  if (o.active == 0) return;
  for (Owner& w : o.slot) {
    const std::atomic<std::uint64_t>* a = w.allocated.load(std::memory_order_relaxed);
    if (a == nullptr) continue;
    w.allocAtMarkStart.store(a->load(std::memory_order_relaxed), std::memory_order_relaxed);
    w.marking.store(0, std::memory_order_relaxed);
  }
}

void heapOwnersMarkEnd() {
  Owners& o = owners();
  std::lock_guard<std::mutex> lk(o.lock);
  o.cycles.fetch_add(1, std::memory_order_relaxed);
  if (o.active == 0) return;
  for (Owner& w : o.slot) {
    if (w.allocated.load(std::memory_order_relaxed) == nullptr) continue;
    w.marked.store(w.marking.load(std::memory_order_relaxed), std::memory_order_relaxed);
    w.base.store(w.allocAtMarkStart.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
}

}  // namespace gc_detail

void setHeapOwnerFn(HeapOwnerFn fn) { owners().fn.store(fn, std::memory_order_relaxed); }

std::uint32_t acquireHeapOwner(const std::atomic<std::uint64_t>* allocated) {
  Owners& o = owners();
  std::lock_guard<std::mutex> lk(o.lock);
  const std::uint64_t now = o.cycles.load(std::memory_order_relaxed);
  for (std::uint32_t id = 1; id < kMaxHeapOwners; id++) {
    Owner& w = o.slot[id];
    if (w.allocated.load(std::memory_order_relaxed) != nullptr || w.freeAfter > now) continue;
    const std::uint64_t a = allocated->load(std::memory_order_relaxed);
    w.marking.store(0, std::memory_order_relaxed);
    w.marked.store(0, std::memory_order_relaxed);
    w.base.store(a, std::memory_order_relaxed);
    w.allocAtMarkStart.store(a, std::memory_order_relaxed);
    w.allocated.store(allocated, std::memory_order_relaxed);
    if (o.active++ == 0) gc_detail::heapOwnersOn.store(true, std::memory_order_relaxed);
    return id;
  }
  return 0;
}

void releaseHeapOwner(std::uint32_t id) {
  if (id == 0 || id >= kMaxHeapOwners) return;
  Owners& o = owners();
  std::lock_guard<std::mutex> lk(o.lock);
  Owner& w = o.slot[id];
  if (w.allocated.load(std::memory_order_relaxed) == nullptr) return;
  w.allocated.store(nullptr, std::memory_order_relaxed);
  w.freeAfter = o.cycles.load(std::memory_order_relaxed) + 2;
  if (--o.active == 0) gc_detail::heapOwnersOn.store(false, std::memory_order_relaxed);
}

std::uint64_t heapOwnerLive(std::uint32_t id) {
  if (id == 0 || id >= kMaxHeapOwners) return 0;
  Owner& w = owners().slot[id];
  const std::atomic<std::uint64_t>* a = w.allocated.load(std::memory_order_relaxed);
  if (a == nullptr) return 0;
  const std::uint64_t now = a->load(std::memory_order_relaxed);
  const std::uint64_t base = w.base.load(std::memory_order_relaxed);
  return w.marked.load(std::memory_order_relaxed) + (now > base ? now - base : 0);
}

std::uint64_t heapOwnerMarked(std::uint32_t id) {
  if (id == 0 || id >= kMaxHeapOwners) return 0;
  return owners().slot[id].marked.load(std::memory_order_relaxed);
}

std::uint64_t heapOwnerCycles() { return owners().cycles.load(std::memory_order_relaxed); }

void requestMemoryLimitCycle() { gc_detail::requestCycle(GCCause::MemoryLimit); }

}  // namespace spindle::runtime
