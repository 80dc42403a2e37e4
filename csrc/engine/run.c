/*
** run.c — the scheduler: the run queue, one scheduler iteration (ta_tick),
** and the life of a run (start, step, finish) that trio.run, guest runs and
** the sync asyncio loop share.  ta_tick is deliberately a single step (wait
** for I/O or the next deadline, fire deadlines, run one batch) so that
** other drivers (a host's main loop, a sync asyncio loop) can run the
** engine step by step.
**
** No Lua code runs inside libuv callbacks: they only move tasks to the run
** queue or set flags, and Lua runs from ta_tick, in protected calls.
*/
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

static void on_wake(uv_timer_t *h) { (void)h; }

static void on_sigint(uv_signal_t *h, int signum) {
  ta_engine *E = (ta_engine *)h->data;
  (void)signum;
  E->ki_pending = 1;
}

/* ---- the run queue ---- */

void ta_runq_push(ta_engine *E, ta_task *t) {
  if (E->nrunq == E->caprunq) {
    size_t cap = E->caprunq ? E->caprunq * 2 : 256;
    ta_task **q = (ta_task **)realloc(E->runq, cap * sizeof *q);
    if (q == NULL) {
      fputs("trio_asyncio: out of memory growing the run queue\n", stderr);
      abort();
    }
    E->runq = q;
    E->caprunq = cap;
  }
  E->runq[E->nrunq++] = t;
}

/* Runs the tasks that were runnable when the batch started; tasks made
** runnable meanwhile wait for the next batch, so I/O is never starved. */
static void run_batch(lua_State *L, ta_engine *E) {
  ta_task **batch = E->runq;
  size_t n = E->nrunq, cap = E->caprunq;
  E->runq = E->batch;
  E->caprunq = E->capbatch;
  E->nrunq = 0;
  for (size_t i = 0; i < n; i++) ta_step_task(L, batch[i]);
  E->batch = batch;
  E->capbatch = cap;
}

/* ---- instruments ---- */

/* Calls the instrument dispatcher with (event, the value on top), popped. */
void ta_hook_arg(lua_State *L, ta_engine *E, const char *event) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->hook_ref);
  lua_pushstring(L, event);
  lua_rotate(L, -3, 2);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);
}

void ta_hook(lua_State *L, ta_engine *E, const char *event, ta_task *t) {
  if (t != NULL && ta_task_alive(t)) ta_push_task(L, t);
  else lua_pushnil(L);
  ta_hook_arg(L, E, event);
}

static void hook_io(lua_State *L, ta_engine *E, const char *event, double timeout) {
  lua_pushnumber(L, timeout);
  ta_hook_arg(L, E, event);
}

/* ---- one scheduler iteration ---- */

/* The first error of a system task or callback ends the run. */
void ta_internal_error(lua_State *L, ta_engine *E) {
  if (E->internal_ref == LUA_NOREF) E->internal_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else lua_pop(L, 1);
  ta_status_cancel(L, E, &E->root);
}

static void run_soon_callbacks(lua_State *L, ta_engine *E) {
  int n = E->nsoon;
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->soon_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, E->soon_ref);
  lua_newtable(L);
  E->soon_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  E->nsoon = 0;
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) ta_internal_error(L, E);
  }
  lua_pop(L, 1);
}

/* How long the I/O wait may block, in real seconds (-1: until an event). */
static double wait_timeout(ta_engine *E, double max_wait) {
  ta_timer *top = ta_heap_top(&E->timers);
  double t = -1;
  if (E->nrunq > 0 || E->nsoon > 0 || E->ki_pending || E->internal_ref != LUA_NOREF) return 0;
  if (E->blocked_waiters.n > 0) return 0;
  if (top != NULL) {
    double dt = top->when - ta_now(E);
    if (dt <= 0) return 0;
    if (E->clock == NULL) t = dt;
    else if (E->clock->rate > 0) t = dt / E->clock->rate;
    if (E->clock != NULL && E->clock->autojump < HUGE_VAL && (t < 0 || E->clock->autojump < t))
      t = E->clock->autojump;
  }
  if (max_wait >= 0 && (t < 0 || max_wait < t)) t = max_wait;
  return t;
}

