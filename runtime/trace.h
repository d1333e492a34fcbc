// trace.h: the execution trace (Go's runtime/trace): a process-wide event recorder that
// writes the Chrome trace-event JSON format (what Perfetto and chrome://tracing open), or
// the same events inside a self-contained HTML timeline (traceview.h) when the file name
// ends in ".html".
//
// Design:
//   - Off by default. Every emission point is guarded by enabled(): one relaxed load of
//     an atomic bool, a predictable branch; nothing else runs while the trace is off.
//   - Each thread that emits (an M, the collector's controller, a host thread) appends
//     to its own buffer (thread-local, registered once in a global list, reused by a
//     later thread when its owner exits) with no lock: a record is 40 bytes (time, kind,
//     track, goid, duration or value, and ids into the buffer's interned strings:
//     literals by address, text such as a fiber's name by content, so a name is stored
//     once per buffer however many spans carry it), kept in chunks that never move. The
//     owner raises the buffer's `writing` flag around an append and checks the trace is
//     still on; stop() turns it off and waits for each flag to drop (a Dekker protocol,
//     both sides seq_cst) before it reads the buffers. A buffer holds at most
//     kMaxEventsPerBuffer records; later ones are counted as dropped (reported in the
//     file's otherData).
//   - stop() expands the records to the JSON events in time order: strings are quoted
//     once per buffer, each record's events are copied into a chunk buffer written to
//     the file a chunk at a time. A run span's record expands to its "X" event plus,
//     when it parked, the park instant and, for a first run, the spawn flow's end.
//   - Tracks (Chrome's tid): one per P (tid = P id), one for the collector's controller
//     (kCollectorTrack: GC cycles and phases, counters), one for stop-the-world pauses
//     and one for threads that hold no P (kHostTrack: unparks by a host or a timer).
//   - Events: fiber run spans ("X", named by the fiber namer: the vm layer supplies it,
//     so the runtime stays language-free) with how the span ended (yield, park + wait
//     reason, exit); park and unpark instants; spawn flows ("s" at the spawner, "f" at
//     the new fiber's first run span); GC phases and STW pauses from the collector's event
//     record (gcevents.h, one source for --gclog, gcevents() and the trace); mark assists
//     and idle-P mark work spans on the P's track; foreign calls; counters for heapLive,
//     the heap goal and runnable fibers.
//   - Timestamps: nanotime() (CLOCK_MONOTONIC) minus the trace's start, written in
//     microseconds with nanosecond decimals.
//
// Invariants: start() and stop() are serialised by a mutex; an emission racing with
// stop() either lands in the written file or in no file (stop() reads a buffer only once
// its owner's append is done and clears it after writing; a later start() begins empty). Nothing here aborts the process: a
// file that cannot be opened or written is an error string.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace spindle::runtime {
struct GCEvent;
}

namespace spindle::runtime::trace {

namespace detail {
// Relaxed: a thread that sees the flag late loses an event at the edge of the trace.
extern std::atomic<bool> gEnabled;
}  // namespace detail

inline bool enabled() { return detail::gEnabled.load(std::memory_order_relaxed); }

inline constexpr std::int32_t kCollectorTrack = 1000;
inline constexpr std::int32_t kHostTrack = 1001;
inline constexpr std::size_t kMaxEventsPerBuffer = std::size_t{1} << 20;
inline constexpr std::size_t kNameCap = 40;  // a run span's name, truncated

// Writes the name of the code g (a G*) is about to run into buf (at most cap-1 bytes,
// NUL-terminated), e.g. "fiber 3 worker()". Called on the M that owns g (g is not
// running), only while tracing. Null: spans are named "G <goid>".
using FiberNamer = void (*)(const void* g, char* buf, std::size_t cap);
void setFiberNamer(FiberNamer fn);

// Starts recording into path (".html": the HTML timeline, else JSON). False with *error
// set when a trace is already running or path cannot be opened for writing.
bool start(const std::string& path, std::string* error);
// Stops recording and writes the file. False with *error set when no trace runs or the
// write failed. The events are discarded either way.
bool stop(std::string* error);
// The file of the running trace ("" when none).
std::string path();

// --- emission (call only when enabled(); each checks again as it appends) ---
// A fiber's run span on P `p`: begins at t0 (nanotime), ends now. `end` is "yield",
// "park" or "exit"; reason is the wait reason for a park (else ""). `name` is the namer's.
void fiberRun(std::int32_t p, std::uint64_t goid, const char* name, std::int64_t t0,
              const char* end, const char* reason, bool firstRun);
// The namer's name for g (falls back to "G <goid>").
void nameFiber(const void* g, std::uint64_t goid, char* buf, std::size_t cap);
// g was made runnable by the current thread (p: its P, or -1: none).
void fiberUnpark(std::int32_t p, std::uint64_t goid);
// parent (0: a host) spawned child on P p (-1: none): the flow's start.
void fiberSpawn(std::int32_t p, std::uint64_t parent, std::uint64_t child);
// A span [t0, now) named `name` (static) in category `cat` on track `track` (a P id; -1:
// kHostTrack); detail (copied, truncated) goes into its args.
void span(std::int32_t track, const char* cat, const char* name, std::int64_t t0,
          std::string_view detail = {});
// A counter sample now: `name` is a static string ("heapLive", "runnable fibers").
void counter(const char* name, std::int64_t value);
// One collector cycle from its event record (attachNs: the record's time origin):
// phases, STW pauses (to safepoint + work), heap counters.
void gcCycle(const GCEvent& e, std::int64_t attachNs);

// --- reading (tests) ---
// Events recorded so far (all buffers), and events dropped for a full buffer.
std::size_t eventCount();
std::size_t droppedCount();

}  // namespace spindle::runtime::trace
