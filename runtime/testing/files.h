// files.h: temporary files for tests (shared by the runtime's and the vm's tests).
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace spindle::runtime::testing {

// A path in the test's temporary directory ($TEST_TMPDIR, else /tmp), unique per process.
inline std::string tempPath(const char* name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name + std::to_string(getpid());
}

// The whole file's bytes; empty when it cannot be read.
inline std::string slurp(const std::string& path) {
  std::string out;
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

}  // namespace spindle::runtime::testing
