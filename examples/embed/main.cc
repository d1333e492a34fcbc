// embed: a small host application of Spindle's embedding API (vm/spindle.h).
//
// It defines a native `hostLog(msg)`, runs a script that defines a class and a
// function, calls the function from C++ with values made in C++, keeps an instance in
// a C++ Value (a handle: it stays alive while held), and reports a script error as a
// value. Then it defines a native class `Ledger` whose C++ state (a vector of entries)
// is attached to each instance, which a script subclasses; the state is freed by the
// collector when an instance dies. Last, a plugin host (game.cc's runGame): a game loop
// calling each plugin's update(dt), one sandboxed Vm per plugin with a step and memory
// limit, plugins compiled by name, a runaway plugin interrupted from a watchdog thread.
// Exit code 0 when everything behaved as expected.
#include <fmt/format.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "examples/embed/game.h"

#include "vm/spindle.h"

// The C++ state of a Ledger instance.
struct Ledger {
  std::vector<double> entries;
  static inline std::atomic<int> alive{0};
  Ledger() { ++alive; }
  ~Ledger() { --alive; }  // run by the collector (a finalizer) or by ~Vm
};

void defineLedger(spindle::Vm& vm) {
  vm.defineClass("Ledger")
      .init(0, [](spindle::Vm& v, const spindle::Value& self, spindle::Args) {
        v.setHostData(self, std::make_unique<Ledger>());
        return spindle::Result::success({});
      })
      .method<Ledger>("record", 1,
                      [](spindle::Vm&, const spindle::Value& self, Ledger& l, spindle::Args args) {
                        if (!args[0].isNumber()) return spindle::Result::failure("record() needs a number.");
                        l.entries.push_back(args[0].asNumber());
                        return spindle::Result::success(self);  // chainable
                      })
      .method<Ledger>("total", 0, [](spindle::Vm&, const spindle::Value&, Ledger& l, spindle::Args) {
        double t = 0;
        for (double e : l.entries) t += e;
        return spindle::Result::success(spindle::Value::number(t));
      })
      .define();
}

int runLedger() {
  spindle::Vm vm;
  defineLedger(vm);
  spindle::Result r = vm.run(R"(
    class Savings < Ledger {
      init(rate) { super.init(); this.rate = rate; }
      record(x) { return super.record(x * (1 + this.rate)); }
    }
    var s = Savings(0.5);
    s.record(10).record(20);
    print s.total();
    for (var i = 0; i < 1000; i = i + 1) Ledger().record(i);  // garbage
    Ledger().record("ten");  // a runtime error raised by the native method
  )");
  if (r.ok()) return 1;
  fmt::print("ledger error: {}", r.error().format());
  spindle::Value s = *vm.global("s");
  const Ledger* state = vm.hostData<Ledger>(s);
  if (state == nullptr || state->entries.size() != 2) return 1;
  fmt::print("host sees {} entries\n", state->entries.size());
  return 0;
}

int main() {

  spindle::Options options;
  options.gc_percent = 100;
  spindle::Vm vm(options);
  int logged = 0;
  vm.defineNative("hostLog", 1, [&logged](spindle::Vm&, std::span<const spindle::Value> args) {
    ++logged;
    fmt::print("host: {}\n", args[0].toString());
    return spindle::Result::success(spindle::Value::nil());
  });

  spindle::Result loaded = vm.run(R"(
    class Account {
      init(owner) { this.owner = owner; this.balance = 0; }
      deposit(n) { this.balance = this.balance + n; return this.balance; }
    }
    fun open(owner, amount) {
      var a = Account(owner);
      a.deposit(amount);
      hostLog(owner + " opened with " + "funds");
      return a;
    }
  )");
  if (!loaded.ok()) {
    fmt::print(stderr, "{}", loaded.error().format());
    return 1;
  }

  spindle::Value open = *vm.global("open");
  spindle::Result account = vm.call(open, {spindle::Value::string("ada"), spindle::Value::number(50)});
  if (!account.ok()) {
    fmt::print(stderr, "{}", account.error().format());
    return 1;
  }
  spindle::Value held = account.value();  // a handle: the instance stays alive
  vm.setGlobal("acct", held);
  spindle::Result more = vm.run("print acct.deposit(25);");
  if (!more.ok()) return 1;

  spindle::Result bad = vm.run("acct.withdraw(1);");
  if (bad.ok()) return 1;
  fmt::print("error as a value: {}", bad.error().format());
  if (logged != 1 || held.toString() != "Account instance") return 1;

  if (int rc = runLedger(); rc != 0) return rc;
  if (Ledger::alive.load() != 0) return 1;  // ~Vm freed every Ledger still alive
  return runGame();
}
