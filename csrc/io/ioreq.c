/*
** ioreq.c — operations that complete once (see io.h): the life of a
** request between its start, its completion in a libuv callback and its
** delivery to the waiter, and the IORequest object through which Lua
** holds one.  A request is freed exactly once: at delivery, or, once
** abandoned, at completion.
*/
#include <stdlib.h>

#include "io/io.h"

#define IOREQ_MT "trio_asyncio.IORequest"

typedef struct iobox {
  ta_ioreq *r;                /* NULL once delivered (or abandoned) */
} iobox;

static void detach_box(ta_ioreq *r) {
  if (r->box != NULL) ((iobox *)r->box)->r = NULL;
  r->box = NULL;
}

/* Shutdown (or trio_asyncio_use_loop) closes the engine's list: whoever
** waited is gone, so the request frees itself when it completes. */
static void close_req(ta_owned *o) {
  ta_ioreq *r = (ta_ioreq *)o;
  r->linked = 0; /* the engine took it off its list */
  detach_box(r);
  r->abandoned = 1;
  r->wake = NULL;
  if (r->unwait != NULL) r->unwait(r);
  r->unwait = NULL;
  if (r->type->cancel != NULL) r->type->cancel(r);
}

void ta_ioreq_start(ta_engine *E, ta_ioreq *r, const ta_ioreq_type *type) {
  r->E = E;
  r->type = type;
  r->state = TA_IOREQ_RUNNING;
  r->abandoned = 0;
  r->fref = LUA_NOREF;
  r->owned.close = close_req;
  r->owned.persistent = 1;
  r->linked = 1;
  ta_handle_opened(E, &r->owned);
}

static void unlink_req(ta_ioreq *r) {
  if (r->linked) ta_handle_closing(r->E, &r->owned);
  r->linked = 0;
}

void ta_ioreq_complete(ta_ioreq *r) {
  r->state = TA_IOREQ_DONE;
  unlink_req(r);
  if (r->abandoned) r->type->release(r);
  else if (r->wake != NULL) r->wake(r);
}

int ta_ioreq_results(lua_State *L, ta_ioreq *r) {
  int n;
  detach_box(r);
  n = r->type->deliver(L, r);
  r->type->release(r);
  return n;
}

int ta_ioreq_deliver(lua_State *L, ta_ioreq *r) {
  int n = ta_ioreq_results(L, r);
  if (n < 0) return lua_error(L);
  return n;
}

void ta_ioreq_abandon(ta_ioreq *r) {
  detach_box(r);
  if (r->unwait != NULL) r->unwait(r);
  r->unwait = NULL;
  if (r->state != TA_IOREQ_RUNNING) { /* never started, or completed and not delivered */
    r->type->release(r);
    return;
  }
  r->abandoned = 1;
  r->wake = NULL;
  if (r->type->cancel != NULL) r->type->cancel(r);
}

/* ---- the IORequest object ---- */

void ta_ioreq_push(lua_State *L, ta_ioreq *r) {
  iobox *b = (iobox *)lua_newuserdatauv(L, sizeof *b, 1);
  b->r = NULL;
  luaL_setmetatable(L, IOREQ_MT);
  b->r = r;
  r->box = b;
}

ta_ioreq *ta_ioreq_check(lua_State *L, int idx) {
  return ((iobox *)luaL_checkudata(L, idx, IOREQ_MT))->r;
}

ta_ioreq *ta_ioreq_take(lua_State *L, int idx) {
  iobox *b = (iobox *)luaL_checkudata(L, idx, IOREQ_MT);
  ta_ioreq *r = b->r;
  if (r != NULL) detach_box(r);
  return r;
}

static int box_gc(lua_State *L) {
  iobox *b = (iobox *)luaL_checkudata(L, 1, IOREQ_MT);
  if (b->r != NULL) ta_ioreq_abandon(b->r);
  return 0;
}

static int box_tostring(lua_State *L) {
  iobox *b = (iobox *)luaL_checkudata(L, 1, IOREQ_MT);
  if (b->r == NULL) lua_pushfstring(L, "IORequest (delivered, %p)", (void *)b);
  else lua_pushfstring(L, "IORequest %s (%s, %p)", b->r->type->name,
                       b->r->state == TA_IOREQ_DONE ? "done" : "running", (void *)b);
  return 1;
}

static const luaL_Reg box_meta[] = {
  {"__gc", box_gc},
  {"__tostring", box_tostring},
  {NULL, NULL}
};

int ta_open_ioreq(lua_State *L) {
  ta_newclass(L, IOREQ_MT, box_meta, NULL, NULL);
  lua_pop(L, 1);
  return 0;
}
