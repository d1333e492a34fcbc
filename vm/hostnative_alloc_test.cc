// hostnative_alloc_test.cc: a script -> C++ call whose arguments and result are numbers
// or objects takes no C++ heap allocation (vm/hostnative.cc). operator new is replaced to
// count the calling thread's allocations; a native reads the count at each entry, and
// between two consecutive calls on the same thread (the return of one, the interpreter's
// loop and the call of the next) it must not move.
#include <doctest/doctest.h>

#include <cstdlib>
#include <memory>
#include <new>
#include <pthread.h>

#include "vm/spindle.h"

namespace {
thread_local std::uint64_t tlsAllocations = 0;
}  // namespace

void* operator new(std::size_t n) {
  ++tlsAllocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

// Per call: whether the previous call ran on this thread, and the allocations since.
struct Gaps {
  pthread_t thread{};
  std::uint64_t at = 0;
  bool started = false;
  int samePairs = 0;
  int allocatingPairs = 0;
  void entry() {
    const pthread_t self = pthread_self();
    if (started && pthread_equal(self, thread) != 0) {
      ++samePairs;
      if (tlsAllocations != at) ++allocatingPairs;
    }
    started = true;
    thread = self;
    at = tlsAllocations;
  }
};

struct Counter {
  double n = 0;
};

Gaps gaps;

}  // namespace

TEST_CASE("a native call of numbers and objects allocates nothing") {
  spindle::Options o;
  o.output = [](std::string_view) {};
  o.procs = 1;
  spindle::Vm vm(o);
  vm.defineNative("hostAdd", 2, [](spindle::Vm&, spindle::Args args) {
    gaps.entry();
    return spindle::Result::success(spindle::Value::number(args[0].asNumber() + args[1].asNumber()));
  });
  vm.defineNative("first", 2, [](spindle::Vm&, spindle::Args args) {
    gaps.entry();
    return spindle::Result::success(spindle::Value::number(spindle::checkNumber(args, 1)));
  });
  vm.defineClass("Counter")
      .init(0, [](spindle::Vm& v, const spindle::Value& self, spindle::Args) {
        v.setHostData(self, std::make_unique<Counter>());
        return spindle::Result::success({});
      })
      .method<Counter>("add", 1,
                       [](spindle::Vm&, const spindle::Value&, Counter& c, spindle::Args args) {
                         gaps.entry();
                         c.n += args[0].asNumber();
                         return spindle::Result::success(spindle::Value::number(c.n));
                       })
      .define();
  REQUIRE(vm.run("var l = [1]; var c = Counter();\n"
                 "fun numbers(n) { var s = 0; for (var i = 0; i < n; i = i + 1) s = hostAdd(s, i); return s; }\n"
                 "fun objects(n) { var s = 0; for (var i = 0; i < n; i = i + 1) s = s + first(l, i); return s; }\n"
                 "fun methods(n) { var s = 0; for (var i = 0; i < n; i = i + 1) s = c.add(i); return s; }")
              .ok());
  for (const char* fn : {"numbers", "objects", "methods"}) {
    CAPTURE(fn);
    gaps = Gaps{};
    const spindle::Value f = *vm.global(fn);
    spindle::Result r = vm.call(f, {spindle::Value::number(1000)});
    REQUIRE(r.ok());
    CHECK(r.value().asNumber() == 499500);
    CHECK(gaps.samePairs >= 500);  // the fiber stays on its thread (procs = 1) but for a migration
    CHECK(gaps.allocatingPairs == 0);
  }
}
