// handle_table.h: the host's persistent handles (VM::newHandle), readable without a lock.
//
// Design. A handle is an index into slots that never move: fixed chunks of kChunk
// Values, found through a directory of chunk pointers. Adding a handle (a free slot, or a
// new one, with a new chunk every kChunk) and releasing one happen under the VM's
// handlesLock_, as does the collector's root scan (forEach); reading the Value of a handle
// the caller holds (get) takes no lock: it loads the directory (acquire) and the slot
// (acquire). A directory that fills is replaced by one twice as big holding the same chunk
// pointers; the old directories are kept until the table dies (a reader may hold one).
//
// Invariants.
//   - Every chunk pointer a directory holds stays valid and at its index for the table's
//     life; a newer directory holds all of an older one's.
//   - A handle's slot is written (release) before the handle is returned, and the
//     directory covering it published (release) before that; the holder of a handle got
//     it after (happens-before), so get's acquire loads see both.
//   - Writes take the owner's lock; a slot is written only by add (while free) and
//     remove (while held by the releasing caller), so get never races a write to its slot.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "vm/barrier.h"
#include "vm/value.h"

namespace spindle::vm {

class HandleTable {
 public:
  // Under the owner's lock: a slot holding v (a freed one first).
  std::uint32_t add(Value v) {
    std::uint32_t h;
    if (!free_.empty()) {
      h = free_.back();
      free_.pop_back();
    } else {
      h = size_++;
      if ((h & kMask) == 0) grow();
    }
    valueWord(slot(h)).store(v.bits(), std::memory_order_release);
    return h;
  }
  // Under the owner's lock: the slot's Value (for the barrier) before remove.
  Value peek(std::uint32_t h) const { return loadValue(slot(h)); }
  // Under the owner's lock: the slot becomes nil and free.
  void remove(std::uint32_t h) {
    valueWord(slot(h)).store(Value::nil().bits(), std::memory_order_release);
    free_.push_back(h);
  }
  // Without a lock: the Value of a handle the caller holds.
  Value get(std::uint32_t h) const {
    Value* const* dir = dir_.load(std::memory_order_acquire);
    return loadValue(&dir[h >> kShift][h & kMask]);
  }
  // Under the owner's lock: f(Value) for every slot (free ones are nil).
  template <typename F>
  void forEach(const F& f) const {
    for (std::uint32_t h = 0; h < size_; ++h) f(loadValue(slot(h)));
  }

 private:
  static constexpr std::uint32_t kShift = 8, kChunk = 1u << kShift, kMask = kChunk - 1;
  Value* slot(std::uint32_t h) const { return &chunks_[h >> kShift][h & kMask]; }
  // A new chunk (and, when the directory is full, a directory twice as big).
  void grow() {
    chunks_.push_back(std::make_unique<Value[]>(kChunk));  // nil-initialised
    const std::size_t n = chunks_.size();
    if (n > dirCapacity_) {
      // A new directory with every chunk; readers of the old one keep it.
      dirCapacity_ = dirCapacity_ == 0 ? 16 : dirCapacity_ * 2;
      dirs_.push_back(std::make_unique<Value*[]>(dirCapacity_));
      for (std::size_t i = 0; i + 1 < n; ++i) dirs_.back()[i] = chunks_[i].get();
    }
    // An entry no reader uses yet: no handle of this chunk was handed out.
    Value** dir = dirs_.back().get();
    dir[n - 1] = chunks_[n - 1].get();
    dir_.store(dir, std::memory_order_release);
  }
  std::atomic<Value* const*> dir_{nullptr};
  std::vector<std::unique_ptr<Value[]>> chunks_;   // under the owner's lock
  std::vector<std::unique_ptr<Value*[]>> dirs_;    // current (last) and retired
  std::size_t dirCapacity_ = 0;
  std::uint32_t size_ = 0;                         // slots handed out (held or free)
  std::vector<std::uint32_t> free_;
};

}  // namespace spindle::vm
