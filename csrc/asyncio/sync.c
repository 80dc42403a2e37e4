/*
** sync.c — asyncio.Lock and asyncio.Event: the object and the paths that
** do not wait, in C; lua/asyncio/sync.lua has the classes (the objects'
** metatables, with `with` and __tostring) and the Lua functions that wait
** and wake, with the semantics of CPython's asyncio/locks.py.
**
** A Lock or an Event is a userdata: a tag (only this file writes it, so
** that a method tells its self by size and tag, as ta_tosockbox does) and
** its flag (held, or set), with one user value, the array of its waiters'
** futures (FIFO).  A method that has no waiter to wake and no wait to make
** runs in C alone; otherwise it calls the Lua function that does it
** (sync_setup hands them over), with a continuation where that may wait.
** See docs/ARCHITECTURE.md "asyncio's Lock and Event" for what it saves.
*/
#include "asyncio/asyncio.h"

typedef struct {
  const char *tag;          /* &lock_tag or &event_tag (ta_totagged) */
  unsigned char flag;       /* a Lock: held; an Event: set */
} sync_prim;

static const char lock_tag, event_tag;

/* Upvalues: the engine; a method's Lua slow path (if it has one), a
** constructor's class. */
enum { UP_SLOW = 2, UP_CLASS = 2 };

static sync_prim *check_self(lua_State *L, const char *tag, const char *fname) {
  sync_prim *p = (sync_prim *)ta_totagged(L, 1, sizeof(sync_prim), tag);
  if (p == NULL) ta_bad_self(L, fname, tag == &lock_tag ? "asyncio.Lock" : "asyncio.Event");
  return p;
}

/* Pushes the array of self's waiters (self at 1); returns its length. */
static lua_Unsigned push_waiters(lua_State *L) {
  lua_getiuservalue(L, 1, 1);
  return lua_rawlen(L, -1);
}

/* After a Lock's acquire_wait returned (it took the lock): holds it. */
static int acquired(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  ((sync_prim *)ctx)->flag = 1;
  lua_pushboolean(L, 1);
  return 1;
}

/* An Event's wait returned (it was set). */
static int was_set(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lua_pushboolean(L, 1);
  return 1;
}

/* Calls the method's slow path with self, its waiters (on top) and the
** flag, as Lua function(self, waiters, flag); k continues when it returns
** (it may wait), ctx is self's. */
static int call_slow(lua_State *L, sync_prim *p, lua_KFunction k) {
  lua_pushvalue(L, lua_upvalueindex(UP_SLOW));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -3);
  lua_pushboolean(L, p->flag);
  lua_callk(L, 3, 0, (lua_KContext)p, k);
  return k(L, LUA_OK, (lua_KContext)p);
}

/* Calls the method's Lua waker with the waiters (on top); it does not wait. */
static void call_waker(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(UP_SLOW));
  lua_pushvalue(L, -2);
  lua_call(L, 1, 0);
}

/* Lock:acquire(): takes a free lock nobody waits for at once (true); else
** the Lua function waits its turn (FIFO, skipping cancelled waiters). */
static int lock_acquire(lua_State *L) {
  sync_prim *p = check_self(L, &lock_tag, "Lock:acquire");
  ta_async_check_in(L, ta_upengine(L), "Lock:acquire", TA_ASYNCIO);
  if (push_waiters(L) > 0 || p->flag) return call_slow(L, p, acquired);
  p->flag = 1;
  lua_pushboolean(L, 1);
  return 1;
}

/* Lock:release(): frees the lock and has the first waiter woken. */
static int lock_release(lua_State *L) {
  sync_prim *p = check_self(L, &lock_tag, "Lock:release");
  if (!p->flag) ta_error(L, "RuntimeError", "Lock:release: Lock is not acquired.");
  p->flag = 0;
  if (push_waiters(L) > 0) call_waker(L);
  return 0;
}

