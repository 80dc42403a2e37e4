/*
** future.c — asyncio Futures and Tasks.
**
** A Future holds its outcome in user values and a list of done callbacks;
** completing it schedules every callback with call_soon (never inline).  A
** Task is a Future with an engine task (flavor asyncio) inside the same
** userdata, running a Lua function.  The Task itself goes on its loop's
** ready queue, with no handle: for its first step, after a bare yield, and
** when the future it awaits completes (it is that future's callback entry);
** its results or error become the Future's outcome.  Future:await is the
** only way asyncio code suspends; a Trio task can wait on a future too
** (future_wait), its callback entry being the Trio task itself.
**
** Tasks are anchored only by what refers to them (callbacks, the ready
** queue, user variables), as in asyncio: a Task collected while pending is
** reported.
*/
#include <stdlib.h>
#include <string.h>

#include "asyncio/asyncio.h"

#define FUTURE_MT "trio_asyncio.Future"
#define FUTURE_EXC_MT "trio_asyncio.FutureWithError"
#define ATASK_MT "trio_asyncio.AioTask"
#define ATASK_DONE_MT "trio_asyncio.AioTaskDone"

/* User values: the loop; the done callbacks while pending, then the
** outcome: the result (nil when there is none, a list when there are
** several) or the error (has_exc); third, a plain future's cancel hook.
** A Task has two: its first is its thread while it runs, which keeps the
** loop below the Task's function (create_task), then the loop
** (aio_task_exited).  Rarely
** used fields live in a side table (extra_key): message (of a
** cancellation), name and source_traceback (of a Task). */
enum { FUV_LOOP = 1, FUV_STATE, FUV_HOOK, FUT_NUV = FUV_HOOK };
enum { TASK_UV_THREAD = FUV_LOOP, TASK_NUV = FUV_STATE };

/* Futures are checked on every hop, so compare metatables by pointer
** (cached in the engine: upvalue 1 of the core functions, else found with
** one registry lookup) instead of looking them up by name. */
static ta_future *testfuture_in(lua_State *L, ta_engine *E, int idx) {
  void *p;
  const void *mt = ta_udata_mt(L, idx, &p);
  if (mt == NULL) return NULL;
  if (E == NULL) E = ta_engine_get(L); /* one registry lookup, not three by name */
  if (mt == E->mt[TA_MT_FUTURE] || mt == E->mt[TA_MT_AIOTASK] || mt == E->mt[TA_MT_FUTURE_EXC] ||
      mt == E->mt[TA_MT_AIOTASK_DONE])
    return (ta_future *)p;
  return NULL;
}

/* A Task at idx: pending or failed (with a finalizer), or done otherwise
** (without one, see aio_task_exited); NULL for anything else. */
static ta_future *testtaskfut(lua_State *L, ta_engine *E, int idx) {
  void *p;
  const void *mt = ta_udata_mt(L, idx, &p);
  if (mt == NULL) return NULL;
  if (E == NULL) E = ta_engine_get(L); /* (as testfuture_in) */
  return mt == E->mt[TA_MT_AIOTASK] || mt == E->mt[TA_MT_AIOTASK_DONE] ? (ta_future *)p : NULL;
}

static ta_future *testfuture(lua_State *L, int idx) {
  return testfuture_in(L, ta_upengine(L), idx);
}

static ta_future *checkfuture(lua_State *L, int idx) {
  ta_future *f = testfuture(L, idx);
  if (f == NULL) luaL_typeerror(L, idx, "asyncio Future");
  return f;
}

static ta_future *checktaskfut(lua_State *L, int idx) {
  ta_future *f = testtaskfut(L, ta_upengine(L), idx);
  if (f == NULL) ta_udata_typeerror(L, idx, TA_MT_AIOTASK);
  return f;
}

/* A new pending future (kind TA_KIND_FUTURE) or Task (TA_KIND_TASK, its
** engine task still to be filled in) of the loop at loopidx; pushed.  lp:
** that loop, NULL when still to be checked. */
static ta_future *new_future(lua_State *L, ta_loop *lp, int loopidx, int kind) {
  int task = kind == TA_KIND_TASK;
  ta_future *f;
  if (lp == NULL) lp = (ta_loop *)ta_checkudata(L, ta_upengine(L), loopidx, TA_MT_LOOP);
  loopidx = lua_absindex(L, loopidx);
  f = (ta_future *)lua_newuserdatauv(L, task ? TA_AIOTASK_SIZE : sizeof(ta_future),
                                     task ? TASK_NUV : FUT_NUV);
  memset(f, 0, sizeof(ta_future)); /* (a Task's ta_task: ta_task_init) */
  f->loop = lp;
  f->kind = (unsigned char)kind;
  f->retrieved = 1;
  ta_setmetatable(L, lp->E, task ? TA_MT_AIOTASK : TA_MT_FUTURE);
  if (!task) {
    lua_pushvalue(L, loopidx);
    lua_setiuservalue(L, -2, FUV_LOOP);
  }
  return f;
}

/* Pushes the loop of the future f at fidx: a Task finds it by the loop's
** weak id (it keeps the loop alive, see TASK_UV_THREAD). */
static void push_future_loop(lua_State *L, ta_future *f, int fidx) {
  if (f->kind == TA_KIND_TASK) ta_push_weak(L, f->loop->E, f->loop->ref);
  else lua_getiuservalue(L, fidx, FUV_LOOP);
}

/* The side table: weak-keyed, future -> {field = value}. */
static const char extra_key = 'X';

/* Pushes the table of extra fields of the future at fidx (made when
** `make`; otherwise nil if it has none). */
static int push_extras(lua_State *L, int fidx, int make) {
  fidx = lua_absindex(L, fidx);
  ta_push_weak_keyed(L, &extra_key);
  lua_pushvalue(L, fidx);
  if (lua_rawget(L, -2) == LUA_TNIL && make) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, fidx);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  lua_replace(L, -2);
  return lua_type(L, -1);
}

/* Pushes the extra field key of the future at fidx (nil if unset). */
static int push_extra(lua_State *L, int fidx, const char *key) {
  int type;
  if (push_extras(L, fidx, 0) != LUA_TTABLE) return LUA_TNIL;
  type = lua_getfield(L, -1, key);
  lua_replace(L, -2);
  return type;
}

/* Sets the extra field key of the future at fidx to the value on top
** (popped). */
static void set_extra(lua_State *L, int fidx, const char *key) {
  fidx = lua_absindex(L, fidx);
  push_extras(L, fidx, 1);
  lua_insert(L, -2);
  lua_setfield(L, -2, key);
  lua_pop(L, 1);
}

static void push_cancelled_error(lua_State *L, ta_future *f, int fidx) {
  push_extra(L, fidx, "message");
  ta_push_error(L, f->loop->E, "CancelledError", lua_isstring(L, -1) ? lua_tostring(L, -1) : "cancelled");
  lua_replace(L, -2);
}

/* The CancelledError a cancelled future raises again (result(), await,
** exception()): the one that ended a Task, which shows the line that was
** interrupted, else a new one.  Its traceback gains the stack of `co`,
** where it is raised now (from `level` on), as a Python traceback grows
** while the exception propagates.  It stops growing past
** CANCELLED_TRACEBACK_MAX bytes: a cancel travelling up a chain of
** thousands of awaiting Tasks would otherwise copy the whole text at every
** level (quadratic time). */
enum { CANCELLED_TRACEBACK_MAX = 32 * 1024 };
static void push_cancelled_again(lua_State *L, ta_future *f, int fidx, lua_State *co, int level) {
  size_t len;
  fidx = lua_absindex(L, fidx);
  if (push_extra(L, fidx, "cancelled_exc") != LUA_TTABLE) {
    lua_pop(L, 1);
    push_cancelled_error(L, f, fidx);
  }
  if (!lua_istable(L, -1)) return;
  lua_getfield(L, -1, "traceback");
  if (!lua_isstring(L, -1)) {
    lua_pop(L, 1);
    lua_pushliteral(L, "");
  }
  lua_tolstring(L, -1, &len);
  if (len > CANCELLED_TRACEBACK_MAX) {
    lua_pop(L, 1);
    return;
  }
  ta_traceback(L, co, "\nraised again:", level);
  lua_concat(L, 2);
  lua_tolstring(L, -1, &len);
  if (len > CANCELLED_TRACEBACK_MAX) {
    lua_pushliteral(L, "\n(the awaits it was raised again through after this are not shown)");
    lua_concat(L, 2);
  }
  lua_setfield(L, -2, "traceback");
}

/* Pushes the results of a done future, or raises its error. */
static int push_outcome(lua_State *L, ta_future *f, int fidx) {
  if (f->state == TA_FUT_CANCELLED) {
    push_cancelled_again(L, f, fidx, L, 1);
    return lua_error(L);
  }
  if (f->state == TA_FUT_PENDING)
    return ta_error(L, "InvalidStateError", "Result is not ready.");
  f->retrieved = 1;
  lua_getiuservalue(L, fidx, FUV_STATE);
  if (f->has_exc) return lua_error(L);
  if (f->nresults == 1) return 1;
  {
    int t = lua_gettop(L);
    luaL_checkstack(L, f->nresults, "too many results");
    for (int i = 1; i <= f->nresults; i++) lua_rawgeti(L, t, i);
    return f->nresults;
  }
}

static int trio_wakeup(lua_State *L);
static int trio_wait(lua_State *L, ta_future *f, ta_task *t, const char *fname, lua_KFunction k);
static int trio_wait_k(lua_State *L, int status, lua_KContext ctx);
static int trio_wait_abort(lua_State *L, ta_task *t);

/* Done callbacks: with one callback, FUV_STATE holds it directly (the
** common case: one awaiting Task or Trio task, then cb_task tells which);
** with more, a list (cb_list set).  The entry on top (popped) is a
** function called as cb(fut), an awaiting Task (queued itself, to take the
** outcome when it runs) or an awaiting Trio task; is_task: CB_AIO_TASK or
** CB_TRIO_TASK when it is known to be one, CB_GATHER when it is known to be
** a gather's gather_child_done, else CB_UNKNOWN.  loopidx: where
** the future's loop is on the stack, 0 when it is not (it is looked up). */
enum { CB_UNKNOWN, CB_AIO_TASK, CB_TRIO_TASK, CB_GATHER };

static int gather_child_done(lua_State *L);
static int gather_counts_now(lua_State *L, ta_future *c, int known);

