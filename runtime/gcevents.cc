// gcevents.cc: see gcevents.h. The ring is under `lock`, a leaf lock (publishers hold
// the cycle lock, readers nothing). The sink runs under `sinkLock` only (taken before
// `lock`, never while the world is stopped), so records reach it in publication order,
// one call at a time, and setGCEventSink waits out a call in progress. Weak-clearing totals are a fixed table of slots
// claimed in order by CAS on the table's name pointer (the last one shared by any names
// beyond the others); each slot's counters are relaxed atomics
// (totals, read as deltas between two points of one cycle's driver).
#include "runtime/gcevents.h"

#include <fmt/format.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>


namespace spindle::runtime {

namespace {

struct Log {
  std::mutex sinkLock;  // held while the sink runs and while it is replaced; before lock
  std::mutex lock;
  std::deque<GCEvent> ring;  // lock; at most kGCEventRing
  std::uint64_t lastSeq = 0;  // lock
  std::uint64_t deliveredSeq = 0;  // lock: the newest record the sink was given (or skipped)
  GCEventSink sink = nullptr;  // sinkLock and lock to write; either to read
  void* sinkCtx = nullptr;     // as sink
};
Log& log() {
  static auto* l = new Log;  // never destroyed: the controller may outlive statics
  return *l;
}

struct WeakSlot {
  std::atomic<const char*> table{nullptr};
  std::atomic<std::int64_t> ns{0};
  std::atomic<std::uint64_t> objects{0};
};
constexpr int kWeakSlots = 16;
WeakSlot gWeak[kWeakSlots];

}  // namespace

void appendJSONString(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(ch));
    } else {
      out += ch;
    }
  }
  out += '"';
}

const char* gcCauseName(GCCause c) {
  switch (c) {
    case GCCause::Pacer: return "pacer";
    case GCCause::Forced: return "forced";
    case GCCause::Stress: return "gcstress";
    case GCCause::MemoryLimit: return "memory limit";
  }
  return "pacer";
}

std::uint64_t gcEventsSince(std::uint64_t after, std::vector<GCEvent>* out) {
  Log& l = log();
  std::lock_guard<std::mutex> lk(l.lock);
  for (const GCEvent& e : l.ring) {
    if (e.seq > after) out->push_back(e);
  }
  return l.lastSeq;
}

std::uint64_t gcEventsLast() {
  Log& l = log();
  std::lock_guard<std::mutex> lk(l.lock);
  return l.lastSeq;
}

namespace {
// Under sinkLock: hands the records published since the last delivery to the sink (or
// skips them when there is none).
void deliverLocked(Log& l) {
  std::vector<GCEvent> due;
  {
    std::lock_guard<std::mutex> lk(l.lock);
    if (l.sink != nullptr) {
      for (const GCEvent& e : l.ring) {
        if (e.seq > l.deliveredSeq) due.push_back(e);
      }
    }
    l.deliveredSeq = l.lastSeq;
  }
  for (const GCEvent& e : due) l.sink(l.sinkCtx, e);
}
}  // namespace

void setGCEventSink(GCEventSink fn, void* ctx) {
  Log& l = log();
  std::lock_guard<std::mutex> sk(l.sinkLock);
  deliverLocked(l);  // the old sink gets what was published before the call
  std::lock_guard<std::mutex> lk(l.lock);
  l.sink = fn;
  l.sinkCtx = ctx;
}

