// fnbody.h: test helper: a G body from a callable (a small state machine in a mutable
// lambda). The body deletes itself when the G exits.
#pragma once

#include <utility>

#include "runtime/g.h"

namespace spindle::runtime::testing {

template <typename F>
class FnBody final : public GBody {
 public:
  explicit FnBody(F f) : f_(std::move(f)) {}
  Step run(G* g, std::uint32_t) override { return f_(g); }
  void exited(G*) override { delete this; }
  void abandoned(G*) override { delete this; }

 private:
  F f_;
};

template <typename F>
GBody* fn(F f) {
  return new FnBody<F>(std::move(f));
}

}  // namespace spindle::runtime::testing
