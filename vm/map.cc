// map.cc: Lox maps: the hash table of map.h, the `Map()` native and the map methods
// (`has`, `remove`, `len`, `keys`, `values`, `clear`). See map.h for the layout, the key
// rules and the race-safety argument.
#include "vm/map.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>

#include "runtime/throw.h"
#include "vm/fiber.h"
#include "vm/vm.h"

namespace spindle::vm {
namespace {

constexpr std::uint32_t kMinEntries = 8;

inline std::atomic_ref<std::uint32_t> word(std::uint32_t& w) { return std::atomic_ref<std::uint32_t>(w); }

// Under the map's lock (or while s is not yet published; so for the three functions
// below): points the first empty index slot of the key's probe sequence at entry e. Only
// appends write index slots, and they are serialised, so a slot is always left (the index
// is at most two-thirds full) and no two entries of one key are ever linked.
void linkEntry(MapStorage* s, Value key, std::uint32_t e) {
  MapProbe p(s, mapHash(key));
  for (std::uint32_t probes = 0; probes <= p.limit(); ++probes, p.next()) {
    if (mapIndexSlot(s, p.i).load(std::memory_order_relaxed) == 0) {  // only we write slots
      mapIndexSlot(s, p.i).store(e + 1, std::memory_order_release);
      return;
    }
  }
  SPINDLE_DCHECK(false, "map index full: {} slots for {} entries", s->indexMask + 1, s->entryCap);
}

// Cuts the dense prefix to `to`: links its live entries from `to` + 1 on into the index
// (passing checkpoints), then stores the new bound (release), so a reader that loads it
// finds them through the index.
void cutDense(MapStorage* s, std::uint32_t to) {
  const std::uint32_t dense = s->loadDense();
  for (std::uint32_t i = to + 1; i < dense; ++i) {
    if ((i + 1) % kCheckpointEntries == 0) runtime::checkpoint();
    const Value key = loadValue(&s->entries()[i].key);
    if (!key.isUndefined()) linkEntry(s, key, i);
  }
  word(s->dense).store(to, std::memory_order_release);
}

// Whether the key appended at entry e extends a dense prefix of `dense` entries: it is the
// integer e and every entry before it is in the prefix.
inline bool extendsDense(Value key, std::uint32_t e, std::uint32_t dense) {
  return e == dense && key.bits() == Value::number(static_cast<double>(e)).bits();  // keys are normalised
}

// Appends (key, v), absent from s, to s, which has room. A key that extends the dense
// prefix extends it (and is not linked); an integer key k below the prefix (k was removed
// and is added again: it goes last) cuts the prefix to k first; any other key is linked
// into the index.
void appendEntry(MapStorage* s, Value key, Value v) {
  const std::uint32_t e = s->loadUsed();
  SPINDLE_DCHECK(e < s->entryCap, "map append at entry {} of {}", e, s->entryCap);
  const std::uint32_t dense = s->loadDense();
  const bool extends = extendsDense(key, e, dense);
  if (!extends) {
    const std::uint32_t k = denseEntry(key, dense);
    if (k != kMapNoEntry) cutDense(s, k);
  }
  writeBarrierFresh(s, &s->entries()[e].key, key);  // past `used`: never written (appends are serialised)
  writeBarrierFresh(s, &s->entries()[e].value, v);
  word(s->used).store(e + 1, std::memory_order_release);
  word(s->live).store(s->loadLive() + 1, std::memory_order_release);
  if (extends) {
    word(s->dense).store(e + 1, std::memory_order_release);
  } else {
    linkEntry(s, key, e);
  }
}

bool nativeMap(VM& vm, const void*, int, Value*, Value* result) {
  *result = Value::object(vm.newMap());
  return true;
}

}  // namespace

[[gnu::noinline]] bool mapLoadFraction(ObjMap* m, Value key, Value* out) {
  Value k;
  if (!mapKey(key, &k)) return false;
  mapGet(m, k, out);
  return true;
}

[[gnu::noinline]] int mapStoreFraction(ObjMap* m, Value key, Value v, Value* norm) {
  if (!mapKey(key, norm)) return -1;
  return mapTrySet(m, *norm, v) ? 1 : 0;
}

ObjMap* VM::newMap() { return allocate<ObjMap>(ObjKind::Map, sizeof(ObjMap)); }

MapStorage* VM::newMapStorage(std::uint32_t entryCap) {
  std::uint32_t slots = 16;
  while (2 * std::size_t{slots} < 3 * std::size_t{entryCap}) slots *= 2;  // at most 2/3 full
  const std::size_t size =
      sizeof(MapStorage) + std::size_t{entryCap} * sizeof(MapEntry) + std::size_t{slots} * sizeof(std::uint32_t);
  // Zeroed: entries are the number 0 (valid Values), index slots empty.
  auto* s = allocate<MapStorage>(ObjKind::MapStorage, size);
  s->entryCap = entryCap;
  s->indexMask = slots - 1;
  return s;
}

// Copies the live entries of `from` (null: none), in order, into a new storage with room
// for half as many again (a power of two: a map of keys counting up to N copies fewer
// than N entries in all its growths), rebuilding the dense prefix and the index, then
// publishes it. Returns the storage now in use. The copy runs in chunks of
// kCheckpointEntries with a checkpoint between two: the write barrier's state changes
// only with the world stopped, so it is read once a chunk, and the stores into `to` shade
// (while marking) only values `from` holds.
MapStorage* VM::growMap(ObjMap* m, MapStorage* from) {
  const std::uint32_t live = from == nullptr ? 0 : from->loadLive();
  const std::uint32_t cap = std::bit_ceil(std::max(kMinEntries, live + live / 2 + 1));
  MapStorage* to = newMapStorage(cap);
  // `to` is reachable by no one else until it is published: its counts are stored once,
  // at the end (before the publishing barrier, which shades it: its scan sees them).
  std::uint32_t n = 0, dense = 0;
  if (from != nullptr) {
    const std::uint32_t used = from->loadUsed();
    // An entry i below from's prefix copied to entry i (nothing skipped before it) has key
    // i (the prefix invariant; it would be undefined if removed, and is then skipped), and
    // every entry before it extended the new prefix: it extends it too, unchecked.
    const std::uint32_t fromDense = from->loadDense();
    const MapEntry* src = from->entries();
    MapEntry* dst = to->entries();
    for (std::uint32_t i = 0; i < used && n < cap;) {
      if (i != 0) runtime::checkpoint();
      const bool shade = runtime::writeBarrierEnabled();
      const std::uint32_t end = std::min(used, i + kCheckpointEntries);
      for (; i < end && n < cap; ++i) {
        const Value key = loadValue(&src[i].key);
        if (key.isUndefined()) continue;
        const Value v = loadValue(&src[i].value);
        if (shade) [[unlikely]] {
          shadeValue(key);
          shadeValue(v);
        }
        valueWord(&dst[n].key).store(key.bits(), std::memory_order_release);
        valueWord(&dst[n].value).store(v.bits(), std::memory_order_release);
        if ((n == i && i < fromDense) || extendsDense(key, n, dense)) {
          ++dense;
        } else {
          linkEntry(to, key, n);
        }
        ++n;
      }
    }
  }
  word(to->used).store(n, std::memory_order_release);
  word(to->live).store(n, std::memory_order_release);
  word(to->dense).store(dense, std::memory_order_release);
  writeBarrierPtr<MapStorage>(m, &m->storage, to);
  return to;
}

void VM::mapInsert(ObjMap* m, Value key, Value v) {
  WordLock lock(m->lock, checkpointRelax);
  MapStorage* s = loadPtr(&m->storage);
  if (s != nullptr) {  // another append may have added the key meanwhile
    const std::uint32_t e = mapFind(s, key);
    if (e != kMapNoEntry) {
      writeBarrier(s, &s->entries()[e].value, v);
      return;
    }
  }
  if (s == nullptr || s->loadUsed() >= s->entryCap) s = growMap(m, s);
  appendEntry(s, key, v);
}

bool VM::mapRemove(ObjMap* m, Value key, Value* removed) {
  MapStorage* s = loadPtr(&m->storage);
  if (s == nullptr) return false;
  const std::uint32_t e = mapFind(s, key);
  if (e == kMapNoEntry) return false;
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

bool VM::mapMethod(ObjMap* m, ObjString* name, int argc, const Value* args, Value* result) {
  Value k;
  if (argc == 1 && (name == mapNames_.remove || name == mapNames_.has)) {
    if (!mapKey(args[0], &k)) return false;  // the general path reports the NaN key
    if (name == mapNames_.remove) {
      if (!mapRemove(m, k, result)) *result = Value::nil();
    } else {
      Value ignored;
      *result = Value::boolean(mapGet(m, k, &ignored));
    }
    return true;
  }
  if (argc == 0 && name == lenString_) {
    *result = Value::number(mapLen(m));
    return true;
  }
  return false;
}

void VM::registerMapNatives() {
  setRoot(mapNames_.has, intern("has"));
  setRoot(mapNames_.remove, intern("remove"));
  setRoot(mapNames_.keys, intern("keys"));
  setRoot(mapNames_.values, intern("values"));
  setRoot(mapNames_.clear, intern("clear"));
  setGlobal(globalSlot("Map"), Value::object(newNative("Map", 0, nativeMap)));
}

}  // namespace spindle::vm
