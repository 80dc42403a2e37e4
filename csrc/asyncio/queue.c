/*
** queue.c — asyncio.Queue, LifoQueue and PriorityQueue, with the semantics
** of CPython's asyncio/queues.py (lua/asyncio/queues.lua documents them).
**
** A queue object is a table: its class's metatable, whose __index is the
** method table (a method lookup runs no function), the field maxsize, and
** at [1] the queue's state, one C object for the three kinds: the count,
** maxsize, the shutdown flag, the unfinished-task count and two deques of
** waiting futures (getters, putters) live in that userdata; the items in a
** user value table.  Every method puts the state in place of self, at
** stack index 1, before anything else.  FIFO
** items sit at [head, head + n) of that table, LIFO items at [1, n]; a
** PriorityQueue keeps its heap in Lua (lua/asyncio/queues.lua hands over
** prio_new/prio_put/prio_get with queue_setup), called from here.
**
** A put or get of an asyncio Task that has to wait parks the Task
** (ta_aio_park_k, no Future) in a qpark queued in its deque: the side's
** own park in the state when it is free, else a small waiter object; any
** other task (a Trio task in allow_asyncio mode) makes a
** future of the running loop, queues it and awaits it (Future:await).  A
** waiter that fails (cancelled) cleans up: it leaves the deque and passes
** on a wake-up it will not use; once woken it looks at the queue again.  join() waits
** on an asyncio.Event that is set exactly while no task is unfinished.
*/
#include <string.h>

#include "asyncio/asyncio.h"

enum { QK_FIFO, QK_LIFO, QK_PRIORITY, QK_N };
static const int queue_mt[QK_N] = {TA_MT_QUEUE, TA_MT_LIFO_QUEUE, TA_MT_PRIORITY_QUEUE};

/* User values: the items (a PriorityQueue: its heap, from prio_new), the
** two deques of waiters (made when a second waiter waits on the same side:
** the first slot of each is a user value of its own), the Event join()
** waits on (made by the first join() that waits), a spare future (a
** waiter's, reused by the next wait on the same loop), a spare qpark
** (reused by the next wait of an asyncio Task that finds its side's own
** park taken), the Tasks of the two own parks and their loop object.
** Most queues never need the Event, and many only ever wait on one side.
** A FIFO or LIFO queue whose maxsize is an integer from 1 to Q_SLOTS_MAX
** has no items table: its items sit in q->slots more user values after
** those (Q_NUV + 1 ...), as a ring for FIFO, so that a put or get touches
** one object fewer. */
/* (A userdata's user values lie between its header and its memory: the
** ones a put or get of an asyncio Task uses come last, next to the slots
** and the struct, so that it touches fewer cache lines.) */
enum {
  QUV_GETTERS = 1, QUV_PUTTERS, QUV_FINISHED, QUV_SPARE, QUV_SPARE_PARK, QUV_ITEMS,
  QUV_FIRST_GETTER, QUV_FIRST_PUTTER, QUV_GETTER_TASK, QUV_PUTTER_TASK, QUV_PARK_LOOP,
  Q_NUV = QUV_PARK_LOOP
};
enum { Q_SLOTS_MAX = 4 };

/* Upvalues of the methods: the engine, the Lua helpers (queue_setup), the
** Future:await method.  The helpers, by index: */
enum { UP_HELPERS = 2, UP_AWAIT = 3 };
enum { H_PRIO_NEW = 1, H_PRIO_PUT, H_PRIO_GET, H_NEW_EVENT, H_GET_RUNNING_LOOP, H_N = H_GET_RUNNING_LOOP };

/* A deque of waiters (qparks and futures, told apart by their first
** byte, TA_KIND_PARK or TA_KIND_FUTURE): slots [head, tail]; empty when
** tail < head (then reset to 1, 0).  Slot 1 is a user value of the queue's
** state, the others are in the deque's table (so one waiter at a time, the
** usual case, never needs the table).  An empty deque may still hold the
** last waiter woken in slot 1 (see waitq_wake): `left` (else NULL).
** `first` is what slot 1 holds, so that a wake finds the side's own park
** there without reading the slot. */
typedef struct {
  int head, tail;           /* (a waiter is a coroutine: never 2^31 of them) */
  const void *left;
  const void *first;        /* the waiter in slot 1 (its address), NULL if none */
} waitq;

