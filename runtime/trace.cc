// trace.cc: see trace.h. Locks: State::lock (start/stop, the file) -> State::listLock
// (the list of buffers) -> Buffer::lock (one thread's events). Appenders take only their
// own Buffer::lock (and listLock once per thread, to find a buffer).
#include "runtime/trace.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <iterator>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <vector>

#include "runtime/gcevents.h"
#include "runtime/traceview.h"

namespace spindle::runtime::trace {

namespace detail {
std::atomic<bool> gEnabled{false};
}  // namespace detail

namespace {

inline constexpr std::int32_t kStwTrack = 1002;

std::int64_t now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // the scheduler's nanotime() clock
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

enum class Kind : std::uint8_t { Run, Unpark, Spawn, Span, Counter };

// One recorded event. Strings are static (literals, waitReasonString's) except label.
struct Ev {
  std::int64_t ts = 0;   // nanotime
  std::int64_t dur = 0;  // ns (Run, Span)
  std::uint64_t a = 0;   // goid (Run, Unpark), child (Spawn), value (Counter)
  std::uint64_t b = 0;   // parent (Spawn)
  const char* cat = "";
  const char* name = "";
  const char* s1 = "";   // Run: how it ended; Counter: series
  const char* s2 = "";   // Run: wait reason
  std::int32_t tid = 0;
  Kind kind = Kind::Span;
  bool first = false;    // Run: the fiber's first run span (a spawn flow ends here)
  char label[kNameCap] = {};  // Run: the namer's name; Span: an optional detail
};

struct Buffer {
  std::mutex lock;
  std::vector<Ev> evs;         // lock
  std::size_t dropped = 0;     // lock
  std::atomic<bool> owned{true};  // a thread appends here; release when it exits
};

struct State {
  std::mutex lock;
  std::FILE* file = nullptr;  // lock: the running trace's file
  std::string path;           // lock
  std::atomic<std::int64_t> startNs{0};  // relaxed: written before gEnabled's store
  std::mutex listLock;
  std::vector<Buffer*> buffers;  // listLock; never freed (a later thread reuses one)
  std::atomic<FiberNamer> namer{nullptr};  // relaxed: set once by the vm layer
};
State& state() {
  static auto* s = new State;  // never destroyed: Ms may emit while statics unwind
  return *s;
}

struct Holder {
  Buffer* b = nullptr;
  ~Holder() {
    if (b != nullptr) b->owned.store(false, std::memory_order_release);
  }
};
thread_local Holder tlsBuffer;

Buffer* myBuffer() {
  if (tlsBuffer.b != nullptr) return tlsBuffer.b;
  State& s = state();
  std::lock_guard<std::mutex> lk(s.listLock);
  for (Buffer* b : s.buffers) {
    bool want = false;
    if (!b->owned.load(std::memory_order_acquire) &&
        b->owned.compare_exchange_strong(want, true, std::memory_order_acq_rel)) {
      tlsBuffer.b = b;
      return b;
    }
  }
  auto* b = new Buffer;
  s.buffers.push_back(b);
  tlsBuffer.b = b;
  return b;
}

void append(const Ev& e) {
  Buffer* b = myBuffer();
  std::lock_guard<std::mutex> lk(b->lock);
  // Under the lock: stop() clears the flag before it drains, so nothing lands after.
  if (!enabled()) return;
  if (b->evs.size() >= kMaxEventsPerBuffer) {
    b->dropped++;
    return;
  }
  b->evs.push_back(e);
}

void copyLabel(char* dst, std::string_view src) {
  const std::size_t n = std::min(src.size(), kNameCap - 1);
  src.copy(dst, n);
  dst[n] = '\0';
}

// --- writing ---------------------------------------------------------------------------

// out += the decimal digits of v (std::to_chars: no format string to parse).
void appendInt(std::string& out, std::int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}
void appendUint(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}
// A JSON string: appended whole when nothing in it needs escaping (every static name).
void appendStr(std::string& out, std::string_view s) {
  for (char ch : s) {
    if (ch == '"' || ch == '\\' || static_cast<unsigned char>(ch) < 0x20) {
      appendJSONString(out, s);
      return;
    }
  }
  out += '"';
  out += s;
  out += '"';
}

// Formats events into `out` and hands it to the file a chunk at a time (kChunk), so the
// text of a large trace is never in memory at once. In a page (html), "</" is written as
// "<\/" (traceview.h), also across chunks.
struct Writer {
  static constexpr std::size_t kChunk = 1 << 20;
  std::string out;
  std::int64_t origin = 0;
  bool first = true;
  std::FILE* file = nullptr;
  bool html = false;
  bool prevLt = false;  // html: the last character written was '<'
  bool ok = true;

