/*
** nursery.c — nurseries: the owners of child tasks.
**
** A nursery has its own cancel scope, entered by the task that opened it;
** children run in that scope's status.  A child that exits with an error
** records it (with its traceback) and cancels the scope, so its siblings
** and the body are cancelled.  The opening task waits in nursery_wait until
** every child has exited; cancellation reaching it there cancels the
** nursery's scope instead of ending the wait (no orphans).  While open, the
** nursery is anchored by a registry reference: children point at it.
**
** A nursery is a table, not a userdata: its start_soon is a field of its
** own, so nursery:start_soon finds it without a metamethod call (the
** __index function a userdata needs cost some 300 instructions a call, a
** sixteenth of W1 spawn's task).  Its [1] is its state: the userdata with
** the struct and the user values below, which has the same metatable (it
** cannot be forged; a function given the state acts on its nursery).  All
** the rest (methods, fields) comes from __index.
*/
#include <math.h>
#include <string.h>

#include "trio/trio.h"

#define NURSERY_MT "trio_asyncio.Nursery"
/* User values: collected errors and their tracebacks, its cancel scope, and
** the task that opened it (parent_task stays after that task exits). */
enum { UV_ERRORS = 1, UV_TRACEBACKS = 2, UV_SCOPE = 3, UV_PARENT_TASK = 4, NURSERY_NUV = 4 };

/* The state's memory: the struct, and the address of its table, which
** start_soon compares with the table it is given (lua_topointer) to know
** the nursery it checked last without reading [1]. */
typedef struct nursery_state {
  ta_nursery n;
  const void *table;
} nursery_state;

/* The nursery at idx (its table, or its state); E may be NULL (a function
** without the engine as upvalue). */
static ta_nursery *tonursery(lua_State *L, ta_engine *E, int idx) {
  ta_nursery *n;
  if (lua_type(L, idx) != LUA_TTABLE) return (ta_nursery *)ta_checkudata(L, E, idx, TA_MT_NURSERY);
  lua_rawgeti(L, idx, 1);
  n = (ta_nursery *)ta_testudata(L, E, -1, TA_MT_NURSERY);
  lua_pop(L, 1);
  if (n == NULL) luaL_argerror(L, idx, NURSERY_MT " expected, got table");
  return n;
}

static ta_nursery *checknursery(lua_State *L, int idx) {
  return tonursery(L, ta_upengine(L), idx);
}

/* Pushes the state of the nursery at idx, which tonursery accepted. */
static void push_state(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TTABLE) lua_rawgeti(L, idx, 1);
  else lua_pushvalue(L, idx);
}

void ta_push_nursery(lua_State *L, ta_nursery *n) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, n->ref);
}

/* Appends the error at erridx (traceback at tbidx) and cancels the scope
** for it (source TA_CANCEL_*), from task `from` (NULL: none) with, when
** `reason` is not NULL, the reason text `reason` followed by the error's
** first line. */
static void nursery_add_error(lua_State *L, ta_nursery *n, int erridx, int tbidx, int source,
                              ta_task *from, const char *reason) {
  erridx = lua_absindex(L, erridx);
  tbidx = lua_absindex(L, tbidx);
  if (!n->scope->st.cancel_called) {
    if (reason != NULL) {
      const char *err = ta_tostring(L, erridx);
      lua_pushstring(L, reason);
      lua_pushlstring(L, err, strcspn(err, "\n"));
      lua_concat(L, 2);
      ta_status_set_reason(L, &n->scope->st, -1, from);
      lua_pop(L, 2);
    } else {
      ta_status_set_reason(L, &n->scope->st, 0, from);
    }
  }
  ta_push_nursery(L, n);
  push_state(L, -1);
  lua_remove(L, -2);
  for (int uv = UV_ERRORS; uv <= UV_TRACEBACKS; uv++) {
    lua_getiuservalue(L, -1, uv);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setiuservalue(L, -3, uv);
    }
    lua_pushvalue(L, uv == UV_ERRORS ? erridx : tbidx);
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  ta_status_cancel(L, n->E, &n->scope->st, source);
}

static void unlink_child(ta_nursery *n, ta_task *t) {
  TA_LIST_REMOVE(n->first_child, t, sib_prev, sib_next);
  t->owner = NULL;
  if (--n->nchildren == 0 && n->waiter != NULL) {
    ta_task *w = n->waiter;
    n->waiter = NULL;
    ta_reschedule(w, 0, 0);
  }
}

static void link_child(ta_nursery *n, ta_task *t) {
  t->owner = n;
  TA_LIST_PUSH(n->first_child, t, sib_prev, sib_next);
  n->nchildren++;
}

/* ---- the kind of Trio tasks ---- */