/* Where an asyncio Task waits: parked in `park` (its kind byte first, as a
** future's).  Each side of a queue has one in its state (its own park,
** queued in the deque as a light userdata): the first Task to wait there
** uses it, so that the usual wait touches no other object.  A second
** Task waiting on the same side meanwhile gets a qpark userdata, whose
** user values are the Task parked last (it stays there, as the spare's,
** until another Task uses the qpark) and that Task's loop object, which
** ta_aio_unpark wants; an own park's Task is a user value of the state
** (QUV_GETTER_TASK, QUV_PUTTER_TASK), its loop object another
** (QUV_PARK_LOOP: the loop of the Task that parked in an own park last;
** a Task of another loop has its loop found by the loop's weak id).
** `woken`: the queue woke it (a wake-up that a cancelled waiter passes
** on), not Task:cancel(); `in_use`: from the wait until the woken Task
** looked at it. */
typedef struct {
  ta_aio_park park;
  unsigned char woken, in_use;
  ta_task *anchored;        /* the Task in its user value, NULL if none */
} qpark;
enum { PUV_TASK = 1, PUV_LOOP, P_NUV = PUV_LOOP };

typedef struct {
  /* what a put or get reads first, in as few cache lines as can be */
  const char *tag;          /* &queue_state_tag (ta_totagged) */
  unsigned char kind;
  unsigned char shutdown;
  unsigned char slots;      /* items in user values (see Q_SLOTS_MAX), or 0 */
  unsigned char has_spare_park; /* the qpark in QUV_SPARE_PARK is unused */
  unsigned char has_spare;  /* the spare is pending and unused */
  unsigned char maxsize_int; /* maxsize was given as an integer (maxsize_given) */
  lua_Integer n;            /* items */
  lua_Integer head;         /* FIFO: index of the first item (in its table or slots) */
  lua_Number maxsize;       /* <= 0: unbounded */
  lua_Integer unfinished;   /* items put and not yet marked done */
  waitq getters, putters;
  qpark getter_park, putter_park; /* the sides' own parks */
  qpark *spare_park;        /* the qpark in QUV_SPARE_PARK (NULL: none yet) */
  ta_loop *park_loop;       /* the loop in QUV_PARK_LOOP (NULL: none yet) */
  ta_future *spare;         /* the future in QUV_SPARE (NULL: none yet) */
  lua_Integer maxsize_given; /* (q.maxsize shows it) */
} ta_queue;

/* Function names for messages, per kind. */
#define QNAMES(m) {"Queue:" m, "LifoQueue:" m, "PriorityQueue:" m}
static const char *const kind_name[QK_N] = {"Queue", "LifoQueue", "PriorityQueue"};
static const char *const fn_put[QK_N] = QNAMES("put");
static const char *const fn_get[QK_N] = QNAMES("get");
static const char *const fn_put_nowait[QK_N] = QNAMES("put_nowait");
static const char *const fn_get_nowait[QK_N] = QNAMES("get_nowait");
static const char *const fn_task_done[QK_N] = QNAMES("task_done");
static const char *const fn_join[QK_N] = QNAMES("join");

/* What only l_queue_new writes into a queue state (its tag). */
static const char queue_state_tag;

/* The state of self, which takes the place of self at stack index 1 (a
** copy is left on top: the methods set the stack top they need).  Told by
** size and tag (every method asks).  fname names the method of Queue (the
** methods are shared by the three kinds). */
static ta_queue *checkqueue(lua_State *L, const char *fname) {
  if (lua_type(L, 1) == LUA_TTABLE) {
    ta_queue *q;
    lua_rawgeti(L, 1, 1);
    q = (ta_queue *)ta_totagged(L, -1, sizeof(ta_queue), &queue_state_tag);
    if (q != NULL) {
      lua_copy(L, -1, 1);
      return q;
    }
  }
  ta_bad_self(L, fname, "asyncio.Queue");
  return NULL;
}

static int is_full(const ta_queue *q) {
  return q->maxsize > 0 && (lua_Number)q->n >= q->maxsize;
}

/* Calls the Lua helper h with the top nargs values (popped); nres results. */
static void call_helper(lua_State *L, int h, int nargs, int nres) {
  ta_call_helper(L, lua_upvalueindex(UP_HELPERS), h, nargs, nres);
}

