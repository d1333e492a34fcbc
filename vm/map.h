// map.h: Lox maps (`Map()`, `{k: v}`), a hash table on the GC heap, in the spirit of
// Lua's ltable.c but ordered: iteration follows insertion order.
//
// Layout (CPython's compact dict). An ObjMap points at one MapStorage, a scan object that
// holds, after its header, `entryCap` entries (key, value) in insertion order, then
// `indexMask + 1` 32-bit index slots (a power of two, at least 1.5 times entryCap, so at
// most two-thirds full): open addressing over the index with CPython's perturbed probe
// sequence (MapProbe), each slot 0 (empty) or the number of an entry plus one. Only the
// entries are traced (up to `used`); the index holds no pointers.
//   - The dense prefix (Lua's array part, kept in insertion order): `dense` counts the
//     leading entries appended as "the integer e at entry e" (m[0], m[1], ... set in order
//     into an empty map). Invariant: for every integer k < dense, entry k was appended with
//     key k, and key k is in no other entry; so k is present exactly when entry k's key
//     is still k, and a lookup reads that entry, never the index. Prefix entries are not
//     linked into the index (a map of keys counting up never touches its index pages).
//     An append extends the prefix when every entry is in it and the key is the entry's
//     number; re-adding a removed key k < dense (it goes last) first links the prefix's
//     live entries above k into the index, then cuts `dense` to k (release: a reader
//     that loads the new bound finds them through the index).
//   - Appending writes the entry, then `used`, then `dense` or the index slot (release
//     stores), so a reader that sees the bound or the slot (acquire) sees the entry. An
//     entry past `used` has never been written (appends are serialised), so appends store
//     through writeBarrierFresh (the old word is known to hold no reference and is not
//     read: a fresh page is faulted in once).
//   - Removing writes the entry's key to `undefined` (no key is ever undefined) and its
//     value to nil; the index slot keeps naming the entry, whose key then matches nothing,
//     so probing goes past it. A removed key added again is appended: it goes last.
//   - Re-setting a key stores into its entry: it keeps its place.
//   - When `used` reaches `entryCap` the live entries are copied, in order, into a new
//     storage (room for half as many again, rounded up to a power of two) whose dense
//     prefix and index are rebuilt, and the map's `storage` is replaced
//     (writeBarrierPtr). The copy passes
//     runtime::checkpoint() every kCheckpointEntries entries, so growing a map of any size
//     never holds up a stop (the new storage is held in the C++ frame across them: see
//     ARCHITECTURE "What bounds a pause"; it is published through the barrier, which
//     shades it, after its counts are stored).
//
// Keys. Every key goes through mapKey first: a NaN is refused ("Map key cannot be NaN."),
// -0 becomes 0. After that two keys are the same key exactly when their Value bits are
// equal: numbers by value, strings by content (they are interned), booleans and nil, and
// any object by identity. Hashes: see mapHash (the collector does not move objects).
//
// Race safety (ARCHITECTURE "Race safety"). `storage`, `used`, `live`, `dense`, every
// entry word and every index slot are shared words (acquire loads, release stores). A
// reader works on the storage it loaded and bounds every entry number by that storage's
// `entryCap` and every probe sequence by its index size. Lookups, re-sets and removals
// take no lock. Appends are serialised by the map's lock (below), so an entry is claimed
// once and holds one key's value, only appends write `dense` and index slots, and the
// index never fills; other racing writers may lose updates (a store into a storage being
// replaced, a re-set racing a removal) but never make anyone read or write out of bounds
// or loop forever. A reader racing a cut of the prefix may miss the re-added key (its
// lookup overlaps the append). A replaced storage is left to the collector.
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
  std::uint32_t dense;      // the dense prefix (see the top of the file); atomic
  MapEntry* entries() { return reinterpret_cast<MapEntry*>(this + 1); }
  std::uint32_t* index() { return reinterpret_cast<std::uint32_t*>(entries() + entryCap); }

  std::uint32_t loadUsed() const {
    return std::min(std::atomic_ref<const std::uint32_t>(used).load(std::memory_order_acquire),
                    entryCap);
  }
  std::uint32_t loadLive() const {
    return std::atomic_ref<const std::uint32_t>(live).load(std::memory_order_acquire);
  }
  std::uint32_t loadDense() const {
    return std::min(std::atomic_ref<const std::uint32_t>(dense).load(std::memory_order_acquire),
                    entryCap);
  }
};

