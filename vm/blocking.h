// blocking.h: natives that block (a host's, declared with spindle::Blocking::Yes, or the
// standard library's) run their blocking part in the scheduler's syscall state, as FFI
// calls do (Go's entersyscall / exitsyscall around a blocking system call).
//
// Design. BlockingSection, made on a fiber's thread, calls Sched::enterSyscall: the M
// gives up its P, which sysmon hands to another M when there is work (within a tick), so
// with procs = 1 the other fibers keep running while the native blocks; its destructor
// calls exitSyscall (the M waits for a P again). When the caller is the G's own fiber its
// state is saved (the interpreter saves before every call) and the arguments are on its
// stack: the stack is quiescent, so the collector scans the G during the call instead of
// waiting for it; a nested fiber's is not (the G's traceStack does not see it). Outside a
// running G (a host thread driving the VM) there is no P to hand over: nothing happens.
//
// Callbacks. A blocking native may call back into its VM (run, call, global, ...): those
// need a P, so VM::withP and VM::call take one back for their duration (ReacquireP:
// exitSyscall, then enterSyscall again). Nothing else of the VM may be touched in the
// section: the thread holds no P (no allocation, no barrier).
//
// Invariants. Sections nest only through callbacks (a callback's native may open its own);
// the thread-local record names the innermost one. Per thread only: no shared word.
#pragma once

#include <utility>

namespace spindle::vm {

class BlockingSection {
 public:
  BlockingSection();
  ~BlockingSection();
  BlockingSection(const BlockingSection&) = delete;
  BlockingSection& operator=(const BlockingSection&) = delete;

 private:
  bool entered_ = false;         // enterSyscall was called (on a G with a P)
  bool quiescent_ = false;       // its stackQuiescent
  BlockingSection* outer_ = nullptr;
  friend class ReacquireP;
};

// Runs f() (its result returned, its exception passed on) in a BlockingSection.
template <typename F>
decltype(auto) blockingCall(F&& f) {
  BlockingSection section;
  return std::forward<F>(f)();
}

// Inside a BlockingSection that gave up its P: takes a P back for its lifetime (VM::withP,
// VM::call). Elsewhere: nothing.
class ReacquireP {
 public:
  ReacquireP();
  ~ReacquireP();
  ReacquireP(const ReacquireP&) = delete;
  ReacquireP& operator=(const ReacquireP&) = delete;
  // Whether the calling thread is in a BlockingSection without a P (ReacquireP has work).
  static bool needed();

 private:
  BlockingSection* section_ = nullptr;
};

}  // namespace spindle::vm
