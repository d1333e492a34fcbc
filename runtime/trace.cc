// trace.cc: see trace.h. Locks: State::lock (start/stop, the file) -> State::listLock
// (the list of buffers). Appenders take no lock (listLock once per thread, to find a
// buffer); a buffer's records and tables are handed between its owner and start()/stop()
// by the Dekker protocol on Buffer::writing and gEnabled (Buffer's comment).
#include "runtime/trace.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <iterator>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
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

// One recorded event: 40 bytes, no pointers to its owner's strings but ids into its
// buffer's tables (Buffer::statics for literals, Buffer::labels for copied text).
struct Rec {
  std::int64_t ts = 0;      // nanotime: a span's start, an instant's time
  std::int64_t x = 0;       // Run, Span: duration (ns); Counter: value; Spawn: parent goid
  std::uint64_t goid = 0;   // Run, Unpark: the fiber; Spawn: the child
  std::uint32_t label = 0;  // Run: the namer's name; Span: its detail (0: none)
  std::uint16_t s1 = 0;     // Run: wait reason (0: none); Span: category; Counter: series
  std::uint16_t s2 = 0;     // Run: how it ended; Span: name
  std::int32_t tid = 0;
  Kind kind = Kind::Span;
  bool first = false;       // Run: the fiber's first run span (a spawn flow ends here)
};
static_assert(sizeof(Rec) == 40);

struct TextHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};

// One thread's events. The owner appends with no lock: it raises `writing` (seq_cst),
// checks gEnabled (seq_cst) and only then touches recs and the tables; stop() clears
// gEnabled (seq_cst) and waits until `writing` is down (acquire) before it reads them, so
// each append either completes before stop() reads or sees the trace off (Dekker's
// protocol on the two flags). start() clears a buffer while the trace is off: an owner
// touches nothing then, and its next append reads gEnabled from start()'s store.
struct Buffer {
  std::atomic<bool> writing{false};
  std::atomic<bool> owned{true};  // a thread appends here; release when it exits
  std::atomic<std::size_t> count{0};    // relaxed: n, for eventCount()
  std::atomic<std::size_t> dropped{0};  // relaxed: events lost to a full buffer
  // The records in chunks of kChunkRecs (each reserved whole: an append never moves one),
  // the last being filled; n records in all.
  static constexpr std::size_t kChunkRecs = 4096;
  std::vector<std::vector<Rec>> chunks;
  std::size_t n = 0;
  std::vector<const char*> statics{""};  // id -> a literal (id 0: "")
  std::unordered_map<const char*, std::uint16_t> staticIds;
  std::vector<std::string> labels{""};  // id -> copied text (id 0: "")
  std::unordered_map<std::string, std::uint32_t, TextHash, std::equal_to<>> labelIds;
  static constexpr std::size_t kCache = 32;
  std::array<std::pair<const char*, std::uint16_t>, kCache> staticCache{};  // {null, 0}: empty
  std::array<std::uint32_t, 4> recentLabels{};  // ids into labels (0: "", never looked up)
  std::uint32_t recentNext = 0;

