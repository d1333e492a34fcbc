// gcevents.h: the collector's event log (--gclog, the script's gcevents()): one record
// per cycle, filled by the cycle driver (mgc.cc) at its phase points and completed when
// the cycle's sweep has finished, then kept in a bounded ring and handed to a sink.
//
// A record (GCEvent) is plain data, general enough for any consumer (the JSON line here,
// a script's Map in the VM, an execution trace): the cycle number and cause; each phase
// (sweep termination, concurrent mark, mark termination, concurrent sweep) with its start
// (ns since the world attached, gctrace's @T) and duration; each stop of the world split
// into time to safepoint (stopTheWorld's wait) and work (world stopped until restarted);
// the named steps of mark termination with their times; weak clearing by table (done by
// the sweeper, gc.h "Weak tables": time in each table's hook and objects dropped during
// the cycle's sweep); the heap at the start, at mark termination and marked, the next
// goal; assist and background mark time; spans swept, finalizers queued (by the sweep)
// and run (since the previous record).
//
// Invariants: records are published in cycle order, each once, when its sweep is done
// (the background sweeper's last step, or the next cycle's sweep termination, which
// finishes it), before gcCollect's waiters are released: a gcCollect that returned
// finds its cycle's record in the ring. The sink is called later, outside any stop of
// the world, in the same order. The ring keeps the last kGCEventRing records;
// seq numbers them from 1 so a reader resumes where it stopped (gcEventsSince). A
// cycle still sweeping when its world detaches publishes no record.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace spindle::runtime {

enum class GCCause : std::uint8_t { Pacer, Forced, Stress, MemoryLimit };
// "pacer", "forced", "gcstress", "memory limit".
const char* gcCauseName(GCCause c);

struct GCPhase {
  std::int64_t startNs = 0;     // since the world attached
  std::int64_t durationNs = 0;
};

struct GCStep {
  const char* name = "";  // a static string
  std::int64_t ns = 0;
};

struct GCWeakClear {
  std::string table;  // registerWeak's name, e.g. "string table"
  std::int64_t ns = 0;
  std::uint64_t objects = 0;
};

struct GCEvent {
  std::uint64_t seq = 0;  // ring position, from 1
  std::uint64_t cycle = 0;
  GCCause cause = GCCause::Pacer;
  int procs = 0;
  bool stwMark = false;  // gcstoptheworld: sweep termination to mark termination is one pause
  GCPhase sweepTermination, mark, markTermination, sweep;
  // The two stops of the world (one with gcstoptheworld: stw2 only).
  std::int64_t stw1ToSafepointNs = 0, stw1WorkNs = 0;
  std::int64_t stw2ToSafepointNs = 0, stw2WorkNs = 0;
  std::vector<GCStep> markTerminationSteps;
  std::vector<GCWeakClear> weak;
  std::uint64_t heapBefore = 0, heapAtTermination = 0, heapMarked = 0;
  std::uint64_t heapGoal = 0;  // the next goal; ~0: none (pacing off, no memory limit)
  std::int64_t assistNs = 0, backgroundMarkNs = 0;
  std::uint64_t spansSwept = 0, finalizersQueued = 0, finalizersRun = 0;
};

inline constexpr std::size_t kGCEventRing = 256;

// The records published after seq `after` still in the ring, oldest first; returns the
// seq of the newest record published (pass it as `after` next time).
std::uint64_t gcEventsSince(std::uint64_t after, std::vector<GCEvent>* out);
// The seq of the newest record published (0: none yet).
std::uint64_t gcEventsLast();
// A sink called with each record soon after it is published, on the collector's thread
// with the world running, never concurrently with itself; fn must not allocate on the GC
// heap nor wait for the collector. The old sink is first given the records published
// before the call; when setGCEventSink returns it is not running and will not be called
// again (null: no sink). A new sink starts with the next record published.
using GCEventSink = void (*)(void* ctx, const GCEvent& e);
void setGCEventSink(GCEventSink fn, void* ctx);
// A record as a tree of named fields, for every consumer that writes one out (the JSON
// line, the VM's Map), so each names the fields alike. Keys are snake_case; inside an
// array key is null.
class GCEventVisitor {
 public:
  virtual void number(const char* key, std::int64_t v) = 0;
  virtual void text(const char* key, std::string_view v) = 0;
  virtual void flag(const char* key, bool v) = 0;
  virtual void begin(const char* key, bool array) = 0;  // an object ({}) or an array
  virtual void end(bool array) = 0;

 protected:
  ~GCEventVisitor() = default;
};
// Walks e's fields (the record itself is the outermost object: begin(null, false) first).
void visitGCEvent(const GCEvent& e, GCEventVisitor& v);
// One JSON object on one line (no newline) with every field of e (docs/STRESS.md).
std::string gcEventJSON(const GCEvent& e);
// Appends s as a JSON string literal (quotes, escapes): the event log's and the
// execution trace's (trace.h) writer.
void appendJSONString(std::string& out, std::string_view s);

namespace gc_detail {
// mgc.cc, under the cycle lock: publishes e into the ring (assigns its seq); the sink
// gets it from deliverGCEvents.
void publishGCEvent(GCEvent e);
// mgc.cc, on the controller thread with the world running and no collector lock held:
// hands the records published since the last call to the sink, in order.
void deliverGCEvents();
// mgcsweep.cc: the sweeper's time in a weak table's hook (name: registerWeak's) and the
// objects it handed to it. Lock-free; totals since the process began.
void noteWeakClear(const char* table, std::int64_t ns, std::uint64_t objects);
// The totals per table, for a cycle's delta.
std::vector<GCWeakClear> weakClearTotals();
}  // namespace gc_detail

}  // namespace spindle::runtime
