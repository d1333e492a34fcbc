// gctrace.h: the collector's trace lines in Go's format (GODEBUG=gctrace=1), and the
// counters only they need.
//
// Per cycle (printed by mgc.cc after mark termination when setGCTrace is on):
//   gc N @Ts P%: A+B+C ms clock, a+b/c/d+e ms cpu, X->Y->Z MB, G MB goal, S MB stacks,
//   R MB globals, K P[ (forced)]
// as Go 1.19 prints it: N the cycle, T seconds since the world attached at sweep
// termination, P the share of time spent in the collector since then; clock: sweep
// termination pause, concurrent mark, mark termination pause; cpu: sweep termination
// (pause x Ps stopped), assist / background / idle mark time, mark termination (pause x
// Ps); heap at the start, at mark termination, marked; the next goal; the bytes of G
// stacks and of global roots scanned this cycle; Ps. " (forced)" marks a cycle that
// gc(), a host (gcCollect) or freeOSMemory asked for. Sizes are whole MiB, rounded down.
//
// The scavenger (mgcscavenge.cc), with gctrace on, prints Go's (pre-1.13) scavenger pair
// at the end of each background pass that released memory (a pass: until the heap's
// retained bytes are at the scavenger's goal; every 64 MiB in a longer one), and after
// a freeOSMemory that released memory:
//   scvgN: X MB released
//   scvgN: inuse: I, idle: D, sys: S, released: R, consumed: C (MB)
//
// Invariants: the scan counters are totals since the process began, added to with
// relaxed atomic adds by any scanning thread; a cycle reads them before its mark and at
// mark termination (world stopped: no scan is running), so the difference is that
// cycle's. Formatting allocates on the C++ heap only, never on the GC'd heap.
#pragma once

#include <cstdint>
#include <string>

namespace spindle::runtime {

struct GCTraceCycle {
  std::uint64_t cycle = 0;
  std::int64_t startNs = 0;  // sweep termination, since the world attached
  int utilPercent = 0;
  std::int64_t sweepTermNs = 0, markNs = 0, markTermNs = 0;  // clock
  std::int64_t sweepTermCpuNs = 0, assistCpuNs = 0, backgroundCpuNs = 0, idleCpuNs = 0,
               markTermCpuNs = 0;
  std::uint64_t heap0 = 0, heap1 = 0, heap2 = 0, goal = 0, stacks = 0, globals = 0;
  int procs = 0;
  bool forced = false;
};

// The line, without its newline.
std::string formatGCTrace(const GCTraceCycle& c);

struct ScvgTrace {
  std::uint64_t seq = 0;  // scvgN: passes that released memory, from 1
  std::uint64_t released = 0;  // bytes released by this pass
  std::uint64_t inuse = 0, idle = 0, sys = 0, heapReleased = 0;  // the heap after it
};
// Both lines, each with its newline.
std::string formatScvgTrace(const ScvgTrace& s);

// Whether gctrace is on (setGCTrace, SPINDLE_GCTRACE=1).
bool gcTraceOn();

namespace gc_detail {
// mgcmark.cc: bytes of root slots scanned in G stacks and in registered root scanners.
void noteStackScanBytes(std::uint64_t bytes);
void noteGlobalsScanBytes(std::uint64_t bytes);
std::uint64_t stackScanBytesTotal();
std::uint64_t globalsScanBytesTotal();
// mgc.cc: setGCTrace (and SPINDLE_GCTRACE) turn gcTraceOn on and off.
void setGCTraceOn(bool on);
// mgcscavenge.cc: adds releasedBytes to what the scavenger released since the last scvg
// pair and prints the pair (gctrace on) once that reaches 64 MiB, or at flush (the
// background pass went idle, or freeOSMemory finished) when it is not zero.
void traceScavenge(std::uint64_t releasedBytes, bool flush);
}  // namespace gc_detail

}  // namespace spindle::runtime
