/*
** task.c — tasks: one Lua thread each, tagged with a flavor.
**
** How a task moves: ta_spawn creates it RUNNABLE on the run queue; the
** scheduler resumes it (ta_step_task); an async primitive suspends it only
** through ta_park (PARKED, with an abort callback) or ta_schedule_point
** (RUNNABLE again at once).  Both set `trap` just before lua_yieldk, so a
** yield that did not come from us (a raw coroutine.yield) is recognised and
** turned into an error instead of a hang.  Whoever wakes a parked task
** pushes the resume values on its thread and calls ta_reschedule.
*/
#include <string.h>

#include "ta.h"

#define engine_of(L) ta_upengine(L)

/* The running task, if L is its own thread.  O(1): only one task runs. */
ta_task *ta_current(lua_State *L) {
  ta_engine *E = engine_of(L);
  ta_task *t = E ? E->current : NULL;
  return (t != NULL && t->co == L) ? t : NULL;
}

/* Explicit names (task.name = ...) live in a weak table: most tasks are
** named after their function, found on their own thread, which keeps the
** task object small. */
static const char names_key = 'N';

static void push_names(lua_State *L) {
  ta_push_weak_keyed(L, &names_key);
}

/* Pushes the function the task runs (nil once it has exited). */
static void push_task_function(lua_State *L, ta_task *t) {
  lua_Debug ar;
  int level = 0;
  if (t->co == NULL) {
    lua_pushnil(L);
    return;
  }
  while (lua_getstack(t->co, level, &ar)) level++;
  if (level == 0) { /* not started: the function sits at the stack base */
    lua_pushvalue(t->co, 1);
  } else {
    lua_getstack(t->co, level - 1, &ar);
    lua_getinfo(t->co, "f", &ar);
  }
  lua_xmove(t->co, L, 1);
}

/* Pushes and returns the task's name: explicit, or "file:line" of its
** function. The task userdata must be at `idx` (0: push it from the ref). */
static const char *task_name_at(lua_State *L, ta_task *t, int idx) {
  lua_Debug ar;
  push_names(L);
  if (idx) lua_pushvalue(L, idx);
  else ta_push_task(L, t);
  lua_rawget(L, -2);
  lua_remove(L, -2);
  if (lua_type(L, -1) == LUA_TSTRING) return lua_tostring(L, -1);
  lua_pop(L, 1);
  push_task_function(L, t);
  if (lua_type(L, -1) == LUA_TFUNCTION) {
    lua_getinfo(L, ">S", &ar);
    if (ar.what[0] != 'C') return lua_pushfstring(L, "%s:%d", ar.short_src, ar.linedefined);
  } else {
    lua_pop(L, 1);
  }
  return lua_pushfstring(L, "task-%d", (int)t->id);
}

/* The name of an asyncio Task (set_name) wins over its function's place. */
const char *ta_task_name(lua_State *L, ta_task *t) {
  const char *name = ta_aio_task_name(L, t);
  return name != NULL ? name : task_name_at(L, t, 0);
}

static const char *flavor_name(int flavor) {
  return flavor == TA_TRIO ? "trio" : flavor == TA_ASYNCIO ? "asyncio" : "allow_asyncio";
}

/* True for chunks of the runtime's own Lua face: lua/trio.lua, the trio and
** asyncio folders, lua/asyncio.lua, lua/trio_asyncio.lua, installed or not. */
static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int own_chunk(const char *src) {
  static const char *const files[] = {"trio.lua", "asyncio.lua", "trio_asyncio.lua", NULL};
  if (strstr(src, "/trio/") != NULL || strstr(src, "/asyncio/") != NULL) return 1;
  for (int i = 0; files[i]; i++) {
    size_t n = strlen(src), m = strlen(files[i]);
    /* the file itself, not one whose name merely ends the same way */
    if (ends_with(src, files[i]) && (n == m + 1 || src[n - m - 1] == '/')) return 1;
  }
  return 0;
}

