// embed_common.h: what embed_bench and embed_ops share, so their rows do the same work:
// the quiet one-P Vm, a Lua state with a chunk loaded, the Counter host class (a native
// class for Spindle, a userdata with a metatable for Lua) and the Lua side's natives.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <string_view>

#include "vm/spindle.h"

extern "C" {
#include <lua5.4/lauxlib.h>
#include <lua5.4/lua.h>
#include <lua5.4/lualib.h>
}

namespace embed_common {

// One P (the rows are single-threaded on both sides), print discarded.
inline spindle::Options quiet() {
  spindle::Options o;
  o.output = [](std::string_view) {};
  o.procs = 1;
  return o;
}

// A Lua state with the standard libraries and `chunk` run; exits 2 if the chunk fails.
inline lua_State* newLua(const char* chunk) {
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);
  if (luaL_dostring(L, chunk) != LUA_OK) {
    std::fprintf(stderr, "embed: Lua setup failed: %s\n", lua_tostring(L, -1));
    std::exit(2);
  }
  return L;
}

struct Counter {
  double n = 0;
};

// Spindle's Counter: a native class whose add(x) adds to its host data and returns it.
inline void defineCounter(spindle::Vm& vm) {
  vm.defineClass("Counter")
      .init(0, [](spindle::Vm& v, const spindle::Value& self, spindle::Args) {
        v.setHostData(self, std::make_unique<Counter>());
        return spindle::Result::success({});
      })
      .method<Counter>("add", 1,
                       [](spindle::Vm&, const spindle::Value&, Counter& c, spindle::Args args) {
                         c.n += args[0].asNumber();
                         return spindle::Result::success(spindle::Value::number(c.n));
                       })
      .define();
}

// Lua's hostAdd(a, b) and Counter:add(x).
inline int luaHostAdd(lua_State* L) {
  lua_pushnumber(L, luaL_checknumber(L, 1) + luaL_checknumber(L, 2));
  return 1;
}

inline int luaCounterAdd(lua_State* L) {
  auto* c = static_cast<Counter*>(luaL_checkudata(L, 1, "Counter"));
  c->n += luaL_checknumber(L, 2);
  lua_pushnumber(L, c->n);
  return 1;
}

// A Lua state with the Counter metatable (add in its __index), a global Counter `c` and
// `chunk` run; exits 2 if the chunk fails.
inline lua_State* newLuaWithCounter(const char* chunk) {
  lua_State* L = newLua("");
  luaL_newmetatable(L, "Counter");
  lua_newtable(L);
  lua_pushcfunction(L, luaCounterAdd);
  lua_setfield(L, -2, "add");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  new (lua_newuserdatauv(L, sizeof(Counter), 0)) Counter();
  luaL_setmetatable(L, "Counter");
  lua_setglobal(L, "c");
  if (luaL_dostring(L, chunk) != LUA_OK) {
    std::fprintf(stderr, "embed: Lua setup failed: %s\n", lua_tostring(L, -1));
    std::exit(2);
  }
  return L;
}

}  // namespace embed_common
