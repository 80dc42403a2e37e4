/*
** loop.c — the asyncio event loop: handles, the ready queue, timers,
** readers/writers, and the driver.
**
** One driver for both flavors: a loop runs only inside a Trio run, driven
** by a Trio task executing loop_drive.  The driver runs the ready batch
** (asyncio Task steps are handles too), and when nothing is ready it parks
** until call_soon wakes it or its next timer is due; while other Trio tasks
** are runnable, or I/O may be pending, it yields to the Trio scheduler
** between batches.  asyncio.run, the sync loop and trio_asyncio.open_loop
** differ only in who runs that driver task.
**
** The ready queue is a ring in one Lua table (it anchors the handles), a
** user value of the loop: a batch runs the entries queued when it starts,
** while what it schedules goes after them, to run in the next batch, as in
** asyncio.  The slots a batch empties serve the entries it adds, so that
** the queue takes no more room than what is queued at once.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio/asyncio.h"

#define LOOP_MT "trio_asyncio.Loop"
#define HANDLE_MT "trio_asyncio.Handle"

/* Seconds a callback may run before debug mode reports it (asyncio's). */
#define DEFAULT_SLOW_CALLBACK_DURATION 0.1

/* User values: the ready ring, attributes, the task factory. */
/* (UV_DRIVER: the task object of its last driver, so that lp->driver stays
** valid memory after that task exited: ta_loop_driven) */
enum { UV_READY = 1, UV_ATTRS = 2, UV_FACTORY = 3, UV_DRIVER = 4, LOOP_NUV = 4 };

/* The ready ring's first size (it doubles when full, never shrinks).
** Small: while a collection runs, a store into the ring makes the collector
** traverse its whole array again (in a chain of call_soon callbacks, W3,
** about once per callback: 16 slots cost 18 instructions more than 4). */
enum { READY_MIN_CAP = 4 };

/* A loop's reader and writer of one fd: a watcher in the engine's fd table
** (io/poll.c), which a Trio task waiting on the same fd shares. */
typedef struct ta_aiowatch {
  ta_fdwatcher w;               /* first */
  ta_loop *lp;
  int reader_ref, writer_ref;   /* handles, anchored in the registry */
  int pending;                  /* readiness not yet dispatched */
  struct ta_aiowatch *next_pending;
} aiowatch;

/* A loop is found from C through the weak registry (by its address). */
static ta_loop *checkloop(lua_State *L, int idx) {
  ta_engine *E = ta_upengine(L);
  void *p = lua_touserdata(L, idx);
  /* The loop whose callbacks run is alive (its driver holds it), so a full
  ** userdata at its address is that loop: no metatable to fetch. */
  if (p != NULL && p == E->running_loop && lua_type(L, idx) == LUA_TUSERDATA)
    return (ta_loop *)p;
  return (ta_loop *)ta_checkudata(L, E, idx, TA_MT_LOOP);
}

static void push_loop(lua_State *L, ta_loop *lp) {
  ta_push_weak(L, lp->E, lp->ref);
}

static ta_handle *checkhandle(lua_State *L, int idx) {
  return (ta_handle *)ta_checkudata(L, ta_upengine(L), idx, TA_MT_HANDLE);
}

static int check_open(lua_State *L, ta_loop *lp, const char *fname) {
  if (lp->closed) return ta_error(L, "RuntimeError", "%s: Event loop is closed", fname);
  return 0;
}

/* ---- the ready ring ----
** The oldest entry is in slot ready_head + 1 of the table, the others
** follow, wrapping around after slot ready_cap.  The table's array has
** ready_cap slots and only those are set (but for the one that makes it
** grow), so that queueing an entry allocates nothing else. */

/* The slot of the i-th entry (from 1, the oldest). */
static int ready_slot(const ta_loop *lp, int i) {
  return ((lp->ready_head + i - 1) & (lp->ready_cap - 1)) + 1;
}

/* A new, empty ring of cap slots for the loop at loopidx (no batch runs). */
static void ready_new(lua_State *L, ta_loop *lp, int loopidx, int cap) {
  lua_createtable(L, cap, 0);
  lua_setiuservalue(L, loopidx, UV_READY);
  lp->ready_head = lp->nready = lp->batch_left = 0;
  lp->ready_cap = lp->ready_room = cap;
  lp->step_slot = lp->nleases = 0;
  luaL_unref(L, LUA_REGISTRYINDEX, lp->lease_ref);
  lp->lease_ref = LUA_NOREF;
}

/* ---- sleeping Tasks anchored by the ring ----
** A Task in its own sleep (asyncio.sleep) must stay alive while its timer
** is in the heap.  When it goes to sleep during the step the ring runs,
** the slot it left for that step anchors it, if no entry took the slot
** meanwhile: a lease, its timer's ref being LEASE_REF(slot), instead of a
** registry reference.  A burst of Tasks that all sleep (W7: 100,000) then
** takes no registry slot each: the ring's array, as long as the burst and
** empty now, holds them.  When the ring needs a leased slot again for an
** entry (ready_ring, take_slot), the Task it holds moves on to another free slot, or
** else to the registry.  Free slots hold nothing else but the placeholders
** of a growth (false).  While some Tasks hold leases the loop has a
** registry reference, as when they hold registry references themselves
** (each keeps its loop alive): a loop dropped while its Tasks sleep stays
** alive with them until it is closed, rather than being collected with
** them, unreported. */
#define LEASE_REF(slot) (LUA_NOREF - (slot))
#define LEASED_SLOT(ref) (LUA_NOREF - (ref))
#define IS_LEASE(ref) ((ref) < LUA_NOREF)

static void lease_added(lua_State *L, ta_loop *lp, int loopidx) {
  if (lp->nleases++ == 0) {
    lua_pushvalue(L, loopidx);
    lp->lease_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lp->ready_room = 0; /* queueing takes the slow path, which takes slots back */
  }
}

static void lease_removed(lua_State *L, ta_loop *lp) {
  if (--lp->nleases == 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, lp->lease_ref);
    lp->lease_ref = LUA_NOREF;
    lp->ready_room = lp->ready_cap;
  }
}

static int slot_free(const ta_loop *lp, int slot) {
  return ((slot - 1 - lp->ready_head) & (lp->ready_cap - 1)) >= lp->nready;
}

/* The free slot `slot` of the ring at ring (a stack index) is about to
** get an entry: a Task it anchors moves to the free slot just behind the
** head if that one is empty (the last the queue will reach again: a burst
** of wake-ups and their callbacks passing over the leases of the Tasks
** still asleep moves them along, instead of growing the registry), else
** to the registry. */
static void take_slot(lua_State *L, ta_loop *lp, int ring, int slot) {
  int behind = ready_slot(lp, 0), move = 0;
  ta_timer *tm;
  if (lua_rawgeti(L, ring, slot) != LUA_TUSERDATA) {
    lua_pop(L, 1);
    return;
  }
  tm = &ta_future_task((ta_future *)lua_touserdata(L, -1))->timer;
  if (behind != slot && slot_free(lp, behind)) {
    move = lua_rawgeti(L, ring, behind) == LUA_TNIL;
    lua_pop(L, 1);
  }
  if (move) {
    lua_rawseti(L, ring, behind);
    tm->ref = LEASE_REF(behind);
  } else {
    tm->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lease_removed(L, lp);
  }
}

