// pinner_gc_test.cc: the Pinner through the real collector (gcAttach/gcCollect), end to
// end: an inner pinner that became unreachable while holding pins is found by a cycle,
// queued for its finalizer (set once at allocation), and the finalizer, run on the
// finalizer G, reports the leak on stderr and unpins. Its own binary, apart from
// pinner_test's stand-in cycles, so nothing but the real collector finalizes here.
//
// It fails if the finalizer is not set (no message, nothing unpinned), if the finalizer
// does not unpin (the kept object stays pinned), or if the inner pinner's refs do not
// keep the pinned objects alive until the finalizer ran.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>

#include "runtime/gc.h"
#include "runtime/malloc.h"
#include "runtime/mheap.h"
#include "runtime/pinner.h"
#include "runtime/proc.h"
#include "runtime/testing/fnbody.h"

namespace spindle::runtime {
namespace {

using testing::fn;

// A heap object holding a Traced Pinner, as the VM's script-level Pinner does: when the
// holder becomes unreachable, so does its inner pinner.
struct Holder {
  ObjectHeader header;
  Pinner pinner;
};
void traceHolder(void* o, VisitFn visit, void* ctx) { static_cast<Holder*>(o)->pinner.trace(visit, ctx); }
const TypeInfo kHolderType{"test pinner holder", sizeof(Holder), traceHolder};

// Objects (scan objects with a payload) and the test's one root slot.
struct Box {
  ObjectHeader header;
  std::uint64_t payload[5];
};
const TypeInfo kBoxType{"test box", sizeof(Box), [](void*, VisitFn, void*) {}};
Box* newBox(std::uint64_t v) {
  auto* b = static_cast<Box*>(mallocgc(sizeof(Box), &kBoxType));
  b->header.type = &kBoxType;
  for (auto& w : b->payload) w = v;
  return b;
}
void* gKeep = nullptr;

// Is the object at addr still allocated (its slot not freed by a sweep)?
bool allocated(std::uintptr_t addr) {
  ObjectRef ref;
  return mheap().findObject(reinterpret_cast<void*>(addr), &ref) && ref.base == addr &&
         ref.span->isAllocatedBit(ref.index);
}

// Redirects fd 2 to a file for its lifetime; text() reads what was written.
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    char name[] = "/tmp/pinner_gc_test_XXXXXX";
    fd_ = mkstemp(name);
    REQUIRE(fd_ >= 0);
    unlink(name);
    saved_ = dup(2);
    dup2(fd_, 2);
  }
  ~StderrCapture() { restore(); }
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    dup2(saved_, 2);
    close(saved_);
    saved_ = -1;
  }
  std::string text() {
    restore();
    std::string out;
    char buf[512];
    lseek(fd_, 0, SEEK_SET);
    for (ssize_t n; (n = read(fd_, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    return out;
  }

 private:
  int fd_ = -1, saved_ = -1;
};

TEST_CASE("a dropped Pinner's inner pinner is finalized by the collector: leak reported, objects unpinned") {
  Sched sched(2);
  const int rootId = registerRoots([](void*, VisitFn visit, void* ctx) { visit(ctx, &gKeep); }, nullptr);
  gcAttach(&sched);
  setGCPercent(-1);  // only the explicit cycles below

  const std::uint64_t leaks0 = pinnerStats().leaks;
  std::uintptr_t kept = 0;   // pinned by the lost Pinner, also reachable from gKeep
  std::uintptr_t lone = 0;   // pinned by the lost Pinner, referenced by nothing else
  bool pinnedBefore = false, aliveAfterCycle = false, unpinnedAfterFinalizer = false;
  bool loneFreedLater = false;
  int waits = 0;
  StderrCapture err;
  RunStatus st = sched.runMain(fn([&, pc = 0](G*) mutable -> Step {
    switch (pc++) {
      case 0: {
        // A Pinner inside a heap object nobody references after this step, pinning two
        // objects and never unpinned. No pointer to it survives in any root or stack.
        Box* k = newBox(7);
        writePointer(&gKeep, k);
        Box* l = newBox(9);
        auto* h = new (mallocgc(sizeof(Holder), &kHolderType))
            Holder{{&kHolderType}, Pinner(Pinner::Holding::Traced)};
        REQUIRE(h->pinner.pin(k) == PinError::Ok);
        REQUIRE(h->pinner.pin(l) == PinError::Ok);
        kept = reinterpret_cast<std::uintptr_t>(k);
        lone = reinterpret_cast<std::uintptr_t>(l);
        pinnedBefore = Pinner::isPinned(k) && Pinner::isPinned(l);
        return Step::yield();  // drop every local: the G's stack reports nothing
      }
      case 1:
        // The holder is garbage; its inner pinner is unreachable but has a finalizer:
        // the cycle resurrects it (and what it pins) and queues the finalizer.
        gcCollect();
        aliveAfterCycle = allocated(lone) &&
                          reinterpret_cast<Box*>(lone)->payload[4] == 9;
        return Step::yield();
      default:
        // The finalizer runs on the finalizer G after the cycle: wait for it (bounded).
        if (pinnerStats().leaks == leaks0 && ++waits < 20000) {
          if (waits % 100 == 0) gcCollect();  // wakes the finalizer G again
          return Step::yield();
        }
        unpinnedAfterFinalizer = !Pinner::isPinned(reinterpret_cast<void*>(kept));
        // Nothing holds `lone` any more: the next cycles free it.
        gcCollect();
        gcCollect();
        loneFreedLater = !allocated(lone);
        return Step::exit();
    }
  }));
  const std::string text = err.text();
  REQUIRE(st == RunStatus::Ok);
  CHECK(pinnedBefore);
  CHECK(aliveAfterCycle);  // the finalizer's pinner keeps its refs alive until it ran
  CHECK(pinnerStats().leaks == leaks0 + 1);
  CHECK(text.find("pinner: found leaking pinned pointer; forgot to call unpin()?\n") != std::string::npos);
  CHECK(unpinnedAfterFinalizer);
  CHECK(allocated(kept));  // still reachable from gKeep, now unpinned
  CHECK_FALSE(Pinner::isPinned(reinterpret_cast<void*>(kept)));
  CHECK(loneFreedLater);
  CHECK(gcStats().forcedCycles >= 3);  // real cycles ran (case 1 and the last two)

  gKeep = nullptr;
  gcDetach(&sched);
  unregisterRoots(rootId);
  setGCPercent(100);
}

}  // namespace
}  // namespace spindle::runtime
