// pprof.h: CPU and allocation profiles in pprof's profile.proto format (gzipped), as Go's
// runtime/pprof writes them, for `go tool pprof` and `spindle prof`.
//
// Encoder. ProfileBuilder collects samples (a stack of frames, leaf first, and one value
// per sample type) keyed by stack, and encode() writes profile.proto by hand (varints,
// length-delimited messages; no protobuf library) gzipped with zlib. Each distinct frame
// (name, file, line) is one Function and one Location (no mappings: the frames are
// interpreted code).
//
// Frames. The runtime knows nothing of the language it runs: the embedder registers a
// stack walker (setProfStackWalker) that copies the running code's frames, leaf first,
// into ProfFrame records (fixed-size names: no pointer into memory that could be freed
// before it is read). The walker must be async-signal-safe: it runs in the SIGPROF
// handler, on the thread that was interrupted. The runtime's own work (mark assists)
// is named by a per-thread label (proflabel.h: ProfLabelScope), reported as the leaf frame
// ("<gc assist>"); a thread that runs neither code nor labelled work shows "<runtime>".
//
// CPU profile (Go's SIGPROF design). startCPUProfile arms setitimer(ITIMER_PROF) at hz
// (100 by default): the kernel sends SIGPROF to the thread using CPU. The handler walks
// the stack into a free slot of a preallocated ring (kProfRing slots, each claimed by a
// CAS free -> writing -> ready, so handlers on several threads never share one; with no
// free slot the sample is counted as lost), and returns. A normal thread (the profile's
// reader) wakes every 50 ms, moves ready slots into the builder and frees them. Each
// sample counts 1/hz seconds of CPU. stopCPUProfile disarms the timer, drains the ring
// and writes the file. An embedder that keeps its frames in registers defers the walk to its
// next safepoint (kProfDeferred, cpuProfileSample; vm/prof.h). Cost while off: none;
// while on: one walk per 10 ms of CPU.
//
// Allocation profile (Go's MemProfileRate). With a rate R > 0, every thread counts the
// bytes it allocates down from a random distance drawn from an exponential distribution
// of mean R (memProfileTick, inline: a thread-local subtract and a branch); when it
// crosses zero the allocation is sampled (memProfileSample): its stack, its size, and a
// cleanup on the object (gc.h addCleanup) that marks the sample freed once a sweep frees
// it. Values are scaled as Go's (1 / (1 - exp(-size/R))) to estimate all allocations.
// writeMemProfile writes alloc_objects, alloc_space, inuse_objects, inuse_space (in use:
// samples not yet freed by the last cycle's sweep). The rate must be set before threads
// allocate (as Go's MemProfileRate): a thread draws its first distance at its first
// allocation, and one that did so with the rate 0 never samples.
//
// Invariants: ring slots move free -> writing (handler, CAS) -> ready (handler, release
// store) -> free (reader, after copying, release store); the reader reads a slot only
// after an acquire load sees it ready. The walker and the label are read through atomics
// (the handler interrupts the thread that writes them). Nothing here may abort: a file
// that cannot be written is reported as false from stop/write.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/proflabel.h"

namespace spindle::runtime {

struct ProfFrame {
  char name[56];  // NUL-terminated, truncated
  std::int32_t line;
  std::int32_t pad;
};
inline constexpr int kProfMaxDepth = 64;

// Copies the interrupted thread's frames, leaf first, into out (at most max); returns how
// many. Async-signal-safe. With mayDefer (the SIGPROF handler, no runtime label set) a
// walker whose code keeps its frames in registers may instead return kProfDeferred: it
// has arranged to call cpuProfileSample itself at its next safepoint (the sample is
// counted then).
using ProfStackWalker = int (*)(ProfFrame* out, int max, bool mayDefer);
inline constexpr int kProfDeferred = -1;
void setProfStackWalker(ProfStackWalker walker);

namespace prof_detail {
extern constinit thread_local std::int64_t tlsMemLeft;  // bytes to the next allocation sample
[[gnu::cold, gnu::noinline]] bool memProfileRefill(std::size_t size);
}  // namespace prof_detail

// --- profile.proto ----------------------------------------------------------------------
struct ProfSampleType {
  std::string type, unit;
};
class ProfileBuilder {
 public:
  ProfileBuilder(std::vector<ProfSampleType> types, ProfSampleType periodType, std::int64_t period);
  // frames leaf first; values.size() == number of sample types. Samples with the same
  // stack are summed.
  void add(const ProfFrame* frames, int n, const std::vector<std::int64_t>& values);
  void setDuration(std::int64_t startUnixNs, std::int64_t durationNs);
  // profile.proto, uncompressed.
  std::string encode() const;
  std::size_t samples() const { return stacks_.size(); }

 private:
  std::vector<ProfSampleType> types_;
  ProfSampleType periodType_;
  std::int64_t period_;
  std::int64_t timeNs_ = 0, durationNs_ = 0;
  std::map<std::vector<std::pair<std::string, std::int32_t>>, std::vector<std::int64_t>> stacks_;
};
// gzip (zlib, deflate level 6) of data; false on a zlib failure.
bool gzipBytes(const std::string& data, std::string* out);
// The inverse, for readers; false when data is not gzip.
bool gunzipBytes(const std::string& data, std::string* out);

// The source file the embedder's frames come from (pprof's filename of every function
// whose name does not start with '<'); set before a profile is written.
void setProfSourceFile(const std::string& path);

// --- CPU profile -----------------------------------------------------------------------
// Starts sampling at hz (1..1000) into a profile written to path by stopCPUProfile.
// False (with *err) when a profile is already running or the timer cannot be armed.
bool startCPUProfile(const std::string& path, int hz, std::string* err);
// Stops sampling and writes the file; false (with *err) when it cannot be written.
// Returns true and does nothing when no profile is running.
bool stopCPUProfile(std::string* err);
// A deferred CPU sample (see ProfStackWalker): walks the calling thread's stack (mayDefer
// false) into the ring. Does nothing when no CPU profile runs. Async-signal-safe.
void cpuProfileSample();
// Samples taken and lost (ring full) by the running or last profile.
std::uint64_t cpuProfileSamples();
std::uint64_t cpuProfileLost();

// --- allocation profile ----------------------------------------------------------------
// Go's MemProfileRate: mean bytes between samples (0: off). Set it before allocating.
void setMemProfileRate(std::int64_t bytes);
std::int64_t memProfileRate();
// A thread-local subtract and a branch: true when this allocation is to be sampled.
inline bool memProfileTick(std::size_t size) {
  std::int64_t& left = prof_detail::tlsMemLeft;
  left -= static_cast<std::int64_t>(size);
  if (left >= 0) [[likely]] return false;
  return prof_detail::memProfileRefill(size);
}
// Records obj (just allocated, size bytes, the start of a heap object) with the current
// stack. The caller holds a P.
void memProfileSample(void* obj, std::size_t size);
// Writes the allocation profile (all samples so far; in use: not yet freed by a sweep).
bool writeMemProfile(const std::string& path, std::string* err);

}  // namespace spindle::runtime
