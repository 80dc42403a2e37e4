/*
** run.c — the scheduler: the run queue, one scheduler iteration (ta_tick),
** and the life of a run (start, step, finish) that trio.run, guest runs and
** the sync asyncio loop share.  ta_tick is deliberately a single step (wait
** for I/O or the next deadline, fire deadlines, run one batch) so that
** other drivers (a host's main loop, a sync asyncio loop) can run the
** engine step by step (a plain run's tick goes on with further batches
** while nothing else would be done between them: only_tasks_next).
**
** No Lua code runs inside libuv callbacks: they only move tasks to the run
** queue or set flags, and Lua runs from ta_tick, in protected calls.
*/
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

static void on_wake(uv_timer_t *h) { ((ta_engine *)h->data)->wake_fired = 1; }

static void on_sigint(uv_signal_t *h, int signum) {
  ta_engine *E = (ta_engine *)h->data;
  (void)signum;
  E->ki_pending = 1;
}

/* ---- the run queue ---- */

/* Doubles the run queue (ta_runq_push in engine.h calls it out of line,
** so the push itself needs no stack frame). */
void ta_runq_grow(ta_engine *E) {
  size_t cap = E->caprunq ? E->caprunq * 2 : TA_RUNQ_INITIAL;
  ta_task **q = (ta_task **)realloc(E->runq, cap * sizeof *q);
  if (q == NULL) {
    fputs("trio_asyncio: out of memory growing the run queue\n", stderr);
    abort();
  }
  E->runq = q;
  E->caprunq = cap;
}

/* With many runnable tasks their memory is mostly cold (at 1M sleeping
** tasks, first touches of the task and of its thread were most of a
** step's cache misses; at 10,000 W2 pairs a resume walked a chain of
** dependent misses: thread, CallInfo, the stack slot of the function, its
** closure, an upvalue).  The loop asks for that memory ahead of time:
** - the task PREFETCH_TASK steps ahead;
** - the thread of the one PREFETCH_THREAD steps ahead (whose task line
**   came in by then), with the lines around it.  A thread's block is 208
**   bytes (Lua 5.4's lua_State and its extra space) starting 8 bytes into
**   a 16-byte unit, so it always reaches a fourth line, where the fields a
**   resume and the VM read at its end lie (nCcalls, hookmask).
**   lua_newthread makes the thread's stack right after it, so the frame of
**   the task's function, at the stack's base, lies in the next lines; a
**   task's function is most often made just before its spawn
**   (`nursery:start_soon(function() ... end)`), so its closure and the
**   upvalues it made lie in the lines just before.  Where they do not, the
**   prefetches are only wasted;
** - the CallInfos of the one PREFETCH_CALLS steps ahead (whose thread came
**   in by then): lua_getstack(co, 0) reads the current one (of the C
**   function the task yielded from) from the thread, and the task
**   function's was allocated just before it, one CallInfo block earlier.
** Either of the last two alone changed nothing measurable (the chain
** still stalls on the other); together, W2 at 10,000 pairs went from
** 0.40-0.44M to 0.81-0.84M round trips/s (CPU time 0.46 -> 0.23 s, medians
** of 7 and 9 alternating runs on a busy machine), for about 60
** instructions a step. */
enum { PREFETCH_TASK = 8, PREFETCH_THREAD = 4, PREFETCH_CALLS = 2 };
enum { LINES_BEFORE_THREAD = 3, LINES_FROM_THREAD = 8, CALLINFO_BLOCK = 80 };

static void prefetch_ahead(ta_task **batch, size_t i, size_t n) {
  if (i + PREFETCH_TASK < n) {
    const char *t = (const char *)batch[i + PREFETCH_TASK];
    __builtin_prefetch(t);
    __builtin_prefetch(t + 64);
    __builtin_prefetch(t + 128);
  }
  if (i + PREFETCH_THREAD < n && batch[i + PREFETCH_THREAD]->co != NULL) {
    uintptr_t co = (uintptr_t)batch[i + PREFETCH_THREAD]->co; /* (lines outside it: no pointer arithmetic) */
#pragma GCC unroll 16
    for (int k = -LINES_BEFORE_THREAD; k < LINES_FROM_THREAD; k++) __builtin_prefetch((const void *)(co + 64 * k));
  }
  if (i + PREFETCH_CALLS < n && batch[i + PREFETCH_CALLS]->state == TA_RUNNABLE) {
    lua_Debug ar;
    if (lua_getstack(batch[i + PREFETCH_CALLS]->co, 0, &ar)) {
      __builtin_prefetch(ar.i_ci);
      __builtin_prefetch((const void *)((uintptr_t)ar.i_ci - CALLINFO_BLOCK));
    }
  }
}

