/*
** multi_state.c — 4 threads, each with its own lua_State running a small
** trio, asyncio and bridge workload at the same time (for `make tsan`,
** issue #10): the runtime keeps no unsynchronized process-global state, so
** several states run their own engine at once (DESIGN.md 4.4).
**
** argv[1]: rounds per thread (default 20).  Each thread prints nothing;
** the main thread prints the totals.
*/
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "host_test.h"

#define NTHREADS 4

static int rounds;
static atomic_int ok_rounds, failures;
static uv_barrier_t start_line;
static char first_error[512];
static uv_mutex_t error_lock;

static const char *workload =
    "local trio, asyncio, ta = require 'trio', require 'asyncio', require 'trio_asyncio'\n"
    "local r = ...\n"
    "local got = trio.run(function()\n"
    "  local send, recv = trio.open_memory_channel(r % 3)\n"
    "  local lock, total = trio.Lock(), 0\n"
    "  trio.open_nursery(function(n)\n"
    "    for p = 1, 3 do n:start_soon(function(s)\n"
    "      local c <close> = s\n"
    "      for i = 1, 20 do s:send(i) lock:with(trio.sleep, 0) end\n"
    "    end, send:clone()) end\n"
    "    send:close()\n"
    "    n:start_soon(function() for v in recv:iter() do total = total + v end end)\n"
    "    trio.move_on_after(0.001, trio.sleep_forever)\n"
    "  end)\n"
    "  return total\n"
    "end)\n"
    "assert(got == 3 * 210, 'channel total ' .. tostring(got))\n"
    "local a = asyncio.run(function()\n"
    "  local r = asyncio.gather(function() asyncio.sleep(0.001) return 1 end, function() return 2 end)\n"
    "  return r[1] + r[2]\n"
    "end)\n"
    "assert(a == 3)\n"
    "local b = ta.run(function()\n"
    "  return ta.aio_as_trio(function() return ta.trio_as_aio(function() trio.sleep(0) return 4 end)() end)()\n"
    "end)\n"
    "assert(b == 4)\n"
    "collectgarbage(r % 2 == 0 and 'generational' or 'incremental')\n"
    "return true\n";

static void worker(void *arg) {
  lua_State *L = new_state();
  (void)arg;
  uv_barrier_wait(&start_line);
  for (int r = 0; r < rounds; r++) {
    int st = luaL_loadstring(L, workload);
    if (st == LUA_OK) {
      lua_pushinteger(L, r);
      st = lua_pcall(L, 1, 0, 0);
    }
    if (st != LUA_OK) {
      uv_mutex_lock(&error_lock);
      if (first_error[0] == 0) snprintf(first_error, sizeof first_error, "%s", lua_tostring(L, -1));
      uv_mutex_unlock(&error_lock);
      lua_pop(L, 1);
      atomic_fetch_add(&failures, 1);
    } else {
      atomic_fetch_add(&ok_rounds, 1);
    }
  }
  lua_close(L);
}

int main(int argc, char **argv) {
  uv_thread_t th[NTHREADS];
  rounds = argc > 1 ? atoi(argv[1]) : 20;
  uv_mutex_init(&error_lock);
  uv_barrier_init(&start_line, NTHREADS);
  for (int t = 0; t < NTHREADS; t++) CHECK(uv_thread_create(&th[t], worker, NULL) == 0);
  for (int t = 0; t < NTHREADS; t++) uv_thread_join(&th[t]);
  uv_barrier_destroy(&start_line);
  printf("rounds_ok %d of %d\n", atomic_load(&ok_rounds), NTHREADS * rounds);
  printf("failures %d\n", atomic_load(&failures));
  if (first_error[0]) printf("first_error %s\n", first_error);
  return 0;
}
