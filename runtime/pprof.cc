// pprof.cc: see pprof.h.
#include "runtime/pprof.h"

#include <signal.h>
#include <sys/time.h>
#include <zlib.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "runtime/gc.h"
#include "runtime/threadname.h"

namespace spindle::runtime {

namespace prof_detail {
constinit thread_local std::int64_t tlsMemLeft = 0;
}  // namespace prof_detail

namespace {

std::atomic<ProfStackWalker> gWalker{nullptr};
std::mutex gSourceLock;
std::string gSourceFile;  // guarded by gSourceLock

// Copies s (NUL-terminated) into a frame name, truncated. Async-signal-safe.
void setName(ProfFrame& f, const char* s) {
  std::size_t i = 0;
  for (; s[i] != '\0' && i + 1 < sizeof f.name; ++i) f.name[i] = s[i];
  f.name[i] = '\0';
  f.line = 0;
}

// The interrupted (or calling) thread's stack, leaf first, or kProfDeferred (only with
// mayDefer, and only when no runtime label names the work). Async-signal-safe.
int walk(ProfFrame* out, int max, bool mayDefer) {
  int n = 0;
  if (const char* label = prof_detail::tlsLabel.load(std::memory_order_relaxed)) {
    setName(out[n++], label);
    mayDefer = false;
  }
  if (ProfStackWalker w = gWalker.load(std::memory_order_acquire)) {
    const int k = w(out + n, max - n, mayDefer);
    if (k == kProfDeferred) return kProfDeferred;
    if (k > 0) n += k;
  }
  if (n == 0) setName(out[n++], "<runtime>");
  return n;
}

// --- protobuf writing ------------------------------------------------------------------
void varint(std::string& b, std::uint64_t v) {
  while (v >= 0x80) {
    b.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  b.push_back(static_cast<char>(v));
}
void key(std::string& b, int field, int wire) { varint(b, static_cast<std::uint64_t>(field) << 3 | static_cast<std::uint64_t>(wire)); }
void fieldVarint(std::string& b, int field, std::uint64_t v) {
  key(b, field, 0);
  varint(b, v);
}
void fieldBytes(std::string& b, int field, const std::string& v) {
  key(b, field, 2);
  varint(b, v.size());
  b += v;
}
template <typename T>
void fieldPacked(std::string& b, int field, const std::vector<T>& vs) {
  std::string inner;
  for (T v : vs) varint(inner, static_cast<std::uint64_t>(v));
  fieldBytes(b, field, inner);
}

}  // namespace

void setProfStackWalker(ProfStackWalker walker) { gWalker.store(walker, std::memory_order_release); }

void setProfSourceFile(const std::string& path) {
  std::lock_guard<std::mutex> lk(gSourceLock);
  gSourceFile = path;
}

// --- ProfileBuilder ----------------------------------------------------------------------
ProfileBuilder::ProfileBuilder(std::vector<ProfSampleType> types, ProfSampleType periodType,
                               std::int64_t period)
    : types_(std::move(types)), periodType_(std::move(periodType)), period_(period) {}

void ProfileBuilder::add(const ProfFrame* frames, int n, const std::vector<std::int64_t>& values) {
  std::vector<std::pair<std::string, std::int32_t>> stack;
  stack.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const std::size_t len = strnlen(frames[i].name, sizeof frames[i].name);
    stack.emplace_back(std::string(frames[i].name, len), frames[i].line);
  }
  auto [it, fresh] = stacks_.try_emplace(std::move(stack), values);
  if (!fresh) {
    for (std::size_t k = 0; k < values.size() && k < it->second.size(); ++k) it->second[k] += values[k];
  }
}

void ProfileBuilder::setDuration(std::int64_t startUnixNs, std::int64_t durationNs) {
  timeNs_ = startUnixNs;
  durationNs_ = durationNs;
}

std::string ProfileBuilder::encode() const {
  std::vector<std::string> strings{""};
  std::unordered_map<std::string, std::uint64_t> index{{"", 0}};
  auto str = [&](const std::string& s) {
    auto [it, fresh] = index.try_emplace(s, strings.size());
    if (fresh) strings.push_back(s);
    return it->second;
  };
  std::string source;
  {
    std::lock_guard<std::mutex> lk(gSourceLock);
    source = gSourceFile;
  }
  std::string out;
  auto valueType = [&](int field, const ProfSampleType& t) {
    std::string m;
    fieldVarint(m, 1, str(t.type));
    fieldVarint(m, 2, str(t.unit));
    fieldBytes(out, field, m);
  };
  for (const ProfSampleType& t : types_) valueType(1, t);
  // Functions by name, locations by (name, line).
  std::map<std::string, std::uint64_t> functions;
  std::map<std::pair<std::string, std::int32_t>, std::uint64_t> locations;
  std::string locs, funcs;
  for (const auto& [stack, values] : stacks_) {
    std::vector<std::uint64_t> ids;
    for (const auto& frame : stack) {
      auto [fit, newFn] = functions.try_emplace(frame.first, functions.size() + 1);
      if (newFn) {
        std::string m;
        fieldVarint(m, 1, fit->second);
        // No system_name: pprof demangles only names equal to their system name, and its
        // C++ heuristics would strip "<native clock>" to nothing.
        fieldVarint(m, 2, str(frame.first));
        if (!source.empty() && !frame.first.starts_with('<')) fieldVarint(m, 4, str(source));
        fieldBytes(funcs, 5, m);
      }
      auto [lit, newLoc] = locations.try_emplace(frame, locations.size() + 1);
      if (newLoc) {
        std::string line;
        fieldVarint(line, 1, fit->second);
        fieldVarint(line, 2, static_cast<std::uint64_t>(std::max(frame.second, 0)));
        std::string m;
        fieldVarint(m, 1, lit->second);
        fieldBytes(m, 4, line);
        fieldBytes(locs, 4, m);
      }
      ids.push_back(lit->second);
    }
    std::string m;
    fieldPacked(m, 1, ids);
    fieldPacked(m, 2, values);
    fieldBytes(out, 2, m);
  }
  out += locs;
  out += funcs;
  // Intern the period type's strings before writing the table.
  const std::uint64_t pt = str(periodType_.type), pu = str(periodType_.unit);
  for (const std::string& s : strings) fieldBytes(out, 6, s);
  if (timeNs_ != 0) fieldVarint(out, 9, static_cast<std::uint64_t>(timeNs_));
  if (durationNs_ != 0) fieldVarint(out, 10, static_cast<std::uint64_t>(durationNs_));
  std::string period;
  fieldVarint(period, 1, pt);
  fieldVarint(period, 2, pu);
  fieldBytes(out, 11, period);
  fieldVarint(out, 12, static_cast<std::uint64_t>(period_));
  return out;
}

bool gzipBytes(const std::string& data, std::string* out) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return false;
  out->resize(deflateBound(&z, data.size()) + 32);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out->data());
  z.avail_out = static_cast<uInt>(out->size());
  const int rc = deflate(&z, Z_FINISH);
  out->resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END;
}

