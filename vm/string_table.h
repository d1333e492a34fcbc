// string_table.h: the interned-string table (Lua's lstring.c): every ObjString is
// interned, so equal strings are one object and compare by address.
//
// One table per process (processStrings), shared by every VM as the heap is: strings are
// immutable, so VMs share them safely, a VM's library names cost a lookup once another VM
// made them, and a dead string reaches its one table through one weak hook, whatever the
// number of VMs (a table per VM made each freed string visit every VM's table). It lives
// as long as the process (the heap does too: its strings are freed by later cycles).
//
// Design. Open hashing: a power-of-two array of buckets (C++ memory), each a chain linked
// through the strings themselves (ObjString::hnext), keyed by ObjString::hash. The table
// is weak, and no root: the collector never scans it, and mark termination does nothing
// for it. Clearing is the sweepers' (runtime/gc.h registerWeak): a sweep that frees
// interned strings calls sweepFree first with a batch of them (one lock per batch), which
// unlinks exactly those objects (by address) while their bytes are intact; an entry that
// now holds another string of the same text is never touched. A lookup that finds its
// string behind others in the chain moves it to the front (a text looked up again and
// again then costs no walk past strings that came after it).
//
// Growth and shrinking are incremental (as Redis's dict): resizing installs a second
// array and every later operation under the lock moves at most kRehashStep buckets from
// the old one, so no operation holds the lock for work that grows with the table. A
// string lives in the old array iff its old bucket index is >= `moved_`; lookups,
// inserts and removals go to the array that owns the hash. The new array is allocated
// (and zeroed) outside the lock. The table grows past load factor 1 and shrinks below
// 1/8 only once capacity/2 inserts in a row found it that empty (the garbage of one
// collection cycle is expected again in the next).
//
// Invariants (all under lock_, which is never held while allocating GC memory or while
// sweeping; the sweepers' hook takes it, so intern never sweeps while holding it):
//   - Every string in the table is allocated: the hook unlinks a dead string before its
//     slot is freed. So the chains never point at freed memory.
//   - A lookup never hands out a string the sweeper will free: while the collector marks,
//     a string found is shaded first; otherwise it is handed out only if its span was
//     swept this cycle (runtime::weakSwept); if not, intern drops the lock, sweeps that
//     span (sweepSpanOf) and looks again: the entry is gone if the string died.
//   - count_ is the number of strings in both arrays.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "vm/object.h"

namespace spindle::vm {

class StringTable {
 public:
  StringTable();
  ~StringTable();
  StringTable(const StringTable&) = delete;
  StringTable& operator=(const StringTable&) = delete;

  std::mutex& lock() { return lock_; }
  // Under lock(): the string with this text, or null; moves a few buckets if resizing.
  ObjString* find(std::string_view s, std::uint32_t hash);
  // Under lock(): adds str (its text not in the table).
  void insert(ObjString* str);
  // Under lock(): unlinks exactly this object if it is in the table.
  void remove(ObjString* str);
  // Under lock(): the bucket count the table wants (0: none), given its count.
  std::size_t wantedCapacity() const;
  // Under lock(): starts moving into `fresh` (zeroed, `capacity` buckets, allocated
  // without the lock) if the table still wants that capacity and is not resizing;
  // otherwise returns fresh for the caller to free.
  ObjString** startResize(ObjString** fresh, std::size_t capacity);
  std::size_t count() const { return count_; }  // under lock()
  // Under lock(): strings inserted so far. Only an insert adds a text, so a lookup that
  // missed stays a miss while this is unchanged.
  std::uint64_t inserts() const { return inserts_; }
  std::size_t capacity() const { return mask_ + 1; }  // under lock()

  // The sweepers' hook (runtime::registerWeak): ctx is the table; one lock per batch.
  static void sweepFree(void* ctx, void* const* objs, std::size_t n);

  static constexpr std::size_t kMinCapacity = 64;
  static constexpr std::size_t kRehashStep = 64;  // buckets moved per operation

 private:
  ObjString** bucketOf(std::uint32_t hash);
  void rehashStep();

  std::mutex lock_;
  ObjString** buckets_;        // lock_
  std::size_t mask_;           // lock_: capacity - 1
  ObjString** old_ = nullptr;  // lock_: the array being emptied, or null
  std::size_t oldMask_ = 0;    // lock_
  std::size_t moved_ = 0;      // lock_: old buckets below this index are moved
  std::size_t count_ = 0;      // lock_
  std::uint64_t inserts_ = 0;  // lock_
  std::size_t lowInserts_ = 0;  // lock_: inserts in a row that left it under 1/8 full
};

// The process's table, registered with the sweepers (runtime::registerWeak) on first use.
StringTable& processStrings();

}  // namespace spindle::vm
