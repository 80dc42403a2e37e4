/*
** scope.c — CancelScope, the API object over a node of the cancel-status
** tree (engine/status.c).  A scope's deadline is a timer in the engine's
** heap whose callback cancels the scope.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "trio/trio.h"

#define SCOPE_MT "trio_asyncio.CancelScope"
/* The scope of a task body (make_scope_task below): a CancelScope without
** a finalizer, since the body leaves it on every way out. */
#define TASK_SCOPE_MT "trio_asyncio.TaskCancelScope"

/* ---- CancelScope ---- */

/* A CancelScope, or a task body's scope. */
static ta_scope *checkscope(lua_State *L, int idx) {
  ta_engine *E = ta_upengine(L);
  void *p;
  const void *mt = ta_udata_mt(L, idx, &p);
  if (mt == NULL || (mt != E->mt[TA_MT_SCOPE] && mt != E->mt[TA_MT_TASK_SCOPE]))
    luaL_typeerror(L, idx, SCOPE_MT);
  return (ta_scope *)p;
}

/* The deadline timer's callback. */
static void deadline_fired(lua_State *L, ta_engine *E, ta_timer *tm) {
  ta_scope *sc = (ta_scope *)((char *)tm - offsetof(ta_scope, timer));
  ta_status_cancel(L, E, &sc->st, TA_CANCEL_DEADLINE);
}

/* The state of a scope not yet entered. */
static void init_scope(ta_scope *sc, ta_engine *E, double deadline, int shield) {
  memset(sc, 0, sizeof *sc);
  sc->E = E;
  sc->st.deadline = deadline;
  sc->st.shield = (unsigned char)shield;
  sc->relative = HUGE_VAL;
  ta_timer_init(&sc->timer, deadline_fired);
}

/* A new scope of the class `which` (TA_MT_SCOPE or TA_MT_TASK_SCOPE). */
static ta_scope *new_scope(lua_State *L, ta_engine *E, double deadline, int shield, int which) {
  ta_scope *sc = (ta_scope *)lua_newuserdatauv(L, sizeof *sc, 0);
  init_scope(sc, E, deadline, shield);
  ta_setmetatable(L, E, which);
  return sc;
}

ta_scope *ta_scope_new(lua_State *L, ta_engine *E, double deadline, int shield) {
  return new_scope(L, E, deadline, shield, TA_MT_SCOPE);
}

/* Keep the deadline timer in step with st.deadline while entered. */
static void arm_deadline(lua_State *L, ta_scope *sc) {
  ta_engine *E = sc->E;
  if (sc->state != 1) return;
  if (isinf(sc->st.deadline) && sc->st.deadline > 0) {
    ta_heap_remove(&E->timers, &sc->timer);
    return;
  }
  sc->timer.when = sc->st.deadline;
  if (sc->timer.index >= 0) ta_heap_update(&E->timers, &sc->timer);
  else if (ta_heap_push(&E->timers, &sc->timer) != 0) luaL_error(L, "not enough memory");
}

void ta_scope_enter(lua_State *L, ta_scope *sc, ta_task *t) {
  if (sc->state != 0)
    luaL_error(L, "CancelScope:run: a cancel scope may only be entered once; create a new one");
  sc->state = 1;
  sc->owner = t;
  if (sc->relative != HUGE_VAL) { /* a relative deadline counts from entry */
    sc->st.deadline = ta_now(sc->E) + sc->relative;
    sc->relative = HUGE_VAL;
  }
  ta_status_link_child(t->status, &sc->st);
  ta_status_unlink_task(t);
  ta_status_link_task(&sc->st, t);
  if (sc->st.deadline != HUGE_VAL) { /* (no clock read for a scope without one) */
    if (sc->st.deadline <= ta_now(sc->E)) ta_status_mark_cancelled(&sc->st, TA_CANCEL_DEADLINE);
    else arm_deadline(L, sc);
  }
  ta_status_recompute(L, sc->E, &sc->st);
}

static const char OUT_OF_ORDER[] =
  "CancelScope: scopes exited out of order (an inner scope is still active)";