void visitGCEvent(const GCEvent& e, GCEventVisitor& v) {
  auto phase = [&v](const char* key, const GCPhase& p) {
    v.begin(key, false);
    v.number("start_ns", p.startNs);
    v.number("duration_ns", p.durationNs);
    v.end(false);
  };
  auto stw = [&v](const char* phaseName, std::int64_t toSafepoint, std::int64_t work) {
    v.begin(nullptr, false);
    v.text("phase", phaseName);
    v.number("to_safepoint_ns", toSafepoint);
    v.number("work_ns", work);
    v.end(false);
  };
  auto u = [](std::uint64_t x) { return static_cast<std::int64_t>(x); };
  v.begin(nullptr, false);
  v.number("seq", u(e.seq));
  v.number("cycle", u(e.cycle));
  v.text("cause", gcCauseName(e.cause));
  v.number("procs", e.procs);
  v.flag("stw_mark", e.stwMark);
  v.begin("phases", false);
  phase("sweep_termination", e.sweepTermination);
  phase("mark", e.mark);
  phase("mark_termination", e.markTermination);
  phase("sweep", e.sweep);
  v.end(false);
  v.begin("stw", true);
  if (!e.stwMark) stw("sweep_termination", e.stw1ToSafepointNs, e.stw1WorkNs);
  stw(e.stwMark ? "sweep_termination to mark_termination" : "mark_termination", e.stw2ToSafepointNs,
      e.stw2WorkNs);
  v.end(true);
  v.begin("mark_termination_steps", true);
  for (const GCStep& s : e.markTerminationSteps) {
    v.begin(nullptr, false);
    v.text("step", s.name);
    v.number("ns", s.ns);
    v.end(false);
  }
  v.end(true);
  v.begin("weak", true);
  for (const GCWeakClear& w : e.weak) {
    v.begin(nullptr, false);
    v.text("table", w.table + " weak");
    v.number("ns", w.ns);
    v.number("objects", u(w.objects));
    v.end(false);
  }
  v.end(true);
  v.number("heap_before", u(e.heapBefore));
  v.number("heap_at_termination", u(e.heapAtTermination));
  v.number("heap_marked", u(e.heapMarked));
  // No goal (pacing off and no memory limit): -1.
  v.number("heap_goal", e.heapGoal == ~std::uint64_t{0} ? -1 : u(e.heapGoal));
  v.number("assist_ns", e.assistNs);
  v.number("background_mark_ns", e.backgroundMarkNs);
  v.number("spans_swept", u(e.spansSwept));
  v.number("finalizers_queued", u(e.finalizersQueued));
  v.number("finalizers_run", u(e.finalizersRun));
  v.end(false);
}

namespace {
class JSONWriter final : public GCEventVisitor {
 public:
  std::string out;
  void number(const char* key, std::int64_t v) override {
    open(key);
    out += fmt::format("{}", v);
  }
  void text(const char* key, std::string_view v) override {
    open(key);
    appendJSONString(out, v);
  }
  void flag(const char* key, bool v) override {
    open(key);
    out += v ? "true" : "false";
  }
  void begin(const char* key, bool array) override {
    open(key);
    out += array ? '[' : '{';
    first_ = true;
  }
  void end(bool array) override {
    out += array ? ']' : '}';
    first_ = false;
  }

 private:
  // Before a value: the comma after a sibling, then the key inside an object.
  void open(const char* key) {
    if (!first_) out += ',';
    first_ = false;
    if (key != nullptr) {
      appendJSONString(out, key);
      out += ':';
    }
  }
  bool first_ = true;
};
}  // namespace

std::string gcEventJSON(const GCEvent& e) {
  JSONWriter w;
  visitGCEvent(e, w);
  return std::move(w.out);
}

namespace gc_detail {

void publishGCEvent(GCEvent e) {
  Log& l = log();
  std::lock_guard<std::mutex> lk(l.lock);
  e.seq = ++l.lastSeq;
  if (l.ring.size() == kGCEventRing) l.ring.pop_front();
  l.ring.push_back(std::move(e));
}

void deliverGCEvents() {
  Log& l = log();
  std::lock_guard<std::mutex> sk(l.sinkLock);
  deliverLocked(l);
}

void noteWeakClear(const char* table, std::int64_t ns, std::uint64_t objects) {
  for (int i = 0; i < kWeakSlots; i++) {
    WeakSlot& s = gWeak[i];
    // Names beyond the table's room share its last slot.
    if (i == kWeakSlots - 1) table = "other tables";
    const char* t = s.table.load(std::memory_order_acquire);
    if (t == nullptr) {
      // Claim the slot; a racer may claim it first, for this table or another.
      if (!s.table.compare_exchange_strong(t, table, std::memory_order_acq_rel)) {
        if (t != table && std::strcmp(t, table) != 0) continue;
      }
    } else if (t != table && std::strcmp(t, table) != 0) {
      continue;
    }
    s.ns.fetch_add(ns, std::memory_order_relaxed);
    s.objects.fetch_add(objects, std::memory_order_relaxed);
    return;
  }
}

std::vector<GCWeakClear> weakClearTotals() {
  std::vector<GCWeakClear> out;
  for (WeakSlot& s : gWeak) {
    const char* t = s.table.load(std::memory_order_acquire);
    if (t == nullptr) break;  // slots are claimed in order
    out.push_back(GCWeakClear{t, s.ns.load(std::memory_order_relaxed), s.objects.load(std::memory_order_relaxed)});
  }
  return out;
}

}  // namespace gc_detail

}  // namespace spindle::runtime