// `storage` is null until the first key is set. Appending a key takes `lock` (a WordLock
// whose waiters pass checkpoints and give their Ps to Ms waiting for one: growth
// allocates and copies through checkpoints, where the holder may lose its P), so two
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

inline constexpr std::uint32_t kMapNoEntry = UINT32_MAX;

// The entry number a normalised key names in the dense prefix: k when the key is the
// integer k and k < dense, else kMapNoEntry (the integer test of numberToInt64, value.h).
inline std::uint32_t denseEntry(Value key, std::uint32_t dense) {
  std::int64_t k;
  double back;
  if (!key.isNumber() || !numberToInt64(key.asNumber(), &k, &back)) return kMapNoEntry;
  return static_cast<std::uint64_t>(k) < dense ? static_cast<std::uint32_t>(k) : kMapNoEntry;  // negatives wrap above
}

// A normalised key's hash. An integer-valued number hashes to itself (as in CPython), so
// keys counting up land in neighbouring index slots; an object hashes to its address
// shifted right by 4 (CPython's object hash: objects are 16-byte aligned), so keys
// allocated one after another (strings made in a loop) take neighbouring slots and keep a
// lookup loop in the cache; anything else mixes its bits (the finaliser of MurmurHash3).
// The probe sequence (mapProbe) folds in the high bits at its second probe.
inline std::uint32_t mapHash(Value key) {
  if (key.isNumber()) {
    const double d = key.asNumber();
    if (d >= -9.0e18 && d <= 9.0e18) {
      const auto i = static_cast<std::int64_t>(d);
      if (static_cast<double>(i) == d) return static_cast<std::uint32_t>(i);
    }
  } else if (key.isObj()) {
    return static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(key.asObj()) >> 4);
  }
  return mix64(key.bits());
}

// CPython's probe sequence: slot h & mask first (integer keys counting up take
// neighbouring slots, so they never collide), then i = 5i + 1 + perturb with perturb the
// hash shifted right by 5 at each step: strided keys and runs of full slots are left after
// a few probes, and once perturb is 0 the recurrence visits every slot (a full-period
// generator modulo a power of two). Bounded by the index size plus the steps perturb
// takes to reach 0, so even an index that racing writers filled is never probed forever.
struct MapProbe {
  std::uint32_t mask, i, perturb;
  MapProbe(const MapStorage* s, std::uint32_t h) : mask(s->indexMask), i(h & s->indexMask), perturb(h) {}
  void next() {
    perturb >>= 5;
    i = (5 * i + 1 + perturb) & mask;
  }
  std::uint32_t limit() const { return mask + 8; }
};

inline std::atomic_ref<std::uint32_t> mapIndexSlot(MapStorage* s, std::uint32_t i) {
  return std::atomic_ref<std::uint32_t>(s->index()[i]);
}

// Whether the number d is an integer (-0 is the integer 0): then *i is its value and
// *norm the normalised key (its Value: d itself, 0 for -0). False for a fraction, a NaN,
// an infinity and anything beyond 2^63 (numberToInt64, value.h).
[[gnu::always_inline]] inline bool mapIntegerKey(double d, std::int64_t* i, Value* norm) {
  double back;
  if (!numberToInt64(d, i, &back)) return false;
  *norm = Value::arith(back);
  return true;
}