/* Runs the tasks that were runnable when the batch started; tasks made
** runnable meanwhile wait for the next batch, so I/O is never starved. */
static void run_batch(lua_State *L, ta_engine *E) {
  ta_task **batch = E->runq;
  size_t n = E->nrunq, cap = E->caprunq;
  /* the two arrays trade places: the engine owns both at every moment */
  E->runq = E->batch;
  E->caprunq = E->capbatch;
  E->nrunq = 0;
  E->batch = batch;
  E->capbatch = cap;
  E->nbatch = n;
  for (size_t i = 0; i < n; i++) {
    ta_task *t = batch[i];
    prefetch_ahead(batch, i, n);
    E->batch_next = i + 1; /* for ta_run_abandon, should this step raise */
    t->queued = 0;
    if (t->state == TA_RUNNABLE) ta_step_task(L, t);
  }
  E->nbatch = 0;
  ta_flush_unanchors(L, E); /* of the tasks that exited */
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

/* ta_hook_arg as if from task t: Trio runs the step and exit hooks in the
** task's context, so current_task() answers t there. */
void ta_hook_in_task(lua_State *L, ta_engine *E, ta_task *t, const char *event) {
  ta_task *prev = E->current;
  lua_State *prevL = E->curL;
  E->current = t;
  E->curL = L;
  ta_hook_arg(L, E, event);
  E->current = prev;
  E->curL = prevL;
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
  ta_status_cancel(L, E, &E->root, TA_CANCEL_SHUTDOWN);
}

/* ---- retries of what failed (not enough memory) ----
** A cancellation that could not be delivered (status.c) and an exit that
** could not be told (task.c) are tried again at each tick.  Under
** persistent memory failure they would keep the run spinning at timeout
** 0, so the retries are bounded: after TA_ABANDON_TRIES ticks in a row
** without progress the last failure is raised and the run is abandoned
** (ta_run_abandon), which a later start of a run finishes. */

/* Keeps the error on top (popped) as the last failure of a retry, in the
** engine's user value: no allocation, so it works when memory is short. */
void ta_keep_retry_error(lua_State *L) {
  ta_push_engine(L);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, TA_ENGINE_UV_RETRY_ERROR);
  lua_pop(L, 1);
}