/* Leaves the scope; returns whether a Cancelled passing through it should
** be caught here: the scope is cancelled and the cancellation is its own,
** not its parent's showing through. */
int ta_scope_exit(lua_State *L, ta_scope *sc) {
  ta_status *st = &sc->st, *parent = st->parent;
  ta_task *t = sc->owner;
  int catches;
  if (sc->state != 1) luaL_error(L, "CancelScope: exited a scope that is not active");
  if (t->status != st) luaL_error(L, "%s", OUT_OF_ORDER);
  catches = st->cancelled && !(parent && parent->cancelled && !st->shield);
  ta_heap_remove(&sc->E->timers, &sc->timer);
  ta_status_detach(st, parent);
  ta_status_release_reason(L, st);
  sc->state = 2;
  sc->owner = NULL;
  return catches;
}

/* A scope let go without being left (collected, or its task's coroutine
** was killed or leaving it failed): if entered, its tasks and children go
** to its parent so the tree stays whole; its cancel reason is released. */
static void scope_abandon(lua_State *L, ta_scope *sc) {
  ta_status *st = &sc->st, *parent = st->parent;
  ta_status_release_reason(L, st);
  if (sc->state != 1 || parent == NULL) return;
  ta_heap_remove(&sc->E->timers, &sc->timer);
  ta_status_detach(st, parent);
  sc->state = 2;
}

static int scope_gc(lua_State *L) {
  scope_abandon(L, checkscope(L, 1));
  return 0;
}

/* scope:cancel([reason]): the reason and the calling task are kept for
** the Cancelled it causes, unless the scope was cancelled already: while
** it is entered, or before for a CancelScope (whose finalizer releases
** them; a task body's scope not yet entered never will be once cancelled). */
static int scope_cancel(lua_State *L) {
  ta_scope *sc = checkscope(L, 1);
  int has_reason = !lua_isnoneornil(L, 2);
  void *p;
  if (has_reason && lua_type(L, 2) != LUA_TSTRING)
    return luaL_error(L, "bad argument #1 to 'CancelScope.cancel' (reason: string or nil expected, got %s)",
                      luaL_typename(L, 2));
  if (sc->state == 1 || (sc->state == 0 && ta_udata_mt(L, 1, &p) == sc->E->mt[TA_MT_SCOPE]))
    ta_status_set_reason(L, &sc->st, has_reason ? 2 : 0, ta_current(L));
  if (sc->state == 1) ta_status_cancel(L, sc->E, &sc->st, TA_CANCEL_EXPLICIT);
  else ta_status_mark_cancelled(&sc->st, TA_CANCEL_EXPLICIT);
  return 0;
}

static const char UNENTERED_RELATIVE[] =
  "Unentered relative cancel scope does not have an absolute deadline.";
static const char UNENTERED_ABSOLUTE[] =
  "Unentered non-relative cancel scope does not have a relative deadline";

/* scope.cancel_called.  As Trio: once the deadline has passed, an active
** or unentered scope is cancelled when asked, before its timer could fire. */
static int cancel_called(lua_State *L, ta_scope *sc) {
  if (!sc->st.cancel_called && sc->state != 2 && sc->E->running &&
      sc->st.deadline != HUGE_VAL && sc->st.deadline <= ta_now(sc->E)) {
    if (sc->state == 1) ta_status_cancel(L, sc->E, &sc->st, TA_CANCEL_DEADLINE);
    else ta_status_mark_cancelled(&sc->st, TA_CANCEL_DEADLINE);
  }
  return sc->st.cancel_called;
}

/* __index: the methods first (upvalue 2, the class's __methods: the hot
** path of scope:run), then the fields. */
static int scope_index(lua_State *L) {
  ta_scope *sc;
  const char *k;
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL) return 1;
  sc = checkscope(L, 1);
  k = luaL_checkstring(L, 2);
  if (strcmp(k, "deadline") == 0) {
    if (sc->relative != HUGE_VAL) return ta_error(L, "RuntimeError", "CancelScope.deadline: %s", UNENTERED_RELATIVE);
    lua_pushnumber(L, sc->st.deadline);
  } else if (strcmp(k, "relative_deadline") == 0) {
    /* once entered: the time left until the deadline */
    if (sc->state != 0) lua_pushnumber(L, sc->st.deadline - ta_now(sc->E));
    else if (sc->st.deadline != HUGE_VAL)
      return ta_error(L, "RuntimeError", "CancelScope.relative_deadline: %s", UNENTERED_ABSOLUTE);
    else lua_pushnumber(L, sc->relative);
  } else if (strcmp(k, "is_relative") == 0) {
    if (sc->state != 0) lua_pushnil(L); /* entered: neither */
    else lua_pushboolean(L, sc->relative != HUGE_VAL);
  }
  else if (strcmp(k, "shield") == 0) lua_pushboolean(L, sc->st.shield);
  else if (strcmp(k, "cancel_called") == 0) lua_pushboolean(L, cancel_called(L, sc));
  else if (strcmp(k, "cancelled_caught") == 0) lua_pushboolean(L, sc->cancelled_caught);
  else lua_pushnil(L);
  return 1;
}