static void io_wait(lua_State *L, ta_engine *E, double timeout) {
  uint64_t now = uv_hrtime();
  if (timeout == 0) {
    /* Skip the syscall while nothing can be ready, but poll at least once a
    ** millisecond so signals and wake-ups are seen under load. */
    if (E->io_waiters == 0 && now - E->last_poll_ns < 1000000) return;
    E->last_poll_ns = now;
    E->in_io_wait = 1;
    uv_run(E->loop, UV_RUN_NOWAIT);
    E->in_io_wait = 0;
    return;
  }
  if (ta_hooked(E)) hook_io(L, E, "before_io_wait", timeout);
  E->in_io_wait = 1;
  if (timeout > 0) {
    /* Repeating: if the process was slow enough for the timer to fire
    ** before the poll, the poll still gets a bounded timeout. */
    uint64_t ms = (uint64_t)ceil(timeout * 1000);
    uv_update_time(E->loop);
    uv_timer_start(E->wake, on_wake, ms, ms);
  }
  uv_run(E->loop, UV_RUN_ONCE);
  E->in_io_wait = 0;
  uv_timer_stop(E->wake);
  E->last_poll_ns = uv_hrtime();
  if (ta_hooked(E)) hook_io(L, E, "after_io_wait", timeout);
}

static void fire_timers(lua_State *L, ta_engine *E) {
  double now = ta_now(E);
  ta_timer *tm;
  while ((tm = ta_heap_top(&E->timers)) != NULL && tm->when <= now) {
    ta_heap_remove(&E->timers, tm);
    tm->cb(L, E, tm);
  }
}

/* The mock clock's autojump: nothing ran during the whole threshold, so
** skip ahead to the next deadline. */
static void autojump(ta_engine *E) {
  ta_timer *top = ta_heap_top(&E->timers);
  double now;
  if (E->clock == NULL || E->clock->autojump == HUGE_VAL || top == NULL) return;
  if (E->nrunq > 0 || E->nsoon > 0 || E->blocked_waiters.n > 0) return;
  now = ta_clock_now(E->clock);
  if (top->when > now) ta_clock_jump(E->clock, top->when - now);
}

void ta_tick(lua_State *L, ta_engine *E, double max_wait) {
  double timeout = wait_timeout(E, max_wait);
  E->curL = L;
  if (!E->host_loop) io_wait(L, E, timeout); /* else the host's loop polls */
  autojump(E);
  fire_timers(L, E);
  if (E->nsoon > 0) run_soon_callbacks(L, E);
  if (E->ki_pending && E->main != NULL && !E->main_done) ta_deliver_cancel(L, E->main);
  if (E->nrunq == 0 && E->blocked_waiters.n > 0) {
    ta_task *t;
    while ((t = ta_lot_pop(&E->blocked_waiters)) != NULL) ta_reschedule(t, 0, 0);
  }
  run_batch(L, E);
}

/* ---- trio.run ---- */