/* The Task on top of the stack, going to its own sleep during its step,
** leases the slot it left for that step if the slot is still free and
** empty (a Task that lost its slot meanwhile may have moved there):
** returns the lease (the Task popped), else LUA_NOREF (the Task left
** there). */
int ta_loop_lease(lua_State *L, ta_loop *lp) {
  int slot = lp->step_slot;
  if (slot == 0 || !slot_free(lp, slot)) return LUA_NOREF;
  push_loop(L, lp);
  lua_getiuservalue(L, -1, UV_READY);
  if (lua_rawgeti(L, -1, slot) != LUA_TNIL) {
    lua_pop(L, 3);
    return LUA_NOREF;
  }
  lua_pop(L, 1);
  lease_added(L, lp, -2);
  lua_pushvalue(L, -3);
  lua_rawseti(L, -2, slot);
  lua_pop(L, 3);
  lp->step_slot = 0;
  return LEASE_REF(slot);
}

/* Drops the anchor of the Task sleeping on tm (its lease, or its registry
** reference); with push, pushes the Task first.  The loop object is at
** loopidx (0: looked up; a loop being collected has no ring to clear). */
void ta_loop_drop_anchor(lua_State *L, ta_loop *lp, ta_timer *tm, int loopidx, int push) {
  if (!IS_LEASE(tm->ref)) {
    if (push) lua_rawgeti(L, LUA_REGISTRYINDEX, tm->ref);
    luaL_unref(L, LUA_REGISTRYINDEX, tm->ref);
  } else {
    int slot = LEASED_SLOT(tm->ref);
    if (loopidx) lua_pushvalue(L, loopidx);
    else push_loop(L, lp);
    if (!lua_isnil(L, -1)) {
      lua_getiuservalue(L, -1, UV_READY);
      lua_replace(L, -2);
      if (push) {
        lua_rawgeti(L, -1, slot);
        lua_insert(L, -2);
      }
      lua_pushnil(L);
      lua_rawseti(L, -2, slot);
    }
    lua_pop(L, 1);
    lease_removed(L, lp);
  }
  tm->ref = LUA_NOREF;
}

/* Makes room for n (1 or 2) more entries in the full ring of the loop at
** loopidx by doubling its table in place: with a value in each of its
** slots and one more just past them, Lua's resize of the table makes its
** array twice as long (more than half of it in use).  The free slots get
** a placeholder for that, which the entries being queued overwrite.  The
** entries that had wrapped around to the front then move after the others.
** Raises, the queue unchanged, for want of memory. */
static void ready_grow(lua_State *L, ta_loop *lp, int loopidx) {
  int cap = lp->ready_cap, ring;
  lua_getiuservalue(L, loopidx, UV_READY);
  ring = lua_gettop(L);
  lp->step_slot = 0; /* (slots move) */
  for (int i = lp->nready + 1; i <= cap; i++) {
    if (lp->nleases > 0) take_slot(L, lp, ring, ready_slot(lp, i));
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, ready_slot(lp, i));
  }
  lua_pushboolean(L, 0);
  lua_rawseti(L, -2, cap + 1); /* the resize */
  for (int i = 1; i <= lp->ready_head; i++) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -2, cap + i);
    lua_pushnil(L);
    lua_rawseti(L, -2, i);
  }
  lua_pop(L, 1);
  lp->ready_cap = 2 * cap;
  if (lp->nleases == 0) lp->ready_room = lp->ready_cap;
}

/* The ring on top of the stack is about to get n more entries: the
** sleeping Tasks their slots hold move (take_slot). */
static void take_slots(lua_State *L, ta_loop *lp, int n) {
  int ring = lua_gettop(L);
  for (int i = 1; i <= n; i++) take_slot(L, lp, ring, ready_slot(lp, lp->nready + i));
}

/* ready_ring's slow path: the ring is full, or has leases. */
static void ready_make_room(lua_State *L, ta_loop *lp, int loopidx, int n) {
  if (lp->nready + n > lp->ready_cap) ready_grow(L, lp, loopidx); /* once is enough */
  lua_getiuservalue(L, loopidx, UV_READY);
  if (lp->nleases > 0) take_slots(L, lp, n);
}

/* Pushes the ring of the loop at loopidx, with room for n (1 or 2) more
** entries. */
static inline void ready_ring(lua_State *L, ta_loop *lp, int loopidx, int n) {
  if (lp->nready + n > lp->ready_room) ready_make_room(L, lp, loopidx, n);
  else lua_getiuservalue(L, loopidx, UV_READY);
}

/* The n values from stack index first on (left there) join the ready
** queue of the loop at loopidx, as one entry (n = 1) or a callback and its
** argument (n = 2); the ring is left on top. */
static inline void ready_put(lua_State *L, ta_loop *lp, int loopidx, int first, int n) {
  ready_ring(L, lp, loopidx, n);
  if (first < 0) first--; /* (the ring is above it now) */
  lua_pushvalue(L, first);
  lua_rawseti(L, -2, ready_slot(lp, ++lp->nready));
  if (n == 2) {
    lua_pushvalue(L, first + 1);
    lua_rawseti(L, -2, ready_slot(lp, ++lp->nready));
  }
}

/* The same with the top n values (popped). */
void ta_loop_ready_push(lua_State *L, ta_loop *lp, int loopidx, int n) {
  ready_put(L, lp, loopidx, -n, n);
  lua_pop(L, n + 1);
}

/* ---- handles ---- */

/* A timer handle is due: it joins the ready queue (the loop is at
** lp->loop_idx while timers fire). */
static void timer_fired(lua_State *L, ta_engine *E, ta_timer *tm) {
  ta_handle *h = (ta_handle *)((char *)tm - offsetof(ta_handle, timer));
  ta_loop *lp = h->loop;
  (void)E;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->timer.ref);
  luaL_unref(L, LUA_REGISTRYINDEX, h->timer.ref);
  h->timer.ref = LUA_NOREF;
  ta_loop_ready_push(L, lp, lp->loop_idx, 1);
}

/* For the other timers of the loop's heap (an asyncio Task's own sleep):
** the value on top (popped) joins the ready queue. */
void ta_loop_ready_from_timer(lua_State *L, ta_loop *lp) {
  ta_loop_ready_push(L, lp, lp->loop_idx, 1);
}

/* Puts tm in the loop's timer heap, due in delay seconds; nonzero when
** out of memory.  Its callback runs from the loop as a handle's would. */
int ta_loop_arm_timer(ta_loop *lp, ta_timer *tm, double delay) {
  tm->when = ta_now(lp->E) + delay;
  if (ta_heap_push(&lp->timers, tm) != 0) return -1;
  ta_loop_wake(lp);
  return 0;
}

