// trace_records_test.cc: the trace's compact records (trace.cc) and their expansion at
// stop(): each emission expands to exactly its Chrome trace events (every field but the
// times), and names interned per buffer stay with their events across threads, a buffer
// reused by a later thread, and a later trace.
#include <doctest/doctest.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "runtime/testing/files.h"
#include "runtime/trace.h"

namespace trace = spindle::runtime::trace;

namespace {

std::int64_t mono() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

using spindle::runtime::testing::slurp;
using spindle::runtime::testing::tempPath;

// The file's events, one per line, with the numbers of "ts" and "dur" replaced by '#'.
std::vector<std::string> eventLines(const std::string& json) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while ((at = json.find("\n{", at)) != std::string::npos) {
    at++;
    std::size_t end = json.find('\n', at);
    if (end == std::string::npos) end = json.size();
    std::string line = json.substr(at, end - at);
    if (!line.empty() && line.back() == ',') line.pop_back();
    for (const char* key : {"\"ts\":", "\"dur\":"}) {
      const std::size_t k = line.find(key);
      if (k == std::string::npos) continue;
      std::size_t v = k + std::char_traits<char>::length(key), e = v;
      while (e < line.size() && (std::isdigit(static_cast<unsigned char>(line[e])) || line[e] == '.')) e++;
      line.replace(v, e - v, "#");
    }
    out.push_back(line);
  }
  return out;
}

std::string stopAndRead(const std::string& path) {
  std::string err;
  REQUIRE(trace::stop(&err));
  std::string json = slurp(path);
  std::remove(path.c_str());
  return json;
}

}  // namespace

TEST_CASE("each record expands to exactly its events") {
  const std::string path = tempPath("trace_records_kinds");
  std::string err;
  REQUIRE(trace::start(path, &err));
  const std::int64_t t0 = mono();
  trace::fiberSpawn(0, 1, 2);
  trace::fiberSpawn(-1, 0, 3);
  trace::fiberRun(0, 1, "main()", t0, "park", "chan send", false);
  trace::fiberRun(1, 2, "worker()", t0, "exit", "", true);
  trace::fiberRun(0, 1, "main()", t0, "yield", "", false);
  trace::fiberUnpark(1, 1);
  trace::fiberUnpark(-1, 5);
  trace::span(0, "gc", "mark assist", t0);
  trace::span(-1, "foreign", "foreign call", t0, "strlen");
  trace::span(2, "foreign", "foreign call", t0, std::string(60, 'x'));
  trace::counter("runnable fibers", 3);
  trace::counter("heapLive", -1);
  const std::vector<std::string> lines = eventLines(stopAndRead(path));
  const std::multiset<std::string> got(lines.begin(), lines.end());
  const std::vector<std::string> want = {
      R"j({"ph":"s","pid":1,"tid":0,"ts":#,"cat":"spawn","name":"spawn","id":2,"args":{"parent":1,"child":2}})j",
      R"j({"ph":"i","pid":1,"tid":0,"ts":#,"cat":"spawn","name":"spawn","s":"t","args":{"parent":1,"child":2}})j",
      R"j({"ph":"s","pid":1,"tid":1001,"ts":#,"cat":"spawn","name":"spawn","id":3,"args":{"parent":0,"child":3}})j",
      R"j({"ph":"i","pid":1,"tid":1001,"ts":#,"cat":"spawn","name":"spawn","s":"t","args":{"parent":0,"child":3}})j",
      R"j({"ph":"X","pid":1,"tid":0,"ts":#,"cat":"fiber","name":"main()","dur":#,"args":{"goid":1,"end":"park","reason":"chan send"}})j",
      R"j({"ph":"i","pid":1,"tid":0,"ts":#,"cat":"park","name":"park","s":"t","args":{"goid":1,"reason":"chan send"}})j",
      R"j({"ph":"X","pid":1,"tid":1,"ts":#,"cat":"fiber","name":"worker()","dur":#,"args":{"goid":2,"end":"exit"}})j",
      R"j({"ph":"f","pid":1,"tid":1,"ts":#,"cat":"spawn","name":"spawn","bp":"e","id":2})j",
      R"j({"ph":"X","pid":1,"tid":0,"ts":#,"cat":"fiber","name":"main()","dur":#,"args":{"goid":1,"end":"yield"}})j",
      R"j({"ph":"i","pid":1,"tid":1,"ts":#,"cat":"unpark","name":"unpark","s":"t","args":{"goid":1}})j",
      R"j({"ph":"i","pid":1,"tid":1001,"ts":#,"cat":"unpark","name":"unpark","s":"t","args":{"goid":5}})j",
      R"j({"ph":"X","pid":1,"tid":0,"ts":#,"cat":"gc","name":"mark assist","dur":#})j",
      R"j({"ph":"X","pid":1,"tid":1001,"ts":#,"cat":"foreign","name":"foreign call","dur":#,"args":{"detail":"strlen"}})j",
      R"j({"ph":"X","pid":1,"tid":2,"ts":#,"cat":"foreign","name":"foreign call","dur":#,"args":{"detail":")j" +
          std::string(trace::kNameCap - 1, 'x') + R"j("}})j",
      R"j({"ph":"C","pid":1,"tid":1000,"ts":#,"cat":"counter","name":"runnable fibers","args":{"runnable fibers":3}})j",
      R"j({"ph":"C","pid":1,"tid":1000,"ts":#,"cat":"counter","name":"heapLive","args":{"heapLive":-1}})j",
  };
  std::size_t events = 0;
  for (const std::string& l : lines) events += l.find("\"ph\":\"M\"") == std::string::npos;
  CHECK(events == want.size());  // nothing more: no event kind expands twice
  for (const std::string& w : want) CHECK_MESSAGE(got.count(w) == 1, w);
}

