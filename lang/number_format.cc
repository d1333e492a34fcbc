// number_format.cc: see number_format.h.
#include "lang/number_format.h"

#include <cstdio>

namespace spindle::lang {

std::string formatNumber(double value) {
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%g", value);
  return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

}  // namespace spindle::lang