/* Calls method `name` of the Event of the queue at 1, if it has one yet
** (join() makes it: until then q->unfinished alone tells the state). */
static void finished_event(lua_State *L, const char *name) {
  if (lua_getiuservalue(L, 1, QUV_FINISHED) == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_getfield(L, -1, name);
  lua_insert(L, -2);
  lua_call(L, 1, 0);
}

/* ---- deques of waiting futures ---- */

/* The user value holding slot 1 of the deque whose table is user value uv. */
static int first_slot_uv(int uv) {
  return uv == QUV_GETTERS ? QUV_FIRST_GETTER : QUV_FIRST_PUTTER;
}

/* Pushes slot i of the deque in user value uv (of the queue at 1). */
static void waitq_get(lua_State *L, int uv, lua_Integer i) {
  if (i == 1) {
    lua_getiuservalue(L, 1, first_slot_uv(uv));
    return;
  }
  lua_getiuservalue(L, 1, uv);
  lua_rawgeti(L, -1, i);
  lua_remove(L, -2);
}

/* Sets slot i of the deque w in user value uv to the value on top
** (popped); the deque's table is made when it is first needed. */
static void waitq_set(lua_State *L, waitq *w, int uv, lua_Integer i) {
  if (i == 1) {
    w->first = lua_touserdata(L, -1);
    lua_setiuservalue(L, 1, first_slot_uv(uv));
    return;
  }
  if (lua_getiuservalue(L, 1, uv) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_createtable(L, 4, 0);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, uv);
  }
  lua_insert(L, -2);
  lua_rawseti(L, -2, i);
  lua_pop(L, 1);
}

/* Appends the waiter f on top (left there) to the deque in user value uv.
** The tail moves once the slot is set: setting it may raise for want of
** memory, and a tail past an empty slot would be read as a waiter. */
static void waitq_push(lua_State *L, waitq *w, int uv, const void *f) {
  int was_left = w->left == f && w->tail < w->head;
  w->left = NULL;
  if (was_left) { /* already in slot 1 */
    w->tail = 1;
    return;
  }
  lua_pushvalue(L, -1);
  waitq_set(L, w, uv, w->tail + 1);
  w->tail++;
}

static int is_own_park(const ta_queue *q, const void *waiter) {
  return waiter == &q->getter_park || waiter == &q->putter_park;
}

/* The user value of the state holding the Task in q's own park p. */
static int own_park_task_uv(const ta_queue *q, const qpark *p) {
  return p == &q->getter_park ? QUV_GETTER_TASK : QUV_PUTTER_TASK;
}

/* Wakes the waiter if it still waits; true if it did.  The waiter is on
** top (popped), but for one of q's own parks, which needs no value. */
static int wake_one(lua_State *L, ta_queue *q, void *waiter) {
  if (*(unsigned char *)waiter == TA_KIND_PARK) {
    qpark *p = (qpark *)waiter;
    ta_task *t = p->park.task;
    int own = is_own_park(q, p);
    if (t == NULL) { /* woken by Task:cancel() */
      if (!own) lua_pop(L, 1);
      return 0;
    }
    p->woken = 1;
    if (own) {
      lua_getiuservalue(L, 1, own_park_task_uv(q, p));
      if (ta_aio_unpark_needs_loop(&p->park)) {
        if (q->park_loop == ta_task_future(t)->loop) lua_getiuservalue(L, 1, QUV_PARK_LOOP);
        else ta_push_weak(L, t->E, ta_task_future(t)->loop->ref); /* (Tasks of two loops) */
      }
      ta_aio_unpark(L, &p->park, 0);
      return 1;
    }
    lua_getiuservalue(L, -1, PUV_TASK);
    if (ta_aio_unpark_needs_loop(&p->park)) lua_getiuservalue(L, -2, PUV_LOOP);
    ta_aio_unpark(L, &p->park, 0);
  } else if (((ta_future *)waiter)->state == TA_FUT_PENDING) {
    lua_pushboolean(L, 1);
    ta_future_settle(L, (ta_future *)waiter, -2, 1);
  } else {
    lua_pop(L, 1);
    return 0;
  }
  lua_pop(L, 1);
  return 1;
}

/* Wakes the first waiter that is still waiting (CPython's _wakeup_next),
** or every one (shutdown).  The only waiter, when it is a waiter the queue
** keeps as its spare (its future, or a qpark, which the woken Task gives
** back), stays in slot 1 (w->left), where it holds nothing more than the
** spare's user value does, and where the next wait, with it again, finds it. */
static void waitq_wake(lua_State *L, ta_queue *q, waitq *w, int uv, int all) {
  while (w->head <= w->tail) {
    void *waiter = (void *)w->first; /* (what slot 1 holds) */
    if (w->head != 1 || !is_own_park(q, waiter)) {
      waitq_get(L, uv, w->head);
      waiter = lua_touserdata(L, -1);
      if (is_own_park(q, waiter)) lua_pop(L, 1); /* (wake_one needs no value for it) */
    }
    if (w->tail == 1 && (waiter == q->spare || *(unsigned char *)waiter == TA_KIND_PARK)) {
      w->left = waiter;
    } else {
      lua_pushnil(L);
      waitq_set(L, w, uv, w->head);
    }
    w->head++;
    if (wake_one(L, q, waiter) && !all) break;
  }
  if (w->tail < w->head) w->head = 1, w->tail = 0;
}

