// chunk.cc: named chunks for hosts, Vm::compile(source, name) and Vm::run(source, name)
// (vm/spindle.h).
//
// Design. A chunk is compiled as the main script is (lang::compile over the VM's global
// table) with lang::ModuleOptions{file = name, suffix = ""}: every FunctionProto of the
// chunk records `file`, which VM::traceOf already appends to a frame's line the way it
// does for an imported module ("[line 12] in update() (update.lox)"); the empty suffix
// keeps the chunk's top-level names the program's globals (a module's get a suffix of
// their own). Compile diagnostics get the name as a prefix, one per line. The compiled
// script becomes a closure (VM::load) handed to the host as a function Value, held by a
// persistent handle like any object Value; calling it runs the top level.
//
// Invariants: the global table is only touched under globalNamesLock_ (as VM::compile),
// and the globals array grows to cover the names the chunk added before any code of it
// runs. A named chunk is not a module: VM::importModule finds no record for its file and
// resolves its imports against the main script's directory, as for unnamed code.
#include <string>
#include <string_view>

#include "lang/diagnostic.h"
#include "vm/spindle.h"
#include "vm/vm.h"

namespace spindle {

namespace vm {

lang::CompileResult VM::compile(std::string_view source, const std::string& file) {
  if (file.empty()) return compile(source);
  lang::ModuleOptions chunk;
  chunk.file = file;  // suffix "": the chunk's names are the program's globals
  std::unique_lock<std::mutex> nlk(globalNamesLock_);
  lang::CompileResult r = lang::compile(source, globalNames_, chunk);
  const std::size_t n = globalNames_.size();
  nlk.unlock();
  growGlobals(n);
  return r;
}

}  // namespace vm

Result Vm::compile(std::string_view source, std::string_view name) {
  if (optionsError_) return Result::failure(*optionsError_);
  const std::string file(name);
  lang::CompileResult compiled = vm_->compile(source, file);
  if (!compiled.ok()) {
    const std::string diagnostics = lang::formatDiagnostics(compiled.diagnostics);
    std::string message;
    std::size_t start = 0;
    while (start < diagnostics.size()) {
      std::size_t end = diagnostics.find('\n', start);
      if (end == std::string::npos) end = diagnostics.size();
      if (!message.empty()) message += '\n';
      if (!file.empty()) message += file + ": ";
      message.append(diagnostics, start, end - start);
      start = end + 1;
    }
    return Result::failure(Error{Error::Kind::Compile, std::move(message), {}});
  }
  Value fn;
  vm_->withP([&] { fn = fromInternal(vm::Value::object(vm_->load(compiled.script))); });
  return Result::success(std::move(fn));
}

Result Vm::run(std::string_view source, std::string_view name) {
  Result fn = compile(source, name);
  if (!fn.ok()) return fn;
  Result r = call(fn.value(), std::span<const Value>());
  if (!r.ok()) return r;
  return Result::success(Value());
}

}  // namespace spindle
