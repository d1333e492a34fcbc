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
// A module runs once per VM. Its top level is compiled with its own globals (lang
// ModuleOptions: the names it declares get a suffix unique to the module, so they never
// meet the main script's or another module's). Its module object is made before the top
// level runs: an instance of a class Module of its own (so its shape, and the inline
// caches keyed on it, belong to this module alone) whose host data (Names) maps each
// top-level name to its global slot. `lib.name` reads that global live (GET_PROPERTY
// and INVOKE cache kModuleGlobal | slot and read the global on a hit); `lib.name = v`
// writes it; a name the module does not declare, or one not defined, is "Undefined
// property 'name'."
//
// The top level runs in a loader fiber of its own (as a spawn expression's: a done
// channel closed when it ends, its error kept as a value), so it can park like any code.
// The importer parks until the loader ends (WaitReason::Join, Pending::Import), with the
// module object and the loader on its stack; finishImport then leaves the object, or
// raises the loader's error (its trace before the importer's). The record is published
// before the loader starts, so a second fiber importing the same module meanwhile waits
// for the same loader and sees the same outcome: the top level runs exactly once. A
// module whose loader failed is forgotten (a later import tries again).
//
// Cycles. Each record lists the records its code waits for (waits: an edge per waiting
// import from code of a module still loading, or of the main script). An import that
// finds its module loading follows those edges from it: reaching the importer's own
// module is a cycle ("Import cycle: a.lox -> b.lox -> a.lox."), the main script is
// always one (it never finishes loading); otherwise it waits.
//
// Errors, all at the import line, catchable: "Cannot import 'x.lox': No such file or
// directory." (a missing or unreadable file; with io off and no loader module: "No such
// module"), "Compile error in lib.lox: [line 2] Error at ';': Expect expression.", a
// runtime error of the module's top level (its trace, then the importer's), and a cycle.
//
// A native callback's code (a nested VM::call: its fiber has no G and cannot park) gets a
// module already loaded; a new one is run inline as a nested call, with this thread's
// chain of inline loads (tlsLoading) for cycles, and published once it succeeded; a
// module another fiber is loading is an error there ("cannot wait in a native callback").
//
// Invariants: Modules::lock guards the records (their fields and maps) and is never held
// across a heap allocation, compile, a module's run or the file read (an allocation may
// wait for a stop of the world that a fiber waiting for the lock would hold up); it is
// taken before a channel's lock, never after. Names is immutable once its object is
// published. A record's object and loader handles are released when it is forgotten,
// the loader's also once it is seen done.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "lang/diagnostic.h"
#include "runtime/chan.h"
#include "vm/fiber.h"
#include "vm/lib.h"
#include "vm/vm.h"

