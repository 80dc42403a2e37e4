/*
** guest.c — guest runs started from Lua on a host libuv loop:
** trio.lowlevel.start_guest_run returns at once; done_callback gets
** (true, results...) or (false, error); argument errors; a second concurrent
** run (guest or not) is refused with a clear error; runs one after another
** work; trio_asyncio.start_guest_run opens an asyncio loop around fn.
*/
#include "host_test.h"

static uv_loop_t loop;

/* Start a run (the chunk), then let the host loop run until it ends. */
static void run_guest(lua_State *L, const char *chunk) {
  run_lua(L, chunk);
  uv_run(&loop, UV_RUN_DEFAULT);
  fflush(stdout);
}

int main(void) {
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = new_state();
  CHECK(trio_asyncio_use_loop(L, &loop) == 0);
  run_lua(L,
          "trio = require 'trio'; asyncio = require 'asyncio'; ta = require 'trio_asyncio'\n"
          "function show(tag) return function(...)\n"
          "  local t = table.pack(...)\n"
          "  for i = 1, t.n do t[i] = tostring(t[i]):match('^[^\\n]*') end\n"
          "  print(tag, t.n, table.concat(t, '|', 1, t.n))\n"
          "end end\n");

  /* Results (with a nil hole) and the args option. */
  run_guest(L, "local ran = false\n"
               "trio.lowlevel.start_guest_run(function(a, b) ran = true trio.sleep(0.01) return a, nil, b end,"
               " {args = {'x', 'y'}, done_callback = show('results')})\n"
               "print('fn_ran_before_return', ran)\n");

  /* An error of fn reaches done_callback as (false, err). */
  run_guest(L, "trio.lowlevel.start_guest_run(function() trio.sleep(0.01) error('boom', 0) end,"
               " {done_callback = show('error')})\n");
  run_guest(L, "trio.lowlevel.start_guest_run(function() trio.open_nursery(function(n)\n"
               "  n:start_soon(function() error('child failed', 0) end) trio.sleep_forever() end) end,"
               " {done_callback = function(ok, e) print('group', ok, trio.ExceptionGroup:is(e),"
               " tostring(e.exceptions and e.exceptions[1])) end})\n");

  /* Argument errors. */
  run_lua(L, "print('bad_fn', select(2, pcall(trio.lowlevel.start_guest_run, 42, {done_callback = print})))\n"
             "print('bad_opts', select(2, pcall(trio.lowlevel.start_guest_run, print)))\n"
             "print('bad_done', select(2, pcall(trio.lowlevel.start_guest_run, print, {})))\n");

  /* A second run while one is alive is refused; the first is unharmed. */
  run_guest(L,
            "trio.lowlevel.start_guest_run(function() trio.sleep(0.02) return 'first' end,"
            " {done_callback = show('first')})\n"
            "local ok, e = pcall(trio.lowlevel.start_guest_run, function() return 'second' end,"
            " {done_callback = show('second')})\n"
            "print('second_refused', ok, e)\n"
            "local ok2, e2 = pcall(ta.start_guest_run, function() end, {done_callback = show('second_ta')})\n"
            "print('second_ta_refused', ok2, e2)\n"
            "local ok3, e3 = pcall(trio.run, function() end)\n"
            "print('trio_run_refused', ok3, e3)\n");

  /* The same from inside the run. */
  run_guest(L, "trio.lowlevel.start_guest_run(function()\n"
               "  return pcall(trio.lowlevel.start_guest_run, print, {done_callback = print})\n"
               "end, {done_callback = show('nested')})\n");

  /* trio_asyncio.start_guest_run: fn(loop, args...) runs with an asyncio loop. */
  run_guest(L,
            "ta.start_guest_run(function(loop, a)\n"
            "  local cur = ta.current_loop()\n"
            "  local fut = loop:create_future()\n"
            "  loop:call_later(0.01, function() fut:set_result(a .. '+later') end)\n"
            "  local v = ta.run_aio_future(fut)\n"
            "  local w = ta.aio_as_trio(function() asyncio.sleep(0.01) return 'aio' end)()\n"
            "  return cur == loop, v, w\n"
            "end, {args = {'arg'}, done_callback = show('ta_results')})\n");
  run_guest(L, "ta.start_guest_run(function(loop)\n"
               "  return ta.aio_as_trio(function() asyncio.sleep(0.01) error('aio boom', 0) end)()\n"
               "end, {done_callback = show('ta_error')})\n");
  run_lua(L, "print('ta_bad_fn', select(2, pcall(ta.start_guest_run, 42, {done_callback = print})))\n");

  /* A done_callback that raises does not break the host loop; a later run works. */
  run_guest(L, "trio.lowlevel.start_guest_run(function() return 1 end,"
               " {done_callback = function() error('callback raised on purpose', 0) end})\n");
  run_guest(L, "trio.lowlevel.start_guest_run(function() trio.sleep(0.001) return 'again' end,"
               " {done_callback = show('after_raise')})\n");

  lua_close(L);
  uv_run(&loop, UV_RUN_NOWAIT);
  printf("loop_close %d\n", uv_loop_close(&loop));
  return 0;
}