TEST_CASE("interned names stay with their events: threads, a reused buffer, a later trace") {
  const std::string path = tempPath("trace_records_names");
  std::string err;
  // Each (thread k, round) names goid g "f<g % 7 + 10 * round>()" on track k: a name
  // repeats within a buffer (interned once) and differs between rounds.
  auto emit = [](int k, int round) {
    for (int i = 0; i < 300; i++) {
      const std::uint64_t goid = static_cast<std::uint64_t>(k * 1000 + i);
      const std::string name = "f" + std::to_string(goid % 7 + 10 * round) + "()";
      trace::fiberRun(k, goid, name.c_str(), mono(), i % 2 == 0 ? "yield" : "park",
                      i % 2 == 0 ? "" : (i % 3 == 0 ? "select" : "chan receive"), false);
    }
  };
  auto check = [](const std::string& json, int round) {
    std::size_t runs = 0, wrong = 0;
    for (const std::string& l : eventLines(json)) {
      if (l.find("\"cat\":\"fiber\"") == std::string::npos) continue;
      runs++;
      const std::size_t g = l.find("\"goid\":");
      REQUIRE(g != std::string::npos);
      const std::uint64_t goid = std::stoull(l.substr(g + 7));
      const std::string name = "\"name\":\"f" + std::to_string(goid % 7 + 10 * round) + "()\"";
      const bool park = goid % 1000 % 2 == 1;
      const char* reason = !park ? "\"end\":\"yield\"}" : goid % 1000 % 3 == 0 ? "\"reason\":\"select\"" : "\"reason\":\"chan receive\"";
      const std::string track = "\"tid\":" + std::to_string(goid / 1000) + ",";
      if (l.find(name) == std::string::npos || l.find(reason) == std::string::npos || l.find(track) == std::string::npos) {
        wrong++;
      }
    }
    CHECK(runs == 4 * 300);
    CHECK(wrong == 0);
  };
  for (int round = 0; round < 2; round++) {
    // Round 1's threads reuse the buffers (and their tables) of round 0's, which exited.
    REQUIRE(trace::start(path, &err));
    std::vector<std::thread> ts;
    for (int k = 0; k < 4; k++) ts.emplace_back(emit, k, round);
    for (auto& t : ts) t.join();
    check(stopAndRead(path), round);
  }
}
