/*
** sync.c — asyncio.Lock, Event, Semaphore and BoundedSemaphore: the object
** and the paths that do not wait, in C; lua/asyncio/sync.lua has the
** classes (the objects' metatables, with `with` and __tostring) and the Lua
** functions that wait and wake, with the semantics of CPython's
** asyncio/locks.py.
**
** Each object is a userdata: a tag (only this file writes it, so that a
** method tells its self by size and tag, as ta_tosockbox does) and its
** count (a Lock: 1 while held; an Event: 1 while set; a semaphore: its
** value), with one user value, the array of its waiters' futures (FIFO).
** A method that has no waiter to wake and no wait to make runs in C alone;
** otherwise it calls the Lua function that does it (sync_setup hands them
** over) with self and the waiters, with a continuation where that may
** wait.  See docs/ARCHITECTURE.md "asyncio's Lock and Event" for what it
** saves.
*/
#include "asyncio/asyncio.h"

typedef struct {
  const char *tag;          /* &kind_tags[its kind] (ta_totagged) */
  lua_Integer count;        /* Lock: held; Event: set; semaphore: its value */
  lua_Integer bound;        /* a BoundedSemaphore's initial value */
} sync_prim;

enum { LOCK, EVENT, SEMAPHORE, BOUNDED, NKINDS };
static const char kind_tags[NKINDS];
static const char *const kind_names[NKINDS] = {
  "asyncio.Lock", "asyncio.Event", "asyncio.Semaphore", "asyncio.BoundedSemaphore",
};

/* Upvalues: the engine; a method's Lua slow path (if it has one), a
** constructor's class. */
enum { UP_SLOW = 2, UP_CLASS = 2 };

/* Self (at 1) if it is of a kind from first to last, else raises the
** wrong-self error naming `expected`. */
static sync_prim *check_kinds(lua_State *L, int first, int last, const char *fname, const char *expected) {
  for (int k = first; k <= last; k++) {
    sync_prim *p = (sync_prim *)ta_totagged(L, 1, sizeof(sync_prim), &kind_tags[k]);
    if (p != NULL) return p;
  }
  ta_bad_self(L, fname, expected);
  return NULL;
}

#define check_self(L, kind, fname) check_kinds(L, kind, kind, fname, kind_names[kind])
/* Semaphore's methods (but release) take a BoundedSemaphore too. */
#define check_semaphore(L, fname) check_kinds(L, SEMAPHORE, BOUNDED, fname, kind_names[SEMAPHORE])

/* Pushes the array of self's waiters (self at 1); returns its length. */
static lua_Unsigned push_waiters(lua_State *L) {
  lua_getiuservalue(L, 1, 1);
  return lua_rawlen(L, -1);
}

/* After a Lock's acquire_wait returned (its turn came): holds it. */
static int lock_taken(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  ((sync_prim *)ctx)->count = 1;
  lua_pushboolean(L, 1);
  return 1;
}

/* After a wait that took what it waited for (the Lua function did). */
static int returns_true(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lua_pushboolean(L, 1);
  return 1;
}

/* Calls the method's slow path as function(self, waiters, count), the
** waiters on top; k continues when it returns (it may wait), with self's
** struct. */
static int call_slow(lua_State *L, sync_prim *p, lua_KFunction k) {
  lua_pushvalue(L, lua_upvalueindex(UP_SLOW));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -3);
  lua_pushinteger(L, p->count);
  lua_callk(L, 3, 0, (lua_KContext)p, k);
  return k(L, LUA_OK, (lua_KContext)p);
}

/* Calls the method's Lua function as function(self, waiters), the waiters
** on top, for nres results; it does not wait. */
static void call_lua(lua_State *L, int nres) {
  lua_pushvalue(L, lua_upvalueindex(UP_SLOW));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -3);
  lua_call(L, 2, nres);
}

/* ---- Lock ---- */

