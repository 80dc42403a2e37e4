/*
** sync.c — asyncio.Lock, Event, Semaphore and BoundedSemaphore, with the
** semantics of CPython's asyncio/locks.py; lua/asyncio/sync.lua has the
** classes (the objects' metatables, with `with` and __tostring), and
** Condition and Barrier.
**
** Each object is a userdata: a tag (only this file writes it, so that a
** method tells its self by size and tag, as ta_tosockbox does), its count
** (a Lock: 1 while held; an Event: 1 while set; a semaphore: its value) and
** a FIFO of waiters, at [head, tail] of its user value table.  A waiting
** asyncio Task parks (ta_aio_park_k) in a sync_park, a small userdata that
** anchors the Task; any other caller (a Trio task in allow_asyncio mode)
** awaits a future of the running loop.  As in CPython, a wake only marks the
** waiter (woken, or its future's result set) and queues its task: the
** waiter stays in the FIFO until its task runs and takes itself out, and
** only then takes what it was woken for, so that a task that arrives
** meanwhile waits behind it.  A waiter that fails (cancelled) after it was
** woken passes the wake-up on: a release is never lost.
*/
#include "asyncio/asyncio.h"

typedef struct {
  const char *tag;          /* &kind_tags[its kind] (ta_totagged) */
  lua_Integer count;        /* Lock: held; Event: set; semaphore: its value */
  lua_Integer bound;        /* a BoundedSemaphore's initial value */
  lua_Integer head, tail;   /* the waiters' slots in the user value; none: tail < head (1, 0) */
  struct sync_park *spare;  /* the sync_park in user value 2, NULL if none */
  unsigned char has_spare;  /* that one is free (no Task waits in it) */
} sync_prim;

/* Where an asyncio Task waits (its kind byte first, as a future's; its
** user value is the Task).  Woken by a release, or by Task:cancel() (then
** park.task is NULL and woken 0: the waiter counts as cancelled).  Once
** its Task ran again it is the object's spare, for the next wait: it keeps
** that Task (`anchored`) until another Task waits in it. */
typedef struct sync_park {
  ta_aio_park park;
  unsigned char woken;
  ta_task *anchored;        /* the Task in its user value */
} sync_park;

enum { LOCK, EVENT, SEMAPHORE, BOUNDED, NKINDS };
static const char kind_tags[NKINDS];
static const char *const kind_names[NKINDS] = {
  "asyncio.Lock", "asyncio.Event", "asyncio.Semaphore", "asyncio.BoundedSemaphore",
};

/* Upvalues: the engine; a method's asyncio.get_running_loop and
** Future:await (for the waits of callers that are not asyncio Tasks), a
** constructor's class. */
enum { UP_GET_RUNNING_LOOP = 2, UP_AWAIT = 3, UP_CLASS = 2 };

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

/* ---- the FIFO of waiters ---- */

static int is_park(const void *w) {
  return *(const unsigned char *)w == TA_KIND_PARK;
}

/* CPython's fut.done(): woken, or cancelled. */
static int waiter_done(const void *w) {
  if (is_park(w)) return ((const sync_park *)w)->woken || ((const sync_park *)w)->park.task == NULL;
  return ((const ta_future *)w)->state != TA_FUT_PENDING;
}

/* CPython's fut.cancelled(). */
static int waiter_cancelled(const void *w) {
  if (is_park(w)) return !((const sync_park *)w)->woken && ((const sync_park *)w)->park.task == NULL;
  return ((const ta_future *)w)->state == TA_FUT_CANCELLED;
}

/* Pushes the waiters' table of self (at 1); returns its index. */
static int push_fifo(lua_State *L) {
  lua_getiuservalue(L, 1, 1);
  return lua_gettop(L);
}

/* The waiter in slot i of the table at ft (its address; not kept on the
** stack: the table holds it). */
static void *waiter_at(lua_State *L, int ft, lua_Integer i) {
  void *w;
  lua_rawgeti(L, ft, i);
  w = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return w;
}

/* True if a waiter is not cancelled (CPython's "any waiting"). */
static int any_waiting(lua_State *L, const sync_prim *p) {
  int found = 0, ft;
  if (p->tail < p->head) return 0;
  ft = push_fifo(L);
  for (lua_Integer i = p->head; i <= p->tail && !found; i++) found = !waiter_cancelled(waiter_at(L, ft, i));
  lua_settop(L, ft - 1);
  return found;
}