bool gunzipBytes(const std::string& data, std::string* out) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 32) != Z_OK) return false;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  out->clear();
  char buf[1 << 16];
  int rc;
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    out->append(buf, sizeof buf - z.avail_out);
  } while (rc != Z_STREAM_END);
  inflateEnd(&z);
  return rc == Z_STREAM_END;
}

namespace {

bool writeFile(const std::string& path, const ProfileBuilder& b, std::string* err) {
  std::string gz;
  if (!gzipBytes(b.encode(), &gz)) {
    *err = "zlib failed to compress the profile";
    return false;
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    *err = std::string("cannot write ") + path + ": " + std::strerror(errno);
    return false;
  }
  const bool ok = std::fwrite(gz.data(), 1, gz.size(), f) == gz.size();
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) {
    *err = std::string("cannot write ") + path;
    return false;
  }
  return true;
}

std::int64_t unixNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// --- CPU profile -------------------------------------------------------------------------
constexpr int kProfRing = 256;
enum SlotState : int { kFree = 0, kWriting = 1, kReady = 2 };
struct Slot {
  std::atomic<int> state{kFree};
  int n = 0;
  ProfFrame frames[kProfMaxDepth];
};

struct CpuProfile {
  std::mutex lock;  // the fields below but the atomics
  std::condition_variable cv;
  bool running = false, stopping = false;
  std::string path;
  int hz = 100;
  std::unique_ptr<ProfileBuilder> builder;
  std::thread reader;
  std::int64_t startUnix = 0;
  std::chrono::steady_clock::time_point start;
  std::atomic<std::uint64_t> samples{0}, lost{0};
  std::atomic<unsigned> next{0};
};
CpuProfile& cpu() {
  static CpuProfile* p = new CpuProfile;
  return *p;
}
// Allocated once, at the first start, never freed (a late signal may still write a slot).
std::atomic<Slot*> gRing{nullptr};

// Relaxed: set before the timer is armed, cleared after it is disarmed; a deferred
// sample that sees it late lands in the ring and is drained (or dropped by the next start).
std::atomic<bool> gCpuRunning{false};

