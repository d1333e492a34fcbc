#!/usr/bin/env python3
"""Differential testing of Spindle with generated programs.

Generates valid, terminating, deterministic Lox programs from a grammar (classes with
inheritance and super, closures, lists, maps, strings, try/catch, fibers and channels
whose output order is fixed by the program), runs each under several configurations of
the same binary and compares their output and exit code:
  base            spindle --procs 1
  procs           spindle --procs 2
  gcstress        spindle --procs 2 --gcstress-continuous 1 --gccheckmark
  gcstress-exact  spindle --procs 1 --gcstress 7 --gcverify
Any difference is a bug: the failing program is written to --out with the commands
that disagree. clox is not packaged for Debian, so there is no clox column.

  fuzz/difftest.py --spindle BIN [--seed N] [--count N] [--out DIR]
Exit status: 0 when every program agreed, 1 on a difference, 2 on bad usage.
"""
import argparse
import os
import random
import subprocess
import sys

CONFIGS = [
    ("base", ["--procs", "1"]),
    ("procs", ["--procs", "2"]),
    ("gcstress", ["--procs", "2", "--gcstress-continuous", "1", "--gccheckmark"]),
    ("gcstress-exact", ["--procs", "1", "--gcstress", "7", "--gcverify"]),
]


class Gen:
    """A typed generator: each expression is built for a type (num, str, list, map, obj),
    from variables in scope of that type, so generated programs never fail by accident;
    deliberate errors appear only inside try blocks."""

    def __init__(self, rng):
        self.r = rng
        self.out = []
        self.indent = 0
        self.scopes = [{}]  # name -> type
        self.counter = 0
        self.classes = []  # (name, fields, methods returning num)

    def fresh(self, prefix):
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, line):
        self.out.append("  " * self.indent + line)

    def vars(self, ty):
        """Variables usable as `ty`; loop counters ("idx") read as numbers but are never
        assigned (so every loop terminates)."""
        want = ("num", "idx") if ty == "num" else (ty,)
        names = []
        for s in self.scopes:
            names += [n for n, t in s.items() if t in want]
        return names

    def assignable(self):
        return [n for s in self.scopes for n, t in s.items() if t == "num"]

    def declare(self, name, ty):
        self.scopes[-1][name] = ty

    # --- expressions -------------------------------------------------------------------
    def num(self, d=0):
        r = self.r
        opts = ["lit", "lit"]
        if self.vars("num"): opts += ["var"] * 3
        if d < 3: opts += ["bin", "bin", "len", "call", "cond"]
        if d < 3 and self.vars("list"): opts += ["index"]
        if d < 3 and self.vars("obj"): opts += ["field", "method"]
        k = r.choice(opts)
        if k == "lit": return str(r.choice([0, 1, 2, 3, 7, 10, 100, r.randint(0, 1000)]))
        if k == "var": return r.choice(self.vars("num"))
        if k == "bin":
            op = r.choice(["+", "-", "*", "+", "%"])
            if op == "%": return f"({self.num(d + 1)} % {r.randint(1, 9)})"
            return f"({self.num(d + 1)} {op} {self.num(d + 1)})"
        if k == "len":
            if self.vars("list") and r.random() < 0.5: return f"{r.choice(self.vars('list'))}.len()"
            return f"{self.str_(d + 1)}.len()"
        if k == "call": return f"sq({self.num(d + 1)} % 50)"
        if k == "cond": return f"({self.bool_(d + 1)} ? 1 : 0)" if False else f"(({self.bool_(d + 1)}) and 1 or 2)"
        if k == "index":
            l = r.choice(self.vars("list"))
            return f"{l}[({self.num(d + 1)} % {l}.len() + {l}.len()) % {l}.len()]"
        if k == "field":
            return f"{r.choice(self.vars('obj'))}.n"
        if k == "method":
            return f"{r.choice(self.vars('obj'))}.value()"
        return "0"

    def bool_(self, d=0):
        r = self.r
        k = r.choice(["cmp", "cmp", "lit", "not", "streq"])
        if k == "lit": return r.choice(["true", "false"])
        if k == "not": return f"!({self.bool_(d + 1) if d < 3 else 'true'})"
        if k == "streq": return f"{self.str_(d + 1)} == {self.str_(d + 1)}"
        return f"{self.num(d + 1)} {r.choice(['<', '<=', '>', '>=', '==', '!='])} {self.num(d + 1)}"

    def str_(self, d=0):
        r = self.r
        opts = ["lit", "lit"]
        if self.vars("str"): opts += ["var"] * 2
        if d < 3: opts += ["cat", "str", "sub", "upper"]
        k = r.choice(opts)
        if k == "lit": return '"' + r.choice(["a", "bc", "hello", "", "x,y,z", "\\n", "\\u{263A}"]) + '"'
        if k == "var": return r.choice(self.vars("str"))
        if k == "cat": return f"({self.str_(d + 1)} + {self.str_(d + 1)})"
        if k == "str": return f"str({self.num(d + 1)})"
        if k == "sub": return f"{self.str_(d + 1)}.sub({r.randint(0, 3)}, {r.randint(0, 6)})"
        return f"{self.str_(d + 1)}.upper()"

    def list_(self, d=0):
        items = ", ".join(self.num(d + 1) for _ in range(self.r.randint(1, 4)))
        return f"[{items}]"

    # --- statements --------------------------------------------------------------------
    def block(self, n, d):
        self.scopes.append({})
        self.indent += 1
        for _ in range(n): self.stmt(d + 1)
        self.indent -= 1
        self.scopes.pop()

    def stmt(self, d=0):
        r = self.r
        kinds = ["print", "print", "var", "assign", "list", "map", "str"]
        if d < 3: kinds += ["if", "for", "forin", "try", "closure", "obj", "fiber"]
        k = r.choice(kinds)
        if k == "print":
            self.emit(f"print {r.choice([self.num, self.str_, self.bool_])()};")
        elif k == "var":
            ty = r.choice(["num", "str"])
            name = self.fresh("v")
            self.emit(f"var {name} = {self.num() if ty == 'num' else self.str_()};")
            self.declare(name, ty)
        elif k == "assign" and self.assignable():
            v = r.choice(self.assignable())
            self.emit(f"{v} = {self.num()};")
        elif k == "list":
            name = self.fresh("l")
            self.emit(f"var {name} = {self.list_()};")
            self.declare(name, "list")
            self.emit(f"{name}.push({self.num()});")
            self.emit(f"print {name};")
        elif k == "map":
            name = self.fresh("m")
            self.emit(f"var {name} = {{{self.str_()}: {self.num()}, {self.num()}: {self.str_()}}};")
            self.emit(f"{name}[{self.str_()}] = {self.list_()};")
            self.emit(f"print {name}.len(); print {name}.keys(); print {name};")
        elif k == "str":
            s = self.str_()
            self.emit(f"print {s}.split(\",\").join(\"|\");")
        elif k == "if":
            self.emit(f"if ({self.bool_()}) {{")
            self.block(r.randint(1, 3), d)
            self.emit("} else {")
            self.block(r.randint(0, 2), d)
            self.emit("}")
        elif k == "for":
            i = self.fresh("i")
            self.emit(f"for (var {i} = 0; {i} < {r.randint(0, 5)}; {i} = {i} + 1) {{")
            self.scopes.append({i: "idx"})
            self.block(r.randint(1, 3), d)
            self.scopes.pop()
            self.emit("}")
        elif k == "forin" and self.vars("list"):
            x = self.fresh("x")
            self.emit(f"for (var {x} in {r.choice(self.vars('list'))}) {{")
            self.scopes.append({x: "idx"})
            self.indent += 1
            self.emit(f"print {x} + {self.num()};")
            self.indent -= 1
            self.scopes.pop()
            self.emit("}")
        elif k == "try":
            self.emit("try {")
            self.block(r.randint(0, 2), d)
            self.indent += 1
            self.emit(r.choice(['throw "boom";', "nil();", '[1][5];', 'throw Error("e" + str(1));',
                                '"a" - 1;', "({}).nope();"]))
            self.indent -= 1
            self.emit("} catch (e) {")
            self.indent += 1
            self.emit("print e;")
            self.indent -= 1
            self.emit("}")
        elif k == "closure":
            mk, c = self.fresh("mk"), self.fresh("c")
            self.emit(f"fun {mk}(start) {{ var n = start; fun inc(by) {{ n = n + by; return n; }} return inc; }}")
            self.emit(f"var {c} = {mk}({self.num()});")
            self.emit(f"{c}(1); print {c}({self.num()});")
        elif k == "obj" and self.classes:
            cls = r.choice(self.classes)
            o = self.fresh("o")
            self.emit(f"var {o} = {cls}({self.num()});")
            self.declare(o, "obj")
            self.emit(f"print {o}.value(); print {o}.describe();")
        elif k == "fiber":
            ch, n = self.fresh("ch"), r.randint(1, 4)
            buf = r.choice(["", "1", "3"])
            self.emit(f"var {ch} = Channel({buf});")
            f = self.fresh("w")
            base = self.num()
            self.emit(f"fun {f}(c, k) {{ var acc = []; for (var j = 0; j < k; j = j + 1) {{ acc.push(j * j); c.send(acc.len() + {base}); }} }}")
            self.emit(f"spawn {f}({ch}, {n});")
            self.emit(f"for (var j = 0; j < {n}; j = j + 1) print {ch}.recv();")
        else:
            self.emit(f"print {self.num()};")

    def program(self):
        self.emit("fun sq(x) { if (x <= 1) return x; return sq(x - 1) + 2 * x - 1; }")
        for ci in range(self.r.randint(1, 3)):
            name = f"K{ci}"
            sup = f" < K{ci - 1}" if ci > 0 and self.r.random() < 0.6 else ""
            body = f"init(n) {{ this.n = n; this.tag = \"{name}\"; }} value() {{ return this.n * {ci + 2}; }}"
            if sup:
                body += f" describe() {{ return super.describe() + \"/{name}\"; }}"
            else:
                body += " describe() { return this.tag + \":\" + str(this.n); }"
            self.emit(f"class {name}{sup} {{ {body} }}")
            self.classes.append(name)
        for _ in range(self.r.randint(6, 16)):
            self.stmt()
        return "\n".join(self.out) + "\n"


def run(binary, flags, path):
    try:
        p = subprocess.run([binary] + flags + [path], capture_output=True, timeout=120)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return "timeout", "", ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spindle", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--out", default=os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", "/tmp/spindle-difftest"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    failures = 0
    for i in range(a.count):
        seed = a.seed + i
        src = Gen(random.Random(seed)).program()
        path = os.path.join(a.out, f"prog_{seed}.lox")
        with open(path, "w") as f:
            f.write(src)
        results = [(name, run(a.spindle, flags, path)) for name, flags in CONFIGS]
        base = results[0][1]
        if base[0] != 0:
            failures += 1
            print(f"FAIL seed {seed}: the generated program failed under base (exit {base[0]}):\n{base[2][:2000]}")
            continue
        for name, res in results[1:]:
            if res[:2] != base[:2]:
                failures += 1
                print(f"FAIL seed {seed}: {name} differs from base (exit {res[0]} vs {base[0]}); program {path}")
                print(res[2][:2000])
                break
        else:
            os.remove(path)
    print(f"difftest: {a.count} programs from seed {a.seed}, {len(CONFIGS)} configurations, {failures} differences")
    print(f"{a.count - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