static void schedule_one(lua_State *L, ta_future *f, int fidx, int is_task, int loopidx) {
  int is_function = is_task == CB_GATHER || (is_task == CB_UNKNOWN && lua_type(L, -1) == LUA_TFUNCTION);
  if (is_function && gather_counts_now(L, f, is_task == CB_GATHER)) { /* nothing to schedule */
    lua_pop(L, 1);
    return;
  }
  if (is_task == CB_AIO_TASK ||
      (is_task == CB_UNKNOWN && !is_function && testtaskfut(L, f->loop->E, -1) != NULL)) {
    if (loopidx) lua_pushvalue(L, loopidx);
    else push_future_loop(L, f, fidx);
    ta_loop_append_below(L, f->loop);
    return;
  }
  if (is_task == CB_TRIO_TASK ||
      (!is_function && ta_testudata(L, f->loop->E, -1, TA_MT_TASK))) { /* trio_wakeup(task): no Handle */
    lua_rawgeti(L, LUA_REGISTRYINDEX, f->loop->E->trio_wakeup_ref);
    lua_insert(L, -2);
  } else {
    lua_pushvalue(L, fidx);
  }
  if (loopidx && lua_type(L, -2) == LUA_TFUNCTION) { /* call_soon's entry for a function */
    ta_loop_ready_push(L, f->loop, loopidx, 2);
    ta_loop_wake(f->loop);
  } else {
    ta_loop_call_soon(L, f->loop, NULL, 1);
  }
}

/* Completes the pending future at fidx: state, and the outcome on top of
** the stack (popped; nil for a cancellation) replaces the done callbacks,
** which are scheduled (loopidx: see schedule_one). */
static void finish(lua_State *L, ta_future *f, int fidx, int state, int loopidx) {
  int n = f->ncallbacks, list = f->cb_list, cbs;
  fidx = lua_absindex(L, fidx);
  lua_getiuservalue(L, fidx, FUV_STATE);
  lua_insert(L, -2);
  lua_setiuservalue(L, fidx, FUV_STATE);
  f->state = (unsigned char)state;
  f->ncallbacks = 0;
  f->cb_list = 0;
  if (n == 0) {
    lua_pop(L, 1);
  } else if (!list) {
    schedule_one(L, f, fidx, f->cb_task, loopidx);
  } else {
    cbs = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, cbs, i);
      schedule_one(L, f, fidx, CB_UNKNOWN, loopidx);
    }
    lua_pop(L, 1);
  }
}

/* The first callback of the future at fidx: the value on top (popped).
** Raises no error (a Task may set it on its suspended thread). */
static void set_first_callback(lua_State *L, ta_future *f, int fidx, int is_task) {
  lua_setiuservalue(L, fidx, FUV_STATE);
  f->ncallbacks = 1;
  f->cb_task = (unsigned char)is_task;
}

/* Adds the callback at cbidx; is_task: what it is (see schedule_one). */
static void add_callback(lua_State *L, ta_future *f, int fidx, int cbidx, int is_task) {
  fidx = lua_absindex(L, fidx);
  cbidx = lua_absindex(L, cbidx);
  if (f->ncallbacks == 0) {
    lua_pushvalue(L, cbidx);
    set_first_callback(L, f, fidx, is_task);
    return;
  }
  if (!f->cb_list) { /* second callback: make the list */
    lua_createtable(L, 2, 0);
    lua_getiuservalue(L, fidx, FUV_STATE);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, fidx, FUV_STATE);
    f->cb_list = 1;
  } else {
    lua_getiuservalue(L, fidx, FUV_STATE);
  }
  lua_pushvalue(L, cbidx);
  lua_rawseti(L, -2, ++f->ncallbacks);
  lua_pop(L, 1);
}

/* The future at fidx gets an error, reported if nobody retrieves it: a
** plain future takes the metatable with a finalizer for that (plain
** futures have none until then: most never need one, and finalizers cost
** every collection). */
static void hold_error(lua_State *L, ta_future *f, int fidx) {
  f->has_exc = 1;
  f->retrieved = 0;
  if (f->kind == TA_KIND_FUTURE) {
    lua_pushvalue(L, fidx);
    ta_setmetatable(L, f->loop->E, TA_MT_FUTURE_EXC);
    lua_pop(L, 1);
  }
}

/* Settles the pending future at fidx with the value on top (popped), as
** its result or (is_exc) its error. */
static void settle(lua_State *L, ta_future *f, int fidx, int is_exc) {
  f->nresults = 1;
  if (is_exc) hold_error(L, f, fidx);
  finish(L, f, fidx, TA_FUT_FINISHED, 0);
}

/* Settles the pending future at fidx with the top n values (popped) as its
** results: one is kept as it is, none as nil (push_outcome reads no list
** then: a Task that returns nothing costs no table), more as a list
** (loopidx: see schedule_one). */
static void settle_results(lua_State *L, ta_future *f, int fidx, int n, int loopidx) {
  if (n == 0) {
    lua_pushnil(L);
  } else if (n != 1) {
    int first = lua_gettop(L) - n + 1;
    fidx = lua_absindex(L, fidx);
    lua_createtable(L, n, 0);
    lua_insert(L, first);
    for (int i = n; i >= 1; i--) lua_rawseti(L, first, i);
  }
  f->nresults = n;
  finish(L, f, fidx, TA_FUT_FINISHED, loopidx);
}

/* Completes the pending future at fidx as cancelled, with the message at
** msgidx (0 or nil: none). */
static void finish_cancelled(lua_State *L, ta_future *f, int fidx, int msgidx) {
  if (msgidx && !lua_isnil(L, msgidx)) {
    lua_pushvalue(L, msgidx);
    set_extra(L, fidx, "message");
  }
  lua_pushnil(L);
  finish(L, f, fidx, TA_FUT_CANCELLED, 0);
}

/* ---- Future methods ---- */

static int check_pending(lua_State *L, ta_future *f, const char *fname) {
  if (f->state != TA_FUT_PENDING)
    return ta_error(L, "InvalidStateError", "%s: invalid state: the future is already done", fname);
  return 0;
}

static int f_set_result(lua_State *L) {
  ta_future *f = checkfuture(L, 1);
  if (f->kind == TA_KIND_TASK) return ta_error(L, "RuntimeError", "Task does not support set_result()");
  check_pending(L, f, "Future:set_result");
  lua_settop(L, 2);
  settle(L, f, 1, 0);
  return 0;
}

/* future_set_results(fut, ...): like set_result, keeping every value
** (the bridge hands a Trio task's results over this way). */
static int l_future_set_results(lua_State *L) {
  ta_future *f = checkfuture(L, 1);
  int n = lua_gettop(L) - 1;
  check_pending(L, f, "future_set_results");
  settle_results(L, f, 1, n, 0);
  return 0;
}

/* The engine's offer_results: the top n values (popped) become the
** results of the future at fidx, unless it is done already (cancelled
** meanwhile): the bridge's Trio task (make_scope_task, csrc/trio/scope.c)
** hands its results over this way, to the future its start was given
** (checked there, or made by l_trio_call). */
static void offer_results(lua_State *L, int fidx, int n) {
  ta_future *f = (ta_future *)lua_touserdata(L, fidx);
  if (f->state == TA_FUT_PENDING) settle_results(L, f, fidx, n, 0);
  else lua_pop(L, n);
}

static int f_set_exception(lua_State *L) {
  ta_future *f = checkfuture(L, 1);
  if (f->kind == TA_KIND_TASK) return ta_error(L, "RuntimeError", "Task does not support set_exception()");
  luaL_argcheck(L, !lua_isnoneornil(L, 2), 2, "exception expected");
  check_pending(L, f, "Future:set_exception");
  lua_settop(L, 2);
  settle(L, f, 1, 1);
  return 0;
}

static int task_cancel(lua_State *L, int tidx, int msgidx);

/* Cancels the future at fidx (a Task is asked to cancel); true if it will. */
static int future_cancel(lua_State *L, int fidx, int msgidx) {
  ta_future *f = checkfuture(L, fidx);
  fidx = lua_absindex(L, fidx);
  if (msgidx) msgidx = lua_absindex(L, msgidx);
  f->retrieved = 1; /* as asyncio: a cancel() means nobody waits to be told of its error */
  if (f->kind == TA_KIND_TASK) return task_cancel(L, fidx, msgidx);
  if (f->state != TA_FUT_PENDING) return 0;
  if (lua_getiuservalue(L, fidx, FUV_HOOK) != LUA_TNIL) {
    /* The future stands for work elsewhere (a Trio task): ask it to stop;
    ** the future completes when that work has ended.  The hook is a
    ** function hook(fut, msg) or an object with :cancel() (a CancelScope). */
    if (lua_isfunction(L, -1)) {
      lua_pushvalue(L, fidx);
      if (msgidx) lua_pushvalue(L, msgidx);
      else lua_pushnil(L);
      lua_call(L, 2, 0);
    } else {
      lua_getfield(L, -1, "cancel");
      lua_insert(L, -2);
      lua_call(L, 1, 0);
    }
    return 1;
  }
  lua_pop(L, 1);
  finish_cancelled(L, f, fidx, msgidx);
  return 1;
}

static int f_cancel(lua_State *L) {
  checkfuture(L, 1);
  lua_pushboolean(L, future_cancel(L, 1, lua_isnoneornil(L, 2) ? 0 : 2));
  return 1;
}

static int f_done(lua_State *L) {
  lua_pushboolean(L, checkfuture(L, 1)->state != TA_FUT_PENDING);
  return 1;
}

static int f_cancelled(lua_State *L) {
  lua_pushboolean(L, checkfuture(L, 1)->state == TA_FUT_CANCELLED);
  return 1;
}

static int f_result(lua_State *L) {
  return push_outcome(L, checkfuture(L, 1), 1);
}

static int f_exception(lua_State *L) {
  ta_future *f = checkfuture(L, 1);
  if (f->state == TA_FUT_CANCELLED) {
    push_cancelled_again(L, f, 1, L, 1);
    return lua_error(L);
  }
  if (f->state == TA_FUT_PENDING) return ta_error(L, "InvalidStateError", "Exception is not set.");
  f->retrieved = 1;
  if (f->has_exc) lua_getiuservalue(L, 1, FUV_STATE);
  else lua_pushnil(L);
  return 1;
}

static int f_add_done_callback(lua_State *L) {
  ta_future *f = checkfuture(L, 1);
  ta_check_callable(L, 2);
  lua_settop(L, 2);
  if (f->state != TA_FUT_PENDING) {
    lua_pushvalue(L, 1);
    ta_loop_call_soon(L, f->loop, NULL, 1);
  } else {
    add_callback(L, f, 1, 2, CB_UNKNOWN);
  }
  return 0;
}

