// pprofview.h: reading a profile.proto file (gzipped or not) and showing it without Go:
// `spindle prof top FILE` (pprof -top's table: flat and cumulative value per function)
// and `spindle prof svg FILE` (a flame graph: each frame a box as wide as its share of
// the total, callers below callees' ... roots at the bottom, as Brendan Gregg's).
//
// The reader understands the fields pprof.h writes and what Go's profiles hold of them
// (sample types, samples, locations with lines, functions, the string table, the default
// sample type); mappings and labels are skipped. Every read is bounds-checked: a
// truncated or foreign file is an error message, never a crash. The value shown is the
// default sample type's (field 14), else the last one (pprof's rule): cpu nanoseconds for
// a CPU profile, inuse_space for an allocation profile.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spindle::runtime {

struct ProfileData {
  struct ValueType {
    std::string type, unit;
  };
  std::vector<ValueType> sampleTypes;
  // Each sample: function names, leaf first, and its values.
  std::vector<std::pair<std::vector<std::string>, std::vector<std::int64_t>>> samples;
  int defaultIndex = -1;  // the value shown
};

// Parses the bytes of a profile file; false with *err when they are not one.
bool parseProfile(const std::string& bytes, ProfileData* out, std::string* err);
// pprof -top's table (text, ending in a newline).
std::string profileTop(const ProfileData& p, std::size_t maxRows = 30);
// A flame graph, a whole SVG document.
std::string profileFlameSVG(const ProfileData& p, const std::string& title);

}  // namespace spindle::runtime
