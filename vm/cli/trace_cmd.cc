// trace_cmd.cc: see trace_cmd.h. The JSON is embedded as it is (the page parses it); a
// file that is not a trace shows as an empty timeline with the browser's parse error.
#include "vm/cli/trace_cmd.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "runtime/print.h"
#include "runtime/traceview.h"

namespace spindle::cli {

namespace {

constexpr int kExitUsage = 64;
constexpr int kExitNoInput = 66;
constexpr int kExitIo = 74;

using runtime::printTo;

bool readAll(const std::string& path, std::string* out) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char buf[1 << 16];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  const bool ok = std::ferror(f) == 0;
  std::fclose(f);
  return ok;
}

void usage(std::FILE* out) {
  printTo(out,
          "usage: spindle trace view FILE [-o OUT.html]\n"
          "Writes the execution trace FILE (from --trace FILE) as a self-contained HTML\n"
          "timeline (default OUT: FILE with .json replaced by .html).\n");
}

}  // namespace

int traceCommand(int argc, char** argv) {
  if (argc < 3 || std::string_view(argv[2]) != "view") {
    usage(stderr);
    return kExitUsage;
  }
  std::string in, out;
  for (int i = 3; i < argc; i++) {
    std::string_view a = argv[i];
    if (a == "-o") {
      if (i + 1 >= argc) {
        printTo(stderr, "spindle: trace view: -o needs a FILE\n");
        return kExitUsage;
      }
      out = argv[++i];
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else if (in.empty()) {
      in = std::string(a);
    } else {
      usage(stderr);
      return kExitUsage;
    }
  }
  if (in.empty()) {
    usage(stderr);
    return kExitUsage;
  }
  if (out.empty()) {
    const std::string_view ext = ".json";
    out = in.size() > ext.size() && in.compare(in.size() - ext.size(), ext.size(), ext) == 0
              ? in.substr(0, in.size() - ext.size()) + ".html"
              : in + ".html";
  }
  std::string json;
  if (!readAll(in, &json)) {
    printTo(stderr, "spindle: trace view: cannot read {}: {}\n", in, std::strerror(errno));
    return kExitNoInput;
  }
  const std::string html = runtime::trace::traceHTML(json, in);
  std::FILE* f = std::fopen(out.c_str(), "wb");
  if (f == nullptr) {
    printTo(stderr, "spindle: trace view: cannot write {}: {}\n", out, std::strerror(errno));
    return kExitIo;
  }
  const bool ok = std::fwrite(html.data(), 1, html.size(), f) == html.size();
  if (std::fclose(f) != 0 || !ok) {
    printTo(stderr, "spindle: trace view: cannot write {}\n", out);
    return kExitIo;
  }
  printTo(stdout, "{}\n", out);
  return 0;
}

}  // namespace spindle::cli
