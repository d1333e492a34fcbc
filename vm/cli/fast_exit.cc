#include "vm/cli/fast_exit.h"

#include <cstdio>
#include <cstdlib>

namespace spindle::cli {

void fastExit(int rc) {
  std::fflush(nullptr);  // every output stream: stdout was checked by the caller
  std::_Exit(rc);
}

}  // namespace spindle::cli