// Walks this thread's stack into a free ring slot. False: the walker deferred the sample.
bool record(bool mayDefer) {
  const int savedErrno = errno;
  Slot* ring = gRing.load(std::memory_order_acquire);
  CpuProfile& p = cpu();
  bool deferred = false;
  if (ring != nullptr) {
    const unsigned start = p.next.fetch_add(1, std::memory_order_relaxed);
    bool stored = false;
    for (unsigned k = 0; k < 8 && !stored; ++k) {
      Slot& s = ring[(start + k) % kProfRing];
      int expected = kFree;
      if (!s.state.compare_exchange_strong(expected, kWriting, std::memory_order_acquire,
                                           std::memory_order_relaxed))
        continue;
      s.n = walk(s.frames, kProfMaxDepth, mayDefer);
      if (s.n == kProfDeferred) {
        s.state.store(kFree, std::memory_order_release);
        deferred = true;
        break;
      }
      s.state.store(kReady, std::memory_order_release);
      stored = true;
    }
    if (!deferred) (stored ? p.samples : p.lost).fetch_add(1, std::memory_order_relaxed);
  }
  errno = savedErrno;
  return !deferred;
}

void onSigprof(int, siginfo_t*, void*) { record(true); }

// Moves the ready slots into the builder (p.lock held).
void drain(CpuProfile& p) {
  Slot* ring = gRing.load(std::memory_order_acquire);
  const std::int64_t periodNs = 1'000'000'000 / p.hz;
  for (int i = 0; i < kProfRing; ++i) {
    Slot& s = ring[i];
    if (s.state.load(std::memory_order_acquire) != kReady) continue;
    p.builder->add(s.frames, s.n, {1, periodNs});
    s.state.store(kFree, std::memory_order_release);
  }
}

void readerLoop() {
  CpuProfile& p = cpu();
  std::unique_lock<std::mutex> lk(p.lock);
  while (!p.stopping) {
    p.cv.wait_for(lk, std::chrono::milliseconds(50));
    drain(p);
  }
}

bool setTimer(int hz) {
  itimerval t{};
  if (hz > 0) {
    const long us = 1'000'000 / hz;  // tv_usec must stay below a second (1 Hz: 1 s)
    t.it_interval.tv_sec = us / 1'000'000;
    t.it_interval.tv_usec = us % 1'000'000;
    t.it_value = t.it_interval;
  }
  return setitimer(ITIMER_PROF, &t, nullptr) == 0;
}

}  // namespace

bool startCPUProfile(const std::string& path, int hz, std::string* err) {
  CpuProfile& p = cpu();
  std::lock_guard<std::mutex> lk(p.lock);
  if (p.running) {
    *err = "a CPU profile is already running";
    return false;
  }
  if (hz < 1 || hz > 1000) {
    *err = "the CPU profile rate must be 1..1000 Hz";
    return false;
  }
  if (gRing.load(std::memory_order_relaxed) == nullptr) gRing.store(new Slot[kProfRing], std::memory_order_release);
  // A deferred sample of an earlier profile that landed after its stop.
  for (int i = 0; i < kProfRing; ++i) {
    int ready = kReady;
    gRing.load(std::memory_order_relaxed)[i].state.compare_exchange_strong(ready, kFree, std::memory_order_acq_rel);
  }
  gCpuRunning.store(true, std::memory_order_relaxed);
  p.path = path;
  p.hz = hz;
  p.builder = std::make_unique<ProfileBuilder>(
      std::vector<ProfSampleType>{{"samples", "count"}, {"cpu", "nanoseconds"}},
      ProfSampleType{"cpu", "nanoseconds"}, 1'000'000'000 / hz);
  p.samples.store(0, std::memory_order_relaxed);
  p.lost.store(0, std::memory_order_relaxed);
  p.startUnix = unixNs();
  p.start = std::chrono::steady_clock::now();
  struct sigaction sa {};
  sa.sa_sigaction = onSigprof;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGPROF, &sa, nullptr) != 0 || !setTimer(hz)) {
    *err = std::string("cannot arm the profiling timer: ") + std::strerror(errno);
    gCpuRunning.store(false, std::memory_order_relaxed);
    return false;
  }
  p.stopping = false;
  p.running = true;
  p.reader = std::thread(readerLoop);
  setThreadName(p.reader, "spindle-pprof");
  return true;
}

void cpuProfileSample() {
  if (gCpuRunning.load(std::memory_order_relaxed)) record(false);
}

bool stopCPUProfile(std::string* err) {
  CpuProfile& p = cpu();
  std::thread reader;
  {
    std::lock_guard<std::mutex> lk(p.lock);
    if (!p.running) return true;
    setTimer(0);
    gCpuRunning.store(false, std::memory_order_relaxed);
    // A signal still pending is ignored, not the default action (which would end the process).
    struct sigaction sa {};
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPROF, &sa, nullptr);
    p.stopping = true;
    reader = std::move(p.reader);
  }
  p.cv.notify_all();
  reader.join();
  std::lock_guard<std::mutex> lk(p.lock);
  drain(p);
  p.running = false;
  p.builder->setDuration(p.startUnix, std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now() - p.start)
                                          .count());
  const bool ok = writeFile(p.path, *p.builder, err);
  p.builder.reset();
  return ok;
}

