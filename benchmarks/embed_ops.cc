// embed_ops: embed_bench's rows as fixed operation counts, for instruction counting
// (callgrind, perf stat) on a noisy machine where timings are not comparable.
//
//   embed_ops ROW N     runs N operations of ROW (a row name of embed_bench, spindle or
//                       lua side: CallScript/spindle, SetGlobal/lua, ...) after the setup
//
// The cost of one operation, every thread included, is the difference of two runs'
// counts divided by the difference of their N (the setup and teardown cancel):
//   valgrind --tool=callgrind embed_ops SetGlobal/spindle 1000   (and 11000)
// Rows and scripts are embed_bench's (a CallNative operation is one call of the native).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "vm/spindle.h"

#include "benchmarks/embed_common.h"

namespace {

using embed_common::luaHostAdd;
using embed_common::newLua;
using embed_common::quiet;

constexpr int kLoop = 1000;
volatile double sink = 0;

void need(bool ok) {
  if (!ok) {
    std::fputs("embed_ops: setup failed\n", stderr);
    std::exit(2);
  }
}

int spindleRow(std::string_view row, long n) {
  spindle::Vm vm(quiet());
  if (row == "CallScript") {
    need(vm.run("fun f(x) { return x; }").ok());
    const spindle::Value f = *vm.global("f");
    for (long i = 0; i < n; ++i) need(vm.call(f, {spindle::Value::number(static_cast<double>(i))}).ok());
  } else if (row == "CallNative" || row == "CallNativeMethod") {
    if (row == "CallNative") {
      vm.defineNative("hostAdd", 2, [](spindle::Vm&, spindle::Args args) {
        return spindle::Result::success(spindle::Value::number(args[0].asNumber() + args[1].asNumber()));
      });
      need(vm.run("fun loop(n) { var s = 0; for (var i = 0; i < n; i = i + 1) s = hostAdd(s, i); return s; }").ok());
    } else {
      embed_common::defineCounter(vm);
      need(vm.run("var c = Counter();\nfun loop(n) { for (var i = 0; i < n; i = i + 1) c.add(i); }").ok());
    }
    const spindle::Value loop = *vm.global("loop");
    need(vm.call(loop, {spindle::Value::number(static_cast<double>(n))}).ok());
  } else if (row == "NewInstance") {
    need(vm.run("class Point { init(x) { this.x = x; } }").ok());
    const spindle::Value point = *vm.global("Point");
    for (long i = 0; i < n; ++i) need(vm.call(point, {spindle::Value::number(1)}).ok());
  } else if (row == "GetField") {
    need(vm.run("class Point { init(x) { this.x = x; } } var p = Point(7);").ok());
    const spindle::Value p = *vm.global("p");
    for (long i = 0; i < n; ++i) sink = vm.field(p, "x")->asNumber();
  } else if (row == "SetGlobal") {
    for (long i = 0; i < n; ++i) vm.setGlobal("g", spindle::Value::number(static_cast<double>(i)));
  } else {
    return 1;
  }
  return 0;
}

int luaRow(std::string_view row, long n) {
  lua_State* L = nullptr;
  if (row == "CallScript") {
    L = newLua("function f(x) return x end");
    for (long i = 0; i < n; ++i) {
      lua_getglobal(L, "f");
      lua_pushnumber(L, static_cast<double>(i));
      need(lua_pcall(L, 1, 1, 0) == LUA_OK);
      sink = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
  } else if (row == "CallNative") {
    L = newLua("function loop(n) local s = 0 for i = 0, n - 1 do s = hostAdd(s, i) end return s end");
    lua_register(L, "hostAdd", luaHostAdd);
    lua_getglobal(L, "loop");
    lua_pushinteger(L, n);
    need(lua_pcall(L, 1, 1, 0) == LUA_OK);
  } else if (row == "CallNativeMethod") {
    L = embed_common::newLuaWithCounter("function loop(n) for i = 0, n - 1 do c:add(i) end end");
    lua_getglobal(L, "loop");
    lua_pushinteger(L, n);
    need(lua_pcall(L, 1, 0, 0) == LUA_OK);
  } else if (row == "NewInstance") {
    L = newLua("Point = {} Point.__index = Point\n"
               "function Point.new(x) local p = setmetatable({}, Point) p.x = x return p end");
    for (long i = 0; i < n; ++i) {
      lua_getglobal(L, "Point");
      lua_getfield(L, -1, "new");
      lua_pushnumber(L, 1);
      need(lua_pcall(L, 1, 1, 0) == LUA_OK);
      lua_pop(L, 2);
    }
  } else if (row == "GetField") {
    L = newLua("p = {x = 7}");
    lua_getglobal(L, "p");
    for (long i = 0; i < n; ++i) {
      lua_getfield(L, -1, "x");
      sink = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
  } else if (row == "SetGlobal") {
    L = newLua("");
    for (long i = 0; i < n; ++i) {
      lua_pushnumber(L, static_cast<double>(i));
      lua_setglobal(L, "g");
    }
  } else {
    return 1;
  }
  lua_close(L);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fputs("usage: embed_ops ROW/spindle|ROW/lua N\n", stderr);
    return 2;
  }
  const std::string_view arg = argv[1];
  const std::size_t slash = arg.find('/');
  const long n = std::atol(argv[2]);
  if (slash == std::string_view::npos || n < 0) return 2;
  const std::string_view row = arg.substr(0, slash), side = arg.substr(slash + 1);
  const int rc = side == "spindle" ? spindleRow(row, n) : side == "lua" ? luaRow(row, n) : 1;
  if (rc != 0) std::fprintf(stderr, "embed_ops: unknown row %s\n", argv[1]);
  return rc == 0 ? 0 : 2;
}
