/*
** engine.c — one engine per lua_State: the libuv loop, the run queue, the
** deadline heap, and the scheduler iteration (ta_tick) that trio.run
** repeats.  ta_tick is deliberately a single step (wait for I/O or the next
** deadline, fire deadlines, run one batch) so that other drivers (a host's
** main loop, a sync asyncio loop) can run the engine step by step.
**
** No Lua code runs inside libuv callbacks: they only move tasks to the run
** queue or set flags, and Lua runs from ta_tick, in protected calls.
*/
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ta.h"

#define ENGINE_MT "trio_asyncio.Engine"

static const char engine_key = 'E'; /* registry key: its address */

void ta_on_wake(uv_timer_t *h) { (void)h; }

static void on_sigint(uv_signal_t *h, int signum) {
  ta_engine *E = (ta_engine *)h->data;
  (void)signum;
  E->ki_pending = 1;
}

void ta_handle_opened(ta_engine *E) { E->nhandles++; }

/* Let libuv run the close callbacks of handles we closed, when no run
** will poll soon (and never on a host's loop or inside uv_run). */
void ta_flush_closes(ta_engine *E) {
  if (E->host_loop || E->in_io_wait || E->running || E->closing) return;
  uv_run(E->loop, UV_RUN_NOWAIT);
}
void ta_free_handle(uv_handle_t *h) { free(h); }
void ta_handle_closed(ta_engine *E) { E->nhandles--; }

/* ---- errors ---- */

/* Pushes an error object of class `cls` (built by the Lua error factory,
** or a plain string before the Lua side has registered one). */
void ta_push_error(lua_State *L, ta_engine *E, const char *cls, const char *msg) {
  if (E != NULL && E->errfactory_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, E->errfactory_ref);
    lua_pushstring(L, cls);
    lua_pushstring(L, msg);
    if (lua_pcall(L, 2, 1, 0) == LUA_OK) return;
    lua_pop(L, 1);
  }
  lua_pushstring(L, msg);
}

int ta_error(lua_State *L, const char *cls, const char *fmt, ...) {
  va_list ap;
  const char *msg;
  va_start(ap, fmt);
  msg = lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  ta_push_error(L, ta_engine_get(L), cls, msg);
  return lua_error(L);
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
  if (t != NULL && t->ref != LUA_NOREF) ta_push_task(L, t);
  else lua_pushnil(L);
  ta_hook_arg(L, E, event);
}

static void hook_io(lua_State *L, ta_engine *E, const char *event, double timeout) {
  lua_pushnumber(L, timeout);
  ta_hook_arg(L, E, event);
}

/* ---- one scheduler iteration ---- */

/* The first error of a system task or callback ends the run. */
static void internal_error(lua_State *L, ta_engine *E) {
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
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) internal_error(L, E);
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
    uv_timer_start(E->wake, ta_on_wake, ms, ms);
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
    if (tm->kind == TA_TIMER_SLEEP) {
      ta_task *t = (ta_task *)((char *)tm - offsetof(ta_task, timer));
      ta_reschedule(t, 0, 0);
    } else {
      ta_scope_deadline_fired(L, E, tm);
    }
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
    E->clock = (ta_clock *)luaL_checkudata(L, clockidx, "trio_asyncio.MockClock");
    lua_pushvalue(L, clockidx);
    E->clock_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  if (!E->host_loop) uv_signal_start(E->sigint, on_sigint, SIGINT);
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
void ta_run_start(lua_State *L, ta_engine *E, int fnidx, int argsidx, int clockidx, int flavor) {
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
  E->main = ta_spawn(L, E, base + 1, nargs, flavor, NULL, &E->root, NULL);
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

static int check_flavor_opt(lua_State *L, int idx) {
  static const char *const flavors[] = {"trio", "asyncio", NULL};
  return luaL_checkoption(L, idx, "trio", flavors) == 0 ? TA_TRIO : TA_ASYNCIO;
}

/* run(fn, args, clock, flavor) -> "ok", results... | "error", err |
** "internal", err.  The Lua face turns the last two into raises. */
static int l_run(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  int flavor = check_flavor_opt(L, 4);
  if (E->running)
    return luaL_error(L, "trio.run: a run is already active in this Lua state "
                         "(runs cannot nest; open a nursery instead)");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 4);
  ta_run_start(L, E, 1, 2, 3, flavor);
  while (ta_run_alive(E)) ta_run_step(L, E, -1);
  return ta_run_finish(L, E);
}

