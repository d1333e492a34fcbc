// repl.cc: the CLI's REPL (Lua's lua.c and Python's REPL are the models).
//
// Design.
//   - Entries. A line is appended to the pending entry. An entry that compiles runs; one
//     whose compile errors include one at the end of input (" at end": an unclosed block,
//     class, call or string) waits for more lines behind a `... ` prompt, so classes,
//     functions and blocks are typed over several lines; any other compile error is
//     reported and the entry dropped.
//   - Echo. An entry that is one expression (it compiles as `EXPR;` and as a
//     parenthesised operand) and not a spawn statement (its fiber's error must end the
//     fiber and be reported, not wait for a join) runs as `{ var __v = (EXPR); if (__v != nil) print __v; }`: its
//     value is printed as `print` prints it, unless nil; the block keeps the name local, and
//     the line numbers (and so traces) are the entry's own.
//   - Signals. SIGINT's handler (async-signal-safe: atomics and Vm::interrupt only)
//     interrupts the running entry ("Interrupted.", the Vm and its globals kept) or, at the
//     prompt, makes editline's readline return, which clears the pending entry. Ctrl-D
//     (end of input) exits.
//   - Fibers. replOptions sets on_fiber_error: a spawned fiber's uncaught error is printed
//     when it happens, whether or not its line still runs, and ends only that fiber.
//   - Terminal or pipe. On a terminal: editline, prompts, history in ~/.spindle_history
//     (written after every entry, the last 1000 kept). Piped: plain reads, no prompts, and
//     the exit code says whether an entry failed.
//
// Invariants. Output to stderr goes through one lock (fiber errors arrive on runtime
// threads). The handler only reads gRunning and stores gSigint.
#include "vm/cli/repl.h"

#include <editline/readline.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "runtime/print.h"

namespace spindle::cli {

namespace {

using runtime::printTo;

constexpr int kExitCompile = 65;
constexpr int kExitRuntime = 70;

std::mutex& stderrLock() {
  static std::mutex m;
  return m;
}

// The Vm running an entry (null at the prompt) and whether SIGINT arrived. Lock-free
// atomics: the handler reads and stores them.
std::atomic<Vm*> gRunning{nullptr};
std::atomic<bool> gSigint{false};
static_assert(std::atomic<Vm*>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);

void onSigint(int) {
  gSigint.store(true, std::memory_order_seq_cst);
  if (Vm* vm = gRunning.load(std::memory_order_seq_cst)) vm->interrupt();
}

void installSigint() {
  struct sigaction sa = {};
  sa.sa_handler = onSigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked read returns EINTR
  sigaction(SIGINT, &sa, nullptr);
}

bool isIdentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

std::string trimmed(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

struct Compiled {
  bool ok = false;
  bool atEnd = false;  // an error at the end of input: the entry may continue
};

Compiled tryCompile(Vm& vm, const std::string& source) {
  Result r = vm.disassemble(source);
  Compiled c;
  c.ok = r.ok();
  if (!c.ok) c.atEnd = r.error().message.find("Error at end:") != std::string::npos;
  return c;
}

class Repl {
 public:
  Repl(Vm& vm, std::string_view version) : vm_(vm), version_(version), tty_(isatty(0) != 0) {}

  int run() {
    if (tty_) {
      printTo(stdout, "spindle {} (Lox). Ctrl-D to exit, Ctrl-C interrupts.\n", version_);
      if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
        history_ = std::string(home) + "/.spindle_history";
        stifle_history(1000);
        read_history(history_.c_str());
      }
    }
    installSigint();
    std::string entry;
    for (;;) {
      std::string line;
      gSigint.store(false, std::memory_order_relaxed);
      const bool got = readLine(entry.empty() ? "> " : "... ", &line);
      if (!got) {
        if (gSigint.load(std::memory_order_relaxed)) {  // Ctrl-C at the prompt: clear
          if (tty_) printTo(stdout, "\n");
          entry.clear();
          continue;
        }
        if (tty_) printTo(stdout, "\n");
        break;  // end of input
      }
      entry += line;
      entry += '\n';
      const std::string source = trimmed(entry);
      if (source.empty()) {
        entry.clear();
        continue;
      }
      if (!runEntry(source)) continue;  // incomplete: read on
      remember(source);
      entry.clear();
    }
    return tty_ ? 0 : exitCode_;
  }

 private:
  // false: the entry is incomplete (a compile error at its end).
  bool runEntry(const std::string& source) {
    std::string code = source;
    std::string expr = source;
    if (expr.back() == ';') expr.pop_back();
    const std::string echo = "{ var __v = (" + expr + "\n); if (__v != nil) print __v; }";
    // A spawn statement stays one (a spawn expression's fiber would keep its error).
    const bool spawnStatement = expr.rfind("spawn", 0) == 0 && (expr.size() == 5 || !isIdentChar(expr[5]));
    if (!spawnStatement && tryCompile(vm_, expr + ";").ok && tryCompile(vm_, echo).ok) {
      code = echo;
    } else {
      const Compiled c = tryCompile(vm_, source);
      if (!c.ok && c.atEnd) return false;
    }
    std::fflush(stdout);
    gRunning.store(&vm_, std::memory_order_seq_cst);
    // A Ctrl-C since the line was read (before gRunning was set) still interrupts it.
    if (gSigint.load(std::memory_order_seq_cst)) vm_.interrupt();
    Result r = vm_.run(code);
    gRunning.store(nullptr, std::memory_order_release);
    std::fflush(stdout);
    if (!r.ok()) {
      {
        std::lock_guard<std::mutex> lk(stderrLock());
        printTo(stderr, "{}", r.error().format());
        std::fflush(stderr);
      }
      exitCode_ = r.error().kind == Error::Kind::Compile ? kExitCompile : kExitRuntime;
    }
    return true;
  }

  // One line without its newline; false at end of input or after SIGINT.
  bool readLine(const char* prompt, std::string* out) {
    if (tty_) {
      char* line = readline(prompt);
      if (line == nullptr) return false;
      *out = line;
      std::free(line);
      return true;
    }
    out->clear();
    for (;;) {
      const int c = std::getc(stdin);
      if (c == EOF) {
        if (std::ferror(stdin) && errno == EINTR && !gSigint.load(std::memory_order_relaxed)) {
          std::clearerr(stdin);
          continue;
        }
        return !out->empty();
      }
      if (c == '\n') return true;
      out->push_back(static_cast<char>(c));
    }
  }

  void remember(const std::string& source) {
    if (!tty_) return;
    add_history(source.c_str());
    if (!history_.empty()) write_history(history_.c_str());
  }

  Vm& vm_;
  std::string_view version_;
  const bool tty_;
  std::string history_;  // empty: no history file
  int exitCode_ = 0;
};

}  // namespace

Options replOptions(Options options) {
  options.on_fiber_error = [](const Error& e) {
    std::lock_guard<std::mutex> lk(stderrLock());
    printTo(stderr, "{}", e.format());
    std::fflush(stderr);
  };
  return options;
}

int repl(Vm& vm, std::string_view version) { return Repl(vm, version).run(); }

}  // namespace spindle::cli
