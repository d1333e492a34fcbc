// fiber.cc: fibers as Gs (FiberBody, see fiber.h), host entry (withP, call), spawn,
// fiber results (join, done, the never-joined records), the deadlock report, channels,
// select and the concurrency natives (Channel, sleep, after, yield, procs, gc).
// Fiber results: a spawn expression's fiber has a done channel, closed by fiberEnded
// after its result or error value was stored (the close's lock orders those writes
// before every joiner's reads); joiners wait by receiving on it (WaitReason::Join).
#include "vm/fiber.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <thread>

#include "lang/opcodes.h"
#include "runtime/gc.h"
#include "runtime/throw.h"
#include "vm/blocking.h"
#include "vm/ffi.h"

namespace spindle::vm {

namespace {
// A value received from a channel moves onto the receiver's stack, which the collector
// may already have scanned (stacks are not barriered), while its other copies (the buffer
// slot or the sender's stack) go away: the deletion half of the hybrid barrier shades it
// (a no-op unless marking). The send side shades too, but a send made before marking
// began could not.
Value received(std::uint64_t bits) {
  const Value v = Value::fromBits(bits);
  shadeValue(v);
  return v;
}
}  // namespace

namespace {
// At ~VM a channel may still list sudogs of abandoned Gs: its memory goes without
// freechan's no-waiters check. Freed by its cleanup, the channel was unreachable, so no G
// waits on it (a waiting G's stack holds it): freechan checks that.
void releaseChan(void* c) { runtime::freechan(static_cast<runtime::hchan*>(c)); }
void orphanChan(void* p) {
  auto* c = static_cast<runtime::hchan*>(p);
  runtime::freechanBuffer(c);
  delete c;
}

thread_local ObjFiber* tlsFiber = nullptr;
thread_local RuntimeErrorInfo lastError_;  // VM::lastError

using runtime::Step;
}  // namespace

ObjFiber* currentFiber() { return tlsFiber; }

const RuntimeErrorInfo& VM::lastError() const { return lastError_; }
void setCurrentFiber(ObjFiber* f) { tlsFiber = f; }

// --- the G body ---------------------------------------------------------------------------

Step FiberBody::run(runtime::G* g, std::uint32_t budget) {
  g_ = g;
  if (vm_->dying()) {
    // ~VM stops this fiber: finish a channel or select operation (it unlinks the G's
    // sudogs from the channels' queues), never a pending foreign call, and exit.
    if (pending == Pending::Foreign) pending = Pending::None;
    if (pending != Pending::None) {
      ObjFiber* prev = tlsFiber;
      tlsFiber = fiber_;
      (void)resume();
      tlsFiber = prev;
    }
    return Step::exit();
  }
  fiber_->preempt = &g->preempt;
  if (hostMain_) vm_->setHostG(g, fiber_->gen);
  ObjFiber* prev = tlsFiber;
  tlsFiber = fiber_;
  // A host call with a step limit: its fibers' runs are bounded by, and charged to, the
  // steps it has left (interrupt.cc).
  const bool counted = vm_->stepCounted(fiber_);
  const std::int64_t slice = counted ? vm_->stepSlice(budget) : budget;
  RunStatus st = vm_->run(fiber_, slice);
  if (counted) vm_->chargeSteps(fiber_, slice - budgetLeft);
  tlsFiber = prev;
  switch (st) {
    case RunStatus::Yield:
      if (pending == Pending::Gc || pending == Pending::FreeOSMemory || pending == Pending::GcVerify ||
          pending == Pending::GcCensus || pending == Pending::GcPath) {
        // A true safepoint: the interpreter returned, everything is in the fiber.
        const Pending p = pending;
        pending = Pending::None;
        if (p == Pending::FreeOSMemory) {
          runtime::freeOSMemory();  // a full cycle, then the free pages go back
        } else if (p == Pending::GcVerify) {
          runtime::verifyHeap();  // between cycles: stops the world, fatal if broken
        } else if (p == Pending::GcCensus || p == Pending::GcPath) {
          // The native's result slot is the top of the stack (CALL left it there).
          Value answer = p == Pending::GcCensus ? vm_->gcCensus() : vm_->gcPath(pathTarget);
          pathTarget = Value::nil();
          stackStore(&fiber_->stack->data()[fiber_->stackTop - 1], answer);
        } else {
          runtime::gcCollect();
        }
      }
      // The cycles gcstress owes (their count was reached inside the step just run).
      if (pending != Pending::Foreign) runtime::gcStressSafepoint();
      if (pending == Pending::Foreign) {
        g->needWorkerM.store(true, std::memory_order_relaxed);  // resume() makes the call
      } else {
        pending = Pending::None;
      }
      fiber_->request = false;
      return Step::yield();
    case RunStatus::Park:
      fiber_->request = false;
      if (vm_->interruptedParking(fiber_)) {
        // Interrupted before its park took effect (interrupt.cc): a sleep is dropped (the
        // G yields and fails on its next run); a channel park stands, a wake pass is due.
        if (pending == Pending::Sleep) {
          pending = Pending::None;
          g->parkCommit = nullptr;
          g->parkArg = nullptr;
          return Step::yield();
        }
      }
      return parkStep;
    case RunStatus::Exit:
      if (fiber_->done != nullptr) {
        vm_->fiberEnded(fiber_);  // a spawn expression's fiber: its error waits for join
      } else if (fiber_->state == FiberState::Failed && spawned && !vm_->aborted(fiber_) &&
                 !vm_->dying() && !interrupted) {
        if (vm_->options().onFiberError) {
          vm_->options().onFiberError(error);  // the host's: this fiber alone ends
        } else {
          vm_->fiberFailed(fiber_);
        }
      }
      return Step::exit();
  }
  return Step::exit();
}

namespace {
// The name of stack slot i of fiber f (numbered id, as the deadlock report and the
// fatal dump number it): the frame whose window holds it.
std::string stackSlotName(ObjFiber* f, std::uint64_t id, std::uint32_t i) {
  const CallFrame* frames = f->frames->frames();
  for (std::uint32_t j = f->frameCount; j-- > 0;) {
    if (frames[j].base > i) continue;
    const ObjString* name = frames[j].closure->function->name;
    return fmt::format("fiber {} frame {}() slot {}", id, name != nullptr ? name->view() : "script",
                       i - frames[j].base);
  }
  return fmt::format("fiber {} stack slot {}", id, i);
}
}  // namespace

template <typename Ptr>
void FiberBody::forEachStackRef(runtime::G* g, bool withPathTarget, const Ptr& ptr) {
  // ptr(p, name): name(out) appends the slot's name, built only by a labelled walk.
  // Steps name the fiber by its number (ObjFiber::id), not its G's id, which depends on
  // the runtime's own Gs.
  ObjFiber* f = fiber_;
  const std::uint64_t id = f->id;
  auto value = [&](Value v, const auto& name) {
    if (v.isObj()) ptr(v.asObj(), name);
  };
  auto fixed = [id](const char* what) {
    return [id, what](std::vector<std::string>* out) { out->push_back(fmt::format("fiber {} {}", id, what)); };
  };
  ptr(f, fixed("object"));
  ptr(f->stack, fixed("stack"));
  ptr(f->frames, fixed("frames"));
  const Value* s = f->stack->data();
  for (std::uint32_t i = 0; i < f->stackTop; ++i) {  // see stackStore
    value(loadValue(&s[i]), [&, i](std::vector<std::string>* out) { out->push_back(stackSlotName(f, id, i)); });
  }
  const CallFrame* frames = f->frames->frames();
  for (std::uint32_t i = 0; i < f->frameCount; ++i) ptr(frames[i].closure, fixed("frame closure"));
  for (ObjUpvalue* u = f->openUpvalues; u != nullptr; u = u->next) ptr(u, fixed("open upvalue"));
  value(f->result, fixed("result"));
  if ((pending == Pending::Recv || pending == Pending::ForInRecv) && waitChannel != nullptr &&
      g != nullptr) {
    // A sender may have handed its element over already (under the channel's lock).
    std::lock_guard<std::mutex> lk(waitChannel->chan->lock);
    if (g->sud.success) value(Value::fromBits(g->sud.elem), fixed("received element"));
  }
  if (pending == Pending::Select && g != nullptr) {
    sel.forEachReceived(g, [&](std::uint64_t w) { value(Value::fromBits(w), fixed("received element")); });
  }
  if (withPathTarget) value(pathTarget, fixed("gcpath argument"));
}

void FiberBody::traceStack(runtime::G* g, void (*visit)(void* ctx, void** slot), void* ctx) {
  forEachStackRef(g, /*withPathTarget=*/true, [&](void* p, const auto&) { visitPtr(visit, ctx, p); });
}

bool FiberBody::traceStackLabelled(runtime::G* g, runtime::LabelVisitFn visit, void* ctx) {
  forEachStackRef(g, /*withPathTarget=*/false,
                  [&](void* p, const auto& name) { runtime::visitNamed(visit, ctx, p, name); });
  return true;
}

bool FiberBody::resume() {
  ObjFiber* f = fiber_;
  Value* top = f->stack->data() + f->stackTop;
  const Pending p = pending;
  pending = Pending::None;
  switch (p) {
    case Pending::Send:
      waitChannel = nullptr;
      if (runtime::chansendResume(g_) == runtime::ChanResult::Closed) {
        vm_->recordError(f, "send on closed channel");
        return false;
      }
      stackStore(top - 2, Value::nil());  // receiver slot <- result; pop the argument
      f->stackTop -= 1;
      return true;
    case Pending::Recv: {
      std::uint64_t elem = 0;
      bool ok = false;
      runtime::chanrecvResume(g_, &elem, &ok);
      waitChannel = nullptr;
      stackStore(top - 1, ok ? received(elem) : Value::nil());
      return true;
    }
    case Pending::ForInRecv: {
      std::uint64_t elem = 0;
      bool ok = false;
      runtime::chanrecvResume(g_, &elem, &ok);
      waitChannel = nullptr;
      VM::finishForInRecv(f, ok, ok ? received(elem) : Value::nil());
      return true;
    }
    case Pending::Select: return vm_->finishSelect(f, sel.resume(g_));
    case Pending::Join: {
      std::uint64_t elem = 0;
      bool ok = false;
      runtime::chanrecvResume(g_, &elem, &ok);  // woken by the close (or by ~VM's)
      waitChannel = nullptr;
      return vm_->dying() || vm_->finishJoin(f);
    }
    case Pending::Import: {  // the same wait, on the module's loader (module.cc)
      std::uint64_t elem = 0;
      bool ok = false;
      runtime::chanrecvResume(g_, &elem, &ok);
      waitChannel = nullptr;
      return vm_->dying() || vm_->finishImport(f);
    }
    case Pending::Foreign: {
      const Value callee = loadValue(f->stack->data() + f->stackTop - foreignArgc - 1);
      return vm_->callForeign(f, as<ObjForeignFn>(callee), foreignArgc);
    }
    default: return true;
  }
}

// --- host entry -----------------------------------------------------------------------------

namespace {
class FnG final : public runtime::GBody {
 public:
  explicit FnG(const std::function<void()>& fn) : fn_(fn) {}
  Step run(runtime::G*, std::uint32_t) override {
    fn_();
    return Step::exit();
  }

