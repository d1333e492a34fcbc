// map.cc: Lox maps: the hash table of map.h, the `Map()` native and the map methods
// (`has`, `remove`, `len`, `keys`, `values`, `clear`). See map.h for the layout, the key
// rules and the race-safety argument.
#include "vm/map.h"

#include <fmt/format.h>

#include "vm/fiber.h"
#include "vm/vm.h"

namespace spindle::vm {
namespace {

constexpr std::uint32_t kNoEntry = UINT32_MAX;
constexpr std::uint32_t kMinEntries = 8;

// A normalised key's hash. An integer-valued number hashes to itself (as in CPython), so
// keys counting up land in neighbouring index slots and entries (no cache miss per key);
// anything else mixes its bits (the finaliser of MurmurHash3).
inline std::uint32_t hashKey(Value key) {
  if (key.isNumber()) {
    const double d = key.asNumber();
    if (d >= -9.0e18 && d <= 9.0e18) {
      const auto i = static_cast<std::int64_t>(d);
      if (static_cast<double>(i) == d) return static_cast<std::uint32_t>(i);
    }
  }
  std::uint64_t h = key.bits();
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return static_cast<std::uint32_t>(h);
}

inline std::atomic_ref<std::uint32_t> word(std::uint32_t& w) { return std::atomic_ref<std::uint32_t>(w); }

// CPython's probe sequence: slot h & mask first (integer keys counting up take
// neighbouring slots, so they never collide), then i = 5i + 1 + perturb with perturb the
// hash shifted right by 5 at each step: strided keys and runs of full slots are left after
// a few probes, and once perturb is 0 the recurrence visits every slot (a full-period
// generator modulo a power of two). Bounded by the index size plus the steps perturb
// takes to reach 0, so even an index that racing writers filled is never probed forever.
struct Probe {
  std::uint32_t mask, i, perturb;
  Probe(const MapStorage* s, std::uint32_t h) : mask(s->indexMask), i(h & s->indexMask), perturb(h) {}
  void next() {
    perturb >>= 5;
    i = (5 * i + 1 + perturb) & mask;
  }
  std::uint32_t limit() const { return mask + 8; }
};

// The entry holding `key` in s, or kNoEntry. Bounded by s's own sizes (racing writers).
std::uint32_t findEntry(MapStorage* s, Value key, std::uint32_t h) {
  std::uint32_t* index = s->index();
  Probe p(s, h);
  for (std::uint32_t probes = 0; probes <= p.limit(); ++probes, p.next()) {
    const std::uint32_t slot = word(index[p.i]).load(std::memory_order_acquire);
    if (slot == 0) return kNoEntry;
    const std::uint32_t e = slot - 1;
    if (e < s->entryCap && valueWord(&s->entries()[e].key).load(std::memory_order_acquire) == key.bits()) {
      return e;
    }
  }
  return kNoEntry;
}

// Points the first empty index slot of key's probe sequence at entry e (dropped if a
// racing writer left no empty slot: a lost update).
void linkEntry(MapStorage* s, std::uint32_t h, std::uint32_t e) {
  std::uint32_t* index = s->index();
  Probe p(s, h);
  for (std::uint32_t probes = 0; probes <= p.limit(); ++probes, p.next()) {
    if (word(index[p.i]).load(std::memory_order_acquire) == 0) {
      word(index[p.i]).store(e + 1, std::memory_order_release);
      return;
    }
  }
}

bool nativeMap(VM& vm, const void*, int, Value*, Value* result) {
  *result = Value::object(vm.newMap());
  return true;
}

}  // namespace

ObjMap* VM::newMap() { return allocate<ObjMap>(ObjKind::Map, sizeof(ObjMap)); }

MapStorage* VM::newMapStorage(std::uint32_t entryCap) {
  std::uint32_t slots = 16;
  while (slots < 2 * std::size_t{entryCap}) slots *= 2;
  const std::size_t size =
      sizeof(MapStorage) + std::size_t{entryCap} * sizeof(MapEntry) + std::size_t{slots} * sizeof(std::uint32_t);
  // Zeroed: entries are the number 0 (valid Values), index slots empty.
  auto* s = allocate<MapStorage>(ObjKind::MapStorage, size);
  s->entryCap = entryCap;
  s->indexMask = slots - 1;
  return s;
}

// Copies the live entries of `from` (null: none) into a new storage with room for twice
// as many, then publishes it. Returns the storage now in use.
MapStorage* VM::growMap(ObjMap* m, MapStorage* from) {
  const std::uint32_t live = from == nullptr ? 0 : from->loadLive();
  const std::uint32_t cap = std::max(kMinEntries, 2 * (live + 1));
  MapStorage* to = newMapStorage(cap);
  std::uint32_t n = 0;
  if (from != nullptr) {
    const std::uint32_t used = from->loadUsed();
    for (std::uint32_t i = 0; i < used && n < cap; ++i) {
      if ((i + 1) % kCheckpointEntries == 0) runtime::checkpoint();
      const Value key = loadValue(&from->entries()[i].key);
      if (key.isUndefined()) continue;
      // Initialising `to` (not yet reachable): no barrier.
      to->entries()[n].key = key;
      to->entries()[n].value = loadValue(&from->entries()[i].value);
      linkEntry(to, hashKey(key), n);
      ++n;
    }
  }
  to->used = n;
  to->live = n;
  writeBarrierPtr<MapStorage>(m, &m->storage, to);
  return to;
}

bool VM::mapGet(ObjMap* m, Value key, Value* out) const {
  MapStorage* s = loadPtr(&m->storage);
  if (s == nullptr) return false;
  const std::uint32_t e = findEntry(s, key, hashKey(key));
  if (e == kNoEntry) return false;
  *out = loadValue(&s->entries()[e].value);
  return true;
}

void VM::mapSet(ObjMap* m, Value key, Value v) {
  const std::uint32_t h = hashKey(key);
  MapStorage* s = loadPtr(&m->storage);
  if (s != nullptr) {
    const std::uint32_t e = findEntry(s, key, h);
    if (e != kNoEntry) {
      writeBarrier(s, &s->entries()[e].value, v);
      return;
    }
  }
  WordLock lock(m->lock, checkpointRelax);
  s = loadPtr(&m->storage);
  if (s != nullptr) {  // another append may have added the key meanwhile
    const std::uint32_t e = findEntry(s, key, h);
    if (e != kNoEntry) {
      writeBarrier(s, &s->entries()[e].value, v);
      return;
    }
  }
  if (s == nullptr || s->loadUsed() >= s->entryCap) s = growMap(m, s);
  const std::uint32_t e = s->loadUsed();
  writeBarrier(s, &s->entries()[e].key, key);
  writeBarrier(s, &s->entries()[e].value, v);
  word(s->used).store(e + 1, std::memory_order_release);
  word(s->live).store(s->loadLive() + 1, std::memory_order_release);
  linkEntry(s, h, e);
}

bool VM::mapRemove(ObjMap* m, Value key, Value* removed) {
  MapStorage* s = loadPtr(&m->storage);
  if (s == nullptr) return false;
  const std::uint32_t e = findEntry(s, key, hashKey(key));
  if (e == kNoEntry) return false;
  MapEntry& entry = s->entries()[e];
  *removed = loadValue(&entry.value);
  writeBarrier(s, &entry.key, Value::undefined());
  writeBarrier(s, &entry.value, Value::nil());
  const std::uint32_t live = s->loadLive();
  word(s->live).store(live == 0 ? 0 : live - 1, std::memory_order_release);
  return true;
}

std::uint32_t VM::mapLen(ObjMap* m) const {
  MapStorage* s = loadPtr(&m->storage);
  return s == nullptr ? 0 : s->loadLive();
}

// A new list of the keys (or values) in insertion order (forEachMapEntry passes the
// checkpoints). The storage is filled before it is published into the list
// (initialising: no barrier for the values; a value copied into storage born black during
// a mark is still in the map, whose deletion barrier covers it), then published with the
// barrier: a large storage's zeroing passes checkpoints, so a mark may begin between the
// two allocations, and a list born black must not point at storage left white.
ObjList* VM::mapKeys(ObjMap* m, bool values) {
  MapStorage* s = loadPtr(&m->storage);
  const std::uint32_t live = s == nullptr ? 0 : s->loadLive();
  ObjList* l = newList(0, nullptr);
  ValueArray* items = live > l->items->capacity ? newValueArray(live) : l->items;
  std::uint32_t n = 0;
  forEachMapEntry(m, [&](Value k, Value v) {
    if (n < items->capacity) items->data()[n++] = values ? v : k;
  });
  if (items != l->items) writeBarrierPtr<ValueArray>(l, &l->items, items);
  l->count = n;  // not yet reachable by another fiber
  return l;
}

bool VM::invokeMap(ObjFiber* fiber, ObjMap* m, ObjString* name, int argc, const Value* args, Value* result) {
  auto arity = [&](int want) { return expectArgs(fiber, argc, want); };
  auto key = [&](Value* k) {
    if (mapKey(args[0], k)) return true;
    recordError(fiber, kMapNaNKey);
    return false;
  };
  Value k;
  if (name == mapNames_.has) {
    if (!arity(1) || !key(&k)) return false;
    Value ignored;
    *result = Value::boolean(mapGet(m, k, &ignored));
  } else if (name == mapNames_.remove) {
    if (!arity(1) || !key(&k)) return false;
    if (!mapRemove(m, k, result)) *result = Value::nil();
  } else if (name == lenString_) {
    if (!arity(0)) return false;
    *result = Value::number(mapLen(m));
  } else if (name == mapNames_.keys || name == mapNames_.values) {
    if (!arity(0)) return false;
    *result = Value::object(mapKeys(m, name == mapNames_.values));
  } else if (name == mapNames_.clear) {
    if (!arity(0)) return false;
    writeBarrierPtr<MapStorage>(m, &m->storage, nullptr);
  } else {
    recordError(fiber, fmt::format("Undefined property '{}'.", name->view()));
    return false;
  }
  return true;
}

void VM::registerMapNatives() {
  mapNames_.has = intern("has");
  mapNames_.remove = intern("remove");
  mapNames_.keys = intern("keys");
  mapNames_.values = intern("values");
  mapNames_.clear = intern("clear");
  setGlobal(globalSlot("Map"), Value::object(newNative("Map", 0, nativeMap)));
}

}  // namespace spindle::vm