/* A new absolute deadline.  As in Trio, a deadline that has passed
** cancels an active scope when the scheduler next processes deadlines
** (its timer is due), not here: reading cancel_called does it sooner. */
static void set_deadline(lua_State *L, ta_scope *sc, double d) {
  sc->st.deadline = d;
  if (sc->state == 1) arm_deadline(L, sc);
}

static int scope_newindex(lua_State *L) {
  ta_scope *sc = checkscope(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "deadline") == 0) {
    double d = luaL_checknumber(L, 3);
    if (d != d) return luaL_argerror(L, 3, "deadline must not be NaN");
    if (sc->relative != HUGE_VAL) return ta_error(L, "RuntimeError", "CancelScope.deadline: %s", UNENTERED_RELATIVE);
    set_deadline(L, sc, d);
  } else if (strcmp(k, "relative_deadline") == 0) {
    double r = luaL_checknumber(L, 3);
    if (r != r) return luaL_argerror(L, 3, "relative deadline must not be NaN");
    if (r < 0) return luaL_argerror(L, 3, "relative deadline must be non-negative");
    if (sc->state != 0) set_deadline(L, sc, ta_now(sc->E) + r); /* from now */
    else if (sc->st.deadline != HUGE_VAL)
      return ta_error(L, "RuntimeError", "CancelScope.relative_deadline: %s", UNENTERED_ABSOLUTE);
    else sc->relative = r;
  } else if (strcmp(k, "shield") == 0) {
    luaL_checktype(L, 3, LUA_TBOOLEAN);
    sc->st.shield = (unsigned char)lua_toboolean(L, 3);
    if (sc->state == 1) ta_status_recompute(L, sc->E, &sc->st);
  } else {
    return luaL_error(L, "CancelScope field '%s' cannot be set", k);
  }
  return 0;
}

/* "CancelScope (active, deadline is 1.50 seconds from now, 0x...)", as
** Trio's repr: the deadline is told only inside a run (which has a time). */
static int scope_tostring(lua_State *L) {
  ta_scope *sc = checkscope(L, 1);
  char state[80] = "";
  if (sc->st.cancel_called) {
    snprintf(state, sizeof state, ", cancelled");
  } else if (sc->st.deadline != HUGE_VAL && sc->E->running) {
    double dt = sc->st.deadline - ta_now(sc->E);
    snprintf(state, sizeof state, ", deadline is %.2f seconds %s", fabs(dt), dt >= 0 ? "from now" : "ago");
  }
  lua_pushfstring(L, "CancelScope (%s%s, %p)",
                  sc->state == 0 ? "unbound" : sc->state == 1 ? "active" : "exited", state, (void *)sc);
  return 1;
}

/* CancelScope(deadline, shield, relative_deadline) */
static int l_scope_new(lua_State *L) {
  double deadline, relative;
  if (lua_gettop(L) == 0) { /* CancelScope(): the hot path of trio_asyncio's run_trio */
    ta_scope_new(L, ta_upengine(L), HUGE_VAL, 0);
    return 1;
  }
  deadline = luaL_optnumber(L, 1, HUGE_VAL);
  relative = luaL_optnumber(L, 3, HUGE_VAL);
  if (deadline != deadline) return luaL_argerror(L, 1, "deadline must not be NaN");
  if (relative != relative) return luaL_argerror(L, 1, "relative deadline must not be NaN");
  if (relative < 0) return luaL_argerror(L, 1, "timeout must be non-negative");
  if (relative != HUGE_VAL && deadline != HUGE_VAL)
    return luaL_argerror(L, 1, "Cannot specify both a deadline and a relative deadline");
  ta_scope_new(L, ta_upengine(L), deadline, lua_toboolean(L, 2))->relative = relative;
  return 1;
}

static int l_scope_enter(lua_State *L) {
  ta_scope *sc = checkscope(L, 1);
  ta_scope_enter(L, sc, ta_async_check(L, "CancelScope:run", TA_TRIO));
  return 0;
}

