// threadname.h: names the runtime's own threads, as top -H, ps -L, gdb's `info threads`
// and perf show them ("spindle-sysmon", "spindle-gc", "spindle-scvg", "spindle-m",
// "spindle-gcmark", "spindle-pprof").
//
// Invariant: a name is at most 15 bytes (the kernel's limit; a longer one is rejected
// with ERANGE and the thread keeps its inherited name). The call sets only the calling
// thread's comm, so it needs no synchronisation; a failure changes nothing else.
#pragma once

#include <pthread.h>

namespace spindle::runtime {

inline void setThreadName(const char* name) { (void)pthread_setname_np(pthread_self(), name); }

}  // namespace spindle::runtime