// The entry holding the normalised `key` in the index of s, or kMapNoEntry. Bounded by
// s's own sizes (racing writers).
[[gnu::always_inline]] inline std::uint32_t mapProbeIndex(MapStorage* s, Value key) {
  MapProbe p(s, mapHash(key));
  for (std::uint32_t probes = 0; probes <= p.limit(); ++probes, p.next()) {
    const std::uint32_t slot = mapIndexSlot(s, p.i).load(std::memory_order_acquire);
    if (slot == 0) return kMapNoEntry;
    const std::uint32_t e = slot - 1;
    if (e < s->entryCap && valueWord(&s->entries()[e].key).load(std::memory_order_acquire) == key.bits()) {
      return e;
    }
  }
  return kMapNoEntry;
}

// The entry of the dense prefix that integer i names in s (dense: s's prefix as loaded),
// or kMapNoEntry when i is below the prefix and was removed; only for 0 <= i < dense.
[[gnu::always_inline]] inline std::uint32_t mapDenseEntry(MapStorage* s, std::int64_t i, Value norm) {
  const auto e = static_cast<std::uint32_t>(i);
  return valueWord(&s->entries()[e].key).load(std::memory_order_acquire) == norm.bits() ? e : kMapNoEntry;
}

// The entry holding the normalised `key` in s, or kMapNoEntry: the dense prefix for an
// integer below it, else the index, which a number key skips when every entry is in the
// prefix (the index is then empty: keys counting up never touch its pages). Bounded by
// s's own sizes (racing writers).
[[gnu::always_inline]] inline std::uint32_t mapFind(MapStorage* s, Value key) {
  if (key.isNumber()) {
    const std::uint32_t dense = s->loadDense();
    std::int64_t i;
    Value norm;
    if (mapIntegerKey(key.asNumber(), &i, &norm) && static_cast<std::uint64_t>(i) < dense) {
      return mapDenseEntry(s, i, norm);
    }
    if (s->loadUsed() <= dense) return kMapNoEntry;
  }
  return mapProbeIndex(s, key);
}

// m[key] for a normalised key: false when absent. Takes no lock.
[[gnu::always_inline]] inline bool mapGet(ObjMap* m, Value key, Value* out) {
  MapStorage* s = loadPtr(&m->storage);
  if (s == nullptr) return false;
  const std::uint32_t e = mapFind(s, key);
  if (e == kMapNoEntry) return false;
  *out = loadValue(&s->entries()[e].value);
  return true;
}

// Appends the integer key e at entry e of s, extending the dense prefix, when that needs
// no allocation and no wait: every entry of s is in the prefix (so the key, at or past
// it, is absent and the index is empty), e is below entryCap and the lock is free. The
// lock is taken with one exchange and never waited for (a held lock: false, and
// VM::mapInsert waits). Under it, s is still the map's storage and `used` and `dense` are
// still e: only lock holders append, grow or write `dense`, so nothing was appended since
// (clear, which takes no lock, may have replaced the storage: then false). The stores are
// appendEntry's for a key that extends the prefix. No checkpoint is passed between the
// caller's load of s and the stores, so s cannot have been freed meanwhile. Returns
// whether it appended.
// The counts are read under the lock with relaxed loads: only lock holders write `used`
// and `dense`, and the lock's acquire orders this holder after the last one's stores. The
// entry's two words take writeBarrierFresh's barrier (one check of the barrier's state
// for both: it changes only with the world stopped).
[[gnu::always_inline]] inline bool mapTryAppendDense(ObjMap* m, MapStorage* s, Value key, Value v) {
  using Word = std::atomic_ref<std::uint32_t>;
  const std::uint32_t e = Word(s->dense).load(std::memory_order_acquire);
  if (e >= s->entryCap || key.bits() != Value::number(static_cast<double>(e)).bits()) return false;
  Word lock(m->lock);
  if (lock.exchange(1, std::memory_order_acquire) != 0) return false;
  const bool ok = loadPtr(&m->storage) == s && Word(s->used).load(std::memory_order_relaxed) == e &&
                  Word(s->dense).load(std::memory_order_relaxed) == e;
  if (ok) {
    if (runtime::writeBarrierEnabled()) [[unlikely]] shadeValue(v);  // the key is a number
    MapEntry& entry = s->entries()[e];  // past `used`: never written since zeroed
    valueWord(&entry.key).store(key.bits(), std::memory_order_release);
    valueWord(&entry.value).store(v.bits(), std::memory_order_release);
    Word(s->used).store(e + 1, std::memory_order_release);
    Word(s->live).store(Word(s->live).load(std::memory_order_relaxed) + 1, std::memory_order_release);
    Word(s->dense).store(e + 1, std::memory_order_release);
  }
  lock.store(0, std::memory_order_release);
  return ok;
}