  void clear() {
    chunks.resize(std::min<std::size_t>(chunks.size(), 1));  // keep one chunk's memory
    if (!chunks.empty()) chunks[0].clear();
    n = 0;
    statics.resize(1);
    staticIds.clear();
    labels.resize(1);
    labelIds.clear();
    staticCache.fill({nullptr, 0});
    recentLabels.fill(0);
    count.store(0, std::memory_order_relaxed);
    dropped.store(0, std::memory_order_relaxed);
  }
  Rec& at(std::size_t i) { return chunks[i / kChunkRecs][i % kChunkRecs]; }
  const Rec& at(std::size_t i) const { return chunks[i / kChunkRecs][i % kChunkRecs]; }
  Rec& push() {
    if (chunks.empty() || chunks.back().size() == kChunkRecs) [[unlikely]] {
      chunks.emplace_back().reserve(kChunkRecs);
    }
    n++;
    return chunks.back().emplace_back();
  }
  void pop() {
    chunks.back().pop_back();
    n--;
  }
  // The id of a literal (interned by address, through a direct-mapped cache in front of
  // the map); false when the table is full.
  bool internStatic(const char* s, std::uint16_t* id) {
    if (s == nullptr || s[0] == '\0') {
      *id = 0;
      return true;
    }
    auto& slot = staticCache[(reinterpret_cast<std::uintptr_t>(s) >> 3) % kCache];
    if (slot.first == s) [[likely]] {
      *id = slot.second;
      return true;
    }
    if (auto it = staticIds.find(s); it != staticIds.end()) {
      slot = {s, it->second};
      *id = it->second;
      return true;
    }
    if (statics.size() > 0xFFFF) return false;
    *id = static_cast<std::uint16_t>(statics.size());
    statics.push_back(s);
    staticIds.emplace(s, *id);
    slot = {s, *id};
    return true;
  }
  // The id of a text (interned by content: a fiber's name is stored once per buffer),
  // through a small cache of the last texts (a P runs a few fibers in turn) in front of
  // the map.
  std::uint32_t internLabel(std::string_view s) {
    if (s.empty()) return 0;
    for (const std::uint32_t id : recentLabels) {
      if (labels[id] == s) return id;
    }
    std::uint32_t id;
    if (auto it = labelIds.find(s); it != labelIds.end()) {
      id = it->second;
    } else {
      id = static_cast<std::uint32_t>(labels.size());
      labels.emplace_back(s);
      labelIds.emplace(labels.back(), id);
    }
    recentLabels[recentNext++ % recentLabels.size()] = id;
    return id;
  }
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
  if (tlsBuffer.b != nullptr) [[likely]] return tlsBuffer.b;
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

// Appends one record filled by fill(buffer, rec) (false: drop it) to this thread's buffer.
template <class Fill>
void record(Fill&& fill) {
  Buffer* b = myBuffer();
  b->writing.store(true, std::memory_order_seq_cst);
  if (detail::gEnabled.load(std::memory_order_seq_cst)) [[likely]] {
    if (b->n < kMaxEventsPerBuffer) [[likely]] {
      Rec& r = b->push();
      if (fill(*b, r)) [[likely]] {
        b->count.store(b->n, std::memory_order_relaxed);
      } else {
        b->pop();
        b->dropped.fetch_add(1, std::memory_order_relaxed);
      }
    } else {
      b->dropped.fetch_add(1, std::memory_order_relaxed);
    }
  }
  b->writing.store(false, std::memory_order_release);
}

// A span's detail as written: truncated to kNameCap - 1 bytes.
std::string_view clip(std::string_view s) { return s.substr(0, std::min(s.size(), kNameCap - 1)); }

// --- writing ---------------------------------------------------------------------------

// A buffer's strings as JSON string literals (quotes and escapes included), made once at
// stop() so an event's expansion only copies bytes.
struct Quoted {
  std::vector<std::string> statics, labels;
  explicit Quoted(const Buffer& b) {
    statics.reserve(b.statics.size());
    for (const char* x : b.statics) statics.push_back(quote(x));
    labels.reserve(b.labels.size());
    for (const std::string& x : b.labels) labels.push_back(quote(x));
  }
  static std::string quote(std::string_view x) {
    std::string q;
    appendJSONString(q, x);
    return q;
  }
};

// Formats events into a buffer of kChunk bytes (plus room for one event) and hands it to
// the file a chunk at a time, so the text of a large trace is never in memory at once. In
// a page (html), "</" is written as "<\/" (traceview.h), also across chunks.
struct Writer {
  static constexpr std::size_t kChunk = 1 << 20;
  static constexpr std::size_t kEventMax = 1024;  // a record's bytes besides its strings
  std::string buf = std::string(kChunk + kEventMax, '\0');
  char* p = buf.data();  // the next byte to write
  char* limit = buf.data() + kChunk;
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
  void flush() {
    write(std::string_view(buf.data(), static_cast<std::size_t>(p - buf.data())));
    p = buf.data();
  }
  // Room for one record's events whose strings take n bytes (flushes a full chunk).
  void reserve(std::size_t n) {
    if (p + n <= limit) [[likely]] return;
    flush();
    if (buf.size() < n + kEventMax) {  // strings longer than a chunk
      buf.resize(n + kEventMax);
      p = buf.data();
      limit = buf.data() + n;
    }
  }
  template <std::size_t N>
  void lit(const char (&s)[N]) {
    std::memcpy(p, s, N - 1);
    p += N - 1;
  }
  void put(std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  }
  // The decimal digits of v, written in place from the last, two at a time (std::to_chars'
  // method, inlined: no call and no copy for a number of a few digits).
  void num(std::uint64_t v) {
    static constexpr char kPairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    int n = 1;
    for (std::uint64_t t = 10; n < 20 && v >= t; t *= 10) n++;
    char* b = p + n;
    p = b;
    while (v >= 100) {
      const auto two = static_cast<std::size_t>(v % 100) * 2;
      v /= 100;
      *--b = kPairs[two + 1];
      *--b = kPairs[two];
    }
    if (v >= 10) {
      const auto two = static_cast<std::size_t>(v) * 2;
      *--b = kPairs[two + 1];
      *--b = kPairs[two];
    } else {
      *--b = static_cast<char>('0' + v);
    }
  }
  // US.NNN (microseconds with nanosecond decimals)
  void us(std::int64_t ns) {
    if (ns < 0) ns = 0;
    const auto u = static_cast<std::uint64_t>(ns);
    num(u / 1000);
    const auto frac = static_cast<unsigned>(u % 1000);
    p[0] = '.';
    p[1] = static_cast<char>('0' + frac / 100);
    p[2] = static_cast<char>('0' + frac / 10 % 10);
    p[3] = static_cast<char>('0' + frac % 10);
    p += 4;
  }
  // Opens one event: {"ph":..,"pid":1,"tid":..,"ts":..,"cat":..,"name":.. (cat and name
  // quoted).
  void open(char ph, std::int32_t tid, std::int64_t at, std::string_view cat, std::string_view name) {
    if (first) {
      lit("\n{\"ph\":\"");
    } else {
      lit(",\n{\"ph\":\"");
    }
    first = false;
    *p++ = ph;
    lit("\",\"pid\":1,\"tid\":");
    p = std::to_chars(p, p + 24, tid).ptr;
    lit(",\"ts\":");
    us(at - origin);
    lit(",\"cat\":");
    put(cat);
    lit(",\"name\":");
    put(name);
  }
  void meta(std::int32_t tid, std::string_view name, int sort) {
    std::string m = first ? "\n" : ",\n";
    first = false;
    fmt::format_to(std::back_inserter(m), "{{\"ph\":\"M\",\"pid\":1,\"tid\":{},\"name\":\"thread_name\",\"args\":{{\"name\":", tid);
    appendJSONString(m, name);
    fmt::format_to(std::back_inserter(m), "}}}},\n{{\"ph\":\"M\",\"pid\":1,\"tid\":{},\"name\":\"thread_sort_index\",\"args\":{{\"sort_index\":{}}}}}",
                   tid, sort);
    text(m);
  }
  void text(std::string_view s) {
    reserve(s.size());
    put(s);
  }

