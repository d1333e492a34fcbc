// game.cc: a plugin host on Spindle's embedding API (vm/spindle.h): a game loop that
// calls each plugin's update(dt) once per frame.
//
// Design. Each plugin is a script in its own Vm, so one plugin's globals, heap limit and
// failures are its own: the Vm is sandboxed (no FFI, no files or process, no sleep or
// gc), has a step limit per call (a runaway loop fails instead of freezing the frame) and
// a memory limit (a plugin hoarding memory fails with "Out of memory."), and its source
// is compiled by name (Vm::compile), so compile errors and traces name the plugin's file.
// The host gives each plugin a native class Sprite whose C++ state (x, y) it reads back
// after the frame (hostData), creates the plugin's sprite from C++ (calling the class),
// and calls the plugin object's update method by name (Vm::invoke). A plugin that fails
// is dropped and the game goes on. One plugin runs without a step limit and spins: a
// watchdog thread interrupts it (Vm::interrupt) once it signalled that it is spinning.
#include "examples/embed/game.h"

#include <fmt/format.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vm/spindle.h"

namespace {

struct Sprite {
  double x = 0, y = 0;
};

void defineSprite(spindle::Vm& vm) {
  vm.defineClass("Sprite")
      .init(2, [](spindle::Vm& v, const spindle::Value& self, spindle::Args args) {
        // checkNumber: a plugin passing a string gets a runtime error, the host lives on.
        v.setHostData(self, std::make_unique<Sprite>(Sprite{spindle::checkNumber(args, 0),
                                                            spindle::checkNumber(args, 1)}));
        return spindle::Result::success({});
      })
      .method<Sprite>("move", 2,
                      [](spindle::Vm&, const spindle::Value& self, Sprite& s, spindle::Args args) {
                        s.x += spindle::checkNumber(args, 0);
                        s.y += spindle::checkNumber(args, 1);
                        return spindle::Result::success(self);
                      })
      .define();
}

// Signals from a spinning plugin to the watchdog.
struct Watchdog {
  std::mutex mu;
  std::condition_variable cv;
  bool spinning = false;
};

struct Plugin {
  std::string name;
  std::unique_ptr<spindle::Vm> vm;
  spindle::Value object;  // the plugin's `plugin` instance (update(dt) is invoked on it)
  spindle::Value sprite;  // the Sprite the host made for it
  bool alive = false;
};

spindle::Options sandbox(bool stepLimit) {
  spindle::Options o;
  o.ffi = false;
  o.io = false;
  o.without = {"sleep", "gc"};
  o.step_limit = stepLimit ? 2000000 : 0;
  o.memory_limit = 16u << 20;
  o.output = [](std::string_view s) { fmt::print("  | {}", s); };
  return o;
}

// The error and where it happened (the innermost frame, which names the plugin's file).
void report(const std::string& name, const spindle::Error& e) {
  fmt::print("plugin {} dropped: {}\n", name, e.message);
  if (!e.trace.empty()) fmt::print("    {}\n", e.trace.front());
}

Plugin load(const std::string& name, const std::string& source, Watchdog* dog) {
  Plugin p;
  p.name = name;
  p.vm = std::make_unique<spindle::Vm>(sandbox(dog == nullptr));
  spindle::Vm& vm = *p.vm;
  defineSprite(vm);
  if (dog != nullptr) {
    vm.defineNative("spinning", 0, [dog](spindle::Vm&, spindle::Args) {
      std::lock_guard<std::mutex> lk(dog->mu);
      dog->spinning = true;
      dog->cv.notify_all();
      return spindle::Result::success({});
    });
  }
  // The host makes the sprite (running Sprite's init) before the plugin's code runs.
  spindle::Result sprite = vm.call(*vm.global("Sprite"), {spindle::Value::number(0), spindle::Value::number(0)});
  if (!sprite.ok()) return p;
  p.sprite = sprite.value();
  vm.setGlobal("sprite", p.sprite);
  spindle::Result chunk = vm.compile(source, name);
  if (!chunk.ok()) {
    report(name, chunk.error());
    return p;
  }
  spindle::Result ran = vm.call(chunk.value(), {});
  if (!ran.ok()) {
    report(name, ran.error());
    return p;
  }
  std::optional<spindle::Value> object = vm.global("plugin");
  if (!object) {
    fmt::print("plugin {} dropped: no `plugin` object\n", name);
    return p;
  }
  p.object = *object;
  p.alive = true;
  fmt::print("loaded {}\n", name);
  return p;
}

}  // namespace

int runGame() {
  Watchdog dog;
  std::vector<Plugin> plugins;
  plugins.push_back(load("mover.lox", R"(
class Mover {
  init(speed) { this.speed = speed; }
  update(dt) { sprite.move(this.speed * dt, 0); }
}
var plugin = Mover(3);
)", nullptr));
  plugins.push_back(load("broken.lox", "var plugin = ;\n", nullptr));
  plugins.push_back(load("crash.lox", R"(
class Crash {
  update(dt) { if (dt > 0) return helper(nil); }
}
fun helper(x) {
  return x.field;
}
var plugin = Crash();
)", nullptr));
  plugins.push_back(load("runaway.lox", R"(
class Runaway { update(dt) { while (true) sprite.move(dt, dt); } }
var plugin = Runaway();
)", nullptr));
  plugins.push_back(load("hog.lox", R"(
class Hog {
  init() { this.hoard = []; }
  update(dt) { while (true) this.hoard.push([dt, dt, dt, dt]); }
}
var plugin = Hog();
)", nullptr));
  plugins.push_back(load("spinner.lox", R"(
class Spinner { update(dt) { print "spinning"; spinning(); while (true) {} } }
var plugin = Spinner();
)", &dog));
  plugins.push_back(load("sneaky.lox", R"(
var plugin = nil;
print readFile("/etc/passwd");
)", nullptr));

  // The watchdog: interrupts the spinning plugin once it says it spins.
  spindle::Vm* spinnerVm = nullptr;
  for (Plugin& p : plugins) {
    if (p.name == "spinner.lox") spinnerVm = p.vm.get();
  }
  std::thread watchdog([&dog, spinnerVm] {
    std::unique_lock<std::mutex> lk(dog.mu);
    dog.cv.wait(lk, [&dog] { return dog.spinning; });
    spinnerVm->interrupt();
  });

  const double dt = 0.5;
  for (int frame = 1; frame <= 3; ++frame) {
    fmt::print("frame {}\n", frame);
    for (Plugin& p : plugins) {
      if (!p.alive) continue;
      spindle::Result r = p.vm->invoke(p.object, "update", {spindle::Value::number(dt)});
      if (!r.ok()) {
        report(p.name, r.error());
        p.alive = false;
      }
    }
  }
  watchdog.join();

  int alive = 0;
  for (Plugin& p : plugins) {
    if (!p.alive) continue;
    ++alive;
    const Sprite* s = p.vm->hostData<Sprite>(p.sprite);
    if (s == nullptr) return 1;
    const spindle::HeapStats hs = p.vm->heapStats();
    // memory_limit makes the Vm's live heap known (an estimate: no fixed figure to print).
    fmt::print("{} survives: sprite at ({}, {}), live heap {}\n", p.name, s->x, s->y,
               hs.live_bytes_known && hs.live_bytes > 0 ? "accounted" : "unknown");
  }
  return alive == 1 ? 0 : 1;
}