/* A handle for [cb, args...] (the nvals values from base on, left
** there); pushed.  A timer handle (is_timer) gets the timer fields, which
** the others lack. */
static ta_handle *new_handle(lua_State *L, ta_loop *lp, int base, int nvals, int is_timer) {
  ta_handle *h = (ta_handle *)lua_newuserdatauv(L, is_timer ? sizeof *h : TA_SOON_HANDLE_SIZE,
                                                nvals);
  h->kind = TA_KIND_HANDLE;
  h->loop = lp;
  h->nargs = nvals - 1;
  h->cancelled = 0;
  h->is_timer = (unsigned char)is_timer;
  if (is_timer) ta_timer_init(&h->timer, timer_fired);
  ta_setmetatable(L, lp->E, TA_MT_HANDLE);
  for (int i = 0; i < nvals; i++) {
    lua_pushvalue(L, base + i);
    lua_setiuservalue(L, -2, i + 1);
  }
  return h;
}

/* The ready queue holds four kinds of entries: a Handle, a Task (to be
** stepped), a function followed by its one argument (a done callback
** and its future: no Handle is made unless the callback fails), or the
** loop as a light userdata, standing for the callbacks of the waits on io
** objects that were woken before the batch began (iowait.c: one entry for
** all of them, called in order when the batch reaches it). */

/* Schedules the Task just below the loop object on top (both popped). */
static inline void append_below(lua_State *L, ta_loop *lp) {
  ready_put(L, lp, -1, -2, 1);
  lua_pop(L, 3);
  ta_loop_wake(lp);
}

void ta_loop_append_below(lua_State *L, ta_loop *lp) {
  append_below(L, lp);
}

/* Schedules the Task on top of the stack (popped). */
void ta_loop_append(lua_State *L, ta_loop *lp) {
  push_loop(L, lp);
  append_below(L, lp);
}

/* The same, the loop object being at loopidx (no lookup). */
void ta_loop_append_to(lua_State *L, ta_loop *lp, int loopidx) {
  ta_loop_ready_push(L, lp, loopidx, 1);
  ta_loop_wake(lp);
}

/* call_soon from C: the top nargs values are the arguments, after cb or,
** when cb is NULL, after the callback below them (all popped). */
void ta_loop_call_soon(lua_State *L, ta_loop *lp, lua_CFunction cb, int nargs) {
  if (cb == NULL && nargs == 1 && lua_type(L, -2) == LUA_TFUNCTION) {
    push_loop(L, lp);
    ready_put(L, lp, -1, -3, 2);
    lua_pop(L, 4);
    ta_loop_wake(lp);
    return;
  }
  if (cb != NULL) {
    lua_pushcfunction(L, cb);
    lua_insert(L, -nargs - 1);
  }
  new_handle(L, lp, lua_gettop(L) - nargs, nargs + 1, 0);
  lua_replace(L, -nargs - 2);
  lua_pop(L, nargs);
  ta_loop_append(L, lp);
}

/* Debug mode: a callback that blocked the loop too long is reported. */
static void report_slow(lua_State *L, ta_loop *lp, int hidx, uint64_t start) {
  double took = (double)(uv_hrtime() - start) / 1e9;
  if (took < lp->slow_callback_duration) return;
  lua_writestringerror("asyncio: Executing %s ", ta_tostring(L, hidx));
  lua_writestringerror("took %s seconds\n", lua_pushfstring(L, "%f", took));
  lua_pop(L, 2);
}

/* Calls loop:call_exception_handler(context) (defined by asyncio.lua). */
void ta_loop_exception(lua_State *L, ta_loop *lp, int ctxidx) {
  ctxidx = lua_absindex(L, ctxidx);
  push_loop(L, lp);
  if (lua_isnil(L, -1) || luaL_getmetafield(L, -1, "__index") != LUA_TTABLE) {
    lua_settop(L, ctxidx);
    return;
  }
  lua_getfield(L, -1, "call_exception_handler");
  lua_replace(L, -2);
  lua_insert(L, -2);
  lua_pushvalue(L, ctxidx);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    lua_writestringerror("asyncio: exception handler failed: %s\n", ta_tostring(L, -1));
    lua_pop(L, 2);
  }
}

static void timer_remove(lua_State *L, ta_handle *h) {
  if (h->loop != NULL && h->timer.index >= 0) ta_heap_remove(&h->loop->timers, &h->timer);
  luaL_unref(L, LUA_REGISTRYINDEX, h->timer.ref);
  h->timer.ref = LUA_NOREF;
}

void ta_handle_cancel(lua_State *L, ta_handle *h) {
  if (!h->cancelled) {
    h->cancelled = 1;
    if (h->is_timer) timer_remove(L, h);
  }
}

static int handle_cancel(lua_State *L) {
  ta_handle_cancel(L, checkhandle(L, 1));
  return 0;
}

static int handle_cancelled(lua_State *L) {
  lua_pushboolean(L, checkhandle(L, 1)->cancelled);
  return 1;
}

static int handle_when(lua_State *L) {
  ta_handle *h = checkhandle(L, 1);
  if (!h->is_timer) return 0;
  lua_pushnumber(L, h->timer.when);
  return 1;
}

static int handle_tostring(lua_State *L) {
  ta_handle *h = checkhandle(L, 1);
  lua_pushfstring(L, "%s (%p%s)", h->is_timer ? "TimerHandle" : "Handle", (void *)h,
                  h->cancelled ? ", cancelled" : "");
  return 1;
}

/* ---- the loop's Lua methods ---- */

static int l_call_soon(lua_State *L) {
  ta_loop *lp = checkloop(L, 1);
  int nvals = lua_gettop(L) - 1;
  if (lua_type(L, 2) != LUA_TFUNCTION) ta_check_callable(L, 2);
  check_open(L, lp, "call_soon");
  ready_ring(L, lp, 1, 1);
  new_handle(L, lp, 2, nvals, 0); /* above the ring: returned */
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, ready_slot(lp, ++lp->nready));
  ta_loop_wake(lp);
  return 1;
}

/* Puts the handle h (on top of the stack, left there) in the timer heap. */
static void schedule_timer(lua_State *L, ta_loop *lp, ta_handle *h, double when) {
  h->timer.when = when;
  if (ta_heap_push(&lp->timers, &h->timer) != 0) luaL_error(L, "not enough memory");
  lua_pushvalue(L, -1);
  h->timer.ref = luaL_ref(L, LUA_REGISTRYINDEX);
  ta_loop_wake(lp);
}

static int call_at(lua_State *L, ta_loop *lp, double when, const char *fname) {
  ta_check_callable(L, 3);
  check_open(L, lp, fname);
  schedule_timer(L, lp, new_handle(L, lp, 3, lua_gettop(L) - 2, 1), when);
  return 1;
}

static double check_delay(lua_State *L, int idx) {
  double d = luaL_checknumber(L, idx);
  luaL_argcheck(L, d == d, idx, "delay must not be NaN");
  return d;
}

