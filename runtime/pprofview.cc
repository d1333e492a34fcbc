// pprofview.cc: see pprofview.h.
#include "runtime/pprofview.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include "runtime/pprof.h"

namespace spindle::runtime {

namespace {

// A bounds-checked protobuf reader over [p, end).
struct Reader {
  const unsigned char* p;
  const unsigned char* end;
  bool ok = true;

  bool done() const { return !ok || p >= end; }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) {
        ok = false;
        return 0;
      }
      const unsigned char b = *p++;
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    ok = false;
    return 0;
  }
  // The next field: its number and wire type; for wire type 2 also its bytes.
  bool next(int* field, int* wire, Reader* sub, std::uint64_t* value) {
    const std::uint64_t k = varint();
    if (!ok) return false;
    *field = static_cast<int>(k >> 3);
    *wire = static_cast<int>(k & 7);
    switch (*wire) {
      case 0: *value = varint(); return ok;
      case 1:
        if (end - p < 8) return ok = false;
        p += 8;
        return true;
      case 5:
        if (end - p < 4) return ok = false;
        p += 4;
        return true;
      case 2: {
        const std::uint64_t n = varint();
        if (!ok || n > static_cast<std::uint64_t>(end - p)) return ok = false;
        *sub = Reader{p, p + n};
        p += n;
        return true;
      }
      default: return ok = false;
    }
  }
};

// A repeated integer field, packed (wire 2) or not (wire 0).
void repeated(int wire, Reader& sub, std::uint64_t value, std::vector<std::uint64_t>* out, bool* ok) {
  if (wire == 0) {
    out->push_back(value);
    return;
  }
  while (!sub.done()) out->push_back(sub.varint());
  if (!sub.ok) *ok = false;
}

std::string human(double v, const std::string& unit) {
  if (unit == "nanoseconds") {
    if (v >= 1e9) return fmt::format("{:.2f}s", v / 1e9);
    return fmt::format("{:.2f}ms", v / 1e6);
  }
  if (unit == "bytes") {
    if (v >= 1 << 20) return fmt::format("{:.2f}MB", v / (1 << 20));
    return fmt::format("{:.2f}kB", v / 1024);
  }
  return fmt::format("{:.0f}", v);
}

std::string escapeXml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