  // Expands one record (q: its buffer's strings) into its JSON events.
  void event(const Rec& e, const Quoted& q) {
    const std::int64_t start = std::max(e.ts, origin);
    switch (e.kind) {
      case Kind::Run: {
        const std::int64_t end = e.ts + e.x;
        const std::string_view name = q.labels[e.label], endHow = q.statics[e.s2];
        const std::string_view reason = q.statics[e.s1];
        reserve(name.size() + endHow.size() + 2 * reason.size());
        open('X', e.tid, start, "\"fiber\"", name);
        lit(",\"dur\":");
        us(end - start);
        lit(",\"args\":{\"goid\":");
        num(e.goid);
        lit(",\"end\":");
        put(endHow);
        if (e.s1 != 0) {
          lit(",\"reason\":");
          put(reason);
        }
        lit("}}");
        if (e.first) {
          open('f', e.tid, start, "\"spawn\"", "\"spawn\"");
          lit(",\"bp\":\"e\",\"id\":");
          num(e.goid);
          lit("}");
        }
        if (e.s1 != 0) {
          open('i', e.tid, end, "\"park\"", "\"park\"");
          lit(",\"s\":\"t\",\"args\":{\"goid\":");
          num(e.goid);
          lit(",\"reason\":");
          put(reason);
          lit("}}");
        }
        break;
      }
      case Kind::Unpark:
        reserve(0);
        open('i', e.tid, start, "\"unpark\"", "\"unpark\"");
        lit(",\"s\":\"t\",\"args\":{\"goid\":");
        num(e.goid);
        lit("}}");
        break;
      case Kind::Spawn: {
        const auto parent = static_cast<std::uint64_t>(e.x);
        reserve(0);
        open('s', e.tid, start, "\"spawn\"", "\"spawn\"");
        lit(",\"id\":");
        num(e.goid);
        lit(",\"args\":{\"parent\":");
        num(parent);
        lit(",\"child\":");
        num(e.goid);
        lit("}}");
        open('i', e.tid, start, "\"spawn\"", "\"spawn\"");
        lit(",\"s\":\"t\",\"args\":{\"parent\":");
        num(parent);
        lit(",\"child\":");
        num(e.goid);
        lit("}}");
        break;
      }
      case Kind::Span: {
        const std::string_view cat = q.statics[e.s1], name = q.statics[e.s2], detail = q.labels[e.label];
        reserve(cat.size() + name.size() + detail.size());
        open('X', e.tid, start, cat, name);
        lit(",\"dur\":");
        us(e.ts + e.x - start);
        if (e.label != 0) {
          lit(",\"args\":{\"detail\":");
          put(detail);
          lit("}");
        }
        lit("}");
        break;
      }
      case Kind::Counter: {
        const std::string_view series = q.statics[e.s1];
        reserve(2 * series.size());
        open('C', kCollectorTrack, start, "\"counter\"", series);
        lit(",\"args\":{");
        put(series);
        *p++ = ':';
        p = std::to_chars(p, p + 24, e.x).ptr;
        lit("}}");
        break;
      }
    }
  }
};

// A record's place in the file: its time, buffer and index there.
struct Key {
  std::int64_t ts;
  std::uint32_t buf, idx;
};

// Sorts keys by time, stably (keys come in buffer, then append order): an LSD radix sort
// on the time since the earliest, 11 bits a pass (a few passes for a trace of seconds).
void radixSortByTime(std::vector<Key>& keys) {
  if (keys.size() < 2) return;
  std::int64_t lo = keys[0].ts, hi = keys[0].ts;
  for (const Key& k : keys) {
    lo = std::min(lo, k.ts);
    hi = std::max(hi, k.ts);
  }
  const auto range = static_cast<std::uint64_t>(hi - lo);
  constexpr int kBits = 11;
  constexpr std::size_t kBuckets = std::size_t{1} << kBits;
  std::vector<Key> tmp(keys.size());
  for (int shift = 0; shift < 64 && (range >> shift) != 0; shift += kBits) {
    std::vector<std::size_t> at(kBuckets + 1, 0);
    auto digit = [&](const Key& k) { return (static_cast<std::uint64_t>(k.ts - lo) >> shift) & (kBuckets - 1); };
    for (const Key& k : keys) at[digit(k) + 1]++;
    for (std::size_t d = 1; d <= kBuckets; d++) at[d] += at[d - 1];
    for (const Key& k : keys) tmp[at[digit(k)]++] = k;
    keys.swap(tmp);
  }
}

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
    // The trace is off: owners touch nothing (record()), and the last stop() waited for
    // their appends.
    for (Buffer* b : s.buffers) b->clear();
  }
  s.file = f;
  s.path = path;
  s.startNs.store(now(), std::memory_order_relaxed);
  detail::gEnabled.store(true, std::memory_order_seq_cst);
  return true;
}

