/*
** preload.c — trio_asyncio_preload: every module loads from package.preload
** with no Lua file on disk (the spec runs us with LUA_PATH/LUA_CPATH
** pointing nowhere).  argv[1..]: extra module names that must load too
** (the spec passes every module found under lua/).
*/
#include <string.h>

#include "host_test.h"

static void try_require(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  printf("require %s %s\n", name, lua_pcall(L, 1, 1, 0) == LUA_OK ? "ok" : "failed");
  lua_pop(L, 1);
}

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);

  /* Before preloading, the modules cannot be found anywhere. */
  lua_getglobal(L, "require");
  lua_pushstring(L, "trio");
  printf("without_preload %s\n", lua_pcall(L, 1, 1, 0) == LUA_OK ? "found" : "not_found");
  lua_pop(L, 1);

  trio_asyncio_preload(L);
  try_require(L, "trio_asyncio.core");
  try_require(L, "trio");
  try_require(L, "asyncio");
  try_require(L, "trio_asyncio");
  for (int i = 1; i < argc; i++) try_require(L, argv[i]);

  /* The preloaded modules work: a Trio run, an asyncio run, a bridged run. */
  run_lua(L,
          "local trio, asyncio, ta = require 'trio', require 'asyncio', require 'trio_asyncio'\n"
          "print('trio_run', trio.run(function(a) trio.sleep(0.001); return a * 2 end, 21))\n"
          "print('asyncio_run', asyncio.run(function() asyncio.sleep(0.001); return 'aio' end))\n"
          "print('bridge_run', ta.run(function()\n"
          "  return ta.aio_as_trio(function() asyncio.sleep(0.001); return 'bridged' end)()\n"
          "end))\n"
          "print('source', debug.getinfo(trio.run, 'S').source)\n");
  fflush(stdout);
  lua_close(L);
  printf("closed\n");
  return 0;
}