/* Pushes "file:line" of the user code that made the call: the first Lua
** frame that is not part of the runtime itself. */
static const char *push_call_site(lua_State *L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0 && !own_chunk(ar.source))
      return lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
  }
  return lua_pushliteral(L, "?");
}

/* The wrong-flavor error, with the phrase the principles text names for
** that direction first (DESIGN.md section 5). */
static int flavor_error(lua_State *L, ta_task *t, const char *fname, int want) {
  const char *where, *name;
  where = push_call_site(L);
  name = ta_task_name(L, t);
  if (want == TA_TRIO)
    return ta_error(L, "FlavorError",
                    "Task got bad yield: trio-flavored %s called from %s task '%s' (%s); "
                    "wrap it with trio_asyncio.trio_as_aio",
                    fname, flavor_name(t->flavor), name, where);
  return ta_error(L, "FlavorError",
                  "trio.run received unrecognized yield message: asyncio-flavored %s called "
                  "from %s task '%s' (%s); wrap it with trio_asyncio.aio_as_trio",
                  fname, flavor_name(t->flavor), name, where);
}

/* Every async primitive starts here: it returns the running task, or raises
** a clear error naming `fname` when there is none or the flavor is wrong. */
ta_task *ta_async_check(lua_State *L, const char *fname, int flavor) {
  ta_engine *E = engine_of(L);
  ta_task *t = E->current;
  if (t == NULL || t->co != L) {
    if (!E->running)
      luaL_error(L, "%s: async function called outside trio.run (no task is running); "
                    "call it from inside a task", fname);
    luaL_error(L, "%s: async function called from a plain Lua coroutine inside a task; "
                  "only the task's own coroutine may suspend (spawn a task with "
                  "nursery:start_soon instead)", fname);
  }
  if (!(t->flavor & flavor)) flavor_error(L, t, fname, flavor);
  return t;
}

/* ---- creating tasks ---- */

void ta_push_task(lua_State *L, ta_task *t) {
  if (t->weak) ta_push_weak(L, t->E, t->ref);
  else lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
}

/* A task at idx: a Trio or allow_asyncio task, or the engine task inside
** an asyncio Task. */
ta_task *ta_checktask(lua_State *L, int idx) {
  void *p = luaL_testudata(L, idx, TA_TASK_MT);
  if (p != NULL) return (ta_task *)p;
  p = luaL_testudata(L, idx, TA_AIOTASK_MT);
  if (p == NULL) luaL_typeerror(L, idx, "task");
  return ta_future_task((ta_future *)p);
}

/* Fills in task t, part of the userdata on top of the stack, to run fn (at
** fnidx, followed by nargs arguments); it is not scheduled anywhere yet.
** The new task starts with its spawner's context (shared until written:
** copy-on-write).  A weak task is part of an asyncio Task and anchored by
** whoever holds that, not by the engine. */
void ta_task_init(lua_State *L, ta_engine *E, ta_task *t, int fnidx, int nargs, int flavor,
                  ta_task *parent, int weak) {
  lua_State *co;
  fnidx = lua_absindex(L, fnidx);
  memset(t, 0, sizeof *t);
  t->E = E;
  t->ref = LUA_NOREF;
  t->abort_ref = t->ctx_ref = LUA_NOREF;
  t->timer.index = -1;
  t->timer.kind = TA_TIMER_SLEEP;
  t->flavor = (unsigned char)flavor;
  t->weak = (unsigned char)weak;
  t->id = ++E->next_id;
  co = lua_newthread(L);
  lua_setiuservalue(L, -2, ta_thread_uv(t));
  if (!lua_checkstack(co, nargs + 1)) luaL_error(L, "spawn: too many arguments");
  if (parent != NULL && parent->ctx_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, parent->ctx_ref);
    t->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    parent->ctx_owned = 0; /* shared now: the spawner copies on its next write */
  }
  lua_pushvalue(L, fnidx);
  lua_xmove(L, co, 1);
  for (int i = 1; i <= nargs; i++) lua_pushvalue(L, fnidx + i);
  lua_xmove(L, co, nargs);
  t->co = co;
  t->nargs = nargs;
  lua_pushvalue(L, -1);
  if (weak) {
    t->ref = ta_weakref(L, E);
    E->naio++;
  } else {
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    E->ntasks++;
  }
}

