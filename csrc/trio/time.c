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
  if (strcmp(k, "rate") == 0) {
    luaL_argcheck(L, v >= 0, 3, "rate must be >= 0");
    ta_clock_rebase(c);
    c->rate = v;
  } else if (strcmp(k, "autojump_threshold") == 0) {
    luaL_argcheck(L, v >= 0, 3, "autojump_threshold must be >= 0");
    c->autojump = v;
  } else {
    return luaL_error(L, "MockClock has no field '%s'", k);
  }
  return 0;
}

/* ---- a clock of the user's ----
** trio.lowlevel.run{clock=obj} with an object that has Trio's Clock
** methods (start_clock, current_time, deadline_to_sleep_time): the engine
** gets a ta_clock whose `now` and `sleep_time` call them.  They are called
** from wherever the engine reads the time, so they run on a thread of
** their own, in protected mode.  The first error (or a result that is not
** a number) is raised by a run_sync_soon callback, which ends the run
** with TrioInternalError as Trio does; the clock then stands still at its
** last time.  A call made while one is running (the clock's own code
** reading trio.current_time) gets the last time too.  The Lua face calls
** start_clock itself, before the run starts. */
typedef struct userclock {
  ta_clock c;        /* first: the engine sees a ta_clock */
  ta_engine *E;
  lua_State *T;      /* its thread: the object at index 1 (user value 1 anchors it) */
  double last;       /* its last good time */
  int busy, failed;
} userclock;

static int raise_upvalue(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  return lua_error(L);
}

/* obj, name [, arg] -> obj:name(arg), run in protected mode (even the
** method lookup may raise). */
static int call_method(lua_State *T) {
  int n = lua_gettop(T);
  lua_getfield(T, 1, lua_tostring(T, 2));
  lua_pushvalue(T, 1);
  if (n >= 3) lua_pushvalue(T, 3);
  lua_call(T, n >= 3 ? 2 : 1, 1);
  return 1;
}

/* Calls obj:method(arg) on the clock's thread; the number it returns, or
** `fallback` after a failure. */
static double userclock_call(userclock *uc, const char *method, double arg, int has_arg,
                             double fallback) {
  lua_State *T = uc->T;
  ta_engine *E = uc->E;
  double v = fallback;
  if (uc->busy || uc->failed) return fallback;
  uc->busy = 1;
  lua_settop(T, 1);
  lua_pushcfunction(T, call_method);
  lua_pushvalue(T, 1);
  lua_pushstring(T, method);
  if (has_arg) lua_pushnumber(T, arg);
  if (lua_pcall(T, has_arg ? 3 : 2, 1, 0) == LUA_OK) {
    if (lua_type(T, -1) == LUA_TNUMBER) {
      v = lua_tonumber(T, -1);
    } else {
      lua_pushfstring(T, "the run's clock: %s() returned %s, not a number", method, luaL_typename(T, -1));
      uc->failed = 1;
    }
  } else {
    uc->failed = 1;
  }
  if (uc->failed && E->running && !E->soon_closed) { /* the error on top ends the run */
    lua_pushcclosure(T, raise_upvalue, 1);
    lua_rawgeti(T, LUA_REGISTRYINDEX, E->soon_ref);
    lua_insert(T, -2);
    lua_rawseti(T, -2, ++E->nsoon);
  }
  lua_settop(T, 1);
  uc->busy = 0;
  return v;
}

static double userclock_now(ta_clock *c) {
  userclock *uc = (userclock *)c;
  uc->last = userclock_call(uc, "current_time", 0, 0, uc->last);
  return uc->last;
}

static double userclock_sleep_time(ta_clock *c, double deadline) {
  return userclock_call((userclock *)c, "deadline_to_sleep_time", deadline, 1, 0);
}

/* user_clock(obj) -> the engine's clock over obj (for run / start_guest_run) */
static int l_user_clock(lua_State *L) {
  userclock *uc;
  luaL_checkany(L, 1);
  uc = (userclock *)lua_newuserdatauv(L, sizeof *uc, 2);
  memset(uc, 0, sizeof *uc);
  uc->c.rate = 1;
  uc->c.autojump = HUGE_VAL;
  uc->c.now = userclock_now;
  uc->c.sleep_time = userclock_sleep_time;
  uc->E = ta_upengine(L);
  luaL_setmetatable(L, TA_USERCLOCK_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  uc->T = lua_newthread(L);
  lua_setiuservalue(L, -2, 2);
  lua_pushvalue(L, 1);
  lua_xmove(L, uc->T, 1);
  uc->last = 0;
  return 1;
}

/* ---- time and sleeping ---- */

/* current_clock() -> the clock object of the run, nil for the real one */
static int l_current_clock(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  if (!E->running) return luaL_error(L, "current_clock: must be called inside trio.run");
  if (E->clock_ref == LUA_NOREF || E->clock_ref == LUA_REFNIL) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->clock_ref);
  if (luaL_testudata(L, -1, TA_USERCLOCK_MT) != NULL) lua_getiuservalue(L, -1, 1); /* the user's object */
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
  {"user_clock", l_user_clock},
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

static const luaL_Reg userclock_meta[] = {
  {NULL, NULL}
};

int ta_open_time(lua_State *L) {
  ta_newclass(L, TA_CLOCK_MT, clock_meta, clock_methods, "__methods");
  lua_pop(L, 1);
  ta_newclass(L, TA_USERCLOCK_MT, userclock_meta, NULL, NULL);
  lua_pop(L, 1);
  ta_register(L, clock_funcs);
  return 0;
}