/* Wakes the waiter in slot i of the table at ft (not done): a parked Task
** goes onto its loop's ready queue, a future gets the result true. */
static void wake(lua_State *L, int ft, lua_Integer i) {
  void *w;
  lua_rawgeti(L, ft, i);
  w = lua_touserdata(L, -1);
  if (is_park(w)) {
    sync_park *s = (sync_park *)w;
    ta_task *t = s->park.task;
    s->woken = 1;
    lua_getiuservalue(L, -1, 1);
    if (ta_aio_unpark_needs_loop(&s->park)) ta_push_weak(L, t->E, ta_task_future(t)->loop->ref);
    ta_aio_unpark(L, &s->park, 0);
  } else {
    lua_pushboolean(L, 1);
    ta_future_settle(L, (ta_future *)w, -2, 1);
  }
  lua_pop(L, 1);
}

/* Wakes the first waiters that are not done: one (all 0) or every one
** (all 1); a semaphore's each take one of its value (`counted`).  Returns
** how many it woke. */
static int wake_waiters(lua_State *L, sync_prim *p, int all, int counted) {
  int ft, n = 0;
  if (p->tail < p->head) return 0;
  ft = push_fifo(L);
  for (lua_Integer i = p->head; i <= p->tail; i++) {
    if (waiter_done(waiter_at(L, ft, i))) continue;
    if (counted) p->count--;
    wake(L, ft, i);
    n++;
    if (!all) break;
  }
  lua_settop(L, ft - 1);
  return n;
}

/* A Lock's release: the first waiter only, if not done yet. */
static void wake_first(lua_State *L, sync_prim *p) {
  int ft;
  if (p->tail < p->head) return;
  ft = push_fifo(L);
  if (!waiter_done(waiter_at(L, ft, p->head))) wake(L, ft, p->head);
  lua_settop(L, ft - 1);
}

/* Takes the waiter at widx out of the FIFO (its task runs again). */
static void fifo_remove(lua_State *L, sync_prim *p, int widx) {
  int ft = push_fifo(L);
  const void *w = lua_touserdata(L, widx);
  for (lua_Integer i = p->head; i <= p->tail; i++) {
    if (waiter_at(L, ft, i) != w) continue;
    if (i == p->head) {
      p->head++;
    } else {
      for (lua_Integer j = i; j < p->tail; j++) {
        lua_rawgeti(L, ft, j + 1);
        lua_rawseti(L, ft, j);
      }
      i = p->tail--;
    }
    lua_pushnil(L);
    lua_rawseti(L, ft, i);
    break;
  }
  if (p->tail < p->head) p->head = 1, p->tail = 0;
  lua_settop(L, ft - 1);
}

/* Appends the waiter on top (left there) to the FIFO.  The tail moves once
** the slot is set: setting it may raise for want of memory. */
static void fifo_push(lua_State *L, sync_prim *p) {
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, p->tail + 1);
  p->tail++;
  lua_pop(L, 1);
}

/* ---- waiting ---- */

/* Waits for a wake in the FIFO of self (at 1; the stack is cut to it):
** the asyncio Task running on L parks in the spare sync_park, or a new
** one; any other task t awaits a new future of the running loop.  The
** continuation is park_k or future_k (context t), which calls wait_ended. */
static int wait_turn(lua_State *L, sync_prim *p, ta_task *t, lua_KFunction park_k, lua_KFunction future_k) {
  lua_settop(L, 1);
  if (ta_is_aio_task(t) && t->co == L) {
    sync_park *s = p->spare;
    if (p->has_spare) {
      lua_getiuservalue(L, 1, 2);
      p->has_spare = 0;
    } else {
      s = (sync_park *)lua_newuserdatauv(L, sizeof *s, 1);
      ta_aio_park_init(&s->park);
      s->anchored = NULL;
    }
    if (s->anchored != t) {
      ta_push_weak(L, t->E, t->ref);
      lua_setiuservalue(L, -2, 1);
      s->anchored = t;
    }
    s->woken = 0;
    fifo_push(L, p);
    return ta_aio_park_k(L, t, &s->park, park_k);
  }
  if (!ta_push_running_loop(L, t->E)) {
    lua_pushvalue(L, lua_upvalueindex(UP_GET_RUNNING_LOOP));
    lua_call(L, 0, 1);
  }
  ta_future_push_new(L, -1);
  lua_replace(L, -2);
  fifo_push(L, p);
  return ta_future_await_k(L, t, (ta_future *)lua_touserdata(L, -1), lua_upvalueindex(UP_AWAIT), future_k);
}

/* The sync_park at 2, whose Task runs again (out of the FIFO), becomes
** the spare (already in user value 2 when it was the spare before). */
static void keep_spare(lua_State *L, sync_prim *p) {
  sync_park *s = (sync_park *)lua_touserdata(L, 2);
  if (s != p->spare) {
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, 2);
    p->spare = s;
  }
  p->has_spare = 1;
}