  void write(std::string_view s) {
    if (!html) {
      ok = ok && std::fwrite(s.data(), 1, s.size(), file) == s.size();
      return;
    }
    std::size_t start = 0;
    for (std::size_t i = 0; i < s.size(); i++) {
      if (s[i] == '/' && prevLt) {
        ok = ok && std::fwrite(s.data() + start, 1, i - start, file) == i - start;
        ok = ok && std::fputc('\\', file) != EOF;
        start = i;
      }
      prevLt = s[i] == '<';
    }
    ok = ok && std::fwrite(s.data() + start, 1, s.size() - start, file) == s.size() - start;
  }
  void flush(bool force) {
    if (!force && out.size() < kChunk) return;
    write(out);
    out.clear();
  }

  // ,"key":US.NNN (microseconds with nanosecond decimals)
  void ts(const char* key, std::int64_t ns) {
    if (ns < 0) ns = 0;
    out += ",\"";
    out += key;
    out += "\":";
    appendInt(out, ns / 1000);
    const int frac = static_cast<int>(ns % 1000);
    const char digits[5] = {'.', static_cast<char>('0' + frac / 100), static_cast<char>('0' + frac / 10 % 10),
                            static_cast<char>('0' + frac % 10), '\0'};
    out += digits;
  }
  // Opens one event: {"ph":..,"pid":1,"tid":..,"ts":..,"cat":..,"name":..
  void open(char ph, std::int32_t tid, std::int64_t at, const char* cat, std::string_view name) {
    out += first ? "\n{\"ph\":\"" : ",\n{\"ph\":\"";
    first = false;
    out += ph;
    out += "\",\"pid\":1,\"tid\":";
    appendInt(out, tid);
    ts("ts", at - origin);
    out += ",\"cat\":";
    appendStr(out, cat);
    out += ",\"name\":";
    appendStr(out, name);
  }
  void field(const char* key, std::string_view v) {
    out += ",\"";
    out += key;
    out += "\":";
    appendStr(out, v);
  }
  void meta(std::int32_t tid, std::string_view name, int sort) {
    out += first ? "\n" : ",\n";
    first = false;
    fmt::format_to(std::back_inserter(out), "{{\"ph\":\"M\",\"pid\":1,\"tid\":{},\"name\":\"thread_name\",\"args\":{{\"name\":", tid);
    appendJSONString(out, name);
    fmt::format_to(std::back_inserter(out), "}}}},\n{{\"ph\":\"M\",\"pid\":1,\"tid\":{},\"name\":\"thread_sort_index\",\"args\":{{\"sort_index\":{}}}}}",
                       tid, sort);
  }