/* Spawns a Trio-scheduled task into nursery n (may be NULL) and cancel
** status st.  Leaves the task userdata on the stack. */
ta_task *ta_spawn(lua_State *L, ta_engine *E, int fnidx, int nargs, int flavor,
                  ta_nursery *n, ta_status *st, ta_task *parent) {
  ta_task *t;
  fnidx = lua_absindex(L, fnidx);
  t = (ta_task *)lua_newuserdatauv(L, sizeof *t, TA_TASK_NUV);
  ta_setmetatable(L, E, TA_MT_TASK);
  ta_task_init(L, E, t, fnidx, nargs, flavor, parent, 0);
  ta_status_link_task(st, t);
  if (n != NULL) {
    t->nursery = n;
    t->sib_next = n->first_child;
    if (n->first_child) n->first_child->sib_prev = t;
    n->first_child = t;
    n->nchildren++;
  }
  t->state = TA_RUNNABLE;
  ta_runq_push(E, t);
  if (ta_hooked(E)) {
    ta_hook(L, E, "task_spawned", t);
    ta_hook(L, E, "task_scheduled", t);
  }
  return t;
}

/* ---- suspending and waking ---- */

static int resume_k(lua_State *L, int status, lua_KContext ctx) {
  ta_task *t = (ta_task *)ctx;
  (void)status;
  if (t->resume_error) {
    t->resume_error = 0;
    return lua_error(L);
  }
  return lua_gettop(L) - t->kbase;
}

/* The one choke point for blocking: park t until someone reschedules it.
** If cancellation is already pending it is delivered through `abort` at
** once (level-triggered), so the wait ends with Cancelled. */
int ta_park_k(lua_State *L, ta_task *t, ta_abort_fn abort, lua_KFunction k) {
  ta_engine *E = t->E;
  t->state = TA_PARKED;
  t->abort = abort;
  t->trap = 1;
  t->kbase = lua_gettop(L);
  if (t->status->cancelled || (E->ki_pending && t == E->main)) ta_deliver_cancel(L, t);
  return lua_yieldk(L, 0, (lua_KContext)t, k);
}

int ta_park(lua_State *L, ta_task *t, ta_abort_fn abort) {
  return ta_park_k(L, t, abort, resume_k);
}

/* A schedule point without a cancellation check: back to the run queue.
** The top nret values of the stack are returned after it. */
int ta_schedule_point_ret(lua_State *L, ta_task *t, int nret) {
  t->state = TA_RUNNABLE;
  t->trap = 1;
  t->kbase = lua_gettop(L) - nret;
  ta_runq_push(t->E, t);
  return lua_yieldk(L, 0, (lua_KContext)t, resume_k);
}

/* An asyncio task suspends to its loop (which looks at t->wait); k (NULL:
** the usual one) gets the task as context. */
int ta_aio_yield(lua_State *L, ta_task *t, int nret, lua_KFunction k) {
  t->state = TA_PARKED;
  t->trap = 1;
  t->kbase = lua_gettop(L) - nret;
  return lua_yieldk(L, 0, (lua_KContext)t, k ? k : resume_k);
}

int ta_schedule_point(lua_State *L, ta_task *t) {
  return ta_schedule_point_ret(L, t, 0);
}

/* Trio's checkpoint: a schedule point first (the scheduler turns expired
** deadlines into cancellation), then the cancellation check. */
static int checkpoint_k(lua_State *L, int status, lua_KContext ctx) {
  ta_task *t = (ta_task *)ctx;
  (void)status;
  ta_check_cancelled(L, t);
  return lua_gettop(L) - t->kbase;
}

