// chan.cc: channel operations (see chan.h for the design and invariants).
#include "runtime/chan.h"

#include <cstdlib>

#include "runtime/oom.h"
#include "runtime/proc.h"
#include "runtime/throw.h"

namespace spindle::runtime {

void waitq::enqueue(sudog* sg) {
  sg->next = nullptr;
  sg->prev = last;
  if (last != nullptr) {
    last->next = sg;
  } else {
    first = sg;
  }
  last = sg;
}

void waitq::remove(sudog* sg) {
  if (sg->prev != nullptr) {
    sg->prev->next = sg->next;
  } else if (first == sg) {
    first = sg->next;
  } else {
    return;  // not queued (already dequeued)
  }
  if (sg->next != nullptr) {
    sg->next->prev = sg->prev;
  } else {
    last = sg->prev;
  }
  sg->next = sg->prev = nullptr;
}

sudog* waitq::dequeue() {
  for (;;) {
    sudog* sg = first;
    if (sg == nullptr) return nullptr;
    first = sg->next;
    if (first != nullptr) {
      first->prev = nullptr;
    } else {
      last = nullptr;
    }
    sg->next = sg->prev = nullptr;
    // A select G waits on several channels; only the first waker may complete it.
    if (sg->isSelect) {
      std::uint32_t zero = 0;
      if (!sg->g->selectDone.compare_exchange_strong(zero, 1, std::memory_order_acq_rel)) continue;
    }
    return sg;
  }
}

void readyG(G* g) { g->sched->ready(g); }

hchan* makechan(std::uint32_t size) {
  // calloc: a large buffer comes from mmap as untouched zero pages, so a channel costs
  // only the slots it has held; one the address space cannot hold is out of memory.
  std::uint64_t* buf = nullptr;
  if (size > 0) {
    buf = static_cast<std::uint64_t*>(std::calloc(size, sizeof(std::uint64_t)));
    if (buf == nullptr) throwOutOfMemory();
  }
  hchan* c = new hchan();
  c->dataqsiz = size;
  c->buf = buf;
  return c;
}

void freechanBuffer(hchan* c) {
  std::free(c->buf);
  c->buf = nullptr;
}

void freechan(hchan* c) {
  SPINDLE_CHECK(c->recvq.empty() && c->sendq.empty(), "freechan: channel has waiters");
  freechanBuffer(c);
  delete c;
}

namespace {

void chanparkcommit(G*, void* arg) { static_cast<hchan*>(arg)->lock.unlock(); }

}  // namespace

// c->lock held, c not closed. Completes a send if a receiver waits (*wake = the receiver
// to ready after unlocking) or the buffer has room. Returns false if the send must wait.
bool chansendLocked(hchan* c, std::uint64_t elem, G** wake) {
  *wake = nullptr;
  if (sudog* r = c->recvq.dequeue()) {
    r->elem = elem;
    r->success = true;
    r->g->param = r;
    *wake = r->g;
    return true;
  }
  if (c->qcount < c->dataqsiz) {
    c->buf[c->sendx] = elem;
    if (++c->sendx == c->dataqsiz) c->sendx = 0;
    c->qcount++;
    return true;
  }
  return false;
}

// c->lock held. Completes one receive from a waiting sender (*wake = the sender) or the
// buffer. Returns false if nothing is available (the caller then checks closed).
bool chanrecvLocked(hchan* c, std::uint64_t* elem, G** wake) {
  *wake = nullptr;
  if (sudog* s = c->sendq.dequeue()) {
    if (c->dataqsiz == 0) {
      *elem = s->elem;
    } else {
      // The buffer is full: take its head, put the sender's element at its tail.
      *elem = c->buf[c->recvx];
      c->buf[c->recvx] = s->elem;
      if (++c->recvx == c->dataqsiz) c->recvx = 0;
      c->sendx = c->recvx;
    }
    s->success = true;
    s->g->param = s;
    *wake = s->g;
    return true;
  }
  if (c->qcount == 0) return false;
  *elem = c->buf[c->recvx];
  c->buf[c->recvx] = 0;
  if (++c->recvx == c->dataqsiz) c->recvx = 0;
  c->qcount--;
  return true;
}

namespace {

// Queues g's sudog (carrying elem, for a sender) on one of c's wait queues and asks the
// scheduler to park g. c->lock is held; chanparkcommit unlocks it once g is Waiting.
ChanResult parkOn(hchan* c, G* g, waitq& q, std::uint64_t elem) {
  sudog* sg = &g->sud;
  *sg = sudog{};
  sg->g = g;
  sg->c = c;
  sg->elem = elem;
  g->param = nullptr;
  q.enqueue(sg);
  g->parkCommit = chanparkcommit;
  g->parkArg = c;
  return ChanResult::Park;
}

ChanResult send(hchan* c, std::uint64_t elem, G* g, bool block) {
  c->lock.lock();
  if (c->closed) {
    c->lock.unlock();
    return ChanResult::Closed;
  }
  G* r;
  if (chansendLocked(c, elem, &r)) {
    c->lock.unlock();
    if (r != nullptr) readyG(r);
    return ChanResult::Ok;
  }
  if (!block) {
    c->lock.unlock();
    return ChanResult::WouldBlock;
  }
  return parkOn(c, g, c->sendq, elem);
}

ChanResult recv(hchan* c, G* g, std::uint64_t* elem, bool* ok, bool block) {
  c->lock.lock();
  G* s;
  if (chanrecvLocked(c, elem, &s)) {
    c->lock.unlock();
    *ok = true;
    if (s != nullptr) readyG(s);
    return ChanResult::Ok;
  }
  if (c->closed) {
    c->lock.unlock();
    *elem = 0;
    *ok = false;
    return ChanResult::Ok;
  }
  if (!block) {
    c->lock.unlock();
    return ChanResult::WouldBlock;
  }
  return parkOn(c, g, c->recvq, 0);
}

}  // namespace

ChanResult chansend(hchan* c, std::uint64_t elem, G* g) { return send(c, elem, g, true); }

ChanResult chanrecv(hchan* c, G* g, std::uint64_t* elem, bool* ok) {
  return recv(c, g, elem, ok, true);
}

ChanResult trysend(hchan* c, std::uint64_t elem) { return send(c, elem, nullptr, false); }

ChanResult tryrecv(hchan* c, std::uint64_t* elem, bool* ok) {
  return recv(c, nullptr, elem, ok, false);
}

ChanResult chansendResume(G* g) {
  SPINDLE_DCHECK(g->param == &g->sud, "chansendResume: G {} woken without its sudog", g->goid);
  return g->sud.success ? ChanResult::Ok : ChanResult::Closed;
}

void chanrecvResume(G* g, std::uint64_t* elem, bool* ok) {
  SPINDLE_DCHECK(g->param == &g->sud, "chanrecvResume: G {} woken without its sudog", g->goid);
  *ok = g->sud.success;
  *elem = g->sud.success ? g->sud.elem : 0;
}

bool closechan(hchan* c) {
  G* wake = nullptr;  // linked through schedlink (free while Waiting)
  {
    std::lock_guard<std::mutex> lk(c->lock);
    if (c->closed) return false;
    c->closed = true;
    for (waitq* q : {&c->recvq, &c->sendq}) {
      while (sudog* sg = q->dequeue()) {
        sg->elem = 0;
        sg->success = false;
        sg->g->param = sg;
        sg->g->schedlink = wake;
        wake = sg->g;
      }
    }
  }
  while (wake != nullptr) {
    G* g = wake;
    wake = g->schedlink;
    g->schedlink = nullptr;
    readyG(g);
  }
  return true;
}

int cancelWaiters(hchan* c, bool (*cancel)(G* g, void* arg), void* arg) {
  G* wake = nullptr;  // linked through schedlink (free while Waiting)
  int n = 0;
  {
    std::lock_guard<std::mutex> lk(c->lock);
    for (waitq* q : {&c->recvq, &c->sendq}) {
      for (sudog* sg = q->first; sg != nullptr;) {
        sudog* next = sg->next;
        if (cancel(sg->g, arg)) {
          std::uint32_t zero = 0;
          if (!sg->isSelect ||
              sg->g->selectDone.compare_exchange_strong(zero, 1, std::memory_order_acq_rel)) {
            q->remove(sg);
            sg->elem = 0;
            sg->success = false;
            sg->g->param = sg;
            sg->g->schedlink = wake;
            wake = sg->g;
            ++n;
          }
        }
        sg = next;
      }
    }
  }
  while (wake != nullptr) {
    G* g = wake;
    wake = g->schedlink;
    g->schedlink = nullptr;
    readyG(g);
  }
  return n;
}

}  // namespace spindle::runtime
