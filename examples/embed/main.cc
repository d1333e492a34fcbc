// embed: a small host application of Spindle's embedding API (vm/spindle.h).
//
// It defines a native `hostLog(msg)`, runs a script that defines a class and a
// function, calls the function from C++ with values made in C++, keeps an instance in
// a C++ Value (a handle: it stays alive while held), and reports a script error as a
// value. Exit code 0 when everything behaved as expected.
#include <fmt/format.h>

#include <string>

#include "vm/spindle.h"

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
  return logged == 1 && held.toString() == "Account instance" ? 0 : 1;
}
