// run_fuzzer.cc: small programs compiled and run, with an instruction budget and the
// collector under stress. Every input must end with a result: it ran, or it failed with a
// message (a compile error, a runtime error, or the budget's "Instruction limit
// exceeded." / "Time limit exceeded."). A crash, a hang, a sanitizer report, a fatal error of the runtime (the
// collector's checks abort) or a failure without a message is a bug.
//
// Each input gets a fresh Vm, and with it a fresh process runtime (no Vm outlives an
// input) with two Ps (fibers run in parallel, so races in the runtime are in reach) and
// gcstress (a complete, blocking cycle every kGcStress allocations). The Vm has no FFI
// (foreign code may do anything), discards print, and stops its run after kStepLimit
// steps or kTimeLimit seconds (a program parked for good, where no deadlock is reported,
// still ends); strings are capped at kMaxString bytes (a doubling loop reaches the cap
// within the budget rather than exhausting memory). Inputs over kMaxInput bytes are
// skipped (small programs; the big seeds of tests/lang are the compile fuzzer's).
// A program without fibers runs the same way every time; one with fibers may need
// several replays of its crasher. Two setups that would make every run reproducible
// hang instead (a reproducible schedule, sched_seed: parked fibers are not woken when the
// budget ends; one Runtime kept for the whole process: a run parked in `select {}` is
// never reported as deadlocked), so neither is used.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_util.h"
#include "vm/lib.h"
#include "vm/spindle.h"

namespace {

constexpr std::size_t kMaxInput = 16 * 1024;
constexpr std::uint64_t kStepLimit = 20000;
constexpr double kTimeLimit = 1.0;
constexpr int kGcStress = 64;
constexpr std::size_t kMaxString = 64 * 1024;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > kMaxInput) return 0;
  static const bool capped = [] {
    spindle::vm::lib::setMaxStringLengthForTest(kMaxString);
    return true;
  }();
  (void)capped;
  const std::string src(reinterpret_cast<const char*>(data), size);
  spindle::Options o;
  o.procs = 2;
  o.gcstress = kGcStress;
  o.ffi = false;
  o.step_limit = kStepLimit;
  o.time_limit = kTimeLimit;
  o.output = [](std::string_view) {};
  spindle::Vm vm(o);
  const spindle::Result r = vm.run(src);
  spindle::fuzz::require(r.ok() || !r.error().message.empty(), "a failed run without a message", src);
  return 0;
}
