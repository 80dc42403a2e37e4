/*
** iowait.c — the asyncio face of the io/ waiters: a loop callback waits
** on a socket's (or a name lookup's) slot.
**
** aio_arm(obj, side, loop, fn, arg) fills the slot with a record of the
** loop; when the resource wakes it (inside a libuv callback: no Lua), the
** record moves to the loop's posted list and the loop is woken; the loop's
** next batch appends fn(arg) to its ready queue, so the callback runs from
** the loop like any other (never re-entrantly).  fn is typically a Future's
** setter (the sock_* coroutines wait on a Future) or a transport's "look
** again" method.  One wake per arm, as for the Trio face.
**
** Records belong to their loop: closing the loop drops them and empties
** their slots.
*/
#include <stdlib.h>

#include "asyncio/asyncio.h"
#include "io/sock.h"

typedef struct ta_aiorec {
  struct ta_aiorec *prev, *next;   /* the loop's records */
  struct ta_aiorec *next_posted;
  ta_loop *lp;
  ta_waiter *slot;                 /* NULL once woken or detached */
  int fn_ref, arg_ref;
  int posted;
  int persistent;                  /* stays in its slot after a wake */
} aiorec;

static void clear_slot(aiorec *r) {
  if (r->slot != NULL && r->slot->data == r) {
    r->slot->wake = NULL;
    r->slot->detach = NULL;
    r->slot->data = NULL;
    r->lp->E->io_waiters--;
  }
  r->slot = NULL;
}

static void aio_wake(ta_waiter *w) {
  aiorec *r = (aiorec *)w->data;
  ta_loop *lp = r->lp;
  if (!r->persistent) clear_slot(r);
  else if (r->posted) return; /* already queued for the next batch */
  r->posted = 1;
  r->next_posted = NULL;
  if (lp->posted_tail) lp->posted_tail->next_posted = r;
  else lp->posted = r;
  lp->posted_tail = r;
  ta_loop_wake(lp);
}

static void aio_detach(ta_waiter *w) {
  clear_slot((aiorec *)w->data);
}

static void free_rec(lua_State *L, aiorec *r) {
  ta_loop *lp = r->lp;
  clear_slot(r);
  if (r->posted) { /* a persistent record disarmed before its batch */
    aiorec **p = &lp->posted, *prev = NULL;
    while (*p != NULL && *p != r) {
      prev = *p;
      p = &(*p)->next_posted;
    }
    if (*p == r) {
      *p = r->next_posted;
      if (lp->posted_tail == r) lp->posted_tail = prev;
    }
  }
  TA_LIST_REMOVE(lp->io_recs, r, prev, next);
  if (L != NULL) {
    luaL_unref(L, LUA_REGISTRYINDEX, r->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, r->arg_ref);
  }
  free(r);
}

/* Called by the loop's batch: the posted callbacks join the ready queue
** of the loop at loopidx as (fn, arg) entries. */
void ta_loop_dispatch_posted(lua_State *L, ta_loop *lp, int loopidx) {
  while (lp->posted != NULL) {
    aiorec *r = lp->posted;
    lp->posted = r->next_posted;
    if (lp->posted == NULL) lp->posted_tail = NULL;
    ta_loop_ready_push_refs(L, lp, loopidx, r->fn_ref, r->arg_ref);
    r->posted = 0;
    if (!r->persistent || r->slot == NULL) free_rec(L, r);
  }
}

int ta_aio_persistent_armed(const ta_waiter *w) {
  return w->wake == aio_wake && ((const aiorec *)w->data)->persistent;
}

/* The loop closes: its records go. */
void ta_loop_release_io(lua_State *L, ta_loop *lp) {
  lp->posted = lp->posted_tail = NULL;
  while (lp->io_recs != NULL) free_rec(L, lp->io_recs);
}

static ta_loop *checkloop(lua_State *L, int idx) {
  return (ta_loop *)ta_checkudata(L, ta_upengine(L), idx, TA_MT_LOOP);
}

/* aio_arm(obj, side, loop, fn, arg [, persistent]) -> true, or false if obj
** is closed or its operation already finished (nothing armed: look again
** now).  A persistent wait stays in the slot (a transport's reading): each
** wake queues fn(arg) once, until aio_disarm. */
static int l_arm(lua_State *L) {
  int side = (int)luaL_checkinteger(L, 2);
  ta_waiter *w = ta_io_slot(L, 1, side, "aio_arm");
  ta_loop *lp = checkloop(L, 3);
  aiorec *r;
  int persistent = lua_toboolean(L, 6);
  luaL_checktype(L, 4, LUA_TFUNCTION);
  lua_settop(L, 5);
  if (w == NULL || lp->closed) return lua_pushboolean(L, 0), 1;
  if (w->wake != NULL)
    return ta_error(L, "BusyResourceError", "another task is already waiting to %s this socket", side ? "write to" : "read from");
  r = (aiorec *)calloc(1, sizeof *r);
  if (r == NULL) return luaL_error(L, "not enough memory");
  r->lp = lp;
  r->persistent = persistent;
  lua_pushvalue(L, 4);
  r->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 5);
  r->arg_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  TA_LIST_PUSH(lp->io_recs, r, prev, next);
  r->slot = w;
  w->wake = aio_wake;
  w->detach = aio_detach;
  w->data = r;
  lp->E->io_waiters++;
  lua_pushboolean(L, 1);
  return 1;
}

/* aio_disarm(obj, side) -> true if a loop's record was waiting there */
static int l_disarm(lua_State *L) {
  int side = (int)luaL_checkinteger(L, 2);
  ta_waiter *w;
  if (lua_isnoneornil(L, 1)) return 0;
  w = ta_io_slot(L, 1, side, "aio_disarm");
  if (w == NULL || w->wake != aio_wake) return lua_pushboolean(L, 0), 1;
  free_rec(L, (aiorec *)w->data);
  lua_pushboolean(L, 1);
  return 1;
}

/* set_result_once(fut): the Future's result is true, unless it is done */
static int l_set_result_once(lua_State *L) {
  if (lua_getfield(L, 1, "done") != LUA_TFUNCTION) return 0;
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  if (lua_toboolean(L, -1)) return 0;
  lua_getfield(L, 1, "set_result");
  lua_pushvalue(L, 1);
  lua_pushboolean(L, 1);
  lua_call(L, 2, 0);
  return 0;
}

int ta_open_iowait(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"aio_arm", l_arm},
    {"aio_disarm", l_disarm},
    {"aio_set_result_once", l_set_result_once},
    {NULL, NULL}
  };
  ta_register(L, funcs);
  return 0;
}
