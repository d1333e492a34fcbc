// expectations.cc: see expectations.h.
#include "tests/lang/expectations.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace spindle::corpus {

namespace {

constexpr std::string_view kExpect = "// expect: ";
constexpr std::string_view kRuntime = "// expect runtime error: ";

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

int Expectations::exitCode() const {
  if (!compileErrors.empty()) return 65;
  if (runtimeError) return 70;
  return 0;
}

std::string Expectations::expectedCompileStderr() const {
  std::string out;
  for (const std::string& e : compileErrors) out += e + "\n";
  return out;
}

Expectations parseExpectations(std::string_view source) {
  Expectations ex;
  int lineNo = 0;
  std::size_t pos = 0;
  while (pos <= source.size()) {
    std::size_t eol = source.find('\n', pos);
    if (eol == std::string_view::npos) eol = source.size();
    std::string_view line = source.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++lineNo;
    pos = eol + 1;

    std::size_t at = line.find(kExpect);
    if (at != std::string_view::npos) {
      ex.output.emplace_back(line.substr(at + kExpect.size()));
      continue;
    }
    at = line.find(kRuntime);
    if (at != std::string_view::npos) {
      ex.runtimeError = std::string(line.substr(at + kRuntime.size()));
      ex.runtimeErrorLine = lineNo;
      continue;
    }
    // "// [line N] Error..." or "// Error...".
    for (std::size_t c = line.find("// "); c != std::string_view::npos;
         c = line.find("// ", c + 1)) {
      std::string_view rest = line.substr(c + 3);
      if (startsWith(rest, "[line ")) {
        std::size_t close = rest.find("] Error");
        if (close != std::string_view::npos) {
          ex.compileErrors.emplace_back(rest);
          break;
        }
      } else if (startsWith(rest, "Error")) {
        ex.compileErrors.push_back("[line " + std::to_string(lineNo) + "] " + std::string(rest));
        break;
      }
    }
  }
  return ex;
}

bool readFile(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buf;
  buf << in.rdbuf();
  out = buf.str();
  return true;
}

std::vector<std::string> listCorpus(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::follow_directory_symlink, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().extension() == ".lox") files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace spindle::corpus