bool parseProfile(const std::string& bytes, ProfileData* out, std::string* err) {
  std::string raw;
  const std::string* data = &bytes;
  if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
      static_cast<unsigned char>(bytes[1]) == 0x8b) {
    if (!gunzipBytes(bytes, &raw)) {
      *err = "not a valid gzip stream";
      return false;
    }
    data = &raw;
  }
  const auto* begin = reinterpret_cast<const unsigned char*>(data->data());
  Reader r{begin, begin + data->size()};
  std::vector<std::pair<std::uint64_t, std::uint64_t>> types;  // string indexes
  struct RawSample {
    std::vector<std::uint64_t> locs, values;
  };
  std::vector<RawSample> samples;
  std::unordered_map<std::uint64_t, std::vector<std::uint64_t>> locFuncs;  // leaf first
  std::unordered_map<std::uint64_t, std::uint64_t> funcName;
  std::vector<std::string> strings;
  std::int64_t defaultType = 0;
  bool ok = true;
  while (!r.done() && ok) {
    int field = 0, wire = 0;
    Reader sub{nullptr, nullptr};
    std::uint64_t v = 0;
    if (!r.next(&field, &wire, &sub, &v)) break;
    if (field == 1 && wire == 2) {
      std::pair<std::uint64_t, std::uint64_t> t{0, 0};
      while (!sub.done()) {
        int f, w;
        Reader s2{nullptr, nullptr};
        std::uint64_t x = 0;
        if (!sub.next(&f, &w, &s2, &x)) break;
        if (f == 1 && w == 0) t.first = x;
        if (f == 2 && w == 0) t.second = x;
      }
      types.push_back(t);
    } else if (field == 2 && wire == 2) {
      RawSample s;
      while (!sub.done()) {
        int f, w;
        Reader s2{nullptr, nullptr};
        std::uint64_t x = 0;
        if (!sub.next(&f, &w, &s2, &x)) break;
        if (f == 1) repeated(w, s2, x, &s.locs, &ok);
        if (f == 2) repeated(w, s2, x, &s.values, &ok);
      }
      samples.push_back(std::move(s));
    } else if (field == 4 && wire == 2) {
      std::uint64_t id = 0;
      std::vector<std::uint64_t> fns;
      while (!sub.done()) {
        int f, w;
        Reader s2{nullptr, nullptr};
        std::uint64_t x = 0;
        if (!sub.next(&f, &w, &s2, &x)) break;
        if (f == 1 && w == 0) id = x;
        if (f == 4 && w == 2) {
          // Line: function_id (1), line (2). Inlined lines come first, leaf first.
          while (!s2.done()) {
            int f3, w3;
            Reader s3{nullptr, nullptr};
            std::uint64_t y = 0;
            if (!s2.next(&f3, &w3, &s3, &y)) break;
            if (f3 == 1 && w3 == 0) fns.push_back(y);
          }
        }
      }
      locFuncs[id] = std::move(fns);
    } else if (field == 5 && wire == 2) {
      std::uint64_t id = 0, name = 0;
      while (!sub.done()) {
        int f, w;
        Reader s2{nullptr, nullptr};
        std::uint64_t x = 0;
        if (!sub.next(&f, &w, &s2, &x)) break;
        if (f == 1 && w == 0) id = x;
        if (f == 2 && w == 0) name = x;
      }
      funcName[id] = name;
    } else if (field == 6 && wire == 2) {
      strings.emplace_back(reinterpret_cast<const char*>(sub.p), static_cast<std::size_t>(sub.end - sub.p));
    } else if (field == 14 && wire == 0) {
      defaultType = static_cast<std::int64_t>(v);
    }
  }
  if (!r.ok || !ok || types.empty()) {
    *err = "not a profile.proto file (or a truncated one)";
    return false;
  }
  auto str = [&](std::uint64_t i) { return i < strings.size() ? strings[i] : std::string("?"); };
  out->sampleTypes.clear();
  out->defaultIndex = static_cast<int>(types.size()) - 1;
  for (std::size_t i = 0; i < types.size(); ++i) {
    out->sampleTypes.push_back({str(types[i].first), str(types[i].second)});
    if (defaultType != 0 && types[i].first == static_cast<std::uint64_t>(defaultType))
      out->defaultIndex = static_cast<int>(i);
  }
  out->samples.clear();
  for (const RawSample& s : samples) {
    std::vector<std::string> names;
    for (std::uint64_t loc : s.locs) {
      auto it = locFuncs.find(loc);
      if (it == locFuncs.end()) continue;
      for (std::uint64_t fn : it->second) {
        auto f = funcName.find(fn);
        names.push_back(f == funcName.end() ? "?" : str(f->second));
      }
    }
    std::vector<std::int64_t> values(s.values.begin(), s.values.end());
    values.resize(types.size());
    out->samples.emplace_back(std::move(names), std::move(values));
  }
  return true;
}

std::string profileTop(const ProfileData& p, std::size_t maxRows) {
  const int k = p.defaultIndex;
  const std::string unit = k >= 0 ? p.sampleTypes[static_cast<std::size_t>(k)].unit : "";
  std::map<std::string, std::int64_t> flat, cum;
  std::int64_t total = 0;
  for (const auto& [stack, values] : p.samples) {
    const std::int64_t v = values[static_cast<std::size_t>(k)];
    total += v;
    if (!stack.empty()) flat[stack.front()] += v;
    std::set<std::string> seen;
    for (const std::string& fn : stack)
      if (seen.insert(fn).second) cum[fn] += v;
  }
  std::vector<std::pair<std::string, std::int64_t>> rows(cum.begin(), cum.end());
  std::sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) {
    const std::int64_t fa = flat.count(a.first) ? flat.at(a.first) : 0;
    const std::int64_t fb = flat.count(b.first) ? flat.at(b.first) : 0;
    return fa != fb ? fa > fb : a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  const double t = total > 0 ? static_cast<double>(total) : 1.0;
  std::string out = fmt::format("Type: {}\nShowing {} functions, {} total\n{:>10} {:>6} {:>6} {:>10} {:>6}\n",
                                k >= 0 ? p.sampleTypes[static_cast<std::size_t>(k)].type : "?",
                                rows.size(), human(static_cast<double>(total), unit), "flat", "flat%",
                                "sum%", "cum", "cum%");
  double sum = 0;
  for (std::size_t i = 0; i < rows.size() && i < maxRows; ++i) {
    const std::int64_t f = flat.count(rows[i].first) ? flat.at(rows[i].first) : 0;
    sum += static_cast<double>(f);
    out += fmt::format("{:>10} {:>5.2f}% {:>5.2f}% {:>10} {:>5.2f}%  {}\n", human(static_cast<double>(f), unit),
                       100.0 * static_cast<double>(f) / t, 100.0 * sum / t,
                       human(static_cast<double>(rows[i].second), unit),
                       100.0 * static_cast<double>(rows[i].second) / t, rows[i].first);
  }
  return out;
}