/* scope_try_enter(scope) -> false if the scope is already cancelled (not
** entered), else enters it and returns true: one call for the hot path of
** trio_asyncio's run_trio, whose task does not start once cancelled. */
static int l_scope_try_enter(lua_State *L) {
  ta_scope *sc = checkscope(L, 1);
  ta_task *t = ta_async_check(L, "CancelScope:run", TA_TRIO);
  int entering = !cancel_called(L, sc);
  if (entering) ta_scope_enter(L, sc, t);
  lua_pushboolean(L, entering);
  return 1;
}

static int l_scope_exit(lua_State *L) {
  lua_pushboolean(L, ta_scope_exit(L, checkscope(L, 1)));
  return 1;
}

static int l_scope_caught(lua_State *L) {
  checkscope(L, 1)->cancelled_caught = 1;
  return 0;
}

/* scope_cancelled_caught(scope): the field without the __index lookup
** (trio_asyncio's run_trio). */
static int l_scope_cancelled_caught(lua_State *L) {
  lua_pushboolean(L, checkscope(L, 1)->cancelled_caught);
  return 1;
}

/* ---- scope_task: a task body that runs a function in a cancel scope ----
**
** body(scope, context_value, receiver, fn, ...), a C closure that
** make_scope_task{...} makes for the start() it returns: a Trio task's
** whole body, run in C so that the task needs no Lua frame of its own and
** fn runs at depth 1 of its thread (the hot path of trio_asyncio's
** run_trio: a Trio task per trio_as_aio call).
**   1. the task sees context_value in context_var (enter_context(value)
**      sets it when the task's context holds another value there);
**   2. a scope already cancelled is not entered: not_started(receiver);
**   3. fn(...) runs in the scope (as scope:run(fn, ...) would); when it
**      returns, the scope is left and its results go to the receiver, an
**      asyncio future (the engine's offer_results, set by asyncio/: no
**      Lua call), unless it is done already; when it
**      raises, raised(receiver, scope, err) leaves the scope (trio.lua's
**      scope_finish) and hands the outcome on.
** The receiver is a pending plain asyncio future.
** start(nursery, context_value, receiver, fn, ...) makes the scope and
** starts the task (below); C code calls it through the engine's
** start_scope_task, without a Lua call.  The scope is the receiver's to
** cancel the task with until it has the results: then the body keeps it
** as the spare scope (below), which the next start re-initializes instead
** of allocating a scope (a scope per trio_as_aio call was a tenth of its
** cost). */
enum { ST_CONTEXT_VAR = 1, ST_ENTER_CONTEXT, ST_NOT_STARTED, ST_RAISED };
static const char *const scope_task_helpers[] = {
  "context_var", "enter_context", "not_started", "raised", NULL
};
/* Arguments of the body. */
enum { ST_SCOPE = 1, ST_VALUE, ST_RECEIVER, ST_FN };
/* Upvalues of the body: the engine, the helpers, its memo (shared with
** start: upvalue 3 there). */
enum { ST_UP_HELPERS = 2, ST_UP_MEMO };

/* Calls the helper `which` with the values at the indices given (0 ends). */
static void call_helper(lua_State *L, int which, int a, int b, int c) {
  int n = 0;
  lua_rawgeti(L, lua_upvalueindex(ST_UP_HELPERS), which);
  if (a) { lua_pushvalue(L, a); n++; }
  if (b) { lua_pushvalue(L, b); n++; }
  if (c) { lua_pushvalue(L, c); n++; }
  lua_call(L, n, 0);
}

/* Step 1, with a memo: the last context table found to hold the value
** there, and that value (a weak table: it keeps neither alive), of a
** table the engine will never change (ta_ctx_push_frozen).  A task that
** starts in that table with that value needs no look (W6 trio_as_aio: a
** task per call, all in the context of the asyncio Task that calls).
** MEMO_SPARE_SCOPE: a task body's scope that no one uses any more, exited
** (weak too: a collection may take it). */
enum { MEMO_CTX = 1, MEMO_VALUE, MEMO_SPARE_SCOPE };

static void see_context(lua_State *L, ta_task *t) {
  int memo = lua_upvalueindex(ST_UP_MEMO), frozen = ta_ctx_push_frozen(L, t);
  if (!frozen) lua_pushnil(L);
  lua_rawgeti(L, memo, MEMO_CTX);
  lua_rawgeti(L, memo, MEMO_VALUE);
  if (frozen && lua_rawequal(L, -3, -2) && lua_rawequal(L, -1, ST_VALUE)) {
    lua_pop(L, 3);
    return;
  }
  lua_pop(L, 2);
  lua_rawgeti(L, lua_upvalueindex(ST_UP_HELPERS), ST_CONTEXT_VAR);
  ta_ctx_get(L, -1);
  if (!lua_rawequal(L, -1, ST_VALUE)) {
    call_helper(L, ST_ENTER_CONTEXT, ST_VALUE, 0, 0);
  } else if (frozen) {
    lua_pushvalue(L, -3);
    lua_rawseti(L, memo, MEMO_CTX);
    lua_pushvalue(L, ST_VALUE);
    lua_rawseti(L, memo, MEMO_VALUE);
  }
  lua_pop(L, 3);
}