std::uint64_t cpuProfileSamples() { return cpu().samples.load(std::memory_order_relaxed); }
std::uint64_t cpuProfileLost() { return cpu().lost.load(std::memory_order_relaxed); }

// --- allocation profile ----------------------------------------------------------------
namespace {

std::atomic<std::int64_t> gMemRate{0};

struct MemSample {
  std::vector<ProfFrame> frames;
  std::size_t size = 0;
  std::atomic<bool> freed{false};  // set by the object's cleanup (release), read at write
};
struct MemProfile {
  std::mutex lock;
  std::deque<MemSample> samples;  // never shrinks: a cleanup may still point at one
  std::int64_t startUnix = 0;
};
MemProfile& mem() {
  static MemProfile* m = new MemProfile;
  return *m;
}

void onSampleFreed(void* arg) { static_cast<MemSample*>(arg)->freed.store(true, std::memory_order_release); }

thread_local std::uint64_t tlsRand = 0;
// An exponential distance of mean `rate` (Go's fastexprand).
std::int64_t nextDistance(std::int64_t rate) {
  if (tlsRand == 0) tlsRand = reinterpret_cast<std::uintptr_t>(&tlsRand) ^ 0x9e3779b97f4a7c15ull ^
                              static_cast<std::uint64_t>(unixNs());
  tlsRand ^= tlsRand << 13;
  tlsRand ^= tlsRand >> 7;
  tlsRand ^= tlsRand << 17;
  const double u = (static_cast<double>(tlsRand >> 11) + 0.5) / 9007199254740992.0;  // (0, 1)
  return static_cast<std::int64_t>(-std::log(u) * static_cast<double>(rate)) + 1;
}

}  // namespace

namespace prof_detail {
thread_local bool tlsMemStarted = false;
bool memProfileRefill(std::size_t) {
  const std::int64_t rate = gMemRate.load(std::memory_order_relaxed);
  if (rate <= 0) {
    tlsMemLeft = INT64_MAX;
    return false;
  }
  tlsMemLeft = nextDistance(rate);
  if (!tlsMemStarted) {  // the thread's first allocation only draws its distance
    tlsMemStarted = true;
    return false;
  }
  return true;
}
}  // namespace prof_detail

void setMemProfileRate(std::int64_t bytes) {
  gMemRate.store(bytes < 0 ? 0 : bytes, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lk(mem().lock);
  if (mem().startUnix == 0) mem().startUnix = unixNs();
}
std::int64_t memProfileRate() { return gMemRate.load(std::memory_order_relaxed); }

void memProfileSample(void* obj, std::size_t size) {
  ProfFrame frames[kProfMaxDepth];
  const int n = walk(frames, kProfMaxDepth, false);
  MemProfile& m = mem();
  MemSample* s;
  {
    std::lock_guard<std::mutex> lk(m.lock);
    s = &m.samples.emplace_back();
    s->frames.assign(frames, frames + n);
    s->size = size;
  }
  if (!addCleanup(obj, onSampleFreed, s)) s->freed.store(true, std::memory_order_release);
}

bool writeMemProfile(const std::string& path, std::string* err) {
  const std::int64_t rate = std::max<std::int64_t>(memProfileRate(), 1);
  ProfileBuilder b({{"alloc_objects", "count"}, {"alloc_space", "bytes"}, {"inuse_objects", "count"},
                    {"inuse_space", "bytes"}},
                   ProfSampleType{"space", "bytes"}, rate);
  MemProfile& m = mem();
  {
    std::lock_guard<std::mutex> lk(m.lock);
    for (const MemSample& s : m.samples) {
      // Go's scaling: a sample of size bytes stands for 1 / (1 - exp(-size/rate)) objects.
      const double scale = 1.0 / (1.0 - std::exp(-static_cast<double>(s.size) / static_cast<double>(rate)));
      const auto objects = static_cast<std::int64_t>(std::llround(scale));
      const auto bytes = static_cast<std::int64_t>(std::llround(scale * static_cast<double>(s.size)));
      const bool inUse = !s.freed.load(std::memory_order_acquire);
      b.add(s.frames.data(), static_cast<int>(s.frames.size()),
            {objects, bytes, inUse ? objects : 0, inUse ? bytes : 0});
    }
    b.setDuration(m.startUnix, unixNs() - m.startUnix);
  }
  return writeFile(path, b, err);
}

}  // namespace spindle::runtime