static int l_call_later(lua_State *L) {
  ta_loop *lp = checkloop(L, 1);
  /* a negative delay is a time already past, as in asyncio: it runs at
  ** the next iteration, in the order of the times */
  return call_at(L, lp, ta_now(lp->E) + check_delay(L, 2), "call_later");
}

static int l_call_at(lua_State *L) {
  ta_loop *lp = checkloop(L, 1);
  return call_at(L, lp, check_delay(L, 2), "call_at");
}

static int l_time(lua_State *L) {
  lua_pushnumber(L, ta_now(checkloop(L, 1)->E));
  return 1;
}

static int l_is_closed(lua_State *L) {
  lua_pushboolean(L, checkloop(L, 1)->closed);
  return 1;
}

/* Pushes the Lua-side state table of the loop at idx (lua/asyncio/loop_state.lua). */
void ta_loop_push_attrs(lua_State *L, int idx) {
  lua_getiuservalue(L, idx, UV_ATTRS);
}

static int l_attrs(lua_State *L) {
  checkloop(L, 1);
  ta_loop_push_attrs(L, 1);
  return 1;
}

/* ---- readers and writers ---- */

/* Inside libuv's callback: no Lua; the loop dispatches at its next batch. */
static void on_ready(ta_fdwatcher *fw, int events) {
  aiowatch *w = (aiowatch *)fw;
  ta_loop *lp = w->lp;
  if (w->pending == 0) {
    w->next_pending = lp->pending_io;
    lp->pending_io = w;
  }
  w->pending |= events;
  ta_loop_wake(lp);
}

static void unpend(ta_loop *lp, aiowatch *w) {
  aiowatch **p = &lp->pending_io;
  while (*p && *p != w) p = &(*p)->next_pending;
  if (*p) *p = w->next_pending;
  w->pending = 0;
}

static void release_watch(lua_State *L, ta_loop *lp, aiowatch *w) {
  if (L != NULL) {
    luaL_unref(L, LUA_REGISTRYINDEX, w->reader_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, w->writer_ref);
  }
  unpend(lp, w);
  lp->fdw[w->w.fd] = NULL;
  ta_fd_unwatch(lp->E, &w->w);
  free(w);
}

static void update_watch(lua_State *L, ta_loop *lp, aiowatch *w) {
  w->w.events = (w->reader_ref != LUA_NOREF ? UV_READABLE : 0) |
                (w->writer_ref != LUA_NOREF ? UV_WRITABLE : 0);
  if (w->w.events == 0) release_watch(L, lp, w);
  else ta_fd_update(lp->E, &w->w);
}

/* Lets go of a reader's or writer's Handle (at *ref, if any) and cancels
** it, as asyncio's remove_reader does: if the fd was ready, the Handle may
** already wait in the ready queue, and must not run. */
static void drop_watch_handle(lua_State *L, int *ref) {
  if (*ref == LUA_NOREF) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, *ref);
  ((ta_handle *)lua_touserdata(L, -1))->cancelled = 1;
  lua_pop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, *ref);
  *ref = LUA_NOREF;
}

static int add_watch(lua_State *L, int writing) {
  ta_loop *lp = checkloop(L, 1);
  const char *fname = writing ? "add_writer" : "add_reader";
  int fd = ta_check_fd(L, 2, fname);
  aiowatch *w;
  ta_check_callable(L, 3);
  check_open(L, lp, fname);
  if (fd >= lp->nfdw) {
    int n = lp->nfdw ? lp->nfdw : 16;
    aiowatch **a;
    while (n <= fd) n *= 2;
    a = (aiowatch **)realloc(lp->fdw, (size_t)n * sizeof *a);
    if (a == NULL) return luaL_error(L, "%s: not enough memory", fname);
    for (int i = lp->nfdw; i < n; i++) a[i] = NULL;
    lp->fdw = a;
    lp->nfdw = n;
  }
  w = lp->fdw[fd];
  if (w == NULL) {
    int rc;
    w = (aiowatch *)calloc(1, sizeof *w);
    if (w == NULL) return luaL_error(L, "%s: not enough memory", fname);
    w->w.fd = fd;
    w->w.events = writing ? UV_WRITABLE : UV_READABLE;
    w->w.ready = on_ready;
    w->lp = lp;
    w->reader_ref = w->writer_ref = LUA_NOREF;
    if ((rc = ta_fd_watch(lp->E, &w->w)) != 0) {
      free(w);
      return ta_oserror(L, rc, NULL, "%s: cannot watch fd %d", fname, fd);
    }
    lp->fdw[fd] = w;
  }
  new_handle(L, lp, 3, lua_gettop(L) - 2, 0); /* [cb, args...] after the fd */
  if (writing) {
    drop_watch_handle(L, &w->writer_ref);
    w->writer_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  } else {
    drop_watch_handle(L, &w->reader_ref);
    w->reader_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  update_watch(L, lp, w);
  return 0;
}

static int remove_watch(lua_State *L, int writing) {
  ta_loop *lp = checkloop(L, 1);
  int fd = ta_check_fd(L, 2, writing ? "remove_writer" : "remove_reader");
  aiowatch *w = fd < lp->nfdw ? lp->fdw[fd] : NULL;
  int *ref;
  if (w == NULL) return lua_pushboolean(L, 0), 1;
  ref = writing ? &w->writer_ref : &w->reader_ref;
  lua_pushboolean(L, *ref != LUA_NOREF);
  drop_watch_handle(L, ref);
  update_watch(L, lp, w);
  return 1;
}

static int l_add_reader(lua_State *L) { return add_watch(L, 0); }
static int l_add_writer(lua_State *L) { return add_watch(L, 1); }
static int l_remove_reader(lua_State *L) { return remove_watch(L, 0); }
static int l_remove_writer(lua_State *L) { return remove_watch(L, 1); }

/* ---- running ---- */

void ta_loop_wake_parked(ta_loop *lp) {
  ta_task *d = lp->driver;
  /* (driver_parked may still be set when its timer woke it already) */
  if (d == NULL || d->state != TA_PARKED) return;
  lp->driver_parked = 0;
  ta_heap_remove(&lp->E->timers, &d->timer);
  ta_reschedule(d, 0, 0);
}

static void dispatch_io(lua_State *L, ta_loop *lp, int loopidx) {
  if (lp->posted != NULL && ta_loop_take_posted(lp)) {
    lua_pushlightuserdata(L, lp);
    ta_loop_ready_push(L, lp, loopidx, 1);
  }
  while (lp->pending_io != NULL) {
    aiowatch *w = lp->pending_io;
    int ev = w->pending;
    lp->pending_io = w->next_pending;
    w->pending = 0;
    if ((ev & UV_READABLE) && w->reader_ref != LUA_NOREF) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, w->reader_ref);
      ta_loop_ready_push(L, lp, loopidx, 1);
    }
    if ((ev & UV_WRITABLE) && w->writer_ref != LUA_NOREF) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, w->writer_ref);
      ta_loop_ready_push(L, lp, loopidx, 1);
    }
  }
}

