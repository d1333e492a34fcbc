// compiler.h: Lox source -> FunctionProto, in a single pass (clox's design).
//
// A Pratt parser that emits bytecode as it parses: no syntax tree. One call compiles
// one script (a file, a -e string or one REPL entry) against the session's GlobalTable,
// to which it adds the global names the script mentions.
//
// Errors: every error is reported (panic mode: after an error, further errors are
// suppressed until the parser resynchronises at a statement boundary), as data, in
// source order, with clox's exact messages. When there is any error, no proto is
// returned. The compiler never prints, throws or aborts on any input.
//
// There are no fixed limits on constants, locals, upvalues, parameters, arguments or
// jump distances (see opcodes.h for the encoding). The one limit is nesting depth
// (kMaxNesting levels of nested declarations, statements and expressions together: each
// recursion of the parser is counted), which keeps the recursive-descent parser within
// a thread's stack on hostile input. Exceeding it is one error, "Too much nesting.", and
// ends the parse (no cascade of errors from the levels it leaves open).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lang/diagnostic.h"
#include "lang/global_table.h"
#include "lang/proto.h"

namespace spindle::lang {

inline constexpr int kMaxNesting = 1000;

struct CompileResult {
  std::shared_ptr<const FunctionProto> script;  // null when there are diagnostics
  std::vector<Diagnostic> diagnostics;
  // A module's compile (below): the names it declares at its top level, in order.
  std::vector<std::string> moduleNames;

  bool ok() const { return script != nullptr; }
};

CompileResult compile(std::string_view source, GlobalTable& globals);

// A module (vm/module.cc): every proto is marked with `file`; the names the module
// declares at its top level are its own globals, GlobalTable names ending in `suffix`
// (which starts with kModuleNameMark, so displayName strips it); other names are the
// program's (the built-ins).
struct ModuleOptions {
  std::string file;
  std::string suffix;
};
CompileResult compile(std::string_view source, GlobalTable& globals, const ModuleOptions& module);

}  // namespace spindle::lang