/* start_guest_run(fn, args, clock, flavor, done): start a run that makes
** progress while the host drives the engine (trio_asyncio_step or its own
** libuv loop); done(status, ...) is called when it ends. */
static int l_start_guest_run(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  int flavor = check_flavor_opt(L, 4);
  if (E->running)
    return luaL_error(L, "start_guest_run: a run is already active in this Lua state "
                         "(only one run at a time)");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TFUNCTION);
  lua_settop(L, 5);
  E->guest_done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  ta_run_start(L, E, 1, 2, 3, flavor);
  E->guest = 1;
  ta_guest_started(E);
  return 0;
}

/* spawn_system_task(fn, ...): a task of the run itself, cancelled when the
** main task has exited; its error ends the run as TrioInternalError. */
static int l_spawn_system_task(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_task *t;
  if (!E->running) return luaL_error(L, "spawn_system_task: no trio run is active");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  t = ta_spawn(L, E, 1, lua_gettop(L) - 1, TA_TRIO, NULL, &E->root,
               E->current && E->current->co == L ? E->current : NULL);
  t->system = 1;
  return 1;
}

/* run_sync_soon(fn): call fn() from the scheduler soon (TrioToken). */
static int l_run_sync_soon(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (!E->running) return ta_error(L, "RunFinishedError", "run_sync_soon: the run has finished");
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->soon_ref);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, ++E->nsoon);
  return 0;
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
  lua_pushinteger(L, (lua_Integer)(E->ntasks + E->naio));
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

/* ---- the engine object ---- */

/* The engine's own handles live on E->loop (ours or the host's). */
int ta_engine_handles_init(ta_engine *E) {
  E->wake = (uv_timer_t *)malloc(sizeof *E->wake);
  E->sigint = (uv_signal_t *)malloc(sizeof *E->sigint);
  if (E->wake == NULL || E->sigint == NULL) {
    free(E->wake);
    free(E->sigint);
    E->wake = NULL;
    E->sigint = NULL;
    return UV_ENOMEM;
  }
  uv_timer_init(E->loop, E->wake);
  uv_signal_init(E->loop, E->sigint);
  E->wake->data = E->sigint->data = E;
  if (E->host_loop) {
    uv_unref((uv_handle_t *)E->sigint);
  }
  return ta_embed_init(E);
}

void ta_engine_handles_close(ta_engine *E) {
  ta_io_close_all(E);
  uv_close((uv_handle_t *)E->wake, ta_free_handle);
  uv_close((uv_handle_t *)E->sigint, ta_free_handle);
  E->wake = NULL;
  E->sigint = NULL;
}

/* lua_close during a live run: cancel everything and let the tasks unwind
** as far as they can without waiting for I/O or time. */
static void abandon_run(lua_State *L, ta_engine *E) {
  int rounds = 0, top = lua_gettop(L);
  ta_status_cancel(L, E, &E->root);
  E->host_loop = 1; /* no more polling */
  while (ta_run_alive(E) && E->nrunq > 0 && rounds++ < 1000) ta_run_step(L, E, 0);
  ta_run_finish(L, E);
  lua_settop(L, top);
}

static int engine_gc(lua_State *L) {
  ta_engine *E = (ta_engine *)luaL_checkudata(L, 1, ENGINE_MT);
  int host = E->host_loop;
  if (E->closing) return 0;
  if (E->running) abandon_run(L, E);
  E->closing = 1;
  ta_embed_close(L, E);
  ta_engine_handles_close(E);
  if (!host) {
    uv_run(E->loop, UV_RUN_DEFAULT);
    uv_loop_close(E->loop);
  }
  free(E->runq);
  free(E->batch);
  free(E->fdw);
  ta_heap_free(&E->timers);
  return 0;
}

/* Pushes the weak-keyed table kept in the registry under key (made on
** first use): side tables of rarely used fields. */
void ta_push_weak_keyed(lua_State *L, const void *key) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

/* ---- cached metatables ---- */

static const char *const mt_names[TA_NMT] = {
  TA_TASK_MT, "trio_asyncio.Future", "trio_asyncio.FutureWithError", TA_AIOTASK_MT,
  "trio_asyncio.Handle", "trio_asyncio.Loop"
};

