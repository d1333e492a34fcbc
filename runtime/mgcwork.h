// mgcwork.h: the collector's grey-object queues (Go's mgcwork.go).
//
// Design. A grey object is one whose mark bit is set and whose address sits in a work
// buffer, waiting to be scanned. Work buffers (WorkBuf, ~2 KiB, kCap addresses) move
// between:
//   - a GCWork: the buffer a producer/consumer fills and drains privately. Every P has
//     one (P::gcw, touched only by the thread holding the P, or by the collector while
//     the world is stopped); each collector thread has its own;
//   - two global lock-free stacks: `full` (buffers holding grey objects, any thread may
//     take one) and `empty` (recycled buffers). Buffers are never freed, so a stale
//     pointer read during a racing pop always points at a WorkBuf; a 16-bit tag in the
//     head word defeats ABA.
// Invariants: a buffer is in exactly one place (a GCWork, the full list, the empty
// list); a buffer on the full list has nobj > 0; the contents written by a pusher
// happen-before the reads of whoever pops it (release push / acquire pop).
// Mark completion (mgc.cc) needs: global full list empty, every GCWork empty, which a
// ragged barrier (forEachP flushing each P's GCWork) establishes for the Ps.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace spindle::runtime {

struct WorkBuf {
  static constexpr std::uint32_t kCap = 254;
  std::atomic<WorkBuf*> next{nullptr};  // list link (relaxed: ordered by the head CAS)
  std::uint32_t nobj = 0;
  std::uintptr_t obj[kCap];
};
static_assert(sizeof(WorkBuf) <= 2048);

// A Treiber stack of WorkBufs with an ABA tag in the top 16 bits of the head word.
class WorkBufList {
 public:
  void push(WorkBuf* b);
  WorkBuf* pop();
  bool empty() const { return (head_.load(std::memory_order_acquire) & kPtrMask) == 0; }

 private:
  static constexpr std::uint64_t kPtrMask = (std::uint64_t{1} << 48) - 1;
  std::atomic<std::uint64_t> head_{0};
};

// The global lists.
struct WorkQueues {
  WorkBufList full;
  WorkBufList empty;
  std::atomic<std::int64_t> nfull{0};   // approximate count of full buffers
  std::atomic<std::uint64_t> nbufs{0};  // buffers ever allocated
  // Every buffer ever allocated (under allLock), so leak checkers see them reachable:
  // the list heads hold tagged pointers.
  std::mutex allLock;
  std::vector<WorkBuf*> all;
};
WorkQueues& workQueues();

struct GCWork {
  WorkBuf* wbuf = nullptr;
  // Accounting, flushed into the collector's totals at dispose (owner only).
  std::uint64_t bytesMarked = 0;
  std::uint64_t scanWork = 0;
  // Set when this GCWork handed work to the global list (mark completion uses it).
  bool flushedWork = false;

  void put(std::uintptr_t obj) {
    if (wbuf == nullptr || wbuf->nobj == WorkBuf::kCap) [[unlikely]] putSlow();
    wbuf->obj[wbuf->nobj++] = obj;
  }
  // A grey object, taking a buffer from the global full list when the local one is
  // empty; 0 when there is no work anywhere.
  std::uintptr_t tryGet() {
    if (wbuf != nullptr && wbuf->nobj > 0) [[likely]] return wbuf->obj[--wbuf->nobj];
    return tryGetSlow();
  }
  bool empty() const { return wbuf == nullptr || wbuf->nobj == 0; }
  // Hands a non-empty buffer to the global full list (keeps an empty one).
  void flush();
  // flush, and return an empty buffer to the empty list (the GCWork goes away).
  void dispose();
  // Moves half of a well-filled local buffer to the global full list (Go's balance);
  // returns whether it did.
  bool balance();

 private:
  void putSlow();
  std::uintptr_t tryGetSlow();
};

}  // namespace spindle::runtime