 private:
  const std::function<void()>& fn_;
};
}  // namespace

void VM::withP(const std::function<void()>& fn) {
  if (ReacquireP::needed()) {  // a blocking native calling back (blocking.h)
    ReacquireP p;
    fn();
    return;
  }
  if (runtime::currentP() != nullptr) {
    fn();
    return;
  }
  FnG body(fn);
  const runtime::RunStatus st = sched_->runMain(&body);
  SPINDLE_CHECK(st == runtime::RunStatus::Ok, "VM::withP: a host G that never parks ended with {}",
                static_cast<int>(st));
}

void VM::setHostG(runtime::G* g, std::uint32_t gen) {
  std::lock_guard<std::mutex> lk(errorLock_);
  hostG_ = g;
  hostGoid_ = g->goid;
  hostGen_ = gen;
}

bool VM::call(Value callee, const Value* args, int argc, Value* result,
              std::uint32_t* resultHandle) {
  if (ReacquireP::needed()) {  // a blocking native calling back (blocking.h)
    ReacquireP p;
    return call(callee, args, argc, result, resultHandle);
  }
  if (runtime::currentP() != nullptr) {
    // A native calling back: run a nested fiber inline on this M (it cannot park).
    ObjFiber* parent = tlsFiber;
    ObjFiber* fiber = newFiber(callee, args, argc, kHostCallStack);
    fiber->gen = parent != nullptr ? parent->gen : generation_.load(std::memory_order_relaxed);
    FiberBody* body = fiber->body;
    // The nested fiber polls its M's G's preemption flag at its safepoints. It cannot
    // return to the scheduler: at each Yield a pending stop or forEachP passes here
    // (checkpoint, not a scan point), and the preemption the run loop consumed is handed
    // back to the calling fiber, which yields at its first safepoint after this call.
    runtime::G* g = runtime::getm() != nullptr ? runtime::getm()->curg : nullptr;
    if (g != nullptr) fiber->preempt = &g->preempt;
    tlsFiber = fiber;
    RunStatus st;
    bool yielded = false;
    do {
      const bool counted = stepCounted(fiber);
      const std::int64_t slice = counted ? stepSlice(1 << 20) : 1 << 20;
      st = run(fiber, slice);
      if (counted) chargeSteps(fiber, slice - body->budgetLeft);
      body->pending = FiberBody::Pending::None;  // yield()/gc() in a nested call: no-ops
      fiber->request = false;
      if (st == RunStatus::Yield) {
        yielded = true;
        runtime::Sched::checkpoint();
      }
    } while (st == RunStatus::Yield);
    if (yielded && g != nullptr) g->preempt.store(true, std::memory_order_relaxed);
    tlsFiber = parent;
    SPINDLE_CHECK(st == RunStatus::Exit, "VM::call: a nested fiber parked");
    const bool ok = fiber->state == FiberState::Done;
    if (ok) {
      *result = fiber->result;
      if (resultHandle != nullptr && result->isObj()) *resultHandle = newHandle(*result);
    } else {
      lastError_ = body->error;
      // The error (and a thrown value) goes on to the calling fiber, should its native
      // fail with it (recordNativeError).
      if (parent != nullptr) {
        const Value thrown = loadValue(&fiber->thrown);
        writeBarrier(parent, &parent->thrown, thrown);
        parent->body->nestedError = body->error;
      }
    }
    body->release();
    return ok;
  }

  const std::uint32_t gen = generation_.fetch_add(1, std::memory_order_relaxed) + 1;
  beginLimits(gen);  // interrupt.cc
  // The main fiber kept by an earlier host call (hostcall.cc, already a root), else a new one.
  ObjFiber* fiber = reuseHostFiber(callee, args, argc);
  if (fiber != nullptr) {
    fiber->gen = gen;
    fiber->id = nextFiberId_.fetch_add(1, std::memory_order_relaxed);
  } else {
    withP([&] {
      fiber = newFiber(callee, args, argc, kHostCallStack);
      fiber->gen = gen;
      fiber->id = nextFiberId_.fetch_add(1, std::memory_order_relaxed);
      std::lock_guard<std::mutex> lk(handlesLock_);
      hostFibers_.push_back(fiber);  // a root until the host call ends
    });
  }
  FiberBody* body = fiber->body;
  body->makeHostMain();  // shared by this thread and the G
  const runtime::RunStatus st = sched_->runMain(body);
  endLimits();
  {
    std::lock_guard<std::mutex> lk(errorLock_);
    hostG_ = nullptr;
    hostGoid_ = 0;
    hostGen_ = 0;
  }
  bool ok = false;
  switch (st) {
    case runtime::RunStatus::Deadlock: {
      // The main G is parked forever: its state is saved and only a stack scan or shrink
      // (a cycle may still be running) touches it, under the G's scan lock.
      runtime::G* g = body->g();
      g->lockScan();
      lastError_ = {runtime::kDeadlockMessage, traceOf(fiber)};
      g->unlockScan();
      if (interrupted(fiber)) {
        lastError_.message = interruptMessage(fiber);  // interrupt.cc: it came first
        break;
      }
      appendBlockedFibers(lastError_.trace);
      lastError_.trace.emplace_back(runtime::gcStateLine().view());
      break;
    }
    case runtime::RunStatus::Ended: {
      std::lock_guard<std::mutex> lk(errorLock_);
      lastError_ = fiberError_;
      break;
    }
    case runtime::RunStatus::Ok:
      ok = fiber->state == FiberState::Done;
      if (ok) {
        *result = fiber->result;
      } else if (aborted(fiber)) {
        // A spawned fiber's error stopped this one before it could end our wait.
        std::lock_guard<std::mutex> lk(errorLock_);
        lastError_ = fiberError_;
      } else {
        lastError_ = body->error;
      }
      break;
  }
  // A result that is no object needs no root, and a kept fiber stays one (hostcall.cc):
  // the usual call keeps its fiber without handlesLock_.
  if (ok && !result->isObj() && keepHostFiber(fiber)) return true;
  bool kept = false;
  {
    // The fiber stops being a root in the same critical section that roots the result:
    // the root scan takes handlesLock_, so it sees one or the other.
    std::lock_guard<std::mutex> lk(handlesLock_);
    if (ok && resultHandle != nullptr && result->isObj()) *resultHandle = newHandleLocked(*result);
    // A non-object result already had its try above.
    kept = ok && result->isObj() && keepHostFiber(fiber);
    if (!kept) std::erase(hostFibers_, fiber);
  }
  if (!kept) body->release();
  return ok;
}

void VM::fiberFailed(ObjFiber* fiber) {
  // The host call's main G and its goid: by the endHostRun below that call may have
  // ended and its G been recycled for the next host call, which the goid tells apart.
  runtime::G* host = nullptr;
  std::uint64_t hostGoid = 0;
  {
    std::lock_guard<std::mutex> lk(errorLock_);
    if (failedGen_ >= fiber->gen) return;  // the first error of a generation wins
    failedGen_ = fiber->gen;
    fiberError_ = fiber->body->error;
    if (hostGen_ == fiber->gen) {
      host = hostG_;
      hostGoid = hostGoid_;
    }
  }
  std::uint32_t cur = abortGen_.load(std::memory_order_relaxed);
  while (cur < fiber->gen &&
         !abortGen_.compare_exchange_weak(cur, fiber->gen, std::memory_order_relaxed)) {
  }
  // Every fiber of the generation stops at its next safepoint.
  sched_->forEachG([](runtime::G* g) { g->preempt.store(true, std::memory_order_relaxed); });
  if (host != nullptr) sched_->endHostRun(host, hostGoid);
}

bool VM::aborted(const ObjFiber* fiber) const {
  return fiber->gen <= abortGen_.load(std::memory_order_relaxed);
}

void VM::stopFibers() {
  dying_.store(true, std::memory_order_seq_cst);
  // Closing a channel wakes every G parked on it (plain send/recv and select cases);
  // the record, hence the hchan, stays while orphanLock is held.
  auto closeChan = [](void* c) { (void)runtime::closechan(static_cast<runtime::hchan*>(c)); };
  // Acquire: pairs with bodyGone's release, so every body's accesses to this VM happen
  // before ~VM frees it. Fibers that were inside run() when dying_ was set may still
  // make channels or park, so the wake-up repeats until none is left.
  while (liveBodies_.load(std::memory_order_acquire) != 0) {
    sched_->forEachG([](runtime::G* g) { g->preempt.store(true, std::memory_order_relaxed); });
    forEachOwned(&releaseChan, closeChan);
    sched_->expireTimers(this);
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

// --- spawn ------------------------------------------------------------------------------------

ObjFiber* VM::spawn(ObjFiber* parent, Value callee, const Value* args, int argc, bool keep) {
  // Check the call in the spawner, so its errors carry the spawner's trace.
  int arity = -1;
  if (callee.isObj()) {
    switch (callee.asObj()->kind) {
      case ObjKind::Closure: arity = static_cast<int>(as<ObjClosure>(callee)->function->arity); break;
      case ObjKind::BoundMethod:
        arity = static_cast<int>(as<ObjBoundMethod>(callee)->method->function->arity);
        break;
      case ObjKind::Class: {
        Value init = loadValue(&as<ObjClass>(callee)->initializer);
        arity = isKind(init, ObjKind::Closure) ? static_cast<int>(as<ObjClosure>(init)->function->arity) : 0;
        break;
      }
      case ObjKind::Native: arity = as<ObjNative>(callee)->arity < 0 ? argc : as<ObjNative>(callee)->arity; break;
      default: break;
    }
  }
  if (arity < 0) {
    recordError(parent, "Can only call functions and classes.");
    return nullptr;
  }
  if (arity != argc) {
    recordError(parent, fmt::format("Expected {} arguments but got {}.", arity, argc));
    return nullptr;
  }
  if (runtime::writeBarrierEnabled()) {
    // The callee and arguments move into another G's stack (hybrid barrier rule).
    shadeValue(callee);
    for (int i = 0; i < argc; ++i) shadeValue(args[i]);
  }
  // Nothing runs between these allocations (no safepoint): `done` needs no root.
  ObjChannel* done = keep ? newChannel(0) : nullptr;
  ObjFiber* f = newFiber(callee, args, argc);
  f->gen = parent->gen;
  f->id = nextFiberId_.fetch_add(1, std::memory_order_relaxed);
  writeBarrierPtr(f, &f->done, done);
  f->body->spawned = true;
  sched_->newproc(f->body);
  return f;
}

// --- fiber results (join, done) ------------------------------------------------------------

// On the ended fiber's M, before the close that wakes its joiners (the channel lock's
// release orders every write here before a joiner's reads).
void VM::fiberEnded(ObjFiber* fiber) {
  if (fiber->state == FiberState::Failed && !aborted(fiber) && !dying()) {
    // The error as a value, as a try handler would have caught it: the thrown value
    // itself, or an Error {message, trace}.
    if (loadValue(&fiber->thrown).isUndefined()) {
      writeBarrier(fiber, &fiber->thrown, Value::object(newError(fiber->body->error)));
    }
    std::lock_guard<std::mutex> lk(errorLock_);
    if (!fiber->body->interrupted) neverJoined_[fiber->id] = fiber->body->error.message;
  }
  (void)runtime::closechan(fiber->done->chan);
}

VM::OpResult VM::invokeFiber(ObjFiber* fiber, ObjFiber* target, ObjString* name, int argc) {
  SPINDLE_DCHECK(target->done != nullptr, "Fiber.{}: fiber {} was not started by a spawn expression",
                 name->view(), target->id);
  FiberBody* body = fiber->body;
  runtime::hchan* c = target->done->chan;
  Value* calleeSlot = fiber->stack->data() + fiber->stackTop - argc - 1;
  if (name == joinString_) {
    if (!expectArgs(fiber, argc, 0)) return OpResult::Error;
    if (target == fiber) {
      recordError(fiber, "A fiber cannot join itself.");
      return OpResult::Error;
    }
    runtime::G* g = body->g();
    std::uint64_t elem = 0;
    bool ok = false;
    const runtime::ChanResult r = g != nullptr ? runtime::chanrecv(c, g, &elem, &ok)
                                               : runtime::tryrecv(c, &elem, &ok);
    if (r == runtime::ChanResult::Park) {
      body->pending = FiberBody::Pending::Join;
      body->waitChannel = target->done;
      body->parkStep = runtime::Step::park(runtime::WaitReason::Join, c);
      return OpResult::Park;
    }
    if (r == runtime::ChanResult::WouldBlock) {
      recordError(fiber, "A join would block in a native callback.");
      return OpResult::Error;
    }
    return finishJoin(fiber) ? OpResult::Ok : OpResult::Error;
  }
  if (name == doneString_) {
    if (!expectArgs(fiber, argc, 0)) return OpResult::Error;
    bool ended;
    {
      std::lock_guard<std::mutex> lk(c->lock);
      ended = c->closed;
    }
    stackStore(calleeSlot, Value::boolean(ended));
    return OpResult::Ok;
  }
  recordError(fiber, fmt::format("Undefined property '{}'.", name->view()));
  return OpResult::Error;
}

// The joined fiber (the receiver, on top of the stack) has ended: its done channel was
// seen closed, so its state, result and thrown value are final and visible here.
bool VM::finishJoin(ObjFiber* fiber) {
  Value* slot = fiber->stack->data() + fiber->stackTop - 1;
  auto* target = as<ObjFiber>(*slot);
  if (target->state == FiberState::Done) {
    stackStore(slot, loadValue(&target->result));
    return true;
  }
  {
    std::lock_guard<std::mutex> lk(errorLock_);
    neverJoined_.erase(target->id);
  }
  const Value error = loadValue(&target->thrown);
  if (error.isUndefined()) {  // stopped because another fiber's error ended the program
    recordError(fiber, fmt::format("fiber {} was stopped.", target->id));
    return false;
  }
  raiseValue(fiber, error);
  return false;
}

void VM::appendBlockedFibers(std::vector<std::string>& lines) {
  struct Blocked {
    std::uint64_t id;
    runtime::G* g;
    ObjFiber* fiber;
  };
  std::vector<Blocked> blocked;
  sched_->forEachG([&](runtime::G* g) {
    // Acquire: pairs with the parking M's release of Waiting (its fiber state, the
    // wait reason and the body are written before).
    if (g->status.load(std::memory_order_acquire) != runtime::GStatus::Waiting) return;
    auto* body = dynamic_cast<FiberBody*>(g->body);
    if (body == nullptr || body->owner() != this) return;
    blocked.push_back({body->fiber()->id, g, body->fiber()});
  });
  std::sort(blocked.begin(), blocked.end(),
            [](const Blocked& a, const Blocked& b) { return a.id < b.id; });
  constexpr std::size_t kMaxReported = 100;
  for (std::size_t i = 0; i < blocked.size() && i < kMaxReported; ++i) {
    const Blocked& b = blocked[i];
    // Parked for good: only a stack scan or shrink (a cycle may still run) touches the
    // fiber's stack and frames, and both hold the G's scan lock.
    b.g->lockScan();
    lines.push_back(fmt::format("fiber {} [{}]:", b.id, runtime::waitReasonString(b.g->waitreason)));
    for (std::string& line : traceOf(b.fiber)) lines.push_back(std::move(line));
    b.g->unlockScan();
  }
  if (blocked.size() > kMaxReported) {
    lines.push_back(fmt::format("... {} more blocked fibers", blocked.size() - kMaxReported));
  }
}

std::vector<std::string> VM::takeNeverJoined() {
  std::lock_guard<std::mutex> lk(errorLock_);
  std::vector<std::string> lines;
  for (const auto& [id, message] : neverJoined_) {
    lines.push_back(fmt::format("fiber {} failed and was never joined: {}", id, message));
  }
  neverJoined_.clear();
  return lines;
}

// --- channels -----------------------------------------------------------------------------------

// The hchan is C++ memory owned by the channel object (owned.cc): a cleanup frees it once
// the object was freed, ~VM if the VM goes first. No finalizer: a channel reachable from
// its own buffer is collected like any other cycle.
ObjChannel* VM::newChannel(std::uint32_t capacity) {
  // The hchan first: a buffer that cannot be had (OutOfMemory) leaves no object behind.
  runtime::hchan* hc = runtime::makechan(capacity);
  ObjChannel* c;
  try {
    c = allocate<ObjChannel>(ObjKind::Channel, sizeof(ObjChannel));
  } catch (...) {
    runtime::freechan(hc);
    throw;
  }
  c->chan = hc;
  c->owner = own(c, c->chan, &releaseChan, &orphanChan);
  return c;
}

VM::OpResult VM::invokeChannel(ObjFiber* fiber, ObjChannel* ch, ObjString* name, int argc) {
  FiberBody* body = fiber->body;
  runtime::G* g = body->g();
  runtime::hchan* c = ch->chan;
  Value* calleeSlot = fiber->stack->data() + fiber->stackTop - argc - 1;
  auto arity = [&](int want) { return expectArgs(fiber, argc, want); };
  Value result = Value::nil();
  if (name == sendString_) {
    if (!arity(1)) return OpResult::Error;
    const Value v = calleeSlot[1];
    shadeValue(v);  // it goes to another G's stack or a buffer (hybrid barrier rule)
    runtime::ChanResult r = g != nullptr ? runtime::chansend(c, v.bits(), g) : runtime::trysend(c, v.bits());
    if (r == runtime::ChanResult::Park) {
      body->pending = FiberBody::Pending::Send;
      body->waitChannel = ch;
      body->parkStep = runtime::chanSendParkStep(c);
      return OpResult::Park;
    }
    if (r == runtime::ChanResult::Closed) {
      recordError(fiber, "send on closed channel");
      return OpResult::Error;
    }
    if (r == runtime::ChanResult::WouldBlock) {
      recordError(fiber, "A channel operation would block in a native callback.");
      return OpResult::Error;
    }
  } else if (name == recvString_) {
    if (!arity(0)) return OpResult::Error;
    std::uint64_t elem = 0;
    bool ok = false;
    runtime::ChanResult r = g != nullptr ? runtime::chanrecv(c, g, &elem, &ok) : runtime::tryrecv(c, &elem, &ok);
    if (r == runtime::ChanResult::Park) {
      body->pending = FiberBody::Pending::Recv;
      body->waitChannel = ch;
      body->parkStep = runtime::chanRecvParkStep(c);
      return OpResult::Park;
    }
    if (r == runtime::ChanResult::WouldBlock) {
      recordError(fiber, "A channel operation would block in a native callback.");
      return OpResult::Error;
    }
    result = ok ? received(elem) : Value::nil();
  } else if (name == closeString_) {
    if (!arity(0)) return OpResult::Error;
    if (!runtime::closechan(c)) {
      recordError(fiber, "close of closed channel");
      return OpResult::Error;
    }
  } else if (name == lenString_ || name == capString_) {
    if (!arity(0)) return OpResult::Error;
    std::lock_guard<std::mutex> lk(c->lock);
    result = Value::number(name == lenString_ ? c->qcount : c->dataqsiz);
  } else {
    recordError(fiber, fmt::format("Undefined property '{}'.", name->view()));
    return OpResult::Error;
  }
  stackStore(calleeSlot, result);
  fiber->stackTop -= static_cast<std::uint32_t>(argc);
  return OpResult::Ok;
}

// A for-in step over a channel (interpreter_ops.inc FOR_IN_NEXT, state saved, the frame's
// ip just past the instruction): receive as `recv()` does, then finishForInRecv.
VM::OpResult VM::forInRecv(ObjFiber* fiber, ObjChannel* ch) {
  FiberBody* body = fiber->body;
  runtime::G* g = body->g();
  std::uint64_t elem = 0;
  bool ok = false;
  runtime::ChanResult r = g != nullptr ? runtime::chanrecv(ch->chan, g, &elem, &ok)
                                       : runtime::tryrecv(ch->chan, &elem, &ok);
  if (r == runtime::ChanResult::Park) {
    body->pending = FiberBody::Pending::ForInRecv;
    body->waitChannel = ch;
    body->parkStep = runtime::chanRecvParkStep(ch->chan);
    return OpResult::Park;
  }
  if (r == runtime::ChanResult::WouldBlock) {
    recordError(fiber, "A channel operation would block in a native callback.");
    return OpResult::Error;
  }
  finishForInRecv(fiber, ok, ok ? received(elem) : Value::nil());
  return OpResult::Ok;
}

// Pushes the received element (the frame reserved the slot: FOR_IN_NEXT pushes one), or,
// the channel being closed and drained, moves the frame's ip by FOR_IN_NEXT's jump
// distance (the 4 bytes just before it), past the loop.
void VM::finishForInRecv(ObjFiber* fiber, bool ok, Value v) {
  if (ok) {
    stackStore(fiber->stack->data() + fiber->stackTop, v);
    ++fiber->stackTop;
    return;
  }
  CallFrame& frame = fiber->frames->frames()[fiber->frameCount - 1];
  frame.ip += lang::readU32(frame.ip - lang::kJumpBytes);
}

VM::OpResult VM::select(ObjFiber* fiber, std::uint32_t n, std::uint8_t flags, const std::uint8_t* kinds) {
  FiberBody* body = fiber->body;
  std::uint32_t operands = 0;
  for (std::uint32_t i = 0; i < n; ++i) operands += kinds[i] == lang::kSelectSend ? 2 : 1;
  const Value* ops = fiber->stack->data() + fiber->stackTop - operands;
  body->cases.assign(n, runtime::SelectCase{});
  for (std::uint32_t i = 0, k = 0; i < n; ++i) {
    Value ch = ops[k++];
    if (!isKind(ch, ObjKind::Channel)) {
      recordError(fiber, "Only channels can be selected.");
      return OpResult::Error;
    }
    runtime::SelectCase& sc = body->cases[i];
    sc.c = as<ObjChannel>(ch)->chan;
    if (kinds[i] == lang::kSelectSend) {
      sc.isSend = true;
      const Value v = ops[k++];
      shadeValue(v);
      sc.elem = v.bits();
    }
  }
  const bool hasDefault = (flags & lang::kSelectHasDefault) != 0;
  body->selectOperands = operands;
  if (body->g() == nullptr && !hasDefault) {
    recordError(fiber, "A select without default cannot block in a native callback.");
    return OpResult::Error;
  }
  const int r = body->sel.begin(body->g(), body->cases.data(), static_cast<int>(n), hasDefault);
  if (r == runtime::Select::kPark) {
    body->pending = FiberBody::Pending::Select;
    body->parkStep = body->sel.parkStep();
    return OpResult::Park;
  }
  return finishSelect(fiber, r) ? OpResult::Ok : OpResult::Error;
}

bool VM::finishSelect(ObjFiber* fiber, int r) {
  FiberBody* body = fiber->body;
  const auto n = static_cast<int>(body->cases.size());
  Value got = Value::nil();
  int index = n;  // default
  if (r != runtime::Select::kDefault) {
    index = r;
    if (body->cases[static_cast<std::size_t>(r)].isSend) {
      if (body->sel.sendClosed) {
        recordError(fiber, "send on closed channel");
        return false;
      }
    } else if (body->sel.recvOk) {
      got = received(body->sel.recvValue);
    }
  }
  fiber->stackTop -= body->selectOperands;
  Value* top = fiber->stack->data() + fiber->stackTop;
  stackStore(top, got);
  stackStore(top + 1, Value::number(index));
  fiber->stackTop += 2;
  return true;
}

// --- natives ----------------------------------------------------------------------------------------

namespace {

bool nativeChannel(VM& vm, const void*, int argc, Value* args, Value* result) {
  if (argc > 1) return vm.raise(fmt::format("Expected 0 or 1 arguments but got {}.", argc));
  double n = 0;
  if (argc == 1) {
    if (!args[0].isNumber() || args[0].asNumber() < 0 || std::trunc(args[0].asNumber()) != args[0].asNumber() ||
        args[0].asNumber() > 1e9) {
      return vm.raise("Channel capacity must be a non-negative integer.");
    }
    n = args[0].asNumber();
  }
  *result = Value::object(vm.newChannel(static_cast<std::uint32_t>(n)));
  return true;
}

// Seconds to nanoseconds, saturating: from about 9.2e9 s (int64's range) and inf, the
// longest wait (about 292 years, forever in practice; the cast alone would overflow and
// return at once). NaN and non-positive seconds are 0.
std::int64_t secondsToNs(double secs) {
  constexpr double kMaxNs = static_cast<double>(std::numeric_limits<std::int64_t>::max());
  return !(secs > 0)            ? 0
         : secs * 1e9 >= kMaxNs ? std::numeric_limits<std::int64_t>::max()
                                : static_cast<std::int64_t>(secs * 1e9);
}

bool nativeSleep(VM& vm, const void*, int, Value* args, Value*) {
  if (!args[0].isNumber()) return vm.raise("sleep() takes a number of seconds.");
  FiberBody* body = currentFiber()->body;
  const std::int64_t ns = secondsToNs(args[0].asNumber());  // 0: yield
  if (body->g() == nullptr) {
    // Nested in a native (VM::call): the fiber cannot park, so this M blocks, but as in a
    // foreign call it gives up its P meanwhile (a stop or sysmon's retake need not wait).
    const bool onG = runtime::getm() != nullptr && runtime::getm()->curg != nullptr &&
                     runtime::currentP() != nullptr;
    // Not quiescent: the nested fiber is held only from C++ frames.
    if (onG) runtime::Sched::enterSyscall(/*stackQuiescent=*/false);
    std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
    if (onG) runtime::Sched::exitSyscall();
    return true;
  }
  if (ns <= 0) {
    body->request(FiberBody::Pending::Yield);
    return true;
  }
  body->parkStep = vm.sched().sleep(body->g(), ns);
  body->request(FiberBody::Pending::Sleep);
  return true;
}

// after(seconds), Go's time.After: a channel of capacity 1 that receives nil once the
// delay passed. A timer G (AfterBody, not a fiber) sleeps on the scheduler's timers,
// then sends without blocking (the buffer is empty: only it sends) and exits. It holds the
// channel (traceStack), counts as one of the VM's bodies (~VM waits for it: expireTimers
// wakes it, and once the VM is dying it exits without sending) and keeps the program
// from being reported as deadlocked while it sleeps (a pending timer), as in Go.
class AfterBody final : public runtime::GBody {
 public:
  AfterBody(VM* vm, ObjChannel* ch, std::int64_t ns) : vm_(vm), ch_(ch), ns_(ns) { vm_->bodyMade(); }
  Step run(runtime::G* g, std::uint32_t) override {
    if (!slept_) {
      slept_ = true;
      return vm_->sched().sleep(g, ns_);
    }
    if (!vm_->dying()) (void)runtime::trysend(ch_->chan, Value::nil().bits());
    return Step::exit();
  }
  void exited(runtime::G*) override { delete this; }
  void abandoned(runtime::G*) override { delete this; }
  void traceStack(runtime::G*, void (*visit)(void* ctx, void** slot), void* ctx) override {
    void* p = ch_;
    visit(ctx, &p);
  }
  const void* owner() const override { return vm_; }

 private:
  ~AfterBody() { vm_->bodyGone(); }  // the body's last access to its VM
  VM* vm_;
  ObjChannel* ch_;
  std::int64_t ns_;
  bool slept_ = false;  // only the M running the G
};

bool nativeAfter(VM& vm, const void*, int, Value* args, Value* result) {
  if (!args[0].isNumber()) return vm.raise("after() takes a number of seconds.");
  const std::int64_t ns = secondsToNs(args[0].asNumber());
  ObjChannel* ch = vm.newChannel(1);
  *result = Value::object(ch);
  if (ns == 0) {
    (void)runtime::trysend(ch->chan, Value::nil().bits());  // due now: no timer
    return true;
  }
  shadeValue(*result);  // it goes to another G's stack (hybrid barrier rule)
  vm.sched().newproc(new AfterBody(&vm, ch, ns));
  return true;
}

bool nativeYield(VM&, const void*, int, Value*, Value*) {
  FiberBody* body = currentFiber()->body;
  if (body->g() != nullptr) body->request(FiberBody::Pending::Yield);
  return true;
}

bool nativeProcs(VM& vm, const void*, int, Value*, Value* result) {
  *result = Value::number(vm.sched().procs());
  return true;
}

bool nativeGc(VM&, const void*, int, Value*, Value*) {
  // The collection runs in FiberBody::run once the interpreter has saved everything.
  FiberBody* body = currentFiber()->body;
  if (body->g() != nullptr) body->request(FiberBody::Pending::Gc);
  return true;
}

}  // namespace

void VM::registerConcurrencyNatives() {
  struct Def {
    const char* name;
    int arity;
    NativeFn fn;
  };
  for (const Def& d : {Def{"Channel", -1, nativeChannel}, Def{"sleep", 1, nativeSleep},
                       Def{"yield", 0, nativeYield}, Def{"procs", 0, nativeProcs},
                       Def{"gc", 0, nativeGc}, Def{"after", 1, nativeAfter}}) {
    setGlobal(globalSlot(d.name), Value::object(newNative(d.name, d.arity, d.fn)));
  }
}

// --- interrupts (interrupt.cc) ------------------------------------------------------------

namespace interrupt_detail {
bool mustWakeFiber(runtime::G* g, void* vm);  // interrupt.cc
}  // namespace interrupt_detail

namespace {
thread_local VM* tlsCancelVM = nullptr;  // cancelParkedOnChannels' VM, for its callback
}  // namespace

void VM::cancelParkedOnChannels() {
  tlsCancelVM = this;
  forEachOwned(&releaseChan, [](void* c) {
    (void)runtime::cancelWaiters(static_cast<runtime::hchan*>(c), &interrupt_detail::mustWakeFiber, tlsCancelVM);
  });
  tlsCancelVM = nullptr;
}

}  // namespace spindle::vm
