// sysmonhook.h: one process-wide function sysmon calls on every tick (about 1 ms), for an
// embedder's work that must run off the Gs' threads but must not wait for a G: the VM
// turns an interrupt flag set from a signal handler into wake-ups of parked fibers, and
// checks time limits, there.
//
// Design. A single atomic function pointer (acquire load per tick, release store when
// set): sysmon of the process's Sched calls it, when set, after firing timers and before
// retaking Ps, holding no scheduler lock, so the hook may take any lock a host thread may
// (channel locks, allglock, sched.lock through ready). In seeded mode sysmon runs nothing
// but the hook, each tick. The hook must return quickly: sysmon's other duties wait.
#pragma once

namespace spindle::runtime {

// Installs (or, with null, removes) the hook. Any thread; once set, later ticks call it.
void setSysmonHook(void (*hook)());
// Called by sysmon each tick.
void runSysmonHook();

}  // namespace spindle::runtime
