// bigmap_test.cc: a map of 10M number keys end to end (map.h): set in order (the dense
// prefix, growth through every size), len, a sample of reads, half removed, iterated in
// order, the first key removed and added again (it goes last: the prefix is cut and its
// 5M live entries are linked into the index), then looked up through the index. Not run
// under TSan (tag no_tsan): one fiber, no race to find, and too slow there.
#include <doctest/doctest.h>

#include <string>

#include "vm/spindle.h"

namespace {

TEST_CASE("a map of 10M number keys: set, read, remove half, iterate, re-add") {
  std::string out;
  spindle::Options o;
  o.output = [&out](std::string_view s) { out.append(s); };
  spindle::Vm vm(o);
  const auto r = vm.run(R"(
    var m = {};
    var n = 10000000;
    for (var i = 0; i < n; i = i + 1) m[i] = i;
    print m.len();
    var ok = true;
    for (var i = 0; i < n; i = i + 9973) if (m[i] != i) ok = false;
    print ok;
    for (var i = 0; i < n; i = i + 2) m.remove(i);
    print m.len();
    var count = 0;
    var inOrder = true;
    var last = -1;
    for (var k in m) {
      count = count + 1;
      if (k != last + 2 or m[k] != k) inOrder = false;
      last = k;
    }
    print count;
    print inOrder;
    m[0] = "last";
    ok = true;
    for (var i = 1; i < n; i = i + 9973) {
      if (i % 2 == 1) { if (m[i] != i) ok = false; } else if (m[i] != nil) ok = false;
    }
    print ok;
    print m[n - 1] == n - 1;
    print m[0];
    var ks = m.keys();
    print ks.len() == n / 2 + 1;
    print ks[0];
    print ks[ks.len() - 1];
  )");
  REQUIRE(r.ok());
  CHECK(out == "1e+07\ntrue\n5e+06\n5e+06\ntrue\ntrue\ntrue\nlast\ntrue\n1\n0\n");
}

}  // namespace
