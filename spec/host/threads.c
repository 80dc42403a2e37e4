/*
** threads.c — trio_asyncio_call_soon_threadsafe under load: 8 host threads
** each post 10,000 callbacks while a guest run is alive; every callback runs
** exactly once, on the loop's thread, in each thread's posting order.  A
** callback that raises does not stop the others.  Posting after the run
** ended, or after lua_close, returns a negative code.
** argv[1]: "loop" (trio_asyncio_use_loop + uv_run) or "step" (own loop,
** driven by trio_asyncio_step).
*/
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "host_test.h"

#define NTHREADS 8
#define NPOSTS 10000
#define TOTAL (NTHREADS * NPOSTS)

static lua_State *gL;
static uv_thread_t loop_thread;
static uv_barrier_t start_line;
static atomic_int ran, failed_posts, wrong_thread, wrong_state, threads_done;
static unsigned char seen[TOTAL];
static int last_seen[NTHREADS];
static int order_violations;

static void on_post(lua_State *L, void *arg) {
  uintptr_t idx = (uintptr_t)arg;
  uv_thread_t self = uv_thread_self();
  int t = (int)(idx / NPOSTS), i = (int)(idx % NPOSTS);
  if (!uv_thread_equal(&self, &loop_thread)) atomic_fetch_add(&wrong_thread, 1);
  if (L != gL) atomic_fetch_add(&wrong_state, 1);
  seen[idx]++;
  if (i < last_seen[t]) order_violations++;
  last_seen[t] = i;
  if (atomic_fetch_add(&ran, 1) + 1 == TOTAL) {
    lua_getglobal(L, "all_done");
    lua_getfield(L, -1, "set");
    lua_insert(L, -2);
    lua_call(L, 1, 0);
  }
}

static void on_post_raises(lua_State *L, void *arg) {
  (void)arg;
  luaL_error(L, "raised on purpose by a posted callback");
}

static void poster(void *arg) {
  uintptr_t t = (uintptr_t)arg;
  uv_barrier_wait(&start_line); /* all threads post at the same time */
  for (uintptr_t i = 0; i < NPOSTS; i++)
    if (trio_asyncio_call_soon_threadsafe(gL, on_post, (void *)(t * NPOSTS + i)) != 0)
      atomic_fetch_add(&failed_posts, 1);
  atomic_fetch_add(&threads_done, 1);
}

/* Give up early (instead of waiting for the Lua timeout) when posts failed. */
static int hopeless(void) {
  return atomic_load(&threads_done) == NTHREADS && atomic_load(&failed_posts) > 0;
}

static void on_watchdog(uv_timer_t *t) {
  if (hopeless()) uv_stop(t->loop);
}

static void noop(lua_State *L, void *arg) { (void)L; (void)arg; }

int main(int argc, char **argv) {
  int step_mode = argc > 1 && strcmp(argv[1], "step") == 0;
  uv_loop_t loop;
  uv_thread_t th[NTHREADS];
  uv_timer_t watchdog;
  int dup = 0, missing = 0;
  double t0;

  loop_thread = uv_thread_self();
  for (int t = 0; t < NTHREADS; t++) last_seen[t] = -1;
  CHECK(uv_loop_init(&loop) == 0);
  gL = new_state();
  if (!step_mode) CHECK(trio_asyncio_use_loop(gL, &loop) == 0);
  run_lua(gL, "trio = require 'trio'\n");

  printf("before_run %d\n", trio_asyncio_call_soon_threadsafe(gL, noop, NULL) < 0);
  printf("null_fn %d\n", trio_asyncio_call_soon_threadsafe(gL, NULL, NULL) < 0);

  /* The run waits (at most 30 s) for the last callback, while another task
  ** keeps the scheduler busy with short sleeps (ticks counts its steps: a
  ** drain may run all 80,000 posts before its first sleep ends). */
  run_lua(gL,
          "all_done = trio.Event()\n"
          "trio.lowlevel.start_guest_run(function()\n"
          "  local ticks = 0\n"
          "  trio.open_nursery(function(n)\n"
          "    n:start_soon(function() repeat ticks = ticks + 1; trio.sleep(0.001) until all_done:is_set() end)\n"
          "    trio.move_on_after(20, function() all_done:wait() end)\n"
          "    all_done:set()\n"
          "  end)\n"
          "  return ticks\n"
          "end, {done_callback = function(ok, ticks) print('done', ok, ticks > 0) end})\n");

  printf("raising_post %d\n", trio_asyncio_call_soon_threadsafe(gL, on_post_raises, NULL));
  uv_barrier_init(&start_line, NTHREADS);
  for (uintptr_t t = 0; t < NTHREADS; t++) CHECK(uv_thread_create(&th[t], poster, (void *)t) == 0);

  t0 = now_s();
  if (step_mode) {
    while (trio_asyncio_step(gL, 0.01) && !hopeless() && now_s() - t0 < 30) {
    }
  } else {
    uv_timer_init(&loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 10, 10);
    uv_unref((uv_handle_t *)&watchdog);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&watchdog, NULL);
  }
  for (int t = 0; t < NTHREADS; t++) uv_thread_join(&th[t]);
  uv_barrier_destroy(&start_line);

  for (int k = 0; k < TOTAL; k++) {
    if (seen[k] == 0) missing++;
    if (seen[k] > 1) dup++;
  }
  printf("failed_posts %d\n", atomic_load(&failed_posts));
  printf("ran %d of %d\n", atomic_load(&ran), TOTAL);
  printf("missing %d duplicated %d\n", missing, dup);
  printf("order_violations %d\n", order_violations);
  printf("wrong_thread %d wrong_state %d\n", atomic_load(&wrong_thread), atomic_load(&wrong_state));
  printf("in_time %d\n", now_s() - t0 < 60);

  printf("after_run %d\n", trio_asyncio_call_soon_threadsafe(gL, noop, NULL) < 0);
  lua_close(gL);
  printf("after_close %d\n", trio_asyncio_call_soon_threadsafe(gL, noop, NULL) < 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  printf("loop_close %d\n", uv_loop_close(&loop));
  return 0;
}
