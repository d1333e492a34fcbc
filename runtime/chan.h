// chan.h: channels (Go's chan.go): hchan, wait queues of sudogs, send/recv/close.
//
// Design. An element is an opaque 64-bit word (the VM stores NaN-boxed values; the runtime
// never looks inside). A channel has a ring buffer of `dataqsiz` words (0: unbuffered) and
// two wait queues of sudogs: Gs blocked sending (carrying their element) and Gs blocked
// receiving (with a slot for the element). All state is under hchan::lock.
//
// Stackless blocking. chansend/chanrecv run inside a G body. When they must block they
// enqueue the G's sudog, leave the channel LOCKED, record a park commit that unlocks it,
// and return ChanResult::Park; the body must then return Step::park(...) at once (use
// the returned step helpers). The scheduler marks the G Waiting and runs the commit, so a
// waker (which needs the lock to find the sudog) can only ready a G that is fully parked.
// When the G runs again, chansendResume / chanrecvResume give the outcome.
//
// Semantics (as Go): a send to a waiting receiver hands the element over directly;
// otherwise it goes to the buffer if there is room; otherwise the sender waits. A receive
// takes from a waiting sender (unbuffered: its element; buffered: the buffer head, and the
// sender's element goes to the tail), else from the buffer, else waits. close wakes every
// waiter: receivers get (0, ok=false), senders get ChanResult::Closed. Sending on a closed
// channel returns ChanResult::Closed (an error status for the caller, never an abort);
// receiving from a closed, drained channel yields 0 and ok=false.
//
// GC hook. hchan::forEachWord visits every element word the channel holds (buffer and the
// elements carried by waiting senders' sudogs), under the lock, for the collector's scan.
//
// Invariants: qcount <= dataqsiz; if qcount > 0 the recvq is empty; if qcount < dataqsiz
// the sendq is empty (for unbuffered: not both queues non-empty); a closed channel has an
// empty sendq and recvq once close returns.
#pragma once

#include <cstdint>
#include <mutex>

#include "runtime/g.h"

namespace spindle::runtime {

struct waitq {
  sudog* first = nullptr;
  sudog* last = nullptr;

  void enqueue(sudog* sg);
  // Removes and returns the first sudog whose G may be woken (a select sudog whose G was
  // already won by another case is skipped and dropped).
  sudog* dequeue();
  void remove(sudog* sg);
  bool empty() const { return first == nullptr; }
};

struct hchan {
  std::mutex lock;
  std::uint32_t dataqsiz = 0;
  std::uint32_t qcount = 0;
  std::uint32_t sendx = 0;
  std::uint32_t recvx = 0;
  bool closed = false;
  std::uint64_t* buf = nullptr;
  waitq recvq;
  waitq sendq;

  // Collector hook: fn(std::uint64_t& word) for every element held.
  template <typename F>
  void forEachWord(F&& fn) {
    std::lock_guard<std::mutex> lk(lock);
    for (std::uint32_t i = 0; i < qcount; i++) fn(buf[(recvx + i) % dataqsiz]);
    for (sudog* sg = sendq.first; sg != nullptr; sg = sg->next) fn(sg->elem);
  }
};

// The buffer is calloc'd (untouched pages cost nothing until used); a buffer that
// cannot be had throws OutOfMemory (oom.h).
hchan* makechan(std::uint32_t size);
void freechan(hchan* c);
// Frees the buffer alone (a channel whose waiters are abandoned: orphanChan in vm/).
void freechanBuffer(hchan* c);

enum class ChanResult : std::uint8_t {
  Ok,          // done
  Closed,      // send: the channel is (or was closed while waiting): error
  WouldBlock,  // non-blocking variant only
  Park,        // blocking variant: the body must return the park step now
};

// Blocking send/recv from a G body. On Park, return chanParkStep(...) from the body and
// call the matching *Resume when the G runs again.
ChanResult chansend(hchan* c, std::uint64_t elem, G* g);
ChanResult chanrecv(hchan* c, G* g, std::uint64_t* elem, bool* ok);
ChanResult chansendResume(G* g);
void chanrecvResume(G* g, std::uint64_t* elem, bool* ok);
inline Step chanSendParkStep(hchan* c) { return Step::park(WaitReason::ChanSend, c); }
inline Step chanRecvParkStep(hchan* c) { return Step::park(WaitReason::ChanRecv, c); }

// Non-blocking variants, usable from a G body or any thread (Ok, Closed or WouldBlock).
ChanResult trysend(hchan* c, std::uint64_t elem);
ChanResult tryrecv(hchan* c, std::uint64_t* elem, bool* ok);

// Closes c; returns false if it was already closed (an error for the caller). Wakes every
// waiter. Usable from a G body or any thread.
bool closechan(hchan* c);

// Cancellable parks: wakes every G waiting on c (plain send/recv or a select case) for
// which cancel(g, arg) is true, as close wakes a waiter (success = false: a receive sees
// ok = false, a send ChanResult::Closed, a select that case), without closing c. A select
// G whose selectDone another waker already won is left alone. cancel runs under c->lock
// with g fully parked (its body stable); it must not take c->lock. Returns the number
// woken. Usable from any thread.
int cancelWaiters(hchan* c, bool (*cancel)(G* g, void* arg), void* arg);

// Internal, shared with select.cc: one step with c->lock held; true if it completed, with
// *wake the G to ready after unlocking (or nullptr).
bool chansendLocked(hchan* c, std::uint64_t elem, G** wake);
bool chanrecvLocked(hchan* c, std::uint64_t* elem, G** wake);
void readyG(G* g);

}  // namespace spindle::runtime