static void fire_due(lua_State *L, ta_loop *lp, int loopidx) {
  double now;
  ta_timer *tm;
  if (lp->timers.n == 0) return; /* no clock read needed */
  now = ta_now(lp->E);
  lp->loop_idx = loopidx;
  while ((tm = ta_heap_top(&lp->timers)) != NULL && tm->when <= now) {
    ta_heap_remove(&lp->timers, tm);
    tm->cb(L, lp->E, tm);
  }
}

/* The driver runs the loop in one protected call, which yields between
** turns (drive_batches), rather than one protected call per callback: a
** callback is called unprotected.  A batch is the entries at the head of
** the ring when it begins (batch_left of them still to run); an entry
** stays there while its callback runs, and leaves the ring after.  When a
** callback raises, the protected call ends there; the driver reports the
** error with the entry's handle (callback_failed, which finds the entry at
** the head) and a new protected call goes on with the rest of the batch.
** Its stack: */
enum {
  SLOT_LOOP = 1,
  SLOT_RING = 2,  /* the ready ring (it grows in place; only loop_close
                  ** replaces it, and then no batch runs any more) */
  SLOT_ENTRY = 3  /* the entry being run (a done callback: then its future,
                  ** both taken by the call but in debug mode) */
};

/* What follows a batch: another one in this turn, or the driver lets go
** of the loop, yields or parks. */
enum { TURN_AGAIN, TURN_STOP, TURN_YIELD, TURN_PARK };

/* The batch's n oldest entries leave the ring at ring (a stack index). */
static void batch_drop(lua_State *L, ta_loop *lp, int ring, int n) {
  for (; n > 0; n--) {
    int slot = ready_slot(lp, 1);
    lua_pushnil(L);
    lua_rawseti(L, ring, slot);
    lp->ready_head = slot & (lp->ready_cap - 1);
    lp->nready--;
    lp->batch_left--;
  }
}

/* Calls the callback below its nargs arguments on top of the stack, for
** the entry at the head of the ring: an error ends the protected call. */
static void call_entry(lua_State *L, ta_loop *lp, int nargs) {
  lp->calling = 1;
  lua_call(L, nargs, 0);
  lp->calling = 0;
}

static void run_handle(lua_State *L, ta_loop *lp, ta_handle *h) {
  int n = h->nargs + 1;
  /* a C function has LUA_MINSTACK free slots: room for a few values */
  if (n > 8) luaL_checkstack(L, n, "too many callback arguments");
  for (int i = 1; i <= n; i++) lua_getiuservalue(L, SLOT_ENTRY, i);
  call_entry(L, lp, h->nargs);
}

/* The entry of the woken io waits: their callbacks, in order (each one
** the current record while it runs: callback_failed finds it).  A
** transport's read wait is called directly (no Lua call of its C
** function: ta_loop_run_read_wakes). */
static void run_posted(lua_State *L, ta_loop *lp) {
  int top = lua_gettop(L);
  luaL_checkstack(L, 2 + TA_READ_WAKE_STACK, NULL);
  for (;;) {
    int fn = top + 1;
    ta_loop_run_read_wakes(L, lp, top);
    if (lp->closed || !ta_loop_next_posted(L, lp)) return; /* its fn and arg pushed */
    if (lp->debug) { /* (a copy of fn under them, for report_slow) */
      lua_pushvalue(L, fn);
      lua_insert(L, fn++);
      lp->call_start = uv_hrtime();
    }
    call_entry(L, lp, 1);
    ta_loop_posted_done(L, lp, 0);
    if (lp->debug) {
      report_slow(L, lp, fn - 1, lp->call_start);
      lua_pop(L, 1);
    }
  }
}

/* A new batch: due I/O and timers join the ready queue, whose entries
** become the batch; what the batch schedules goes after them. */
static void begin_batch(lua_State *L, ta_loop *lp) {
  if (lp->io_done != NULL) ta_aio_io_dispatch(L, lp); /* completed requests settle futures */
  if (lp->posted != NULL || lp->pending_io != NULL) dispatch_io(L, lp, SLOT_LOOP);
  fire_due(L, lp, SLOT_LOOP);
  lp->batch_left = lp->nready;
}

/* With many entries ready, their memory is cold: W2 with 10,000 asyncio
** pairs (bench/w2_pairs.lua) steps every Task once a batch, and a step
** walks a chain of dependent misses (the Task, its thread, its CallInfos,
** its function's frame, the closure, the upvalues, the queues, the Task it
** wakes).  As the engine's batch loop does (run.c: prefetch_ahead), the
** driver asks for that memory ahead of time, after each entry it ran,
** while the ring holds at least PREFETCH_MIN entries (the pairs' memory
** then outgrows the caches; at 1,000 pairs the prefetches cost 14%): for
** the Task AHEAD entries after the head, the LINES_BEFORE_THREAD lines
** before its thread and LINES_FROM_THREAD from it, every other one.  The
** objects of the Tasks made together lie there: for W2's pairs, 2.4 KB
** before the client's thread its queues, then the server's closure,
** upvalues, Task and thread; after the server's, its stack, then the
** client's.  The prefetches are issued from a loop, not unrolled: 32 of
** them back to back kept almost none of the gain (the core likely drops
** software prefetches it has no miss buffer for).  Measured: see
** ARCHITECTURE.md, "Locality at scale". */
enum { PREFETCH_MIN = 4096, AHEAD = 4, LINES_BEFORE_THREAD = 40, LINES_FROM_THREAD = 24 };

/* Cold: out of the hot code, whose layout stays as it was for small rings
** (inlined, W2 with one pair ran 4-6% slower for the same instructions). */
__attribute__((cold, noinline)) static void prefetch_ahead(lua_State *L, const ta_loop *lp) {
  const ta_future *f = NULL;
  /* a Task is a userdata of TA_AIOTASK_SIZE bytes whose first byte says so
  ** (the other entries: Handles, plain Futures and Trio tasks, of other
  ** sizes, functions and their arguments, the loop as a light userdata) */
  if (lua_rawgeti(L, SLOT_RING, ready_slot(lp, AHEAD + 1)) == LUA_TUSERDATA &&
      lua_rawlen(L, -1) == TA_AIOTASK_SIZE)
    f = (const ta_future *)lua_touserdata(L, -1);
  lua_pop(L, 1); /* (the ring anchors it) */
  if (f != NULL && f->kind == TA_KIND_TASK && ta_future_task(f)->co != NULL) {
    uintptr_t co = (uintptr_t)ta_future_task(f)->co; /* (lines outside it: no pointer arithmetic) */
#pragma GCC unroll 1
    for (int k = -LINES_BEFORE_THREAD; k < LINES_FROM_THREAD; k += 2)
      __builtin_prefetch((const void *)(co + 64 * k));
  }
}