/* ... returning the top nret values of the stack after it. */
int ta_checkpoint_ret(lua_State *L, ta_task *t, int nret) {
  t->state = TA_RUNNABLE;
  t->trap = 1;
  t->kbase = lua_gettop(L) - nret;
  ta_runq_push(t->E, t);
  return lua_yieldk(L, 0, (lua_KContext)t, checkpoint_k);
}

int ta_checkpoint(lua_State *L, ta_task *t) {
  return ta_checkpoint_ret(L, t, 0);
}

/* The caller has already unlinked t from what it waited on and pushed
** `nvalues` resume values (or one error value) on t->co. */
void ta_reschedule(ta_task *t, int nvalues, int is_error) {
  ta_engine *E = t->E;
  t->state = TA_RUNNABLE;
  t->abort = NULL;
  t->wait = NULL;
  t->nargs = nvalues;
  t->resume_error = (unsigned char)is_error;
  ta_runq_push(E, t);
  if (ta_hooked(E) && E->curL != NULL && !E->in_io_wait) ta_hook(E->curL, E, "task_scheduled", t);
}

static void push_cancelled(lua_State *L, ta_task *t) {
  ta_engine *E = t->E;
  if (E->ki_pending && t == E->main) {
    E->ki_pending = 0;
    ta_push_error(L, E, "KeyboardInterrupt", "interrupted by Ctrl-C (SIGINT)");
  } else {
    ta_push_error(L, E, "Cancelled", "cancelled");
  }
}

/* Cancellation reached t: if it is parked and its abort callback agrees,
** wake it with Cancelled (or KeyboardInterrupt for the main task). */
void ta_deliver_cancel(lua_State *L, ta_task *t) {
  if (t->state != TA_PARKED || t->abort == NULL) return;
  if (t->abort(L, t) != TA_ABORT_SUCCEEDED) return;
  push_cancelled(L, t);
  lua_xmove(L, t->co, 1);
  ta_reschedule(t, 1, 1);
}

void ta_raise_cancelled(lua_State *L) {
  ta_task *t = ta_current(L);
  if (t) push_cancelled(L, t);
  else ta_push_error(L, engine_of(L), "Cancelled", "cancelled");
  lua_error(L);
}

void ta_check_cancelled(lua_State *L, ta_task *t) {
  if (t->status->cancelled || (t->E->ki_pending && t == t->E->main)) ta_raise_cancelled(L);
}

/* ---- running and exiting ---- */

/* The task's error value, if any, is on top of L (not of t->co). */
static void task_exit(lua_State *L, ta_task *t, int ok, int nres) {
  ta_engine *E = t->E;
  lua_State *co = t->co;
  t->state = TA_DONE;
  ta_status_unlink_task(t);
  if (!t->weak && t->nursery != NULL) {
    if (!ok) {
      if (lua_type(L, -1) == LUA_TTABLE) {
        lua_pushliteral(L, "traceback");
        lua_rawget(L, -2);
      } else {
        luaL_traceback(L, co, NULL, 0);
      }
    }
    ta_nursery_child_exited(L, t->nursery, t, ok);
    if (!ok) lua_pop(L, 2);
  } else if (t == E->main) {
    E->main_done = 1;
    E->main_ok = ok;
    if (ok) {
      lua_createtable(L, nres, 1);
      lua_xmove(co, L, nres);
      for (int i = nres; i >= 1; i--) lua_rawseti(L, -1 - i, i);
      lua_pushinteger(L, nres);
      lua_setfield(L, -2, "n");
    }
    E->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  } else if (t->weak) {
    ta_aio_task_exited(L, t, ok, nres);
  } else if (!ok) {
    lua_pop(L, 1);
  }
  if (ta_hooked(E)) ta_hook(L, E, "task_exited", t);
  /* A coroutine that died with an error keeps its pending to-be-closed
  ** variables until it is closed: close them now (their errors are lost,
  ** the task's own error already went to its owner). */
  if (!ok && lua_status(co) != LUA_OK && lua_status(co) != LUA_YIELD) ta_closethread(co, L);
  lua_settop(co, 0);
  /* Drop the thread: the coroutine and what it held become collectable even
  ** if someone keeps the task object. */
  ta_push_task(L, t);
  lua_pushnil(L);
  lua_setiuservalue(L, -2, ta_thread_uv(t));
  lua_pop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, t->abort_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, t->ctx_ref);
  t->ctx_ref = LUA_NOREF;
  t->abort_ref = LUA_NOREF;
  if (t->weak) { /* its Task keeps the weak reference until collected */
    E->naio--;
  } else {
    luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
    t->ref = LUA_NOREF;
    E->ntasks--;
  }
  t->co = NULL;
}

