// flat_index.h: the compiler's hash index from a key to a position in an array it does
// not own (a constant in a chunk's constant table, a local in a function's local stack).
//
// Design. Open addressing with linear probing over one power-of-two array of 8-byte
// entries {hash, position}: no allocation per key, no copy of the key (the caller's array
// holds it; `eq(position)` compares against it), and a miss or a hit touches one or two
// cache lines. Erasure shifts the following entries of the cluster back (Knuth's
// algorithm R), so there are no tombstones and a probe sequence never grows with churn.
// The table doubles when it would pass load factor 1/2 (rehashing moves the stored
// hashes: no key is read again), so n inserts are O(n) steps in all.
//
// Invariants: capacity is 0 or a power of two >= 16; size() * 2 <= capacity; every key
// reaches its entry from its home slot (hash & mask) without crossing an empty slot; no
// two entries have equal keys (insert finds before it adds). `probes()` counts every slot
// examined, so a test can check that a sequence of operations stays linear without timing
// it. Not thread-safe: one compile owns each index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string_view>
#include <utility>
#include <vector>

namespace spindle::lang {

class FlatIndex {
 public:
  static constexpr std::uint32_t kNone = UINT32_MAX;

  std::size_t size() const { return size_; }
  std::uint64_t probes() const { return probes_; }

  // The position of the key with this hash for which eq(position) holds, or kNone.
  template <class Eq>
  std::uint32_t find(std::uint32_t hash, Eq&& eq) const {
    if (size_ == 0) return kNone;
    for (std::size_t i = hash & mask_;; i = (i + 1) & mask_) {
      ++probes_;
      const Entry& e = entries_[i];
      if (e.position == kNone) return kNone;
      if (e.hash == hash && eq(e.position)) return e.position;
    }
  }

  // The entry of the key (hash, eq): {its position, false} if present; else it is added
  // with `position` and {position, true} is returned.
  template <class Eq>
  std::pair<std::uint32_t*, bool> insert(std::uint32_t hash, Eq&& eq, std::uint32_t position) {
    if ((size_ + 1) * 2 > entries_.size()) grow();
    for (std::size_t i = hash & mask_;; i = (i + 1) & mask_) {
      ++probes_;
      Entry& e = entries_[i];
      if (e.position == kNone) {
        e = Entry{hash, position};
        ++size_;
        return {&e.position, true};
      }
      if (e.hash == hash && eq(e.position)) return {&e.position, false};
    }
  }

  // Removes the key (hash, eq); returns whether it was present.
  template <class Eq>
  bool erase(std::uint32_t hash, Eq&& eq) {
    if (size_ == 0) return false;
    std::size_t i = hash & mask_;
    for (;; i = (i + 1) & mask_) {
      ++probes_;
      const Entry& e = entries_[i];
      if (e.position == kNone) return false;
      if (e.hash == hash && eq(e.position)) break;
    }
    // Close the gap at i: an entry later in the cluster moves into it unless its home
    // slot lies cyclically in (i, j] (it would then be unreachable from its home).
    for (std::size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
      ++probes_;
      Entry& e = entries_[j];
      if (e.position == kNone) break;
      const std::size_t home = e.hash & mask_;
      const bool reachable = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (reachable) continue;
      entries_[i] = e;
      i = j;
    }
    entries_[i] = Entry{};
    --size_;
    return true;
  }

  // Hashes of the two kinds of keys the compiler indexes.
  static std::uint32_t hashText(std::string_view s) {
    return mix(std::hash<std::string_view>{}(s));
  }
  static std::uint32_t hashNumber(double d) {
    std::uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    return mix(bits);
  }

 private:
  struct Entry {
    std::uint32_t hash = 0;
    std::uint32_t position = kNone;
  };

  // splitmix64's finaliser: every input bit reaches the low bits the mask keeps.
  static std::uint32_t mix(std::uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return static_cast<std::uint32_t>(x);
  }

  void grow() {
    std::vector<Entry> old = std::move(entries_);
    entries_.assign(old.empty() ? 16 : old.size() * 2, Entry{});
    mask_ = entries_.size() - 1;
    for (const Entry& e : old) {
      if (e.position == kNone) continue;
      std::size_t i = e.hash & mask_;
      while (entries_[i].position != kNone) {
        ++probes_;
        i = (i + 1) & mask_;
      }
      ++probes_;
      entries_[i] = e;
    }
  }

  std::vector<Entry> entries_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
  mutable std::uint64_t probes_ = 0;
};

}  // namespace spindle::lang
