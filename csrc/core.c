/*
** core.c — luaopen_trio_asyncio_core: the C module behind trio, asyncio and
** trio_asyncio.  The one file above the layers: it opens each of them
** (engine/, io/, trio/, asyncio/, embed/).
** Every function gets the engine as upvalue 1.
*/
#include "engine/engine.h"
#include "io/sock.h"
#include "trio/trio.h"
#include "asyncio/asyncio.h"
#include "embed/embed.h"

static int (*const openers[])(lua_State *L) = {
  /* engine */
  ta_open_run, ta_open_task,
  /* io (before the faces, which add to the socket class) */
  ta_open_sock, ta_open_dns, ta_open_ioreq, ta_open_thread, ta_open_fs, ta_open_signal,
  ta_open_procpipe, ta_open_process, ta_open_tls,
  /* trio */
  ta_open_trio_run, ta_open_lowlevel, ta_open_scope, ta_open_nursery, ta_open_parking_lot,
  ta_open_channel, ta_open_time, ta_open_fdwait, ta_open_trio_socket, ta_open_trio_ioreq,
  /* asyncio */
  ta_open_loop, ta_open_future, ta_open_queue, ta_open_sync, ta_open_stream_reader, ta_open_iowait, ta_open_aio_ioreq,
  ta_open_transport,
  /* embed */
  ta_open_embed,
};

/* metatable(name) -> the registry metatable of a core type, so the Lua
** face can add methods written in Lua. */
static int l_metatable(lua_State *L) {
  luaL_getmetatable(L, luaL_checkstring(L, 1));
  return 1;
}

/* luaL_argerror names a function it cannot name from the call site by
** searching package.loaded; registering the method tables there makes
** `pcall(ch.send, 42)` report 'trio_asyncio.MemorySendChannel.send'. */
static void expose_methods(lua_State *L) {
  static const struct { const char *mt, *field; } types[] = {
    {"trio_asyncio.MemorySendChannel", "__index"},
    {"trio_asyncio.MemoryReceiveChannel", "__index"},
    {"trio_asyncio.ParkingLot", "__index"},
    {"trio_asyncio.Nursery", "__methods"},
    {"trio_asyncio.CancelScope", "__methods"},
    {"trio_asyncio.MockClock", "__methods"},
    {"trio_asyncio.Task", "__methods"},
    {"trio_asyncio.Loop", "__index"},
    {"trio_asyncio.Handle", "__index"},
    {"trio_asyncio.Future", "__index"},
    {"trio_asyncio.AioTask", "__index"},
    {"trio_asyncio.StreamReader", "__index"},
    {"trio_asyncio.socket", "__methods"},
  };
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    luaL_getmetatable(L, types[i].mt);
    lua_getfield(L, -1, types[i].field);
    lua_setfield(L, -3, types[i].mt);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

int luaopen_trio_asyncio_core(lua_State *L) {
  lua_newtable(L);
  ta_push_engine(L);
  for (size_t i = 0; i < sizeof openers / sizeof openers[0]; i++) openers[i](L);
  lua_pop(L, 1);
  lua_pushcfunction(L, l_metatable);
  lua_setfield(L, -2, "metatable");
  expose_methods(L);
  return 1;
}
