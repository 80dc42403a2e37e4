/*
** parking_lot.c — trio.lowlevel.ParkingLot, the Lua face of the engine's
** parking lot (engine/lot.c), and Trio's parking-lot breakers: a lot
** registered with add_parking_lot_breaker(task, lot) is broken when that
** task exits (Lock registers its owner), so its waiters get
** BrokenResourceError instead of waiting forever.
*/
#include <math.h>
#include <string.h>

#include "trio/trio.h"

#define LOT_MT "trio_asyncio.ParkingLot"

/* Moves up to n waiters to another lot, without waking them. */
static void repark(ta_lot *from, ta_lot *to, lua_Integer n) {
  while (n-- > 0 && from->first) {
    ta_task *t = ta_lot_pop(from);
    ta_lot_append(to, t);
    t->wait = to;
  }
}

/* ---- ParkingLot for Lua ---- */

/* User value 1: the list of tasks that broke it (nil while whole). */
typedef struct parking_lot {
  ta_lot lot;               /* first: a ParkingLot is a ta_lot to C */
  int broken;
} parking_lot;

enum { UV_BROKEN_BY = 1, LOT_NUV = 1 };

static ta_lot *checklot(lua_State *L, int idx) {
  return (ta_lot *)ta_checkudata(L, ta_upengine(L), idx, TA_MT_LOT);
}

static int l_lot_new(lua_State *L) {
  parking_lot *pl = (parking_lot *)lua_newuserdatauv(L, sizeof *pl, LOT_NUV);
  memset(pl, 0, sizeof *pl);
  luaL_setmetatable(L, LOT_MT);
  return 1;
}

/* "Parking lot broken by <task>, <task>" (pushed), from the list at idx. */
static const char *push_broken_by(lua_State *L, const char *prefix, int idx) {
  luaL_Buffer b;
  idx = lua_absindex(L, idx);
  luaL_buffinit(L, &b);
  luaL_addstring(&b, prefix);
  for (lua_Integer i = 1; lua_rawgeti(L, idx, i) != LUA_TNIL; i++) {
    if (i > 1) luaL_addstring(&b, ", ");
    luaL_tolstring(L, -1, NULL);
    lua_replace(L, -2);
    luaL_addvalue(&b);
  }
  lua_pop(L, 1);
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

static int l_lot_park(lua_State *L) {
  parking_lot *pl = (parking_lot *)checklot(L, 1);
  ta_task *t = ta_async_check(L, "ParkingLot:park", TA_TRIO);
  if (pl->broken) {
    lua_getiuservalue(L, 1, UV_BROKEN_BY);
    return ta_error(L, "BrokenResourceError", "%s",
                    push_broken_by(L, "Attempted to park in parking lot broken by ", -1));
  }
  return ta_lot_park(L, t, &pl->lot);
}

/* Breaks the lot at idx on behalf of the task object at tidx: it records
** the task, and every waiter wakes with BrokenResourceError. */
static void break_lot(lua_State *L, int idx, int tidx) {
  parking_lot *pl = (parking_lot *)lua_touserdata(L, idx);
  ta_task *t;
  idx = lua_absindex(L, idx);
  tidx = lua_absindex(L, tidx);
  if (lua_getiuservalue(L, idx, UV_BROKEN_BY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, idx, UV_BROKEN_BY);
  }
  lua_pushvalue(L, tidx);
  lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
  pl->broken = 1;
  while ((t = ta_lot_pop(&pl->lot)) != NULL) {
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, tidx);
    lua_rawseti(L, -2, 1);
    ta_push_error(L, t->E, "BrokenResourceError", push_broken_by(L, "Parking lot broken by ", -1));
    lua_xmove(L, t->co, 1);
    lua_pop(L, 2);
    ta_reschedule(t, 1, 1);
  }
  lua_pop(L, 1);
}

/* lot:break_lot([task]): the current task by default. */
static int l_lot_break(lua_State *L) {
  checklot(L, 1);
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    ta_push_task(L, ta_task_check(L, "ParkingLot:break_lot", TA_TRIO));
  } else {
    ta_checktask(L, 2);
    lua_settop(L, 2);
  }
  break_lot(L, 1, 2);
  return 0;
}

/* ---- breakers: task object -> list of lots (with repeats), weak-keyed ---- */

static const char breakers_key = 'B';

/* add_parking_lot_breaker(task, lot) */
static int l_add_breaker(lua_State *L) {
  ta_task *t = ta_checktask(L, 1);
  checklot(L, 2);
  if (t->state == TA_DONE)
    return ta_error(L, "BrokenResourceError", "Attempted to add already exited task as lot breaker.");
  ta_push_weak_keyed(L, &breakers_key);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
  t->lot_breaker = 1;
  return 0;
}

/* remove_parking_lot_breaker(task, lot): one registration less. */
static int l_remove_breaker(lua_State *L) {
  lua_Integer n;
  ta_checktask(L, 1);
  checklot(L, 2);
  ta_push_weak_keyed(L, &breakers_key);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) == LUA_TTABLE) {
    n = (lua_Integer)luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      if (lua_rawequal(L, -1, 2)) {
        lua_pop(L, 1);
        for (; i < n; i++) { /* close the gap */
          lua_rawgeti(L, -1, i + 1);
          lua_rawseti(L, -2, i);
        }
        lua_pushnil(L);
        lua_rawseti(L, -2, n);
        return 0;
      }
      lua_pop(L, 1);
    }
  }
  return ta_error(L, "RuntimeError",
                  "Attempted to remove task as breaker for a lot it is not registered for");
}