static void run_begin(lua_State *L, ta_engine *E, int clockidx) {
  E->running = 1;
  E->main = NULL;
  E->main_done = E->main_ok = 0;
  E->ki_pending = 0;
  memset(&E->root, 0, sizeof E->root);
  E->root.deadline = HUGE_VAL;
  if (!lua_isnoneornil(L, clockidx)) {
    E->clock = (ta_clock *)luaL_checkudata(L, clockidx, TA_CLOCK_MT);
    lua_pushvalue(L, clockidx);
    E->clock_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  if (!E->host_loop && E->sigint_watched == 0) uv_signal_start(E->sigint, on_sigint, SIGINT);
}

static void run_end(lua_State *L, ta_engine *E) {
  uv_signal_stop(E->sigint);
  luaL_unref(L, LUA_REGISTRYINDEX, E->clock_ref);
  E->clock_ref = LUA_NOREF;
  E->clock = NULL;
  E->running = 0;
  E->main = NULL;
  E->ki_pending = 0;
}

/* Starts a run: the function at fnidx with the arguments of the table at
** argsidx (with n) as main task, on the clock at clockidx (or real time). */
void ta_run_start(lua_State *L, ta_engine *E, int fnidx, int argsidx, int clockidx, int flavor,
                  const ta_task_kind *kind) {
  int nargs = 0, base;
  fnidx = lua_absindex(L, fnidx);
  argsidx = lua_absindex(L, argsidx);
  run_begin(L, E, clockidx);
  base = lua_gettop(L);
  lua_pushvalue(L, fnidx);
  if (lua_istable(L, argsidx)) {
    lua_getfield(L, argsidx, "n");
    nargs = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : (int)luaL_len(L, argsidx);
    lua_pop(L, 1);
    luaL_checkstack(L, nargs, "too many arguments");
    for (int i = 1; i <= nargs; i++) lua_rawgeti(L, argsidx, i);
  }
  if (ta_hooked(E)) ta_hook(L, E, "before_run", NULL);
  E->main = ta_spawn(L, E, base + 1, nargs, flavor, kind, &E->root, NULL);
  lua_settop(L, base);
}

int ta_run_alive(ta_engine *E) {
  return !E->main_done || E->ntasks > 0;
}

/* One step of a run; once the main task is done the rest is cancelled. */
void ta_run_step(lua_State *L, ta_engine *E, double max_wait) {
  if (E->main_done && !E->root.cancel_called) ta_status_cancel(L, E, &E->root);
  ta_tick(L, E, max_wait);
}

/* Ends the run; pushes "ok", results... | "error", err | "internal", err
** and returns how many values it pushed. */
int ta_run_finish(lua_State *L, ta_engine *E) {
  int status;
  if (ta_hooked(E)) ta_hook(L, E, "after_run", NULL);
  run_end(L, E);
  ta_flush_closes(E);
  if (E->internal_ref != LUA_NOREF) {
    lua_pushliteral(L, "internal");
    lua_rawgeti(L, LUA_REGISTRYINDEX, E->internal_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, E->internal_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, E->result_ref);
    E->internal_ref = E->result_ref = LUA_NOREF;
    return 2;
  }
  lua_pushstring(L, E->main_ok ? "ok" : "error");
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->result_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, E->result_ref);
  E->result_ref = LUA_NOREF;
  if (!E->main_ok) return 2;
  status = lua_gettop(L);
  {
    int n = (int)(lua_getfield(L, status, "n"), lua_tointeger(L, -1));
    lua_pop(L, 1);
    luaL_checkstack(L, n, "too many results");
    for (int i = 1; i <= n; i++) lua_rawgeti(L, status, i);
    lua_remove(L, status);
    return n + 1;
  }
}

/* ---- guest runs ---- */

/* One tick of a guest run; when the run is over, its done callback gets
** ("ok", results...) / ("error", err) / ("internal", err). */
int ta_guest_step(lua_State *L, ta_engine *E, double max_wait) {
  int n, top;
  if (!E->running || !E->guest) return 0;
  ta_run_step(L, E, max_wait);
  if (ta_run_alive(E)) return 1;
  E->guest = 0;
  top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->guest_done_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, E->guest_done_ref);
  E->guest_done_ref = LUA_NOREF;
  n = ta_run_finish(L, E);
  if (lua_pcall(L, n, 0, 0) != LUA_OK) {
    lua_writestringerror("trio_asyncio: the guest run's done callback raised: %s\n",
                         luaL_tolstring(L, -1, NULL));
  }
  lua_settop(L, top);
  return 0;
}

/* guest_step(max_wait) -> alive: one step of the guest run, from Lua code
** outside any task (the sync asyncio loop drives its run this way). */
static int l_guest_step(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  double max_wait = luaL_optnumber(L, 1, -1);
  if (E->current != NULL)
    return luaL_error(L, "run_until_complete: cannot run a sync loop from inside a task");
  lua_pushboolean(L, ta_guest_step(L, E, max_wait));
  return 1;
}

static int l_set_error_factory(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, E->errfactory_ref);
  lua_settop(L, 1);
  E->errfactory_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* set_hook(fn|nil): the instrument dispatcher, fn(event, arg). */
static int l_set_hook(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  luaL_unref(L, LUA_REGISTRYINDEX, E->hook_ref);
  E->hook_ref = LUA_NOREF;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    E->hook_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 0;
}

static int l_debug_state(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)(E->ntasks + E->nunanchored));
  lua_setfield(L, -2, "tasks");
  lua_pushinteger(L, (lua_Integer)E->nhandles);
  lua_setfield(L, -2, "handles");
  lua_pushboolean(L, E->running);
  lua_setfield(L, -2, "running");
  return 1;
}

static int l_is_running(lua_State *L) {
  lua_pushboolean(L, ta_upengine(L)->running);
  return 1;
}

static const luaL_Reg run_funcs[] = {
  {"guest_step", l_guest_step},
  {"set_error_factory", l_set_error_factory},
  {"set_hook", l_set_hook},
  {"debug_state", l_debug_state},
  {"is_running", l_is_running},
  {NULL, NULL}
};

int ta_open_run(lua_State *L) {
  ta_register(L, run_funcs);
  return 0;
}