/* Takes the future at fidx out of the deque (a waiter that gave up). */
static void waitq_remove(lua_State *L, waitq *w, int uv, int fidx) {
  for (lua_Integer i = w->head; i <= w->tail; i++) {
    int found;
    waitq_get(L, uv, i);
    found = lua_rawequal(L, -1, fidx);
    lua_pop(L, 1);
    if (!found) continue;
    for (lua_Integer j = i; j < w->tail; j++) {
      waitq_get(L, uv, j + 1);
      waitq_set(L, w, uv, j);
    }
    lua_pushnil(L);
    waitq_set(L, w, uv, w->tail--);
    if (w->tail < w->head) w->head = 1, w->tail = 0;
    break;
  }
}

/* ---- storage ---- */

/* Stores the item on top (popped) after the q->n there are; fname (the
** method) names a PriorityQueue item that cannot be ordered. */
static void store_item(lua_State *L, ta_queue *q, const char *fname) {
  if (q->slots > 0) {
    lua_Integer at = q->kind == QK_FIFO ? (q->head - 1 + q->n) % q->slots + 1 : q->n + 1;
    lua_setiuservalue(L, 1, Q_NUV + (int)at);
    return;
  }
  lua_getiuservalue(L, 1, QUV_ITEMS);
  switch (q->kind) {
  case QK_FIFO: lua_pushvalue(L, -2); lua_rawseti(L, -2, q->head + q->n); break;
  case QK_LIFO: lua_pushvalue(L, -2); lua_rawseti(L, -2, q->n + 1); break;
  default: /* prio_put(heap, n, item, fname) raises on a bad item, nothing changed */
    lua_pushvalue(L, -1);
    lua_pushinteger(L, q->n);
    lua_pushvalue(L, -4);
    lua_pushstring(L, fname);
    call_helper(L, H_PRIO_PUT, 4, 0);
  }
  lua_pop(L, 2);
}

/* Adds the item on top (popped): stored, counted, a getter woken. */
static void do_put(lua_State *L, ta_queue *q, const char *fname) {
  store_item(L, q, fname);
  q->n++;
  if (q->unfinished++ == 0) finished_event(L, "clear");
  waitq_wake(L, q, &q->getters, QUV_GETTERS, 0);
}

/* Takes the first of the q->n > 0 items out and pushes it. */
static void take_item(lua_State *L, ta_queue *q) {
  lua_Integer at = q->kind == QK_FIFO ? q->head : q->n;
  if (q->kind == QK_PRIORITY) {
    lua_getiuservalue(L, 1, QUV_ITEMS);
    lua_pushinteger(L, q->n);
    call_helper(L, H_PRIO_GET, 2, 1);
    return;
  }
  if (q->slots > 0) {
    lua_getiuservalue(L, 1, Q_NUV + (int)at);
    lua_pushnil(L);
    lua_setiuservalue(L, 1, Q_NUV + (int)at);
  } else {
    lua_getiuservalue(L, 1, QUV_ITEMS);
    lua_rawgeti(L, -1, at);
    lua_pushnil(L);
    lua_rawseti(L, -3, at);
    lua_replace(L, -2);
  }
  if (q->kind == QK_FIFO && q->n == 1) q->head = 1;
  else if (q->kind == QK_FIFO) q->head = q->slots > 0 ? q->head % q->slots + 1 : q->head + 1;
}

/* Removes the first item (q->n > 0) and pushes it; a putter is woken. */
static void do_get(lua_State *L, ta_queue *q) {
  take_item(L, q);
  q->n--;
  waitq_wake(L, q, &q->putters, QUV_PUTTERS, 0);
}

static int raise_shutdown(lua_State *L, const char *fname) {
  return ta_error(L, "QueueShutDown", "%s: the queue is shut down", fname);
}

/* ---- waiting ---- */

