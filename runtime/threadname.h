// threadname.h: names the runtime's own threads, as top -H, ps -L, gdb's `info threads`
// and perf show them ("spindle-sysmon", "spindle-gc", "spindle-scvg", "spindle-m",
// "spindle-gcmark", "spindle-pprof").
//
// The creator names the thread right after starting it, so the name is set when the
// creating call returns (a thread naming itself would race with anyone looking).
//
// Invariant: a name is at most 15 bytes (the kernel's limit; a longer one is rejected
// with ERANGE and the thread keeps its inherited name). A failure changes nothing else.
#pragma once

#include <pthread.h>

#include <thread>

namespace spindle::runtime {

inline void setThreadName(std::thread& t, const char* name) {
  (void)pthread_setname_np(t.native_handle(), name);
}

}  // namespace spindle::runtime
