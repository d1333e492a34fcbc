// ffi_test.cc: foreign calls from Lox (libc and a Bazel-built test library), Bytes,
// the script-level Pinner, the checking mode, and the C++ host's spindle::Pinner.
#include <dlfcn.h>
#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "runtime/gc.h"
#include "runtime/pinner.h"
#include "vm/spindle.h"

namespace {

constexpr const char* kLib = "tests/ffi/libspindle_ffi_test.so";

struct Session {
  std::string out;
  spindle::Vm vm;
  explicit Session(std::optional<bool> check = std::nullopt)
      : vm(spindle::Options{.ffi_check = check, .output = [this](std::string_view s) { out += s; }}) {}
  // Runs source; returns the printed output, or "error: message".
  std::string run(std::string_view source) {
    out.clear();
    spindle::Result r = vm.run(source);
    if (!r.ok()) return out + "error: " + r.error().message;
    return out;
  }
};

const std::string kDecls = std::string("var lib = FFI.open(\"") + kLib + "\");\n";

TEST_CASE("calls into libc") {
  Session s;
  CHECK(s.run("var libc = FFI.open(\"libc.so.6\");"
              "var strlen = libc.fn(\"strlen\", \"size_t\", [\"cstring\"]);"
              "print strlen(\"abc\");"
              "print strlen(\"\");") == "3\n0\n");
  // FFI itself is the process's namespace: libc is there too.
  CHECK(s.run("print FFI.fn(\"abs\", \"int\", [\"int\"])(-42);"
              "print FFI.fn(\"atoi\", \"int\", [\"cstring\"])(\"  123x\");"
              "print FFI.fn(\"toupper\", \"int\", [\"int\"])(97);") == "42\n123\n65\n");
  CHECK(s.run("var b = Bytes(16);"
              "FFI.fn(\"strcpy\", \"pointer\", [\"pointer\", \"cstring\"])(b, \"spindle\");"
              "print b.string(0); print b.get(0); print b.len();") == "spindle\n115\n16\n");
  CHECK(s.run("print FFI.fn(\"getenv\", \"cstring\", [\"cstring\"])(\"SPINDLE_SURELY_UNSET_VAR\");") ==
        "nil\n");
}

TEST_CASE("every C type through the test library") {
  Session s;
  REQUIRE(s.run(kDecls) == "");
  CHECK(s.run("print lib.fn(\"spindle_test_neg8\", \"int8\", [\"int8\"])(5);") == "-5\n");
  CHECK(s.run("print lib.fn(\"spindle_test_inc_u8\", \"uint8\", [\"uint8\"])(255);") == "0\n");
  CHECK(s.run("print lib.fn(\"spindle_test_mul16\", \"int16\", [\"int16\", \"int16\"])(-300, 100);") ==
        "-30000\n");
  CHECK(s.run("print lib.fn(\"spindle_test_u16\", \"uint16\", [\"uint16\"])(65535);") == "65535\n");
  CHECK(s.run("print lib.fn(\"spindle_test_add32\", \"int32\", [\"int32\", \"int32\"])(2000000000, -1) == 1999999999;") ==
        "true\n");
  CHECK(s.run("print lib.fn(\"spindle_test_u32max\", \"uint32\")() == 4294967295;") == "true\n");
  CHECK(s.run("print lib.fn(\"spindle_test_add64\", \"int64\", [\"int64\", \"int64\"])(4000000000, 5) == 4000000005;") ==
        "true\n");
  CHECK(s.run("print lib.fn(\"spindle_test_shl\", \"uint64\", [\"uint64\", \"uint32\"])(1, 40) == 1099511627776;") ==
        "true\n");
  CHECK(s.run("print lib.fn(\"spindle_test_hypot2\", \"double\", [\"double\", \"double\"])(3, 4);") == "25\n");
  CHECK(s.run("print lib.fn(\"spindle_test_halve\", \"float\", [\"float\"])(5);") == "2.5\n");
  CHECK(s.run("print lib.fn(\"spindle_test_greet\", \"cstring\")();") == "hello from C\n");
  CHECK(s.run("print lib.fn(\"spindle_test_null\", \"cstring\")();") == "nil\n");
  CHECK(s.run("print lib.fn(\"spindle_test_count\", \"size_t\", [\"cstring\", \"char\"])(\"banana\", 97);") ==
        "3\n");
  CHECK(s.run("var b = Bytes(10);"
              "lib.fn(\"spindle_test_fill\", \"void\", [\"pointer\", \"size_t\", \"uint8\"])(b, 10, 7);"
              "print lib.fn(\"spindle_test_sum\", \"int64\", [\"pointer\", \"size_t\"])(b, b.len());"
              "print b.get(9);") == "70\n7\n");
}

TEST_CASE("Bytes: typed reads and writes") {
  Session s;
  CHECK(s.run("var b = Bytes(24);"
              "b.write(\"int32\", 0, -7); print b.read(\"int32\", 0); print b.read(\"uint32\", 0) == 4294967289;"
              "b.write(\"double\", 8, 1.5); print b.read(\"double\", 8);"
              "b.write(\"int64\", 16, 123456789012); print b.read(\"int64\", 16) == 123456789012;"
              "b.set(1, 300); print b.get(1);"
              "print b;") == "-7\ntrue\n1.5\ntrue\n44\n<bytes>\n");
  CHECK(s.run("Bytes(4).read(\"int64\", 0);") == "error: Bytes offset 0 out of range (length 4).");
  CHECK(s.run("Bytes(4).get(-1);") == "error: Bytes offset -1 out of range (length 4).");
  // A string offset is quoted: "0" is not the number 0.
  CHECK(s.run("Bytes(3).get(\"0\");") == "error: Bytes offset \"0\" out of range (length 3).");
  CHECK(s.run("Bytes(-1);") == "error: Bytes() expects a non-negative integer size.");
  CHECK(s.run("Bytes(4).nope();") == "error: Undefined property 'nope'.");
}

TEST_CASE("declaration and call errors are runtime errors") {
  Session s;
  CHECK(s.run("FFI.open(\"/no/such/lib.so\");").rfind("error: Cannot open library '/no/such/lib.so'", 0) == 0);
  CHECK(s.run("FFI.fn(\"no_such_symbol_xyz\", \"int\");") ==
        "error: Undefined foreign symbol 'no_such_symbol_xyz'.");
  CHECK(s.run("FFI.fn(\"abs\", \"integer\", [\"int\"]);") == "error: Unknown C type 'integer'.");
  CHECK(s.run("FFI.fn(\"abs\", \"int\", [\"void\"]);") == "error: Bad argument type void of 'abs'.");
  CHECK(s.run("FFI.fn(\"abs\", \"int\", [\"int\"])(\"x\");") ==
        "error: Argument 1 of abs() must be a number (string given).");
  CHECK(s.run("FFI.fn(\"abs\", \"int\", [\"int\"])(1.5);") ==
        "error: Argument 1 of abs() must be an integer (number given).");
  CHECK(s.run("FFI.fn(\"abs\", \"int\", [\"int\"])();") == "error: Expected 1 arguments but got 0.");
  CHECK(s.run("print FFI.fn(\"abs\", \"int\", [\"int\"]);") == "<foreign function>\n");
}

TEST_CASE("a script's Pinner: pin, isPinned, unpin") {
  Session s;
  CHECK(s.run("var p = Pinner(); var a = Bytes(8); var l = [1];"
              "print p.isPinned(a);"
              "p.pin(a); p.pin(a); p.pin(l);"
              "print p.isPinned(a); print p.isPinned(l); print p.count();"
              "p.unpin();"
              "print p.isPinned(a); print p.isPinned(l); print p.count();") ==
        "false\ntrue\ntrue\n3\nfalse\nfalse\n0\n");
  CHECK(s.run("Pinner().pin(1);") == "error: pin() expects an object.");
  CHECK(s.run("print Pinner();") == "<pinner>\n");
}

TEST_CASE("foreign code keeps a pinned buffer and reads it later (script)") {
  Session s;
  REQUIRE(s.run(kDecls +
                "var keep = lib.fn(\"spindle_test_keep\", \"void\", [\"pointer\"]);"
                "var readKept = lib.fn(\"spindle_test_read_kept\", \"int64\", [\"int32\"]);"
                "var writeKept = lib.fn(\"spindle_test_write_kept\", \"void\", [\"int32\", \"int64\"]);"
                "var kept = lib.fn(\"spindle_test_kept\", \"pointer\");"
                "var p = Pinner();"
                "var address;"
                "fun setup() { var b = Bytes(16); b.write(\"int64\", 8, 4242); p.pin(b); keep(b);"
                "  address = b.address(); }"
                "setup();") == "");
  // The buffer is referenced only by the pinner now; collections must not free it.
  for (int i = 0; i < 3; ++i) spindle::runtime::gcCollect();
  CHECK(s.run("for (var i = 0; i < 1000; i = i + 1) Bytes(16);"  // reuse freed memory, if any
              "print readKept(8); print kept() == address;"
              "writeKept(0, 7); print readKept(0); print p.count();"
              "p.unpin(); print p.count();") == "4242\ntrue\n7\n1\n0\n");
}

TEST_CASE("checking mode rejects unpinned heap pointers inside memory passed to C") {
  const std::string decls = kDecls + "var deref = lib.fn(\"spindle_test_deref\", \"int64\", [\"pointer\"]);"
                                     "var inner = Bytes(8); inner.write(\"int64\", 0, 99);"
                                     "var outer = Bytes(8); outer.write(\"pointer\", 0, inner);";
  Session checked(true);
  REQUIRE(checked.run(decls) == "");
  CHECK(checked.run("deref(outer);") ==
        "error: FFI check: argument 1 of spindle_test_deref() is a Bytes holding an unpinned heap "
        "pointer at offset 0; pin the object it points to with a Pinner.");
  CHECK(checked.run("FFI.fn(\"strlen\", \"size_t\", [\"pointer\"])(inner.address());") ==
        "error: FFI check: argument 1 of strlen() is the address of an unpinned heap object; pin it "
        "with a Pinner.");
  CHECK(checked.run("var p = Pinner(); p.pin(inner); print deref(outer); p.unpin();") == "99\n");
  // Without the check the call goes through (the object is alive: it is a global).
  Session unchecked(false);
  REQUIRE(unchecked.run(decls) == "");
  CHECK(unchecked.run("print deref(outer);") == "99\n");
}

TEST_CASE("C++ host: spindle::Pinner keeps a Bytes for foreign code") {
  void* lib = dlopen(kLib, RTLD_NOW | RTLD_LOCAL);
  REQUIRE(lib != nullptr);
  auto keep = reinterpret_cast<void (*)(void*)>(dlsym(lib, "spindle_test_keep"));
  auto readKept = reinterpret_cast<std::int64_t (*)(std::int32_t)>(dlsym(lib, "spindle_test_read_kept"));
  REQUIRE(dlsym(lib, "spindle_test_keep") != nullptr);
  REQUIRE(dlsym(lib, "spindle_test_read_kept") != nullptr);
  Session s;
  spindle::Pinner pinner(s.vm);
  std::uint8_t* address = nullptr;
  {
    spindle::Value b = s.vm.newBytes(16);
    std::span<std::uint8_t> mem = s.vm.bytes(b);
    REQUIRE(mem.size() == 16);
    const std::int64_t v = 31337;
    std::memcpy(mem.data() + 8, &v, sizeof v);
    CHECK_FALSE(pinner.isPinned(b));
    REQUIRE(pinner.pin(b).ok());
    CHECK(pinner.isPinned(b));
    address = mem.data();
    keep(address);
  }  // the host's handle is gone: only the pinner holds the buffer
  for (int i = 0; i < 3; ++i) spindle::runtime::gcCollect();
  CHECK(s.run("for (var i = 0; i < 1000; i = i + 1) Bytes(16);") == "");
  CHECK(readKept(8) == 31337);
  CHECK(spindle::runtime::Pinner::isPinned(address));
  pinner.unpin();
  CHECK_FALSE(spindle::runtime::Pinner::isPinned(address));
  CHECK_FALSE(pinner.pin(spindle::Value::number(1)).ok());
  CHECK(pinner.pin(spindle::Value::string("s")).error().message == "Can only pin objects.");
  CHECK(s.vm.bytes(spindle::Value::number(1)).empty());
  dlclose(lib);
}

}  // namespace