/* Pushes a pending future of the loop running task t (the spare one, or a
** new one), queues it in the deque and returns it. */
static ta_future *new_waiter(lua_State *L, ta_queue *q, waitq *w, int uv, ta_task *t) {
  ta_future *f = q->spare;
  if (q->has_spare && f->loop == ta_running_loop(L, t->E)) {
    lua_getiuservalue(L, 1, QUV_SPARE);
    q->has_spare = 0;
  } else {
    if (!ta_push_running_loop(L, t->E)) call_helper(L, H_GET_RUNNING_LOOP, 0, 1);
    f = ta_future_push_new(L, -1);
    lua_replace(L, -2);
  }
  waitq_push(L, w, uv, f);
  return f;
}

/* The wait on the future at fidx ended with its result: nobody else holds
** that future, so it becomes the spare (already in QUV_SPARE when it was
** the spare before). */
static void keep_spare(lua_State *L, ta_queue *q, int fidx) {
  ta_future *f = ta_future_reuse(L, fidx);
  if (f == NULL) return;
  if (f != q->spare) {
    lua_pushvalue(L, fidx);
    lua_setiuservalue(L, 1, QUV_SPARE);
    q->spare = f;
  }
  q->has_spare = 1;
}

/* Whether the task t waits parked in a qpark: an asyncio Task running on L
** (its loop is then the running one). */
static int parks(lua_State *L, const ta_task *t) {
  return ta_is_aio_task(t) && t->co == L;
}

/* Parks the asyncio Task t in a qpark (the side's own park when it is
** free, else the spare qpark, or a new one) that is queued in the deque
** and left on top; k continues. */
static int park_waiter(lua_State *L, ta_queue *q, waitq *w, int uv, ta_task *t, lua_KFunction k) {
  qpark *p = uv == QUV_GETTERS ? &q->getter_park : &q->putter_park;
  int own = !p->in_use;
  if (own) {
    lua_pushlightuserdata(L, p);
  } else if (q->has_spare_park) {
    p = q->spare_park;
    lua_getiuservalue(L, 1, QUV_SPARE_PARK);
    q->has_spare_park = 0;
  } else {
    p = (qpark *)lua_newuserdatauv(L, sizeof *p, P_NUV);
    ta_aio_park_init(&p->park);
    p->anchored = NULL;
  }
  if (p->anchored != t) {
    ta_push_weak(L, t->E, t->ref);
    if (own) {
      lua_setiuservalue(L, 1, own_park_task_uv(q, p));
    } else {
      lua_setiuservalue(L, -2, PUV_TASK);
      ta_push_weak(L, t->E, ta_task_future(t)->loop->ref);
      lua_setiuservalue(L, -2, PUV_LOOP);
    }
    p->anchored = t;
  }
  if (own && q->park_loop != ta_task_future(t)->loop) {
    ta_push_weak(L, t->E, ta_task_future(t)->loop->ref);
    lua_setiuservalue(L, 1, QUV_PARK_LOOP);
    q->park_loop = ta_task_future(t)->loop;
  }
  waitq_push(L, w, uv, p);
  p->woken = 0;
  p->in_use = 1;
  return ta_aio_park_k(L, t, &p->park, k);
}

/* The wait in the qpark at pidx ended: a side's own park is free again;
** a qpark userdata, which nobody else holds, becomes the spare (already in
** QUV_SPARE_PARK when it was the spare before). */
static void keep_spare_park(lua_State *L, ta_queue *q, int pidx) {
  qpark *p = (qpark *)lua_touserdata(L, pidx);
  p->in_use = 0;
  if (is_own_park(q, p)) return;
  if (p != q->spare_park) {
    lua_pushvalue(L, pidx);
    lua_setiuservalue(L, 1, QUV_SPARE_PARK);
    q->spare_park = p;
  }
  q->has_spare_park = 1;
}

static int has_items(const ta_queue *q) { return q->n > 0; }
static int has_room(const ta_queue *q) { return !is_full(q); }

/* The wait of a put (`putting`) or get failed: its waiter (on top, above
** the error) leaves the deque, a wake-up it got (`woken`) but will not use
** goes to the next waiter if there is still what it was woken for (as
** CPython's queues), and the error is raised again. */
static int give_up(lua_State *L, ta_queue *q, int putting, int woken) {
  waitq *w = putting ? &q->putters : &q->getters;
  int uv = putting ? QUV_PUTTERS : QUV_GETTERS, widx = lua_gettop(L);
  waitq_remove(L, w, uv, widx);
  if (woken && (putting ? has_room(q) : has_items(q))) waitq_wake(L, q, w, uv, 0);
  lua_settop(L, widx - 1);
  return lua_error(L);
}