static int lock_locked(lua_State *L) {
  lua_pushboolean(L, check_self(L, &lock_tag, "Lock:locked")->flag);
  return 1;
}

/* Event:wait(): true at once when set; else the Lua function waits. */
static int event_wait(lua_State *L) {
  sync_prim *p = check_self(L, &event_tag, "Event:wait");
  ta_async_check_in(L, ta_upengine(L), "Event:wait", TA_ASYNCIO);
  if (!p->flag) {
    push_waiters(L);
    return call_slow(L, p, was_set);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* Event:set(): has every waiter woken, then sets the flag (so that, should
** a wake fail, the event is still clear and a later set() wakes the rest);
** nothing when already set. */
static int event_set(lua_State *L) {
  sync_prim *p = check_self(L, &event_tag, "Event:set");
  if (p->flag) return 0;
  if (push_waiters(L) > 0) call_waker(L);
  p->flag = 1;
  return 0;
}

static int event_is_set(lua_State *L) {
  lua_pushboolean(L, check_self(L, &event_tag, "Event:is_set")->flag);
  return 1;
}

static int event_clear(lua_State *L) {
  check_self(L, &event_tag, "Event:clear")->flag = 0;
  return 0;
}

/* A new Lock or Event, of the class in the closure's upvalue: clear, with
** an empty array of waiters. */
static int new_prim(lua_State *L, const char *tag) {
  sync_prim *p = (sync_prim *)lua_newuserdatauv(L, sizeof(sync_prim), 1);
  p->tag = tag;
  p->flag = 0;
  lua_createtable(L, 1, 0);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, lua_upvalueindex(UP_CLASS));
  lua_setmetatable(L, -2);
  return 1;
}

static int lock_new(lua_State *L) {
  return new_prim(L, &lock_tag);
}

static int event_new(lua_State *L) {
  return new_prim(L, &event_tag);
}

/* sync_waiters(obj) -> the array of the waiters of a Lock or Event (their
** __tostring). */
static int l_sync_waiters(lua_State *L) {
  if (ta_totagged(L, 1, sizeof(sync_prim), &lock_tag) == NULL
      && ta_totagged(L, 1, sizeof(sync_prim), &event_tag) == NULL)
    ta_bad_self(L, "sync_waiters", "asyncio.Lock or asyncio.Event");
  lua_getiuservalue(L, 1, 1);
  return 1;
}

/* sync_setup(Lock, Event, {acquire_wait, wake_first, wait, wake_all}) ->
** new_lock, new_event: puts the methods above into the two classes (the
** objects' metatables); the functions are the Lua slow paths, by position. */
static int l_sync_setup(lua_State *L) {
  static const struct {
    int cls;                /* argument: 1 Lock, 2 Event */
    const char *name;
    lua_CFunction f;
    int slow;               /* its slow path in argument 3, 0 if none */
  } methods[] = {
    {1, "acquire", lock_acquire, 1}, {1, "release", lock_release, 2}, {1, "locked", lock_locked, 0},
    {2, "wait", event_wait, 3}, {2, "set", event_set, 4}, {2, "is_set", event_is_set, 0},
    {2, "clear", event_clear, 0},
  };
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    lua_pushvalue(L, lua_upvalueindex(1));
    if (methods[i].slow == 0) lua_pushnil(L);
    else luaL_argcheck(L, lua_rawgeti(L, 3, methods[i].slow) == LUA_TFUNCTION, 3, "functions expected");
    lua_pushcclosure(L, methods[i].f, 2);
    lua_setfield(L, methods[i].cls, methods[i].name);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, lock_new, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, event_new, 2);
  return 2;
}

static const luaL_Reg sync_funcs[] = {
  {"sync_setup", l_sync_setup},
  {"sync_waiters", l_sync_waiters},
  {NULL, NULL}
};

int ta_open_sync(lua_State *L) {
  ta_register(L, sync_funcs);
  return 0;
}
