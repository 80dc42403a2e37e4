/*
** iowait.c — the asyncio face of the io/ waiters: a loop callback waits
** on a socket's (or a name lookup's) slot.
**
** aio_arm(obj, side, loop, fn, arg) fills the slot with a record of the
** loop; when the resource wakes it (inside a libuv callback: no Lua), the
** record moves to the loop's posted list and the loop is woken; the loop's
** next batch takes that list over, behind one entry of its ready queue
** (ta_loop_take_posted), and calls fn(arg) of each record in turn when it
** reaches that entry, so the callback runs from the loop like any other
** (never re-entrantly), in the order of the wakes, and the records cost
** the ready queue one slot per batch rather than two per wake.  fn is
** typically a Future's setter (the sock_* coroutines wait on a Future) or
** a transport's read path on its core (a read wait: then the loop runs it
** without a Lua call, ta_loop_run_read_wakes, unless in debug mode).  One wake per arm, as for the Trio
** face.  A persistent record disarmed before its callback ran is dropped
** from the list (as asyncio's remove_reader cancels the reader's handle).
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
  lua_CFunction cfn;               /* fn's C function, if it is one */
  const void *arg;                 /* arg's address (lua_topointer) */
  int posted;                      /* in a list: POSTED or BATCH, else 0 */
  int persistent;                  /* stays in its slot after a wake */
  int read_wake;                   /* a transport's read wait (ta_transport_is_read_wait) */
  int dropped;                     /* freed while its callback ran */
} aiorec;

/* The list a woken record is in: the loop's posted one (to dispatch) or
** the one the running batch took over (to call). */
enum { POSTED = 1, BATCH = 2 };

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
  else if (r->posted) return; /* its callback is due already */
  r->posted = POSTED;
  r->next_posted = NULL;
  if (lp->posted_tail) lp->posted_tail->next_posted = r;
  else lp->posted = r;
  lp->posted_tail = r;
  ta_loop_wake(lp);
}

static void aio_detach(ta_waiter *w) {
  clear_slot((aiorec *)w->data);
}

/* Takes r out of the list (head, tail) it is in. */
static void unlink_posted(aiorec **head, aiorec **tail, aiorec *r) {
  aiorec **p = head, *prev = NULL;
  while (*p != NULL && *p != r) {
    prev = *p;
    p = &(*p)->next_posted;
  }
  if (*p == r) {
    *p = r->next_posted;
    if (*tail == r) *tail = prev;
  }
}

static void release_rec(lua_State *L, aiorec *r) {
  if (L != NULL) {
    luaL_unref(L, LUA_REGISTRYINDEX, r->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, r->arg_ref);
  }
  free(r);
}

/* The record leaves its slot, its list and the loop; freed, but for the
** one whose callback runs (the loop frees it after: ta_loop_posted_done). */
static void free_rec(lua_State *L, aiorec *r) {
  ta_loop *lp = r->lp;
  clear_slot(r);
  if (r->posted == POSTED) unlink_posted(&lp->posted, &lp->posted_tail, r);
  else if (r->posted == BATCH) unlink_posted(&lp->batch_posted, &lp->batch_posted_tail, r);
  r->posted = 0;
  TA_LIST_REMOVE(lp->io_recs, r, prev, next);
  if (r == lp->posted_current) r->dropped = 1;
  else release_rec(L, r);
}

/* Called by the loop's batch: the posted records become the batch's
** (after those it has not called yet, if any).  Returns whether the ready
** queue needs the entry that stands for them (it had none). */
int ta_loop_take_posted(ta_loop *lp) {
  int had_none = lp->batch_posted == NULL;
  for (aiorec *r = lp->posted; r != NULL; r = r->next_posted) r->posted = BATCH;
  if (had_none) lp->batch_posted = lp->posted;
  else lp->batch_posted_tail->next_posted = lp->posted;
  lp->batch_posted_tail = lp->posted_tail;
  lp->posted = lp->posted_tail = NULL;
  return had_none;
}

