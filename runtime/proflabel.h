// proflabel.h: names the runtime work a thread is doing, for the profilers (pprof.h):
// a ProfLabelScope("<gc assist>") around the work makes every CPU or allocation sample
// taken meanwhile on that thread show it as the leaf frame, above the code's own stack.
//
// One thread-local atomic pointer to a static string per thread (null: no runtime work),
// written only by its thread and read by that thread's SIGPROF handler: relaxed, with a
// signal fence so the handler never sees the label outside the work it names. Header
// only, so the collector's libraries can name their work without depending on pprof.
#pragma once

#include <atomic>

namespace spindle::runtime {

namespace prof_detail {
inline constinit thread_local std::atomic<const char*> tlsLabel{nullptr};
}  // namespace prof_detail

class ProfLabelScope {
 public:
  explicit ProfLabelScope(const char* label)
      : saved_(prof_detail::tlsLabel.load(std::memory_order_relaxed)) {
    prof_detail::tlsLabel.store(label, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  ~ProfLabelScope() {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    prof_detail::tlsLabel.store(saved_, std::memory_order_relaxed);
  }
  ProfLabelScope(const ProfLabelScope&) = delete;
  ProfLabelScope& operator=(const ProfLabelScope&) = delete;

 private:
  const char* saved_;
};

}  // namespace spindle::runtime
