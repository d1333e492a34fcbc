#!/usr/bin/env bash
# Differential test: 12 generated programs (fixed seeds), each under every configuration of
# fuzz/difftest.py; any difference in output or exit code fails. Long runs:
#   fuzz/difftest.py --spindle BIN --seed N --count 10000
exec /usr/bin/python3 fuzz/difftest.py --spindle vm/cli/spindle --seed 1000 --count 12
