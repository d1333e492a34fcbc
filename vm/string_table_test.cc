// The interned-string table under the collector: fibers on every P intern the same texts
// while cycles run back to back (continuous gcstress 1, checkmark), so lookups race with the
// sweepers unlinking dead strings. Each text is interned twice in a row and must give one
// object (a dead string handed out and then freed would give two, or a poisoned one).
#include <doctest/doctest.h>

#include <string>

#include "vm/spindle.h"
#include "vm/vm.h"

TEST_CASE("fibers intern the same strings while cycles sweep them: one object per text") {
  spindle::Options o;
  o.procs = 4;
  o.gcstress_continuous = 1;
  o.gccheckmark = true;
  std::string out;
  o.output = [&out](std::string_view s) { out += s; };
  spindle::Vm vm(o);
  const char* script = R"(
var letters = ["a", "b", "c", "d", "e", "f", "g", "h"];
var kept = [];
for (var i = 0; i < 8; i = i + 1) kept.push(letters[i] + letters[i]);
fun worker(w, done) {
  var ok = true;
  for (var round = 0; round < 6; round = round + 1) {
    for (var i = 0; i < 8; i = i + 1) {
      for (var j = 0; j < 8; j = j + 1) {
        // This fiber's own text, garbage once compared: it dies in one cycle and is
        // interned again, maybe before its span is swept (the lookup must not hand out
        // the dead string: the sweep would free it while t1 holds it, and t2 would be
        // another object).
        var t1 = letters[w] + letters[i] + letters[j];
        var junk = [t1, [i], [j]];  // allocation: gcstress requests cycles here
        var t2 = letters[w] + letters[i] + letters[j];
        if (t1 != t2 or t1.len() != 3) ok = false;
      }
      // Kept alive by the list: every fiber must get the kept object.
      if (letters[i] + letters[i] != kept[i]) ok = false;
    }
  }
  done.send(ok);
}
fun main() {
  var done = Channel(4);
  for (var w = 0; w < 4; w = w + 1) spawn worker(w, done);
  var all = true;
  for (var w = 0; w < 4; w = w + 1) if (!done.recv()) all = false;
  print all;
}
main();
)";
  // Until cycles overlapped the fibers (progress, not time: gcstress folds the requests
  // made while a cycle runs, so how many a run sees depends on the machine).
  const std::uint64_t start = vm.stats().gc_cycles;
  int runs = 0;
  std::string want;
  while (runs < 50 && (runs == 0 || vm.stats().gc_cycles < start + 8)) {
    spindle::Result r = vm.run(runs == 0 ? script : "main();");
    REQUIRE(r.ok());
    want += "true\n";
    ++runs;
  }
  CHECK(out == want);
  CHECK(vm.stats().gc_cycles >= start + 8);
}