/* A yield that did not come through ta_park/ta_schedule_point: the task
** yielded something the scheduler does not understand.  It cannot be
** resumed meaningfully, so it fails with a clear error. */
static void foreign_yield(lua_State *L, ta_task *t, int nres) {
  int top = lua_gettop(L);
  int aio = t->flavor == TA_ASYNCIO;
  const char *msg;
  lua_pushstring(L, nres > 0 ? luaL_tolstring(t->co, -nres, NULL) : "nothing");
  ta_task_name(L, t);
  luaL_traceback(L, t->co, NULL, 0);
  msg = lua_pushfstring(L, "%s: raw coroutine.yield of %s from %s task '%s' (only the "
                           "runtime's own async functions may suspend a task)",
                        aio ? "Task got bad yield" : "trio.run received unrecognized yield message",
                        lua_tostring(L, top + 1), aio ? "asyncio" : "trio",
                        lua_tostring(L, top + 2));
  ta_push_error(L, t->E, "FlavorError", msg);
  if (lua_istable(L, -1)) {
    lua_pushvalue(L, top + 3);
    lua_setfield(L, -2, "traceback");
  }
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  ta_closethread(t->co, L);
  lua_settop(t->co, 0);
  task_exit(L, t, 0, 0);
}

/* Ends a task that never ran, with the error on top of L (popped). */
void ta_task_fail(lua_State *L, ta_task *t) {
  lua_settop(t->co, 0);
  task_exit(L, t, 0, 1);
}

void ta_step_task(lua_State *L, ta_task *t) {
  ta_engine *E = t->E;
  ta_task *prev = E->current;
  lua_State *prevL = E->curL;
  int nres = 0, st, nargs = t->nargs, hooked = ta_hooked(E), tidx = 0;
  if (hooked) {
    ta_push_task(L, t); /* keeps it nameable for after_task_step */
    tidx = lua_gettop(L);
    ta_hook(L, E, "before_task_step", t);
  }
  E->current = t;
  E->curL = t->co;
  t->state = TA_RUNNING;
  t->trap = 0;
  t->nargs = 0;
  st = lua_resume(t->co, L, nargs, &nres);
  E->current = prev;
  E->curL = prevL;
  if (st == LUA_YIELD) {
    if (!t->trap) foreign_yield(L, t, nres);
  } else if (st == LUA_OK) {
    task_exit(L, t, 1, nres);
  } else {
    lua_xmove(t->co, L, 1);
    /* Give error objects the stack they were raised on, if they lack one. */
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_pushliteral(L, "traceback");
      if (lua_rawget(L, -2) == LUA_TNIL) {
        lua_pushliteral(L, "traceback");
        luaL_traceback(L, t->co, NULL, 0);
        lua_rawset(L, -4);
      }
      lua_pop(L, 1);
    }
    task_exit(L, t, 0, 1);
  }
  if (hooked) {
    if (ta_hooked(E)) {
      lua_pushvalue(L, tidx);
      ta_hook_arg(L, E, "after_task_step");
    }
    lua_remove(L, tidx);
  }
}

