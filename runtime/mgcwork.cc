#include "runtime/mgcwork.h"

#include <cstring>

#include "runtime/throw.h"

namespace spindle::runtime {

void WorkBufList::push(WorkBuf* b) {
  const std::uint64_t p = reinterpret_cast<std::uintptr_t>(b);
  SPINDLE_DCHECK((p & ~kPtrMask) == 0, "WorkBufList: pointer {:#x} above 48 bits", p);
  std::uint64_t old = head_.load(std::memory_order_relaxed);
  for (;;) {
    b->next.store(reinterpret_cast<WorkBuf*>(old & kPtrMask), std::memory_order_relaxed);
    const std::uint64_t tag = (old >> 48) + 1;
    // Release: b's contents are visible to the thread that pops it.
    if (head_.compare_exchange_weak(old, (tag << 48) | p, std::memory_order_release,
                                    std::memory_order_relaxed))
      return;
  }
}

WorkBuf* WorkBufList::pop() {
  // Acquire: pairs with push's release (contents and next link).
  std::uint64_t old = head_.load(std::memory_order_acquire);
  for (;;) {
    WorkBuf* b = reinterpret_cast<WorkBuf*>(old & kPtrMask);
    if (b == nullptr) return nullptr;
    // b may be popped and pushed again meanwhile: the read is still of a live WorkBuf
    // (never freed) and the tag makes the CAS fail.
    WorkBuf* next = b->next.load(std::memory_order_relaxed);
    const std::uint64_t tag = (old >> 48) + 1;
    if (head_.compare_exchange_weak(old, (tag << 48) | reinterpret_cast<std::uintptr_t>(next),
                                    std::memory_order_acquire, std::memory_order_acquire))
      return b;
  }
}

WorkQueues& workQueues() {
  static WorkQueues* q = new WorkQueues;
  return *q;
}

namespace {
WorkBuf* getEmpty() {
  WorkQueues& q = workQueues();
  if (WorkBuf* b = q.empty.pop()) {
    SPINDLE_DCHECK(b->nobj == 0, "WorkBuf on the empty list holds {} objects", b->nobj);
    return b;
  }
  q.nbufs.fetch_add(1, std::memory_order_relaxed);
  auto* b = new WorkBuf;
  std::lock_guard<std::mutex> lk(q.allLock);
  q.all.push_back(b);
  return b;
}
void putFull(WorkBuf* b) {
  WorkQueues& q = workQueues();
  q.nfull.fetch_add(1, std::memory_order_relaxed);
  q.full.push(b);
}
}  // namespace

void GCWork::putSlow() {
  if (wbuf != nullptr) {
    putFull(wbuf);
    flushedWork = true;
  }
  wbuf = getEmpty();
}

std::uintptr_t GCWork::tryGetSlow() {
  WorkQueues& q = workQueues();
  WorkBuf* b = q.full.pop();
  if (b == nullptr) return 0;
  q.nfull.fetch_sub(1, std::memory_order_relaxed);
  SPINDLE_DCHECK(b->nobj > 0, "WorkBuf on the full list is empty");
  if (wbuf != nullptr) q.empty.push(wbuf);
  wbuf = b;
  return wbuf->obj[--wbuf->nobj];
}

bool GCWork::balance() {
  if (wbuf == nullptr || wbuf->nobj < 8) return false;
  WorkBuf* b = getEmpty();
  const std::uint32_t half = wbuf->nobj / 2;
  // The older half (bottom of the LIFO buffer): the newest objects, likely prefetched,
  // stay with this worker.
  std::memcpy(b->obj, wbuf->obj, half * sizeof(std::uintptr_t));
  std::memmove(wbuf->obj, wbuf->obj + half, (wbuf->nobj - half) * sizeof(std::uintptr_t));
  b->nobj = half;
  wbuf->nobj -= half;
  putFull(b);
  flushedWork = true;
  return true;
}

void GCWork::dispose() {
  flush();
  if (wbuf != nullptr) workQueues().empty.push(wbuf);
  wbuf = nullptr;
}

void GCWork::flush() {
  if (wbuf == nullptr || wbuf->nobj == 0) return;
  putFull(wbuf);
  flushedWork = true;
  wbuf = nullptr;
}

}  // namespace spindle::runtime