/* The scope has no finalizer (TASK_SCOPE_MT): whatever happens, the body
** leaves it before its task can end, so that it is never collected while
** entered.  (Only a task that never ends lets its thread go entered: at
** lua_close, whose finalizers all run before anything is freed.)  ctx: the
** scope. */
static int scope_task_k(lua_State *L, int status, lua_KContext ctx) {
  ta_scope *sc = (ta_scope *)ctx;
  if (lua_gettop(L) > LUA_MINSTACK - 3) luaL_checkstack(L, 3, "too many results");
  if (status != LUA_OK && status != LUA_YIELD) { /* fn raised: the error on top */
    lua_rawgeti(L, lua_upvalueindex(ST_UP_HELPERS), ST_RAISED);
    lua_pushvalue(L, ST_RECEIVER);
    lua_pushvalue(L, ST_SCOPE);
    lua_rotate(L, -4, -1); /* [raised, receiver, scope, err] */
    status = lua_pcall(L, 3, 0, 0); /* it leaves the scope, unless it fails first */
    scope_abandon(L, sc);
    if (status != LUA_OK) return lua_error(L);
    return 0;
  }
  /* fn returned: every scope it entered has been left, unless a way into
  ** the core's internals left one entered */
  if (sc->state == 1 && sc->owner->status != &sc->st) {
    scope_abandon(L, sc);
    return luaL_error(L, "%s", OUT_OF_ORDER);
  }
  ta_scope_exit(L, sc);
  sc->E->offer_results(L, ST_RECEIVER, lua_gettop(L) - ST_RECEIVER);
  lua_pushvalue(L, ST_SCOPE); /* the receiver is done with it: the spare */
  lua_rawseti(L, lua_upvalueindex(ST_UP_MEMO), MEMO_SPARE_SCOPE);
  return 0;
}

/* The body: only start calls it, with the scope it made (no Lua code
** sees the body or calls it), so its scope is not checked again. */
static int l_scope_task(lua_State *L) {
  ta_task *t = ta_async_check_in(L, ta_upengine(L), "scope_task", TA_TRIO);
  ta_scope *sc = (ta_scope *)lua_touserdata(L, ST_SCOPE);
  lua_KContext ctx = (lua_KContext)sc;
  int status;
  see_context(L, t);
  if (cancel_called(L, sc)) {
    call_helper(L, ST_NOT_STARTED, ST_RECEIVER, 0, 0);
    return 0;
  }
  ta_scope_enter(L, sc, t);
  status = lua_pcallk(L, lua_gettop(L) - ST_FN, LUA_MULTRET, 0, ctx, scope_task_k);
  return scope_task_k(L, status, ctx);
}

/* Pushes a task body's scope, not entered: the spare one when there is
** one (in the body's memo, at memo), else a new one. */
static void push_task_scope(lua_State *L, ta_engine *E, int memo) {
  memo = lua_absindex(L, memo);
  if (lua_rawgeti(L, memo, MEMO_SPARE_SCOPE) == LUA_TUSERDATA) {
    ta_scope *sc = (ta_scope *)lua_touserdata(L, -1);
    if (sc->state == 2) { /* (only a body's scope it left is put there) */
      init_scope(sc, E, HUGE_VAL, 0);
      lua_pushnil(L);
      lua_rawseti(L, memo, MEMO_SPARE_SCOPE);
      return;
    }
  }
  lua_pop(L, 1);
  new_scope(L, E, HUGE_VAL, 0, TA_MT_TASK_SCOPE);
}

/* The stack [nursery, context_value, receiver, fn, ..., body, memo] (a
** start's upvalues 2 and 3) becomes [nursery, body, scope, context_value,
** receiver, fn, ...]: a cancel scope (the spare, or a new one), and
** body(scope, context_value, receiver, fn, ...) started as a Trio task in
** the nursery (nursery:start_soon). */
static void start_body(lua_State *L, ta_engine *E) {
  push_task_scope(L, E, -1);
  lua_replace(L, -2);
  lua_rotate(L, 2, 2);
  ta_nursery_start_soon(L, E, 2);
}

