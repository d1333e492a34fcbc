// trace_test.cc: the execution trace's recorder (trace.h) and viewer page (traceview.h):
// events recorded only while on, the file is valid JSON with each event kind, concurrent
// emitters racing stop(), errors for a second start / a stop with none / a bad path.
#include "runtime/testing/files.h"
#include "runtime/trace.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "runtime/gcevents.h"
#include "runtime/traceview.h"

namespace trace = spindle::runtime::trace;

namespace {

std::int64_t mono() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

using spindle::runtime::testing::slurp;
using spindle::runtime::testing::tempPath;

// A strict JSON recogniser (RFC 8259 grammar): true when all of s is one value.
struct Json {
  const std::string& s;
  std::size_t i = 0;
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) i++;
  }
  bool lit(const char* w) {
    const std::string_view v(w);
    if (s.compare(i, v.size(), v) != 0) return false;
    i += v.size();
    return true;
  }
  bool str() {
    if (s[i] != '"') return false;
    for (i++; i < s.size(); i++) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (c == '"') {
        i++;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        i++;
        if (i >= s.size()) return false;
        if (s[i] == 'u') {
          for (int k = 0; k < 4; k++) {
            if (++i >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
          }
        } else if (std::string_view("\"\\/bfnrt").find(s[i]) == std::string_view::npos) {
          return false;
        }
      }
    }
    return false;
  }
  bool num() {
    const std::size_t start = i;
    if (s[i] == '-') i++;
    if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    if (s[i] == '0') {
      i++;
    } else {
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) i++;
    }
    if (i < s.size() && s[i] == '.') {
      i++;
      if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) i++;
    }
    return i > start;
  }
  bool value() {
    ws();
    if (i >= s.size()) return false;
    bool ok;
    if (s[i] == '{' || s[i] == '[') {
      const char close = s[i] == '{' ? '}' : ']';
      const bool obj = s[i] == '{';
      i++;
      ws();
      if (i < s.size() && s[i] == close) {
        i++;
        ok = true;
      } else {
        for (;;) {
          if (obj) {
            ws();
            if (i >= s.size() || !str()) return false;
            ws();
            if (i >= s.size() || s[i] != ':') return false;
            i++;
          }
          if (!value()) return false;
          ws();
          if (i < s.size() && s[i] == ',') {
            i++;
            continue;
          }
          if (i < s.size() && s[i] == close) {
            i++;
            break;
          }
          return false;
        }
        ok = true;
      }
    } else if (s[i] == '"') {
      ok = str();
    } else if (s[i] == 't' || s[i] == 'f' || s[i] == 'n') {
      ok = lit("true") || lit("false") || lit("null");
    } else {
      ok = num();
    }
    ws();
    return ok;
  }
  bool whole() { return value() && i == s.size(); }
};

bool validJSON(const std::string& s) { return Json{s}.whole(); }

}  // namespace

TEST_CASE("the JSON recogniser accepts JSON and rejects what is not") {
  CHECK(validJSON(R"({"a":[1,2.5,-3,{"b":"x\"y\u00e9"}],"c":true,"d":null})"));
  CHECK_FALSE(validJSON(R"({"a":[1,2,]})"));
  CHECK_FALSE(validJSON(R"({"a":1)"));
  CHECK_FALSE(validJSON("{\"a\":\"\x01\"}"));
  CHECK_FALSE(validJSON(R"({"a":01})"));
}

TEST_CASE("off by default: emissions record nothing") {
  REQUIRE_FALSE(trace::enabled());
  const std::size_t before = trace::eventCount();
  trace::fiberUnpark(0, 1);
  trace::counter("heapLive", 1);
  CHECK(trace::eventCount() == before);
}

