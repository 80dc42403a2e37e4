/*
** channel.c — memory channels (trio.open_memory_channel).
**
** One shared state per channel: a ring buffer (a Lua table used as an
** array, made when a value is first buffered: a rendezvous channel never
** has one), a lot of waiting senders and one of waiting receivers.  The
** state lives in the block of the channel's first send endpoint, its
** holder, whose user value is the ring; every other endpoint (the first
** receive endpoint, the clones) has the holder as its user value, which
** keeps it alive.  So a send on the first endpoint touches one object, not
** an endpoint and a state (at 10,000 W2 pairs the state's lines were cold:
** ISSUE #16), and opening a channel makes two userdata, not three.  A value
** goes straight from a sender to a parked receiver's stack, and a parked
** sender keeps its value on its own stack until a receiver takes it, so a
** hand-off allocates nothing.  Once a value is handed to a task it is that
** task's: cancellation can no longer take it away (nothing is lost).
*/
#include <math.h>
#include <string.h>

#include "trio/trio.h"

#define SEND_MT "trio_asyncio.MemorySendChannel"
#define RECV_MT "trio_asyncio.MemoryReceiveChannel"

/* What send and receive read first, first. */
typedef struct chan {
  ta_engine *E;          /* send and receive find it here, not in an upvalue (a call less) */
  ta_lot senders, receivers;
  int open_send, open_recv;
  int rcount;
  int rcap, rhead;       /* ring in the holder's user value */
  int rpeak;             /* most values ever buffered at once */
  lua_Integer max;       /* buffer size; LUA_MAXINTEGER for math.huge */
} chan;

typedef struct endpoint {
  const char *tag;       /* &send_tag or &receive_tag (ta_totagged) */
  chan *c;               /* in the holder's block */
  int closed;
} endpoint;

/* The block of the channel's first send endpoint. */
typedef struct holder {
  endpoint ep;
  chan c;
} holder;

/* What only new_endpoint writes into an endpoint of each kind. */
static const char send_tag, receive_tag;

static const char *endpoint_tag(int which) {
  return which == TA_MT_SEND_CHANNEL ? &send_tag : &receive_tag;
}

/* ---- the ring buffer: user value 1 of the holder, at index `st` ----
** (nil until a value is first buffered, with rcap 0) */

static void ring_push(lua_State *L, chan *c, int st) {
  lua_getiuservalue(L, st, 1);
  if (c->rcount == c->rcap) { /* (the first time, the nil becomes a table) */
    int ncap = c->rcap ? c->rcap * 2 : 4;
    lua_createtable(L, ncap, 0);
    for (int i = 0; i < c->rcount; i++) {
      lua_rawgeti(L, -2, (c->rhead + i) % c->rcap + 1);
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, st, 1);
    lua_replace(L, -2);
    c->rcap = ncap;
    c->rhead = 0;
  }
  lua_rotate(L, -2, 1); /* value on top */
  lua_rawseti(L, -2, (c->rhead + c->rcount) % c->rcap + 1);
  if (++c->rcount > c->rpeak) c->rpeak = c->rcount;
  lua_pop(L, 1);
}

static void ring_pop(lua_State *L, chan *c, int st) {
  lua_getiuservalue(L, st, 1);
  lua_rawgeti(L, -1, c->rhead + 1);
  lua_pushnil(L);
  lua_rawseti(L, -3, c->rhead + 1);
  lua_replace(L, -2);
  c->rhead = (c->rhead + 1) % c->rcap;
  c->rcount--;
}

/* ---- endpoints ---- */

/* Endpoints are checked by the cached metatable's address, not by name. */
static endpoint *checkep(lua_State *L, int idx, int which) {
  return (endpoint *)ta_checkudata(L, ta_upengine(L), idx, which);
}

/* The endpoint at 1 of a send or receive, whose stack is then exactly
** nargs values (a missing argument after the endpoint is an error, as
** luaL_checkany's).  The endpoint is told by size (of an endpoint or of a
** holder) and tag (W2: about 60 instructions an operation fewer than by
** its metatable). */
static inline endpoint *op_endpoint(lua_State *L, int which, int nargs) {
  int top = lua_gettop(L);
  endpoint *ep = (endpoint *)lua_touserdata(L, 1);
  size_t size = lua_rawlen(L, 1);
  if (ep == NULL || (size != sizeof(endpoint) && size != sizeof(holder)) ||
      ep->tag != endpoint_tag(which))
    ta_udata_typeerror(L, 1, which);
  if (top < nargs) luaL_argerror(L, nargs, "value expected");
  if (top != nargs) lua_settop(L, nargs); /* (a call saved in the usual case) */
  return ep;
}

