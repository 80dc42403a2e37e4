/*
** use_loop.c — trio_asyncio_use_loop: a guest run's tasks progress while the
** host runs uv_run on its own loop; the host's timer keeps firing meanwhile;
** the run ending lets uv_run return (also when the main task leaves a
** system task behind); after lua_close and one uv_run NOWAIT no
** handle of ours is left and uv_loop_close returns 0.
*/
#include "host_test.h"

static lua_State *gL;
static int host_ticks;        /* host timer firings */
static int ticks_during_run;  /* ... while the guest run was alive */
static int run_done;

static void on_host_timer(uv_timer_t *t) {
  host_ticks++;
  if (!run_done) ticks_during_run++;
  /* The host may touch the Lua state from its own callbacks (same thread). */
  lua_pushinteger(gL, host_ticks);
  lua_setglobal(gL, "host_ticks");
  if (run_done) uv_timer_stop(t);
}

static int l_mark_done(lua_State *L) { (void)L; run_done = 1; return 0; }

static void count_handle(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) (*(int *)arg)++;
}

int main(void) {
  uv_loop_t loop;
  uv_timer_t timer;
  int rc, left = 0;
  double t0;

  CHECK(uv_loop_init(&loop) == 0);
  gL = new_state();
  printf("use_loop_null %d\n", trio_asyncio_use_loop(gL, NULL));
  printf("use_loop %d\n", trio_asyncio_use_loop(gL, &loop));
  printf("use_loop_again %d\n", trio_asyncio_use_loop(gL, &loop));
  {
    uv_loop_t other; /* switching to another loop once on a host loop: refused */
    CHECK(uv_loop_init(&other) == 0);
    printf("use_loop_other %d\n", trio_asyncio_use_loop(gL, &other) < 0);
    CHECK(uv_loop_close(&other) == 0);
  }
  lua_pushcfunction(gL, l_mark_done);
  lua_setglobal(gL, "mark_done");

  /* Before any run, the engine keeps the host loop from nothing: uv_run returns. */
  printf("idle_uv_run %d\n", uv_run(&loop, UV_RUN_NOWAIT));

  uv_timer_init(&loop, &timer);
  uv_timer_start(&timer, on_host_timer, 5, 5);

  /* Three tasks sleep in small steps; each records the host ticks it saw, so
  ** we can tell that the host's timer fired between the tasks' steps. */
  run_lua(gL,
          "local trio = require 'trio'\n"
          "host_ticks = 0\n"
          "steps, seen = 0, {}\n"
          "trio.lowlevel.start_guest_run(function(n)\n"
          "  trio.open_nursery(function(nursery)\n"
          "    for i = 1, n do nursery:start_soon(function()\n"
          "      for k = 1, 10 do trio.sleep(0.01); steps = steps + 1; seen[#seen + 1] = host_ticks end\n"
          "    end) end\n"
          "  end)\n"
          "  return 'finished', n\n"
          "end, {args = {3}, done_callback = function(ok, a, b)\n"
          "  print('done', ok, a, b); mark_done()\n"
          "end})\n"
          "print('start_returned steps', steps)\n");

  t0 = now_s();
  rc = uv_run(&loop, UV_RUN_DEFAULT); /* returns once the run ended and our timer stopped */
  printf("uv_run_returned %d\n", rc);
  printf("run_done %d\n", run_done);
  printf("lua_steps %lld\n", lua_int(gL, "steps"));
  printf("distinct_ticks_seen %lld\n",
         lua_int(gL, "(function() local d, last = 0 for _, v in ipairs(seen) do "
                     "if v ~= last then d = d + 1; last = v end end return d end)()"));
  printf("ticks_during_run %d\n", ticks_during_run);
  printf("elapsed_ok %d\n", now_s() - t0 >= 0.09 && now_s() - t0 < 10);

  /* A second guest run on the same host loop works too. */
  run_done = 0;
  run_lua(gL, "require('trio').lowlevel.start_guest_run(function() require('trio').sleep(0.01) return 2 end,"
              " {done_callback = function(ok, v) print('done2', ok, v); mark_done() end})\n");
  uv_run(&loop, UV_RUN_DEFAULT);
  printf("second_run_done %d\n", run_done);

  /* wait_all_tasks_blocked(cushion) with nothing else to wake the host's
  ** loop: the engine's timer wakes it when the cushion has passed. */
  run_done = 0;
  t0 = now_s();
  run_lua(gL, "local trio = require('trio')\n"
              "trio.lowlevel.start_guest_run(function()\n"
              "  trio.open_nursery(function(n)\n"
              "    n:start_soon(trio.sleep, 0.02)\n"
              "    trio.testing.wait_all_tasks_blocked(0.05)\n"
              "  end)\n"
              "  return 'idle'\n"
              "end, {done_callback = function(ok, v) print('done3', ok, v); mark_done() end})\n");
  uv_run(&loop, UV_RUN_DEFAULT);
  printf("cushion_run_done %d in_time %d\n", run_done, now_s() - t0 >= 0.06 && now_s() - t0 < 5);

  /* The main task returns while a system task sleeps for ever: the host
  ** does not block after that step, the next one cancels the system task
  ** and the run ends. */
  run_done = 0;
  run_lua(gL, "local trio = require('trio')\n"
              "trio.lowlevel.start_guest_run(function()\n"
              "  trio.lowlevel.spawn_system_task(trio.sleep_forever)\n"
              "  trio.sleep(0.01)\n"
              "  return 'main'\n"
              "end, {done_callback = function(ok, v) print('done4', ok, v); mark_done() end})\n");
  uv_run(&loop, UV_RUN_DEFAULT);
  printf("system_task_run_done %d\n", run_done);

  /* Close the state with the run over, then let libuv run our close callbacks. */
  uv_close((uv_handle_t *)&timer, NULL);
  lua_close(gL);
  uv_run(&loop, UV_RUN_NOWAIT);
  uv_walk(&loop, count_handle, &left);
  printf("handles_left %d\n", left);
  printf("loop_close %d\n", uv_loop_close(&loop));
  return 0;
}
