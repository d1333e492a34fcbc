#!/usr/bin/env bash
# The CLI with files, stdin, exit codes and modules (iolib.cc, module.cc): files made in
# $TEST_TMPDIR, stdin piped, exit(code), an import cycle, traces naming module files.
set -u
bin="$PWD/vm/cli/spindle"
fails=0
t="$TEST_TMPDIR"
check() {  # check NAME WANT_RC WANT_STDOUT WANT_STDERR -- ARGS... (stdin from $input)
  local name=$1 want=$2 wout=$3 werr=$4; shift 5
  local out err rc
  out=$(printf '%s' "${input-}" | "$bin" "$@" 2>"$t/err"); rc=$?
  err=$(cat "$t/err")
  if [[ $rc -ne $want || "$out" != "$wout" || "$err" != "$werr" ]]; then
    echo "FAIL $name: exit $rc (want $want)"
    echo "  stdout: $out"; echo "  want:   $wout"
    echo "  stderr: $err"; echo "  want:   $werr"
    fails=$((fails+1)); return
  fi
  echo "ok $name"
}

input=""
check write-read-append 0 $'one\ntwo' "" -- -e "writeFile(\"$t/f.txt\", \"one\n\"); appendFile(\"$t/f.txt\", \"two\"); print readFile(\"$t/f.txt\");"
check read-missing 70 "" $'Cannot read \'nope.txt\': No such file or directory.\n[line 1] in script' -- -e 'readFile("nope.txt");'
check read-missing-caught 0 "Cannot read 'nope.txt': No such file or directory." "" -- -e 'try { readFile("nope.txt"); } catch (e) { print e.message; }'
check write-dir 70 "" $'Cannot write \''"$t"$'\': Is a directory.\n[line 1] in script' -- -e "writeFile(\"$t\", \"x\");"
check read-arg 70 "" $'readFile() argument 1 must be a string.\n[line 1] in script' -- -e 'readFile(1);'
input=$'alpha\r\nbeta\n\nlast'
check readline 0 $'[alpha]\n[beta]\n[]\n[last]\nnil' "" -- -e 'var l = readLine(); while (l != nil) { print "[" + l + "]"; l = readLine(); } print readLine();'
input=""
check readline-empty 0 "nil" "" -- -e 'print readLine();'
check eprint 0 "out" $'[1, two]' -- -e 'eprint([1, "two"]); print "out";'
check exit-code 3 "before" "" -- -e 'print "before"; exit(3); print "after";'
check exit-zero 0 "" "" -- -e 'exit(0);'
check exit-range 70 "" $'exit() argument 1 must be from 0 to 255.\n[line 1] in script' -- -e 'exit(256);'
check exit-from-fiber 4 "" "" -- -e 'spawn exit(4); sleep(10); print "late";'
SPINDLE_IO_TEST=xyz check env 0 $'xyz\nnil' "" -- -e 'print env("SPINDLE_IO_TEST"); print env("SPINDLE_IO_TEST_UNSET");'

# Modules: a library in a subdirectory, imported twice (runs once), relative imports.
mkdir -p "$t/app/lib"
cat >"$t/app/lib/util.lox" <<'LOX'
import "helper.lox" as helper;
var calls = 0;
fun twice(x) { return helper.double(x); }
class Box { init(v) { this.v = v; } }
fun broken() { return nil + 1; }
print "util runs";
LOX
cat >"$t/app/lib/helper.lox" <<'LOX'
fun double(x) { return x * 2; }
LOX
cat >"$t/app/main.lox" <<'LOX'
import "lib/util.lox" as util;
import "lib/../lib/util.lox" as again;
print util.twice(21);
print util.Box(7).v;
print util == again;
var as = "as is a name";
print as;
fun calls() { util.broken(); }
calls();
LOX
(cd / && check modules 70 $'util runs\n42\n7\ntrue\nas is a name' $'Operands must be two numbers or two strings.\n[line 5] in broken() (lib/util.lox)\n[line 8] in calls()\n[line 9] in script' -- "$t/app/main.lox")
check module-missing-name 0 "Undefined property 'nope'." "" -- -e "import \"$t/app/lib/helper.lox\" as h; try { print h.nope; } catch (e) { print e.message; }"
cat >"$t/a.lox" <<'LOX'
import "b.lox" as b;
LOX
cat >"$t/b.lox" <<'LOX'
print "b starts";
import "a.lox" as a;
LOX
check import-cycle 70 "b starts" $'Import cycle: a.lox -> b.lox -> a.lox.\n[line 2] in script (b.lox)\n[line 1] in script' -- "$t/a.lox"
check import-missing 70 "" $'Cannot import \'missing.lox\': No such file or directory.\n[line 1] in script' -- -e 'import "missing.lox" as m;'
printf 'var x = 1;\nvar y = ;\n' >"$t/bad.lox"
(cd "$t" && check import-compile-error-cwd 70 "" $'Compile error in bad.lox: [line 2] Error at \';\': Expect expression.\n[line 1] in script' -- -e 'import "bad.lox" as b;')
check import-syntax 65 "" "[line 1] Error at ';': Expect 'as' after the module path." -- -e 'import "x.lox";'

# --help lists the natives and keywords.
out=$("$bin" --help)
for word in readFile writeFile appendFile readLine eprint exit env import spawn select try; do
  if ! grep -q -- "$word" <<<"$out"; then echo "FAIL help lacks $word"; fails=$((fails+1)); fi
done
echo "ok help-reference"

if [[ $fails -eq 0 ]]; then echo "0 failed"; exit 0; fi
echo "$fails failed"; exit 1
