// module_test.cc: modules (vm/module.cc) through the embedding API: import runs a module
// once per Vm, module objects, each module's own globals, Options::module_loader, the
// errors at the import line (missing, compile error naming the file, cycles), traces
// naming the module's file, files relative to the importer, and `as` as a name.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "vm/spindle.h"

namespace {

struct Host {
  std::string out;
  std::map<std::string, std::string> files;  // the loader's modules
  std::vector<std::string> asked;            // the paths the loader was asked for
  spindle::Options options() {
    spindle::Options o;
    o.output = [this](std::string_view s) { out.append(s); };
    o.module_loader = [this](const std::string& path) -> std::optional<std::string> {
      asked.push_back(path);
      auto it = files.find(path);
      if (it == files.end()) return std::nullopt;
      return it->second;
    };
    return o;
  }
};

void writeFile(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::FILE* f = std::fopen(p.c_str(), "wb");
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}

}  // namespace

TEST_CASE("a module runs once; its object reads its top-level var, fun and class") {
  Host h;
  h.files["lib.lox"] =
      "var answer = 42; fun twice(x) { return 2 * x; } class Box { init(v) { this.v = v; } }\n"
      "print \"lib runs\";";
  spindle::Vm vm(h.options());
  REQUIRE(vm.run("import \"lib.lox\" as lib; import \"./lib.lox\" as again;").ok());
  REQUIRE(vm.run("import \"lib.lox\" as third; print lib == again and lib == third;").ok());
  REQUIRE(vm.run("print lib.answer; print lib.twice(4); print lib.Box(5).v; print lib;").ok());
  CHECK(h.out == "lib runs\ntrue\n42\n8\n5\nModule instance\n");
  spindle::Result r = vm.run("print lib.missing;");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Undefined property 'missing'.");
}

TEST_CASE("a module's top-level names are its own, apart from the program's") {
  Host h;
  h.files["counter.lox"] =
      "var count = 0; fun bump() { count = count + 1; return count; } fun read() { return count; }";
  spindle::Vm vm(h.options());
  REQUIRE(vm.run("var count = 100; import \"counter.lox\" as c; c.bump(); c.bump();"
                 "print count; print c.read(); var bump = nil; print c.bump();")
              .ok());
  CHECK(h.out == "100\n2\n3\n");
  // The built-ins are visible in a module.
  h.files["uses.lox"] = "var n = str(len([1, 2, 3]));";
  h.out.clear();
  REQUIRE(vm.run("fun len(l) { return l.len(); } import \"uses.lox\" as u; print u.n;").ok());
  CHECK(h.out == "3\n");
  // A module's global is not the program's.
  h.files["private.lox"] = "var secret = 1;";
  REQUIRE(vm.run("import \"private.lox\" as p;").ok());
  CHECK(vm.run("print secret;").error().message == "Undefined variable 'secret'.");
}

TEST_CASE("imports inside a module resolve against its directory; the loader gets the path") {
  Host h;
  h.files["a/b/inner.lox"] = "import \"../up.lox\" as up; var v = up.v + 1;";
  h.files["a/up.lox"] = "var v = 10;";
  spindle::Vm vm(h.options());
  REQUIRE(vm.run("import \"a/b/inner.lox\" as inner; print inner.v; print inner.up.v;").ok());
  CHECK(h.out == "11\n10\n");
  CHECK(h.asked == std::vector<std::string>{"a/b/inner.lox", "a/up.lox"});
}