/* The continuation of a put (`putting`) or get after its wait on a
** future: a failed wait gives up (raising), a woken one keeps its future
** as the spare; the queue is left at 1 (and the item at 2) for another look. */
static ta_queue *after_wait(lua_State *L, int status, ta_task *t, int putting) {
  int failed = ta_future_wait_failed(L, status, t);
  ta_queue *q = (ta_queue *)lua_touserdata(L, 1);
  if (failed) {
    ta_future *f = (ta_future *)lua_touserdata(L, -1);
    ta_future_cancel(L, lua_gettop(L)); /* in case it is not done yet */
    give_up(L, q, putting, f->state != TA_FUT_CANCELLED);
  }
  keep_spare(L, q, -1);
  lua_settop(L, putting ? 2 : 1);
  return q;
}

/* The same after a wait parked in a qpark (on top, or below the error),
** but for a get that has an item to take, whose stack is left as it is. */
static ta_queue *after_park(lua_State *L, ta_task *t, int putting) {
  ta_queue *q = (ta_queue *)lua_touserdata(L, 1);
  if (ta_aio_park_failed(t)) {
    lua_insert(L, -2); /* the qpark on top */
    keep_spare_park(L, q, -1); /* out of the deque as it raises */
    give_up(L, q, putting, ((qpark *)lua_touserdata(L, -1))->woken);
  }
  keep_spare_park(L, q, -1);
  /* a get that finds an item takes it whatever is above the queue; one
  ** that waits again must not leave the stack grown */
  if (putting || q->n == 0) lua_settop(L, putting ? 2 : 1);
  return q;
}

/* get on [queue, ...]: what is above the queue is never read */
static int get_loop(lua_State *L, ta_queue *q, ta_task *t);

static int get_k(lua_State *L, int status, lua_KContext ctx) {
  return get_loop(L, after_wait(L, status, (ta_task *)ctx, 0), (ta_task *)ctx);
}

static int get_park_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return get_loop(L, after_park(L, (ta_task *)ctx, 0), (ta_task *)ctx);
}

static int get_loop(lua_State *L, ta_queue *q, ta_task *t) {
  if (q->n == 0) {
    if (q->shutdown) return raise_shutdown(L, fn_get[q->kind]);
    if (parks(L, t)) return park_waiter(L, q, &q->getters, QUV_GETTERS, t, get_park_k);
    return ta_future_await_k(L, t, new_waiter(L, q, &q->getters, QUV_GETTERS, t),
                             lua_upvalueindex(UP_AWAIT), get_k);
  }
  do_get(L, q);
  return 1;
}

/* get() -> item: waits for an item, then removes and returns it. */
static int q_get(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_queue *q = checkqueue(L, fn_get[0]);
  /* (get_loop reads nothing above the queue: no lua_settop) */
  return get_loop(L, q, ta_async_check_in(L, E, fn_get[q->kind], TA_ASYNCIO));
}

/* put on [queue, item] */
static int put_loop(lua_State *L, ta_queue *q, ta_task *t);

static int put_k(lua_State *L, int status, lua_KContext ctx) {
  return put_loop(L, after_wait(L, status, (ta_task *)ctx, 1), (ta_task *)ctx);
}

static int put_park_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return put_loop(L, after_park(L, (ta_task *)ctx, 1), (ta_task *)ctx);
}

static int put_loop(lua_State *L, ta_queue *q, ta_task *t) {
  if (q->shutdown) return raise_shutdown(L, fn_put[q->kind]);
  if (is_full(q)) {
    if (parks(L, t)) return park_waiter(L, q, &q->putters, QUV_PUTTERS, t, put_park_k);
    return ta_future_await_k(L, t, new_waiter(L, q, &q->putters, QUV_PUTTERS, t),
                             lua_upvalueindex(UP_AWAIT), put_k);
  }
  do_put(L, q, fn_put[q->kind]);
  return 0;
}

/* put(item): waits for a free slot, then puts the item. */
static int q_put(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_queue *q = checkqueue(L, fn_put[0]);
  ta_task *t = ta_async_check_in(L, E, fn_put[q->kind], TA_ASYNCIO);
  lua_settop(L, 2);
  return put_loop(L, q, t);
}

/* put_nowait(item): raises asyncio.QueueFull when full. */
static int q_put_nowait(lua_State *L) {
  ta_queue *q = checkqueue(L, fn_put_nowait[0]);
  const char *fname = fn_put_nowait[q->kind];
  if (q->shutdown) return raise_shutdown(L, fname);
  if (is_full(q)) return ta_error(L, "QueueFull", "%s: the queue is full", fname);
  lua_settop(L, 2);
  do_put(L, q, fname);
  return 0;
}

