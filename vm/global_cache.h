// global_cache.h: the host's name -> global slot resolution without a lock
// (Vm::setGlobal / Vm::global by name, Lua's lua_setglobal cost).
//
// Design. A global's slot never changes once the name has one (lang::GlobalTable), so a
// resolution may be cached forever. The cache is a fixed direct-mapped table of atomic
// pointers to immutable entries {name, slot}: a lookup hashes the name, loads its bucket
// (acquire) and compares the name; no lock, no allocation. A miss resolves under the
// table's locks (VM::globalSlot) and stores the entry into its bucket (release),
// replacing whatever name was there. Entries are owned by `entries_` (one per name ever
// cached, under lock_) and never freed before the cache, so a reader may still compare a
// replaced entry's name.
//
// Invariants.
//   - An entry's slot is covered by the VM's globals array when the entry is published:
//     add runs after VM::globalSlot grew the array (its release store of the array
//     happens before add's release store, which the lookup's acquire pairs with).
//   - table_[i] is null or points into entries_.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace spindle::vm {

class GlobalSlotCache {
 public:
  // The cached slot of `name`, or -1.
  std::int64_t find(std::string_view name) const {
    const Entry* e = table_[index(name)].load(std::memory_order_acquire);
    if (e != nullptr && e->name == name) return e->slot;
    return -1;
  }
  // Caches name -> slot (slot: VM::globalSlot(name), the array grown to cover it).
  void add(std::string_view name, std::uint32_t slot) {
    std::lock_guard<std::mutex> lk(lock_);
    std::unique_ptr<const Entry>& owned = entries_[std::string(name)];
    if (owned == nullptr) owned = std::make_unique<const Entry>(Entry{std::string(name), slot});
    table_[index(name)].store(owned.get(), std::memory_order_release);
  }

 private:
  struct Entry {
    std::string name;
    std::uint32_t slot;
  };
  static constexpr std::size_t kBuckets = 64;
  // FNV-1a: global names are short, and this is the whole cost of a hit but one compare.
  static std::size_t index(std::string_view name) {
    std::uint32_t h = 2166136261u;
    for (const char c : name) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
    return (h ^ (h >> 16)) & (kBuckets - 1);
  }
  std::array<std::atomic<const Entry*>, kBuckets> table_{};
  std::mutex lock_;
  std::unordered_map<std::string, std::unique_ptr<const Entry>> entries_;  // under lock_
};

}  // namespace spindle::vm
