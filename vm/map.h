// map.h: Lox maps (`Map()`, `{k: v}`), a hash table on the GC heap, in the spirit of
// Lua's ltable.c but ordered: iteration follows insertion order.
//
// Layout (CPython's compact dict). An ObjMap points at one MapStorage, a scan object that
// holds, after its header, `entryCap` entries (key, value) in insertion order, then
// `indexMask + 1` 32-bit index slots (a power of two, at least twice entryCap): open
// addressing over the index with CPython's perturbed probe sequence (map.cc Probe), each
// slot 0 (empty) or the number of an entry plus one. Only the entries are traced (up to
// `used`); the index holds no pointers.
//   - Appending writes the entry, then `used`, then the index slot (release stores), so a
//     reader that finds an index slot (acquire) sees the entry it names.
//   - Removing writes the entry's key to `undefined` (no key is ever undefined) and its
//     value to nil; the index slot keeps naming the entry, whose key then matches nothing,
//     so probing goes past it. A removed key added again is appended: it goes last.
//   - Re-setting a key stores into its entry: it keeps its place.
//   - When `used` reaches `entryCap` the live entries are copied, in order, into a new
//     storage (room for twice the live ones) whose index is rebuilt, and the map's
//     `storage` is replaced (writeBarrierPtr). The copy passes runtime::checkpoint() every
//     kCheckpointValues / 2 entries, so growing a map of any size never holds up a stop
//     (the new storage is held in the C++ frame across them: see ARCHITECTURE "What bounds
//     a pause"; it is initialised before it is published, so it takes no barrier).
//
// Keys. Every key goes through mapKey first: a NaN is refused ("Map key cannot be NaN."),
// -0 becomes 0. After that two keys are the same key exactly when their Value bits are
// equal: numbers by value, strings by content (they are interned), booleans and nil, and
// any object by identity. An integer hashes to itself (keys counting up fill neighbouring
// slots and entries), anything else to a mix of its bits (the collector does not move
// objects).
//
// Race safety (ARCHITECTURE "Race safety"). `storage`, `used`, `live`, every entry word and
// every index slot are shared words (acquire loads, release stores). A reader works on the
// storage it loaded and bounds every entry number by that storage's `entryCap` and every
// probe sequence by its index size. Appends are serialised by the map's lock (below), so
// an entry is claimed once and holds one key's value; other racing writers may lose
// updates (a store into a storage being replaced) but never make anyone read or write out
// of bounds or loop forever. A replaced storage is left to the collector.
#pragma once

#include <atomic>
#include <cstdint>

#include "vm/barrier.h"
#include "vm/object.h"
#include "vm/value.h"

namespace spindle::vm {

struct MapEntry {
  Value key;    // undefined once removed
  Value value;
};

struct MapStorage : Obj {
  std::uint32_t entryCap;
  std::uint32_t indexMask;  // index slots - 1
  std::uint32_t used;       // entries appended (live and removed); atomic
  std::uint32_t live;       // entries not removed; atomic
  MapEntry* entries() { return reinterpret_cast<MapEntry*>(this + 1); }
  std::uint32_t* index() { return reinterpret_cast<std::uint32_t*>(entries() + entryCap); }

  std::uint32_t loadUsed() const {
    return std::min(std::atomic_ref<const std::uint32_t>(used).load(std::memory_order_acquire),
                    entryCap);
  }
  std::uint32_t loadLive() const {
    return std::atomic_ref<const std::uint32_t>(live).load(std::memory_order_acquire);
  }
};

// `storage` is null until the first key is set. Appending a key takes `lock` (a WordLock
// whose waiters pass checkpoints: growth allocates and copies through checkpoints), so two
// racing appends never claim one entry (a reader would pair one key with the other's
// value) nor append one key twice; lookups, re-sets, removals and clear take none.
struct ObjMap : Obj {
  MapStorage* storage;
  std::uint32_t lock;  // 0 free, 1 held (zeroed by mallocgc)
};

// The key `k` stands for (see above): false for a NaN.
inline bool mapKey(Value k, Value* out) {
  if (k.isNumber()) {
    const double d = k.asNumber();
    if (d != d) return false;
    if (d == 0) k = Value::number(0.0);
  }
  *out = k;
  return true;
}

inline constexpr const char* kMapNaNKey = "Map key cannot be NaN.";

// Entries copied or visited between two checkpoints (two Values each).
inline constexpr std::uint32_t kCheckpointEntries = kCheckpointValues / 2;

// Calls fn(key, value) for each live entry of m in insertion order, as loaded entry by
// entry (racing writers: stale or missing entries, never torn ones), passing a checkpoint
// every kCheckpointEntries entries visited, removed ones included. fn may allocate and pass
// checkpoints too: the storage is held in this frame (see the top of the file).
template <typename Fn>
void forEachMapEntry(ObjMap* m, Fn&& fn) {
  MapStorage* s = loadPtr(&m->storage);
  if (s == nullptr) return;
  const std::uint32_t used = s->loadUsed();
  for (std::uint32_t i = 0; i < used; ++i) {
    if ((i + 1) % kCheckpointEntries == 0) runtime::checkpoint();
    const Value key = loadValue(&s->entries()[i].key);
    if (key.isUndefined()) continue;
    fn(key, loadValue(&s->entries()[i].value));
  }
}

}  // namespace spindle::vm