/* After a tick retried what had failed: *tries counts the ticks in a row
** that made no progress; past TA_ABANDON_TRIES, raises the kept failure. */
void ta_retry_failed(lua_State *L, int *tries, int progress) {
  if (!progress && ++*tries <= TA_ABANDON_TRIES) return;
  ta_push_engine(L);
  lua_getiuservalue(L, -1, TA_ENGINE_UV_RETRY_ERROR);
  lua_pushnil(L); /* let go of it either way */
  lua_setiuservalue(L, -3, TA_ENGINE_UV_RETRY_ERROR);
  if (progress) {
    lua_pop(L, 2);
    *tries = 0;
    return;
  }
  *tries = 0;
  if (lua_isnil(L, -1)) lua_pushliteral(L, "not enough memory"); /* a failed realloc: no error object */
  lua_error(L);
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

/* ---- wait_all_tasks_blocked(cushion) ----
** Its tasks wait in E->blocked_waiters, each with its cushion in its sleep
** timer's `when` (unused while it waits there).  As in Trio, those with the
** smallest cushion wake once every other task has been blocked for that
** many real seconds: ticks in which nothing was runnable, no deadline
** expired and no callback ran add up in idle_accum; any such activity
** starts it again.  A host stepping a guest run in short steps adds up
** its steps. */
static double min_cushion(ta_engine *E) {
  double c = HUGE_VAL;
  for (ta_task *t = E->blocked_waiters.first; t != NULL; t = t->wait_next)
    if (t->timer.when < c) c = t->timer.when;
  return c;
}

/* Real seconds of idleness still needed to wake a waiter; -1: none waits. */
double ta_idle_timeout(ta_engine *E) {
  double c;
  if (E->blocked_waiters.n == 0) return -1;
  c = min_cushion(E) - E->idle_accum;
  return c > 0 ? c : 0;
}

/* After the I/O wait of `timeout` seconds and what followed it: count the
** idle time, and wake the waiters of the smallest cushion once it is
** enough. */
static void idle_check(ta_engine *E, double timeout, int activity) {
  uint64_t now;
  double waited, c;
  ta_task *t, *next;
  if (E->blocked_waiters.n == 0 || E->nrunq > 0 || activity) {
    E->idle_accum = 0;
    return;
  }
  now = uv_hrtime();
  waited = E->last_tick_ns != 0 && now > E->last_tick_ns ? (double)(now - E->last_tick_ns) / 1e9 : 0;
  if (E->wake_fired && waited < timeout) waited = timeout; /* it waited its full time */
  E->idle_accum += waited;
  c = min_cushion(E);
  if (E->idle_accum < c) return;
  E->idle_accum = 0;
  for (t = E->blocked_waiters.first; t != NULL; t = next) {
    next = t->wait_next;
    if (t->timer.when == c) {
      ta_lot_remove(&E->blocked_waiters, t);
      ta_reschedule(t, 0, 0);
    }
  }
}

/* Real seconds to wait for the run's clock to reach `deadline` (0: it
** has; -1: it will not by itself).  A MockClock with an autojump
** threshold is woken after that long to jump. */
double ta_sleep_time(ta_engine *E, double deadline) {
  ta_clock *c = E->clock;
  double dt, t = -1;
  if (c != NULL && c->sleep_time != NULL) { /* a user's clock says */
    t = c->sleep_time(c, deadline);
    return t > 0 ? t : 0;
  }
  dt = deadline - ta_now(E);
  if (dt <= 0) return 0;
  if (c == NULL) return dt;
  if (c->rate > 0) t = dt / c->rate;
  if (c->autojump < HUGE_VAL && (t < 0 || c->autojump < t)) t = c->autojump;
  return t;
}

/* How long the I/O wait may block, in real seconds (-1: until an event),
** before a host's limit. */
double ta_wait_timeout(ta_engine *E) {
  ta_timer *top = ta_heap_top(&E->timers);
  double t = -1;
  if (E->nrunq > 0 || E->nsoon > 0 || (E->ki_pending && !E->ki_host) || E->internal_ref != LUA_NOREF
      || E->redeliver || E->unreported != NULL /* (these two: retries, task.c) */
      || (E->main_done && !E->root.cancel_called && ta_run_alive(E))) /* (ta_run_step cancels the rest) */
    return 0;
  if (top != NULL) {
    t = ta_sleep_time(E, top->when);
    if (t == 0) return 0;
  }
  if (E->blocked_waiters.n > 0) {
    double c = ta_idle_timeout(E);
    if (t < 0 || c < t) t = c;
  }
  return t;
}

/* Waits for I/O at most `timeout` real seconds; instruments are told
** `asked`, the run's own timeout (before a host's limit, as Trio's guest
** runs tell the timeout they ask the host for).  Under load (timeout 0)
** the poll is skipped while nothing can be ready, but done at least every
** E->poll_interval_ns, by the coarse clock (no hardware clock read per
** step), so signals and wake-ups are seen. */
static int poll_skippable(ta_engine *E, uint64_t now) {
  return E->io_waiters == 0 && (int64_t)(now - E->last_poll_ns) < (int64_t)E->poll_interval_ns;
}

static void io_wait(lua_State *L, ta_engine *E, double timeout, double asked) {
  uint64_t now = ta_coarse_ns();
  if (timeout == 0) {
    if (poll_skippable(E, now)) return;
    E->last_poll_ns = now;
    E->in_io_wait = 1;
    uv_run(E->loop, UV_RUN_NOWAIT);
    E->in_io_wait = 0;
    return;
  }
  if (ta_hooked(E)) hook_io(L, E, "before_io_wait", asked);
  if (timeout > 0) {
    /* Repeating: if the process was slow enough for the timer to fire
    ** before the poll, the poll still gets a bounded timeout. */
    uint64_t ms = (uint64_t)ceil(timeout * 1000);
    int rc;
    uv_update_time(E->loop);
    /* (without the timer the wait would not end: the scheduler fails) */
    if ((rc = uv_timer_start(E->wake, on_wake, ms, ms)) != 0)
      luaL_error(L, "trio_asyncio: cannot arm the scheduler's wake-up timer: %s", uv_strerror(rc));
  }
  E->in_io_wait = 1;
  uv_run(E->loop, UV_RUN_ONCE);
  E->in_io_wait = 0;
  uv_timer_stop(E->wake);
  E->last_poll_ns = ta_coarse_ns();
  if (ta_hooked(E)) hook_io(L, E, "after_io_wait", asked);
}

/* Fires the due timers; returns how many. */
static int fire_timers(lua_State *L, ta_engine *E) {
  double now;
  ta_timer *tm;
  int n = 0;
  if (E->timers.n == 0) return 0; /* no clock read needed */
  now = ta_now(E);
  while ((tm = ta_heap_top(&E->timers)) != NULL && tm->when <= now) {
    ta_heap_remove(&E->timers, tm);
    tm->cb(L, E, tm);
    n++;
  }
  return n;
}

/* The mock clock's autojump: nothing ran during the whole threshold, so
** skip ahead to the next deadline. */
static void autojump(ta_engine *E) {
  ta_timer *top;
  double now;
  if (E->clock == NULL || E->clock->autojump == HUGE_VAL) return;
  if (E->nrunq > 0 || E->nsoon > 0 || E->blocked_waiters.n > 0) return;
  if ((top = ta_heap_top(&E->timers)) == NULL) return;
  now = ta_clock_now(E->clock);
  if (top->when > now) ta_clock_jump(E->clock, top->when - now);
}

/* Whether the next step of a plain run would do nothing but run the
** queued tasks: no deadline, callback, interrupt, retry or idle waiter
** to look at, no poll due, the main task still running.  A guest run, a
** host's loop and an abandoned run take one step per call. */
static int only_tasks_next(ta_engine *E) {
  return E->nrunq > 0 && !E->guest && !E->host_loop && !E->abandoned && !E->main_done &&
         E->timers.n == 0 && E->nsoon == 0 && !E->ki_pending && !E->redeliver &&
         E->unreported == NULL && E->internal_ref == LUA_NOREF && E->blocked_waiters.n == 0 &&
         poll_skippable(E, ta_coarse_ns());
}

void ta_tick(lua_State *L, ta_engine *E, double max_wait) {
  /* (with a task queued the wait is 0, ta_wait_timeout's first test) */
  double asked = E->nrunq > 0 ? 0 : ta_wait_timeout(E), timeout = asked;
  int activity;
  if (max_wait >= 0 && (timeout < 0 || max_wait < timeout)) timeout = max_wait;
  E->curL = L;
  E->wake_fired = 0;
  if (!E->host_loop) io_wait(L, E, timeout, asked); /* else the host's loop polls */
  autojump(E);
  activity = fire_timers(L, E);
  if (E->nsoon > 0) {
    run_soon_callbacks(L, E);
    activity = 1;
  }
  if (E->ki_pending && E->main != NULL && !E->main_done && ta_ki_for(E, E->main))
    ta_deliver_cancel(L, E->main);
  if (E->redeliver) {
    ta_status_redeliver(L, E, &E->root);
    ta_retry_failed(L, &E->redeliver_tries, !E->redeliver);
  }
  if (E->unreported != NULL) ta_retry_exits(L, E);
  idle_check(E, timeout, activity);
  run_batch(L, E);
  /* Such steps need none of the above: their batches run here (W2's
  ** ping-pong is a step of two tasks, where a step's checks cost as much
  ** as a task's wake-up) */
  while (only_tasks_next(E)) run_batch(L, E);
  /* (waiters park during a batch: only then is the mark needed) */
  if (E->blocked_waiters.n > 0) E->last_tick_ns = uv_hrtime();
}

/* ---- trio.run ---- */

/* Arguments are checked before anything is marked running: a bad one
** leaves no half-started run behind. */
static void run_begin(lua_State *L, ta_engine *E, int clockidx) {
  ta_clock *clock = NULL;
  if (!lua_isnoneornil(L, clockidx)) {
    clock = (ta_clock *)luaL_testudata(L, clockidx, TA_USERCLOCK_MT);
    if (clock == NULL) clock = (ta_clock *)luaL_checkudata(L, clockidx, TA_CLOCK_MT);
  }
  E->running = 1;
  E->main = NULL;
  E->main_done = E->main_ok = 0;
  E->ki_pending = 0;
  E->soon_closed = 0;
  E->idle_accum = 0;
  E->last_tick_ns = 0;
  ta_ctx_capture(L, E);
  memset(&E->root, 0, sizeof E->root);
  E->root.deadline = HUGE_VAL;
  if (clock != NULL) {
    E->clock = clock;
    lua_pushvalue(L, clockidx);
    E->clock_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  if (!E->host_loop && E->sigint_watched == 0) ta_signal_start(E->sigint, on_sigint, SIGINT);
}

static void run_end(lua_State *L, ta_engine *E) {
  ta_signal_stop(E->sigint); /* the handling before the run comes back */
  luaL_unref(L, LUA_REGISTRYINDEX, E->clock_ref);
  E->clock_ref = LUA_NOREF;
  E->clock = NULL;
  E->running = 0;
  E->abandoned = E->pierce_shields = 0;
  E->main = NULL;
  E->ki_pending = E->ki_host = 0;
  ta_flush_unanchors(L, E); /* (a batch that raised did not) */
  ta_ctx_release(L, E);
  /* queued by the last callbacks: they belong to this run (cleared in
  ** place, since run_end must not allocate: ta_run_abandon relies on it) */
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->soon_ref);
  for (; E->nsoon > 0; E->nsoon--) {
    lua_pushnil(L);
    lua_rawseti(L, -2, E->nsoon);
  }
  lua_pop(L, 1);
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

/* One step of a run; once the main task is done the rest is cancelled.
** A task left then that is neither a system task nor under one was lost
** by its nursery, whose exit failed (not enough memory) before it waited:
** nothing will wait for it, so the cancellation pierces shields, as for an
** abandoned run. */
void ta_run_step(lua_State *L, ta_engine *E, double max_wait) {
  if (E->main_done && !E->root.cancel_called) {
    if (E->ntasks > E->nsystem_tree) E->pierce_shields = 1;
    ta_status_cancel(L, E, &E->root, TA_CANCEL_SHUTDOWN);
  }
  ta_tick(L, E, max_wait);
}

/* Ends the run; pushes "ok", results... | "error", err | "internal", err
** and returns how many values it pushed. */
int ta_run_finish(lua_State *L, ta_engine *E) {
  int status;
  /* As Trio: the callbacks queued before the end still run, once; any they
  ** queue now gets RunFinishedError. */
  E->soon_closed = 1;
  if (E->nsoon > 0) run_soon_callbacks(L, E);
  /* A Ctrl-C that came after the main task exited ends the run with
  ** KeyboardInterrupt all the same (one last poll sees a signal that libuv
  ** has not dispatched yet). */
  if (!E->host_loop) {
    E->in_io_wait = 1;
    uv_run(E->loop, UV_RUN_NOWAIT);
    E->in_io_wait = 0;
  }
  if (E->ki_pending && !E->ki_host && E->internal_ref == LUA_NOREF) {
    E->ki_pending = 0;
    luaL_unref(L, LUA_REGISTRYINDEX, E->result_ref);
    ta_push_error(L, E, "KeyboardInterrupt", "interrupted by Ctrl-C (SIGINT)");
    E->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    E->main_ok = 0;
  }
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

/* ---- abandoning a run ---- */

/* The tasks a batch had not reached when a step raised go back to the run
** queue (run_batch had taken them off it). */
static void requeue_unfinished_batch(ta_engine *E) {
  for (size_t i = E->batch_next; i < E->nbatch; i++) {
    ta_task *t = E->batch[i];
    t->queued = 0;
    if (t->state == TA_RUNNABLE) ta_runq_push(E, t);
  }
  E->nbatch = 0;
}

/* Rounds of: every task cancelled again (a redelivery), then steps while
** there is work now.  Rounds go on while tasks end (an abort callback that
** waited for a task that has ended since answers otherwise when asked
** again); after a round that ended none, shields are pierced: a shielded
** task of an abandoned run may wait for what will never come (an Event
** that a task the failure killed was to set, a loop whose driver died). */
static int abandon_steps(lua_State *L) {
  ta_engine *E = (ta_engine *)lua_touserdata(L, 1);
  size_t left = (size_t)-1; /* live tasks when the last round began */
  ta_status_mark_cancelled(&E->root, TA_CANCEL_SHUTDOWN);
  while (ta_run_alive(E) && (E->ntasks < left || !E->pierce_shields)) {
    int rounds = 0;
    if (E->ntasks >= left) E->pierce_shields = 1;
    left = E->ntasks;
    ta_status_redeliver(L, E, &E->root);
    /* from inside a running task (a host calling lua_close there), no
    ** batch may run inside the current one */
    while (E->current == NULL && ta_run_alive(E) && ta_wait_timeout(E) == 0 &&
           rounds++ < TA_ABANDON_ROUNDS)
      ta_run_step(L, E, 0);
  }
  return 0;
}

static int abandon_finish(lua_State *L) {
  ta_run_finish(L, (ta_engine *)lua_touserdata(L, 1));
  return 0;
}

static int call_protected(lua_State *L, ta_engine *E, lua_CFunction fn) {
  lua_pushcfunction(L, fn);
  lua_pushlightuserdata(L, E);
  return lua_pcall(L, 1, 0, 0) == LUA_OK;
}

/* Ends a run that cannot go on: the scheduler itself raised (not enough
** memory, say), or the state is closing (must_end).  Every task is
** cancelled and unwinds as far as it can without waiting for time (I/O
** already ready is still seen); then the run ends and the state is usable
** again.  Tasks that could not unwind (memory still short) keep the run
** open as abandoned, unless must_end: the next start of a run tries again
** (ta_run_active).  Never raises; leaves the stack as it found it.
** Returns whether the run ended. */
int ta_run_abandon(lua_State *L, ta_engine *E, int must_end) {
  int top = lua_gettop(L);
  if (!E->running) return 1;
  E->abandoned = 1;
  if (E->main == NULL) E->main_done = 1; /* raised before the main task began */
  requeue_unfinished_batch(E);
  /* a step that raises again leaves the rest for the next try */
  for (int tries = 0; tries < TA_ABANDON_TRIES; tries++) {
    if (call_protected(L, E, abandon_steps)) break;
    lua_settop(L, top);
    requeue_unfinished_batch(E);
  }
  if (ta_run_alive(E) && !must_end) {
    lua_settop(L, top);
    return 0;
  }
  E->guest = E->guest_ending = 0;
  luaL_unref(L, LUA_REGISTRYINDEX, E->guest_done_ref);
  E->guest_done_ref = LUA_NOREF;
  if (!call_protected(L, E, abandon_finish) && E->running) {
    run_end(L, E);
    luaL_unref(L, LUA_REGISTRYINDEX, E->internal_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, E->result_ref);
    E->internal_ref = E->result_ref = LUA_NOREF;
  }
  lua_settop(L, top);
  return 1;
}

/* Whether a run is active in this state, once an abandoned run that can
** end now has ended (what starting a run checks). */
int ta_run_active(lua_State *L, ta_engine *E) {
  if (E->running && E->abandoned) ta_run_abandon(L, E, 0);
  return E->running;
}

/* ---- guest runs ---- */

static int guest_tick(lua_State *L) {
  ta_engine *E = (ta_engine *)lua_touserdata(L, 1);
  /* As Trio's guest runs: the step in which the last task exits does not
  ** end the run; the host runs once more (what it does then, a Ctrl-C
  ** say, still reaches the run), and the next step ends it without
  ** waiting. */
  ta_run_step(L, E, E->guest_ending ? 0 : lua_tonumber(L, 2));
  return 0;
}

/* Calls the guest run's done callback with the n values on top (popped);
** returns TA_GUEST_DONE, or TA_GUEST_DONE_RAISED with its error on top of
** the stack as it was before the values. */
static int guest_done(lua_State *L, int done_ref, int n) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, done_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, done_ref);
  lua_insert(L, -n - 1);
  return lua_pcall(L, n, 0, 0) == LUA_OK ? TA_GUEST_DONE : TA_GUEST_DONE_RAISED;
}

/* One tick of a guest run; when the run is over, its done callback gets
** ("ok", results...) / ("error", err) / ("internal", err).  A tick that
** raises (the scheduler itself failed: not enough memory, say) abandons
** the run, and done gets ("internal", err).  Returns TA_GUEST_ALIVE or
** TA_GUEST_DONE; TA_GUEST_DONE_RAISED when the done callback raised, with
** its error on top: the caller reports it (the sync loop's driver raises
** it), so that a run whose end could not be told is never taken for a
** live one. */
int ta_guest_step(lua_State *L, ta_engine *E, double max_wait) {
  int done_ref, rc, top = lua_gettop(L);
  if (!E->running || !E->guest) return TA_GUEST_DONE;
  lua_pushcfunction(L, guest_tick);
  lua_pushlightuserdata(L, E);
  lua_pushnumber(L, max_wait);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    done_ref = E->guest_done_ref;
    E->guest_done_ref = LUA_NOREF; /* kept from ta_run_abandon */
    E->guest = E->guest_ending = 0;
    ta_run_abandon(L, E, 0);
    lua_pushliteral(L, "internal");
    lua_insert(L, -2);
    return guest_done(L, done_ref, 2);
  }
  if (ta_run_alive(E)) return TA_GUEST_ALIVE;
  if (!E->guest_ending) {
    E->guest_ending = 1;
    return TA_GUEST_ALIVE;
  }
  E->guest = 0;
  E->guest_ending = 0;
  done_ref = E->guest_done_ref;
  E->guest_done_ref = LUA_NOREF;
  rc = guest_done(L, done_ref, ta_run_finish(L, E));
  if (rc == TA_GUEST_DONE) lua_settop(L, top);
  return rc;
}