/* A child exited (its object at tidx, its error, if any, below; tidx 0:
** it finished and its object never reached Lua code): the error goes to
** the nursery with its traceback; it breaks the parking lots it was
** registered for. */
static void trio_task_exited(lua_State *L, ta_task *t, int tidx, int ok, int nres) {
  ta_nursery *n = (ta_nursery *)t->owner;
  int eidx = tidx - 1;
  (void)nres;
  if (n != NULL && !ok) {
    if (lua_isnil(L, eidx)) { /* error(nil): still an error, never lost */
      lua_pushfstring(L, "task '%s' raised nil (error(nil))", ta_task_name(L, t));
      ta_push_error(L, t->E, "RuntimeError", lua_tostring(L, -1));
      lua_replace(L, eidx);
      lua_settop(L, tidx);
    }
    if (lua_type(L, eidx) == LUA_TTABLE) {
      lua_pushliteral(L, "traceback");
      lua_rawget(L, eidx);
    } else {
      ta_traceback(L, t->co, NULL, 0);
    }
    nursery_add_error(L, n, eidx, -1, TA_CANCEL_NURSERY, t, "child task raised exception ");
    lua_settop(L, tidx);
  }
  if (t->lot_breaker) ta_break_lots_of(L, t); /* (a system task's too) */
  if (n != NULL) {
    if (tidx != 0) { /* parent_nursery stays (see spawn_into) */
      ta_push_nursery(L, n);
      lua_setiuservalue(L, tidx, TA_UV_PARENT);
    }
    unlink_child(n, t);
  }
}

/* parent_nursery, eventual_parent_nursery and child_nurseries */
static int trio_task_field(lua_State *L, ta_task *t, int idx, const char *k) {
  if (strcmp(k, "parent_nursery") == 0) {
    if (t->owner != NULL) ta_push_nursery(L, (ta_nursery *)t->owner);
    else lua_getiuservalue(L, idx, TA_UV_PARENT);
  } else if (strcmp(k, "eventual_parent_nursery") == 0) {
    ta_nursery *n = (ta_nursery *)t->owner;
    if (n != NULL && n->target != NULL && !n->target->closed) ta_push_nursery(L, n->target);
    else lua_pushnil(L);
  } else if (strcmp(k, "child_nurseries") == 0) {
    /* oldest first, as in Trio: the open list is newest first */
    int count = 0;
    ta_nursery *n;
    for (n = (ta_nursery *)t->E->open_nurseries; n != NULL; n = n->next_open)
      if (n->parent_task == t) count++;
    lua_createtable(L, count, 0);
    for (n = (ta_nursery *)t->E->open_nurseries; n != NULL; n = n->next_open) {
      if (n->parent_task != t) continue;
      ta_push_nursery(L, n);
      lua_rawseti(L, -2, count--);
    }
  } else {
    return 0;
  }
  return 1;
}

/* A child that finished only unlinks itself from its nursery (waking the
** nursery's waiter), unless it must break parking lots. */
static int trio_task_exit_may_raise(ta_task *t, int ok) {
  return !ok || t->lot_breaker;
}

const ta_task_kind ta_trio_task_kind = {
  "trio task", 1, 0, trio_task_exited, trio_task_exit_may_raise, NULL, trio_task_field
};

/* open_nursery() -> nursery, entered: its scope is active in this task.
** Upvalue 2: the methods, whose start_soon the nursery gets as its own. */
static int l_nursery_open(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_task *t = ta_async_check(L, "trio.open_nursery", TA_TRIO);
  ta_nursery *n;
  lua_createtable(L, 1, 1);
  lua_getfield(L, lua_upvalueindex(2), "start_soon");
  lua_setfield(L, -2, "start_soon");
  ta_setmetatable(L, E, TA_MT_NURSERY);
  {
    nursery_state *state = (nursery_state *)lua_newuserdatauv(L, sizeof *state, NURSERY_NUV);
    memset(state, 0, sizeof *state);
    state->table = lua_topointer(L, -2);
    n = &state->n;
  }
  n->E = E;
  n->ref = LUA_NOREF;
  ta_setmetatable(L, E, TA_MT_NURSERY);
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, 1); /* (its array slot exists: no allocation) */
  n->scope = ta_scope_new(L, E, HUGE_VAL, 0);
  lua_setiuservalue(L, -2, UV_SCOPE);
  ta_scope_enter(L, n->scope, t);
  n->parent_task = t;
  ta_push_task(L, t);
  lua_setiuservalue(L, -2, UV_PARENT_TASK);
  {
    ta_nursery *head = (ta_nursery *)E->open_nurseries;
    TA_LIST_PUSH(head, n, prev_open, next_open);
    E->open_nurseries = head;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, -1);
  n->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* nursery_set_target(tmp, target): tmp is nursery:start's own nursery for