/* Runs the entry at the head of the ring, then takes it out (after the
** call: a failed entry is still there for callback_failed).  A Task to
** step leaves first: its step reports its own errors, and one that ends
** the driver must not run it twice. */
static void run_entry(lua_State *L, ta_loop *lp) {
  int n = 1; /* slots it takes */
  int type = lua_rawgeti(L, SLOT_RING, ready_slot(lp, 1));
  if (type == LUA_TLIGHTUSERDATA) { /* the woken io waits */
    run_posted(L, lp);
    if (!lp->closed) batch_drop(L, lp, SLOT_RING, 1);
    lua_settop(L, SLOT_RING);
    return;
  }
  if (lp->debug) lp->call_start = uv_hrtime();
  if (type == LUA_TFUNCTION) { /* a done callback and its future */
    n = 2;
    lua_rawgeti(L, SLOT_RING, ready_slot(lp, 2));
    if (lp->debug) { /* (report_slow names the callback after the call) */
      lua_pushvalue(L, SLOT_ENTRY);
      lua_pushvalue(L, SLOT_ENTRY + 1);
    }
    call_entry(L, lp, 1);
  } else {
    ta_handle *h = (ta_handle *)lua_touserdata(L, SLOT_ENTRY); /* or a Task: the kind tells */
    if (h->kind == TA_KIND_TASK) {
      int slot = ready_slot(lp, 1);
      batch_drop(L, lp, SLOT_RING, 1);
      n = 0;
      lp->step_slot = slot; /* for a lease (ta_loop_lease) */
      ta_aio_task_run(L, (ta_future *)h, SLOT_ENTRY);
      lp->step_slot = 0;
    } else if (!h->cancelled) {
      run_handle(L, lp, h);
    }
  }
  /* (loop_close emptied the ring, and the batch, if it ran meanwhile) */
  if (!lp->closed) batch_drop(L, lp, SLOT_RING, n);
  if (lp->debug) report_slow(L, lp, SLOT_ENTRY, lp->call_start);
  if (__builtin_expect(lp->nready >= PREFETCH_MIN, 0) && !lp->closed) prefetch_ahead(L, lp);
  lua_settop(L, SLOT_RING);
}

/* While run_entry steps a Task of lp, the driver's thread D (L itself, or
** suspended in lua_resume under the Task's own thread) is in the frame of
** drive_batches, which holds the loop object and the ready ring: a cheaper
** way to reach them than the loop's weak id.  (That frame has room for
** LUA_MINSTACK values, of which it uses a few.) */
static lua_State *step_frame(ta_loop *lp) {
  return lp->driver->co;
}

/* Pushes the object of lp, one of whose Tasks is being stepped. */
void ta_loop_push_in_step(lua_State *L, ta_loop *lp) {
  lua_State *D = step_frame(lp);
  lua_pushvalue(D, SLOT_LOOP);
  if (D != L) lua_xmove(D, L, 1);
}

/* Schedules the Task on top of L (popped) while one of lp's Tasks is
** being stepped: straight into the ring of the driver's frame, which is
** the loop's until the loop is closed (loop_close makes a new one). */
void ta_loop_append_in_step(lua_State *L, ta_loop *lp) {
  lua_State *D = step_frame(lp);
  if (lp->nready + 1 > lp->ready_room || lp->closed) { /* the slow path */
    if (D == L) ta_loop_append_to(L, lp, SLOT_LOOP);
    else ta_loop_append(L, lp);
    return;
  }
  if (D != L) lua_xmove(L, D, 1);
  lua_rawseti(D, SLOT_RING, ready_slot(lp, ++lp->nready));
  ta_loop_wake(lp);
}

/* After a batch: the next one, or what the driver does now. */
static int after_batch(ta_loop *lp) {
  ta_engine *E = lp->E;
  if (lp->closing || lp->closed) return TURN_STOP;
  if (lp->pausing) { /* loop.stop() on a sync loop: hand back control */
    lp->pausing = 0;
    return TURN_YIELD;
  }
  if (lp->nready > 0 || lp->pending_io != NULL || lp->posted != NULL || lp->io_done != NULL) {
    /* More to do: go on unless Trio tasks wait or I/O should be polled
    ** (a millisecond after the last poll, by the cheap clock). */
    if (E->nrunq > 0 || E->io_waiters > 0 || lp->nfdw > 0 ||
        (int64_t)(ta_coarse_ns() - E->last_poll_ns) >= (int64_t)E->poll_interval_ns)
      return TURN_YIELD;
    return TURN_AGAIN;
  }
  if (lp->timers.n > 0 && ta_heap_top(&lp->timers)->when <= ta_now(E)) return TURN_AGAIN;
  return TURN_PARK;
}

/* The callback of the entry at the head of the ring raised the error on
** top of the stack (the loop at 1): the entry leaves the ring, and the
** exception handler gets the error with the entry's Handle (made now for
** a done callback and its future, or an io wait's callback, whose entry
** stays for the callbacks after it; none when the callback closed the
** loop, which dropped the entry with the ring). */
static void callback_failed(lua_State *L, ta_loop *lp) {
  enum { ERR = SLOT_LOOP + 1, RING, ENTRY }; /* the stack from the error on */
  lp->calling = 0;
  lua_getiuservalue(L, SLOT_LOOP, UV_READY);
  if (ta_loop_posted_done(L, lp, 1)) { /* an io wait's fn and arg: their entry stays */
    if (ta_transport_read_failed(L, ENTRY, ERR)) { /* reported by its transport */
      lua_settop(L, SLOT_LOOP);
      return;
    }
    if (lp->closed) {
      lua_settop(L, RING);
      lua_pushnil(L);
    } else {
      new_handle(L, lp, ENTRY, 2, 0);
    }
  } else if (lp->closed) {
    lua_pushnil(L);
  } else if (lua_rawgeti(L, RING, ready_slot(lp, 1)) == LUA_TFUNCTION) {
    lua_rawgeti(L, RING, ready_slot(lp, 2));
    batch_drop(L, lp, RING, 2);
    new_handle(L, lp, ENTRY, 2, 0);
  } else {
    batch_drop(L, lp, RING, 1);
  }
  lua_createtable(L, 0, 3);
  lua_pushliteral(L, "Exception in callback");
  lua_setfield(L, -2, "message");
  lua_pushvalue(L, ERR);
  lua_setfield(L, -2, "exception");
  lua_pushvalue(L, -2); /* the handle */
  lua_setfield(L, -2, "handle");
  ta_loop_exception(L, lp, lua_gettop(L));
  if (lp->debug) report_slow(L, lp, ENTRY, lp->call_start);
  lua_settop(L, SLOT_LOOP);
}

/* The driver lets go of the loop (at 1 on L): it returns, or its
** cancellation ends it.  (A driver that dies otherwise keeps its task
** object in the loop's user value: ta_loop_driven.) */
static void driver_lets_go(lua_State *L, ta_loop *lp) {
  lp->driver = NULL;
  lp->closing = 0;
  lua_pushnil(L);
  lua_setiuservalue(L, 1, UV_DRIVER);
}

static int drive_abort(lua_State *L, ta_task *t) {
  ta_loop *lp = (ta_loop *)t->wait;
  (void)L;
  lp->driver_parked = 0;
  ta_heap_remove(&t->E->timers, &t->timer);
  return TA_ABORT_SUCCEEDED;
}