namespace spindle::vm {

namespace fs = std::filesystem;

struct VM::Modules {
  struct Record {
    std::string display;
    std::string key;
    fs::path dir;       // where its imports are resolved
    bool main = false;  // the main script: never done, importing it is always a cycle
    bool done = false;  // its top level finished
    std::uint32_t object = 0;  // handle: the module object (0 for the main script)
    std::uint32_t loader = 0;  // handle: the loader fiber while it may still run
    std::vector<std::shared_ptr<Record>> waits;  // the modules its code waits for
  };
  // A module object's host data: immutable once the object is published.
  struct Names {
    std::shared_ptr<Record> record;
    struct Hash {  // lookups by string_view, no copy
      using is_transparent = void;
      std::size_t operator()(std::string_view v) const { return std::hash<std::string_view>{}(v); }
    };
    // top-level name -> global slot
    std::unordered_map<std::string, std::uint32_t, Hash, std::equal_to<>> slots;
  };
  std::mutex lock;
  std::map<std::string, std::shared_ptr<Record>> byKey;      // under lock
  std::map<std::string, std::shared_ptr<Record>> byDisplay;  // under lock
  std::shared_ptr<Record> mainRecord;                         // null without a script path
  std::uint32_t next = 1;                                     // under lock: suffix numbers
  fs::path mainDir;
};

namespace {

// The host-data tag of a module object (its Names).
const char kModuleTag = 0;

// The modules whose top level this thread runs inline (a native callback's import: a
// nested call, which cannot park nor move), outermost first, with their VM and key.
struct InlineLoad {
  const VM* vm;
  std::string key;
  std::string display;
};
thread_local std::vector<InlineLoad> tlsLoading;

std::string canonicalKey(const fs::path& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  if (ec) return p.lexically_normal().string();
  fs::path c = fs::weakly_canonical(abs, ec);
  return (ec ? abs.lexically_normal() : c).string();
}

using Record = std::shared_ptr<VM::Modules::Record>;

// A path of waits edges from `from` to `to` (both included), records not done only.
bool waitPath(const Record& from, const VM::Modules::Record* to, std::vector<const VM::Modules::Record*>* path,
              std::set<const VM::Modules::Record*>* seen) {
  path->push_back(from.get());
  if (from.get() == to) return true;
  if (seen->insert(from.get()).second) {
    for (const Record& w : from->waits) {
      if (!w->done && waitPath(w, to, path, seen)) return true;
    }
  }
  path->pop_back();
  return false;
}

}  // namespace

std::shared_ptr<VM::Modules> VM::modules() {
  std::shared_ptr<Modules> mods;
  {
    std::lock_guard<std::mutex> lk(modulesLock_);
    mods = modules_;
  }
  if (mods) return mods;
  auto fresh = std::make_shared<Modules>();
  if (!options_.scriptPath.empty()) {
    const fs::path script(options_.scriptPath);
    fresh->mainDir = script.parent_path();
    auto main = std::make_shared<Modules::Record>();
    main->display = script.filename().string();
    main->dir = fresh->mainDir;
    main->main = true;
    main->key = canonicalKey(script);
    fresh->mainRecord = main;
    fresh->byKey[main->key] = main;
  }
  std::lock_guard<std::mutex> lk(modulesLock_);
  if (!modules_) modules_ = fresh;
  return modules_;
}

namespace {
enum class ModuleState : std::uint8_t { Loading, Done, Failed };

// Under m.lock: whether the record's top level finished; a loader seen ended marks it
// done, or, failed, forgets the record (the failure is read from the loader itself).
ModuleState moduleState(VM& vm, VM::Modules& m, VM::Modules::Record& r) {
  if (r.done) return ModuleState::Done;
  if (r.main || r.loader == 0) return ModuleState::Loading;
  auto* loader = as<ObjFiber>(vm.handleValue(r.loader));
  runtime::hchan* c = loader->done->chan;
  bool closed;
  {
    std::lock_guard<std::mutex> lk(c->lock);
    closed = c->closed;  // the close's lock orders the loader's end before this read
  }
  if (!closed) return ModuleState::Loading;
  vm.releaseHandle(r.loader);
  r.loader = 0;
  r.waits.clear();
  if (loader->state == FiberState::Done) {
    r.done = true;
    return ModuleState::Done;
  }
  auto forget = [&](std::map<std::string, Record>& map, const std::string& k) {
    auto it = map.find(k);
    if (it != map.end() && it->second.get() == &r) map.erase(it);
  };
  forget(m.byKey, r.key);
  forget(m.byDisplay, r.display);
  vm.releaseHandle(r.object);
  r.object = 0;
  return ModuleState::Failed;
}

// The record of the module whose code the fiber's running frame is (the main script's
// for "", null when there is none).
Record importerRecord(VM::Modules& m, ObjFiber* fiber) {
  const CallFrame& frame = fiber->frames->frames()[fiber->frameCount - 1];
  const std::string& importer = frame.closure->function->proto->file;
  if (importer.empty()) return m.mainRecord;
  auto it = m.byDisplay.find(importer);
  return it == m.byDisplay.end() ? nullptr : it->second;
}
}  // namespace

bool VM::moduleSlot(ObjInstance* in, ObjString* name, std::uint32_t* slot) const {
  return moduleSlot(in, name->view(), slot);
}

bool VM::moduleSlot(ObjInstance* in, std::string_view name, std::uint32_t* slot) const {
  auto* names = static_cast<const Modules::Names*>(hostData(Value::object(in), &kModuleTag));
  if (names == nullptr) return false;
  auto it = names->slots.find(name);
  if (it == names->slots.end()) return false;
  *slot = it->second;
  return true;
}

bool VM::isModuleObject(ObjInstance* in) const { return hostData(Value::object(in), &kModuleTag) != nullptr; }

VM::OpResult VM::importModule(ObjFiber* fiber, Value pathValue) {
  const std::string rel(as<ObjString>(pathValue)->view());
  auto fail = [&](std::string message) {
    recordError(fiber, std::move(message));
    return OpResult::Error;
  };
  auto push = [&](Value v) {
    ensureStack(fiber, 1);
    stackStore(fiber->stack->data() + fiber->stackTop, v);
    fiber->stackTop += 1;
  };
  const std::shared_ptr<Modules> mods = modules();
  Modules& m = *mods;
  const bool canPark = fiber->body->g() != nullptr;

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

  // The module met before. Done: *object is its object. Loading: a cycle (*message), an
  // error for a fiber that cannot wait, or *wait (the record to wait for) with *object
  // and *loader from its handles, read under the lock (nothing runs until they are on the
  // importer's stack). Nothing is allocated under the lock.
  enum class Found { No, Done, Error, Wait };
  auto known = [&](const std::string& key, Value* object, Value* loader, std::string* message) {
    std::lock_guard<std::mutex> lk(m.lock);
    auto it = m.byKey.find(key);
    if (it == m.byKey.end()) {
      // A native callback's inline chain: a key met in it again is a cycle.
      auto at = std::find_if(tlsLoading.begin(), tlsLoading.end(),
                             [&](const InlineLoad& l) { return l.vm == this && l.key == key; });
      if (at == tlsLoading.end()) return Found::No;
      std::string text;
      for (auto i = at; i != tlsLoading.end(); ++i) {
        if (i->vm == this) text += i->display + " -> ";
      }
      *message = fmt::format("Import cycle: {}{}.", text, at->display);
      return Found::Error;
    }
    Record r = it->second;
    switch (moduleState(*this, m, *r)) {
      case ModuleState::Done: *object = handleValue(r->object); return Found::Done;
      case ModuleState::Failed: return Found::No;  // forgotten: this import tries again
      case ModuleState::Loading: break;
    }
    const Record cur = importerRecord(m, fiber);
    std::vector<const Modules::Record*> path;
    std::set<const Modules::Record*> seen;
    if ((cur != nullptr && waitPath(r, cur.get(), &path, &seen)) || r->main) {
      if (path.empty()) path = cur != nullptr && cur != r ? std::vector<const Modules::Record*>{r.get(), cur.get()}
                                                          : std::vector<const Modules::Record*>{r.get()};
      std::string text;
      for (const Modules::Record* p : path) text += p->display + " -> ";
      *message = fmt::format("Import cycle: {}{}.", text, r->display);
      return Found::Error;
    }
    if (!canPark) {
      *message = fmt::format("Cannot import '{}' here: another fiber is running its top level, and a native "
                             "callback cannot wait.", rel);
      return Found::Error;
    }
    if (cur != nullptr && !cur->done) cur->waits.push_back(r);  // removed by finishImport
    *object = handleValue(r->object);
    *loader = handleValue(r->loader);
    return Found::Wait;
  };
  // Parks the importer on the loader's done channel (or finishes at once if it ended).
  auto wait = [&](Value object, Value loader) {
    push(object);
    push(loader);
    runtime::hchan* c = as<ObjFiber>(loader)->done->chan;
    std::uint64_t elem = 0;
    bool ok = false;
    FiberBody* body = fiber->body;
    if (runtime::chanrecv(c, body->g(), &elem, &ok) == runtime::ChanResult::Park) {
      body->pending = FiberBody::Pending::Import;
      body->waitChannel = as<ObjFiber>(loader)->done;
      body->parkStep = runtime::Step::park(runtime::WaitReason::Join, c);
      return OpResult::Park;
    }
    return finishImport(fiber) ? OpResult::Ok : OpResult::Error;
  };
  auto found = [&](Found f, Value object, Value loader, std::string& message) {
    switch (f) {
      case Found::Done: push(object); return OpResult::Ok;
      case Found::Error: return fail(std::move(message));
      case Found::Wait: return wait(object, loader);
      case Found::No: break;
    }
    return OpResult::Ok;  // not reached
  };

  std::optional<std::string> source;
  std::string key = "loader:" + display;
  Value object, loader;
  std::string message;
  if (options_.moduleLoader) {
    const Found f = known(key, &object, &loader, &message);
    if (f != Found::No) return found(f, object, loader, message);
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
    const Found f = known(key, &object, &loader, &message);
    if (f != Found::No) return found(f, object, loader, message);
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

  // The record and its object, made before the top level runs. Nothing here is a
  // safepoint, so the objects need no root until their handles are made.
  auto record = std::make_shared<Modules::Record>();
  record->display = display;
  record->key = key;
  record->dir = file.parent_path();
  auto names = std::make_unique<Modules::Names>();
  names->record = record;
  {
    std::lock_guard<std::mutex> lk(globalNamesLock_);
    for (const std::string& name : compiled.moduleNames) {
      const std::int64_t slot = globalNames_.find(name + mo.suffix);
      if (slot >= 0) names->slots.emplace(name, static_cast<std::uint32_t>(slot));
    }
  }
  ObjInstance* moduleObject = newInstance(newClass(intern("Module")));
  setHostData(Value::object(moduleObject), names.release(), &kModuleTag,
              [](void* p) { delete static_cast<Modules::Names*>(p); });
  ObjClosure* script = load(compiled.script);

  if (!canPark) {
    // A native callback: run inline (a nested call), then publish it unless another
    // import did first.
    const std::uint32_t objectHandle = newHandle(Value::object(moduleObject));
    const std::uint32_t closure = newHandle(Value::object(script));
    tlsLoading.push_back({this, key, display});
    Value ignored;
    const bool ok = call(handleValue(closure), nullptr, 0, &ignored);
    tlsLoading.pop_back();
    releaseHandle(closure);
    if (!ok) {
      releaseHandle(objectHandle);
      // The module's error, its trace before the importer's (recordNativeError).
      raise(lastError().message);
      recordNativeError(fiber);
      return OpResult::Error;
    }
    record->done = true;
    record->object = objectHandle;
    bool published = false;
    {
      std::lock_guard<std::mutex> lk(m.lock);
      if (m.byKey.find(key) == m.byKey.end()) {
        m.byKey[key] = record;
        m.byDisplay[display] = record;
        published = true;
      }
    }
    const Value result = handleValue(objectHandle);
    if (!published) releaseHandle(objectHandle);
    push(result);
    return OpResult::Ok;
  }

  // The loader fiber, as a spawn expression's (its error is kept for the importers).
  ObjChannel* done = newChannel(0);
  ObjFiber* loaderFiber = newFiber(Value::object(script), nullptr, 0);
  loaderFiber->gen = fiber->gen;
  writeBarrierPtr(loaderFiber, &loaderFiber->done, done);
  loaderFiber->body->spawned = true;
  record->object = newHandle(Value::object(moduleObject));
  record->loader = newHandle(Value::object(loaderFiber));
  {
    std::unique_lock<std::mutex> lk(m.lock);
    if (m.byKey.find(key) != m.byKey.end()) {
      // Another fiber published this module first: wait for its loader instead.
      lk.unlock();
      releaseHandle(record->object);
      releaseHandle(record->loader);
      loaderFiber->body->release();  // never scheduled
      return importModule(fiber, pathValue);
    }
    m.byKey[key] = record;
    m.byDisplay[display] = record;
    const Record cur = importerRecord(m, fiber);
    if (cur != nullptr && !cur->done) cur->waits.push_back(record);  // removed by finishImport
  }
  loaderFiber->id = nextFiberId_.fetch_add(1, std::memory_order_relaxed);
  sched_->newproc(loaderFiber->body);
  return wait(Value::object(moduleObject), Value::object(loaderFiber));
}

// The importer's wait ended (its loader's done channel is closed): the module object and
// the loader are on top of its stack. Leaves the object, or raises the loader's error.
bool VM::finishImport(ObjFiber* fiber) {
  Value* top = fiber->stack->data() + fiber->stackTop - 1;
  auto* loader = as<ObjFiber>(loadValue(top));
  const Value object = loadValue(top - 1);
  auto* names = static_cast<Modules::Names*>(hostData(object, &kModuleTag));
  const std::shared_ptr<Modules> mods = modules();
  Modules& m = *mods;
  {
    std::lock_guard<std::mutex> lk(m.lock);
    const Record cur = importerRecord(m, fiber);
    if (cur != nullptr) {
      auto it = std::find(cur->waits.begin(), cur->waits.end(), names->record);
      if (it != cur->waits.end()) cur->waits.erase(it);
    }
    (void)moduleState(*this, m, *names->record);
  }
  fiber->stackTop -= 1;  // the object stays: the import's value
  if (loader->state == FiberState::Done) return true;
  {
    std::lock_guard<std::mutex> lk(errorLock_);
    neverJoined_.erase(loader->id);
  }
  const Value error = loadValue(&loader->thrown);
  if (error.isUndefined()) {  // stopped because another fiber's error ended the program
    recordError(fiber, fmt::format("Import of '{}' was stopped.", names->record->display));
    return false;
  }
  raiseValue(fiber, error);
  // An Error goes on as a new one with the whole trace (the module's lines, then this
  // fiber's), so a chain of imports keeps every importer's line; another thrown value
  // goes on as itself.
  if (isKind(error, ObjKind::Instance) && as<ObjInstance>(error)->klass == errorClass_) {
    writeBarrier(fiber, &fiber->thrown, Value::undefined());
  }
  return false;
}

}  // namespace spindle::vm
