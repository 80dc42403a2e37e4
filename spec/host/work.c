/*
** work.c — trio_asyncio_push_work: C work on the engine's worker threads,
** waited for by Lua tasks of both flavors with req:wait(); done(L, arg)
** pushes the results in the waiting task; a wait that is cancelled or a
** request that is dropped gets done(NULL, arg), which frees arg.
*/
#include <stdatomic.h>
#include <string.h>

#include "host_test.h"

typedef struct add_job {
  lua_Integer a, b, sum;
  int ms;
  int fail;
} add_job;

static atomic_int freed_unread, ran_on_loop_thread_violations;
static uv_thread_t main_thread;

static void do_add(void *arg) {
  add_job *j = (add_job *)arg;
  uv_thread_t self = uv_thread_self();
  if (uv_thread_equal(&self, &main_thread)) atomic_fetch_add(&ran_on_loop_thread_violations, 1);
  uv_sleep((unsigned)j->ms);
  j->sum = j->a + j->b;
}

static int add_done(lua_State *L, void *arg) {
  add_job *j = (add_job *)arg;
  int n;
  if (L == NULL) { /* nobody waits: free it */
    atomic_fetch_add(&freed_unread, 1);
    free(j);
    return 0;
  }
  if (j->fail) {
    lua_pushliteral(L, "the C work failed");
    n = -1;
  } else {
    lua_pushinteger(L, j->sum);
    lua_pushliteral(L, "from C");
    n = 2;
  }
  free(j);
  return n;
}

/* slow_add(a, b [, ms [, fail]]) -> request */
static int slow_add(lua_State *L) {
  add_job *j = (add_job *)calloc(1, sizeof *j);
  int rc;
  CHECK(j != NULL);
  j->a = luaL_checkinteger(L, 1);
  j->b = luaL_checkinteger(L, 2);
  j->ms = (int)luaL_optinteger(L, 3, 50);
  j->fail = lua_toboolean(L, 4);
  rc = trio_asyncio_push_work(L, do_add, add_done, j);
  if (rc != 0) {
    free(j);
    return luaL_error(L, "push_work: %d", rc);
  }
  return 1;
}

static int freed(lua_State *L) {
  lua_pushinteger(L, atomic_load(&freed_unread));
  return 1;
}

int main(void) {
  lua_State *L = new_state();
  main_thread = uv_thread_self();
  printf("null_state %d\n", trio_asyncio_push_work(NULL, do_add, add_done, NULL));
  lua_register(L, "slow_add", slow_add);
  lua_register(L, "freed", freed);
  run_lua(L,
    "local trio, asyncio = require 'trio', require 'asyncio'\n"
    "local uv_now = os.clock\n"
    "print('trio', trio.run(function() return slow_add(20, 22):wait() end))\n"
    "print('trio_error', select(2, pcall(trio.run, function() return slow_add(1, 1, 1, true):wait() end)))\n"
    "local t0 = os.time()\n"
    "local par = trio.run(function()\n"
    "  local t = trio.current_time()\n"
    "  trio.open_nursery(function(n)\n"
    "    for i = 1, 4 do n:start_soon(function() assert(slow_add(i, i, 200):wait() == 2 * i) end) end\n"
    "  end)\n"
    "  return trio.current_time() - t\n"
    "end)\n"
    "print('parallel', par < 0.6)\n"
    "print('asyncio', asyncio.run(function() return slow_add(1, 2):wait() end))\n"
    "local s = trio.run(function()\n"
    "  return trio.move_on_after(0.05, function() slow_add(1, 2, 300):wait(true) end)\n"
    "end)\n"
    "print('cancelled', s.cancelled_caught)\n"
    "local dropped = slow_add(5, 5, 10)\n"
    "dropped = nil\n"
    "collectgarbage() collectgarbage()\n"
    "trio.run(function() trio.sleep(0.5) end)\n"
    "print('freed', freed())\n");
  printf("loop_thread_violations %d\n", atomic_load(&ran_on_loop_thread_violations));
  lua_close(L);
  printf("closed\n");
  return 0;
}
