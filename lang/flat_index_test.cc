// flat_index_test.cc: FlatIndex (flat_index.h), the compiler's name and constant index.
// Linear growth is checked by counting probes, not by timing: a million distinct names
// cost a bounded number of probes each (a chained or quadratic structure would not), and
// shadowing churn (insert, overwrite, erase) keeps every key reachable.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "lang/flat_index.h"

namespace spindle::lang {
namespace {

struct Names {
  std::vector<std::string> keys;
  FlatIndex index;
  auto eq(const std::string& k) {
    return [this, &k](std::uint32_t p) { return keys[p] == k; };
  }
  std::uint32_t find(const std::string& k) { return index.find(FlatIndex::hashText(k), eq(k)); }
  bool add(const std::string& k) {
    keys.push_back(k);
    auto [entry, added] = index.insert(FlatIndex::hashText(k), eq(k), static_cast<std::uint32_t>(keys.size() - 1));
    if (!added) keys.pop_back();
    return added;
  }
};

constexpr int kMillion = 1000000;

TEST_CASE("a million compiler-style names are indexed in a linear number of probes") {
  Names n;
  for (int i = 0; i < kMillion; ++i) REQUIRE(n.add(fmt::format("l{}", i)));
  CHECK(n.index.size() == kMillion);
  // Inserts plus every move made while doubling: at load <= 1/2 linear probing averages
  // 2.5 probes per insert; quadratic behaviour would be ~10^11.
  const std::uint64_t afterInserts = n.index.probes();
  CHECK(afterInserts < 6ULL * kMillion);
  for (int i = 0; i < kMillion; ++i) REQUIRE(n.find(fmt::format("l{}", i)) == static_cast<std::uint32_t>(i));
  CHECK(n.index.probes() - afterInserts < 3ULL * kMillion);
  const std::uint64_t afterHits = n.index.probes();
  for (int i = 0; i < kMillion; ++i) REQUIRE(n.find(fmt::format("m{}", i)) == FlatIndex::kNone);
  CHECK(n.index.probes() - afterHits < 4ULL * kMillion);
  // A second insert of a present key finds it and adds nothing.
  CHECK_FALSE(n.add("l123"));
  CHECK(n.index.size() == kMillion);
}

TEST_CASE("a million numbers that differ in their high bits or low bits alike spread") {
  std::vector<double> keys;
  FlatIndex index;
  auto add = [&](double d) {
    keys.push_back(d);
    auto eq = [&](std::uint32_t p) { return keys[p] == d; };
    return index.insert(FlatIndex::hashNumber(d), eq, static_cast<std::uint32_t>(keys.size() - 1)).second;
  };
  for (int i = 0; i < kMillion / 2; ++i) REQUIRE(add(i));               // small integers
  for (int i = 0; i < kMillion / 2; ++i) REQUIRE(add(0.5 + i * 1e-9));  // close fractions
  CHECK(index.size() == kMillion);
  CHECK(index.probes() < 6ULL * kMillion);
}

TEST_CASE("erase keeps every other key of a cluster reachable") {
  // Names erased in LIFO and in scattered order, at every table size up to 4096, with
  // each survivor checked after each round: a gap left inside a cluster (a missing back
  // shift) makes a later key unreachable.
  Names n;
  for (int i = 0; i < 4096; ++i) REQUIRE(n.add(fmt::format("v{}", i)));
  for (int i = 0; i < 4096; i += 3) {
    const std::string k = fmt::format("v{}", i);
    REQUIRE(n.index.erase(FlatIndex::hashText(k), n.eq(k)));
    CHECK_FALSE(n.index.erase(FlatIndex::hashText(k), n.eq(k)));
  }
  for (int i = 0; i < 4096; ++i) {
    const std::uint32_t p = n.find(fmt::format("v{}", i));
    if (i % 3 == 0) {
      CHECK(p == FlatIndex::kNone);
    } else {
      CHECK(p == static_cast<std::uint32_t>(i));
    }
  }
  // Erase the rest from the top down (a scope closing), then the table is empty and
  // accepts the names again.
  for (int i = 4095; i >= 0; --i) {
    if (i % 3 == 0) continue;
    const std::string k = fmt::format("v{}", i);
    REQUIRE(n.index.erase(FlatIndex::hashText(k), n.eq(k)));
  }
  CHECK(n.index.size() == 0);
  CHECK(n.find("v1") == FlatIndex::kNone);
  n.keys.clear();
  CHECK(n.add("v1"));
  CHECK(n.find("v1") == 0);
}

}  // namespace
}  // namespace spindle::lang
