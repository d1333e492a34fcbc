// iolib_test.cc: files, stdin and the process (vm/iolib.cc) through the embedding API:
// the natives' results and errors (catchable), Options::io leaving them out, exit()
// through Options::on_exit, and a fiber blocked in readLine() leaving its P to the others.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "vm/spindle.h"

namespace {

spindle::Options capture(std::string& out) {
  spindle::Options o;
  o.output = [&out](std::string_view s) { out.append(s); };
  return o;
}

std::string tempDir() {
  const char* t = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir = std::filesystem::path(t != nullptr ? t : "/tmp") / "iolib_test";
  std::filesystem::create_directories(dir);
  return dir.string();
}

// Runs source with stdin reading `input` (a temp file), then restores stdin.
spindle::Result runWithStdin(spindle::Vm& vm, const std::string& source, const std::string& input) {
  const std::string path = tempDir() + "/stdin.txt";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(input.data(), 1, input.size(), f);
  std::fclose(f);
  std::fflush(stdin);
  const int saved = dup(0);
  std::FILE* in = std::fopen(path.c_str(), "rb");
  dup2(fileno(in), 0);
  std::fclose(in);
  std::clearerr(stdin);
  spindle::Result r = vm.run(source);
  dup2(saved, 0);
  close(saved);
  std::clearerr(stdin);
  return r;
}

}  // namespace

TEST_CASE("writeFile, appendFile and readFile round-trip bytes") {
  std::string out;
  spindle::Vm vm(capture(out));
  const std::string f = tempDir() + "/round.txt";
  vm.setGlobal("path", spindle::Value::string(f));
  REQUIRE(vm.run("writeFile(path, \"a\\0b\\n\"); appendFile(path, \"c\"); var s = readFile(path); "
                 "print s.len(); print s.sub(3);")
              .ok());
  CHECK(out == "5\n\nc\n");
  out.clear();
  REQUIRE(vm.run("writeFile(path, \"new\"); print readFile(path); print writeFile(path, \"\");").ok());
  CHECK(out == "new\nnil\n");
}

TEST_CASE("file errors name the path and the OS reason, and are catchable") {
  std::string out;
  spindle::Vm vm(capture(out));
  spindle::Result r = vm.run("readFile(\"no/such.txt\");");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Cannot read 'no/such.txt': No such file or directory.");
  CHECK(r.error().trace == std::vector<std::string>{"[line 1] in script"});
  vm.setGlobal("dir", spindle::Value::string(tempDir()));
  r = vm.run("readFile(dir);");
  CHECK(r.error().message == "Cannot read '" + tempDir() + "': Is a directory.");
  r = vm.run("writeFile(dir, \"x\");");
  CHECK(r.error().message == "Cannot write '" + tempDir() + "': Is a directory.");
  r = vm.run("appendFile(\"no/such/dir/f\", \"x\");");
  CHECK(r.error().message == "Cannot append to 'no/such/dir/f': No such file or directory.");
  REQUIRE(vm.run("try { readFile(\"gone\"); } catch (e) { print e.message; }").ok());
  CHECK(out == "Cannot read 'gone': No such file or directory.\n");
  CHECK(vm.run("readFile(1);").error().message == "readFile() argument 1 must be a string.");
  CHECK(vm.run("writeFile(\"x\", 2);").error().message == "writeFile() argument 2 must be a string.");
  CHECK(vm.run("env(nil);").error().message == "env() argument 1 must be a string.");
}

TEST_CASE("readLine returns lines without their ending, then nil") {
  std::string out;
  spindle::Vm vm(capture(out));
  spindle::Result r = runWithStdin(
      vm, "var l = readLine(); while (l != nil) { print \"<\" + l + \">\"; l = readLine(); } print l;",
      "one\ntwo\r\n\nlast");
  REQUIRE(r.ok());
  CHECK(out == "<one>\n<two>\n<>\n<last>\nnil\n");
}

TEST_CASE("a fiber blocked in readLine leaves its P to the other fibers") {
  // One P: without the syscall state the reader would hold it while blocked, and the
  // main fiber, which writes the line it waits for, could never run.
  std::string out;
  spindle::Options o = capture(out);
  o.procs = 1;
  spindle::Vm vm(o);
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const int saved = dup(0);
  dup2(fds[0], 0);
  close(fds[0]);
  std::clearerr(stdin);
  vm.setGlobal("pipe", spindle::Value::string("/proc/self/fd/" + std::to_string(fds[1])));
  spindle::Result r = vm.run(
      "var started = Channel(1); var got = Channel(1);"
      "fun reader() { started.send(true); got.send(readLine()); }"
      "spawn reader();"
      "started.recv();"
      "writeFile(pipe, \"from main\\n\");"
      "print got.recv();");
  close(fds[1]);
  dup2(saved, 0);
  close(saved);
  std::clearerr(stdin);
  REQUIRE(r.ok());
  CHECK(out == "from main\n");
}

TEST_CASE("env reads the environment") {
  std::string out;
  spindle::Vm vm(capture(out));
  setenv("SPINDLE_IOLIB_TEST", "value 1", 1);
  unsetenv("SPINDLE_IOLIB_TEST_UNSET");
  REQUIRE(vm.run("print env(\"SPINDLE_IOLIB_TEST\"); print env(\"SPINDLE_IOLIB_TEST_UNSET\");").ok());
  CHECK(out == "value 1\nnil\n");
}

TEST_CASE("eprint writes to stderr, not to the output sink") {
  std::string out;
  spindle::Vm vm(capture(out));
  REQUIRE(vm.run("eprint(\"to stderr\"); print \"to out\";").ok());
  CHECK(out == "to out\n");
}

TEST_CASE("exit hands its code to on_exit; without one it is a runtime error") {
  std::string out;
  spindle::Options o = capture(out);
  int code = -1;
  o.on_exit = [&code](int c) { code = c; };
  spindle::Vm vm(o);
  spindle::Result r = vm.run("print \"before\"; exit(7); print \"after\";");
  CHECK(code == 7);
  REQUIRE(!r.ok());
  CHECK(r.error().message == "exit(7) called.");
  CHECK(out == "before\n");
  code = -1;
  CHECK(vm.run("exit(256);").error().message == "exit() argument 1 must be from 0 to 255.");
  CHECK(vm.run("exit(-1);").error().message == "exit() argument 1 must be from 0 to 255.");
  CHECK(vm.run("exit(1.5);").error().message == "exit() argument 1 must be an integer.");
  CHECK(code == -1);

  spindle::Vm plain(capture(out));
  CHECK(plain.run("exit(0);").error().message == "exit(0) called.");
}

TEST_CASE("Options::io = false leaves the natives out") {
  std::string out;
  spindle::Options o = capture(out);
  o.io = false;
  spindle::Vm vm(o);
  for (const char* name : {"readFile", "writeFile", "appendFile", "readLine", "eprint", "exit", "env"}) {
    CAPTURE(name);
    spindle::Result r = vm.run(std::string("print ") + name + ";");
    REQUIRE(!r.ok());
    CHECK(r.error().message == std::string("Undefined variable '") + name + "'.");
  }
  CHECK(vm.run("import \"x.lox\" as x;").error().message == "Cannot import 'x.lox': No such module.");
}
