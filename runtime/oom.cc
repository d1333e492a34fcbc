#include "runtime/oom.h"

namespace spindle::runtime {

void throwOutOfMemory() { throw OutOfMemory(); }

}  // namespace spindle::runtime
