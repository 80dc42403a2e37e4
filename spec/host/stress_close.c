/*
** stress_close.c — trio_asyncio_call_soon_threadsafe from 8 threads while
** states open and close on the main thread (for `make tsan`, issue #10).
**
** Round after round, the main thread makes a state, starts a guest run (on
** its own loop, stepped, or on a host loop), publishes the state to the
** posting threads, drives the run a little, and closes the state while the
** threads keep posting to it.  A post must either be accepted (and then run
** once on the loop's thread, or be dropped by the close) or be refused with
** a negative code; never crash, never run on another thread, never run after
** its state was closed.
**
** argv[1]: number of rounds (default 40).
*/
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "host_test.h"

#define NTHREADS 8

static _Atomic(lua_State *) current;    /* the state the threads post to */
static atomic_int stop, accepted, refused, ran, wrong_thread, after_close;
static atomic_int closing_round;       /* round whose state is being closed */
static uv_thread_t main_thread;

static void on_post(lua_State *L, void *arg) {
  uv_thread_t self = uv_thread_self();
  (void)L;
  (void)arg;
  if (!uv_thread_equal(&self, &main_thread)) atomic_fetch_add(&wrong_thread, 1);
  atomic_fetch_add(&ran, 1);
}

/* Posts as fast as it can, with a 1 ms pause every 50 posts so the loop's
** thread keeps up (the queue is unbounded). */
static void poster(void *arg) {
  unsigned n = 0;
  (void)arg;
  while (!atomic_load(&stop)) {
    lua_State *L = atomic_load(&current);
    if (L == NULL || ++n % 50 == 0) {
      uv_sleep(1);
      if (L == NULL) continue;
    }
    if (trio_asyncio_call_soon_threadsafe(L, on_post, NULL) == 0) atomic_fetch_add(&accepted, 1);
    else atomic_fetch_add(&refused, 1);
  }
}

/* A post that runs although its state is gone would be caught here: it
** checks that the state it runs on is the one being driven. */
static lua_State *driven;
static void check_state(lua_State *L, void *arg) {
  (void)arg;
  if (L != driven) atomic_fetch_add(&after_close, 1);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 40;
  uv_thread_t th[NTHREADS];
  int r;
  double t0 = now_s();
  main_thread = uv_thread_self();
  for (int t = 0; t < NTHREADS; t++) CHECK(uv_thread_create(&th[t], poster, NULL) == 0);

  for (r = 0; r < rounds && now_s() - t0 < 40; r++) {
    int host = r % 2 == 1;
    uv_loop_t loop;
    lua_State *L = new_state();
    if (host) {
      CHECK(uv_loop_init(&loop) == 0);
      CHECK(trio_asyncio_use_loop(L, &loop) == 0);
    }
    run_lua(L, r % 3 == 2
                   ? "local ta, asyncio = require 'trio_asyncio', require 'asyncio'\n"
                     "ta.start_guest_run(function(loop)\n"
                     "  ta.aio_as_trio(function() while true do asyncio.sleep(0.0005) end end)()\n"
                     "end, {done_callback = function() end})\n"
                   : "local trio = require 'trio'\n"
                     "trio.lowlevel.start_guest_run(function()\n"
                     "  trio.open_nursery(function(n)\n"
                     "    for i = 1, 4 do n:start_soon(function() while true do trio.sleep(0.0005) end end) end\n"
                     "  end)\n"
                     "end, {done_callback = function() end})\n");
    driven = L;
    atomic_store(&current, L);
    for (int k = 0; k < 20; k++) {
      int rc = trio_asyncio_call_soon_threadsafe(L, check_state, NULL);
      if (rc != 0) printf("round %d step %d: post rc %d\n", r, k, rc);
      CHECK(rc == 0);
      if (host) uv_run(&loop, UV_RUN_NOWAIT);
      else trio_asyncio_step(L, 0.001);
    }
    /* Close while the threads post: they see the state go away. */
    atomic_store(&closing_round, r);
    lua_close(L);
    atomic_store(&current, NULL);
    driven = NULL;
    CHECK(trio_asyncio_call_soon_threadsafe(L, on_post, NULL) < 0);
    if (host) {
      uv_run(&loop, UV_RUN_NOWAIT);
      CHECK(uv_loop_close(&loop) == 0);
    }
  }
  atomic_store(&stop, 1);
  for (int t = 0; t < NTHREADS; t++) uv_thread_join(&th[t]);
  printf("rounds %d\n", r);
  printf("accepted_some %d refused_some %d\n", atomic_load(&accepted) > 0, atomic_load(&refused) > 0);
  printf("ran_at_most_accepted %d\n", atomic_load(&ran) <= atomic_load(&accepted));
  printf("wrong_thread %d after_close %d\n", atomic_load(&wrong_thread), atomic_load(&after_close));
  printf("posted %d refused %d ran %d\n", atomic_load(&accepted), atomic_load(&refused), atomic_load(&ran));
  return 0;
}