/* guest_step(max_wait) -> alive: one step of the guest run, from Lua code
** outside any task (the sync asyncio loop drives its run this way).  An
** error of the run's done callback is raised here. */
static int l_guest_step(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  double max_wait = luaL_optnumber(L, 1, -1);
  int rc;
  if (E->current != NULL)
    return luaL_error(L, "run_until_complete: cannot run a sync loop from inside a task");
  rc = ta_guest_step(L, E, max_wait);
  if (rc == TA_GUEST_DONE_RAISED) return lua_error(L);
  lua_pushboolean(L, rc == TA_GUEST_ALIVE);
  return 1;
}

/* abandon_paused_run(): the paused run of a sync loop that could not be
** closed (closing it raised: not enough memory) is abandoned as a failed
** scheduler step would abandon it (ta_run_abandon): its tasks are
** cancelled, and what cannot end now ends at the next start of a run. */
static int l_abandon_paused_run(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  if (E->running && E->guest && E->ki_host && E->current == NULL) ta_run_abandon(L, E, 0);
  return 0;
}

/* traceback(level) -> the text of debug.traceback("", level):sub(2), level
** 1 being traceback's caller, for lua/trio/errors.lua: every error object
** gets one where it is made (a Cancelled at each cancelled checkpoint). */
static int l_traceback(lua_State *L) {
  int level = (int)luaL_checkinteger(L, 1);
  luaL_argcheck(L, level >= 1, 1, "level must be >= 1");
  ta_traceback(L, L, NULL, level);
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

/* is_running() -> a run is active, and whether it is the paused run of a
** sync asyncio loop (a guest run that leaves Ctrl-C to its host).  An
** abandoned run that can end now ends first (ta_run_active). */
static int l_is_running(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  lua_pushboolean(L, ta_run_active(L, E));
  lua_pushboolean(L, E->running && E->guest && E->ki_host);
  return 2;
}

/* take_interrupt() -> true once for each Ctrl-C that came while a host
** (the sync loop) steps a guest run that leaves interrupts to it. */
static int l_take_interrupt(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  lua_pushboolean(L, E->ki_pending);
  E->ki_pending = 0;
  return 1;
}

/* debug_set_heap_sort_min(n) -> the previous value: from how many heap
** entries a burst of expirations sorts the heap (heap.c; 0: its default),
** so that specs reach the sort with a few thousand timers. */
static int l_debug_set_heap_sort_min(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= INT_MAX, 1, "a count from 0 expected");
  lua_pushinteger(L, E->timers.sort_min);
  E->timers.sort_min = (int)n;
  return 1;
}

static const luaL_Reg run_funcs[] = {
  {"take_interrupt", l_take_interrupt},
  {"guest_step", l_guest_step},
  {"abandon_paused_run", l_abandon_paused_run},
  {"set_error_factory", l_set_error_factory},
  {"traceback", l_traceback},
  {"set_hook", l_set_hook},
  {"debug_state", l_debug_state},
  {"debug_set_heap_sort_min", l_debug_set_heap_sort_min},
  {"is_running", l_is_running},
  {NULL, NULL}
};

int ta_open_run(lua_State *L) {
  ta_register(L, run_funcs);
  return 0;
}

