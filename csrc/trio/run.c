/*
** run.c — trio.run's C side: runs (plain and guest), system tasks and
** TrioToken.run_sync_soon.  The engine (engine/run.c) does the work; this
** is where a run gets its Trio main task.
*/
#include "trio/trio.h"

static int check_flavor_opt(lua_State *L, int idx) {
  static const char *const flavors[] = {"trio", "asyncio", NULL};
  return luaL_checkoption(L, idx, "trio", flavors) == 0 ? TA_TRIO : TA_ASYNCIO;
}

/* Calls body (given this file's upvalue, the engine) with the values from
** index 1 up: an error of the scheduler itself (not enough memory, say)
** abandons the run the body began, so that the state stays usable, and is
** raised. */
static int call_or_abandon(lua_State *L, lua_CFunction body) {
  ta_engine *E = ta_upengine(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, body, 1);
  lua_insert(L, 1);
  if (lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0) != LUA_OK) {
    ta_run_abandon(L, E, 0);
    return lua_error(L);
  }
  return lua_gettop(L);
}

static int run_body(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_run_start(L, E, 1, 2, 3, check_flavor_opt(L, 4), &ta_trio_task_kind);
  while (ta_run_alive(E)) ta_run_step(L, E, -1);
  return ta_run_finish(L, E);
}

/* run(fn, args, clock, flavor) -> "ok", results... | "error", err |
** "internal", err.  The Lua face turns the last two into raises. */
static int l_run(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  check_flavor_opt(L, 4);
  if (ta_run_active(L, E))
    return luaL_error(L, "trio.run: a run is already active in this Lua state "
                         "(runs cannot nest; open a nursery instead)");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 4);
  return call_or_abandon(L, run_body);
}

static int guest_start_body(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_run_start(L, E, 1, 2, 3, check_flavor_opt(L, 4), &ta_trio_task_kind);
  E->ki_host = lua_toboolean(L, 6); /* after run_start, which resets it */
  E->guest = 1;
  if (E->host != NULL && E->host->guest_started != NULL) {
    int rc = E->host->guest_started(E);
    if (rc != 0)
      return luaL_error(L, "start_guest_run: cannot hook the run into the host's loop (%s: %s)",
                        uv_err_name(rc), uv_strerror(rc));
  }
  return 0;
}

/* start_guest_run(fn, args, clock, flavor, done [, keep_interrupts]):
** start a run that makes progress while the host drives the engine
** (trio_asyncio_step or its own libuv loop); done(status, ...) is called
** when it ends.  keep_interrupts: a Ctrl-C is left for the host to take
** (take_interrupt) instead of going to the main task. */
static int l_start_guest_run(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  check_flavor_opt(L, 4);
  if (ta_run_active(L, E))
    return luaL_error(L, "start_guest_run: a run is already active in this Lua state "
                         "(only one run at a time)");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TFUNCTION);
  lua_settop(L, 6);
  lua_pushvalue(L, 5);
  E->guest_done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return call_or_abandon(L, guest_start_body);
}

/* spawn_system_task(fn, ...): a task of the run itself, cancelled when the
** main task has exited; its error ends the run as TrioInternalError. */
static int l_spawn_system_task(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_task *t;
  if (!E->running) return luaL_error(L, "spawn_system_task: no trio run is active");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  /* as Trio: it starts in the context the run started in, not its spawner's */
  t = ta_spawn(L, E, 1, lua_gettop(L) - 1, TA_TRIO, &ta_trio_task_kind, &E->root, NULL);
  t->system = 1;
  ta_task_in_system_tree(t);
  ta_push_task(L, t);
  return 1;
}

/* run_sync_soon(fn): call fn() from the scheduler soon (TrioToken). */
static int l_run_sync_soon(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (!E->running || E->soon_closed)
    return ta_error(L, "RunFinishedError", "run_sync_soon: the run has finished");
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->soon_ref);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, ++E->nsoon);
  return 0;
}


static const luaL_Reg run_funcs[] = {
  {"run", l_run},
  {"start_guest_run", l_start_guest_run},
  {"spawn_system_task", l_spawn_system_task},
  {"run_sync_soon", l_run_sync_soon},
  {NULL, NULL}
};

int ta_open_trio_run(lua_State *L) {
  ta_register(L, run_funcs);
  return 0;
}
