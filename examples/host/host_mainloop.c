/*
** host_mainloop.c — a host with its own main loop (here a fake 60 fps game
** loop) that drives trio-asyncio step by step: each frame does the game's
** work, then gives the rest of the frame's time to trio_asyncio_step.
** trio_asyncio_backend_timeout tells when Lua next needs the CPU (a real
** host could sleep on vsync instead when that is after the frame).
**
** The Lua side uses both flavors: trio_asyncio.start_guest_run opens an
** asyncio loop around the guest run.
**
** Build: make examples   Run: build/examples/host_mainloop
*/
#include <stdio.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

#include "trio_asyncio.h"

#define FRAME (1.0 / 60.0) /* seconds per frame */

static double now(void) { return (double)uv_hrtime() / 1e9; }

static const char *script =
    "local trio, asyncio, ta = require 'trio', require 'asyncio', require 'trio_asyncio'\n"
    "score = 0\n"
    "ta.start_guest_run(function(loop)\n"
    "  -- a Trio task and an asyncio coroutine, side by side\n"
    "  trio.open_nursery(function(nursery)\n"
    "    nursery:start_soon(function()\n"
    "      for i = 1, 5 do trio.sleep(0.1); score = score + 10 end\n"
    "    end)\n"
    "    local msg = ta.aio_as_trio(function()\n"
    "      asyncio.sleep(0.3)\n"
    "      return 'asyncio says hi'\n"
    "    end)()\n"
    "    print('[lua]  ' .. msg)\n"
    "  end)\n"
    "  return score\n"
    "end, {done_callback = function(ok, final)\n"
    "  print('[lua]  guest run finished:', ok, final)\n"
    "end})\n";

int main(void) {
  lua_State *L = luaL_newstate();
  int frame = 0, lua_alive = 1;

  luaL_openlibs(L);
  trio_asyncio_preload(L);
  /* No trio_asyncio_use_loop: the engine keeps its own libuv loop, which
  ** only runs inside trio_asyncio_step. */
  if (luaL_dostring(L, script) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return 1;
  }

  /* The game loop: runs for one second (60 frames), Lua or not. */
  for (frame = 0; frame < 60; frame++) {
    double frame_end = now() + FRAME, left;

    /* ... update and render the game here ... */
    if (frame % 10 == 0) {
      double t = trio_asyncio_backend_timeout(L); /* -1: no timer */
      lua_getglobal(L, "score");
      printf("[host] frame %2d  score %3d  ", frame, (int)lua_tointeger(L, -1));
      lua_pop(L, 1);
      if (t < 0) printf("no Lua timer pending\n");
      else printf("next Lua timer in %.1f ms\n", t * 1000);
    }

    /* Give the rest of the frame to Lua.  step runs whatever is ready and
    ** waits (at most `left` seconds) for timers or I/O; it returns 1 while
    ** the guest run is alive, 0 once it has finished. */
    while (lua_alive && (left = frame_end - now()) > 0)
      lua_alive = trio_asyncio_step(L, left);
    if (!lua_alive && (left = frame_end - now()) > 0)
      uv_sleep((unsigned)(left * 1000)); /* "vsync" */
  }

  printf("[host] %d frames, Lua run %s\n", frame, lua_alive ? "still alive" : "finished");
  lua_close(L); /* a still-alive run would be cancelled here */
  return 0;
}