** a start into target (the task's eventual_parent_nursery until started). */
static int l_nursery_set_target(lua_State *L) {
  checknursery(L, 1)->target = checknursery(L, 2);
  return 0;
}

static int l_nursery_add_error(lua_State *L) {
  ta_nursery *n = checknursery(L, 1);
  lua_settop(L, 3);
  if (lua_isnil(L, 2)) { /* the body's error(nil): still an error, never lost */
    ta_push_error(L, n->E, "RuntimeError", "the nursery's body raised nil (error(nil))");
    lua_replace(L, 2);
  }
  nursery_add_error(L, n, 2, 3, TA_CANCEL_NURSERY, n->parent_task,
                    "Code block inside nursery contextmanager raised exception ");
  return 0;
}

/* Cancellation reaching the waiting parent cancels the children instead.
** A Ctrl-C for the main task goes into the nursery's errors (as Trio's
** nursery does), so it comes out when the children are done. */
static int wait_abort(lua_State *L, ta_task *t) {
  ta_nursery *n = (ta_nursery *)t->wait;
  ta_engine *E = n->E;
  if (ta_ki_for(E, t)) {
    ta_push_cancelled(L, t); /* the KeyboardInterrupt; clears ki_pending */
    ta_traceback(L, t->co, NULL, 0);
    nursery_add_error(L, n, -2, -1, TA_CANCEL_KI, n->parent_task, NULL);
    lua_pop(L, 2);
  }
  /* (otherwise the cancellation is the parent's: its reason shows) */
  ta_status_cancel(L, E, &n->scope->st, TA_CANCEL_BY_PARENT);
  return TA_ABORT_FAILED;
}

static int l_nursery_wait(lua_State *L) {
  ta_nursery *n = checknursery(L, 1);
  ta_task *t = ta_async_check(L, "trio.open_nursery", TA_TRIO);
  if (n->nchildren == 0) return ta_schedule_point(L, t);
  n->waiter = t;
  t->wait = n;
  return ta_park(L, t, wait_abort);
}

/* nursery_close(n) -> errors|nil, tracebacks|nil, catches_cancelled */
static int l_nursery_close(lua_State *L) {
  ta_nursery *n = checknursery(L, 1);
  if (n->closed) return luaL_error(L, "nursery already closed");
  if (n->nchildren > 0) return luaL_error(L, "nursery closed with live children");
  n->closed = 1;
  if (n->E->checked_nursery == n) n->E->checked_nursery = NULL; /* (it may go now) */
  lua_pushboolean(L, ta_scope_exit(L, n->scope));
  {
    ta_nursery *head = (ta_nursery *)n->E->open_nurseries;
    TA_LIST_REMOVE(head, n, prev_open, next_open);
    n->E->open_nurseries = head;
  }
  luaL_unref(L, LUA_REGISTRYINDEX, n->ref);
  n->ref = LUA_NOREF;
  push_state(L, 1);
  lua_getiuservalue(L, -1, UV_ERRORS);
  lua_getiuservalue(L, -2, UV_TRACEBACKS);
  lua_remove(L, -3);
  lua_rotate(L, -3, 2);
  return 3;
}

/* The nursery is at index 1.  The new task's parent_nursery is its owner
** while it lives; its object keeps it in a user value once it has exited
** (trio_task_exited: only an object that reached Lua code, which is the
** only one anyone can ask), so it stays, as in Trio. */
static void spawn_into(lua_State *L, ta_nursery *n, int fnidx, int flavor) {
  ta_engine *E = n->E;
  ta_task *parent = E->current;
  if (n->closed) luaL_error(L, "start_soon: the nursery is closed to new tasks");
  if (!E->running) luaL_error(L, "start_soon: no trio run is active");
  if (lua_type(L, fnidx) != LUA_TFUNCTION) ta_check_callable(L, fnidx); /* (a callable table) */
  ta_task *t = ta_spawn(L, E, fnidx, lua_gettop(L) - fnidx, flavor, &ta_trio_task_kind,
                        &n->scope->st, parent && parent->co == L ? parent : NULL);
  if (n->parent_task->system_tree) ta_task_in_system_tree(t);
  link_child(n, t);
}

/* nursery:start_soon(fn, ...) for C callers: the nursery at index 1, the
** function at fnidx, its arguments above it up to the top.  The nursery it
** checked last is known while it is open (alive, so no other object can
** have the address of its table or of its state): the same nursery again
** needs no look at its [1] or metatable (W1 spawn: 2%). */
void ta_nursery_start_soon(lua_State *L, ta_engine *E, int fnidx) {
  ta_nursery *n = NULL;
  int type = lua_type(L, 1);
  if (type == LUA_TTABLE) {
    nursery_state *checked = (nursery_state *)E->checked_nursery;
    if (checked != NULL && checked->table == lua_topointer(L, 1)) n = &checked->n;
  } else if (type == LUA_TUSERDATA) {
    n = (ta_nursery *)lua_touserdata(L, 1);
  }
  if (n == NULL || n != E->checked_nursery) {
    n = tonursery(L, E, 1);
    if (!n->closed) E->checked_nursery = n;
  }
  spawn_into(L, n, fnidx, TA_TRIO);
}

/* nursery:start_soon(fn, ...) */
static int l_start_soon(lua_State *L) {
  ta_nursery_start_soon(L, ta_upengine(L), 2);
  return 0;
}

/* nursery_spawn_both(n, fn, ...): a task that may call both flavors
** (trio_asyncio.allow_asyncio). */
static int l_nursery_spawn_both(lua_State *L) {
  spawn_into(L, checknursery(L, 1), 2, TA_BOTH);
  return 0;
}

/* nursery_reparent(tmp, target): task_status:started() moves the calling
** task (with the cancel scopes it opened itself) from the temporary
** nursery of nursery:start into the target nursery. */
static int l_nursery_reparent(lua_State *L) {
  ta_nursery *from = checknursery(L, 1), *to = checknursery(L, 2);
  ta_task *t = ta_async_check(L, "task_status:started", TA_TRIO);
  ta_status *old = &from->scope->st, *s;
  if (t->owner != from) return luaL_error(L, "task_status:started: called from the wrong task");
  if (to->closed) return luaL_error(L, "task_status:started: the target nursery is closed");
  if (t->status == old) {
    ta_status_unlink_task(t);
    ta_status_link_task(&to->scope->st, t);
    ta_status_recompute(L, t->E, &to->scope->st);
  } else {
    for (s = t->status; s->parent != old; s = s->parent) {}
    ta_status_unlink(s);
    ta_status_link_child(&to->scope->st, s);
    ta_status_recompute(L, t->E, s);
  }
  unlink_child(from, t);
  link_child(to, t); /* (its parent_nursery from now on) */
  return 0;
}

static int nursery_index(lua_State *L) {
  ta_nursery *n;
  const char *k;
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1; /* a method */
  n = tonursery(L, NULL, 1); /* (upvalue 1 is no engine) */
  k = luaL_checkstring(L, 2);
  if (strcmp(k, "cancel_scope") == 0) {
    push_state(L, 1);
    lua_getiuservalue(L, -1, UV_SCOPE);
  } else if (strcmp(k, "child_tasks") == 0) {
    int i = 0;
    lua_newtable(L);
    for (ta_task *t = n->first_child; t; t = t->sib_next) {
      ta_push_task(L, t);
      lua_rawseti(L, -2, ++i);
    }
  } else if (strcmp(k, "parent_task") == 0) {
    push_state(L, 1);
    lua_getiuservalue(L, -1, UV_PARENT_TASK);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

/* A nursery has no field to set (its own start_soon excepted, which
** rawset replaces). */
static int nursery_newindex(lua_State *L) {
  return luaL_error(L, "nursery field '%s' is read-only (keep your own data in a table of yours)",
                    luaL_tolstring(L, 2, NULL));
}

static int nursery_tostring(lua_State *L) {
  ta_nursery *n = checknursery(L, 1);
  lua_pushfstring(L, "Nursery (%d children%s, %p)", n->nchildren, n->closed ? ", closed" : "",
                  (void *)n);
  return 1;
}

static const luaL_Reg nursery_funcs[] = {
  {"nursery_add_error", l_nursery_add_error},
  {"nursery_set_target", l_nursery_set_target},
  {"nursery_wait", l_nursery_wait},
  {"nursery_close", l_nursery_close},
  {"nursery_reparent", l_nursery_reparent},
  {"nursery_spawn_both", l_nursery_spawn_both},
  {NULL, NULL}
};

static const luaL_Reg nursery_meta[] = {
  {"__newindex", nursery_newindex},
  {"__tostring", nursery_tostring},
  {NULL, NULL}
};

/* start_soon is C for speed; Lua adds more methods (start) */
static const luaL_Reg nursery_methods[] = {
  {"start_soon", l_start_soon},
  {NULL, NULL}
};

/* __index finds the methods first, through its upvalue, then the fields;
** nursery_open has the engine and the methods as upvalues.  Expects the
** core table at -2 and the engine at -1. */
int ta_open_nursery(lua_State *L) {
  ta_engine *E = (ta_engine *)lua_touserdata(L, -1);
  ta_newclass(L, NURSERY_MT, nursery_meta, nursery_methods, "__methods");
  ta_cache_metatable(L, E, TA_MT_NURSERY);
  lua_getfield(L, -1, "__methods"); /* [core, engine, mt, methods] */
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, nursery_index, 1);
  lua_setfield(L, -3, "__index");
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, l_nursery_open, 2);
  lua_setfield(L, -5, "nursery_open");
  lua_pop(L, 2);
  ta_register(L, nursery_funcs);
  return 0;
}
