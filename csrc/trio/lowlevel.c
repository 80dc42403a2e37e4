/*
** lowlevel.c — trio.lowlevel's task functions: current_task, checkpoints,
** wait_task_rescheduled / reschedule (the Lua face of the engine's park
** and reschedule), system tasks.
*/
#include <math.h>
#include <string.h>

#include "trio/trio.h"

#define engine_of(L) ta_upengine(L)

static int t_current_task(lua_State *L) {
  ta_task *t = ta_task_check(L, "trio.lowlevel.current_task", TA_TRIO);
  ta_push_task(L, t);
  return 1;
}

static int t_current_root_task(lua_State *L) {
  ta_engine *E = engine_of(L);
  if (!E->running || E->main == NULL || !ta_task_alive(E->main)) return 0;
  ta_push_task(L, E->main);
  return 1;
}

static int t_checkpoint(lua_State *L) {
  return ta_checkpoint(L, ta_async_check(L, "trio.lowlevel.checkpoint", TA_TRIO));
}

static int t_checkpoint_if_cancelled(lua_State *L) {
  ta_task *t = ta_async_check(L, "trio.lowlevel.checkpoint_if_cancelled", TA_TRIO);
  if (ta_cancel_pending(t)) return ta_checkpoint(L, t);
  return 0;
}

static int t_cancel_shielded_checkpoint(lua_State *L) {
  ta_task *t = ta_async_check(L, "trio.lowlevel.cancel_shielded_checkpoint", TA_TRIO);
  return ta_schedule_point(L, t);
}

/* wait_task_rescheduled(abort_fn): abort_fn(raise_cancel) answers
** "SUCCEEDED" (we wake the task with Cancelled) or "FAILED" (its owner
** will reschedule it later). */
/* raise_cancel() raises what the task whose abort function runs would get
** (upvalue 1: that task), whichever task's cancel() ran the abort. */
static int raise_cancel(lua_State *L) {
  ta_push_cancelled(L, ta_checktask(L, lua_upvalueindex(1)));
  return lua_error(L);
}

/* Any other answer than SUCCEEDED or FAILED (or an error) is a bug of the
** abort function: as in Trio, the run ends with TrioInternalError; the
** task is woken (with Cancelled) so that the run can end. */
static int lua_abort(lua_State *L, ta_task *t) {
  const char *answer;
  int ok;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->abort_ref);
  ta_push_task(L, t);
  lua_pushcclosure(L, raise_cancel, 1);
  ok = lua_pcall(L, 1, 1, 0) == LUA_OK;
  answer = ok && lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  if (answer != NULL && strcmp(answer, "FAILED") == 0) {
    lua_pop(L, 1);
    return TA_ABORT_FAILED;
  }
  if (answer == NULL || strcmp(answer, "SUCCEEDED") != 0) {
    const char *what = ok ? lua_pushfstring(L, "answered %s", ta_tostring(L, -1))
                          : lua_pushfstring(L, "raised %s", ta_tostring(L, -1));
    lua_pushfstring(L, "wait_task_rescheduled: the abort function %s; it must answer "
                       "\"SUCCEEDED\" or \"FAILED\"", what);
    ta_push_error(L, t->E, "TrioInternalError", lua_tostring(L, -1));
    ta_internal_error(L, t->E);
    lua_pop(L, 3);
  }
  lua_pop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, t->abort_ref);
  t->abort_ref = LUA_NOREF;
  return TA_ABORT_SUCCEEDED;
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

/* current_statistics() -> {tasks_living=, tasks_runnable=,
** seconds_to_next_deadline=, run_sync_soon_queue_size=, io_statistics=} */
static int t_current_statistics(lua_State *L) {
  ta_engine *E = engine_of(L);
  ta_timer *top;
  int nread, nwrite;
  if (!E->running) return luaL_error(L, "current_statistics: must be called inside trio.run");
  top = ta_heap_top(&E->timers);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)(E->ntasks + E->nunanchored));
  lua_setfield(L, -2, "tasks_living");
  lua_pushinteger(L, (lua_Integer)E->nrunq);
  lua_setfield(L, -2, "tasks_runnable");
  lua_pushnumber(L, top != NULL ? top->when - ta_now(E) : HUGE_VAL);
  lua_setfield(L, -2, "seconds_to_next_deadline");
  lua_pushinteger(L, E->nsoon);
  lua_setfield(L, -2, "run_sync_soon_queue_size");
  ta_fd_counts(E, &nread, &nwrite);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, nread);
  lua_setfield(L, -2, "tasks_waiting_read");
  lua_pushinteger(L, nwrite);
  lua_setfield(L, -2, "tasks_waiting_write");
  lua_pushliteral(L, "libuv");
  lua_setfield(L, -2, "backend");
  lua_setfield(L, -2, "io_statistics");
  return 1;
}

static const luaL_Reg lowlevel_funcs[] = {
  {"current_statistics", t_current_statistics},
  {"system_tasks", t_system_tasks},
  {"current_task", t_current_task},
  {"current_root_task", t_current_root_task},
  {"checkpoint", t_checkpoint},
  {"checkpoint_if_cancelled", t_checkpoint_if_cancelled},
  {"cancel_shielded_checkpoint", t_cancel_shielded_checkpoint},
  {"wait_task_rescheduled", t_wait_task_rescheduled},
  {"reschedule", t_reschedule},
  {NULL, NULL}
};

int ta_open_lowlevel(lua_State *L) {
  ta_register(L, lowlevel_funcs);
  return 0;
}