static int f_remove_done_callback(lua_State *L) {
  ta_future *f = checkfuture(L, 1);
  int removed = 0, j = 0;
  luaL_checkany(L, 2);
  if (f->ncallbacks == 1 && !f->cb_list) {
    lua_getiuservalue(L, 1, FUV_STATE);
    if (lua_rawequal(L, -1, 2)) {
      lua_pushnil(L);
      lua_setiuservalue(L, 1, FUV_STATE);
      f->ncallbacks = 0;
      removed = 1;
    }
    lua_pop(L, 1);
  } else if (f->ncallbacks > 0) {
    lua_getiuservalue(L, 1, FUV_STATE);
    for (int i = 1; i <= f->ncallbacks; i++) {
      lua_rawgeti(L, 3, i);
      if (lua_rawequal(L, -1, 2)) {
        removed++;
        lua_pop(L, 1);
      } else {
        lua_rawseti(L, 3, ++j);
      }
    }
    for (int i = j + 1; i <= f->ncallbacks; i++) {
      lua_pushnil(L);
      lua_rawseti(L, 3, i);
    }
    f->ncallbacks = j;
  }
  lua_pushinteger(L, removed);
  return 1;
}

static int f_get_loop(lua_State *L) {
  push_future_loop(L, checkfuture(L, 1), 1);
  return 1;
}

/* fut:await() — asyncio-flavored: suspend the running Task until fut is
** done, then return its results or raise its error. */
static int await_future_k(lua_State *L, ta_future *f, ta_task *t, lua_KFunction k);
#define await_future(L, f, t) await_future_k((L), (f), (t), NULL)

static int f_await(lua_State *L) {
  ta_future *f = checkfuture(L, 1);
  return await_future(L, f, ta_async_check(L, "Future:await", TA_ASYNCIO));
}

/* The asyncio-flavored task t awaits the future f at 1; a Task that
** suspends for it is continued by k (NULL: the engine's usual one). */
static int await_future_k(lua_State *L, ta_future *f, ta_task *t, lua_KFunction k) {
  if (f->state != TA_FUT_PENDING) return push_outcome(L, f, 1);
  if (!ta_is_aio_task(t)) { /* allow_asyncio */
    lua_settop(L, 1);
    return trio_wait(L, f, t, "Future:await", trio_wait_k);
  }
  if (f->loop != ta_task_future(t)->loop)
    return ta_error(L, "RuntimeError", "Future:await: the future is attached to a different loop "
                                       "than the Task awaiting it");
  if (f == ta_task_future(t))
    return ta_error(L, "RuntimeError", "Future:await: a Task cannot await itself");
  lua_settop(L, 1);
  t->wait = f;
  return ta_task_yield(L, t, 0, k);
}

/* ---- asyncio.sleep ---- */

/* A Task's own sleep: asyncio.sleep(delay) called by a Task arms the
** Task's engine timer in its loop's heap, with no Future and no
** TimerHandle (together they were a fifth of what a sleeping Task costs);
** the timer's ref keeps the Task alive meanwhile, as the TimerHandle of
** Python's sleep does: the lease of the ready-ring slot the Task left for
** this step (loop.c, ta_loop_lease), else a registry reference.
** Task:cancel() ends the sleep early. */
#define aiotask_of_timer(tm) \
  ((ta_aiotask *)((char *)(tm) - offsetof(ta_task, timer) - offsetof(ta_aiotask, t)))

static void task_sleep_fired(lua_State *L, ta_engine *E, ta_timer *tm) {
  ta_loop *lp = aiotask_of_timer(tm)->f.loop;
  (void)E;
  ta_loop_drop_anchor(L, lp, tm, lp->loop_idx, 1);
  ta_loop_ready_from_timer(L, lp);
}

/* Ends a Task's own sleep without waking it (its loop is released, or it
** is cancelled: the caller wakes it). */
void ta_aio_task_sleep_release(lua_State *L, ta_timer *tm) {
  ta_aiotask *at = aiotask_of_timer(tm);
  if (tm->index >= 0) ta_heap_remove(&at->f.loop->timers, tm);
  if (L != NULL) ta_loop_drop_anchor(L, at->f.loop, tm, 0, 0);
  tm->ref = LUA_NOREF;
}

/* The Task at tidx (engine task t) leaves its own sleep for the ready
** queue, to be cancelled at its next step. */
static void wake_from_sleep(lua_State *L, ta_task *t, int tidx) {
  tidx = lua_absindex(L, tidx);
  ta_aio_task_sleep_release(L, &t->timer);
  push_future_loop(L, ta_task_future(t), tidx);
  lua_pushvalue(L, tidx);
  ta_loop_append_to(L, ta_task_future(t)->loop, -2);
  lua_pop(L, 1);
}

/* After a Task's own sleep, on [delay, result]. */
static int task_sleep_k(lua_State *L, int status, lua_KContext ctx) {
  ta_task *t = (ta_task *)ctx;
  (void)status;
  if (t->resume_error) { /* cancelled */
    t->resume_error = 0;
    return lua_error(L);
  }
  lua_pushvalue(L, 2);
  return 1;
}

static int all_results_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_gettop(L);
}

/* sleep(delay [, result]) -> result, after delay seconds (asyncio.sleep).
** A delay <= 0 is a bare yield to the loop.  Upvalue 2 is a Lua version
** for what is not an asyncio Task (an allow_asyncio Trio task) sleeping a
** while. */
static int l_aio_sleep(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  double delay;
  ta_task *t = E->current;
  if (lua_type(L, 1) != LUA_TNUMBER) return luaL_typeerror(L, 1, "number");
  delay = lua_tonumber(L, 1);
  if (delay <= 0 && t != NULL && t->co == L && ta_is_aio_task(t) && lua_isyieldable(L)) {
    /* a Task's bare yield (ta_async_check's checks, inline) */
    lua_settop(L, 2);
    t->wait = NULL;
    return ta_task_yield(L, t, 1, NULL);
  }
  luaL_argcheck(L, delay == delay, 1, "number expected, got NaN");
  t = ta_async_check_in(L, E, "asyncio.sleep", TA_ASYNCIO);
  lua_settop(L, 2);
  if (delay <= 0) {
    if (!ta_is_aio_task(t)) return ta_checkpoint_ret(L, t, 1);
    t->wait = NULL;
    return ta_task_yield(L, t, 1, NULL);
  }
  if (!ta_is_aio_task(t)) {
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_callk(L, 2, LUA_MULTRET, 0, all_results_k);
    return lua_gettop(L);
  }
  { /* the Task sleeps on its own timer: [delay, result] */
    ta_aiotask *at = (ta_aiotask *)ta_task_future(t);
    lua_settop(L, 2);
    ta_push_weak(L, t->E, t->ref);
    t->timer.ref = ta_loop_lease(L, at->f.loop); /* anchored by its ring slot, or else: */
    if (t->timer.ref == LUA_NOREF) t->timer.ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->timer.cb = task_sleep_fired;
    if (ta_loop_arm_timer(at->f.loop, &t->timer, delay) != 0) {
      ta_loop_drop_anchor(L, at->f.loop, &t->timer, 0, 0);
      return luaL_error(L, "asyncio.sleep: not enough memory");
    }
    t->wait = NULL;
    return ta_task_yield(L, t, 0, task_sleep_k);
  }
}

/* The asyncio functions in C keep Lua functions for what C cannot do as
** upvalues 2, 3, ... (the engine is upvalue 1): their makers are these. */
static int bind_lua_helpers(lua_State *L, lua_CFunction f) {
  int n = lua_gettop(L);
  for (int i = 1; i <= n; i++) luaL_checktype(L, i, LUA_TFUNCTION);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_pushcclosure(L, f, n + 1);
  return 1;
}

/* Pushes the running loop: found in C, or else by the Lua
** asyncio.get_running_loop at upvalue `up` (which raises if there is none). */
static void push_running_loop(lua_State *L, int up) {
  if (ta_push_running_loop(L, ta_upengine(L))) return;
  lua_pushvalue(L, lua_upvalueindex(up));
  lua_call(L, 0, 1);
}

/* make_aio_sleep(lua_sleep) -> asyncio.sleep */
static int l_make_aio_sleep(lua_State *L) {
  return bind_lua_helpers(L, l_aio_sleep);
}

static int f_tostring(lua_State *L) {
  ta_future *f = checkfuture(L, 1);
  static const char *const states[] = {"pending", "cancelled", "finished"};
  if (f->kind == TA_KIND_TASK) {
    if (push_extra(L, 1, "name") == LUA_TNIL)
      lua_pushfstring(L, "Task-%d", (int)ta_future_task(f)->id);
    lua_pushfstring(L, "Task '%s' (%s, %p)", lua_tostring(L, -1), states[f->state], (void *)f);
  } else {
    lua_pushfstring(L, "Future (%s, %p)", states[f->state], (void *)f);
  }
  return 1;
}

static void report(lua_State *L, ta_future *f, int fidx, const char *msg, int with_exc) {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  if (with_exc) {
    lua_getiuservalue(L, fidx, FUV_STATE);
    lua_setfield(L, -2, "exception");
  }
  lua_pushvalue(L, fidx);
  lua_setfield(L, -2, f->kind == TA_KIND_TASK ? "task" : "future");
  if (f->kind == TA_KIND_TASK) { /* debug mode recorded where it was created */
    push_extra(L, fidx, "source_traceback");
    lua_setfield(L, -2, "source_traceback");
  }
  ta_loop_exception(L, f->loop, -1);
  lua_pop(L, 1);
}

static int f_gc(lua_State *L) {
  ta_future *f = checkfuture(L, 1);
  if (f->state == TA_FUT_FINISHED && !f->retrieved) {
    f->retrieved = 1;
    report(L, f, 1, f->kind == TA_KIND_TASK ? "Task exception was never retrieved"
                                            : "Future exception was never retrieved", 1);
  }
  if (f->kind == TA_KIND_TASK) {
    ta_task *t = ta_future_task(f);
    if (t->co != NULL) { /* pending: its engine task never ended */
      report(L, f, 1, "Task was destroyed but it is pending!", 0);
      t->state = TA_DONE;
      t->co = NULL;
      ta_shared_unref(L, t->E, t->ctx_ref);
      t->ctx_ref = LUA_NOREF;
      t->E->nunanchored--;
      f->loop->npending--;
    }
    ta_weak_unref_later(L, t->E, t->ref); /* kept after the task ended, for its name */
    t->ref = LUA_NOREF;
  }
  return 0;
}

/* The name of an asyncio Task as Task:get_name() gives it, pushed, its
** object at idx (0: found by its weak id); NULL (nothing pushed) when the
** object cannot be found (a finished Task's weak id is gone). */
static const char *aio_task_name(lua_State *L, ta_task *t, int idx) {
  if (idx) lua_pushvalue(L, idx);
  else ta_push_weak(L, t->E, t->ref);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  if (push_extra(L, lua_gettop(L), "name") != LUA_TSTRING) {
    lua_pop(L, 2);
    return lua_pushfstring(L, "Task-%d", (int)t->id); /* as Task:get_name() */
  }
  lua_replace(L, -2);
  return lua_tostring(L, -1);
}

/* ---- a Task parked by C code (see ta_aio_park in asyncio.h) ---- */

