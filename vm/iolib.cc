// iolib.cc: files, standard input and the process (as Lua's liolib.c and loslib.c):
// readFile(path), writeFile(path, s), appendFile(path, s), readLine(), eprint(v),
// exit(code) and env(name). VMOptions::io false leaves them all out (a sandboxed host).
//
// Errors are runtime errors (catchable with try/catch) naming the path and the OS
// reason: "Cannot read 'x.txt': No such file or directory.", "Cannot write 'd':
// Is a directory." (appendFile says "Cannot append to"). Wrong argument kinds are
// lib.h's errors ("writeFile() argument 2 must be a string.").
//
// Blocking. Every call that touches a file or stdin runs between Sched::enterSyscall
// and exitSyscall (offSched below, as ffi.cc does for foreign calls): the P is handed
// over while the OS works, so other fibers keep running, and a read waiting on stdin
// holds up neither them nor the collector. Invariant: inside offSched nothing touches
// the GC'd heap: the arguments are copied into C++ strings first, and the result is
// interned after exitSyscall.
//
// readLine() returns the next line of stdin without its line ending ("\n" or "\r\n"),
// or nil at end of input (a last line without a newline is still a line). Lines are
// read with getline(3) on stdin, whose FILE lock serialises fibers reading at once.
// eprint(v) writes v as print shows it, and a newline, to stderr (unbuffered: one
// fwrite per call, so lines of fibers do not interleave within a line).
// exit(code) flushes stdout (and the VM's output) and hands the code (0-255) to the
// host's VMOptions::onExit, which ends the program (the CLI's does: stdout flushed,
// _Exit); a host without one, or whose onExit returns, gets the runtime error
// "exit(N) called." instead, so an embedding process never ends from a script.
// env(name) is getenv(3): the variable's value as a string, or nil.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "runtime/proc.h"
#include "vm/fiber.h"
#include "vm/lib.h"
#include "vm/vm.h"

namespace spindle::vm {

namespace {

// Runs fn in the scheduler's syscall state when called from a fiber's G (see the top of
// the file). The caller's state is saved and its arguments are on its stack below
// stackTop (callValue), so the stack is quiescent unless the caller is a nested fiber
// (a native calling back into the VM), which the G's traceStack does not see.
}  // namespace

void lib::offSched(const std::function<void()>& fn) {
  runtime::M* m = runtime::getm();
  const bool inG = m != nullptr && m->curg != nullptr;
  const ObjFiber* caller = currentFiber();
  const bool quiescent = inG && caller != nullptr && caller->body->g() == m->curg;
  if (inG) runtime::Sched::enterSyscall(quiescent);
  fn();
  if (inG) runtime::Sched::exitSyscall();
}

namespace {

using lib::offSched;

bool failed(VM& vm, std::string_view verb, const std::string& path, int err) {
  return vm.raise(fmt::format("{} '{}': {}.", verb, path, std::strerror(err)));
}

bool nativeReadFile(VM& vm, const void*, int, Value* args, Value* result) {
  ObjString* p = nullptr;
  if (!lib::stringArg(vm, "readFile", 1, args[0], &p)) return false;
  const std::string path(p->view());
  std::string text;
  int err = 0;
  bool tooLong = false;
  offSched([&] {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
      err = errno;
      return;
    }
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
      if (text.size() + n > lib::maxStringLength()) {
        tooLong = true;
        break;
      }
      text.append(buf, n);
    }
    if (!tooLong && std::ferror(f) != 0) err = errno;  // a directory opens, then reads EISDIR
    std::fclose(f);
  });
  if (vm.dying()) return vm.raise("The Vm was destroyed during a file operation.");
  if (err != 0) return failed(vm, "Cannot read", path, err);
  if (tooLong) return vm.raise("String too long.");
  *result = Value::object(vm.intern(text));
  return true;
}

