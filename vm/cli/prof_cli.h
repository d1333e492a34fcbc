// prof_cli.h: the CLI's profiling and telemetry parts (issue 18): --cpuprofile,
// --memprofile, `spindle prof top|svg FILE`, and --stats' pause summary.
//
// The profiles are process-wide (runtime/pprof.h): startProfiles arms them before the
// VM exists (the allocation rate must be set before any thread allocates), and
// finishProfiles writes them once the program ended (the allocation profile after a last
// full cycle and its cleanups, so "in use" is what that cycle found live).
#pragma once

#include <cstdio>
#include <string>

namespace spindle {
class Vm;
}

namespace spindle::cli {

struct ProfOptions {
  std::string cpuprofile, memprofile;  // empty: off
  std::string source;  // the script's path (the profiles' file name); empty for -e
};

// Returns -1 to go on, or an exit code (the error printed on stderr).
int startProfiles(const ProfOptions& o);
// Writes the CPU profile (stopping it) and the allocation profile; collect: run a last
// cycle first (not in seeded mode). Returns false when a file could not be written.
bool finishCPUProfile(const ProfOptions& o);
bool finishMemProfile(const ProfOptions& o, spindle::Vm& vm, bool collect);

// spindle prof top FILE | spindle prof svg FILE: argv[0] is "prof". Returns the exit code.
int profCommand(int argc, char** argv);

// --stats: the pause percentiles, assist time, allocation rate and a pause histogram.
void printGCSummary(std::FILE* out, std::uint64_t allocBytes);

}  // namespace spindle::cli