/* get_nowait() -> item: raises asyncio.QueueEmpty when empty. */
static int q_get_nowait(lua_State *L) {
  ta_queue *q = checkqueue(L, fn_get_nowait[0]);
  const char *fname = fn_get_nowait[q->kind];
  if (q->n == 0) {
    if (q->shutdown) return raise_shutdown(L, fname);
    return ta_error(L, "QueueEmpty", "%s: the queue is empty", fname);
  }
  lua_settop(L, 1);
  do_get(L, q);
  return 1;
}

static int q_qsize(lua_State *L) {
  lua_pushinteger(L, checkqueue(L, "Queue:qsize")->n);
  return 1;
}

static int q_empty(lua_State *L) {
  lua_pushboolean(L, checkqueue(L, "Queue:empty")->n == 0);
  return 1;
}

static int q_full(lua_State *L) {
  lua_pushboolean(L, is_full(checkqueue(L, "Queue:full")));
  return 1;
}

/* task_done(): one item taken earlier has been processed. */
static int q_task_done(lua_State *L) {
  ta_queue *q = checkqueue(L, fn_task_done[0]);
  if (q->unfinished <= 0)
    return ta_error(L, "ValueError", "%s: task_done() called too many times", fn_task_done[q->kind]);
  if (--q->unfinished == 0) finished_event(L, "set");
  return 0;
}

/* join(): waits until every item put has been marked done. */
static int q_join(lua_State *L) {
  ta_queue *q = checkqueue(L, fn_join[0]);
  ta_async_check(L, fn_join[q->kind], TA_ASYNCIO);
  if (q->unfinished == 0) return 0;
  if (lua_getiuservalue(L, 1, QUV_FINISHED) == LUA_TNIL) { /* the first join: a clear Event */
    lua_pop(L, 1);
    call_helper(L, H_NEW_EVENT, 0, 1);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, QUV_FINISHED);
  }
  lua_getfield(L, -1, "wait");
  lua_insert(L, -2);
  lua_callk(L, 1, 0, 0, ta_no_results_k);
  return 0;
}

/* shutdown([immediate]): puts raise asyncio.QueueShutDown from now on, and
** gets too once the queue is empty; every blocked put and get wakes up (to
** raise, or to take an item still there).  With `immediate` the items left
** are dropped, each counting as done (which may end join()). */
static int q_shutdown(lua_State *L) {
  int immediate = lua_toboolean(L, 2);
  ta_queue *q = checkqueue(L, "Queue:shutdown");
  q->shutdown = 1;
  if (immediate) {
    lua_settop(L, 1);
    while (q->n > 0) {
      do_get(L, q);
      lua_pop(L, 1);
      if (q->unfinished > 0) q->unfinished--;
    }
    if (q->unfinished == 0) finished_event(L, "set");
  }
  waitq_wake(L, q, &q->getters, QUV_GETTERS, 1);
  waitq_wake(L, q, &q->putters, QUV_PUTTERS, 1);
  return 0;
}

static void push_maxsize(lua_State *L, const ta_queue *q) {
  if (q->maxsize_int) lua_pushinteger(L, q->maxsize_given);
  else lua_pushnumber(L, q->maxsize);
}

static int q_tostring(lua_State *L) {
  ta_queue *q = checkqueue(L, "Queue:__tostring");
  push_maxsize(L, q);
  lua_pushfstring(L, "%s (maxsize:%s, qsize:%I, getters:%I, putters:%I, unfinished:%I%s)",
                  kind_name[q->kind], luaL_tolstring(L, -1, NULL), (LUAI_UACINT)q->n,
                  (LUAI_UACINT)(q->getters.tail - q->getters.head + 1),
                  (LUAI_UACINT)(q->putters.tail - q->putters.head + 1),
                  (LUAI_UACINT)q->unfinished, q->shutdown ? ", shutdown" : "");
  return 1;
}

