#!/usr/bin/env bash
# The REPL through a pseudo-terminal and a pipe (repl_test.py).
exec python3 "$(dirname "$0")/repl_test.py" vm/cli/spindle