/* Whether ep is its channel's holder (its state follows it in its block). */
static int is_holder(endpoint *ep) {
  return (char *)ep->c - offsetof(holder, c) == (char *)ep;
}

/* Stack: the endpoint ep at 1; pushes its holder and returns its index. */
static int push_holder(lua_State *L, endpoint *ep) {
  if (is_holder(ep)) lua_pushvalue(L, 1);
  else lua_getiuservalue(L, 1, 1);
  return lua_gettop(L);
}

/* A new endpoint of the channel whose holder is at index hidx. */
static void new_endpoint(lua_State *L, chan *c, int hidx, int which) {
  endpoint *ep = (endpoint *)lua_newuserdatauv(L, sizeof *ep, 1);
  ep->c = c;
  ep->tag = endpoint_tag(which);
  ep->closed = 0;
  ta_setmetatable(L, c->E, which);
  lua_pushvalue(L, hidx);
  lua_setiuservalue(L, -2, 1);
}

/* open_memory_channel(max_buffer_size) -> send, receive */
static int l_open_memory_channel(lua_State *L) {
  holder *h;
  lua_Integer max;
  if (lua_type(L, 1) == LUA_TNUMBER && lua_tonumber(L, 1) == HUGE_VAL) {
    max = LUA_MAXINTEGER;
  } else {
    if (!lua_isinteger(L, 1)) return luaL_typeerror(L, 1, "integer or math.huge");
    max = lua_tointeger(L, 1);
    luaL_argcheck(L, max >= 0, 1, "max_buffer_size must be >= 0");
  }
  h = (holder *)lua_newuserdatauv(L, sizeof *h, 1); /* its user value: nil, no ring yet */
  memset(h, 0, sizeof *h);
  h->ep.tag = &send_tag;
  h->ep.c = &h->c;
  h->c.E = ta_upengine(L);
  h->c.max = max;
  h->c.open_send = h->c.open_recv = 1;
  ta_setmetatable(L, h->c.E, TA_MT_SEND_CHANNEL);
  new_endpoint(L, &h->c, lua_gettop(L), TA_MT_RECEIVE_CHANNEL);
  return 2;
}

static void wake_all_with(lua_State *L, ta_lot *lot, endpoint *only, const char *cls,
                          const char *msg) {
  ta_task *t = lot->first, *next;
  for (; t != NULL; t = next) {
    next = t->wait_next;
    if (only != NULL && t->wait != only) continue;
    ta_lot_remove(lot, t);
    ta_push_error(L, t->E, cls, msg);
    lua_xmove(L, t->co, 1);
    ta_reschedule(t, 1, 1);
  }
}

static int send_close(lua_State *L) {
  endpoint *ep = checkep(L, 1, TA_MT_SEND_CHANNEL);
  chan *c = ep->c;
  if (ep->closed) return 0;
  ep->closed = 1;
  wake_all_with(L, &c->senders, ep, "ClosedResourceError",
                "MemorySendChannel:send: the channel was closed while waiting");
  if (--c->open_send == 0)
    wake_all_with(L, &c->receivers, NULL, "EndOfChannel", "all send channels are closed");
  return 0;
}

static int recv_close(lua_State *L) {
  endpoint *ep = checkep(L, 1, TA_MT_RECEIVE_CHANNEL);
  chan *c = ep->c;
  if (ep->closed) return 0;
  ep->closed = 1;
  wake_all_with(L, &c->receivers, ep, "ClosedResourceError",
                "MemoryReceiveChannel:receive: the channel was closed while waiting");
  if (--c->open_recv == 0) {
    wake_all_with(L, &c->senders, NULL, "BrokenResourceError", "all receive channels are closed");
    push_holder(L, ep); /* the buffered values go */
    lua_pushnil(L);
    lua_setiuservalue(L, -2, 1);
    c->rcount = c->rcap = c->rhead = 0;
  }
  return 0;
}

/* A parked sender or receiver has its endpoint in t->wait (closing that
** endpoint wakes exactly its own waiters). */
static int send_abort(lua_State *L, ta_task *t) {
  (void)L;
  ta_lot_remove(&((endpoint *)t->wait)->c->senders, t);
  return TA_ABORT_SUCCEEDED;
}

