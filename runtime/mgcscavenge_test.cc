// The scavenger: the page allocator's scavenged bitmap, releasing a freed spike to the
// OS (RSS falls), reusing released pages (they read as zero), and the background
// scavenger releasing on its own.
#include "runtime/mgcscavenge.h"

#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "runtime/heap_testing.h"
#include "runtime/malloc.h"

using namespace spindle::runtime;
using testing::bulkReleaseAll;
using testing::TestP;

namespace {
constexpr std::size_t kSpikeObjects = 64;
constexpr std::size_t kObjectBytes = 1 << 20;  // 64 MiB spike

std::vector<char*> spike() {
  std::vector<char*> objs;
  for (std::size_t i = 0; i < kSpikeObjects; i++) {
    auto* v = static_cast<char*>(mallocgc(kObjectBytes, nullptr));
    std::memset(v, 0x5a, kObjectBytes);  // make it resident
    objs.push_back(v);
  }
  return objs;
}

bool allScavenged(const std::vector<char*>& objs) {
  for (char* v : objs) {
    const std::size_t first = mheap().arenas().pageIndex(reinterpret_cast<std::uintptr_t>(v));
    for (std::size_t pg = first; pg < first + kObjectBytes / kPageSize; pg++) {
      if (!mheap().isScavenged(pg)) return false;
    }
  }
  return true;
}
}  // namespace

TEST_CASE("PageAlloc: scavenged pages are free; allocation clears them") {
  PageAlloc pa(4096);
  pa.grow(0, 1024);
  const std::size_t a = pa.alloc(100);
  REQUIRE(a == 0);
  std::size_t n = 0;
  std::size_t released = 0;
  for (;;) {
    const std::size_t first = pa.findScavengeCandidate(64, &n);
    if (first == PageAlloc::kNotFound) break;
    CHECK(n <= 64);
    CHECK(pa.isFree(first));
    pa.allocRange(first, n);
    CHECK_FALSE(pa.isFree(first));
    pa.checkInvariants();
    pa.freeScavenged(first, n);
    released += n;
  }
  CHECK(released == 1024 - 100);
  CHECK(pa.scavengedPages() == 1024 - 100);
  CHECK_FALSE(pa.isScavenged(0));
  CHECK(pa.isScavenged(100));
  pa.checkInvariants();
  // Freed pages are not scavenged; allocated scavenged pages lose the bit.
  pa.free(0, 100);
  CHECK_FALSE(pa.isScavenged(50));
  const std::size_t b = pa.alloc(300);  // 0..299: 100 unscavenged + 200 scavenged
  CHECK(b == 0);
  CHECK(pa.scavengedPages() == 1024 - 300);
  CHECK_FALSE(pa.isScavenged(250));
  pa.checkInvariants();
  pa.free(b, 300);
  pa.checkInvariants();
}

TEST_CASE("scavengeAll: a freed spike goes back to the OS and RSS falls") {
  TestP p(300);
  scavengeAll(mheap());  // start from a released heap
  const std::uint64_t releasedBefore = scavengerStats(mheap()).bytesReleased;
  std::vector<char*> objs = spike();
  const std::uint64_t rssSpike = residentBytes();
  REQUIRE(rssSpike > 0);
  bulkReleaseAll(p.get());  // everything unreachable: the spike's spans are freed
  CHECK(residentBytes() + kSpikeObjects * kObjectBytes / 4 > rssSpike);  // freeing alone keeps it
  const std::uint64_t released = scavengeAll(mheap());
  CHECK(released >= kSpikeObjects * kObjectBytes);
  CHECK(allScavenged(objs));
  const std::uint64_t rssAfter = residentBytes();
  INFO("RSS with spike " << rssSpike / 1024 << " KiB, after scavenging " << rssAfter / 1024 << " KiB");
  CHECK(rssAfter + kSpikeObjects * kObjectBytes / 2 <= rssSpike);
  const ScavengerStats st = scavengerStats(mheap());
  CHECK(st.bytesReleased - releasedBefore >= kSpikeObjects * kObjectBytes);
  CHECK(st.heapReleased >= kSpikeObjects * kObjectBytes);
  mheap().checkPageAlloc();

  // Reuse: the released pages come back, zeroed, and are no longer counted released.
  std::vector<char*> again;
  for (std::size_t i = 0; i < kSpikeObjects; i++) {
    auto* v = static_cast<char*>(mallocgc(kObjectBytes, nullptr));
    bool zero = true;
    for (std::size_t off = 0; off < kObjectBytes; off += 512) zero = zero && v[off] == 0;
    CHECK(zero);
    v[0] = 1;
    again.push_back(v);
  }
  CHECK(scavengerStats(mheap()).heapReleased + kSpikeObjects * kObjectBytes <= st.heapReleased);
  mheap().checkPageAlloc();
  bulkReleaseAll(p.get());
}

TEST_CASE("background scavenger: releases a freed spike on its own") {
  TestP p(301);
  std::vector<char*> objs = spike();
  bulkReleaseAll(p.get());
  const std::uint64_t before = scavengerStats(mheap()).bytesReleased;
  startBackgroundScavenger(mheap());
  scavengerWake();
  bool done = false;
  for (int i = 0; i < 3000 && !done; i++) {
    done = scavengerStats(mheap()).bytesReleased - before >= kSpikeObjects * kObjectBytes / 2;
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Allocate and free while it runs: it never releases a page in use (the spike we
  // write must keep its bytes) and the page allocator stays consistent.
  for (int round = 0; round < 3; round++) {
    std::vector<char*> more = spike();
    for (char* v : more) CHECK(v[kObjectBytes - 1] == 0x5a);
    bulkReleaseAll(p.get());
  }
  stopBackgroundScavenger();
  CHECK(done);
  CHECK(scavengerStats(mheap()).cycles > 0);
  mheap().checkPageAlloc();
}