TEST_CASE("errors at the import line: missing module, compile error, runtime error, cycle") {
  Host h;
  spindle::Vm vm(h.options());
  spindle::Result r = vm.run("\nimport \"no_such_module.lox\" as m;");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Cannot import 'no_such_module.lox': No such file or directory.");
  CHECK(r.error().trace == std::vector<std::string>{"[line 2] in script"});

  h.files["bad.lox"] = "var ok = 1;\nvar x = ;";
  r = vm.run("import \"bad.lox\" as bad;");
  CHECK(r.error().message == "Compile error in bad.lox: [line 2] Error at ';': Expect expression.");

  h.files["fails.lox"] = "fun f() {\n  return nil + 1;\n}\nf();";
  r = vm.run("import \"fails.lox\" as fails;");
  CHECK(r.error().message == "Operands must be two numbers or two strings.");
  CHECK(r.error().trace == std::vector<std::string>{"[line 2] in f() (fails.lox)",
                                                     "[line 4] in script (fails.lox)",
                                                     "[line 1] in script"});
  // Caught like any runtime error; a failed module is tried again by a later import.
  h.out.clear();
  REQUIRE(vm.run("try { import \"fails.lox\" as f; } catch (e) { print e.message; }").ok());
  CHECK(h.out == "Operands must be two numbers or two strings.\n");
  h.files["fails.lox"] = "var fixed = true;";
  h.out.clear();
  REQUIRE(vm.run("import \"fails.lox\" as f2; print f2.fixed;").ok());
  CHECK(h.out == "true\n");

  h.files["a.lox"] = "import \"b.lox\" as b;";
  h.files["b.lox"] = "import \"c.lox\" as c;";
  h.files["c.lox"] = "import \"a.lox\" as a;";
  r = vm.run("import \"a.lox\" as a;");
  CHECK(r.error().message == "Import cycle: a.lox -> b.lox -> c.lox -> a.lox.");
  CHECK(r.error().trace == std::vector<std::string>{"[line 1] in script (c.lox)",
                                                     "[line 1] in script (b.lox)",
                                                     "[line 1] in script (a.lox)",
                                                     "[line 1] in script"});
}

TEST_CASE("runFile: imports relative to the script's directory; the script itself is a cycle") {
  const char* t = std::getenv("TEST_TMPDIR");
  const std::filesystem::path dir = std::filesystem::path(t != nullptr ? t : "/tmp") / "module_test";
  writeFile(dir / "main.lox", "import \"lib/m.lox\" as m;\nprint m.name;\n");
  writeFile(dir / "lib/m.lox", "var name = \"m\";\n");
  writeFile(dir / "self.lox", "print \"self\";\nimport \"self.lox\" as me;\n");
  std::string out;
  spindle::Options o;
  o.output = [&out](std::string_view s) { out.append(s); };
  spindle::Vm vm(o);
  REQUIRE(vm.runFile((dir / "main.lox").string()).ok());
  CHECK(out == "m\n");
  spindle::Vm other(o);
  spindle::Result r = other.runFile((dir / "self.lox").string());
  REQUIRE(!r.ok());
  CHECK(r.error().message == "Import cycle: self.lox -> self.lox.");
}

TEST_CASE("`as` is a name everywhere but after an import's path; import is a keyword") {
  Host h;
  spindle::Vm vm(h.options());
  REQUIRE(vm.run("var as = 1; fun f(as) { return as + 1; } print f(as); class C { as() { return \"m\"; } }"
                 "print C().as();")
              .ok());
  CHECK(h.out == "2\nm\n");
  spindle::Result r = vm.run("import \"x.lox\";");
  CHECK(r.error().message == "[line 1] Error at ';': Expect 'as' after the module path.");
  r = vm.run("import x as y;");
  CHECK(r.error().message == "[line 1] Error at 'x': Expect a module path string after 'import'.");
  r = vm.run("var import = 1;");
  CHECK(r.error().message.rfind("[line 1] Error at 'import': Expect variable name.\n", 0) == 0);
}

TEST_CASE("an import in a block binds a local") {
  Host h;
  h.files["k.lox"] = "var k = \"k\";";
  spindle::Vm vm(h.options());
  REQUIRE(vm.run("{ import \"k.lox\" as local; print local.k; } fun g() { import \"k.lox\" as m; return m.k; } print g();").ok());
  CHECK(h.out == "k\nk\n");
  CHECK(vm.run("print local;").error().message == "Undefined variable 'local'.");
}