/* acquire(): takes a free lock nobody waits for at once (true); else the
** Lua function waits its turn (FIFO, skipping cancelled waiters). */
static int lock_acquire(lua_State *L) {
  sync_prim *p = check_self(L, LOCK, "Lock:acquire");
  ta_async_check_in(L, ta_upengine(L), "Lock:acquire", TA_ASYNCIO);
  if (push_waiters(L) > 0 || p->count) return call_slow(L, p, lock_taken);
  p->count = 1;
  lua_pushboolean(L, 1);
  return 1;
}

/* release(): frees the lock and has the first waiter woken. */
static int lock_release(lua_State *L) {
  sync_prim *p = check_self(L, LOCK, "Lock:release");
  if (!p->count) ta_error(L, "RuntimeError", "Lock:release: Lock is not acquired.");
  p->count = 0;
  if (push_waiters(L) > 0) call_lua(L, 0);
  return 0;
}

static int lock_locked(lua_State *L) {
  lua_pushboolean(L, check_self(L, LOCK, "Lock:locked")->count);
  return 1;
}

/* ---- Event ---- */

/* wait(): true at once when set; else the Lua function waits. */
static int event_wait(lua_State *L) {
  sync_prim *p = check_self(L, EVENT, "Event:wait");
  ta_async_check_in(L, ta_upengine(L), "Event:wait", TA_ASYNCIO);
  if (!p->count) {
    push_waiters(L);
    return call_slow(L, p, returns_true);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* set(): has every waiter woken, then sets the flag (so that, should a
** wake fail, the event is still clear and a later set() wakes the rest);
** nothing when already set. */
static int event_set(lua_State *L) {
  sync_prim *p = check_self(L, EVENT, "Event:set");
  if (p->count) return 0;
  if (push_waiters(L) > 0) call_lua(L, 0);
  p->count = 1;
  return 0;
}

static int event_is_set(lua_State *L) {
  lua_pushboolean(L, check_self(L, EVENT, "Event:is_set")->count);
  return 1;
}

static int event_clear(lua_State *L) {
  check_self(L, EVENT, "Event:clear")->count = 0;
  return 0;
}

/* ---- Semaphore and BoundedSemaphore ---- */

/* acquire(): takes one of the value at once while some is left and nobody
** waits; else the Lua function waits its turn and takes it. */
static int semaphore_acquire(lua_State *L) {
  sync_prim *p = check_semaphore(L, "Semaphore:acquire");
  ta_async_check_in(L, ta_upengine(L), "Semaphore:acquire", TA_ASYNCIO);
  if (push_waiters(L) > 0 || p->count == 0) return call_slow(L, p, returns_true);
  p->count--;
  lua_pushboolean(L, 1);
  return 1;
}

/* release() of either kind, after its check: one more, which the Lua
** waker hands to the first waiter if there is one. */
static int semaphore_give(lua_State *L, sync_prim *p) {
  p->count++;
  if (push_waiters(L) > 0) call_lua(L, 0);
  return 0;
}

static int semaphore_release(lua_State *L) {
  return semaphore_give(L, check_semaphore(L, "Semaphore:release"));
}

static int bounded_release(lua_State *L) {
  sync_prim *p = check_self(L, BOUNDED, "BoundedSemaphore:release");
  if (p->count >= p->bound)
    ta_error(L, "ValueError", "BoundedSemaphore:release: BoundedSemaphore released too many times");
  return semaphore_give(L, p);
}

/* locked(): true if acquire() would wait (no value left, or a waiter that
** is not cancelled, which the Lua function looks for). */
static int semaphore_locked(lua_State *L) {
  sync_prim *p = check_semaphore(L, "Semaphore:locked");
  if (p->count == 0) lua_pushboolean(L, 1);
  else if (push_waiters(L) == 0) lua_pushboolean(L, 0);
  else call_lua(L, 1);
  return 1;
}

/* ---- making them ---- */

/* A new object of the class in the closure's upvalue, with no waiters. */
static sync_prim *new_prim(lua_State *L, int kind, lua_Integer count) {
  sync_prim *p = (sync_prim *)lua_newuserdatauv(L, sizeof(sync_prim), 1);
  p->tag = &kind_tags[kind];
  p->count = count;
  p->bound = count;
  lua_createtable(L, 1, 0);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, lua_upvalueindex(UP_CLASS));
  lua_setmetatable(L, -2);
  return p;
}

static int lock_new(lua_State *L) {
  new_prim(L, LOCK, 0);
  return 1;
}

static int event_new(lua_State *L) {
  new_prim(L, EVENT, 0);
  return 1;
}

/* semaphore_new(value): value checked by the Lua constructor. */
static int semaphore_new(lua_State *L) {
  new_prim(L, SEMAPHORE, luaL_checkinteger(L, 1));
  return 1;
}

static int bounded_new(lua_State *L) {
  new_prim(L, BOUNDED, luaL_checkinteger(L, 1));
  return 1;
}

/* For the Lua functions: the object at 1, of any of the four kinds. */
#define check_any(L, fname) check_kinds(L, LOCK, BOUNDED, fname, "asyncio.Lock, Event or Semaphore")

/* sync_waiters(obj) -> the array of obj's waiters. */
static int l_sync_waiters(lua_State *L) {
  check_any(L, "sync_waiters");
  lua_getiuservalue(L, 1, 1);
  return 1;
}

/* sync_count(obj [, delta]) -> obj's count after adding delta (0). */
static int l_sync_count(lua_State *L) {
  sync_prim *p = check_any(L, "sync_count");
  p->count += luaL_optinteger(L, 2, 0);
  lua_pushinteger(L, p->count);
  return 1;
}

/* sync_setup({Lock, Event, Semaphore, BoundedSemaphore}, {slow paths, by
** the positions below}) -> the four constructors: puts the methods above
** into the classes (the objects' metatables). */
static int l_sync_setup(lua_State *L) {
  static const struct {
    int kind;               /* its class: argument 1's [kind + 1] */
    const char *name;
    lua_CFunction f;
    int slow;               /* its slow path's index in argument 2, 0 if none */
  } methods[] = {
    {LOCK, "acquire", lock_acquire, 1}, {LOCK, "release", lock_release, 2},
    {LOCK, "locked", lock_locked, 0},
    {EVENT, "wait", event_wait, 3}, {EVENT, "set", event_set, 4},
    {EVENT, "is_set", event_is_set, 0}, {EVENT, "clear", event_clear, 0},
    {SEMAPHORE, "acquire", semaphore_acquire, 5}, {SEMAPHORE, "release", semaphore_release, 6},
    {SEMAPHORE, "locked", semaphore_locked, 7},
    {BOUNDED, "acquire", semaphore_acquire, 5}, {BOUNDED, "release", bounded_release, 6},
    {BOUNDED, "locked", semaphore_locked, 7},
  };
  static const lua_CFunction makers[NKINDS] = {lock_new, event_new, semaphore_new, bounded_new};
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  for (int k = 0; k < NKINDS; k++) luaL_argcheck(L, lua_rawgeti(L, 1, k + 1) == LUA_TTABLE, 1, "classes expected");
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    lua_pushvalue(L, lua_upvalueindex(1));
    if (methods[i].slow == 0) lua_pushnil(L);
    else luaL_argcheck(L, lua_rawgeti(L, 2, methods[i].slow) == LUA_TFUNCTION, 2, "functions expected");
    lua_pushcclosure(L, methods[i].f, 2);
    lua_setfield(L, 3 + methods[i].kind, methods[i].name);
  }
  for (int k = 0; k < NKINDS; k++) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 3 + k);
    lua_pushcclosure(L, makers[k], 2);
  }
  return NKINDS;
}

static const luaL_Reg sync_funcs[] = {
  {"sync_setup", l_sync_setup},
  {"sync_waiters", l_sync_waiters},
  {"sync_count", l_sync_count},
  {NULL, NULL}
};

int ta_open_sync(lua_State *L) {
  ta_register(L, sync_funcs);
  return 0;
}