static int receive_abort(lua_State *L, ta_task *t) {
  (void)L;
  ta_lot_remove(&((endpoint *)t->wait)->c->receivers, t);
  return TA_ABORT_SUCCEEDED;
}

static int check_send(lua_State *L, endpoint *ep, const char *fname) {
  if (ep->closed) return ta_error(L, "ClosedResourceError", "%s: this send channel is closed", fname);
  if (ep->c->open_recv == 0)
    return ta_error(L, "BrokenResourceError", "%s: all receive channels are closed", fname);
  return 0;
}

/* Hand the value on top of the stack (at index 2, the stack's top) to a
** parked receiver or the buffer, popped; returns 0 (the value left in
** place) when neither can take it. */
static int try_send(lua_State *L, endpoint *ep) {
  chan *c = ep->c;
  ta_task *r = ta_lot_pop(&c->receivers);
  if (r != NULL) {
    lua_xmove(L, r->co, 1);
    ta_reschedule(r, 1, 0);
    return 1;
  }
  if (c->rcount < c->max) {
    int st = push_holder(L, ep);
    lua_pushvalue(L, 2);
    ring_push(L, c, st);
    lua_settop(L, 1);
    return 1;
  }
  return 0;
}

static int l_send_nowait(lua_State *L) {
  endpoint *ep = checkep(L, 1, TA_MT_SEND_CHANNEL);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  check_send(L, ep, "MemorySendChannel:send_nowait");
  if (!try_send(L, ep))
    return ta_error(L, "WouldBlock", "MemorySendChannel:send_nowait: the channel is full");
  return 0;
}

static int l_send(lua_State *L) {
  endpoint *ep = op_endpoint(L, TA_MT_SEND_CHANNEL, 2);
  ta_task *t = ta_async_check_in(L, ep->c->E, "MemorySendChannel:send", TA_TRIO);
  if (ta_cancel_pending(t)) return ta_checkpoint(L, t);
  check_send(L, ep, "MemorySendChannel:send");
  if (try_send(L, ep)) return ta_schedule_point(L, t);
  /* Park with the value at index 2: a receiver takes it from our stack. */
  ta_lot_append(&ep->c->senders, t);
  t->wait = ep;
  return ta_park(L, t, send_abort);
}

static int check_recv(lua_State *L, endpoint *ep, const char *fname) {
  if (ep->closed) return ta_error(L, "ClosedResourceError", "%s: this receive channel is closed", fname);
  return 0;
}

/* Push a value from the buffer or a parked sender; 0 when there is none. */
static int try_receive(lua_State *L, endpoint *ep) {
  chan *c = ep->c;
  ta_task *s;
  if (c->rcount > 0) {
    int st = push_holder(L, ep);
    ring_pop(L, c, st);
    s = ta_lot_pop(&c->senders);
    if (s != NULL) {
      lua_pushvalue(s->co, 2);
      lua_xmove(s->co, L, 1);
      ring_push(L, c, st);
      ta_reschedule(s, 0, 0);
    }
    lua_remove(L, st);
    return 1;
  }
  s = ta_lot_pop(&c->senders);
  if (s != NULL) {
    lua_pushvalue(s->co, 2);
    lua_xmove(s->co, L, 1);
    ta_reschedule(s, 0, 0);
    return 1;
  }
  return 0;
}

static int l_receive_nowait(lua_State *L) {
  endpoint *ep = checkep(L, 1, TA_MT_RECEIVE_CHANNEL);
  lua_settop(L, 1);
  check_recv(L, ep, "MemoryReceiveChannel:receive_nowait");
  if (try_receive(L, ep)) return 1;
  if (ep->c->open_send == 0)
    return ta_error(L, "EndOfChannel", "MemoryReceiveChannel:receive_nowait: all send channels are closed");
  return ta_error(L, "WouldBlock", "MemoryReceiveChannel:receive_nowait: the channel is empty");
}