// writeFile and appendFile: mode "wb" or "ab".
bool writeText(VM& vm, const char* fn, const char* mode, std::string_view verb, Value* args) {
  ObjString* p = nullptr;
  ObjString* s = nullptr;
  if (!lib::stringArg(vm, fn, 1, args[0], &p) || !lib::stringArg(vm, fn, 2, args[1], &s)) return false;
  const std::string path(p->view());
  const std::string text(s->view());
  int err = 0;
  offSched([&] {
    std::FILE* f = std::fopen(path.c_str(), mode);
    if (f == nullptr) {
      err = errno;
      return;
    }
    if (std::fwrite(text.data(), 1, text.size(), f) != text.size()) err = errno != 0 ? errno : EIO;
    if (std::fclose(f) != 0 && err == 0) err = errno;
  });
  if (vm.dying()) return vm.raise("The Vm was destroyed during a file operation.");
  if (err != 0) return failed(vm, verb, path, err);
  return true;
}

bool nativeWriteFile(VM& vm, const void*, int, Value* args, Value*) {
  return writeText(vm, "writeFile", "wb", "Cannot write", args);
}

bool nativeAppendFile(VM& vm, const void*, int, Value* args, Value*) {
  return writeText(vm, "appendFile", "ab", "Cannot append to", args);
}

bool nativeReadLine(VM& vm, const void*, int, Value*, Value* result) {
  std::string line;
  bool eof = false;
  int err = 0;
  offSched([&] {
    char* buf = nullptr;
    std::size_t cap = 0;
    errno = 0;
    const ssize_t n = getline(&buf, &cap, stdin);
    if (n < 0) {
      eof = true;
      err = std::ferror(stdin) != 0 ? errno : 0;
      std::clearerr(stdin);  // a later readLine tries again (a terminal's Ctrl-D)
    } else {
      line.assign(buf, static_cast<std::size_t>(n));
    }
    std::free(buf);
  });
  if (vm.dying()) return vm.raise("The Vm was destroyed during a file operation.");
  if (err != 0) return vm.raise(fmt::format("Cannot read standard input: {}.", std::strerror(err)));
  if (eof) {
    *result = Value::nil();
    return true;
  }
  if (!line.empty() && line.back() == '\n') line.pop_back();
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.size() > lib::maxStringLength()) return vm.raise("String too long.");
  *result = Value::object(vm.intern(line));
  return true;
}

bool nativeEprint(VM& vm, const void*, int, Value* args, Value*) {
  std::string text = vm.toString(args[0]);
  text += '\n';
  offSched([&] { std::fwrite(text.data(), 1, text.size(), stderr); });
  return true;
}

bool nativeExit(VM& vm, const void*, int, Value* args, Value*) {
  double code = 0;
  if (!lib::intArg(vm, "exit", 1, args[0], &code)) return false;
  if (code < 0 || code > 255) return vm.raise("exit() argument 1 must be from 0 to 255.");
  const int c = static_cast<int>(code);
  offSched([] { std::fflush(stdout); });
  if (vm.options().onExit) vm.options().onExit(c);
  return vm.raise(fmt::format("exit({}) called.", c));
}

bool nativeEnv(VM& vm, const void*, int, Value* args, Value* result) {
  ObjString* name = nullptr;
  if (!lib::stringArg(vm, "env", 1, args[0], &name)) return false;
  const char* v = std::getenv(std::string(name->view()).c_str());
  *result = v == nullptr ? Value::nil() : Value::object(vm.intern(v));
  return true;
}

}  // namespace

void VM::registerIoLib() {
  struct Def {
    const char* name;
    int arity;
    NativeFn fn;
  };
  for (const Def& d : {Def{"readFile", 1, nativeReadFile}, Def{"writeFile", 2, nativeWriteFile},
                       Def{"appendFile", 2, nativeAppendFile}, Def{"readLine", 0, nativeReadLine},
                       Def{"eprint", 1, nativeEprint}, Def{"exit", 1, nativeExit},
                       Def{"env", 1, nativeEnv}}) {
    setGlobal(globalSlot(d.name), Value::object(newNative(d.name, d.arity, d.fn)));
  }
}

}  // namespace spindle::vm