bool stop(std::string* error) {
  State& s = state();
  std::lock_guard<std::mutex> lk(s.lock);
  if (s.file == nullptr) {
    *error = "no trace is being recorded";
    return false;
  }
  detail::gEnabled.store(false, std::memory_order_seq_cst);
  std::vector<Buffer*> buffers;
  {
    std::lock_guard<std::mutex> ll(s.listLock);
    buffers = s.buffers;
  }
  // Dekker with record(): once `writing` is seen down after gEnabled went off, the owner's
  // last append is visible and no later one touches the buffer.
  for (Buffer* b : buffers) {
    while (b->writing.load(std::memory_order_seq_cst)) std::this_thread::yield();
  }
  // Written in time order (ties: buffer, then append order) through a sorted index.
  std::vector<Key> order;
  std::size_t dropped = 0, total = 0;
  for (const Buffer* b : buffers) {
    total += b->n;
    dropped += b->dropped.load(std::memory_order_relaxed);
  }
  order.reserve(total);
  std::vector<std::int32_t> tracks = {kCollectorTrack, kStwTrack};
  for (std::uint32_t bi = 0; bi < buffers.size(); bi++) {
    const Buffer& b = *buffers[bi];
    std::uint32_t i = 0;
    for (const auto& chunk : b.chunks) {
      for (const Rec& r : chunk) {
        order.push_back(Key{r.ts, bi, i++});
        if (r.kind != Kind::Counter && std::find(tracks.begin(), tracks.end(), r.tid) == tracks.end()) {
          tracks.push_back(r.tid);
        }
      }
    }
  }
  radixSortByTime(order);
  std::sort(tracks.begin(), tracks.end());
  std::vector<Quoted> quoted;
  quoted.reserve(buffers.size());
  for (const Buffer* b : buffers) quoted.emplace_back(*b);
  Writer w;
  w.origin = s.startNs.load(std::memory_order_relaxed);
  w.file = s.file;
  w.html = endsWith(s.path, ".html");
  if (w.html) {
    const std::string head = traceHTMLHead(s.path);
    w.ok = std::fwrite(head.data(), 1, head.size(), s.file) == head.size();
  }
  w.text("{\"traceEvents\":[");
  for (std::int32_t t : tracks) w.meta(t, trackName(t), t);
  for (const Key& k : order) w.event(buffers[k.buf]->at(k.idx), quoted[k.buf]);
  w.text(fmt::format("\n],\"displayTimeUnit\":\"ns\",\"otherData\":{{\"producer\":\"spindle\",\"dropped_events\":{}}}}}\n",
                     dropped));
  w.flush();
  if (w.html) {
    const std::string_view tail = traceHTMLTail();
    w.ok = w.ok && std::fwrite(tail.data(), 1, tail.size(), s.file) == tail.size();
  }
  for (Buffer* b : buffers) b->clear();
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
  const std::int64_t t1 = now();
  record([&](Buffer& b, Rec& r) {
    r.kind = Kind::Run;
    r.ts = t0;
    r.x = t1 - t0;
    r.goid = goid;
    r.tid = p;
    r.first = firstRun;
    r.label = b.internLabel(name);
    return b.internStatic(reason, &r.s1) && b.internStatic(end, &r.s2);
  });
}

