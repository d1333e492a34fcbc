// module.cc: modules, `import "path/lib.lox" as lib;` (as Lua's require with
// package.loaded, one namespace object per module).
//
// Design. IMPORT (interpreter_ops.inc) calls VM::importModule with the path constant.
// The path is resolved against the directory of the importing code's file: the running
// frame's FunctionProto::file names an imported module (its record gives the directory),
// "" the main script (VMOptions::scriptPath's directory, the current directory for -e,
// the REPL and hosts that set none). Each module has
//   - a display name: the path from the main script's directory ("lib/util.lox"), what
//     traces ("[line 3] in f() (lib/util.lox)"), compile errors and cycle reports show,
//     and what VMOptions::moduleLoader is asked for;
//   - a key: "loader:" + display name for a module the loader supplied, else the file's
//     canonical path (symlinks resolved), so two spellings of one file are one module.
// A module runs once per VM: its top level is compiled with its own globals (lang
// ModuleOptions: the names it declares get a suffix unique to the module, so they never
// meet the main script's or another module's) and run to completion as a nested call
// (VM::call from the importing fiber: it cannot block, as for any native callback).
// Then its module object is made: an instance of the built-in class Module with one
// field per top-level name that is defined, holding the value it had when the module's
// top level finished; `lib.name` reads it, a name it lacks is the usual "Undefined
// property 'name'." The object is held by a handle (a root) for the VM's life; later
// imports of the same key get it.
//
// Errors, all at the import line, catchable: "Cannot import 'x.lox': No such file or
// directory." (a missing or unreadable file; with io off and no loader module: "No such
// module"), "Compile error in lib.lox: [line 2] Error at ';': Expect expression.", a
// runtime error of the module's top level (its trace, then the importer's), and a cycle:
// "Import cycle: a.lox -> b.lox -> a.lox." A module that failed is forgotten (a later
// import tries again).
//
// Invariants: Modules::lock guards the records and is never held across an allocation,
// compile, the module's run or the file read. A module's top level runs inline on the
// importing thread, so the thread's chain of running imports (tlsLoading) is the import
// chain: a key met that is not done is a cycle when it is the main script or in that
// chain. Two fibers importing one new module at once each run it (the later record
// stays; both objects are valid).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "lang/diagnostic.h"
#include "vm/fiber.h"
#include "vm/lib.h"
#include "vm/vm.h"