/* A Task parks in p without a Future: nothing but p refers to the wait
** (t->wait is p while it is parked), so a wake is only "onto the ready
** queue", and the Task resumes with nothing on its stack to take away. */
void ta_aio_park_init(ta_aio_park *p) {
  p->kind = TA_KIND_PARK;
  p->task = NULL;
}

int ta_aio_park_k(lua_State *L, ta_task *t, ta_aio_park *p, lua_KFunction k) {
  p->task = t;
  t->wait = p;
  return ta_task_yield(L, t, 0, k);
}

/* Ends the wait of the Task parked in p (not yet queued); returns it. */
static ta_task *unpark(ta_aio_park *p) {
  ta_task *t = p->task;
  p->task = NULL;
  t->wait = NULL;
  return t;
}

void ta_aio_unpark(lua_State *L, ta_aio_park *p, int erridx) {
  ta_task *t = unpark(p);
  ta_loop *lp = ta_task_future(t)->loop;
  if (erridx && t->co != NULL && lua_checkstack(t->co, 1)) {
    lua_pushvalue(L, erridx);
    lua_xmove(L, t->co, 1);
    t->nargs = 1;
    t->resume_error = 1;
  }
  if (lp->current != NULL) { /* woken by a Task of its loop: the ring is at hand */
    ta_loop_append_in_step(L, lp);
  } else {
    ta_loop_append_below(L, lp);
  }
}

/* In the continuation of ta_aio_park_k: true if the Task was resumed with
** an error (on top of the stack: a cancellation, or ta_aio_unpark's). */
int ta_aio_park_failed(ta_task *t) {
  if (!t->resume_error) return 0;
  t->resume_error = 0;
  return 1;
}

/* ---- Tasks ---- */

/* Runs one step of the Task f at tidx (from its driver, run_entry); resume
** values (or an error) for its coroutine are already on its thread. */
static void task_step(lua_State *L, ta_future *f, int tidx) {
  ta_future *prev;
  ta_task *t = ta_future_task(f);
  ta_loop *lp = f->loop;
  if (f->must_cancel && t->state == TA_NEW) { /* cancelled before it started */
    f->must_cancel = 0;
    push_cancelled_error(L, f, tidx);
    ta_task_fail(L, t);
    return;
  }
  if (f->must_cancel) { /* the traceback shows where it is interrupted */
    f->must_cancel = 0;
    lua_pop(t->co, t->nargs);
    push_cancelled_again(L, f, tidx, t->co, 0);
    lua_xmove(L, t->co, 1);
    t->nargs = 1;
    t->resume_error = 1;
  }
  prev = lp->current;
  lp->current = f;
  ta_step_task_at(L, t, tidx);
  lp->current = prev;
  if (t->state == TA_DONE) return;
  if (t->wait != NULL && ((ta_aio_park *)t->wait)->kind == TA_KIND_PARK) {
    if (f->must_cancel) { /* it cancelled itself, then parked: woken to be cancelled */
      unpark((ta_aio_park *)t->wait);
      lua_pushvalue(L, tidx);
      ta_loop_append_in_step(L, lp);
    }
  } else if (t->wait != NULL && ((ta_future *)t->wait)->state == TA_FUT_PENDING) {
    ta_future *w = (ta_future *)t->wait;
    if (w->ncallbacks == 0 && !f->must_cancel && lua_checkstack(t->co, 1)) {
      /* the common case: the Task is the only callback, set where the
      ** awaited future is, at index 1 of its thread (self of its await) */
      lua_pushvalue(L, tidx);
      lua_xmove(L, t->co, 1);
      set_first_callback(t->co, w, 1, CB_AIO_TASK);
      return;
    }
    lua_pushvalue(t->co, 1); /* the awaited future: self of its await */
    lua_xmove(t->co, L, 1);
    add_callback(L, w, -1, tidx, CB_AIO_TASK);
    if (f->must_cancel) {
      push_extra(L, tidx, "message");
      if (future_cancel(L, -2, lua_isnil(L, -1) ? 0 : lua_gettop(L))) f->must_cancel = 0;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  } else if (t->timer.index < 0) { /* a bare yield, or an await already satisfied: step soon */
    lua_pushvalue(L, tidx);
    ta_loop_append_in_step(L, lp);
  } else if (f->must_cancel) { /* it cancelled itself, then slept */
    wake_from_sleep(L, t, tidx);
  }
}

/* Hands the outcome of the done future w (at widx) to the task t. */
static void resume_with_outcome(lua_State *L, ta_task *t, ta_future *w, int widx) {
  int n = 1;
  if (w->state == TA_FUT_CANCELLED) {
    push_cancelled_again(L, w, widx, t->co, 0);
    t->resume_error = 1;
  } else if (w->has_exc) {
    w->retrieved = 1;
    lua_getiuservalue(L, widx, FUV_STATE);
    t->resume_error = 1;
  } else {
    n = push_outcome(L, w, widx);
    lua_checkstack(t->co, n);
  }
  lua_xmove(L, t->co, n);
  t->nargs = n;
}

/* The ready queue of the Task f's loop (its driver, in run_entry) runs f
** at tidx: its first step, a step after a bare yield, or the wake-up of the
** future it awaits, done by now. */
void ta_aio_task_run(lua_State *L, ta_future *f, int tidx) {
  ta_task *t = ta_future_task(f);
  ta_future *w = (ta_future *)t->wait;
  if (f->state != TA_FUT_PENDING || t->co == NULL) return;
  if (w != NULL && w->state == TA_FUT_FINISHED && !w->has_exc && w->nresults == 1) {
    /* the common case, one result: straight onto the task's stack, from
    ** the awaited future at index 1 there (self of its await) */
    t->wait = NULL;
    w->retrieved = 1;
    lua_checkstack(t->co, 1);
    lua_getiuservalue(t->co, 1, FUV_STATE);
    t->nargs = 1;
  } else if (w != NULL) {
    t->wait = NULL;
    lua_pushvalue(t->co, 1); /* the awaited future: self of its await */
    lua_xmove(t->co, L, 1);
    resume_with_outcome(L, t, w, lua_gettop(L));
    lua_pop(L, 1);
  }
  task_step(L, f, tidx);
}

static int is_instance(lua_State *L, int idx, int clsref) {
  if (clsref == LUA_NOREF || !lua_getmetatable(L, idx)) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, clsref);
  for (;;) {
    if (lua_rawequal(L, -1, -2)) {
      lua_pop(L, 2);
      return 1;
    }
    lua_pushliteral(L, "__parent");
    if (lua_rawget(L, -3) != LUA_TTABLE) {
      lua_pop(L, 3);
      return 0;
    }
    lua_replace(L, -3);
  }
}

/* The engine task of an asyncio Task ended: its results (on t->co) or its
** error (below the Task, at fidx) become the Task's outcome. */
static void aio_task_exited(lua_State *L, ta_task *t, int fidx, int ok, int nres) {
  ta_future *f = ta_task_future(t);
  ta_engine *E = t->E;
  int loopidx;
  f->loop->npending--;
  if (ok) { /* a finished thread is down to its base: the loop kept at 2 */
    lua_pushvalue(t->co, 2);
    lua_xmove(t->co, L, 1);
  } else {
    ta_push_weak(L, E, f->loop->ref);
  }
  loopidx = lua_gettop(L);
  if (ok && f->must_cancel) {
    /* it cancelled itself and returned before another await: as asyncio,
    ** the Task ends cancelled (its results are dropped) */
    f->must_cancel = 0;
    push_extra(L, fidx, "message");
    finish_cancelled(L, f, fidx, lua_gettop(L));
  } else if (ok) {
    if (nres > LUA_MINSTACK / 2) luaL_checkstack(L, nres, "too many results");
    lua_xmove(t->co, L, nres);
    settle_results(L, f, fidx, nres, loopidx);
  } else if (is_instance(L, fidx - 1, E->aio_cancelled_ref)) {
    lua_pushvalue(L, fidx - 1); /* raised again by result() and await */
    set_extra(L, fidx, "cancelled_exc");
    lua_getfield(L, fidx - 1, "message");
    finish_cancelled(L, f, fidx, lua_gettop(L));
  } else {
    lua_pushvalue(L, fidx - 1);
    settle(L, f, fidx, 1);
  }
  lua_pushvalue(L, loopidx); /* the loop instead of the thread (TASK_UV_THREAD) */
  lua_setiuservalue(L, fidx, TASK_UV_THREAD);
  if (!f->has_exc) {
    /* Done without an error to report: its finalizer has nothing left to
    ** do but give back its weak id, which goes now (release_exited), so it
    ** takes the class without one (a finalizer costs a protected call per
    ** Task at its collection: about 700 instructions, against 110 here). */
    lua_pushvalue(L, fidx);
    ta_setmetatable(L, E, TA_MT_AIOTASK_DONE);
    t->ref_ends_at_exit = 1;
  }
  lua_settop(L, fidx);
}

const ta_task_kind ta_aio_task_kind = {
  "asyncio Task", 0, 1, aio_task_exited, NULL, aio_task_name, NULL
};

/* Task:cancel(msg): cancel what it awaits, or throw CancelledError into it
** at its next step.  A Task awaiting a Task passes the cancel on down the
** chain (as asyncio's Task.cancel cancels its _fut_waiter); the walk is a
** loop, not a recursion, so a chain of any depth costs one stack slot. */
static int task_cancel(lua_State *L, int tidx, int msgidx) {
  ta_future *f = checktaskfut(L, tidx);
  int top = lua_gettop(L), cur = top + 1;
  f->retrieved = 1; /* as asyncio: nobody waits to be told of its error */
  if (f->state != TA_FUT_PENDING) return 0;
  lua_pushvalue(L, tidx); /* cur: the Task being cancelled now */
  for (;;) {
    ta_task *t = ta_future_task(f);
    ta_future *w;
    f->cancel_requests++;
    if (msgidx) {
      lua_pushvalue(L, msgidx);
      set_extra(L, cur, "message");
    }
    if (t->timer.index >= 0) { /* in its own sleep: woken now, to be cancelled */
      wake_from_sleep(L, t, cur);
      break;
    }
    if (t->wait == NULL || t->co == NULL) break;
    if (((ta_aio_park *)t->wait)->kind == TA_KIND_PARK) { /* parked by C code: woken now, to be cancelled */
      unpark((ta_aio_park *)t->wait);
      lua_pushvalue(L, cur);
      push_future_loop(L, f, cur);
      ta_loop_append_below(L, f->loop);
      break;
    }
    lua_pushvalue(t->co, 1); /* the awaited future: self of its await */
    lua_xmove(t->co, L, 1);
    w = checkfuture(L, -1);
    w->retrieved = 1;
    if (w->kind != TA_KIND_TASK) {
      if (!future_cancel(L, lua_gettop(L), msgidx)) break;
      lua_settop(L, top);
      return 1;
    }
    if (w->state != TA_FUT_PENDING) break;
    lua_replace(L, cur); /* the awaited Task will cancel: on down the chain */
    f = w;
  }
  f->must_cancel = 1;
  lua_settop(L, top);
  return 1;
}