static int l_receive(lua_State *L) {
  endpoint *ep = op_endpoint(L, TA_MT_RECEIVE_CHANNEL, 1);
  ta_task *t = ta_async_check_in(L, ep->c->E, "MemoryReceiveChannel:receive", TA_TRIO);
  if (ta_cancel_pending(t)) return ta_checkpoint(L, t);
  check_recv(L, ep, "MemoryReceiveChannel:receive");
  if (try_receive(L, ep)) return ta_schedule_point_ret(L, t, 1);
  if (ep->c->open_send == 0)
    return ta_error(L, "EndOfChannel", "MemoryReceiveChannel:receive: all send channels are closed");
  ta_lot_append(&ep->c->receivers, t);
  t->wait = ep;
  return ta_park(L, t, receive_abort);
}

static int clone_ep(lua_State *L, int is_send) {
  endpoint *ep = checkep(L, 1, is_send ? TA_MT_SEND_CHANNEL : TA_MT_RECEIVE_CHANNEL);
  if (ep->closed)
    return ta_error(L, "ClosedResourceError", "%s:clone: this channel is closed",
                    is_send ? "MemorySendChannel" : "MemoryReceiveChannel");
  new_endpoint(L, ep->c, push_holder(L, ep), is_send ? TA_MT_SEND_CHANNEL : TA_MT_RECEIVE_CHANNEL);
  if (is_send) ep->c->open_send++;
  else ep->c->open_recv++;
  return 1;
}

static int l_send_clone(lua_State *L) { return clone_ep(L, 1); }
static int l_recv_clone(lua_State *L) { return clone_ep(L, 0); }

static int statistics(lua_State *L, endpoint *ep) {
  chan *c = ep->c;
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, c->rcount);
  lua_setfield(L, -2, "current_buffer_used");
  lua_pushinteger(L, c->rpeak);
  lua_setfield(L, -2, "peak_buffer_used");
  if (c->max == LUA_MAXINTEGER) lua_pushnumber(L, HUGE_VAL);
  else lua_pushinteger(L, c->max);
  lua_setfield(L, -2, "max_buffer_size");
  lua_pushinteger(L, c->open_send);
  lua_setfield(L, -2, "open_send_channels");
  lua_pushinteger(L, c->open_recv);
  lua_setfield(L, -2, "open_receive_channels");
  lua_pushinteger(L, c->senders.n);
  lua_setfield(L, -2, "tasks_waiting_send");
  lua_pushinteger(L, c->receivers.n);
  lua_setfield(L, -2, "tasks_waiting_receive");
  return 1;
}

static int l_send_statistics(lua_State *L) { return statistics(L, checkep(L, 1, TA_MT_SEND_CHANNEL)); }
static int l_recv_statistics(lua_State *L) { return statistics(L, checkep(L, 1, TA_MT_RECEIVE_CHANNEL)); }

static int send_tostring(lua_State *L) {
  lua_pushfstring(L, "MemorySendChannel (%p)", lua_touserdata(L, 1));
  return 1;
}

static int recv_tostring(lua_State *L) {
  lua_pushfstring(L, "MemoryReceiveChannel (%p)", lua_touserdata(L, 1));
  return 1;
}

static const luaL_Reg send_methods[] = {
  {"send", l_send},
  {"send_nowait", l_send_nowait},
  {"clone", l_send_clone},
  {"close", send_close},
  {"statistics", l_send_statistics},
  {NULL, NULL}
};

static const luaL_Reg recv_methods[] = {
  {"receive", l_receive},
  {"receive_nowait", l_receive_nowait},
  {"clone", l_recv_clone},
  {"close", recv_close},
  {"statistics", l_recv_statistics},
  {NULL, NULL}
};

static const luaL_Reg send_meta[] = {
  {"__close", send_close},
  {"__tostring", send_tostring},
  {NULL, NULL}
};

static const luaL_Reg recv_meta[] = {
  {"__close", recv_close},
  {"__tostring", recv_tostring},
  {NULL, NULL}
};

int ta_open_channel(lua_State *L) {
  lua_pushvalue(L, -1); /* the engine */
  lua_pushcclosure(L, l_open_memory_channel, 1);
  lua_setfield(L, -3, "open_memory_channel");
  ta_newclass(L, SEND_MT, send_meta, send_methods, "__index");
  ta_cache_metatable(L, (ta_engine *)lua_touserdata(L, -2), TA_MT_SEND_CHANNEL);
  lua_pop(L, 1);
  ta_newclass(L, RECV_MT, recv_meta, recv_methods, "__index");
  ta_cache_metatable(L, (ta_engine *)lua_touserdata(L, -2), TA_MT_RECEIVE_CHANNEL);
  lua_pop(L, 1);
  return 0;
}