namespace spindle::vm {

namespace fs = std::filesystem;

struct VM::Modules {
  struct Record {
    std::string display;
    fs::path dir;  // where its imports are resolved
    bool done = false;
    bool main = false;  // the main script: never done, importing it is always a cycle
    std::uint32_t handle = 0;  // the module object, once done
  };
  std::mutex lock;
  std::map<std::string, std::shared_ptr<Record>> byKey;      // under lock
  std::map<std::string, std::shared_ptr<Record>> byDisplay;  // under lock
  std::string mainDisplay;
  std::uint32_t next = 1;                                    // under lock: suffix numbers
  fs::path mainDir;
  std::uint32_t moduleClass = 0;  // handle of the class Module
};

namespace {

// The modules whose top level this thread is running, outermost first, with their VM. A
// module's top level runs inline on the importing fiber's thread (a nested call, which
// cannot park nor move), so this thread's chain is exactly the import chain.
thread_local std::vector<std::pair<const VM*, std::string>> tlsLoading;

std::string canonicalKey(const fs::path& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  if (ec) return p.lexically_normal().string();
  fs::path c = fs::weakly_canonical(abs, ec);
  return (ec ? abs.lexically_normal() : c).string();
}

}  // namespace

bool VM::importModule(ObjFiber* fiber, Value pathValue, Value* out) {
  const std::string rel(as<ObjString>(pathValue)->view());
  auto fail = [&](std::string message) {
    recordError(fiber, std::move(message));
    return false;
  };
  std::shared_ptr<Modules> mods;
  {
    std::lock_guard<std::mutex> lk(modulesLock_);
    mods = modules_;
  }
  if (!mods) {  // the first import: made outside the lock (it allocates), then published
    auto fresh = std::make_shared<Modules>();
    if (!options_.scriptPath.empty()) {
      const fs::path script(options_.scriptPath);
      fresh->mainDir = script.parent_path();
      auto main = std::make_shared<Modules::Record>();
      main->display = script.filename().string();
      main->dir = fresh->mainDir;
      main->main = true;
      fresh->mainDisplay = main->display;
      fresh->byKey[canonicalKey(script)] = main;
    }
    fresh->moduleClass = newHandle(Value::object(newClass(intern("Module"))));
    {
      std::lock_guard<std::mutex> lk(modulesLock_);
      if (!modules_) modules_ = fresh;
      mods = modules_;
    }
    if (mods != fresh) releaseHandle(fresh->moduleClass);  // another fiber's came first
  }
  Modules& m = *mods;

  // The importer: the running frame's file.
  const CallFrame& frame = fiber->frames->frames()[fiber->frameCount - 1];
  const std::string& importer = frame.closure->function->proto->file;
  fs::path dir = m.mainDir;
  fs::path displayDir;
  {
    std::lock_guard<std::mutex> lk(m.lock);
    if (!importer.empty()) {
      auto it = m.byDisplay.find(importer);
      // A file with no record is a host's named chunk (Vm::compile): the main script's.
      if (it != m.byDisplay.end()) {
        dir = it->second->dir;
        displayDir = fs::path(importer).parent_path();
      }
    }
  }
  const fs::path relPath(rel);
  const std::string display =
      (relPath.is_absolute() ? relPath : (displayDir / relPath)).lexically_normal().string();
  const fs::path file = (relPath.is_absolute() || dir.empty() ? relPath : dir / relPath).lexically_normal();

  // A module met before: done (*found is its object), or a cycle (*cycle the message):
  // the main script, or a module in this thread's import chain. One another fiber is
  // running now is not known: this import runs it too (the later record stays).
  // Nothing is allocated under the lock (an allocation may wait for a stop of the world,
  // which a fiber waiting for the lock would hold up).
  auto known = [&](const std::string& key, Value* found, std::string* cycle) {
    std::lock_guard<std::mutex> lk(m.lock);
    auto it = m.byKey.find(key);
    if (it == m.byKey.end()) return false;
    const Modules::Record& r = *it->second;
    if (r.done) {
      *found = handleValue(r.handle);
      return true;
    }
    std::vector<std::string> chain;
    if (!m.mainDisplay.empty()) chain.push_back(m.mainDisplay);
    for (const auto& [v, d] : tlsLoading) {
      if (v == this) chain.push_back(d);
    }
    auto at = r.main ? chain.begin() : std::find(chain.begin(), chain.end(), r.display);
    if (at == chain.end()) return false;
    std::string text;
    for (; at != chain.end(); ++at) text += *at + " -> ";
    *cycle = fmt::format("Import cycle: {}{}.", text, r.display);
    return true;
  };

  std::optional<std::string> source;
  std::string key = "loader:" + display;
  Value found;
  std::string cycle;
  if (options_.moduleLoader) {
    if (known(key, &found, &cycle)) {
      if (!cycle.empty()) return fail(std::move(cycle));
      *out = found;
      return true;
    }
    source = options_.moduleLoader(display);
  }
  if (!source) {
    if (!options_.io) return fail(fmt::format("Cannot import '{}': No such module.", rel));
    std::string text;
    int err = 0;
    lib::offSched([&] {
      key = canonicalKey(file);
      std::FILE* f = std::fopen(file.c_str(), "rb");
      if (f == nullptr) {
        err = errno;
        return;
      }
      char buf[65536];
      std::size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
      if (std::ferror(f) != 0) err = errno;
      std::fclose(f);
    });
    if (known(key, &found, &cycle)) {
      if (!cycle.empty()) return fail(std::move(cycle));
      *out = found;
      return true;
    }
    if (err != 0) return fail(fmt::format("Cannot import '{}': {}.", rel, std::strerror(err)));
    source = std::move(text);
  }

  // Compile with the module's own globals.
  lang::ModuleOptions mo;
  mo.file = display;
  {
    std::lock_guard<std::mutex> lk(m.lock);
    mo.suffix = std::string(1, lang::kModuleNameMark) + std::to_string(m.next++);
  }
  lang::CompileResult compiled;
  {
    std::unique_lock<std::mutex> nlk(globalNamesLock_);
    compiled = lang::compile(*source, globalNames_, mo);
    const std::size_t n = globalNames_.size();
    nlk.unlock();
    growGlobals(n);
  }
  if (!compiled.ok()) {
    std::string diagnostics = lang::formatDiagnostics(compiled.diagnostics);
    while (!diagnostics.empty() && diagnostics.back() == '\n') diagnostics.pop_back();
    return fail(fmt::format("Compile error in {}: {}", display, diagnostics));
  }

  auto record = std::make_shared<Modules::Record>();
  record->display = display;
  record->dir = file.parent_path();
  {
    std::lock_guard<std::mutex> lk(m.lock);
    m.byKey[key] = record;
    m.byDisplay[display] = record;
  }
  tlsLoading.emplace_back(this, display);
  const std::uint32_t closure = newHandle(Value::object(load(compiled.script)));
  Value ignored;
  const bool ok = call(handleValue(closure), nullptr, 0, &ignored);
  releaseHandle(closure);
  tlsLoading.pop_back();
  if (!ok) {
    std::lock_guard<std::mutex> lk(m.lock);
    if (m.byKey[key] == record) m.byKey.erase(key);
  }
  if (!ok) {
    // The module's error, its trace before the importer's (recordNativeError).
    raise(lastError().message);
    recordNativeError(fiber);
    return false;
  }

  ObjInstance* object = newInstance(as<ObjClass>(handleValue(m.moduleClass)));
  const std::uint32_t objectHandle = newHandle(Value::object(object));
  for (const std::string& name : compiled.moduleNames) {
    std::int64_t slot;
    {
      std::lock_guard<std::mutex> lk(globalNamesLock_);
      slot = globalNames_.find(name + mo.suffix);
    }
    if (slot < 0) continue;
    const Value v = global(static_cast<std::uint32_t>(slot));
    if (v.isUndefined()) continue;
    storeField(object, intern(name), v);
  }
  {
    std::lock_guard<std::mutex> lk(m.lock);
    record->handle = objectHandle;
    record->done = true;
  }
  *out = Value::object(object);
  return true;
}

}  // namespace spindle::vm