/* In a wait's continuation (`parked`: park_k): the waiter leaves the FIFO;
** the stack becomes [self, waiter, error] when the wait failed (returns
** true), else [self, waiter].  *woken: it was woken (CPython's
** "fut.done() and not fut.cancelled()"), whether it failed or not. */
static int wait_ended(lua_State *L, int status, ta_task *t, int parked, int *woken) {
  int failed;
  sync_prim *p;
  if (parked) {
    failed = ta_aio_park_failed(t);
    *woken = ((sync_park *)lua_touserdata(L, 2))->woken;
  } else {
    ta_future *f;
    failed = ta_future_wait_failed(L, status, t); /* [self, ..., future] */
    f = (ta_future *)lua_touserdata(L, -1);
    if (failed) ta_future_cancel(L, lua_gettop(L)); /* (in case it is not done yet) */
    *woken = f->state == TA_FUT_FINISHED;
    lua_insert(L, 2); /* [self, future, ..., error] */
  }
  if (failed) lua_copy(L, -1, 3);
  lua_settop(L, failed ? 3 : 2);
  p = (sync_prim *)lua_touserdata(L, 1);
  fifo_remove(L, p, 2);
  if (parked) keep_spare(L, p);
  return failed;
}

/* The continuations of a method m's wait: turn (L, failed, woken) takes
** it on. */
#define WAIT_CONTINUATIONS(m, turn) \
  static int m##_park_k(lua_State *L, int status, lua_KContext ctx) { \
    int woken, failed = wait_ended(L, status, (ta_task *)ctx, 1, &woken); \
    return turn(L, failed, woken); \
  } \
  static int m##_future_k(lua_State *L, int status, lua_KContext ctx) { \
    int woken, failed = wait_ended(L, status, (ta_task *)ctx, 0, &woken); \
    return turn(L, failed, woken); \
  }