/* queue_new(kind, maxsize) -> a new queue; kind 0 FIFO, 1 LIFO, 2 priority. */
static int l_queue_new(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  lua_Integer kind = luaL_checkinteger(L, 1);
  int t = lua_type(L, 2), slots = 0;
  ta_queue *q;
  luaL_argcheck(L, kind >= 0 && kind < QK_N, 1, "queue kind expected");
  if (t != LUA_TNIL && (t != LUA_TNUMBER || lua_tonumber(L, 2) != lua_tonumber(L, 2)))
    return luaL_error(L, "bad argument #1 to '%s' (number expected for maxsize, got %s)",
                      kind_name[kind], t == LUA_TNUMBER ? "NaN" : lua_typename(L, t));
  if (kind != QK_PRIORITY && lua_isinteger(L, 2) && lua_tointeger(L, 2) >= 1 &&
      lua_tointeger(L, 2) <= Q_SLOTS_MAX)
    slots = (int)lua_tointeger(L, 2);
  q = (ta_queue *)lua_newuserdatauv(L, sizeof *q, Q_NUV + slots);
  memset(q, 0, sizeof *q);
  q->tag = &queue_state_tag;
  q->kind = (int)kind;
  q->slots = slots;
  q->maxsize_int = t == LUA_TNIL || lua_isinteger(L, 2);
  q->maxsize_given = t == LUA_TNIL ? 0 : lua_tointeger(L, 2);
  q->maxsize = t == LUA_TNIL ? 0 : lua_tonumber(L, 2);
  q->head = 1;
  q->getters.head = q->putters.head = 1;
  ta_aio_park_init(&q->getter_park.park);
  ta_aio_park_init(&q->putter_park.park);
  ta_setmetatable(L, E, TA_MT_QUEUE_STATE);
  if (slots == 0) { /* an items table */
    if (kind == QK_PRIORITY) call_helper(L, H_PRIO_NEW, 0, 1);
    else lua_newtable(L);
    lua_setiuservalue(L, -2, QUV_ITEMS);
  }
  lua_createtable(L, 1, 1); /* the queue object */
  lua_insert(L, -2);
  lua_rawseti(L, -2, 1);
  push_maxsize(L, q);
  lua_setfield(L, -2, "maxsize");
  ta_setmetatable(L, E, queue_mt[kind]);
  return 1;
}

/* queue_setup{prio_new, prio_put, prio_get, new_event, get_running_loop}:
** the Lua helpers the queues call. */
static int l_queue_setup(lua_State *L) {
  return ta_store_helpers(L, lua_upvalueindex(UP_HELPERS), H_N);
}

static const luaL_Reg queue_methods[] = {
  {"put", q_put},
  {"get", q_get},
  {"put_nowait", q_put_nowait},
  {"get_nowait", q_get_nowait},
  {"qsize", q_qsize},
  {"empty", q_empty},
  {"full", q_full},
  {"task_done", q_task_done},
  {"join", q_join},
  {"shutdown", q_shutdown},
  {NULL, NULL}
};

static const luaL_Reg queue_funcs[] = {
  {"queue_new", l_queue_new},
  {"queue_setup", l_queue_setup},
  {NULL, NULL}
};

/* Three classes sharing one method table (their __index), and the class
** of queue states; every function has the engine,
** the helpers table and Future:await as upvalues 1-3 (ta_open_future ran
** before: the await method comes from the Future class). */
int ta_open_queue(lua_State *L) {
  ta_engine *E = (ta_engine *)lua_touserdata(L, -1);
  int engine = lua_gettop(L), helpers, methods;
  lua_newtable(L);
  helpers = lua_gettop(L);
  ta_push_future_await(L);
  lua_newtable(L);
  methods = lua_gettop(L);
  lua_pushvalue(L, engine);
  lua_pushvalue(L, helpers);
  lua_pushvalue(L, helpers + 1);
  luaL_setfuncs(L, queue_methods, 3);
  for (int k = 0; k < QK_N; k++) {
    lua_pushfstring(L, "trio_asyncio.%s", kind_name[k]);
    luaL_newmetatable(L, lua_tostring(L, -1));
    lua_pushvalue(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, engine);
    lua_pushvalue(L, helpers);
    lua_pushvalue(L, helpers + 1);
    lua_pushcclosure(L, q_tostring, 3);
    lua_setfield(L, -2, "__tostring");
    ta_cache_metatable(L, E, queue_mt[k]);
    lua_pop(L, 2);
  }
  luaL_newmetatable(L, "trio_asyncio.QueueState");
  ta_cache_metatable(L, E, TA_MT_QUEUE_STATE);
  lua_pop(L, 1);
  lua_pushvalue(L, engine - 1); /* the module table */
  lua_pushvalue(L, engine);
  lua_pushvalue(L, helpers);
  lua_pushvalue(L, helpers + 1);
  luaL_setfuncs(L, queue_funcs, 3);
  lua_settop(L, engine);
  return 0;
}