static int drive_batches(lua_State *L, int status, lua_KContext ctx);

/* Ends a turn: yield with drive_batches as continuation, either runnable
** (a schedule point) or parked until woken (or the next timer, or
** cancellation). */
static int drive_yield(lua_State *L, ta_loop *lp, int park) {
  ta_task *t = lp->driver;
  lp->E->running_loop = lp->outer_loop;
  t->trap = 1;
  if (!park) {
    t->state = TA_RUNNABLE;
    ta_runq_push(lp->E, t);
  } else {
    ta_timer *next = ta_heap_top(&lp->timers);
    t->state = TA_PARKED;
    t->abort = drive_abort;
    t->wait = lp;
    lp->driver_parked = 1;
    if (next != NULL) {
      t->timer.when = next->when;
      if (ta_heap_push(&lp->E->timers, &t->timer) != 0) luaL_error(L, "not enough memory");
    }
    if (t->status->cancelled) ta_cancel_on_yield(t);
  }
  return lua_yieldk(L, 0, (lua_KContext)lp, drive_batches);
}

/* The driver's protected call (l_drive_batches, the loop at 1), and its
** continuation after each yield: a turn, batch after batch (the rest of a
** batch first, after a callback failed; at least one, even when asked to
** stop already), until it yields or the loop is stopped or closed. */
static int drive_batches(lua_State *L, int status, lua_KContext ctx) {
  ta_loop *lp = (ta_loop *)ctx;
  if (status == LUA_YIELD) { /* back from a yield */
    ta_task *t = lp->driver;
    lp->outer_loop = lp->E->running_loop;
    lp->driver_parked = 0;
    ta_heap_remove(&lp->E->timers, &t->timer);
    if (t->resume_error) {
      t->resume_error = 0;
      driver_lets_go(L, lp);
      return lua_error(L);
    }
  }
  lp->E->running_loop = lp;
  lua_settop(L, SLOT_LOOP);
  lua_getiuservalue(L, SLOT_LOOP, UV_READY);
  for (;;) {
    int turn;
    if (lp->batch_left == 0) {
      if (lp->closed) break;
      begin_batch(L, lp);
    }
    while (lp->batch_left > 0) run_entry(L, lp);
    turn = after_batch(lp);
    if (turn == TURN_STOP) break;
    if (turn != TURN_AGAIN) return drive_yield(L, lp, turn == TURN_PARK);
  }
  lp->E->running_loop = lp->outer_loop;
  return 0;
}

static int l_drive_batches(lua_State *L) {
  return drive_batches(L, LUA_OK, (lua_KContext)lua_touserdata(L, SLOT_LOOP));
}

static int drive_k(lua_State *L, int status, lua_KContext ctx);

/* Calls drive_batches protected (again after a callback failed). */
static int drive_protected(lua_State *L, ta_loop *lp) {
  lua_settop(L, SLOT_LOOP);
  lua_pushcfunction(L, l_drive_batches);
  lua_pushvalue(L, SLOT_LOOP);
  return lua_pcallk(L, 1, 0, 0, (lua_KContext)lp, drive_k);
}

/* The end of the driver's protected call, or its continuation when it
** yielded before: it returned (LUA_OK, or LUA_YIELD after yields) or
** raised.  A callback's error is reported and the driver goes on; any
** other error ends the driver. */
static int drive_k(lua_State *L, int status, lua_KContext ctx) {
  ta_loop *lp = (ta_loop *)ctx;
  while (status != LUA_OK && status != LUA_YIELD) {
    if (lp->calling == 0) {
      lp->E->running_loop = lp->outer_loop;
      return lua_error(L);
    }
    callback_failed(L, lp);
    status = drive_protected(L, lp);
  }
  driver_lets_go(L, lp);
  return 0;
}

static int drive(lua_State *L, ta_loop *lp) {
  lp->outer_loop = lp->E->running_loop;
  return drive_k(L, drive_protected(L, lp), (lua_KContext)lp);
}

/* Whether a live driver runs the loop.  A driver can die without letting
** go of the loop (an error raised while its coroutine resumed: not enough
** memory), so its task's life is what counts. */
int ta_loop_driven(ta_loop *lp) {
  return !lp->closed && lp->driver != NULL && ta_task_alive(lp->driver);
}

/* loop_drive(loop): run the loop in the calling Trio task until
** loop_close_begin is called (or the task is cancelled). */
static int l_loop_drive(lua_State *L) {
  ta_loop *lp = checkloop(L, 1);
  ta_task *t = ta_async_check(L, "loop_drive", TA_TRIO);
  if (ta_loop_driven(lp)) return luaL_error(L, "loop_drive: this loop is already running");
  check_open(L, lp, "loop_drive");
  lua_settop(L, 1);
  ta_push_task(L, t);
  lua_setiuservalue(L, 1, UV_DRIVER);
  lp->driver = t;
  lp->driver_parked = 0;
  return drive(L, lp);
}

/* loop_stop_driver(loop [, stop=true]): make the driver return after its
** current batch (also one that has not started yet); false withdraws it. */
static int l_loop_stop_driver(lua_State *L) {
  ta_loop *lp = checkloop(L, 1);
  lp->closing = lua_isnone(L, 2) || lua_toboolean(L, 2);
  if (lp->closing) ta_loop_wake(lp);
  return 0;
}

/* loop_pause(loop): the driver yields after its current batch (stop() of
** a loop whose driver must survive, like the sync loop's). */
static int l_loop_pause(lua_State *L) {
  ta_loop *lp = checkloop(L, 1);
  lp->pausing = 1;
  ta_loop_wake(lp);
  return 0;
}

/* Drop pending callbacks, timers and watches. */
static void loop_release(lua_State *L, ta_loop *lp) {
  ta_timer *tm;
  while ((tm = ta_heap_top(&lp->timers)) != NULL) {
    ta_handle *h = (ta_handle *)((char *)tm - offsetof(ta_handle, timer));
    if (tm->cb != timer_fired) { /* a Task's own sleep: it stays pending */
      ta_aio_task_sleep_release(L, tm);
      continue;
    }
    ta_heap_remove(&lp->timers, tm);
    if (L != NULL) luaL_unref(L, LUA_REGISTRYINDEX, h->timer.ref);
    h->timer.ref = LUA_NOREF;
    h->loop = NULL;
  }
  for (int i = 0; i < lp->nfdw; i++)
    if (lp->fdw[i] != NULL) release_watch(L, lp, lp->fdw[i]);
  ta_loop_release_io(L, lp);
  ta_aio_io_release(lp);
}

/* loop_close(loop): the loop is closed for good. */
static int l_loop_close(lua_State *L) {
  ta_loop *lp = checkloop(L, 1);
  if (lp->closed) return 0;
  lp->closed = 1;
  loop_release(L, lp);
  ready_new(L, lp, 1, READY_MIN_CAP);
  ta_flush_closes(lp->E);
  return 0;
}

