// interrupt.cc: stopping a VM's running code from outside (VM::interrupt) and the limits
// of each host call (VMOptions::timeLimit, stepLimit), Lua's lua_sethook count hook and
// Wren/QuickJS's interrupt handler as one mechanism.
//
// Design.
//   - Who fails. Every fiber belongs to the generation of the host call it descends from
//     (VM::call; spawned fibers inherit it). interrupt() makes every generation begun so
//     far interrupted (interruptGen_, a lock-free CAS max: safe in a signal handler); a
//     limit hit makes its one host call's generation interrupted (limitHitGen_), so the
//     fibers earlier calls left running go on. Calls made afterwards get new generations
//     and run normally: the VM stays usable.
//   - Where they fail. VM::run checks interrupted() on entry, that is at the start of
//     every scheduling slice (slices end at the budget's safepoints: calls and loop
//     iterations, or at a preemption request), and fails the fiber with "Interrupted.",
//     "Time limit exceeded." or "Instruction limit exceeded." without consulting try
//     handlers (uncatchable: a script cannot swallow its own interrupt). The failure ends
//     only that fiber (FiberBody::interrupted: never reported as a spawned fiber's
//     error); the host call fails with its main fiber's error.
//   - Waking. interrupt() may run in a signal handler, so it only stores flags. Sysmon's
//     tick (runtime/sysmonhook.h, about every millisecond) calls pollAllInterrupts: for
//     each VM it checks the running call's deadline, and when a wake is due it asks
//     every G to yield (running fibers reach their next safepoint at once), wakes the
//     interrupted fibers parked on this VM's channels (runtime::cancelWaiters: as a close
//     wakes them, but only them and without closing) and expires their sleeps
//     (Sched::expireTimersIf). A woken fiber runs VM::run, which finishes the operation
//     (unlinking a select's other cases) and fails. The race with a fiber about to park:
//     FiberBody::run checks interruptedParking after VM::run returned Park (ordered
//     against the flag's store by the channel's lock): a sleep not yet committed is dropped (the G yields
//     and fails); a channel park (the channel's lock held until its commit) re-arms the
//     wake, and a pass that follows the flag's store finds the queued sudog. A sleep whose
//     timer commit ran after a pass is found by the later passes (kWakePasses ticks);
//     past those it fails when its sleep ends.
//   - Steps. A host call with stepLimit counts the safepoints its fibers pass: each run
//     gets at most the steps left as its budget (stepSlice) and is charged what it used
//     (chargeSteps, from FiberBody::budgetLeft), so the count stops within one step of the
//     limit; nested calls from natives are charged the same way.
//
// Invariants. interrupt() touches only lock-free atomics (static_assert below).
// pollAllInterrupts runs on sysmon with no scheduler lock held; it holds the registry lock
// while it works on a VM, and ~VM unregisters (taking that lock) before anything of the VM
// goes, so sysmon never touches a destroyed VM. Seeded schedules keep this: their sysmon
// runs only the hook (runtime/sysmon.cc).
#include <algorithm>
#include <mutex>
#include <vector>

#include "runtime/proc.h"
#include "runtime/sysmonhook.h"
#include "vm/fiber.h"
#include "vm/vm.h"