  void event(const Ev& e) {
    const std::int64_t start = std::max(e.ts, origin);
    switch (e.kind) {
      case Kind::Run: {
        const std::int64_t end = e.ts + e.dur;
        open('X', e.tid, start, e.cat, e.label);
        ts("dur", end - start);
        out += ",\"args\":{\"goid\":";
        appendUint(out, e.a);
        field("end", e.s1);
        if (e.s2[0] != '\0') field("reason", e.s2);
        out += "}}";
        if (e.first) {
          open('f', e.tid, start, "spawn", "spawn");
          out += ",\"bp\":\"e\",\"id\":";
          appendUint(out, e.a);
          out += "}";
        }
        if (e.s2[0] != '\0') {
          open('i', e.tid, end, "park", "park");
          out += ",\"s\":\"t\",\"args\":{\"goid\":";
          appendUint(out, e.a);
          field("reason", e.s2);
          out += "}}";
        }
        break;
      }
      case Kind::Unpark:
        open('i', e.tid, start, e.cat, e.name);
        out += ",\"s\":\"t\",\"args\":{\"goid\":";
        appendUint(out, e.a);
        out += "}}";
        break;
      case Kind::Spawn:
        open('s', e.tid, start, e.cat, e.name);
        fmt::format_to(std::back_inserter(out), ",\"id\":{},\"args\":{{\"parent\":{},\"child\":{}}}}}", e.a, e.b, e.a);
        open('i', e.tid, start, e.cat, e.name);
        fmt::format_to(std::back_inserter(out), ",\"s\":\"t\",\"args\":{{\"parent\":{},\"child\":{}}}}}", e.b, e.a);
        break;
      case Kind::Span:
        open('X', e.tid, start, e.cat, e.name);
        ts("dur", e.ts + e.dur - start);
        if (e.label[0] != '\0') {
          out += ",\"args\":{";
          out += "\"detail\":";
          appendJSONString(out, e.label);
          out += "}";
        }
        out += "}";
        break;
      case Kind::Counter:
        open('C', kCollectorTrack, start, e.cat, e.name);
        out += ",\"args\":{";
        appendJSONString(out, e.s1);
        fmt::format_to(std::back_inserter(out), ":{}}}}}", static_cast<std::int64_t>(e.a));
        break;
    }
  }
};

std::string trackName(std::int32_t tid) {
  if (tid == kCollectorTrack) return "GC (collector)";
  if (tid == kHostTrack) return "no P (host, sysmon)";
  if (tid == kStwTrack) return "STW pauses";
  return fmt::format("P {}", tid);
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

void setFiberNamer(FiberNamer fn) { state().namer.store(fn, std::memory_order_relaxed); }

bool start(const std::string& path, std::string* error) {
  State& s = state();
  std::lock_guard<std::mutex> lk(s.lock);
  if (s.file != nullptr) {
    *error = fmt::format("a trace is already being recorded (to {})", s.path);
    return false;
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    *error = fmt::format("cannot open trace file {}", path);
    return false;
  }
  {
    std::lock_guard<std::mutex> ll(s.listLock);
    for (Buffer* b : s.buffers) {
      std::lock_guard<std::mutex> bl(b->lock);
      b->evs.clear();
      b->dropped = 0;
    }
  }
  s.file = f;
  s.path = path;
  s.startNs.store(now(), std::memory_order_relaxed);
  detail::gEnabled.store(true, std::memory_order_relaxed);
  return true;
}

bool stop(std::string* error) {
  State& s = state();
  std::lock_guard<std::mutex> lk(s.lock);
  if (s.file == nullptr) {
    *error = "no trace is being recorded";
    return false;
  }
  detail::gEnabled.store(false, std::memory_order_relaxed);
  // Each buffer's events are moved out (not copied) and written in time order through a
  // sorted array of pointers (8 bytes a move, not an event's size).
  std::vector<std::vector<Ev>> parts;
  std::size_t dropped = 0, total = 0;
  {
    std::lock_guard<std::mutex> ll(s.listLock);
    for (Buffer* b : s.buffers) {
      std::lock_guard<std::mutex> bl(b->lock);
      total += b->evs.size();
      parts.push_back(std::move(b->evs));
      b->evs = std::vector<Ev>();
      dropped += b->dropped;
      b->dropped = 0;
    }
  }
  std::vector<const Ev*> evs;
  evs.reserve(total);
  for (const auto& part : parts)
    for (const Ev& e : part) evs.push_back(&e);
  std::stable_sort(evs.begin(), evs.end(), [](const Ev* x, const Ev* y) { return x->ts < y->ts; });
  std::vector<std::int32_t> tracks = {kCollectorTrack, kStwTrack};
  for (const Ev* e : evs) {
    if (e->kind != Kind::Counter && std::find(tracks.begin(), tracks.end(), e->tid) == tracks.end()) {
      tracks.push_back(e->tid);
    }
  }
  std::sort(tracks.begin(), tracks.end());
  Writer w;
  w.origin = s.startNs.load(std::memory_order_relaxed);
  w.file = s.file;
  w.html = endsWith(s.path, ".html");
  w.out.reserve(Writer::kChunk + 4096);
  if (w.html) {
    const std::string head = traceHTMLHead(s.path);
    w.ok = std::fwrite(head.data(), 1, head.size(), s.file) == head.size();
  }
  w.out = "{\"traceEvents\":[";
  for (std::int32_t t : tracks) w.meta(t, trackName(t), t);
  for (const Ev* e : evs) {
    w.event(*e);
    w.flush(false);
  }
  fmt::format_to(std::back_inserter(w.out), "\n],\"displayTimeUnit\":\"ns\",\"otherData\":{{\"producer\":\"spindle\",\"dropped_events\":{}}}}}\n",
                       dropped);
  w.flush(true);
  if (w.html) {
    const std::string_view tail = traceHTMLTail();
    w.ok = w.ok && std::fwrite(tail.data(), 1, tail.size(), s.file) == tail.size();
  }
  const bool ok = w.ok;
  const bool closed = std::fclose(s.file) == 0;
  s.file = nullptr;
  if (!ok || !closed) {
    *error = fmt::format("cannot write trace file {}", s.path);
    return false;
  }
  return true;
}

std::string path() {
  State& s = state();
  std::lock_guard<std::mutex> lk(s.lock);
  return s.file != nullptr ? s.path : std::string();
}

void nameFiber(const void* g, std::uint64_t goid, char* buf, std::size_t cap) {
  buf[0] = '\0';
  if (FiberNamer fn = state().namer.load(std::memory_order_relaxed)) fn(g, buf, cap);
  if (buf[0] == '\0') {
    auto r = fmt::format_to_n(buf, cap - 1, "G {}", goid);
    *r.out = '\0';
  }
}

void fiberRun(std::int32_t p, std::uint64_t goid, const char* name, std::int64_t t0,
              const char* end, const char* reason, bool firstRun) {
  Ev e;
  e.kind = Kind::Run;
  e.ts = t0;
  e.dur = now() - t0;
  e.a = goid;
  e.cat = "fiber";
  e.s1 = end;
  e.s2 = reason != nullptr ? reason : "";
  e.tid = p;
  e.first = firstRun;
  copyLabel(e.label, name);
  append(e);
}

void fiberUnpark(std::int32_t p, std::uint64_t goid) {
  Ev e;
  e.kind = Kind::Unpark;
  e.ts = now();
  e.a = goid;
  e.cat = "unpark";
  e.name = "unpark";
  e.tid = p >= 0 ? p : kHostTrack;
  append(e);
}

void fiberSpawn(std::int32_t p, std::uint64_t parent, std::uint64_t child) {
  Ev e;
  e.kind = Kind::Spawn;
  e.ts = now();
  e.a = child;
  e.b = parent;
  e.cat = "spawn";
  e.name = "spawn";
  e.tid = p >= 0 ? p : kHostTrack;
  append(e);
}

void span(std::int32_t track, const char* cat, const char* name, std::int64_t t0, std::string_view detail) {
  Ev e;
  e.kind = Kind::Span;
  e.ts = t0;
  e.dur = now() - t0;
  e.cat = cat;
  e.name = name;
  e.tid = track >= 0 ? track : kHostTrack;
  copyLabel(e.label, detail);
  append(e);
}

void counter(const char* name, std::int64_t value) {
  Ev e;
  e.kind = Kind::Counter;
  e.ts = now();
  e.a = static_cast<std::uint64_t>(value);
  e.cat = "counter";
  e.name = name;
  e.s1 = name;
  append(e);
}

void gcCycle(const GCEvent& ev, std::int64_t attachNs) {
  auto spanAt = [](std::int32_t tid, const char* cat, const char* name, std::int64_t t0, std::int64_t dur,
                   std::string_view detail) {
    Ev e;
    e.kind = Kind::Span;
    e.ts = t0;
    e.dur = dur;
    e.cat = cat;
    e.name = name;
    e.tid = tid;
    copyLabel(e.label, detail);
    append(e);
  };
  auto counterAt = [](const char* name, std::int64_t at, std::int64_t v) {
    Ev e;
    e.kind = Kind::Counter;
    e.ts = at;
    e.a = static_cast<std::uint64_t>(v);
    e.cat = "counter";
    e.name = name;
    e.s1 = name;
    append(e);
  };
  const std::string cycle = fmt::format("gc {} ({})", ev.cycle, gcCauseName(ev.cause));
  const std::int64_t t0 = attachNs + ev.sweepTermination.startNs;
  const std::int64_t tEnd = attachNs + ev.sweep.startNs + ev.sweep.durationNs;
  spanAt(kCollectorTrack, "gc", "GC cycle", t0, tEnd - t0, cycle);
  auto phase = [&](const char* name, const GCPhase& ph) {
    spanAt(kCollectorTrack, "gc phase", name, attachNs + ph.startNs, ph.durationNs, cycle);
  };
  if (!ev.stwMark) {
    phase("sweep termination", ev.sweepTermination);
    phase("concurrent mark", ev.mark);
  } else {
    phase("sweep termination + mark (world stopped)", ev.sweepTermination);
  }
  phase("mark termination", ev.markTermination);
  phase("sweep", ev.sweep);
  if (!ev.stwMark) {
    spanAt(kStwTrack, "stw", "STW sweep termination", t0, ev.stw1ToSafepointNs + ev.stw1WorkNs,
           fmt::format("safepoint {} ns, work {} ns", ev.stw1ToSafepointNs, ev.stw1WorkNs));
  }
  const std::int64_t tStop2 = ev.stwMark ? t0 : attachNs + ev.markTermination.startNs;
  spanAt(kStwTrack, "stw", ev.stwMark ? "STW mark" : "STW mark termination", tStop2,
         ev.stw2ToSafepointNs + ev.stw2WorkNs,
         fmt::format("safepoint {} ns, work {} ns", ev.stw2ToSafepointNs, ev.stw2WorkNs));
  const std::int64_t markEnd = attachNs + ev.markTermination.startNs + ev.markTermination.durationNs;
  counterAt("heapLive", t0, static_cast<std::int64_t>(ev.heapBefore));
  counterAt("heapLive", attachNs + ev.markTermination.startNs, static_cast<std::int64_t>(ev.heapAtTermination));
  counterAt("heapLive", markEnd, static_cast<std::int64_t>(ev.heapMarked));
  if (ev.heapGoal != ~std::uint64_t{0}) counterAt("heapGoal", markEnd, static_cast<std::int64_t>(ev.heapGoal));
}

std::size_t eventCount() {
  State& s = state();
  std::lock_guard<std::mutex> ll(s.listLock);
  std::size_t n = 0;
  for (Buffer* b : s.buffers) {
    std::lock_guard<std::mutex> bl(b->lock);
    n += b->evs.size();
  }
  return n;
}

std::size_t droppedCount() {
  State& s = state();
  std::lock_guard<std::mutex> ll(s.listLock);
  std::size_t n = 0;
  for (Buffer* b : s.buffers) {
    std::lock_guard<std::mutex> bl(b->lock);
    n += b->dropped;
  }
  return n;
}

}  // namespace spindle::runtime::trace