TEST_CASE("a trace holds every event kind and is valid JSON") {
  const std::string path = tempPath("trace_test_json");
  std::string err;
  REQUIRE(trace::start(path, &err));
  CHECK(trace::enabled());
  CHECK(trace::path() == path);
  std::string err2;
  CHECK_FALSE(trace::start(path, &err2));  // one trace at a time
  CHECK(err2.find("already") != std::string::npos);

  const std::int64_t t0 = mono();
  trace::fiberSpawn(0, 1, 2);
  trace::fiberRun(0, 1, "main \"quoted\" <\\/script>", t0, "park", "chan send", false);
  trace::fiberUnpark(1, 1);
  trace::fiberRun(1, 2, "worker()", t0, "exit", "", true);
  trace::span(0, "gc", "mark assist", t0);
  trace::span(1, "gc", "idle mark", t0);
  trace::span(-1, "foreign", "foreign call", t0, "strlen");
  trace::counter("runnable fibers", 3);
  spindle::runtime::GCEvent ev;
  ev.cycle = 7;
  ev.cause = spindle::runtime::GCCause::Forced;
  ev.sweepTermination = {0, 1000};
  ev.mark = {1000, 5000};
  ev.markTermination = {6000, 2000};
  ev.sweep = {8000, 4000};
  ev.stw1ToSafepointNs = 300;
  ev.stw1WorkNs = 700;
  ev.stw2ToSafepointNs = 500;
  ev.stw2WorkNs = 1500;
  ev.heapBefore = 4 << 20;
  ev.heapAtTermination = 5 << 20;
  ev.heapMarked = 2 << 20;
  ev.heapGoal = 4 << 20;
  trace::gcCycle(ev, t0);
  CHECK(trace::eventCount() >= 10);
  REQUIRE(trace::stop(&err));
  CHECK_FALSE(trace::enabled());
  CHECK(trace::path().empty());

  const std::string json = slurp(path);
  REQUIRE(!json.empty());
  CHECK(validJSON(json));
  for (const char* want :
       {"\"ph\":\"X\"", "\"ph\":\"i\"", "\"ph\":\"s\"", "\"ph\":\"f\"", "\"ph\":\"C\"", "\"ph\":\"M\"",
        "\"name\":\"park\"", "\"reason\":\"chan send\"", "\"name\":\"unpark\"", "\"name\":\"spawn\"",
        "\"name\":\"worker()\"", "\"name\":\"mark assist\"", "\"name\":\"idle mark\"",
        "\"name\":\"foreign call\"", "\"detail\":\"strlen\"", "\"name\":\"sweep termination\"",
        "\"name\":\"concurrent mark\"", "\"name\":\"mark termination\"", "\"name\":\"sweep\"",
        "\"name\":\"STW sweep termination\"", "\"name\":\"STW mark termination\"", "\"heapLive\":",
        "\"heapGoal\":", "\"runnable fibers\":", "\"name\":\"P 0\"", "\"name\":\"GC (collector)\"",
        "gc 7 (forced)"}) {
    CHECK_MESSAGE(json.find(want) != std::string::npos, want);
  }
  // The STW pause's duration is its time to safepoint plus its work: 1000 ns = 1.000 us.
  CHECK(json.find("\"name\":\"STW sweep termination\",\"dur\":1.000") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("stop with no trace, a path that cannot be opened: errors, nothing aborts") {
  std::string err;
  CHECK_FALSE(trace::stop(&err));
  CHECK(err.find("no trace") != std::string::npos);
  CHECK_FALSE(trace::start("/nonexistent-dir/x/trace.json", &err));
  CHECK(err.find("cannot open") != std::string::npos);
  CHECK_FALSE(trace::enabled());
}

TEST_CASE("a later trace starts empty") {
  const std::string path = tempPath("trace_test_again");
  std::string err;
  REQUIRE(trace::start(path, &err));
  trace::span(0, "gc", "first trace only", mono());
  REQUIRE(trace::stop(&err));
  REQUIRE(trace::start(path, &err));
  trace::span(0, "gc", "second trace", mono());
  REQUIRE(trace::stop(&err));
  const std::string json = slurp(path);
  CHECK(json.find("first trace only") == std::string::npos);
  CHECK(json.find("second trace") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("threads emitting while the trace stops: every recorded event is in the file") {
  const std::string path = tempPath("trace_test_threads");
  std::string err;
  REQUIRE(trace::start(path, &err));
  std::atomic<bool> go{true};
  std::atomic<int> started{0};
  std::vector<std::thread> ts;
  for (int k = 0; k < 4; k++) {
    ts.emplace_back([&, k] {
      started.fetch_add(1);
      while (go.load(std::memory_order_relaxed)) {
        if (trace::enabled()) trace::span(k, "gc", "busy", mono());
      }
    });
  }
  while (started.load() < 4) std::this_thread::yield();
  while (trace::eventCount() < 100) std::this_thread::yield();
  REQUIRE(trace::stop(&err));
  const std::size_t after = trace::eventCount();
  go.store(false);
  for (auto& t : ts) t.join();
  CHECK(after == 0);  // stop drained every buffer; nothing lands once it is off
  const std::string json = slurp(path);
  CHECK(validJSON(json));
  CHECK(json.find("\"name\":\"busy\"") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("the HTML page embeds the trace inline and cannot be cut by </script>") {
  const std::string json = R"({"traceEvents":[{"ph":"X","name":"</script><b>x","ts":0,"dur":1,"pid":1,"tid":0}]})";
  const std::string html = trace::traceHTML(json, "t<1>.json");
  CHECK(html.find("</script><b>") == std::string::npos);
  CHECK(html.find(R"(<\/script><b>x)") != std::string::npos);
  CHECK(html.find("t&lt;1&gt;.json") != std::string::npos);
  CHECK(html.find("http") == std::string::npos);  // nothing is fetched
  CHECK(html.find("id=\"status\"") != std::string::npos);
}

TEST_CASE("a trace file ending in .html is the timeline page") {
  const std::string path = tempPath("trace_test_page") + ".html";
  std::string err;
  REQUIRE(trace::start(path, &err));
  trace::span(0, "gc", "in the page", mono());
  REQUIRE(trace::stop(&err));
  const std::string html = slurp(path);
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(html.find("in the page") != std::string::npos);
  std::remove(path.c_str());
}
