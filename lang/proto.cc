// proto.cc: the line table (see proto.h).
#include "lang/proto.h"

#include <algorithm>

namespace spindle::lang {

void LineTable::add(std::size_t offset, int line) {
  if (!runs_.empty() && runs_.back().line == line) return;
  if (!runs_.empty() && runs_.back().start == offset) {
    runs_.back().line = line;  // nothing was emitted on the previous line
    if (runs_.size() > 1 && runs_[runs_.size() - 2].line == line) runs_.pop_back();
    return;
  }
  runs_.push_back(Run{static_cast<std::uint32_t>(offset), line});
}

void LineTable::truncate(std::size_t size) {
  while (!runs_.empty() && runs_.back().start >= size) runs_.pop_back();
}

int LineTable::lineAt(std::size_t offset) const {
  if (runs_.empty()) return 0;
  // The last run whose start is <= offset.
  auto it = std::upper_bound(runs_.begin(), runs_.end(), offset,
                             [](std::size_t o, const Run& r) { return o < r.start; });
  if (it == runs_.begin()) return runs_.front().line;
  return std::prev(it)->line;
}

}  // namespace spindle::lang