/* The batch's next record r (there is one) becomes the current one. */
static aiorec *take_posted(ta_loop *lp) {
  aiorec *r = lp->batch_posted;
  lp->batch_posted = r->next_posted;
  if (lp->batch_posted == NULL) lp->batch_posted_tail = NULL;
  r->posted = 0;
  lp->posted_current = r;
  return r;
}

/* The callback of the current record r returned or raised: a one-shot
** record (or one freed meanwhile) goes. */
static void end_posted(lua_State *L, ta_loop *lp, aiorec *r) {
  lp->posted_current = NULL;
  if (r->dropped) release_rec(L, r);
  else if (!r->persistent || r->slot == NULL) free_rec(L, r);
}

/* The batch's next records while they are transports' read waits (none
** in debug mode, which times each call of fn): each becomes the current
** record while the loop calls its read path directly
** (ta_transport_read_wake: no Lua call; an error ends the loop's call
** with the record still current, as for any other callback), then the
** stack goes back to top.  Stops at another kind of record, when none is
** left or when a read path closed the loop. */
void ta_loop_run_read_wakes(lua_State *L, ta_loop *lp, int top) {
  while (lp->batch_posted != NULL && lp->batch_posted->read_wake && !lp->debug && !lp->closed) {
    aiorec *r = take_posted(lp);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->arg_ref);
    lp->calling = 1;
    ta_transport_read_wake(L, top + 1);
    lp->calling = 0;
    end_posted(L, lp, r);
    lua_settop(L, top);
  }
}

/* The batch's next record becomes the current one: pushes its fn and arg
** and returns 1; 0 when the batch has none left. */
int ta_loop_next_posted(lua_State *L, ta_loop *lp) {
  aiorec *r;
  if (lp->batch_posted == NULL) return 0;
  r = take_posted(lp);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->fn_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->arg_ref);
  return 1;
}

/* The current record's callback returned or raised (ta_loop_run_read_wakes
** ends its own); with push, its fn and arg are pushed first (a failed
** callback's handle is made of them).  0 if none was current. */
int ta_loop_posted_done(lua_State *L, ta_loop *lp, int push) {
  aiorec *r = lp->posted_current;
  if (r == NULL) return 0;
  if (push) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->fn_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->arg_ref);
  }
  end_posted(L, lp, r);
  return 1;
}

/* The address of the argument of the io wait callback the loop is
** calling, when that callback is the C function fn; else NULL.  (The
** record anchors its argument until the callback has returned.)  So fn
** knows, from anywhere inside its call, which argument it runs on. */
const void *ta_loop_calling_arg(const ta_loop *lp, lua_CFunction fn) {
  const aiorec *r = lp->posted_current;
  return r != NULL && r->cfn == fn ? r->arg : NULL;
}

int ta_aio_persistent_armed(const ta_waiter *w) {
  return w->wake == aio_wake && ((const aiorec *)w->data)->persistent;
}

/* The loop closes: its records go. */
void ta_loop_release_io(lua_State *L, ta_loop *lp) {
  lp->posted = lp->posted_tail = NULL;
  lp->batch_posted = lp->batch_posted_tail = NULL;
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
  int persistent = lua_toboolean(L, 6), read_wake;
  luaL_checktype(L, 4, LUA_TFUNCTION);
  lua_settop(L, 5);
  if (w == NULL || lp->closed) return lua_pushboolean(L, 0), 1;
  if (w->wake != NULL)
    return ta_error(L, "BusyResourceError", "another task is already waiting to %s this socket", side ? "write to" : "read from");
  read_wake = persistent && ta_transport_is_read_wait(L, 4);
  r = (aiorec *)calloc(1, sizeof *r);
  if (r == NULL) return luaL_error(L, "not enough memory");
  r->lp = lp;
  r->persistent = persistent;
  r->cfn = lua_tocfunction(L, 4);
  r->arg = lua_topointer(L, 5);
  r->read_wake = read_wake;
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
