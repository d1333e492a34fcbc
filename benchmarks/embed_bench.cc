// embed_bench: what the embedding API costs a host, side by side with Lua 5.4's C API in
// one binary (liblua5.4-dev). Each pair of rows does the same work:
//   CallScript        C++ calls a script function f(x) that returns x
//                     (Vm::call / lua_pcall)
//   CallNative        a script loop calls a C++ native 1000 times (per call)
//   CallNativeMethod  a script loop calls a C++ method of a native class (Lua: a method
//                     in the object's metatable's __index) 1000 times (per call)
//   NewInstance       C++ creates an instance of a script class whose init stores a field
//   GetField          C++ reads a field of an instance (Vm::field / lua_getfield)
//   SetGlobal         C++ sets a global number (Vm::setGlobal / lua_setglobal)
// Run: bazel run -c opt //benchmarks:embed_bench
#include <benchmark/benchmark.h>

#include <string>

#include "vm/spindle.h"

#include "benchmarks/embed_common.h"

namespace {

using embed_common::luaHostAdd;
using embed_common::newLua;
using embed_common::quiet;

constexpr int kLoop = 1000;

void BM_CallScript(benchmark::State& state) {
  spindle::Vm vm(quiet());
  if (!vm.run("fun f(x) { return x; }").ok()) state.SkipWithError("setup");
  const spindle::Value f = *vm.global("f");
  double x = 0;
  for (auto _ : state) {
    spindle::Result r = vm.call(f, {spindle::Value::number(x)});
    x += 1;
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_CallScript)->Name("CallScript/spindle");

void BM_LuaCallScript(benchmark::State& state) {
  lua_State* L = newLua("function f(x) return x end");
  double x = 0;
  for (auto _ : state) {
    lua_getglobal(L, "f");
    lua_pushnumber(L, x);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) state.SkipWithError("pcall");
    benchmark::DoNotOptimize(lua_tonumber(L, -1));
    lua_pop(L, 1);
    x += 1;
  }
  lua_close(L);
}
BENCHMARK(BM_LuaCallScript)->Name("CallScript/lua");

void BM_CallNative(benchmark::State& state) {
  spindle::Vm vm(quiet());
  vm.defineNative("hostAdd", 2, [](spindle::Vm&, spindle::Args args) {
    return spindle::Result::success(spindle::Value::number(args[0].asNumber() + args[1].asNumber()));
  });
  if (!vm.run("fun loop(n) { var s = 0; for (var i = 0; i < n; i = i + 1) s = hostAdd(s, i); return s; }").ok())
    state.SkipWithError("setup");
  const spindle::Value loop = *vm.global("loop");
  for (auto _ : state) benchmark::DoNotOptimize(vm.call(loop, {spindle::Value::number(kLoop)}));
  state.SetItemsProcessed(state.iterations() * kLoop);
}
BENCHMARK(BM_CallNative)->Name("CallNative/spindle");

void BM_LuaCallNative(benchmark::State& state) {
  lua_State* L = newLua("function loop(n) local s = 0 for i = 0, n - 1 do s = hostAdd(s, i) end return s end");
  lua_register(L, "hostAdd", luaHostAdd);
  for (auto _ : state) {
    lua_getglobal(L, "loop");
    lua_pushinteger(L, kLoop);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) state.SkipWithError("pcall");
    lua_pop(L, 1);
  }
  state.SetItemsProcessed(state.iterations() * kLoop);
  lua_close(L);
}
BENCHMARK(BM_LuaCallNative)->Name("CallNative/lua");

void BM_CallNativeMethod(benchmark::State& state) {
  spindle::Vm vm(quiet());
  embed_common::defineCounter(vm);
  if (!vm.run("var c = Counter();\n"
              "fun loop(n) { for (var i = 0; i < n; i = i + 1) c.add(i); }")
           .ok())
    state.SkipWithError("setup");
  const spindle::Value loop = *vm.global("loop");
  for (auto _ : state) benchmark::DoNotOptimize(vm.call(loop, {spindle::Value::number(kLoop)}));
  state.SetItemsProcessed(state.iterations() * kLoop);
}
BENCHMARK(BM_CallNativeMethod)->Name("CallNativeMethod/spindle");

void BM_LuaCallNativeMethod(benchmark::State& state) {
  lua_State* L = embed_common::newLuaWithCounter("function loop(n) for i = 0, n - 1 do c:add(i) end end");
  for (auto _ : state) {
    lua_getglobal(L, "loop");
    lua_pushinteger(L, kLoop);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) state.SkipWithError("pcall");
  }
  state.SetItemsProcessed(state.iterations() * kLoop);
  lua_close(L);
}
BENCHMARK(BM_LuaCallNativeMethod)->Name("CallNativeMethod/lua");

void BM_NewInstance(benchmark::State& state) {
  spindle::Vm vm(quiet());
  if (!vm.run("class Point { init(x) { this.x = x; } }").ok()) state.SkipWithError("setup");
  const spindle::Value point = *vm.global("Point");
  for (auto _ : state) benchmark::DoNotOptimize(vm.call(point, {spindle::Value::number(1)}));
}
BENCHMARK(BM_NewInstance)->Name("NewInstance/spindle");

void BM_LuaNewInstance(benchmark::State& state) {
  lua_State* L = newLua(
      "Point = {} Point.__index = Point\n"
      "function Point.new(x) local p = setmetatable({}, Point) p.x = x return p end");
  for (auto _ : state) {
    lua_getglobal(L, "Point");
    lua_getfield(L, -1, "new");
    lua_pushnumber(L, 1);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) state.SkipWithError("pcall");
    lua_pop(L, 2);
  }
  lua_close(L);
}
BENCHMARK(BM_LuaNewInstance)->Name("NewInstance/lua");

void BM_GetField(benchmark::State& state) {
  spindle::Vm vm(quiet());
  if (!vm.run("class Point { init(x) { this.x = x; } } var p = Point(7);").ok())
    state.SkipWithError("setup");
  const spindle::Value p = *vm.global("p");
  for (auto _ : state) benchmark::DoNotOptimize(vm.field(p, "x"));
}
BENCHMARK(BM_GetField)->Name("GetField/spindle");

void BM_LuaGetField(benchmark::State& state) {
  lua_State* L = newLua("p = {x = 7}");
  lua_getglobal(L, "p");
  for (auto _ : state) {
    lua_getfield(L, -1, "x");
    benchmark::DoNotOptimize(lua_tonumber(L, -1));
    lua_pop(L, 1);
  }
  lua_close(L);
}
BENCHMARK(BM_LuaGetField)->Name("GetField/lua");

void BM_SetGlobal(benchmark::State& state) {
  spindle::Vm vm(quiet());
  double x = 0;
  for (auto _ : state) {
    vm.setGlobal("g", spindle::Value::number(x));
    x += 1;
  }
}
BENCHMARK(BM_SetGlobal)->Name("SetGlobal/spindle");

void BM_LuaSetGlobal(benchmark::State& state) {
  lua_State* L = newLua("");
  double x = 0;
  for (auto _ : state) {
    lua_pushnumber(L, x);
    lua_setglobal(L, "g");
    x += 1;
  }
  lua_close(L);
}
BENCHMARK(BM_LuaSetGlobal)->Name("SetGlobal/lua");

}  // namespace

BENCHMARK_MAIN();