/* Whether the code running on L is a Task of lp, being stepped: the
** frame of its driver then holds the loop and its ready ring
** (ta_loop_push_in_step, ta_loop_append_in_step). */
static int task_of_running(lua_State *L, ta_engine *E, const ta_loop *lp) {
  ta_task *t = E->current;
  return t != NULL && t->co == L && ta_is_aio_task(t) && lp->current == ta_task_future(t);
}

/* A new Task of the loop at loopidx running the function at fnidx with
** the arguments after it (the loop is at 1 before the function, or on top
** after the arguments): the loop's task factory makes it when the loop
** has one and `use_factory` (asyncio's loop.create_task), else it is made
** here (asyncio.Task).  The function is callable (checked).  lp: the
** loop, NULL when still to be checked.  The Task is pushed; returns it, or
** NULL when the factory made what is pushed. */
static ta_future *create_task_at(lua_State *L, ta_engine *E, ta_loop *lp, int loopidx, int fnidx,
                                 int use_factory, const char *fname) {
  int nargs = lua_gettop(L) - 2, fidx;
  ta_task *parent = E->current, *t;
  ta_future *f;
  if (lp == NULL) lp = (ta_loop *)ta_checkudata(L, E, loopidx, TA_MT_LOOP);
  if (lp->closed) ta_error(L, "RuntimeError", "%s: Event loop is closed", fname);
  if (use_factory && lp->has_factory) { /* factory(loop, fn, ...) */
    if (loopidx != 1) lua_insert(L, 1);
    ta_loop_push_factory(L, 1);
    lua_insert(L, 1);
    lua_call(L, nargs + 2, 1);
    return NULL;
  }
  f = new_future(L, lp, loopidx, TA_KIND_TASK);
  t = ta_future_task(f);
  ta_task_init(L, E, t, fnidx, nargs, TA_ASYNCIO, parent && parent->co == L ? parent : NULL,
               &ta_aio_task_kind, TASK_UV_THREAD, loopidx);
  fidx = lua_gettop(L);
  lp->npending++;
  if (lp->debug) {
    ta_traceback(L, L, "Task created at:", 1);
    set_extra(L, fidx, "source_traceback");
  }
  lua_pushvalue(L, fidx); /* its first step */
  if (task_of_running(L, E, lp)) ta_loop_append_in_step(L, lp);
  else ta_loop_append_to(L, lp, loopidx);
  return f;
}

/* [loop, fn, args...]: the same, the loop at 1. */
static ta_future *create_task(lua_State *L, ta_loop *lp, int use_factory, const char *fname) {
  ta_check_callable(L, 2);
  return create_task_at(L, ta_upengine(L), lp, 1, 2, use_factory, fname);
}

/* create_task(loop, fn, ...) -> Task (through the loop's task factory) */
static int l_create_task(lua_State *L) {
  create_task(L, NULL, 1, "create_task");
  return 1;
}

/* new_task(loop, fn, ...) -> Task, whatever the loop's task factory */
static int l_new_task(lua_State *L) {
  create_task(L, NULL, 0, "Task");
  return 1;
}

/* Pushes the object of lp, the running loop: when a Task of lp runs, from
** the frame of the driver stepping it, which costs a third of a lookup by
** the loop's weak id. */
static void push_running_loop_object(lua_State *L, ta_engine *E, ta_loop *lp) {
  if (task_of_running(L, E, lp)) {
    ta_loop_push_in_step(L, lp);
  } else {
    ta_push_weak(L, E, lp->ref);
  }
}

/* create_task(fn, ...) -> Task on the running loop (asyncio.create_task);
** upvalue 2 is asyncio.get_running_loop, for what C cannot tell. */
static int l_aio_create_task(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_loop *lp = ta_running_loop(L, E);
  ta_check_callable(L, 1);
  if (lp != NULL) push_running_loop_object(L, E, lp);
  else push_running_loop(L, 2);
  /* [fn, args..., loop]; lp NULL: the Lua lookup found it */
  create_task_at(L, E, lp, lua_gettop(L), 1, 1, "create_task");
  return 1;
}

/* make_create_task(get_running_loop) -> asyncio.create_task */
static int l_make_create_task(lua_State *L) {
  return bind_lua_helpers(L, l_aio_create_task);
}

static int t_get_name(lua_State *L) {
  ta_future *f = checktaskfut(L, 1);
  if (push_extra(L, 1, "name") == LUA_TNIL)
    lua_pushfstring(L, "Task-%d", (int)ta_future_task(f)->id);
  return 1;
}

static int t_set_name(lua_State *L) {
  checktaskfut(L, 1);
  luaL_checkany(L, 2);
  luaL_tolstring(L, 2, NULL);
  set_extra(L, 1, "name");
  return 0;
}

static int t_cancel(lua_State *L) {
  checktaskfut(L, 1);
  lua_pushboolean(L, task_cancel(L, 1, lua_isnoneornil(L, 2) ? 0 : 2));
  return 1;
}

static int t_cancelling(lua_State *L) {
  lua_pushinteger(L, checktaskfut(L, 1)->cancel_requests);
  return 1;
}

static int t_uncancel(lua_State *L) {
  ta_future *f = checktaskfut(L, 1);
  if (f->cancel_requests > 0) f->cancel_requests--;
  lua_pushinteger(L, f->cancel_requests);
  return 1;
}

/* Task fields: the methods, then what every task shows (name, flavor,
** id, done, ...: ta_task_field). */
static int t_index(lua_State *L) {
  ta_future *f = checktaskfut(L, 1);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL || lua_type(L, 2) != LUA_TSTRING) return 1;
  lua_pop(L, 1);
  if (!ta_task_field(L, ta_future_task(f), 1, lua_tostring(L, 2))) lua_pushnil(L);
  return 1;
}

/* current_aio_task() -> the running asyncio Task, nil if none */
static int l_current_aio_task(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_task *t = E->current;
  if (t == NULL || t->co != L || !ta_is_aio_task(t)) return 0;
  ta_push_weak(L, E, t->ref);
  return 1;
}

static int by_creation(const void *a, const void *b) {
  uint32_t ia = (*(ta_task *const *)a)->id, ib = (*(ta_task *const *)b)->id;
  return (ia > ib) - (ia < ib);
}

/* loop_tasks(loop) -> list of the loop's pending Tasks, oldest first.
** Every Task has its slot in the engine's weak registry (its engine
** task's ref), so they are found there, not kept in a list of the loop:
** two links less in each Task, for a call that is rare (asyncio.run's
** end, all_tasks), and that the loop's count of pending Tasks cuts short
** (none, the usual case at the end of a run: no search).  Ids are given
** in creation order. */
static int l_loop_tasks(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_loop *lp = (ta_loop *)ta_checkudata(L, E, 1, TA_MT_LOOP);
  const void *task_mt = E->mt[TA_MT_AIOTASK];
  ta_task **found;
  int n = 0, weak;
  lua_settop(L, 1);
  found = (ta_task **)lua_newuserdatauv(L, lp->npending * sizeof *found, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->weak_ref);
  weak = lua_gettop(L);
  for (int id = 1; id <= E->weak_ids.top && (size_t)n < lp->npending; id++) {
    lua_rawgeti(L, weak, id);
    void *p;
    if (ta_udata_mt(L, -1, &p) == task_mt) {
      ta_future *f = (ta_future *)p;
      ta_task *t = ta_future_task(f);
      if (f->loop == lp && t->state != TA_DONE) found[n++] = t;
    }
    lua_pop(L, 1);
  }
  qsort(found, (size_t)n, sizeof *found, by_creation);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, weak, found[i]->ref);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* ---- gather ---- */

/* The state of one gather: the outer future and the children (user
** values), and how many children are still running.  One C closure over
** it is the done callback of every child. */
typedef struct gather_state {
  int n, remaining;
  int queued;               /* calls of its callback in the ready queue */
  int return_exceptions;
  ta_future *outer;         /* its user value GUV_OUTER */
} gather_state;

enum { GUV_OUTER = 1, GUV_CHILDREN, GATHER_NUV = GUV_CHILDREN };

/* Pushes what gather reports for the done child at cidx: its first result,
** its error, or a CancelledError; returns 1 for an error. */
static int push_child_outcome(lua_State *L, ta_future *c, int cidx) {
  if (c->state == TA_FUT_CANCELLED) {
    ta_push_error(L, c->loop->E, "CancelledError", "a gathered task was cancelled");
    return 1;
  }
  c->retrieved = 1;
  if (c->has_exc) {
    lua_getiuservalue(L, cidx, FUV_STATE);
    return 1;
  }
  if (c->nresults == 0) lua_pushnil(L);
  else if (lua_getiuservalue(L, cidx, FUV_STATE) == LUA_TTABLE && c->nresults != 1) {
    lua_rawgeti(L, -1, 1);
    lua_replace(L, -2);
  }
  return 0;
}

