// vm_bench: what a host pays for a Vm, side by side with Lua 5.4's states in one binary
// (liblua5.4-dev). Spindle's rows use only the public API (vm/spindle.h).
//   CreateDestroy/first    the only Vm: it creates the process runtime (heap, collector,
//                          scheduler and its threads) and its destruction tears it down
//   CreateDestroy/held     a Vm created and destroyed while the host holds a
//                          spindle::Runtime (or any other Vm lives): the usual host, one Vm
//                          per player, request or plugin
//   LuaCreateDestroy       luaL_newstate + luaL_openlibs + lua_close
//   IdleVms/1000           1000 Vms alive, each having run a one-line script: process RSS
//                          (counter rss_MiB) and its growth over the empty process
//                          (grow_KiB_per_vm)
//   LuaIdleStates/1000     the same with 1000 lua_States after luaL_openlibs and a chunk
// The RSS rows run first (registration order), before the others grow the process; for
// each row alone: --benchmark_filter=IdleVms (or LuaIdle).
// Run: bazel run -c opt //benchmarks:vm_bench
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <vector>

#include "vm/spindle.h"

extern "C" {
#include <lua5.4/lauxlib.h>
#include <lua5.4/lua.h>
#include <lua5.4/lualib.h>
}

namespace {

long rssKiB() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

spindle::Options quiet() {
  spindle::Options o;
  o.output = [](std::string_view) {};
  return o;
}

// Creates state.range(0) interpreters with make() (timed), reports the process RSS with
// them alive and its growth per interpreter, then destroys them with destroy().
template <typename T, typename Make, typename Destroy>
void idle(benchmark::State& state, Make make, Destroy destroy) {
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    const long before = rssKiB();
    state.ResumeTiming();
    std::vector<T> alive;
    alive.reserve(n);
    for (std::size_t i = 0; i < n; i++) alive.push_back(make());
    state.PauseTiming();
    const long during = rssKiB();
    state.counters["rss_MiB"] = static_cast<double>(during) / 1024.0;
    state.counters["grow_KiB_per_vm"] = static_cast<double>(during - before) / static_cast<double>(n);
    state.ResumeTiming();
    for (T& t : alive) destroy(t);
  }
}

void BM_IdleVms(benchmark::State& state) {
  idle<std::unique_ptr<spindle::Vm>>(
      state,
      [&] {
        auto vm = std::make_unique<spindle::Vm>(quiet());
        if (!vm->run("var x = 1 + 2;").ok()) state.SkipWithError("script failed");
        return vm;
      },
      [](std::unique_ptr<spindle::Vm>& vm) { vm.reset(); });
}
BENCHMARK(BM_IdleVms)->Name("IdleVms")->Arg(1000)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_LuaIdleStates(benchmark::State& state) {
  idle<lua_State*>(
      state,
      [&] {
        lua_State* L = luaL_newstate();
        luaL_openlibs(L);
        if (luaL_dostring(L, "local x = 1 + 2") != LUA_OK) state.SkipWithError("chunk failed");
        return L;
      },
      [](lua_State* L) { lua_close(L); });
}
BENCHMARK(BM_LuaIdleStates)->Name("LuaIdleStates")->Arg(1000)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_CreateDestroyFirst(benchmark::State& state) {
  for (auto _ : state) {
    spindle::Vm vm(quiet());
    benchmark::DoNotOptimize(&vm);
  }
}
BENCHMARK(BM_CreateDestroyFirst)->Name("CreateDestroy/first")->Unit(benchmark::kMicrosecond);

void BM_CreateDestroyHeld(benchmark::State& state) {
  spindle::Runtime runtime(quiet());  // keeps the process runtime alive
  for (auto _ : state) {
    spindle::Vm vm(quiet());
    benchmark::DoNotOptimize(&vm);
  }
}
BENCHMARK(BM_CreateDestroyHeld)->Name("CreateDestroy/held")->Unit(benchmark::kMicrosecond);

void BM_LuaCreateDestroy(benchmark::State& state) {
  for (auto _ : state) {
    lua_State* L = luaL_newstate();
    luaL_openlibs(L);
    benchmark::DoNotOptimize(L);
    lua_close(L);
  }
}
BENCHMARK(BM_LuaCreateDestroy)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