/* The exiting task t (object on top of the stack) breaks its lots. */
void ta_break_lots_of(lua_State *L, ta_task *t) {
  int tidx = lua_gettop(L), list;
  t->lot_breaker = 0;
  ta_push_weak_keyed(L, &breakers_key);
  lua_pushvalue(L, tidx);
  if (lua_rawget(L, -2) == LUA_TTABLE) {
    list = lua_gettop(L);
    for (lua_Integer i = 1; lua_rawgeti(L, list, i) != LUA_TNIL; i++) {
      break_lot(L, -1, tidx);
      lua_pop(L, 1);
    }
    lua_pushvalue(L, tidx);
    lua_pushnil(L);
    lua_rawset(L, list - 1);
  }
  lua_settop(L, tidx);
}

static lua_Integer count_arg(lua_State *L, int idx, ta_lot *lot) {
  lua_Integer n;
  if (lua_isnoneornil(L, idx)) return 1;
  if (lua_type(L, idx) == LUA_TNUMBER && lua_tonumber(L, idx) == HUGE_VAL) return lot->n;
  n = luaL_checkinteger(L, idx);
  luaL_argcheck(L, n >= 0, idx, "count must be >= 0");
  return n;
}

/* unpark([count=1]) -> list of the tasks woken */
static int unpark_n(lua_State *L, ta_lot *lot, lua_Integer n) {
  int i = 0;
  lua_newtable(L);
  while (n-- > 0 && lot->first) {
    ta_task *t = ta_lot_pop(lot);
    ta_reschedule(t, 0, 0);
    ta_push_task(L, t);
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

static int l_lot_unpark(lua_State *L) {
  ta_lot *lot = checklot(L, 1);
  return unpark_n(L, lot, count_arg(L, 2, lot));
}

static int l_lot_unpark_all(lua_State *L) {
  ta_lot *lot = checklot(L, 1);
  return unpark_n(L, lot, lot->n);
}

/* repark(new_lot [, count=1]): move waiters without waking them. */
static int l_lot_repark(lua_State *L) {
  ta_lot *lot = checklot(L, 1), *to = checklot(L, 2);
  repark(lot, to, count_arg(L, 3, lot));
  return 0;
}

static int l_lot_repark_all(lua_State *L) {
  ta_lot *lot = checklot(L, 1), *to = checklot(L, 2);
  repark(lot, to, lot->n);
  return 0;
}

static int l_lot_len(lua_State *L) {
  lua_pushinteger(L, checklot(L, 1)->n);
  return 1;
}

/* lot.broken_by and the methods */
static int l_lot_index(lua_State *L) {
  checklot(L, 1);
  if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "broken_by") == 0) {
    if (lua_getiuservalue(L, 1, UV_BROKEN_BY) != LUA_TTABLE) {
      lua_pop(L, 1);
      lua_newtable(L);
    }
    return 1;
  }
  luaL_getmetafield(L, 1, "__methods");
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

/* A lot can be collected with waiters in it: repark moves tasks into a lot
** that nothing else holds.  They stay parked until cancelled, as in Trio. */
static int l_lot_gc(lua_State *L) {
  ta_lot_abandon((ta_lot *)lua_touserdata(L, 1));
  return 0;
}

static int l_lot_statistics(lua_State *L) {
  ta_lot *lot = checklot(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushinteger(L, lot->n);
  lua_setfield(L, -2, "tasks_waiting");
  return 1;
}

static int l_lot_tostring(lua_State *L) {
  ta_lot *lot = checklot(L, 1);
  lua_pushfstring(L, "ParkingLot (%d waiting, %p)", lot->n, (void *)lot);
  return 1;
}

static const luaL_Reg lot_methods[] = {
  {"park", l_lot_park},
  {"unpark", l_lot_unpark},
  {"unpark_all", l_lot_unpark_all},
  {"repark", l_lot_repark},
  {"repark_all", l_lot_repark_all},
  {"statistics", l_lot_statistics},
  {"break_lot", l_lot_break},
  {NULL, NULL}
};

int ta_open_parking_lot(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"ParkingLot", l_lot_new},
    {"add_parking_lot_breaker", l_add_breaker},
    {"remove_parking_lot_breaker", l_remove_breaker},
    {NULL, NULL}
  };
  static const luaL_Reg lot_meta[] = {
    {"__index", l_lot_index},
    {"__len", l_lot_len},
    {"__tostring", l_lot_tostring},
    {"__gc", l_lot_gc},
    {NULL, NULL}
  };
  ta_newclass(L, LOT_MT, lot_meta, lot_methods, "__methods");
  ta_cache_metatable(L, (ta_engine *)lua_touserdata(L, -2), TA_MT_LOT);
  lua_pop(L, 1);
  ta_register(L, funcs);
  return 0;
}
