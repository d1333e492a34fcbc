// arena.h: the heap's address space, reserved once and committed in 64 MiB arenas.
//
// Design (Go's mheap arenas, simplified to one contiguous reservation):
//   - The constructor reserves maxArenas * 64 MiB of address space with mmap
//     (PROT_NONE, MAP_NORESERVE), aligned to kArenaBytes. Nothing is usable yet.
//     The process heap asks for reservationArenas(): as Go reserves what the address
//     space allows, at most half of RLIMIT_AS when one is set (the rest is left to thread
//     stacks, malloc and the binary), so the runtime starts under `ulimit -v`. When that
//     mmap fails anyway, the reservation halves until one succeeds (at least one arena).
//   - grow() failing (reservation used up, or the OS refusing the commit) is not fatal:
//     it returns SIZE_MAX and the allocation that needed it throws OutOfMemory (oom.h).
//   - The last arena of a reservation of kReserveMinArenas or more is a reserve: grow()
//     commits it only on a thread inside a HeapReserveScope (the language layer building
//     the error that reports out of memory, so a try block can catch it even when the
//     live heap fills the rest). Once committed it serves every allocation.
//   - grow() commits the next arena(s) (mprotect read/write) under the heap lock, so the
//     heap is one run of pages [base, base + committedPages * 8 KiB) that only grows.
//     Page index i (from base) is the unit the page allocator works in.
//   - Each committed arena has a HeapArena metadata block (mmap'd, zeroed) holding the
//     page -> span map: spans[i] is the MSpan owning page i of that arena, or null.
//   - Readers find an arena lock-free: arenas_[idx] is an atomic pointer published with a
//     release store after the HeapArena is fully set up; readers load it with acquire.
//
// Invariants:
//   - arenas_[i] != null  <=>  arena i is committed (i < committedArenas).
//   - Any address outside [base, base + reserved) maps to "no arena" (foreign address).
//   - HeapArena::spans entries are written only by the owner of the span being
//     published/freed (see mheap.h), always with release stores.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "runtime/sizeclasses.h"

namespace spindle::runtime {

struct MSpan;

inline constexpr std::size_t kArenaShift = 26;
inline constexpr std::size_t kArenaBytes = std::size_t{1} << kArenaShift;  // 64 MiB
inline constexpr std::size_t kPagesPerArena = kArenaBytes / kPageSize;       // 8192

struct HeapArena {
  // Page -> span map for this arena's pages (null where no span is in use).
  std::atomic<MSpan*> spans[kPagesPerArena];
  // Pages below this offset (in pages) have been handed out before: reusing them
  // needs zeroing. Only grows (CAS-max); relaxed: it orders nothing else.
  std::atomic<std::size_t> zeroedBase{0};
};

// While one exists on a thread, grow() on that thread may commit the reserve arena.
class HeapReserveScope {
 public:
  HeapReserveScope();
  ~HeapReserveScope();
  HeapReserveScope(const HeapReserveScope&) = delete;
  HeapReserveScope& operator=(const HeapReserveScope&) = delete;

 private:
  bool prev_;
};

class ArenaSpace {
 public:
  static constexpr std::size_t kReserveMinArenas = 4;
  explicit ArenaSpace(std::size_t maxArenas);
  ~ArenaSpace();
  ArenaSpace(const ArenaSpace&) = delete;
  ArenaSpace& operator=(const ArenaSpace&) = delete;

  std::uintptr_t base() const { return base_; }
  std::size_t maxPages() const { return maxArenas_ * kPagesPerArena; }
  // Pages committed so far (monotonic). Acquire: pairs with the release in grow().
  std::size_t committedPages() const { return committedPages_.load(std::memory_order_acquire); }

  // Commits whole arenas so that at least `npages` more pages exist. Caller holds the
  // heap lock. Returns the first new page index, or SIZE_MAX when the reservation is
  // exhausted. *added receives the number of new pages.
  std::size_t grow(std::size_t npages, std::size_t* added);

  // Lock-free: the arena metadata covering addr, or null (foreign / uncommitted).
  HeapArena* arenaOf(std::uintptr_t addr) const {
    const std::uintptr_t off = addr - base_;  // wraps for addr < base: caught below
    if (off >= maxArenas_ * kArenaBytes) return nullptr;
    // Acquire: pairs with grow()'s release store; the HeapArena is fully built.
    return arenas_[off >> kArenaShift].load(std::memory_order_acquire);
  }
  // The map slot of the page holding addr; addr must be in a committed arena.
  std::atomic<MSpan*>& spanSlot(std::uintptr_t addr) const {
    const std::uintptr_t off = addr - base_;
    HeapArena* ha = arenas_[off >> kArenaShift].load(std::memory_order_acquire);
    return ha->spans[(off >> kPageShift) & (kPagesPerArena - 1)];
  }
  HeapArena* arenaAtIndex(std::size_t i) const {
    return arenas_[i].load(std::memory_order_acquire);
  }
  std::uintptr_t pageAddr(std::size_t page) const { return base_ + page * kPageSize; }
  std::size_t pageIndex(std::uintptr_t addr) const { return (addr - base_) >> kPageShift; }

 private:
  static constexpr std::size_t kMaxGrowArenas = 256;  // most arenas one grow() commits
  std::uintptr_t reservation_ = 0;  // as returned by mmap (unaligned)
  std::size_t reservationBytes_ = 0;
  std::uintptr_t base_ = 0;  // aligned to kArenaBytes
  std::size_t maxArenas_ = 0;
  std::atomic<HeapArena*>* arenas_ = nullptr;  // maxArenas_ slots
  std::atomic<std::size_t> committedPages_{0};
};

// How many arenas the process heap reserves: `wanted`, or fewer so that the reservation
// stays within half of RLIMIT_AS when one is set; at least 1.
std::size_t reservationArenas(std::size_t wanted);

// Zeroed memory straight from the OS, never returned (Go's persistentalloc role).
void* sysAllocZeroed(std::size_t bytes);
// The same, or null when the OS refuses (the caller reports out of memory).
void* trySysAllocZeroed(std::size_t bytes);
void sysFree(void* p, std::size_t bytes);

}  // namespace spindle::runtime
