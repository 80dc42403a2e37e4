/*
** host_uv.c — a C program that owns a libuv loop and embeds trio-asyncio in it.
**
**   * the host's own uv_timer keeps ticking while Lua tasks run;
**   * Lua tasks run as a *guest run* on the host's loop (no second loop, no
**     thread): trio.lowlevel.start_guest_run returns at once, and its tasks
**     progress whenever the host runs uv_run;
**   * a host thread wakes a Lua task with trio_asyncio_call_soon_threadsafe;
**   * after lua_close, one uv_run(NOWAIT) lets our handles close, and
**     uv_loop_close succeeds.
**
** Build: make examples   Run: build/examples/host_uv
*/
#include <stdio.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

#include "trio_asyncio.h"

static lua_State *L;
static uv_timer_t host_timer;
static int run_finished;

/* The host's own work: a timer that keeps firing while Lua runs. */
static void on_host_timer(uv_timer_t *t) {
  static int n;
  printf("[host] timer tick %d\n", ++n);
  if (run_finished) uv_timer_stop(t); /* let uv_run return */
}

/* Called from Lua's done_callback (registered below as host_run_finished). */
static int l_run_finished(lua_State *L) {
  (void)L;
  run_finished = 1;
  return 0;
}

/* Runs on the loop's thread, posted by the worker thread: wakes a Lua task
** by setting the Event it waits on. */
static void wake_lua(lua_State *L, void *arg) {
  lua_pushstring(L, (const char *)arg);
  lua_setglobal(L, "message");
  lua_getglobal(L, "wakeup");          /* wakeup:set() */
  lua_getfield(L, -1, "set");
  lua_insert(L, -2);
  lua_call(L, 1, 0);
}

/* A host thread: does some "work", then posts to the Lua side.  This is
** the only function of the API that may be called from another thread. */
static void worker(void *arg) {
  (void)arg;
  uv_sleep(250);
  if (trio_asyncio_call_soon_threadsafe(L, wake_lua, "hello from a host thread") != 0)
    fprintf(stderr, "[host] post failed\n");
}

static const char *script =
    "local trio = require 'trio'\n"
    "wakeup = trio.Event()\n"
    "trio.lowlevel.start_guest_run(function()\n"
    "  trio.open_nursery(function(nursery)\n"
    "    nursery:start_soon(function()\n"
    "      for i = 1, 4 do trio.sleep(0.1); print('[lua]  worker step ' .. i) end\n"
    "    end)\n"
    "    nursery:start_soon(function()\n"
    "      wakeup:wait()\n"
    "      print('[lua]  woken up: ' .. message)\n"
    "    end)\n"
    "  end)\n"
    "  return 'all tasks done'\n"
    "end, {done_callback = function(ok, result)\n"
    "  print('[lua]  run finished:', ok, result)\n"
    "  host_run_finished()\n"
    "end})\n"
    "print('[lua]  start_guest_run returned at once')\n";

int main(void) {
  uv_loop_t loop;
  uv_thread_t thread;

  uv_loop_init(&loop);
  L = luaL_newstate();
  luaL_openlibs(L);
  trio_asyncio_preload(L);            /* require 'trio' etc. need no files */
  trio_asyncio_use_loop(L, &loop);    /* before starting any run */
  lua_register(L, "host_run_finished", l_run_finished);

  uv_timer_init(&loop, &host_timer);
  uv_timer_start(&host_timer, on_host_timer, 70, 70);

  if (luaL_dostring(L, script) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return 1;
  }
  uv_thread_create(&thread, worker, NULL);

  /* The host's main loop: runs the host's timer and the Lua tasks alike.
  ** The live guest run keeps the loop alive; it returns once the run has
  ** finished and the host's timer has stopped. */
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_thread_join(&thread);

  /* No run is active any more: posting now is refused (UV_ECANCELED). */
  printf("[host] post after the run: %s\n",
         uv_err_name(trio_asyncio_call_soon_threadsafe(L, wake_lua, "too late")));

  uv_close((uv_handle_t *)&host_timer, NULL);
  lua_close(L);                       /* closes our handles on the host loop */
  uv_run(&loop, UV_RUN_NOWAIT);       /* ... whose close callbacks run here */
  printf("[host] uv_loop_close: %d\n", uv_loop_close(&loop));
  return 0;
}