/* The done callback on top of the stack is about to be scheduled for the
** child c that just completed: when it is a gather's and its call would
** only count c as done (c has a result, is not the last child and no call
** of this callback waits in the ready queue; or the gather ended already),
** the count is taken now and 1 is returned (the callback is not queued);
** else 0.  Nothing can tell the difference: the count is the gather's own,
** and the call that completes the gather (the last child's, or a
** failure's) still runs from the ready queue, at the place asyncio runs
** it.  A gather of many Tasks thus costs one queued callback instead of
** one per child.  known: the callback is known to be a gather's (else it
** is looked at). */
static int gather_counts_now(lua_State *L, ta_future *c, int known) {
  gather_state *g;
  if (!known && lua_tocfunction(L, -1) != gather_child_done) return 0;
  lua_getupvalue(L, -1, 2);
  g = (gather_state *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (g->outer->state != TA_FUT_PENDING) { /* gather ended: nothing to warn about */
    if (c->state == TA_FUT_FINISHED) c->retrieved = 1;
    return 1;
  }
  if (c->state == TA_FUT_FINISHED && !c->has_exc && g->queued == 0 && g->remaining > 1) {
    g->remaining--;
    return 1;
  }
  g->queued++; /* the last child, a failure, or after one queued: in order */
  return 0;
}

/* gather_child_done(child): upvalue 2 is the gather state. */
static int gather_child_done(lua_State *L) {
  ta_future *c = checkfuture(L, 1), *outer;
  gather_state *g = (gather_state *)lua_touserdata(L, lua_upvalueindex(2));
  int oidx, list;
  g->queued--; /* (only the ready queue calls it) */
  lua_settop(L, 1);
  lua_getiuservalue(L, lua_upvalueindex(2), GUV_OUTER);
  oidx = lua_gettop(L);
  outer = (ta_future *)lua_touserdata(L, oidx);
  if (outer->state != TA_FUT_PENDING) { /* gather ended: nothing to warn about */
    if (c->state == TA_FUT_FINISHED) c->retrieved = 1;
    return 0;
  }
  if (!g->return_exceptions && (c->state == TA_FUT_CANCELLED || c->has_exc)) {
    push_child_outcome(L, c, 1);
    settle(L, outer, oidx, 1);
    return 0;
  }
  if (--g->remaining > 0) return 0;
  /* Every child is done: the list of children becomes that of their
  ** outcomes (a second list would be 16 bytes more per child at the peak). */
  lua_getiuservalue(L, lua_upvalueindex(2), GUV_CHILDREN);
  list = lua_gettop(L);
  for (int i = 1; i <= g->n; i++) {
    lua_rawgeti(L, list, i);
    push_child_outcome(L, (ta_future *)lua_touserdata(L, -1), lua_gettop(L));
    lua_rawseti(L, list, i);
    lua_pop(L, 1);
  }
  lua_pushinteger(L, g->n);
  lua_setfield(L, -2, "n");
  settle(L, outer, oidx, 0);
  return 0;
}

/* gather_cancel_children(outer): outer's done callback; a cancelled
** gather cancels its children. */
static int gather_cancel_children(lua_State *L) {
  gather_state *g = (gather_state *)lua_touserdata(L, lua_upvalueindex(2));
  if (checkfuture(L, 1)->state != TA_FUT_CANCELLED) return 0;
  /* (every child done: the list may hold outcomes already, if making the
  ** results failed for want of memory) */
  if (g->remaining == 0) return 0;
  lua_getiuservalue(L, lua_upvalueindex(2), GUV_CHILDREN);
  for (int i = 1; i <= g->n; i++) {
    lua_rawgeti(L, -1, i);
    future_cancel(L, lua_gettop(L), 0);
    lua_pop(L, 1);
  }
  return 0;
}

/* Starts a gather of the n awaitables at 2 .. n + 1, on the loop above
** them: futures as they are, the rest go through ensure_future (upvalue
** 2); the empty list at 1 becomes that of the children.  Pushes the outer
** future, whose result will be the list of the children's results
** ({n = n, ...}).  The children are read from the stack, not the list. */
static void gather_start(lua_State *L, int n, int return_exceptions) {
  enum { LIST = 1, FIRST = 2 };
  ta_engine *E = ta_upengine(L);
  int loopidx = FIRST + n, oidx, gidx, cb;
  gather_state *g;
  ta_future *outer;
  const ta_loop *lp = (const ta_loop *)lua_touserdata(L, loopidx);
  for (int i = 1; i <= n; i++) { /* first, what may raise */
    int idx = FIRST + i - 1;
    ta_future *c = testfuture_in(L, E, idx);
    if (c == NULL) {
      lua_pushvalue(L, lua_upvalueindex(2));
      lua_pushvalue(L, idx);
      lua_pushvalue(L, loopidx);
      lua_call(L, 2, 1);
      c = checkfuture(L, -1);
      lua_replace(L, idx);
    }
    if (c->loop != lp)
      ta_error(L, "ValueError", "asyncio.gather: argument #%d belongs to a different loop than "
                                "the other futures", i);
    lua_pushvalue(L, idx);
    lua_rawseti(L, LIST, i);
  }
  outer = new_future(L, NULL, loopidx, TA_KIND_FUTURE);
  oidx = lua_gettop(L);
  g = (gather_state *)lua_newuserdatauv(L, sizeof *g, GATHER_NUV);
  gidx = lua_gettop(L);
  g->n = n;
  g->remaining = g->queued = 0;
  g->return_exceptions = return_exceptions;
  g->outer = outer;
  lua_pushvalue(L, oidx);
  lua_setiuservalue(L, gidx, GUV_OUTER);
  lua_pushvalue(L, LIST);
  lua_setiuservalue(L, gidx, GUV_CHILDREN);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, gidx);
  lua_pushcclosure(L, gather_child_done, 2);
  cb = lua_gettop(L);
  /* One callback per distinct child: a future passed twice counts once
  ** (gather_mark tells which were seen by this gather). */
  if (++E->gather_serial == 0) ++E->gather_serial;
  for (int idx = FIRST; idx < FIRST + n; idx++) {
    ta_future *c = (ta_future *)lua_touserdata(L, idx);
    if (c->gather_mark == E->gather_serial) continue;
    c->gather_mark = E->gather_serial;
    g->remaining++;
    if (c->state != TA_FUT_PENDING) {
      g->queued++;
      lua_pushvalue(L, cb);
      lua_pushvalue(L, idx);
      ta_loop_call_soon(L, c->loop, NULL, 1);
    } else if (c->ncallbacks == 0) { /* the usual: gather's is its first */
      lua_pushvalue(L, cb);
      set_first_callback(L, c, idx, CB_GATHER);
    } else {
      add_callback(L, c, idx, cb, CB_GATHER);
    }
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, gidx);
  lua_pushcclosure(L, gather_cancel_children, 2);
  add_callback(L, outer, oidx, -1, CB_UNKNOWN);
  lua_settop(L, oidx);
}

/* gather(aw1, ..., awn [, {return_exceptions = true}]) -> the list of
** their results in argument order, {n = n, ...} (asyncio.gather).
** Upvalue 2 is asyncio.ensure_future, 3 asyncio.get_running_loop (for
** what C cannot tell). */
static int l_aio_gather(lua_State *L) {
  int n = lua_gettop(L), return_exceptions = 0;
  ta_async_check(L, "asyncio.gather", TA_ASYNCIO);
  if (n > 0 && lua_type(L, n) == LUA_TTABLE) { /* a plain table last: the options */
    if (lua_getmetatable(L, n)) {
      lua_pop(L, 1);
    } else {
      lua_getfield(L, n, "return_exceptions");
      return_exceptions = lua_toboolean(L, -1);
      lua_settop(L, --n);
    }
  }
  lua_createtable(L, n, 1);
  lua_insert(L, 1); /* [list, aw1, ..., awn] */
  if (n == 0) {
    lua_pushinteger(L, 0);
    lua_setfield(L, 1, "n");
    return 1;
  }
  push_running_loop(L, 3);
  gather_start(L, n, return_exceptions);
  lua_replace(L, 1);
  lua_settop(L, 1);
  return f_await(L);
}

/* make_gather(ensure_future, get_running_loop) -> asyncio.gather */
static int l_make_gather(lua_State *L) {
  return bind_lua_helpers(L, l_aio_gather);
}

/* ---- Trio tasks waiting on futures ---- */

/* The done callback of a Trio task (at 1) in trio_wait, run from the ready
** queue as asyncio runs done callbacks.  Only this wakes it (its abort
** callback answers FAILED), so it is still waiting for the future, done.
** Only schedule_one queues it, with a Trio task object, and no Lua code
** sees it (it is kept in the registry, and the Handle a failed entry gets
** does not show its function): its argument is trusted as the loop trusts
** its ready queue (no metatable check: W6 aio_as_trio -1.4%). */
static int trio_wakeup(lua_State *L) {
  ta_task *t = *(ta_task **)lua_touserdata(L, 1); /* (a Trio task's object holds a pointer) */
  if (t->state == TA_PARKED && !ta_task_compact(t) && t->abort == trio_wait_abort &&
      ((ta_future *)t->wait)->state != TA_FUT_PENDING)
    ta_reschedule(t, 0, 0);
  return 0;
}

/* Trio cancellation of the waiter cancels the future (a Task gets its
** CancelledError and may clean up) and goes on waiting for it, while its
** loop runs: a loop no driver runs (its driver failed: not enough memory)
** would never run the callback that wakes the waiter, which gets its
** Cancelled at once. */
static int trio_wait_abort(lua_State *L, ta_task *t) {
  ta_loop *lp = ((ta_future *)t->wait)->loop;
  t->cancel_asked = 1;
  lua_pushvalue(t->co, 1);
  lua_xmove(t->co, L, 1);
  future_cancel(L, lua_gettop(L), 0);
  lua_pop(L, 1);
  return ta_loop_driven(lp) ? TA_ABORT_FAILED : TA_ABORT_SUCCEEDED;
}

/* The waiting Trio task t was woken: pushes the outcome of the future at
** 1 (or raises it, or Trio's Cancelled when its cancellation cancelled the
** future) and returns how many values. */
static int trio_wait_outcome(lua_State *L, ta_task *t) {
  ta_future *f = (ta_future *)lua_touserdata(L, 1); /* (checked by its trio_wait) */
  int trio_cancelled = t->cancel_asked;
  t->cancel_asked = 0;
  if (t->resume_error) {
    t->resume_error = 0;
    return lua_error(L);
  }
  if (trio_cancelled && f->state == TA_FUT_CANCELLED) ta_raise_cancelled(L);
  return push_outcome(L, f, 1);
}

static int trio_wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return trio_wait_outcome(L, (ta_task *)ctx);
}

/* A Trio-scheduled task waits for the future at index 1, the top (fname:
** the caller, for errors).  Only the future's loop running can finish it (or
** its cancellation): a future of a loop that is closed or not driven now
** is refused at once instead of waiting forever. */
static int trio_wait(lua_State *L, ta_future *f, ta_task *t, const char *fname, lua_KFunction k) {
  if (!ta_loop_driven(f->loop))
    return ta_error(L, "RuntimeError", "%s: the future's event loop is %s, so the future could "
                    "never finish: wait for it while its loop runs (inside its open_loop)", fname,
                    f->loop->closed ? "closed" : "not running");
  ta_push_task(L, t);
  if (f->ncallbacks == 0) { /* the common case: the only callback */
    set_first_callback(L, f, 1, CB_TRIO_TASK);
  } else {
    add_callback(L, f, 1, 2, CB_TRIO_TASK);
    lua_settop(L, 1);
  }
  t->wait = f;
  t->cancel_asked = 0;
  return ta_park_k(L, t, trio_wait_abort, k);
}

/* future_wait(fut): Trio-flavored wait for an asyncio future. */
static int l_future_wait(lua_State *L) {
  ta_future *f = checkfuture(L, 1);
  ta_task *t = ta_async_check(L, "trio_asyncio.run_aio_future", TA_TRIO);
  lua_settop(L, 1);
  if (f->state != TA_FUT_PENDING) return push_outcome(L, f, 1);
  return trio_wait(L, f, t, "trio_asyncio.run_aio_future", trio_wait_k);
}