/* ---- the Lua face of tasks: trio.lowlevel ---- */

static int t_current_task(lua_State *L) {
  ta_task *t = ta_async_check(L, "trio.lowlevel.current_task", TA_TRIO);
  ta_push_task(L, t);
  return 1;
}

static int t_current_root_task(lua_State *L) {
  ta_engine *E = engine_of(L);
  if (!E->running || E->main == NULL || E->main->ref == LUA_NOREF) return 0;
  ta_push_task(L, E->main);
  return 1;
}

static int t_checkpoint(lua_State *L) {
  return ta_checkpoint(L, ta_async_check(L, "trio.lowlevel.checkpoint", TA_TRIO));
}

static int t_checkpoint_if_cancelled(lua_State *L) {
  ta_task *t = ta_async_check(L, "trio.lowlevel.checkpoint_if_cancelled", TA_TRIO);
  ta_check_cancelled(L, t);
  return 0;
}

static int t_cancel_shielded_checkpoint(lua_State *L) {
  ta_task *t = ta_async_check(L, "trio.lowlevel.cancel_shielded_checkpoint", TA_TRIO);
  return ta_schedule_point(L, t);
}

/* wait_task_rescheduled(abort_fn): abort_fn(raise_cancel) answers
** "SUCCEEDED" (we wake the task with Cancelled) or "FAILED" (its owner
** will reschedule it later). */
static int raise_cancel(lua_State *L) {
  ta_raise_cancelled(L);
  return 0;
}

static int lua_abort(lua_State *L, ta_task *t) {
  int ok, succeeded;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->abort_ref);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, raise_cancel, 1);
  ok = lua_pcall(L, 1, 1, 0) == LUA_OK;
  succeeded = ok && lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "SUCCEEDED") == 0;
  lua_pop(L, 1);
  if (succeeded) {
    luaL_unref(L, LUA_REGISTRYINDEX, t->abort_ref);
    t->abort_ref = LUA_NOREF;
  }
  return succeeded ? TA_ABORT_SUCCEEDED : TA_ABORT_FAILED;
}

static char lua_wait_marker;

static int t_wait_task_rescheduled(lua_State *L) {
  ta_task *t = ta_async_check(L, "trio.lowlevel.wait_task_rescheduled", TA_TRIO);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, t->abort_ref);
  t->abort_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  t->wait = &lua_wait_marker;
  return ta_park(L, t, lua_abort);
}

static int t_reschedule(lua_State *L) {
  ta_task *t = ta_checktask(L, 1);
  int ok = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
  if (t->state != TA_PARKED || t->wait != &lua_wait_marker)
    return luaL_argerror(L, 1, "task is not blocked in wait_task_rescheduled");
  luaL_unref(L, LUA_REGISTRYINDEX, t->abort_ref);
  t->abort_ref = LUA_NOREF;
  lua_settop(L, 3);
  lua_xmove(L, t->co, 1);
  ta_reschedule(t, 1, !ok);
  return 0;
}

/* The fields every task shows (name, flavor, parent_nursery,
** child_nurseries, id, done): pushes field k of the task t (its userdata at
** idx) and returns 1, or returns 0 for another key.  asyncio Tasks show
** them too (future.c). */
int ta_task_field(lua_State *L, ta_task *t, int idx, const char *k) {
  if (strcmp(k, "name") == 0) {
    if (t->weak) ta_task_name(L, t);
    else task_name_at(L, t, idx);
  } else if (strcmp(k, "flavor") == 0) {
    lua_pushstring(L, flavor_name(t->flavor));
  } else if (strcmp(k, "parent_nursery") == 0) {
    if (!t->weak && t->nursery && t->ref != LUA_NOREF) ta_push_nursery(L, t->nursery);
    else lua_pushnil(L);
  } else if (strcmp(k, "child_nurseries") == 0) {
    int i = 0;
    lua_newtable(L);
    for (ta_nursery *n = t->E->open_nurseries; n; n = n->next_open) {
      if (n->parent_task != t) continue;
      ta_push_nursery(L, n);
      lua_rawseti(L, -2, ++i);
    }
  } else if (strcmp(k, "id") == 0) {
    lua_pushinteger(L, t->id);
  } else if (strcmp(k, "done") == 0) {
    lua_pushboolean(L, t->state == TA_DONE);
  } else {
    return 0;
  }
  return 1;
}

