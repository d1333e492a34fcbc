// global_table.cc: see global_table.h.
#include "lang/global_table.h"

namespace spindle::lang {

std::uint32_t GlobalTable::slotFor(std::string_view name) {
  auto it = slots_.find(std::string(name));
  if (it != slots_.end()) return it->second;
  auto slot = static_cast<std::uint32_t>(names_.size());
  names_.emplace_back(name);
  slots_.emplace(names_.back(), slot);
  return slot;
}

std::int64_t GlobalTable::find(std::string_view name) const {
  auto it = slots_.find(std::string(name));
  return it == slots_.end() ? -1 : std::int64_t(it->second);
}

}  // namespace spindle::lang
