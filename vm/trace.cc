// trace.cc (vm): the VM's side of the execution trace (runtime/trace.h): the fiber namer
// (a run span is named by the fiber and the Lox function at the top of its stack) and the
// host API (spindle.h: startTrace, stopTrace, tracing; Options::trace_file).
//
// The namer runs on the M that is about to run the G (the G is not running: its frames
// are stable) and reads the frames as the fatal-error printer does (VM::forEachTraceLine),
// formatting into the caller's buffer without allocating. The trace is process-wide:
// one at a time, whichever Vm or host started it.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <typeinfo>

#include "runtime/g.h"
#include "runtime/print.h"
#include "runtime/trace.h"
#include "vm/fiber.h"
#include "vm/spindle.h"
#include "vm/vm.h"

namespace spindle {

namespace {

void nameFiber(const void* gp, char* buf, std::size_t cap) {
  const auto* g = static_cast<const runtime::G*>(gp);
  // FiberBody is final: comparing the type is cheaper than a dynamic_cast on every span.
  if (g->body == nullptr || typeid(*g->body) != typeid(vm::FiberBody)) return;  // a timer or host G: "G <goid>"
  auto* body = static_cast<vm::FiberBody*>(g->body);
  const vm::ObjFiber* f = body->fiber();
  // The top frame with source (a native's or host method's has none), as the fatal-error
  // printer's first line (VM::forEachTraceLine) without its line lookups: this runs for
  // every run span.
  for (std::uint32_t i = f->frameCount; i-- > 0;) {
    const lang::FunctionProto* proto = f->frames->frames()[i].closure->function->proto;
    if (proto->chunk.lines.runs().empty()) continue;
    const std::string_view fn(proto->name);
    if (fn.empty()) {
      auto r = fmt::format_to_n(buf, cap - 1, "script");
      *r.out = '\0';
      return;
    }
    // "fn()" cut to cap - 1 bytes, as fmt::format_to_n would.
    std::size_t n = std::min(fn.size(), cap - 1);
    fn.copy(buf, n);
    for (const char ch : {'(', ')'}) {
      if (n < cap - 1) buf[n++] = ch;
    }
    buf[n] = '\0';
    return;
  }
  auto r = fmt::format_to_n(buf, cap - 1, "fiber {}", f->id);
  *r.out = '\0';
}

// The Vm whose Options::trace_file started the running trace (null: none, or a host's).
std::atomic<const Vm*> gOptionsTraceOwner{nullptr};

}  // namespace

bool startTrace(const std::string& path, std::string* error) {
  runtime::trace::setFiberNamer(&nameFiber);
  std::string err;
  const bool ok = runtime::trace::start(path, &err);
  if (!ok && error != nullptr) *error = err;
  return ok;
}

bool stopTrace(std::string* error) {
  gOptionsTraceOwner.store(nullptr, std::memory_order_relaxed);
  std::string err;
  const bool ok = runtime::trace::stop(&err);
  if (!ok && error != nullptr) *error = err;
  return ok;
}

bool tracing() { return runtime::trace::enabled(); }

namespace detail {

void startOptionsTrace(const Vm* vm, const std::string& path) {
  if (path.empty()) return;
  std::string err;
  if (!startTrace(path, &err)) {
    runtime::printTo(stderr, "spindle: trace not started: {}\n", err);
    return;
  }
  gOptionsTraceOwner.store(vm, std::memory_order_relaxed);
}

void stopOptionsTrace(const Vm* vm) {
  const Vm* owner = vm;
  if (!gOptionsTraceOwner.compare_exchange_strong(owner, nullptr, std::memory_order_relaxed)) return;
  std::string err;
  if (!runtime::trace::stop(&err)) runtime::printTo(stderr, "spindle: trace not written: {}\n", err);
}

}  // namespace detail

}  // namespace spindle