static int task_index(lua_State *L) {
  ta_task *t = ta_checktask(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (!ta_task_field(L, t, 1, k)) {
    luaL_getmetafield(L, 1, "__methods");
    lua_getfield(L, -1, k);
  }
  return 1;
}

static int task_newindex(lua_State *L) {
  ta_checktask(L, 1);
  if (strcmp(luaL_checkstring(L, 2), "name") != 0)
    return luaL_error(L, "task field '%s' is read-only", lua_tostring(L, 2));
  luaL_checkstring(L, 3);
  push_names(L);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 3);
  lua_rawset(L, -3);
  return 0;
}

static int task_tostring(lua_State *L) {
  ta_task *t = ta_checktask(L, 1);
  lua_pushfstring(L, "%s task '", flavor_name(t->flavor));
  lua_getfield(L, 1, "name");
  lua_pushfstring(L, "' (%p)", (void *)t);
  lua_concat(L, 3);
  return 1;
}

/* Task context (for trio.ContextVar): a table shared with the spawner until
** the task writes, then copied (copy-on-write keeps spawning cheap).  It is
** held by a registry reference, only while the task has one. */
static int ctx_table(lua_State *L, int for_write) {
  ta_engine *E = engine_of(L);
  ta_task *t = E->current;
  if (t == NULL || t->co == NULL) {
    lua_getfield(L, LUA_REGISTRYINDEX, "trio_asyncio.context");
    if (lua_isnil(L, -1) && for_write) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setfield(L, LUA_REGISTRYINDEX, "trio_asyncio.context");
    }
    return lua_istable(L, -1);
  }
  if (t->ctx_ref != LUA_NOREF) lua_rawgeti(L, LUA_REGISTRYINDEX, t->ctx_ref);
  else lua_pushnil(L);
  if (for_write && !t->ctx_owned) {
    lua_newtable(L);
    if (lua_istable(L, -2)) {
      lua_pushnil(L);
      while (lua_next(L, -3)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
      }
    }
    lua_remove(L, -2);
    lua_pushvalue(L, -1);
    luaL_unref(L, LUA_REGISTRYINDEX, t->ctx_ref);
    t->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->ctx_owned = 1;
  }
  return lua_istable(L, -1);
}

/* ctx_get(key) -> stored value (nil when unset) */
static int t_ctx_get(lua_State *L) {
  lua_settop(L, 1);
  if (!ctx_table(L, 0)) return 0;
  lua_pushvalue(L, 1);
  lua_rawget(L, -2);
  return 1;
}

/* ctx_set(key, value) -> previous stored value */
static int t_ctx_set(lua_State *L) {
  lua_settop(L, 2);
  ctx_table(L, 1);
  lua_pushvalue(L, 1);
  lua_rawget(L, -2);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_rawset(L, -4);
  return 1;
}

/* current_flavor() -> "trio", "asyncio", "allow_asyncio" or nil */
static int t_current_flavor(lua_State *L) {
  ta_task *t = ta_current(L);
  if (t == NULL) return 0;
  lua_pushstring(L, t->flavor == TA_BOTH ? "trio" : flavor_name(t->flavor));
  return 1;
}

/* check_aio(fname) / check_trio(fname): raise as an async function of
** that flavor named fname would if called here. */
static int t_check_aio(lua_State *L) {
  ta_async_check(L, luaL_checkstring(L, 1), TA_ASYNCIO);
  return 0;
}

