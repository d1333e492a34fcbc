// mgcscavenge.h: the scavenger: returns free heap pages to the OS (Go's mgcscavenge.go).
//
// Design.
//   - A page is "scavenged" when it is free in the page allocator and its memory was
//     released with madvise(MADV_DONTNEED) (PageAlloc's scavenged bitmap). Such pages are
//     no longer resident; they read back as zero when touched again. Allocating a page
//     clears its scavenged bit (it is about to be used).
//   - MHeap::scavenge(n) releases up to n pages: under the heap lock it takes a run of
//     free unscavenged pages out of the free pool (so nobody allocates them meanwhile),
//     drops the lock for the madvise, then frees the run back as scavenged (Go's
//     scavengeOne). The heap lock is never held across the system call.
//   - The background scavenger (one thread per process, "spindle-scvg", armed by
//     startBackgroundScavenger and started by the first scavengerWake after it) keeps
//     the heap's retained memory (heapSys minus released) near a goal: by default 10%
//     over the bytes in use plus kMinRetained, or the goal the collector sets after each
//     cycle (setScavengeGoal: Go retains heapGoal + 10%). It works in chunks of
//     kScavengeChunkPages and sleeps after each so that it uses about kScavengePercent of
//     one CPU (sleep = work time * (100 - pct) / pct). When there is nothing to release
//     it waits for scavengerWake() or a timeout.
//   - scavengeAll(h) releases every free page synchronously (tests, hosts after a spike).
//
// Invariants: scavenged pages are free (PageAlloc::checkInvariants); scavenging never
// releases a page that is in use (the run is taken out of the free pool first).
//
// Integration with the collector core: gcAttach calls startBackgroundScavenger(mheap())
// (idempotent), gcDetach of the last world may stop it; after each cycle's sweep the
// collector calls setScavengeGoal(heapGoal * 11 / 10) and scavengerWake().
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "runtime/mheap.h"

namespace spindle::runtime {

inline constexpr std::size_t kScavengeChunkPages = 64;  // 512 KiB per madvise
inline constexpr int kScavengePercent = 4;              // of one CPU
inline constexpr std::uint64_t kMinRetained = 4u << 20;

struct ScavengerStats {
  std::uint64_t bytesReleased = 0;  // cumulative
  std::uint64_t heapReleased = 0;   // free bytes currently released to the OS
  std::uint64_t cycles = 0;         // background scavenger chunks done
};

// Releases every free, unscavenged page of h; returns the bytes released.
std::uint64_t scavengeAll(MHeap& h);
ScavengerStats scavengerStats(MHeap& h);

void startBackgroundScavenger(MHeap& h);
void stopBackgroundScavenger();
// Retained-bytes goal (heap in use + free unreleased); 0 = the default rule above.
void setScavengeGoal(std::uint64_t bytes);
void scavengerWake();

// Resident set size of this process in bytes (/proc/self/statm).
std::uint64_t residentBytes();

}  // namespace spindle::runtime