void fiberUnpark(std::int32_t p, std::uint64_t goid) {
  const std::int64_t t = now();
  record([&](Buffer&, Rec& r) {
    r.kind = Kind::Unpark;
    r.ts = t;
    r.goid = goid;
    r.tid = p >= 0 ? p : kHostTrack;
    return true;
  });
}

void fiberSpawn(std::int32_t p, std::uint64_t parent, std::uint64_t child) {
  const std::int64_t t = now();
  record([&](Buffer&, Rec& r) {
    r.kind = Kind::Spawn;
    r.ts = t;
    r.x = static_cast<std::int64_t>(parent);
    r.goid = child;
    r.tid = p >= 0 ? p : kHostTrack;
    return true;
  });
}

namespace {
// A span [t0, t0 + dur) on track tid.
void spanAt(std::int32_t tid, const char* cat, const char* name, std::int64_t t0, std::int64_t dur,
            std::string_view detail) {
  record([&](Buffer& b, Rec& r) {
    r.kind = Kind::Span;
    r.ts = t0;
    r.x = dur;
    r.tid = tid;
    r.label = b.internLabel(clip(detail));
    return b.internStatic(cat, &r.s1) && b.internStatic(name, &r.s2);
  });
}
void counterAt(const char* name, std::int64_t at, std::int64_t v) {
  record([&](Buffer& b, Rec& r) {
    r.kind = Kind::Counter;
    r.ts = at;
    r.x = v;
    return b.internStatic(name, &r.s1);
  });
}
}  // namespace

void span(std::int32_t track, const char* cat, const char* name, std::int64_t t0, std::string_view detail) {
  spanAt(track >= 0 ? track : kHostTrack, cat, name, t0, now() - t0, detail);
}

void counter(const char* name, std::int64_t value) { counterAt(name, now(), value); }

void gcCycle(const GCEvent& ev, std::int64_t attachNs) {
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
  for (const Buffer* b : s.buffers) n += b->count.load(std::memory_order_relaxed);
  return n;
}

std::size_t droppedCount() {
  State& s = state();
  std::lock_guard<std::mutex> ll(s.listLock);
  std::size_t n = 0;
  for (const Buffer* b : s.buffers) n += b->dropped.load(std::memory_order_relaxed);
  return n;
}

}  // namespace spindle::runtime::trace