/* Caches the metatable on top of the stack (made with luaL_newmetatable
** under which's name). */
void ta_cache_metatable(lua_State *L, ta_engine *E, int which) {
  E->mt[which] = lua_topointer(L, -1);
  lua_pushvalue(L, -1);
  E->mt_ref[which] = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* luaL_setmetatable for a cached metatable. */
void ta_setmetatable(lua_State *L, ta_engine *E, int which) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->mt_ref[which]);
  lua_setmetatable(L, -2);
}

/* The metatable of the userdata at idx, as a pointer to compare with the
** cached ones; NULL when it is no userdata or has none. */
const void *ta_udata_mt(lua_State *L, int idx) {
  const void *mt;
  if (lua_touserdata(L, idx) == NULL || !lua_getmetatable(L, idx)) return NULL;
  mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  return mt;
}

/* luaL_testudata for a cached metatable; E may be NULL (a function
** without the engine as upvalue), then it is looked up by name. */
void *ta_testudata(lua_State *L, ta_engine *E, int idx, int which) {
  if (E == NULL) return luaL_testudata(L, idx, mt_names[which]);
  return ta_udata_mt(L, idx) == E->mt[which] ? lua_touserdata(L, idx) : NULL;
}

void *ta_checkudata(lua_State *L, ta_engine *E, int idx, int which) {
  void *p = ta_testudata(L, E, idx, which);
  if (p == NULL) luaL_typeerror(L, idx, mt_names[which]);
  return p;
}

/* The engine of L's state, created on first use. */
ta_engine *ta_engine_get(lua_State *L) {
  ta_engine *E;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &engine_key) == LUA_TUSERDATA) {
    E = (ta_engine *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return E;
  }
  lua_pop(L, 1);
  E = (ta_engine *)lua_newuserdatauv(L, sizeof *E, 0);
  memset(E, 0, sizeof *E);
  E->closing = 1; /* closed until fully built: __gc must be safe */
  if (luaL_newmetatable(L, ENGINE_MT)) {
    lua_pushcfunction(L, engine_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  E->clock_ref = E->result_ref = E->hook_ref = E->errfactory_ref = LUA_NOREF;
  E->guest_done_ref = LUA_NOREF;
  E->internal_ref = E->aio_cancelled_ref = LUA_NOREF;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  E->L = lua_tothread(L, -1); /* before the handles: they register E->L */
  lua_pop(L, 1);
  if (uv_loop_init(&E->own_loop) != 0) luaL_error(L, "trio_asyncio: cannot initialise the libuv loop");
  E->loop = &E->own_loop;
  if (ta_engine_handles_init(E) != 0) {
    uv_loop_close(E->loop);
    luaL_error(L, "trio_asyncio: not enough memory");
  }
  E->root.deadline = HUGE_VAL;
  lua_newtable(L);
  E->soon_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  E->weak_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  E->closing = 0;
  lua_rawsetp(L, LUA_REGISTRYINDEX, &engine_key);
  return E;
}

/* Weak references: asyncio Tasks and loops must stay collectable (a Task
** collected while pending is reported), yet C must find their objects. */
int ta_weakref(lua_State *L, ta_engine *E) {
  int ref;
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->weak_ref);
  lua_insert(L, -2);
  ref = luaL_ref(L, -2);
  lua_pop(L, 1);
  return ref;
}

void ta_push_weak(lua_State *L, ta_engine *E, int ref) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->weak_ref);
  lua_rawgeti(L, -1, ref);
  lua_remove(L, -2);
}

void ta_weakunref(lua_State *L, ta_engine *E, int ref) {
  if (ref == LUA_NOREF) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->weak_ref);
  luaL_unref(L, -1, ref);
  lua_pop(L, 1);
}

void ta_push_engine(lua_State *L) {
  ta_engine_get(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &engine_key);
}

/* Registers funcs into the core table with the engine as upvalue; expects
** [core, engine] on top and leaves them. */
void ta_register(lua_State *L, const luaL_Reg *funcs) {
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
}

static const luaL_Reg engine_funcs[] = {
  {"run", l_run},
  {"start_guest_run", l_start_guest_run},
  {"spawn_system_task", l_spawn_system_task},
  {"run_sync_soon", l_run_sync_soon},
  {"set_error_factory", l_set_error_factory},
  {"set_hook", l_set_hook},
  {"debug_state", l_debug_state},
  {"is_running", l_is_running},
  {NULL, NULL}
};

int ta_open_engine(lua_State *L) {
  ta_register(L, engine_funcs);
  return 0;
}
