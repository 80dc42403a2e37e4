/*
** parking_lot.c — trio.lowlevel.ParkingLot, the Lua face of the engine's
** parking lot (engine/lot.c).
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

static ta_lot *checklot(lua_State *L, int idx) {
  return (ta_lot *)luaL_checkudata(L, idx, LOT_MT);
}

static int l_lot_new(lua_State *L) {
  ta_lot *lot = (ta_lot *)lua_newuserdatauv(L, sizeof *lot, 0);
  memset(lot, 0, sizeof *lot);
  luaL_setmetatable(L, LOT_MT);
  return 1;
}

static int l_lot_park(lua_State *L) {
  ta_lot *lot = checklot(L, 1);
  return ta_lot_park(L, ta_async_check(L, "ParkingLot:park", TA_TRIO), lot);
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
  {NULL, NULL}
};

int ta_open_parking_lot(lua_State *L) {
  static const luaL_Reg funcs[] = {{"ParkingLot", l_lot_new}, {NULL, NULL}};
  static const luaL_Reg lot_meta[] = {
    {"__len", l_lot_len},
    {"__tostring", l_lot_tostring},
    {NULL, NULL}
  };
  ta_newclass(L, LOT_MT, lot_meta, lot_methods, "__index");
  lua_pop(L, 1);
  ta_register(L, funcs);
  return 0;
}