/* ---- The bridge's callers: aio_as_trio(f) and trio_as_aio(f) ----
**
** Both crossings are a hot path with the wrapper made per call (W6), so
** the wrapper is a C closure that does the whole crossing in one call.
** aio_as_trio and trio_as_aio themselves are C closures that make them
** (make_caller): upvalue 1 the engine, 2 the helpers (Lua functions from
** lua/trio_asyncio.lua, for what C cannot do in this layer, and the rare
** paths, which raise), 3 the call itself, 4 the callers made so far, a
** weak-keyed table x -> caller of x (an ephemeron: it keeps neither alive;
** a wrapper made per call, aio_as_trio(f)(...), is made once), and for
** trio_as_aio 5 a weak table holding the spare future (see l_trio_call).
** A caller has the engine, the helpers and the function it calls, and
** that spare table when its maker has one. */
enum { CALLER_HELPERS = 2, CALLER_CALL, CALLER_CACHE, MAKER_SPARE };
enum { CALLER_FN = CALLER_CALL, CALLER_SPARE };
/* The helpers of both: the public name and check(x), for what is not a
** function: true (make a caller), a function to return instead (a Future
** given to aio_as_trio), or nil and what was expected. */
enum { HELPER_NAME = 1, HELPER_CHECK };
enum { AIO_CONTEXT_VAR = HELPER_CHECK + 1, AIO_NEED_LOOP };
enum { TRIO_START_TASK = HELPER_CHECK + 1, TRIO_SERVICE_KEY, TRIO_START };
static const char *const aio_helpers[] = {
  "name", "check", "context_var", "need_loop", NULL
};
static const char *const trio_helpers[] = {
  "name", "check", "start_task", "service_key", "start", NULL
};

/* aio_as_trio(x) / trio_as_aio(x) -> the caller of x */
static int l_caller_of(lua_State *L) {
  lua_pushvalue(L, 1);
  if (lua_rawget(L, lua_upvalueindex(CALLER_CACHE)) == LUA_TFUNCTION) return 1;
  lua_settop(L, 1);
  if (lua_type(L, 1) != LUA_TFUNCTION) {
    lua_rawgeti(L, lua_upvalueindex(CALLER_HELPERS), HELPER_CHECK);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 2);
    if (lua_type(L, 2) == LUA_TFUNCTION) {
      lua_settop(L, 2);
      return 1;
    }
    if (!lua_toboolean(L, 2)) {
      lua_rawgeti(L, lua_upvalueindex(CALLER_HELPERS), HELPER_NAME);
      return luaL_error(L, "bad argument #1 to '%s' (%s)", lua_tostring(L, -1), lua_tostring(L, 3));
    }
    lua_settop(L, 1);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(CALLER_HELPERS));
  lua_pushvalue(L, 1);
  if (lua_type(L, lua_upvalueindex(MAKER_SPARE)) == LUA_TTABLE) {
    lua_pushvalue(L, lua_upvalueindex(MAKER_SPARE));
    lua_pushcclosure(L, lua_tocfunction(L, lua_upvalueindex(CALLER_CALL)), CALLER_SPARE);
  } else {
    lua_pushcclosure(L, lua_tocfunction(L, lua_upvalueindex(CALLER_CALL)), CALLER_FN);
  }
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -2);
  lua_rawset(L, lua_upvalueindex(CALLER_CACHE));
  return 1;
}

/* make_caller{...}: the helpers named in `names` (the table at 1) become
** an array; the maker of callers running `call` (with_spare: and a spare
** table, see above). */
static int make_caller(lua_State *L, const char *const names[], int with_spare, lua_CFunction call) {
  lua_pushvalue(L, lua_upvalueindex(1));
  ta_push_helpers(L, 1, names, "make_caller");
  lua_pushcfunction(L, call);
  lua_createtable(L, 0, 1);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  if (with_spare) {
    lua_createtable(L, 1, 0);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
  }
  lua_pushcclosure(L, l_caller_of, with_spare ? MAKER_SPARE : CALLER_CACHE);
  return 1;
}

/* ---- aio_as_trio: a Trio task calls an asyncio-flavored function ---- */

/* The results of the wait (n on top): a single one that is a future is
** waited for in turn, as trio-asyncio awaits what the function returns. */
static int await_returned(lua_State *L, ta_task *t, int n) {
  ta_future *f;
  if (n != 1 || lua_type(L, -1) != LUA_TUSERDATA || (f = testfuture(L, -1)) == NULL) return n;
  lua_replace(L, 1);
  lua_settop(L, 1);
  if (f->state != TA_FUT_PENDING) return push_outcome(L, f, 1);
  return trio_wait(L, f, t, "trio_asyncio.run_aio_future", trio_wait_k);
}

static int aio_call_k(lua_State *L, int status, lua_KContext ctx) {
  ta_task *t = (ta_task *)ctx;
  (void)status;
  return await_returned(L, t, trio_wait_outcome(L, t));
}

/* Pushes the value of context_var (a helper) in the context of the running
** task t: what ta_ctx_get pushes, read straight from t's context table. */
static void push_context_value(lua_State *L, const ta_task *t) {
  if (t->ctx_ref == LUA_NOREF) {
    lua_pushnil(L);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->ctx_ref);
  lua_rawgeti(L, lua_upvalueindex(CALLER_HELPERS), AIO_CONTEXT_VAR);
  lua_rawget(L, -2);
  lua_replace(L, -2);
}

/* The caller aio_as_trio(fn) makes: caller(...) runs fn(...) as an asyncio
** Task on the current loop and waits for it.  The loop: the running one,
** else the one of this context (context_var's value, read in C), else
** need_loop(name) finds it or raises. */
static int l_aio_call(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_task *t = ta_async_check_in(L, E, "trio_asyncio.aio_as_trio", TA_TRIO);
  ta_loop *lp = ta_running_loop(L, E);
  int helpers = lua_upvalueindex(CALLER_HELPERS);
  ta_future *f;
  if (lp != NULL) {
    ta_push_weak(L, E, lp->ref);
  } else {
    push_context_value(L, t);
    lp = (ta_loop *)ta_testudata(L, E, -1, TA_MT_LOOP);
    if (lp == NULL) {
      lua_pop(L, 1);
      lua_rawgeti(L, helpers, AIO_NEED_LOOP);
      lua_rawgeti(L, helpers, HELPER_NAME);
      lua_call(L, 1, 1);
    }
  }
  lua_pushvalue(L, lua_upvalueindex(CALLER_FN));
  lua_rotate(L, 1, 1); /* [fn, args..., loop] */
  if (lua_type(L, 1) != LUA_TFUNCTION) ta_check_callable(L, 1); /* (its __call may be gone) */
  f = create_task_at(L, E, lp, lua_gettop(L), 1, 1, "create_task");
  lua_copy(L, -1, 1);
  lua_settop(L, 1);
  if (f == NULL) f = checkfuture(L, 1); /* the loop's task factory made it */
  if (f->state != TA_FUT_PENDING) return await_returned(L, t, push_outcome(L, f, 1));
  return trio_wait(L, f, t, "trio_asyncio.run_aio_future", aio_call_k);
}

/* make_aio_as_trio{name=, check=, context_var=, need_loop=}
** -> aio_as_trio */
static int l_make_aio_as_trio(lua_State *L) {
  return make_caller(L, aio_helpers, 0, l_aio_call);
}

/* ---- trio_as_aio: an asyncio Task calls a Trio-flavored function ---- */

/* The caller trio_as_aio(fn) makes: caller(...) starts fn(...) as a Trio
** task in the loop's service nursery, with a future of its results whose
** cancellation cancels the task's scope (the cancel hook), and awaits that
** future (loop:run_trio's future, lua/trio_asyncio.lua).  Helpers:
** start_task(nursery, loop, fut, fn, ...) -> scope (the Trio task's
** start, csrc/trio/scope.c), service_key ("service", the field of the
** loop's attributes holding its service nursery), and start(fn, ...) ->
** fut, the whole start in Lua, for all but the hot path (it raises what is
** wrong).
** The spare future: once the Task has taken the results of that future
** (trio_call_k), no one else holds it (the Trio task settled it as it
** ended), so it waits in a weak table for the next call on the same loop,
** which makes it pending again (ta_future_reuse) instead of allocating
** one.  (Its cancel hook, the scope of the Trio task before, is done with
** it: a future that is done never calls its hook.) */
static int trio_call_k(lua_State *L, int status, lua_KContext ctx) {
  ta_task *t = (ta_task *)ctx;
  int nres;
  (void)status;
  if (t->resume_error) {
    t->resume_error = 0;
    return lua_error(L);
  }
  nres = lua_gettop(L) - t->kbase;
  lua_pushvalue(L, 1);
  lua_rawseti(L, lua_upvalueindex(CALLER_SPARE), 1);
  return nres;
}

/* Pushes the loop lp and a future of it: the spare future when it is one
** of lp that can be made pending again (then taken from the spare table),
** else a new one. */
static ta_future *push_loop_and_future(lua_State *L, ta_engine *E, ta_loop *lp) {
  int spare = lua_upvalueindex(CALLER_SPARE);
  ta_future *f;
  if (lua_rawgeti(L, spare, 1) == LUA_TUSERDATA) {
    f = (ta_future *)lua_touserdata(L, -1); /* (only trio_call_k puts one there) */
    if (f->loop == lp && ta_future_reuse(L, -1) != NULL) {
      lua_pushnil(L);
      lua_rawseti(L, spare, 1);
      lua_getiuservalue(L, -1, FUV_LOOP);
      lua_insert(L, -2);
      return f;
    }
  }
  lua_pop(L, 1);
  ta_push_weak(L, E, lp->ref);
  return new_future(L, lp, -1, TA_KIND_FUTURE);
}

static int l_trio_call(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_task *t = ta_async_check_in(L, E, "trio_asyncio.trio_as_aio", TA_ASYNCIO);
  ta_loop *lp = ta_running_loop(L, E);
  int nargs = lua_gettop(L), helpers = lua_upvalueindex(CALLER_HELPERS);
  ta_future *f;
  luaL_checkstack(L, nargs + 12, "too many arguments");
  if (lp == NULL || lp->closed) goto slow;
  f = push_loop_and_future(L, E, lp); /* nargs + 1: the loop, nargs + 2: the future */
  ta_loop_push_attrs(L, nargs + 1);
  lua_rawgeti(L, helpers, TRIO_SERVICE_KEY);
  if (lua_rawget(L, -2) == LUA_TNIL) goto slow; /* the service nursery */
  lua_rotate(L, nargs + 1, 1);
  lua_pushvalue(L, lua_upvalueindex(CALLER_FN));
  lua_replace(L, -2); /* [..., nursery, loop, fut, fn] */
  lua_rotate(L, 1, 4); /* [nursery, loop, fut, fn, ...] */
  lua_rawgeti(L, helpers, TRIO_START_TASK);
  E->start_scope_task(L, E); /* start_task(nursery, loop, fut, fn, ...) */
  lua_pushvalue(L, 3); /* [nursery, body, scope, loop, fut, ...] */
  lua_setiuservalue(L, 5, FUV_HOOK); /* cancelling the future cancels the scope */
  lua_copy(L, 5, 1);
  lua_settop(L, 1);
  return await_future_k(L, f, t, trio_call_k);
slow:
  lua_settop(L, nargs);
  lua_pushvalue(L, lua_upvalueindex(CALLER_FN));
  lua_rotate(L, 1, 1);
  lua_rawgeti(L, helpers, TRIO_START);
  lua_rotate(L, 1, 1); /* [start, fn, ...] */
  lua_call(L, nargs + 1, 1); /* start(fn, ...) -> fut */
  lua_settop(L, 1);
  return await_future(L, checkfuture(L, 1), t);
}

