#!/usr/bin/env python3
"""repl_test.py: drives the spindle REPL through a pseudo-terminal (line editing, prompts,
echo, multi-line entries, Ctrl-C while an entry runs and at the prompt, Ctrl-D, history)
and through a pipe (exit codes). Each wait is for output to appear; the bound on it only
turns a hang into a failure."""
import os
import pty
import re
import select
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1]
WAIT = 60.0  # seconds before a missing output is a failure (a hang)
failures = []


def check(name, ok, detail=""):
    print(("ok " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    if not ok:
        failures.append(name)


class Session:
    def __init__(self, home):
        env = dict(os.environ, HOME=home, TERM="dumb")
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(BIN, [BIN, "--procs", "2"], env)
        self.buf = ""
        self.pos = 0  # what expect() consumed

    def send(self, text):
        # editline may switch the terminal mode after printing its prompt, flushing what
        # was typed ahead: give it a moment first (a real user is slower).
        time.sleep(0.05)
        os.write(self.fd, text.encode())

    def read_some(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 4096)
        except OSError:
            return False
        if not data:
            return False
        self.buf += data.decode(errors="replace")
        return True

    def expect(self, pattern):
        """Waits until pattern (a regex) appears after what earlier expects consumed."""
        deadline = time.monotonic() + WAIT
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.buf, self.pos)
            if m:
                self.pos = m.end()
                return True
            left = deadline - time.monotonic()
            if left <= 0 or not self.read_some(left):
                m = rx.search(self.buf, self.pos)
                if m:
                    self.pos = m.end()
                    return True
                return False

    def since(self, start):
        return self.buf[start:]

    def wait_exit(self, resend=None):
        """Waits for the exit; resend (typed-ahead input the terminal may have flushed)
        is sent again every second meanwhile."""
        deadline = time.monotonic() + WAIT
        next_send = time.monotonic() + 1
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid != 0:
                return os.waitstatus_to_exitcode(status)
            self.read_some(0.1)
            if resend is not None and time.monotonic() >= next_send:
                next_send += 1
                try:
                    os.write(self.fd, resend.encode())
                except OSError:
                    pass
        return None


def tty_session():
    home = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    s = Session(home)
    check("banner and prompt", s.expect(r"spindle .*\n") and s.expect(r"> "), s.buf)

    s.send("1 + 2\r")
    check("expression echo", s.expect(r"\n3\r?\n") and s.expect(r"> "), s.buf)

    mark = s.pos
    s.send("var keep = 7;\r")
    s.expect(r"> ")
    s.send("nil\r")
    s.expect(r"> ")
    check("statements and nil print nothing", re.search(r"\n(7|nil)\r?\n", s.since(mark)) is None, s.since(mark))

    s.send("fun twice(x) {\r")
    ok = s.expect(r"\.\.\. ")
    s.send("return x * 2;\r")
    ok = ok and s.expect(r"\.\.\. ")
    s.send("}\r")
    ok = ok and s.expect(r"> ")
    s.send("twice(21)\r")
    check("multi-line fun", ok and s.expect(r"\n42\r?\n"), s.buf[mark:])
    s.expect(r"> ")

    s.send("while (true) {}\r")
    s.expect(r"while \(true\) \{\}\r?\n")  # the line was accepted: it runs
    time.sleep(0.2)
    s.send("\x03")
    check("Ctrl-C interrupts the running entry", s.expect(r"Interrupted\.") and s.expect(r"> "), s.buf[mark:])
    s.send("keep + 1\r")
    check("state kept after an interrupt", s.expect(r"\n8\r?\n") and s.expect(r"> "), s.buf[mark:])

    mark = s.pos
    s.send("print 1")
    s.expect(r"print 1")
    s.send("\x03")
    s.expect(r"> ")
    s.send("print 55;\r")
    ok = s.expect(r"\n55\r?\n") and s.expect(r"> ")
    check("Ctrl-C at the prompt clears the line", ok and "Error" not in s.since(mark), s.since(mark))

    mark = s.pos
    s.send("fun unfinished() {\r")
    s.expect(r"\.\.\. ")
    s.send("\x03")
    s.expect(r"> ")
    s.send("print 56;\r")
    ok = s.expect(r"\n56\r?\n") and s.expect(r"> ")
    check("Ctrl-C at '... ' drops the pending entry", ok and "Error" not in s.since(mark), s.since(mark))

    # A spawned fiber's error is reported when it happens, and background fibers of
    # earlier entries keep running.
    s.send("var c = Channel(); var out = Channel();\r")
    s.expect(r"> ")
    s.send("fun bg() { for (var x in c) out.send(x * 2); }\r")
    s.expect(r"> ")
    s.send("spawn bg();\r")
    s.expect(r"> ")
    s.send("fun bad() { nil.x(); }\r")
    s.expect(r"> ")
    s.send("spawn bad();\r")
    check("a background fiber's error is reported", s.expect(r"Only instances have methods\."), s.buf[mark:])
    check("a spawn statement is not echoed", "<fiber>" not in s.since(mark), s.since(mark))
    s.send("c.send(21);\r")
    s.expect(r"> ")
    s.send("out.recv()\r")
    check("earlier background fibers survive it", s.expect(r"\n42\r?\n"), s.buf[mark:])
    s.expect(r"> ")

    s.send("\x04")
    rc = s.wait_exit(resend="\x04")
    if rc is None:
        os.kill(s.pid, 9)
    check("Ctrl-D exits 0", rc == 0, f"exit {rc}; output {s.buf[-300:]!r}")
    try:
        with open(os.path.join(home, ".spindle_history")) as f:
            history = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), f.read())
    except OSError as e:
        history = str(e)
    check("history in ~/.spindle_history", "twice(21)" in history and "keep + 1" in history, history)


def piped(name, source, want_rc, want_out, want_err=""):
    r = subprocess.run([BIN], input=source.encode(), capture_output=True, timeout=WAIT)
    out, err = r.stdout.decode(), r.stderr.decode()
    check(name, r.returncode == want_rc and out == want_out and want_err in err,
          f"exit {r.returncode} (want {want_rc}), stdout {out!r}, stderr {err!r}")


tty_session()
piped("piped: runtime error exits 70", "print 1;\nnil.x();\nprint 2;\n", 70, "1\n2\n",
      "Only instances have methods.")
piped("piped: compile error exits 65", "print 1;\nprint ;\n", 65, "1\n", "Expect expression.")
piped("piped: multi-line and echo", "fun f() {\n  return 3;\n}\nf()\n\"s\" + \"t\"\nnil\n", 0, "3\nst\n")
piped("piped: error then success is still a failure", "nil.x();\nprint 3;\n", 70, "3\n")
print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
