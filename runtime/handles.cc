// handles.cc: see handles.h.
#include "runtime/handles.h"

#include <mutex>

namespace spindle::runtime {

namespace handles_detail {
namespace {

struct Roots {
  std::mutex stacksLock;
  std::vector<HandleStack*> stacks;  // stacksLock
  std::mutex persistentLock;
  PersistentNode head;  // circular list sentinel (persistentLock)
  Roots() { head.prev = head.next = &head; }
};
Roots& roots() {
  static Roots* r = new Roots;
  return *r;
}

void handleRoots(void*, VisitFn visit, void* ctx) { scanHandleStacks(visit, ctx); }
void persistentRoots(void*, VisitFn visit, void* ctx) { scanPersistents(visit, ctx); }

void registerScanners() {
  static std::once_flag once;
  std::call_once(once, [] {
    registerRoots(&handleRoots, nullptr);
    registerRoots(&persistentRoots, nullptr);
  });
}

// Unregisters and frees the thread's handle stack when the thread exits.
struct StackOwner {
  HandleStack* h = nullptr;
  ~StackOwner() {
    if (h == nullptr) return;
    {
      Roots& r = roots();
      std::lock_guard<std::mutex> lk(r.stacksLock);
      std::erase(r.stacks, h);
    }
    for (void** b : h->blocks) delete[] b;
    delete h;
    tlsHandles = nullptr;
  }
};
thread_local StackOwner tlsOwner;

}  // namespace

HandleStack* newHandleStack() {
  registerScanners();
  auto* h = new HandleStack;
  tlsOwner.h = h;
  tlsHandles = h;
  Roots& r = roots();
  std::lock_guard<std::mutex> lk(r.stacksLock);
  r.stacks.push_back(h);
  return h;
}

void grow(HandleStack* h) {
  std::lock_guard<std::mutex> lk(h->lock);
  h->blocks.push_back(new void*[HandleStack::kBlock]());
  h->capacity += HandleStack::kBlock;
}

void popTo(std::size_t mark) {
  HandleStack* h = handles();
  const std::size_t t = h->top.load(std::memory_order_relaxed);
  SPINDLE_CHECK(mark <= t, "HandleScope: scopes not nested: mark {} above top {}", mark, t);
  if (writeBarrierEnabled()) {
    for (std::size_t i = mark; i < t; i++) {
      shade(std::atomic_ref<void*>(*slotAt(h, i)).load(std::memory_order_relaxed));
    }
  }
  h->top.store(mark, std::memory_order_release);
}

void link(PersistentNode* n, void* v) {
  registerScanners();
  if (writeBarrierEnabled()) shade(v);
  Roots& r = roots();
  std::lock_guard<std::mutex> lk(r.persistentLock);
  std::atomic_ref<void*>(n->slot).store(v, std::memory_order_relaxed);
  n->prev = &r.head;
  n->next = r.head.next;
  r.head.next->prev = n;
  r.head.next = n;
}

void unlink(PersistentNode* n) {
  if (writeBarrierEnabled()) shade(std::atomic_ref<void*>(n->slot).load(std::memory_order_relaxed));
  Roots& r = roots();
  std::lock_guard<std::mutex> lk(r.persistentLock);
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = nullptr;
}

}  // namespace handles_detail

void scanHandleStacks(VisitFn visit, void* ctx) {
  using handles_detail::HandleStack;
  handles_detail::Roots& r = handles_detail::roots();
  std::lock_guard<std::mutex> lk(r.stacksLock);
  for (HandleStack* h : r.stacks) {
    std::lock_guard<std::mutex> blk(h->lock);
    const std::size_t n = h->top.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < n; i++) visit(ctx, handles_detail::slotAt(h, i));
  }
}

void scanPersistents(VisitFn visit, void* ctx) {
  handles_detail::Roots& r = handles_detail::roots();
  std::lock_guard<std::mutex> lk(r.persistentLock);
  for (handles_detail::PersistentNode* n = r.head.next; n != &r.head; n = n->next) {
    visit(ctx, &n->slot);
  }
}

}  // namespace spindle::runtime