static int t_check_trio(lua_State *L) {
  ta_async_check(L, luaL_checkstring(L, 1), TA_TRIO);
  return 0;
}

/* coroutine.yield, guarded: in a task's own coroutine a raw yield can only
** be a foreign library's suspension, which the scheduler cannot serve, so
** it raises at the call site (the scheduler still catches yields made
** through a copy of the original function). */
static int t_guarded_yield(lua_State *L) {
  ta_task *t = ta_current(L);
  if (t != NULL) {
    int aio = t->flavor == TA_ASYNCIO;
    const char *what = lua_gettop(L) > 0 ? luaL_tolstring(L, 1, NULL) : "nothing";
    const char *name = ta_task_name(L, t);
    return ta_error(L, "FlavorError",
                    "%s: raw coroutine.yield of %s from %s task '%s' (only the runtime's own "
                    "async functions may suspend a task; call this library from a plain "
                    "coroutine or through its own event loop)",
                    aio ? "Task got bad yield" : "trio.run received unrecognized yield message",
                    what, aio ? "asyncio" : "trio", name);
  }
  return lua_yield(L, lua_gettop(L));
}

/* task_where(task) -> "what (file:line)" where the task is suspended,
** "running", "not started" or "done". */
static int t_task_where(lua_State *L) {
  ta_task *t = ta_checktask(L, 1);
  lua_Debug ar;
  const char *what = NULL;
  if (t->co == NULL) return lua_pushliteral(L, "done"), 1;
  if (t->state == TA_RUNNING) return lua_pushliteral(L, "running"), 1;
  for (int level = 0; lua_getstack(t->co, level, &ar); level++) {
    lua_getinfo(t->co, "Sln", &ar);
    if (what == NULL && ar.name != NULL) what = ar.name;
    if (ar.currentline > 0 && !own_chunk(ar.source)) {
      if (what != NULL) lua_pushfstring(L, "%s (%s:%d)", what, ar.short_src, ar.currentline);
      else lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
      return 1;
    }
  }
  lua_pushstring(L, what != NULL ? what : "not started");
  return 1;
}

/* system_tasks() -> the live tasks spawned with spawn_system_task */
static int t_system_tasks(lua_State *L) {
  ta_engine *E = engine_of(L);
  int n = 0;
  lua_newtable(L);
  if (!E->running) return 1;
  for (ta_task *t = E->root.first_task; t != NULL; t = t->status_next) {
    if (t->system) {
      ta_push_task(L, t);
      lua_rawseti(L, -2, ++n);
    }
  }
  return 1;
}

static const luaL_Reg task_funcs[] = {
  {"task_where", t_task_where},
  {"system_tasks", t_system_tasks},
  {"guarded_yield", t_guarded_yield},
  {"check_aio", t_check_aio},
  {"check_trio", t_check_trio},
  {"current_task", t_current_task},
  {"current_root_task", t_current_root_task},
  {"checkpoint", t_checkpoint},
  {"checkpoint_if_cancelled", t_checkpoint_if_cancelled},
  {"cancel_shielded_checkpoint", t_cancel_shielded_checkpoint},
  {"wait_task_rescheduled", t_wait_task_rescheduled},
  {"reschedule", t_reschedule},
  {"ctx_get", t_ctx_get},
  {"ctx_set", t_ctx_set},
  {"current_flavor", t_current_flavor},
  {NULL, NULL}
};

/* Expects the core table at -2 and the engine at -1. */
int ta_open_task(lua_State *L) {
  luaL_newmetatable(L, TA_TASK_MT);
  ta_cache_metatable(L, (ta_engine *)lua_touserdata(L, -2), TA_MT_TASK);
  lua_pushcfunction(L, task_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, task_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, task_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_newtable(L);
  lua_setfield(L, -2, "__methods");
  lua_pop(L, 1);
  ta_register(L, task_funcs);
  return 0;
}