namespace spindle::vm {

static_assert(std::atomic<std::uint32_t>::is_always_lock_free &&
                  std::atomic<bool>::is_always_lock_free,
              "VM::interrupt must be async-signal-safe");

namespace {
// Wake passes after each request (one per sysmon tick, about 1 ms): a fiber that was
// between its check and its sleep's timer commit when a pass ran is found by a later one.
constexpr int kWakePasses = 20;

std::mutex& registryLock() {
  static std::mutex m;
  return m;
}
std::vector<VM*>& registry() {  // under registryLock()
  static std::vector<VM*> vms;
  return vms;
}
}  // namespace

void pollAllInterrupts() {
  const std::int64_t now = runtime::nanotime();
  std::lock_guard<std::mutex> lk(registryLock());
  for (VM* vm : registry()) vm->pollInterrupts(now);
}

void VM::registerInterrupts() {
  std::lock_guard<std::mutex> lk(registryLock());
  registry().push_back(this);
  runtime::setSysmonHook(&pollAllInterrupts);
}

void VM::unregisterInterrupts() {
  std::lock_guard<std::mutex> lk(registryLock());
  std::erase(registry(), this);
  if (deadlockHeld_.exchange(false, std::memory_order_seq_cst)) sched_->releaseDeadlock();
}

void VM::interrupt() {
  const std::uint32_t gen = generation_.load(std::memory_order_acquire);
  std::uint32_t cur = interruptGen_.load(std::memory_order_relaxed);
  while (cur < gen &&
         !interruptGen_.compare_exchange_weak(cur, gen, std::memory_order_seq_cst, std::memory_order_relaxed)) {
  }
  requestWake();
}

void VM::requestWake() {
  if (!deadlockHeld_.exchange(true, std::memory_order_seq_cst)) sched_->holdDeadlock();
  interruptWake_.store(true, std::memory_order_seq_cst);
}

bool VM::interruptedParking(const ObjFiber* fiber) {
  // Against interrupt() / hitLimit (the flag's store, then a wake pass that takes the
  // channel's lock): the fiber queued its sudog holding that lock and holds it until its
  // park commit. If a pass took the lock first, it had stored the flag before, and this
  // fiber's later acquire of the lock makes that store visible here; otherwise the pass
  // takes the lock after the commit and finds the sudog.
  const std::uint32_t g = fiber->gen;
  if (g > interruptGen_.load(std::memory_order_seq_cst) && g != limitHitGen_.load(std::memory_order_seq_cst)) {
    return false;
  }
  requestWake();
  return true;
}

RunStatus VM::failInterrupted(ObjFiber* fiber) {
  FiberBody* body = fiber->body;
  // The pending operation is dropped, its outcome ignored: a woken select unlinks its other
  // cases' sudogs first; a woken send, receive or join has none left queued (its waker
  // dequeued it), and a join must not read the joined fiber, which may still be running
  // (a cancel woke it, not the close of its done channel); a foreign call is not made.
  if (body->pending == FiberBody::Pending::Select) (void)body->resume();
  body->pending = FiberBody::Pending::None;
  body->waitChannel = nullptr;
  recordError(fiber, interruptMessage(fiber));
  closeUpvalues(fiber, 0);
  body->interrupted = true;
  return RunStatus::Exit;
}

const char* VM::interruptMessage(const ObjFiber* fiber) const {
  if (fiber->gen <= interruptGen_.load(std::memory_order_acquire)) return "Interrupted.";
  return limitWhich_.load(std::memory_order_relaxed) == Limit::Time ? "Time limit exceeded."
                                                                   : "Instruction limit exceeded.";
}

void VM::beginLimits(std::uint32_t gen) {
  if (options_.timeLimit <= 0 && options_.stepLimit == 0) return;
  stepsLeft_.store(static_cast<std::int64_t>(std::min<std::uint64_t>(options_.stepLimit, INT64_MAX)),
                   std::memory_order_relaxed);
  std::int64_t deadline = 0;
  if (options_.timeLimit > 0) {
    const double ns = options_.timeLimit * 1e9;
    deadline = runtime::nanotime() + (ns >= 9e18 ? INT64_MAX / 2 : static_cast<std::int64_t>(ns));
  }
  deadline_.store(deadline, std::memory_order_relaxed);
  limitGen_.store(gen, std::memory_order_release);
}

void VM::endLimits() {
  limitGen_.store(0, std::memory_order_release);
  deadline_.store(0, std::memory_order_relaxed);
}

void VM::hitLimit(std::uint32_t gen, Limit which) {
  limitWhich_.store(which, std::memory_order_relaxed);
  limitHitGen_.store(gen, std::memory_order_seq_cst);  // publishes limitWhich_
  requestWake();
}

std::int64_t VM::stepSlice(std::int64_t budget) const {
  return std::max<std::int64_t>(1, std::min(budget, stepsLeft_.load(std::memory_order_relaxed)));
}

void VM::chargeSteps(const ObjFiber* fiber, std::int64_t steps) {
  if (steps <= 0) return;
  // Relaxed: a counter; fibers of the call charging at once each subtract their share.
  if (stepsLeft_.fetch_sub(steps, std::memory_order_relaxed) <= steps) hitLimit(fiber->gen, Limit::Steps);
}

void VM::pollInterrupts(std::int64_t now) {
  std::int64_t deadline = deadline_.load(std::memory_order_relaxed);
  if (deadline != 0 && now >= deadline && deadline_.compare_exchange_strong(deadline, 0, std::memory_order_relaxed)) {
    const std::uint32_t gen = limitGen_.load(std::memory_order_acquire);
    if (gen != 0) hitLimit(gen, Limit::Time);
  }
  if (interruptWake_.exchange(false, std::memory_order_acq_rel)) {
    // A stale request only costs a G one extra yield.
    sched_->forEachG([](runtime::G* g) { g->preempt.store(true, std::memory_order_relaxed); });
    wakePasses_.store(kWakePasses, std::memory_order_relaxed);
  }
  if (wakePasses_.load(std::memory_order_relaxed) > 0) {
    wakeInterrupted();
    // After the last pass a deadlock is a deadlock again, unless a new request came
    // (its hold may have found this one still held: take it back).
    if (wakePasses_.fetch_sub(1, std::memory_order_relaxed) == 1) {
      if (deadlockHeld_.exchange(false, std::memory_order_seq_cst)) sched_->releaseDeadlock();
      if (interruptWake_.load(std::memory_order_seq_cst) && !deadlockHeld_.exchange(true, std::memory_order_seq_cst)) {
        sched_->holdDeadlock();
      }
    }
  }
}

namespace {
// Whether g is a parked fiber of vm that must fail (Sched::expireTimersIf's and
// cancelWaiters' pick: g is asleep or parked, so its body is stable).
bool mustWake(runtime::G* g, void* vm) {
  auto* body = dynamic_cast<FiberBody*>(g->body);
  return body != nullptr && body->owner() == vm && static_cast<const VM*>(vm)->interrupted(body->fiber());
}
}  // namespace

void VM::wakeInterrupted() {
  cancelParkedOnChannels();
  sched_->expireTimersIf(&mustWake, this);
}

namespace interrupt_detail {
bool mustWakeFiber(runtime::G* g, void* vm) { return mustWake(g, vm); }
}  // namespace interrupt_detail

}  // namespace spindle::vm