std::string profileFlameSVG(const ProfileData& p, const std::string& title) {
  struct Node {
    std::int64_t value = 0;
    std::map<std::string, std::size_t> children;  // by name: index into nodes
  };
  std::vector<Node> nodes(1);
  std::vector<std::string> names{"all"};
  const int k = p.defaultIndex;
  for (const auto& [stack, values] : p.samples) {
    const std::int64_t v = values[static_cast<std::size_t>(k)];
    if (v <= 0) continue;
    std::size_t at = 0;
    nodes[0].value += v;
    for (auto it = stack.rbegin(); it != stack.rend(); ++it) {  // root first
      auto found = nodes[at].children.find(*it);
      std::size_t child;
      if (found == nodes[at].children.end()) {
        child = nodes.size();
        nodes[at].children.emplace(*it, child);
        nodes.emplace_back();
        names.push_back(*it);
      } else {
        child = found->second;
      }
      nodes[child].value += v;
      at = child;
    }
  }
  // Depth of the tree, for the height.
  int depth = 1;
  std::vector<std::pair<std::size_t, int>> todo{{0, 1}};
  while (!todo.empty()) {
    auto [n, d] = todo.back();
    todo.pop_back();
    depth = std::max(depth, d);
    for (const auto& [name, c] : nodes[n].children) todo.emplace_back(c, d + 1);
  }
  constexpr double kWidth = 1200, kRow = 18, kTop = 40;
  const double height = kTop + depth * kRow + 10;
  const std::string unit = k >= 0 ? p.sampleTypes[static_cast<std::size_t>(k)].unit : "";
  std::string out = fmt::format(
      "<?xml version=\"1.0\" standalone=\"no\"?>\n"
      "<svg version=\"1.1\" width=\"{:.0f}\" height=\"{:.0f}\" xmlns=\"http://www.w3.org/2000/svg\" "
      "font-family=\"Verdana, sans-serif\" font-size=\"12\">\n"
      "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#f8f8f0\"/>\n"
      "<text x=\"{:.0f}\" y=\"24\" text-anchor=\"middle\" font-size=\"17\">{}</text>\n",
      kWidth, height, kWidth / 2, escapeXml(title));
  const double total = nodes[0].value > 0 ? static_cast<double>(nodes[0].value) : 1.0;
  // Draw: x offset, row (0 at the bottom), node.
  struct Item {
    std::size_t node;
    double x;
    int row;
  };
  std::vector<Item> stack{{0, 10, 0}};
  const double usable = kWidth - 20;
  while (!stack.empty()) {
    const Item it = stack.back();
    stack.pop_back();
    const double w = usable * static_cast<double>(nodes[it.node].value) / total;
    if (w < 0.3) continue;
    const double y = height - 10 - (it.row + 1) * kRow;
    std::uint32_t h = 2166136261u;
    for (char c : names[it.node]) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
    const int red = 200 + static_cast<int>(h % 55), green = 80 + static_cast<int>((h >> 8) % 120),
              blue = static_cast<int>((h >> 16) % 60);
    const std::string label = escapeXml(names[it.node]);
    out += fmt::format(
        "<g><title>{} ({}, {:.2f}%)</title><rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.0f}\" "
        "fill=\"rgb({},{},{})\" rx=\"2\"/>",
        label, human(static_cast<double>(nodes[it.node].value), unit),
        100.0 * static_cast<double>(nodes[it.node].value) / total, it.x, y, w, kRow - 1, red, green, blue);
    const std::size_t fit = static_cast<std::size_t>(w / 7.5);
    if (fit >= 3) {
      std::string text = names[it.node];
      if (text.size() > fit) text = text.substr(0, fit - 2) + "..";
      out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>", it.x + 3, y + kRow - 5, escapeXml(text));
    }
    out += "</g>\n";
    double cx = it.x;
    for (const auto& [name, c] : nodes[it.node].children) {
      stack.push_back({c, cx, it.row + 1});
      cx += usable * static_cast<double>(nodes[c].value) / total;
    }
  }
  out += "</svg>\n";
  return out;
}

}  // namespace spindle::runtime
