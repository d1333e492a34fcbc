// select.cc: select (see select.h for the design and invariants).
#include "runtime/select.h"

#include <algorithm>

#include "runtime/m.h"
#include "runtime/throw.h"

namespace spindle::runtime {

void Select::lockAll() {
  for (hchan* c : lockorder_) c->lock.lock();
}

void Select::unlockAll() {
  for (auto it = lockorder_.rbegin(); it != lockorder_.rend(); ++it) (*it)->lock.unlock();
}

void Select::parkCommit(G*, void* arg) {
  // Once the first channel is unlocked a waker may ready the G, which may finish the
  // select and free this Select: copy the channel list first (Go's selparkcommit has the
  // same care). The G's resume() relocks every channel, so none is freed before we are
  // done with it.
  Select* sel = static_cast<Select*>(arg);
  std::vector<hchan*> chans(sel->lockorder_.rbegin(), sel->lockorder_.rend());
  for (hchan* c : chans) c->lock.unlock();
}

int Select::begin(G* g, const SelectCase* cases, int n, bool hasDefault) {
  SPINDLE_CHECK(n >= 0 && n < 65536, "select: n={} cases", n);
  cases_ = cases;
  n_ = n;
  recvValue = 0;
  recvOk = false;
  sendClosed = false;
  lockorder_.clear();
  for (int i = 0; i < n; i++) lockorder_.push_back(cases[i].c);
  std::sort(lockorder_.begin(), lockorder_.end());
  lockorder_.erase(std::unique(lockorder_.begin(), lockorder_.end()), lockorder_.end());
  pollorder_.resize(n);
  for (int i = 0; i < n; i++) pollorder_[i] = static_cast<std::uint16_t>(i);
  // Fisher-Yates with the M's random source (or a G-derived one off an M). A seeded
  // Sched seeds its Ms' sources from its seed (proc.h), so the order is reproducible.
  M* m = getm();
  std::uint64_t seed = g->goid * 0x9E3779B97F4A7C15ull + 1;
  for (int i = n - 1; i > 0; i--) {
    std::uint32_t r;
    if (m != nullptr) {
      r = m->rand();
    } else {
      seed ^= seed << 13;
      seed ^= seed >> 7;
      seed ^= seed << 17;
      r = static_cast<std::uint32_t>(seed);
    }
    std::swap(pollorder_[i], pollorder_[r % static_cast<std::uint32_t>(i + 1)]);
  }

  lockAll();
  for (std::uint16_t i : pollorder_) {
    const SelectCase& sc = cases[i];
    G* wake = nullptr;
    if (sc.isSend) {
      if (sc.c->closed) {
        unlockAll();
        sendClosed = true;
        return i;
      }
      if (chansendLocked(sc.c, sc.elem, &wake)) {
        unlockAll();
        if (wake != nullptr) readyG(wake);
        return i;
      }
    } else {
      if (chanrecvLocked(sc.c, &recvValue, &wake)) {
        unlockAll();
        recvOk = true;
        if (wake != nullptr) readyG(wake);
        return i;
      }
      if (sc.c->closed) {
        unlockAll();
        recvValue = 0;
        recvOk = false;
        return i;
      }
    }
  }
  if (hasDefault) {
    unlockAll();
    return kDefault;
  }
  // Block on every case.
  g->param = nullptr;
  g->selectDone.store(0, std::memory_order_release);
  sudogs_.assign(n, sudog{});
  for (int i = 0; i < n; i++) {
    sudog* sg = &sudogs_[i];
    sg->g = g;
    sg->c = cases[i].c;
    sg->isSelect = true;
    sg->caseIndex = static_cast<std::uint16_t>(i);
    if (cases[i].isSend) {
      sg->elem = cases[i].elem;
      cases[i].c->sendq.enqueue(sg);
    } else {
      cases[i].c->recvq.enqueue(sg);
    }
  }
  SPINDLE_CHECK(g->parkCommit == nullptr, "select: G {} already has a park commit", g->goid);
  g->parkCommit = &Select::parkCommit;
  g->parkArg = this;
  return kPark;
}

int Select::resume(G* g) {
  sudog* winner = g->param;
  SPINDLE_CHECK(winner != nullptr && winner >= sudogs_.data() && winner < sudogs_.data() + n_,
                "select resume: G {} woken without one of its sudogs", g->goid);
  lockAll();
  for (int i = 0; i < n_; i++) {
    sudog* sg = &sudogs_[i];
    if (sg == winner) continue;
    if (cases_[i].isSend) {
      cases_[i].c->sendq.remove(sg);
    } else {
      cases_[i].c->recvq.remove(sg);
    }
  }
  unlockAll();
  g->param = nullptr;
  int i = winner->caseIndex;
  if (cases_[i].isSend) {
    sendClosed = !winner->success;
  } else {
    recvOk = winner->success;
    recvValue = winner->success ? winner->elem : 0;
  }
  return i;
}

}  // namespace spindle::runtime