/* start(nursery, context_value, receiver, fn, ...) -> scope.  The
** receiver is checked here, once: the body hands it the results unchecked
** (the C callers of start_scope_task pass a future they made). */
static int l_start_scope_task(lua_State *L) {
  luaL_checkany(L, 4);
  if (ta_testudata(L, ta_upengine(L), 3, TA_MT_FUTURE) == NULL) luaL_typeerror(L, 3, "asyncio Future");
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, lua_upvalueindex(3));
  start_body(L, ta_upengine(L));
  lua_pushvalue(L, 3);
  return 1;
}

/* The engine's start_scope_task: start(nursery, context_value, receiver,
** fn, ...) for C code, with no Lua call.  The stack is those arguments
** from index 1, and a start (a function make_scope_task made) on top; it
** becomes [nursery, body, scope, context_value, receiver, fn, ...]. */
static void start_scope_task(lua_State *L, ta_engine *E) {
  if (lua_tocfunction(L, -1) != l_start_scope_task)
    luaL_error(L, "start_scope_task: a start function of make_scope_task expected");
  lua_getupvalue(L, -1, 3);
  lua_getupvalue(L, -2, 2);
  lua_replace(L, -3); /* [..., body, memo] */
  start_body(L, E);
}

/* make_scope_task{context_var=, enter_context=, not_started=, raised=}
** -> start (see above) */
static int l_make_scope_task(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(1));
  ta_push_helpers(L, 1, scope_task_helpers, "make_scope_task");
  lua_createtable(L, MEMO_SPARE_SCOPE, 0); /* the memo, weak */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_insert(L, -4); /* [engine, memo, engine, helpers, memo] */
  lua_pushcclosure(L, l_scope_task, ST_UP_MEMO);
  lua_insert(L, -2);
  lua_pushcclosure(L, l_start_scope_task, 3); /* engine, body, memo */
  return 1;
}

static int l_current_effective_deadline(lua_State *L) {
  ta_task *t = ta_task_check(L, "trio.current_effective_deadline", TA_TRIO);
  lua_pushnumber(L, ta_effective_deadline(t->status));
  return 1;
}

static const luaL_Reg cancel_funcs[] = {
  {"CancelScope", l_scope_new},
  {"scope_enter", l_scope_enter},
  {"scope_exit", l_scope_exit},
  {"scope_caught", l_scope_caught},
  {"scope_try_enter", l_scope_try_enter},
  {"scope_cancelled_caught", l_scope_cancelled_caught},
  {"current_effective_deadline", l_current_effective_deadline},
  {"make_scope_task", l_make_scope_task},
  {NULL, NULL}
};

static const luaL_Reg scope_meta[] = {
  {"__newindex", scope_newindex},
  {"__gc", scope_gc},
  {"__tostring", scope_tostring},
  {NULL, NULL}
};

static const luaL_Reg scope_methods[] = {
  {"cancel", scope_cancel},
  {NULL, NULL}
};

/* A task body's scope: the same but for the finalizer. */
static const luaL_Reg task_scope_meta[] = {
  {"__newindex", scope_newindex},
  {"__tostring", scope_tostring},
  {NULL, NULL}
};

/* Two classes: CancelScope, and the task body's scope (TASK_SCOPE_MT),
** which shares its __index (and so the methods trio.lua adds). */
int ta_open_scope(lua_State *L) {
  ta_engine *E = (ta_engine *)lua_touserdata(L, -1);
  E->start_scope_task = start_scope_task;
  ta_newclass(L, SCOPE_MT, scope_meta, scope_methods, "__methods");
  ta_cache_metatable(L, E, TA_MT_SCOPE);
  lua_pushvalue(L, -2); /* the engine */
  lua_getfield(L, -2, "__methods");
  lua_pushcclosure(L, scope_index, 2);
  lua_setfield(L, -2, "__index");
  lua_getfield(L, -1, "__index");
  lua_insert(L, -3); /* [__index, engine, CancelScope] */
  lua_pop(L, 1);
  ta_newclass(L, TASK_SCOPE_MT, task_scope_meta, NULL, NULL);
  ta_cache_metatable(L, E, TA_MT_TASK_SCOPE);
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_remove(L, -2); /* [core, engine] */
  ta_register(L, cancel_funcs);
  return 0;
}