static int loop_gc(lua_State *L) {
  ta_loop *lp = (ta_loop *)luaL_checkudata(L, 1, LOOP_MT);
  if (!lp->closed) {
    lp->closed = 1;
    loop_release(L, lp);
  }
  ta_heap_free(&lp->timers);
  free(lp->fdw);
  lp->fdw = NULL;
  lp->nfdw = 0;
  ta_weak_unref(L, lp->E, lp->ref);
  lp->ref = LUA_NOREF;
  return 0;
}

static int loop_tostring(lua_State *L) {
  ta_loop *lp = checkloop(L, 1);
  lua_pushfstring(L, "asyncio loop (%s, %p)",
                  lp->closed ? "closed" : lp->driver ? "running" : "idle", (void *)lp);
  return 1;
}

/* loop_new() -> a new loop (not running). */
static int l_loop_new(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_loop *lp = (ta_loop *)lua_newuserdatauv(L, sizeof *lp, LOOP_NUV);
  memset(lp, 0, sizeof *lp);
  lp->E = E;
  lp->slow_callback_duration = DEFAULT_SLOW_CALLBACK_DURATION;
  lp->lease_ref = LUA_NOREF;
  luaL_setmetatable(L, LOOP_MT);
  ready_new(L, lp, lua_gettop(L), READY_MIN_CAP);
  lua_newtable(L);
  lua_setiuservalue(L, -2, UV_ATTRS);
  lua_pushvalue(L, -1);
  lp->ref = ta_weak_ref(L, E);
  return 1;
}

/* The loop of the running asyncio Task or loop callback (L runs it), or
** NULL. */
ta_loop *ta_running_loop(lua_State *L, ta_engine *E) {
  ta_task *t = E->current;
  int in_task = t != NULL && t->co == L && ta_is_aio_task(t);
  if (E->running_loop != NULL && !in_task) return (ta_loop *)E->running_loop;
  return in_task ? ta_task_future(t)->loop : NULL;
}

/* Pushes the loop of the running asyncio Task or loop callback and returns
** 1; returns 0 (nothing pushed) when there is none. */
int ta_push_running_loop(lua_State *L, ta_engine *E) {
  ta_loop *lp = ta_running_loop(L, E);
  if (lp == NULL) return 0;
  push_loop(L, lp);
  return 1;
}

/* running_loop() -> the loop of the running asyncio task or callback. */

static int l_running_loop(lua_State *L) {
  return ta_push_running_loop(L, ta_upengine(L));
}

/* in_loop_callback() -> true while a loop callback (not a Task) runs */
static int l_in_loop_callback(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_task *t = E->current;
  lua_pushboolean(L, E->running_loop != NULL && (t == NULL || !ta_is_aio_task(t) || t->co != L));
  return 1;
}

/* loop_set_debug(loop, enabled [, slow_callback_duration]) */
static int l_loop_set_debug(lua_State *L) {
  ta_loop *lp = checkloop(L, 1);
  lp->debug = lua_toboolean(L, 2);
  lp->slow_callback_duration = luaL_optnumber(L, 3, lp->slow_callback_duration);
  return 0;
}

/* Pushes the task factory of the loop at loopidx (nil when none). */
void ta_loop_push_factory(lua_State *L, int loopidx) {
  lua_getiuservalue(L, loopidx, UV_FACTORY);
}

/* loop:set_task_factory(factory | nil): create_task calls
** factory(loop, fn, ...) instead of making a Task itself. */
static int l_set_task_factory(lua_State *L) {
  ta_loop *lp = checkloop(L, 1);
  if (!lua_isnil(L, 2)) {
    luaL_checkany(L, 2);
    if (!lua_isfunction(L, 2) && luaL_getmetafield(L, 2, "__call") == LUA_TNIL)
      return luaL_argerror(L, 2, "task factory must be a function or nil");
  }
  lua_settop(L, 2);
  lp->has_factory = !lua_isnil(L, 2);
  lua_setiuservalue(L, 1, UV_FACTORY);
  return 0;
}

/* loop:get_task_factory() -> the factory, or nil */
static int l_get_task_factory(lua_State *L) {
  checkloop(L, 1);
  lua_getiuservalue(L, 1, UV_FACTORY);
  return 1;
}

/* loop_driver(loop) -> the Trio task driving it, or nil */
static int l_loop_driver(lua_State *L) {
  ta_loop *lp = checkloop(L, 1);
  if (lp->driver == NULL || !ta_task_alive(lp->driver)) return 0;
  ta_push_task(L, lp->driver);
  return 1;
}

/* live_loops() -> every loop not yet closed */
static int l_live_loops(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  int n = 0;
  lua_newtable(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->weak_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    ta_loop *lp = (ta_loop *)luaL_testudata(L, -1, LOOP_MT);
    if (lp != NULL && !lp->closed) lua_rawseti(L, -4, ++n);
    else lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 1;
}

static const luaL_Reg loop_methods[] = {
  {"call_soon", l_call_soon},
  {"call_soon_threadsafe", l_call_soon},
  {"call_later", l_call_later},
  {"call_at", l_call_at},
  {"time", l_time},
  {"is_closed", l_is_closed},
  {"add_reader", l_add_reader},
  {"add_writer", l_add_writer},
  {"remove_reader", l_remove_reader},
  {"remove_writer", l_remove_writer},
  {"set_task_factory", l_set_task_factory},
  {"get_task_factory", l_get_task_factory},
  {NULL, NULL}
};

static const luaL_Reg loop_funcs[] = {
  {"loop_new", l_loop_new},
  {"loop_drive", l_loop_drive},
  {"loop_stop_driver", l_loop_stop_driver},
  {"loop_pause", l_loop_pause},
  {"loop_close", l_loop_close},
  {"loop_attrs", l_attrs},
  {"running_loop", l_running_loop},
  {"in_loop_callback", l_in_loop_callback},
  {"loop_driver", l_loop_driver},
  {"loop_set_debug", l_loop_set_debug},
  {"live_loops", l_live_loops},
  {NULL, NULL}
};

static const luaL_Reg handle_meta[] = {
  {"__tostring", handle_tostring},
  {NULL, NULL}
};

static const luaL_Reg handle_methods[] = {
  {"cancel", handle_cancel},
  {"cancelled", handle_cancelled},
  {"when", handle_when},
  {NULL, NULL}
};

static const luaL_Reg loop_meta[] = {
  {"__gc", loop_gc},
  {"__tostring", loop_tostring},
  {NULL, NULL}
};

int ta_open_loop(lua_State *L) {
  ta_engine *E = (ta_engine *)lua_touserdata(L, -1);
  ta_newclass(L, HANDLE_MT, handle_meta, handle_methods, "__index");
  ta_cache_metatable(L, E, TA_MT_HANDLE);
  lua_pop(L, 1);
  ta_newclass(L, LOOP_MT, loop_meta, loop_methods, "__index");
  ta_cache_metatable(L, E, TA_MT_LOOP);
  lua_pop(L, 1);
  ta_register(L, loop_funcs);
  return 0;
}
