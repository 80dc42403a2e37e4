/*
** close.c — lua_close during a live guest run: no crash, the tasks are
** cancelled and their cleanup code (pcall'd waits, <close> variables inside
** a pcall'd function, nested nurseries) runs as far as it can without the
** loop; a host thread posting while the state closes gets error codes, never
** a crash; afterwards uv_loop_close succeeds (host-loop mode).
** argv[1]: "loop" (use_loop + uv_run) or "step" (trio_asyncio_step);
** argv[2]: "trio" (trio.lowlevel.start_guest_run) or "ta"
** (trio_asyncio.start_guest_run, with an asyncio task pending too).
*/
#include <stdatomic.h>
#include <string.h>

#include "host_test.h"

static lua_State *gL;
static atomic_int posts_ok, posts_refused;

static int l_note(lua_State *L) {
  printf("cleanup %s\n", luaL_checkstring(L, 1));
  fflush(stdout);
  return 0;
}

static void noop(lua_State *L, void *arg) { (void)L; (void)arg; }

/* Posts until refused (for at most 10 s): races with lua_close on the main
** thread. */
static void poster(void *arg) {
  double deadline = now_s() + 10;
  (void)arg;
  while (now_s() < deadline) {
    if (trio_asyncio_call_soon_threadsafe(gL, noop, NULL) < 0) {
      atomic_fetch_add(&posts_refused, 1);
      break;
    }
    if (atomic_fetch_add(&posts_ok, 1) > 100) uv_sleep(1); /* fair under valgrind */
  }
}

static const char *tasks =
    "local trio, asyncio, ta = require 'trio', require 'asyncio', require 'trio_asyncio'\n"
    "local function closer(name) return setmetatable({}, {__close = function() note(name) end}) end\n"
    "function body(loop)\n"
    "  local send, recv = trio.open_memory_channel(0)\n"
    "  trio.open_nursery(function(n)\n"
    "    n:start_soon(function() local ok, e = pcall(trio.sleep_forever)\n"
    "      note('A pcall ' .. tostring(ok) .. ' ' .. tostring(trio.Cancelled:is(e))) end)\n"
    "    n:start_soon(function() pcall(function() local x <close> = closer('B close') trio.sleep_forever() end) end)\n"
    "    n:start_soon(function() local x <close> = closer('C bare_close') trio.sleep_forever() end)\n"
    "    n:start_soon(function() trio.open_nursery(function(inner)\n"
    "      inner:start_soon(function() pcall(trio.sleep, 100) note('D nested') end)\n"
    "      trio.sleep_forever() end) end)\n"
    "    n:start_soon(function() pcall(recv.receive, recv) note('E channel') end)\n"
    "    n:start_soon(function() pcall(trio.sleep_forever)\n"
    "      local ok = pcall(trio.sleep, 1) note('F second_wait ' .. tostring(ok)) end)\n"
    "    n:start_soon(function() trio.CancelScope { shield = true }:run(trio.sleep, 100) note('G shielded') end)\n"
    "    if loop then\n"
    "      loop:create_task(function() pcall(asyncio.sleep, 100) note('H asyncio_task') end)\n"
    "      n:start_soon(function() pcall(ta.aio_as_trio(function() asyncio.sleep(100) end)) note('I aio_as_trio') end)\n"
    "    end\n"
    "    trio.sleep(0.01)\n"
    "    started = true\n"
    "    trio.sleep_forever()\n"
    "  end)\n"
    "end\n";

int main(int argc, char **argv) {
  int step_mode = argc > 1 && strcmp(argv[1], "step") == 0;
  int with_ta = argc > 2 && strcmp(argv[2], "ta") == 0;
  uv_loop_t loop;
  uv_thread_t th;
  int i;

  CHECK(uv_loop_init(&loop) == 0);
  gL = new_state();
  if (!step_mode) CHECK(trio_asyncio_use_loop(gL, &loop) == 0);
  lua_pushcfunction(gL, l_note);
  lua_setglobal(gL, "note");
  run_lua(gL, tasks);
  run_lua(gL, with_ta
                  ? "require('trio_asyncio').start_guest_run(body, {done_callback = function() note('done_callback') end})"
                  : "require('trio').lowlevel.start_guest_run(body, {done_callback = function() note('done_callback') end})");

  /* Let every task reach its wait (bounded).  On the host loop, NOWAIT: a
  ** UV_RUN_ONCE would go on to block until the next timer (100 s) after
  ** the tick that set `started`. */
  for (i = 0; i < 500 && !lua_int(gL, "started and 1 or 0"); i++) {
    if (step_mode) {
      trio_asyncio_step(gL, 0.01);
    } else {
      uv_run(&loop, UV_RUN_NOWAIT);
      uv_sleep(1);
    }
  }
  printf("started %lld\n", lua_int(gL, "started and 1 or 0"));

  CHECK(uv_thread_create(&th, poster, NULL) == 0);
  while (atomic_load(&posts_ok) < 100 && atomic_load(&posts_refused) == 0) uv_sleep(1);

  printf("closing\n");
  fflush(stdout);
  lua_close(gL);
  printf("closed\n");
  uv_thread_join(&th);
  printf("poster_refused %d\n", atomic_load(&posts_refused));
  printf("post_after_close %d\n", trio_asyncio_call_soon_threadsafe(gL, noop, NULL) < 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  printf("loop_close %d\n", uv_loop_close(&loop));
  return 0;
}