// Stores v under a normalised key without allocating and without waiting, and returns
// true: re-sets a present key in place (it keeps its place; no lock), or appends an
// integer key that extends the dense prefix (mapTryAppendDense: m[n] = v counting up).
// False otherwise (VM::mapSet then appends under the lock, growing the storage).
[[gnu::always_inline]] inline bool mapTrySet(ObjMap* m, Value key, Value v) {
  MapStorage* s = loadPtr(&m->storage);
  if (s == nullptr) return false;
  const std::uint32_t e = mapFind(s, key);
  if (e == kMapNoEntry) return key.isNumber() && mapTryAppendDense(m, s, key, v);
  writeBarrier(s, &s->entries()[e].value, v);
  return true;
}

// mapLoad and mapStore for a number key that is not an integer (or a NaN), out of line
// (map.cc): the interpreter's function keeps only the integer and object paths.
bool mapLoadFraction(ObjMap* m, Value key, Value* out);
int mapStoreFraction(ObjMap* m, Value key, Value v, Value* norm);

// The interpreter's m[key] (GET_INDEX), for a key not yet normalised: *out is the value,
// left alone when the key is absent; false for a NaN key (nothing read). An integer key
// below the dense prefix reads its entry right after one conversion (mapIntegerKey);
// other keys are normalised and looked up as mapGet does.
[[gnu::always_inline]] inline bool mapLoad(ObjMap* m, Value key, Value* out) {
  MapStorage* s = loadPtr(&m->storage);
  std::uint32_t e;
  if (key.isNumber()) {
    std::int64_t i;
    Value norm;
    if (!mapIntegerKey(key.asNumber(), &i, &norm)) [[unlikely]] return mapLoadFraction(m, key, out);
    if (s == nullptr) return true;
    const std::uint32_t dense = s->loadDense();
    if (static_cast<std::uint64_t>(i) < dense) [[likely]] {
      e = mapDenseEntry(s, i, norm);
    } else {
      if (s->loadUsed() <= dense) return true;
      e = mapProbeIndex(s, norm);
    }
  } else {
    if (s == nullptr) return true;
    e = mapProbeIndex(s, key);
  }
  if (e != kMapNoEntry) *out = loadValue(&s->entries()[e].value);
  return true;
}

// The interpreter's m[key] = v (SET_INDEX), for a key not yet normalised: 1 when stored
// without allocating or waiting (as mapTrySet), 0 when VM::mapInsert must append (*norm is
// the normalised key), -1 for a NaN key.
[[gnu::always_inline]] inline int mapStore(ObjMap* m, Value key, Value v, Value* norm) {
  MapStorage* s = loadPtr(&m->storage);
  std::uint32_t e;
  if (key.isNumber()) {
    std::int64_t i;
    if (!mapIntegerKey(key.asNumber(), &i, norm)) [[unlikely]] return mapStoreFraction(m, key, v, norm);
    if (s == nullptr) return 0;
    const std::uint32_t dense = s->loadDense();
    if (static_cast<std::uint64_t>(i) < dense) {
      e = mapDenseEntry(s, i, *norm);
      if (e == kMapNoEntry) return 0;  // removed: re-added last
    } else if (s->loadUsed() <= dense) {
      return mapTryAppendDense(m, s, *norm, v) ? 1 : 0;
    } else {
      e = mapProbeIndex(s, *norm);
      if (e == kMapNoEntry) return 0;
    }
  } else {
    *norm = key;
    if (s == nullptr) return 0;
    e = mapProbeIndex(s, key);
    if (e == kMapNoEntry) return 0;
  }
  writeBarrier(s, &s->entries()[e].value, v);
  return 1;
}

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
