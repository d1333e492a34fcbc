// pinnerbits.cc: pin bits and pin counters of spans (see pinnerbits.h).
#include "runtime/pinnerbits.h"

#include <mutex>

#include "runtime/fixalloc.h"
#include "runtime/gcbits.h"
#include "runtime/pheap.h"
#include "runtime/throw.h"

namespace spindle::runtime {

namespace {
struct CounterAlloc {
  std::mutex lock;
  FixAlloc<SpecialPinCounter> alloc;  // under lock
  std::atomic<std::uint64_t> allocated{0};
};
CounterAlloc& counters() {
  static CounterAlloc* c = new CounterAlloc;
  return *c;
}
}  // namespace

std::uint8_t* newPinnerBits(const MSpan* s) {
  // newMarkBits(n) hands out gcBitsBytes(n) zeroed bytes: 2 bits per object.
  return gcBitsArenas().newMarkBits(2 * std::size_t{s->nelems}, currentBitsCache());
}

SpecialPinCounter* findPinCounter(MSpan* s, std::uint32_t offset) {
  for (Special* sp = s->specials; sp != nullptr && sp->offset <= offset; sp = sp->next) {
    if (sp->offset == offset && sp->kind == kSpecialPinCounter) {
      return static_cast<SpecialPinCounter*>(sp);
    }
  }
  return nullptr;
}

SpecialPinCounter* addPinCounter(MSpan* s, std::uint32_t offset) {
  SpecialPinCounter* c;
  {
    CounterAlloc& ca = counters();
    std::lock_guard<std::mutex> g(ca.lock);
    c = ca.alloc.alloc();
  }
  counters().allocated.fetch_add(1, std::memory_order_relaxed);
  c->next = nullptr;
  c->offset = offset;
  c->kind = kSpecialPinCounter;
  c->count = 0;
  // Keep the list sorted by (offset, kind).
  Special** pp = &s->specials;
  while (*pp != nullptr &&
         ((*pp)->offset < offset || ((*pp)->offset == offset && (*pp)->kind < kSpecialPinCounter))) {
    pp = &(*pp)->next;
  }
  SPINDLE_CHECK(*pp == nullptr || (*pp)->offset != offset || (*pp)->kind != kSpecialPinCounter,
                "addPinCounter: span {:#x} offset {} already has a pin counter", s->base(), offset);
  c->next = *pp;
  *pp = c;
  return c;
}

namespace {
void freeCounter(SpecialPinCounter* c) {
  CounterAlloc& ca = counters();
  std::lock_guard<std::mutex> g(ca.lock);
  ca.alloc.free(c);
}
}  // namespace

void removePinCounter(MSpan* s, SpecialPinCounter* c) {
  for (Special** pp = &s->specials; *pp != nullptr; pp = &(*pp)->next) {
    if (*pp == c) {
      *pp = c->next;
      freeCounter(c);
      return;
    }
  }
  SPINDLE_FATAL("removePinCounter: counter at offset {} not in span {:#x}", c->offset, s->base());
}

std::uint64_t pinCountersAllocated() {
  return counters().allocated.load(std::memory_order_relaxed);
}

void sweepPinnerBits(MSpan* s) {
  // No bits: nothing of s was ever pinned since its last sweep, so no counter either (a
  // counter needs state 11). Bits a pinner creates concurrently come from the current
  // epoch and hold only live objects, so skipping is safe, and most spans take no lock.
  if (loadPinnerBits(s) == nullptr) return;
  std::lock_guard<std::mutex> g(s->specialLock);
  for (Special** pp = &s->specials; *pp != nullptr;) {
    Special* sp = *pp;
    if (sp->kind == kSpecialPinCounter && !s->isMarked(sp->offset / s->elemsize)) {
      *pp = sp->next;
      freeCounter(static_cast<SpecialPinCounter*>(sp));
    } else {
      pp = &sp->next;
    }
  }
  std::uint8_t* old = s->pinnerBits;
  if (old == nullptr) return;
  std::uint8_t* fresh = nullptr;
  const std::size_t bytes = pinnerBitsBytes(s->nelems);
  for (std::size_t b = 0; b < bytes; ++b) {
    if (std::atomic_ref<std::uint8_t>(old[b]).load(std::memory_order_relaxed) == 0) continue;
    for (std::uint32_t i = static_cast<std::uint32_t>(b * 4); i < b * 4 + 4 && i < s->nelems; ++i) {
      const std::uint8_t st = pinState(old, i);
      if (st == 0 || !s->isMarked(i)) continue;
      if (fresh == nullptr) fresh = newPinnerBits(s);
      fresh[i / 4] = static_cast<std::uint8_t>(fresh[i / 4] | st << pinShift(i));
    }
  }
  storePinnerBits(s, fresh);
}

}  // namespace spindle::runtime
