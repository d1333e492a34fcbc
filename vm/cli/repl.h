// repl.h: the CLI's read-eval-print loop (repl.cc), a host of the embedding API.
#pragma once

#include "vm/spindle.h"

namespace spindle::cli {

// The REPL's Vm options from the CLI's: a spawned fiber's error is reported on stderr when
// it happens (also after its line finished) and ends only that fiber, so background
// fibers of earlier lines survive a later line's error.
Options replOptions(Options options);

// Reads entries from stdin until end of input and runs each in vm. On a terminal: line
// editing, `> ` and `... ` prompts, history in ~/.spindle_history, Ctrl-C interrupts the
// running entry or clears the line being typed, Ctrl-D exits; returns 0. Piped: no
// prompts; returns the exit code of the last entry that failed (65 compile, 70 runtime),
// 0 when none did.
int repl(Vm& vm, std::string_view version);

}  // namespace spindle::cli