/* make_trio_as_aio{name=, check=, start_task=, service_key=, start=}
** -> trio_as_aio */
static int l_make_trio_as_aio(lua_State *L) {
  return make_caller(L, trio_helpers, 1, l_trio_call);
}

ta_future *ta_future_push_new(lua_State *L, int loopidx) {
  return new_future(L, NULL, loopidx, TA_KIND_FUTURE);
}

/* f: the pending future at fidx (the callers have checked). */
void ta_future_settle(lua_State *L, ta_future *f, int fidx, int n) {
  if (n < 0) settle(L, f, fidx, 1);
  else settle_results(L, f, fidx, n, 0);
}

int ta_future_pending(lua_State *L, int fidx) {
  ta_future *f = testfuture(L, fidx);
  return f != NULL && f->state == TA_FUT_PENDING;
}

/* Makes the plain future at fidx, finished with a result, pending again
** with no callbacks, and returns it (NULL, unchanged, for any other future):
** for its maker, once it has awaited it and knows nobody else holds it
** (an asyncio queue reuses its waiters' futures).  Its old result stays in
** its slot (unread while pending, replaced by the first callback or the
** next outcome): the C makers settle such futures with true. */
ta_future *ta_future_reuse(lua_State *L, int fidx) {
  ta_future *f = (ta_future *)lua_touserdata(L, fidx);
  if (f->kind != TA_KIND_FUTURE || f->state != TA_FUT_FINISHED || f->has_exc) return NULL;
  f->state = TA_FUT_PENDING;
  f->nresults = 0;
  f->ncallbacks = 0;
  f->cb_list = 0;
  f->must_cancel = 0;
  f->retrieved = 1;
  return f;
}

/* For C objects whose calls wait on a future (asyncio/queue.c,
** asyncio/streamreader.c).  Task t (the caller, as ta_async_check found it)
** awaits the future f on top; k continues with ctx t.  The future goes to
** index 1, below the call's arguments: an asyncio Task suspends itself
** directly, and the loop finds the future it awaits at index 1 of the
** suspended frame (see task_step); anything else (a Trio task in
** allow_asyncio mode) calls Future:await, the function at await_idx,
** under lua_pcallk. */
int ta_future_await_k(lua_State *L, ta_task *t, ta_future *f, int await_idx, lua_KFunction k) {
  lua_insert(L, 1);
  if (ta_is_aio_task(t) && t->co == L) {
    t->wait = f;
    return ta_task_yield(L, t, 0, k);
  }
  lua_pushvalue(L, await_idx);
  lua_pushvalue(L, 1);
  return k(L, lua_pcallk(L, 1, 0, 0, (lua_KContext)t, k), (lua_KContext)t);
}

/* In the continuation k of ta_future_await_k: the future goes back on top,
** above [arguments, results or error]; true if the wait failed (the error
** is then just below the future). */
int ta_future_wait_failed(lua_State *L, int status, ta_task *t) {
  int failed = (status != LUA_OK && status != LUA_YIELD) || t->resume_error;
  t->resume_error = 0; /* set when the Task was resumed with an error */
  lua_rotate(L, 1, -1);
  return failed;
}

/* Pushes Future:await (for ta_future_await_k's await_idx). */
void ta_push_future_await(lua_State *L) {
  luaL_getmetatable(L, "trio_asyncio.Future");
  lua_getfield(L, -1, "__index");
  lua_getfield(L, -1, "await");
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* Calls helper h of the table at helpers_idx (ta_store_helpers) with the
** top nargs values (popped); nres results. */
void ta_call_helper(lua_State *L, int helpers_idx, int h, int nargs, int nres) {
  lua_rawgeti(L, helpers_idx, h);
  lua_insert(L, -nargs - 1);
  lua_call(L, nargs, nres);
}

/* setup{f1, ..., fn}: a C object's Lua helpers, stored in the table at
** upvalue helpers_idx (asyncio/queue.c, asyncio/streamreader.c). */
int ta_store_helpers(lua_State *L, int helpers_idx, int n) {
  luaL_checktype(L, 1, LUA_TTABLE);
  for (int i = 1; i <= n; i++) {
    luaL_argcheck(L, lua_rawgeti(L, 1, i) == LUA_TFUNCTION, 1, "helper functions expected");
    lua_rawseti(L, helpers_idx, i);
  }
  return 0;
}

/* Cancels the future at fidx (see future_cancel); true if it will be. */
int ta_future_cancel(lua_State *L, int fidx) {
  return future_cancel(L, fidx, 0);
}

static int l_future_new(lua_State *L) {
  new_future(L, NULL, 1, 0);
  return 1;
}

/* future_reuse(fut) -> true if the plain future fut, finished with a
** result, is pending again (see ta_future_reuse: only for its maker, once
** it has awaited it and knows nobody else holds it); false, unchanged,
** for any other. */
static int l_future_reuse(lua_State *L) {
  int reused;
  checkfuture(L, 1);
  reused = ta_future_reuse(L, 1) != NULL;
  if (reused) { /* its result may be anything: let it go now */
    lua_pushnil(L);
    lua_setiuservalue(L, 1, FUV_STATE);
  }
  lua_pushboolean(L, reused);
  return 1;
}

/* future_set_cancel_hook(fut, hook|nil): cancel() calls hook(fut, msg),
** or hook:cancel() for an object, instead of cancelling; remove the hook to
** really cancel. */
static int l_future_set_cancel_hook(lua_State *L) {
  ta_future *f = checkfuture(L, 1);
  luaL_argcheck(L, f->kind != TA_KIND_TASK, 1, "not for Tasks");
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, FUV_HOOK);
  return 0;
}

static int l_set_aio_cancelled(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, E->aio_cancelled_ref);
  E->aio_cancelled_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int l_is_future(lua_State *L) {
  lua_pushboolean(L, testfuture(L, 1) != NULL);
  return 1;
}

static const luaL_Reg future_methods[] = {
  {"result", f_result},
  {"exception", f_exception},
  {"done", f_done},
  {"cancelled", f_cancelled},
  {"cancel", f_cancel},
  {"set_result", f_set_result},
  {"set_exception", f_set_exception},
  {"add_done_callback", f_add_done_callback},
  {"remove_done_callback", f_remove_done_callback},
  {"get_loop", f_get_loop},
  {"await", f_await},
  {NULL, NULL}
};

static const luaL_Reg task_methods[] = {
  {"get_name", t_get_name},
  {"set_name", t_set_name},
  {"cancel", t_cancel},
  {"cancelling", t_cancelling},
  {"uncancel", t_uncancel},
  {NULL, NULL}
};

static const luaL_Reg future_funcs[] = {
  {"future_new", l_future_new},
  {"future_reuse", l_future_reuse},
  {"future_set_cancel_hook", l_future_set_cancel_hook},
  {"future_set_results", l_future_set_results},
  {"future_done", f_done},
  {"create_task", l_create_task},
  {"new_task", l_new_task},
  {"make_gather", l_make_gather},
  {"make_aio_sleep", l_make_aio_sleep},
  {"make_create_task", l_make_create_task},
  {"future_wait", l_future_wait},
  {"make_aio_as_trio", l_make_aio_as_trio},
  {"make_trio_as_aio", l_make_trio_as_aio},
  {"current_aio_task", l_current_aio_task},
  {"set_aio_cancelled", l_set_aio_cancelled},
  {"is_future", l_is_future},
  {"loop_tasks", l_loop_tasks},
  {NULL, NULL}
};

static const luaL_Reg future_meta[] = {
  {"__tostring", f_tostring},
  {NULL, NULL}
};

/* A future holding an error, and a Task, are finalized (an error never
** retrieved, a Task collected while pending are reported). */
static const luaL_Reg finalized_meta[] = {
  {"__tostring", f_tostring},
  {"__gc", f_gc},
  {NULL, NULL}
};

/* A class `name` (cached as `which`) with the metamethods `meta` and the
** __index of class `of`: shared, so that methods Lua adds reach both.
** The engine is on top. */
static void new_variant_class(lua_State *L, ta_engine *E, const char *name, const luaL_Reg *meta,
                              const char *of, int which) {
  ta_newclass(L, name, meta, NULL, NULL);
  luaL_getmetatable(L, of);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "__index");
  lua_pop(L, 1);
  ta_cache_metatable(L, E, which);
  lua_pop(L, 1);
}

/* Four classes: Future, FutureWithError (a Future that now holds an
** error: the same methods, plus a finalizer), Task, whose __index serves
** the Future and Task methods, then the fields of its engine task, and
** AioTaskDone (a Task done without an error to report: the same, without
** the finalizer). */
int ta_open_future(lua_State *L) {
  ta_engine *E = (ta_engine *)lua_touserdata(L, -1);
  ta_newclass(L, FUTURE_MT, future_meta, future_methods, "__index");
  ta_cache_metatable(L, E, TA_MT_FUTURE);
  lua_pop(L, 1);
  new_variant_class(L, E, FUTURE_EXC_MT, finalized_meta, FUTURE_MT, TA_MT_FUTURE_EXC);
  ta_newclass(L, ATASK_MT, finalized_meta, NULL, NULL);
  lua_newtable(L);
  lua_pushvalue(L, -3); /* engine */
  luaL_setfuncs(L, future_methods, 1);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, task_methods, 1);
  lua_pushcclosure(L, t_index, 1);
  lua_setfield(L, -2, "__index");
  ta_cache_metatable(L, E, TA_MT_AIOTASK);
  lua_pop(L, 1);
  new_variant_class(L, E, ATASK_DONE_MT, future_meta, ATASK_MT, TA_MT_AIOTASK_DONE);
  ta_task_class(E, TA_MT_AIOTASK, offsetof(ta_aiotask, t));
  ta_task_class(E, TA_MT_AIOTASK_DONE, offsetof(ta_aiotask, t));
  E->offer_results = offer_results;
  lua_pushcfunction(L, trio_wakeup);
  E->trio_wakeup_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  ta_register(L, future_funcs);
  return 0;
}
