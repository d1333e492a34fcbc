// mgcsweep_test.cc: the sweepgen protocol under racing sweepers.
#include "runtime/mgcsweep.h"

#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "runtime/heap_testing.h"
#include "runtime/malloc.h"
#include "runtime/testing/child.h"

namespace spindle::runtime {
namespace {
using testing::TestP;

MSpan* spanOf(void* obj) {
  ObjectRef r;
  REQUIRE(mheap().findObject(obj, &r));
  return r.span;
}
}  // namespace

// ensureSwept (an allocation or a pin needing one span swept) races sweepone (the
// background sweeper) for every span of a cycle. ensureSwept's claim may fail because the
// span was claimed and even finished meanwhile: it must then look again, not take the
// span's new state (swept, sg) for a broken one.
TEST_CASE("ensureSwept and sweepone race for every span; each span is swept once") {
  TestP p(0);
  MHeap& h = mheap();
  constexpr int kRounds = 20 * testing::kScale;
  constexpr int kObjects = 4096;  // 80-byte objects: about 50 per 8 KiB span
  for (int round = 0; round < kRounds; ++round) {
    std::vector<MSpan*> spans;
    for (int i = 0; i < kObjects; ++i) {
      MSpan* s = spanOf(mallocgc(80, nullptr));
      if (spans.empty() || spans.back() != s) spans.push_back(s);
    }
    p.get()->mcache->releaseAll();
    startSweepCycle(h);  // nothing is marked: every span's objects are freed
    std::atomic<bool> go{false};
    std::thread sweeper([&] {
      while (!go.load()) std::this_thread::yield();
      while (sweepone(h)) {
      }
    });
    go = true;
    for (auto it = spans.rbegin(); it != spans.rend(); ++it) ensureSwept(h, *it);
    sweeper.join();
    finishSweep(h);
    const std::uint32_t sg = h.sweepgenLoad();
    for (MSpan* s : spans) {
      const std::uint32_t state = s->sweepgen.load(std::memory_order_acquire);
      // Swept this cycle (sg), or freed back to the page heap by its sweep.
      CHECK((state == sg || s->state() != SpanState::InUse));
    }
  }
}

// Two Ps each cache a span from before the sweep began (sg + 1) and each needs the other's
// swept (a string intern or a setFinalizer on an object the other P allocated, in the
// window after mark termination restarts the world and before forEachP has flushed every
// cache). Neither is at a safepoint while it waits, so neither would flush for forEachP:
// ensureSwept flushes its own P's stale cache before it waits, so the other's wait ends.
// In a forked child with an alarm: without that flush both spin for good.
TEST_CASE("two Ps waiting in ensureSwept for each other's cached span both return") {
  constexpr unsigned kDeadlockSeconds = 30;
  auto [died, err] = testing::runChild([] {
    alarm(kDeadlockSeconds);
    MHeap& h = mheap();
    std::atomic<MSpan*> cached[2] = {nullptr, nullptr};
    std::atomic<int> ready{0}, done{0};
    std::atomic<bool> go{false}, finish{false};
    auto body = [&](int i) {
      TestP p(i);
      cached[i].store(spanOf(mallocgc(80, nullptr)));  // now in p's MCache
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      ensureSwept(h, cached[1 - i].load());
      done.fetch_add(1);
      // Safepoints until both returned: forEachP's flush (prepareForSweep) would run here.
      while (!finish.load()) {
        if (p.get()->mcache->flushGen.load() != h.sweepgenLoad()) p.get()->mcache->releaseAll();
        std::this_thread::yield();
      }
    };
    std::thread a(body, 0), b(body, 1);
    while (ready.load() < 2) std::this_thread::yield();
    startSweepCycle(h);  // as mark termination does, without flushing the caches
    const std::uint32_t sg = h.sweepgenLoad();
    if (cached[0].load()->sweepgen.load() != sg + 1 || cached[1].load()->sweepgen.load() != sg + 1) {
      std::fprintf(stderr, "setup: the spans are not cached from before the sweep\n");
      std::abort();
    }
    go.store(true);
    while (done.load() < 2) std::this_thread::yield();
    finish.store(true);
    a.join();
    b.join();
    finishSweep(h);
  });
  INFO("child stderr: " << err);
  CHECK_FALSE(died);
}

#if SPINDLE_DCHECKS_ON
// The race above, forced: another sweeper claims and finishes the span between
// ensureSwept's load of its sweepgen (sg - 2) and its claim, whose CAS then fails seeing
// sg (swept). ensureSwept must return (the span is swept), not fail its invariant check.
TEST_CASE("ensureSwept: the span is swept by another between its load and its claim") {
  TestP p(0);
  MHeap& h = mheap();
  MSpan* s = spanOf(mallocgc(80, nullptr));
  mallocgc(80, nullptr);  // a second object keeps nothing alive, but the span is shared
  p.get()->mcache->releaseAll();
  startSweepCycle(h);
  REQUIRE(s->sweepgen.load() == h.sweepgenLoad() - 2);
  setEnsureSweptTestHook([](MSpan* sp) {
    std::thread other([sp] { ensureSwept(mheap(), sp); });  // claims, sweeps: sg
    other.join();
  });
  ensureSwept(h, s);
  CHECK((s->sweepgen.load() == h.sweepgenLoad() || s->state() != SpanState::InUse));
  finishSweep(h);
}
#endif

}  // namespace spindle::runtime
