/*
** step.c — a hand-written main loop: trio_asyncio_step returns 1 while a
** guest run is alive and 0 when there is none, waits at most its timeout,
** does not wait with 0, and waits for the next event with a negative
** timeout; trio_asyncio_backend_timeout reports the next deadline (-1 when
** idle); trio_asyncio_backend_fd is a pollable fd that becomes readable
** when a host thread posts a call.
*/
#include <poll.h>

#include "host_test.h"

static lua_State *gL;

static void set_event(lua_State *L, void *arg) {
  (void)arg;
  lua_getglobal(L, "ev");
  lua_getfield(L, -1, "set");
  lua_insert(L, -2);
  lua_call(L, 1, 0);
}

static void poster(void *arg) {
  (void)arg;
  uv_sleep(50);
  printf("post_rc %d\n", trio_asyncio_call_soon_threadsafe(gL, set_event, NULL));
}

int main(void) {
  double t0, dt, to;
  int alive, steps;

  gL = new_state();
  run_lua(gL, "trio = require 'trio'\n");

  /* No run: step returns 0 at once, nothing is due. */
  t0 = now_s();
  printf("step_no_run %d\n", trio_asyncio_step(gL, 0.5));
  printf("step_no_run_fast %d\n", now_s() - t0 < 0.25);
  printf("timeout_idle %g\n", trio_asyncio_backend_timeout(gL));
  printf("backend_fd_valid %d\n", trio_asyncio_backend_fd(gL) >= 0);

  /* A run whose only task sleeps 0.3 s. */
  run_lua(gL, "trio.lowlevel.start_guest_run(function() trio.sleep(0.3) return 'slept' end,"
              " {done_callback = function(ok, v) print('done', ok, v) end})\n");
  printf("timeout_ready %g\n", trio_asyncio_backend_timeout(gL)); /* the root task is runnable */
  printf("step_first %d\n", trio_asyncio_step(gL, 0));              /* runs it: it goes to sleep */
  to = trio_asyncio_backend_timeout(gL);
  printf("timeout_sleeping_ok %d\n", to > 0.1 && to <= 0.3);

  t0 = now_s();
  alive = trio_asyncio_step(gL, 0);
  dt = now_s() - t0;
  printf("step_zero %d fast %d\n", alive, dt < 0.1);

  t0 = now_s();
  alive = trio_asyncio_step(gL, 0.05);
  dt = now_s() - t0;
  printf("step_bounded %d in_bounds %d\n", alive, dt >= 0.03 && dt < 0.25);

  /* Step until the run ends; it must not end before its deadline. */
  t0 = now_s();
  steps = 0;
  while ((alive = trio_asyncio_step(gL, 0.02)) == 1 && steps < 1000) steps++;
  dt = now_s() - t0;
  printf("run_ended %d\n", alive == 0);
  printf("not_early %d not_late %d\n", dt >= 0.15, dt < 3.0);
  printf("step_after %d\n", trio_asyncio_step(gL, 0.01));
  printf("timeout_after %g\n", trio_asyncio_backend_timeout(gL));

  /* A negative timeout waits until something happens (here: a timer). */
  run_lua(gL, "trio.lowlevel.start_guest_run(function() trio.sleep(0.1) end,"
              " {done_callback = function(ok) print('done_neg', ok) end})\n");
  trio_asyncio_step(gL, 0);
  t0 = now_s();
  alive = trio_asyncio_step(gL, -1);
  dt = now_s() - t0;
  printf("step_negative_waited %d\n", dt >= 0.05 && dt < 3.0);
  for (steps = 0; alive && steps < 100; steps++) alive = trio_asyncio_step(gL, 0.05);
  printf("neg_run_ended %d\n", alive == 0);

  /* A polling host: poll(backend_fd, backend_timeout), then step(0).  The
  ** task waits for an event set by a host thread's posted call; the post
  ** makes the backend fd readable. */
  {
    uv_thread_t th;
    int fd = trio_asyncio_backend_fd(gL), woke_by_fd = 0;
    run_lua(gL, "ev = trio.Event()\n"
                "trio.lowlevel.start_guest_run(function() trio.move_on_after(5, function() ev:wait() end)"
                " return ev:is_set() end, {done_callback = function(ok, v) print('done_poll', ok, v) end})\n");
    trio_asyncio_step(gL, 0);
    CHECK(uv_thread_create(&th, poster, NULL) == 0);
    t0 = now_s();
    for (steps = 0, alive = 1; alive && steps < 10000; steps++) {
      struct pollfd p = {fd, POLLIN, 0};
      double t = trio_asyncio_backend_timeout(gL);
      int ms = t < 0 ? 1000 : (int)(t * 1000) + 1;
      if (poll(&p, 1, ms) > 0 && (p.revents & POLLIN)) woke_by_fd = 1;
      alive = trio_asyncio_step(gL, 0);
    }
    uv_thread_join(&th);
    printf("poll_woke_by_fd %d\n", woke_by_fd);
    printf("poll_fast %d\n", now_s() - t0 < 3.0);
  }

  lua_close(gL);
  printf("closed\n");
  return 0;
}
