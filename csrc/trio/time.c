/*
** time.c — Trio's time: current_time, the sleeping primitives, MockClock
** objects and wait_all_tasks_blocked.  A sleeping task sits in the
** engine's deadline heap through its own embedded timer, so a sleep
** allocates nothing.
*/
#include <math.h>
#include <string.h>

#include "trio/trio.h"

/* ---- MockClock ---- */

static ta_clock *checkclock(lua_State *L, int idx) {
  return (ta_clock *)luaL_checkudata(L, idx, TA_CLOCK_MT);
}

/* MockClock(rate, autojump_threshold) */
static int l_clock_new(lua_State *L) {
  double rate = luaL_optnumber(L, 1, 0.0);
  double jump = luaL_optnumber(L, 2, HUGE_VAL);
  ta_clock *c;
  luaL_argcheck(L, rate >= 0, 1, "rate must be >= 0");
  luaL_argcheck(L, jump >= 0, 2, "autojump_threshold must be >= 0");
  c = (ta_clock *)lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->base_ns = uv_hrtime();
  c->rate = rate;
  c->autojump = jump;
  luaL_setmetatable(L, TA_CLOCK_MT);
  return 1;
}

static int l_clock_jump(lua_State *L) {
  ta_clock *c = checkclock(L, 1);
  double s = luaL_checknumber(L, 2);
  luaL_argcheck(L, s >= 0, 2, "time can't go backwards");
  ta_clock_jump(c, s);
  return 0;
}

static int l_clock_current_time(lua_State *L) {
  lua_pushnumber(L, ta_clock_now(checkclock(L, 1)));
  return 1;
}

/* clock:start_clock(): Trio's Clock interface; nothing to do here. */
static int l_clock_start(lua_State *L) {
  checkclock(L, 1);
  return 0;
}

/* clock:deadline_to_sleep_time(deadline) -> real seconds to wait for the
** clock to reach deadline: 0 once it has, a very long time while the
** clock stands still (rate 0), as Trio's MockClock. */
static int l_clock_sleep_time(lua_State *L) {
  ta_clock *c = checkclock(L, 1);
  double virtual_timeout = luaL_checknumber(L, 2) - ta_clock_now(c);
  if (virtual_timeout <= 0) lua_pushnumber(L, 0);
  else if (c->rate > 0) lua_pushnumber(L, virtual_timeout / c->rate);
  else lua_pushnumber(L, 999999999);
  return 1;
}

static int clock_index(lua_State *L) {
  ta_clock *c = checkclock(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "rate") == 0) lua_pushnumber(L, c->rate);
  else if (strcmp(k, "autojump_threshold") == 0) lua_pushnumber(L, c->autojump);
  else {
    luaL_getmetafield(L, 1, "__methods");
    lua_getfield(L, -1, k);
  }
  return 1;
}

static int clock_newindex(lua_State *L) {
  ta_clock *c = checkclock(L, 1);
  const char *k = luaL_checkstring(L, 2);
  double v = luaL_checknumber(L, 3);
  luaL_argcheck(L, v >= 0, 3, "must be >= 0");
  if (strcmp(k, "rate") == 0) {
    ta_clock_rebase(c);
    c->rate = v;
  } else if (strcmp(k, "autojump_threshold") == 0) {
    c->autojump = v;
  } else {
    return luaL_error(L, "MockClock has no field '%s'", k);
  }
  return 0;
}

/* ---- time and sleeping ---- */

/* current_clock() -> the clock object of the run, nil for the real one */
static int l_current_clock(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  if (!E->running) return luaL_error(L, "current_clock: must be called inside trio.run");
  if (E->clock_ref == LUA_NOREF || E->clock_ref == LUA_REFNIL) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->clock_ref);
  return 1;
}

/* monotonic() -> the engine's real clock (seconds), in or out of a run */
static int l_monotonic(lua_State *L) {
  lua_pushnumber(L, (double)uv_hrtime() / 1e9);
  return 1;
}

static int l_current_time(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  if (!E->running) return luaL_error(L, "trio.current_time: must be called inside trio.run");
  lua_pushnumber(L, ta_now(E));
  return 1;
}

static int sleep_abort(lua_State *L, ta_task *t) {
  (void)L;
  ta_heap_remove(&t->E->timers, &t->timer);
  return TA_ABORT_SUCCEEDED;
}

static int sleep_until(lua_State *L, ta_task *t, double deadline) {
  if (deadline < HUGE_VAL) {
    t->timer.when = deadline;
    if (ta_heap_push(&t->E->timers, &t->timer) != 0) return luaL_error(L, "not enough memory");
  }
  t->wait = &t->timer;
  return ta_park(L, t, sleep_abort);
}

static double checktime(lua_State *L, int idx) {
  double v = luaL_checknumber(L, idx);
  luaL_argcheck(L, v == v, idx, "must not be NaN");
  return v;
}

static int l_sleep(lua_State *L) {
  double s = checktime(L, 1);
  ta_task *t;
  luaL_argcheck(L, s >= 0, 1, "sleep length must be non-negative");
  t = ta_async_check(L, "trio.sleep", TA_TRIO);
  if (s == 0) return ta_checkpoint(L, t);
  return sleep_until(L, t, ta_now(t->E) + s);
}

static int l_sleep_until(lua_State *L) {
  double d = checktime(L, 1);
  return sleep_until(L, ta_async_check(L, "trio.sleep_until", TA_TRIO), d);
}

static int l_sleep_forever(lua_State *L) {
  return sleep_until(L, ta_async_check(L, "trio.sleep_forever", TA_TRIO), HUGE_VAL);
}

/* wait_all_tasks_blocked([cushion]): woken by the engine once every other
** task has been blocked for `cushion` real seconds (see engine/run.c); the
** cushion waits in the task's sleep timer, unused meanwhile. */
static int l_wait_all_tasks_blocked(lua_State *L) {
  ta_task *t;
  double cushion = luaL_optnumber(L, 1, 0.0);
  luaL_argcheck(L, cushion >= 0, 1, "cushion must be >= 0");
  t = ta_async_check(L, "trio.testing.wait_all_tasks_blocked", TA_TRIO);
  t->timer.when = cushion;
  return ta_lot_park(L, t, &t->E->blocked_waiters);
}

static const luaL_Reg clock_funcs[] = {
  {"MockClock", l_clock_new},
  {"current_time", l_current_time},
  {"current_clock", l_current_clock},
  {"monotonic", l_monotonic},
  {"sleep", l_sleep},
  {"sleep_until", l_sleep_until},
  {"sleep_forever", l_sleep_forever},
  {"wait_all_tasks_blocked", l_wait_all_tasks_blocked},
  {NULL, NULL}
};

static const luaL_Reg clock_meta[] = {
  {"__index", clock_index},
  {"__newindex", clock_newindex},
  {NULL, NULL}
};

static const luaL_Reg clock_methods[] = {
  {"jump", l_clock_jump},
  {"current_time", l_clock_current_time},
  {"start_clock", l_clock_start},
  {"deadline_to_sleep_time", l_clock_sleep_time},
  {NULL, NULL}
};

int ta_open_time(lua_State *L) {
  ta_newclass(L, TA_CLOCK_MT, clock_meta, clock_methods, "__methods");
  lua_pop(L, 1);
  ta_register(L, clock_funcs);
  return 0;
}
