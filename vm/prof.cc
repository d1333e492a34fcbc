// prof.cc: see prof.h.
#include "vm/prof.h"

#include "lang/proto.h"
#include "runtime/pprof.h"

namespace spindle::vm {

constinit thread_local std::atomic<const ObjFiber*> tlsProfFiber{nullptr};
constinit thread_local std::atomic<const ObjNative*> tlsProfNative{nullptr};
constinit thread_local std::atomic<bool> tlsProfRequest{false};

namespace {

void copyName(runtime::ProfFrame& f, const char* prefix, const char* s, std::size_t len,
              const char* suffix) {
  std::size_t i = 0;
  constexpr std::size_t kMax = sizeof f.name - 1;
  for (const char* p = prefix; *p != '\0' && i < kMax; ++p) f.name[i++] = *p;
  for (std::size_t k = 0; k < len && i < kMax; ++k) f.name[i++] = s[k];
  for (const char* p = suffix; *p != '\0' && i < kMax; ++p) f.name[i++] = *p;
  f.name[i] = '\0';
  f.line = 0;
}

// The line of code offset `at` (LineTable::lineAt's rule, without a call that could
// change). Async-signal-safe: reads a vector, allocates nothing.
int lineAt(const lang::FunctionProto& proto, std::size_t at) {
  const auto& runs = proto.chunk.lines.runs();
  int line = 0;
  std::size_t lo = 0, hi = runs.size();
  while (lo < hi) {  // the last run starting at or before `at`
    const std::size_t mid = (lo + hi) / 2;
    if (runs[mid].start <= at) {
      line = runs[mid].line;
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return line;
}

int walkLox(runtime::ProfFrame* out, int max, bool mayDefer) {
  int n = 0;
  const ObjNative* nat = tlsProfNative.load(std::memory_order_acquire);
  const ObjFiber* fiber = tlsProfFiber.load(std::memory_order_acquire);
  if (nat == nullptr && fiber != nullptr && mayDefer) {
    // Lox code with its state in registers: sample at the fiber's next safepoint.
    tlsProfRequest.store(true, std::memory_order_relaxed);
    if (fiber->preempt != nullptr) fiber->preempt->store(true, std::memory_order_relaxed);
    return runtime::kProfDeferred;
  }
  if (nat != nullptr && n < max) {
    const ObjString* name = nat->name;
    if (name != nullptr) copyName(out[n++], "<native ", name->chars(), name->length, ">");
    else copyName(out[n++], "<native>", "", 0, "");
  }
  if (fiber == nullptr || fiber->frames == nullptr) return n;
  const std::uint32_t count = fiber->frameCount;
  if (count == 0 || count > fiber->frames->capacity) return n;
  const CallFrame* base = const_cast<FrameArray*>(fiber->frames)->frames();
  for (const CallFrame* f = base + count - 1; f >= base && n < max; --f) {
    const ObjClosure* c = f->closure;
    const ObjFunction* fn = c != nullptr ? c->function : nullptr;
    const lang::FunctionProto* proto = fn != nullptr ? fn->proto : nullptr;
    if (proto == nullptr) continue;
    if (proto->name.empty()) copyName(out[n], "<script>", "", 0, "");
    else copyName(out[n], "", proto->name.data(), proto->name.size(), "");
    std::size_t at = 0;  // the instruction the saved ip is in (ip is the next one)
    if (f->ip != nullptr && fn->code != nullptr && f->ip > fn->code)
      at = static_cast<std::size_t>(f->ip - fn->code) - 1;
    out[n].line = lineAt(*proto, at);
    ++n;
  }
  return n;
}

}  // namespace

void profTakeDeferred() {
  tlsProfRequest.store(false, std::memory_order_relaxed);
  runtime::cpuProfileSample();
}

void installProfWalker() { runtime::setProfStackWalker(walkLox); }

}  // namespace spindle::vm