static int push_true(lua_State *L) {
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- Lock ---- */

/* After a Lock's wait: woken, it takes the lock; failed, it wakes the next
** waiter if the lock is free (the wake-up it may have had goes on). */
static int lock_turn(lua_State *L, int failed, int woken) {
  sync_prim *p = (sync_prim *)lua_touserdata(L, 1);
  (void)woken;
  if (failed) {
    if (!p->count) wake_first(L, p);
    return lua_error(L);
  }
  p->count = 1;
  return push_true(L);
}
WAIT_CONTINUATIONS(lock, lock_turn)

/* acquire(): takes a free lock nobody waits for at once (true); else waits
** its turn (FIFO, cancelled waiters skipped). */
static int lock_acquire(lua_State *L) {
  sync_prim *p = check_self(L, LOCK, "Lock:acquire");
  ta_task *t = ta_async_check_in(L, ta_upengine(L), "Lock:acquire", TA_ASYNCIO);
  if (p->count || any_waiting(L, p)) return wait_turn(L, p, t, lock_park_k, lock_future_k);
  p->count = 1;
  return push_true(L);
}

/* release(): frees the lock and wakes the first waiter. */
static int lock_release(lua_State *L) {
  sync_prim *p = check_self(L, LOCK, "Lock:release");
  if (!p->count) ta_error(L, "RuntimeError", "Lock:release: Lock is not acquired.");
  p->count = 0;
  wake_first(L, p);
  return 0;
}

static int lock_locked(lua_State *L) {
  lua_pushboolean(L, check_self(L, LOCK, "Lock:locked")->count);
  return 1;
}

/* ---- Event ---- */

static int event_turn(lua_State *L, int failed, int woken) {
  (void)woken;
  if (failed) return lua_error(L);
  return push_true(L);
}
WAIT_CONTINUATIONS(event, event_turn)

/* wait(): true at once when set; else waits for set(). */
static int event_wait(lua_State *L) {
  sync_prim *p = check_self(L, EVENT, "Event:wait");
  ta_task *t = ta_async_check_in(L, ta_upengine(L), "Event:wait", TA_ASYNCIO);
  if (!p->count) return wait_turn(L, p, t, event_park_k, event_future_k);
  return push_true(L);
}

/* set(): wakes every waiter, then sets the flag (so that, should a wake
** fail, the event is still clear and a later set() wakes the rest);
** nothing when already set. */
static int event_set(lua_State *L) {
  sync_prim *p = check_self(L, EVENT, "Event:set");
  if (p->count) return 0;
  wake_waiters(L, p, 1, 0);
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

/* CPython's Semaphore.locked(): acquire() would wait. */
static int semaphore_busy(lua_State *L, const sync_prim *p) {
  return p->count == 0 || any_waiting(L, p);
}

/* After a semaphore's wait: the waker took one of the value for it; one
** that fails after it was woken gives it back.  Either way, while value is
** left, waiters that came meanwhile (and had to queue) are woken. */
static int semaphore_turn(lua_State *L, int failed, int woken) {
  sync_prim *p = (sync_prim *)lua_touserdata(L, 1);
  if (failed && woken) p->count++;
  while (p->count > 0 && wake_waiters(L, p, 0, 1) > 0) {}
  if (failed) return lua_error(L);
  return push_true(L);
}
WAIT_CONTINUATIONS(semaphore, semaphore_turn)

/* acquire(): takes one of the value at once while some is left and nobody
** waits; else waits its turn (the waker takes one for it). */
static int semaphore_acquire(lua_State *L) {
  sync_prim *p = check_semaphore(L, "Semaphore:acquire");
  ta_task *t = ta_async_check_in(L, ta_upengine(L), "Semaphore:acquire", TA_ASYNCIO);
  if (semaphore_busy(L, p)) return wait_turn(L, p, t, semaphore_park_k, semaphore_future_k);
  p->count--;
  return push_true(L);
}

/* release() of either kind, after its check: one more, handed to the
** first waiter that is not woken yet, if there is one. */
static int semaphore_give(lua_State *L, sync_prim *p) {
  p->count++;
  wake_waiters(L, p, 0, 1);
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

static int semaphore_locked(lua_State *L) {
  lua_pushboolean(L, semaphore_busy(L, check_semaphore(L, "Semaphore:locked")));
  return 1;
}

/* ---- making them ---- */

/* A new object of the class in the closure's upvalue, with no waiters. */
static sync_prim *new_prim(lua_State *L, int kind, lua_Integer count) {
  sync_prim *p = (sync_prim *)lua_newuserdatauv(L, sizeof(sync_prim), 2);
  p->tag = &kind_tags[kind];
  p->count = count;
  p->bound = count;
  p->head = 1;
  p->tail = 0;
  p->spare = NULL;
  p->has_spare = 0;
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

/* sync_state(obj) -> obj's count, its number of waiters (for __tostring);
** obj is of any of the four kinds. */
static int l_sync_state(lua_State *L) {
  sync_prim *p = check_kinds(L, LOCK, BOUNDED, "sync_state", "asyncio.Lock, Event or Semaphore");
  lua_pushinteger(L, p->count);
  lua_pushinteger(L, p->tail - p->head + 1);
  return 2;
}

/* sync_setup({Lock, Event, Semaphore, BoundedSemaphore}, get_running_loop)
** -> the four constructors: puts the methods above into the classes (the
** objects' metatables).  get_running_loop is asyncio's, which raises when
** no loop runs. */
static int l_sync_setup(lua_State *L) {
  static const struct {
    int kind;               /* its class: argument 1's [kind + 1] */
    const char *name;
    lua_CFunction f;
  } methods[] = {
    {LOCK, "acquire", lock_acquire}, {LOCK, "release", lock_release},
    {LOCK, "locked", lock_locked},
    {EVENT, "wait", event_wait}, {EVENT, "set", event_set},
    {EVENT, "is_set", event_is_set}, {EVENT, "clear", event_clear},
    {SEMAPHORE, "acquire", semaphore_acquire}, {SEMAPHORE, "release", semaphore_release},
    {SEMAPHORE, "locked", semaphore_locked},
    {BOUNDED, "acquire", semaphore_acquire}, {BOUNDED, "release", bounded_release},
    {BOUNDED, "locked", semaphore_locked},
  };
  static const lua_CFunction makers[NKINDS] = {lock_new, event_new, semaphore_new, bounded_new};
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  ta_push_future_await(L); /* 3 */
  for (int k = 0; k < NKINDS; k++) luaL_argcheck(L, lua_rawgeti(L, 1, k + 1) == LUA_TTABLE, 1, "classes expected");
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_pushcclosure(L, methods[i].f, 3);
    lua_setfield(L, 4 + methods[i].kind, methods[i].name);
  }
  for (int k = 0; k < NKINDS; k++) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 4 + k);
    lua_pushcclosure(L, makers[k], 2);
  }
  return NKINDS;
}

static const luaL_Reg sync_funcs[] = {
  {"sync_setup", l_sync_setup},
  {"sync_state", l_sync_state},
  {NULL, NULL}
};

int ta_open_sync(lua_State *L) {
  ta_register(L, sync_funcs);
  return 0;
}
