/*
** asyncio.h — the asyncio layer: the event loop, its handles and timers,
** Futures and Tasks, and the waits the bridge needs (a Trio task waiting
** on a Future).  Built on engine/ and io/; knows nothing of trio/.
*/
#ifndef TA_ASYNCIO_H
#define TA_ASYNCIO_H

#include "engine/engine.h"
#include "io/io.h"

typedef struct ta_loop ta_loop;
typedef struct ta_future ta_future;
typedef struct ta_handle ta_handle;

enum { TA_FUT_PENDING, TA_FUT_CANCELLED, TA_FUT_FINISHED };

/* The first byte of every object on a loop's ready queue, so that the
** queue tells a Task (stepped directly, no handle needed) from a Handle;
** and of what a parked Task waits in (a future or a ta_aio_park). */
enum { TA_KIND_FUTURE, TA_KIND_TASK, TA_KIND_HANDLE, TA_KIND_PARK };

struct ta_loop {
  ta_engine *E;
  int ref;                  /* its weak id (engine.c): C finds the loop object by it */
  int nready;               /* entries in the ready ring (a user value)... */
  int ready_head;           /* ...where the oldest is (from 0)... */
  int ready_cap;            /* ...and its size, a power of two */
  int ready_room;           /* ready_cap, 0 while there are leases: queueing past it is slow */
  int batch_left;           /* entries of the running batch not yet run (at the head) */
  int step_slot;            /* the slot the Task being stepped left (0: none, or taken) */
  int nleases;              /* sleeping Tasks anchored by free slots of the ring... */
  int lease_ref;            /* ...while there are, the loop's registry reference */
  int calling;              /* the callback of the head entry runs */
  uint64_t call_start;      /* debug mode: when that callback started */
  void *outer_loop;         /* E->running_loop before the driver's turn */
  ta_heap timers;           /* call_later / call_at handles */
  int loop_idx;             /* stack index of the loop object while timers fire */
  ta_task *driver;          /* Trio task running the loop, NULL if none */
  int driver_parked;
  ta_future *current;       /* asyncio Task being stepped */
  int closed, closing, pausing;
  int debug;                /* report slow callbacks, record where tasks are created */
  int has_factory;          /* a task factory is set (loop:set_task_factory) */
  double slow_callback_duration;
  size_t npending;          /* its pending Tasks (future.c: loop_tasks) */
  struct ta_aiowatch **fdw;  /* add_reader / add_writer by fd */
  int nfdw;
  struct ta_aiowatch *pending_io; /* watches with readiness to dispatch */
  struct ta_aiorec *io_recs;      /* waits on io objects (iowait.c)... */
  struct ta_aiorec *posted, *posted_tail; /* ...those woken, to dispatch, */
  struct ta_aiorec *batch_posted, *batch_posted_tail; /* ...those the batch calls */
  struct ta_aiorec *posted_current;      /* ...and the one it is calling */
  ta_ioreq *io_reqs;        /* I/O requests its Futures wait for (ioreq_future.c)... */
  ta_ioreq *io_done;        /* ...and those completed, to deliver */
};

/* A Handle: its callback and arguments are its user values.  Only a
** timer handle (call_later, call_at) has the fields from `timer` on: the
** userdata of any other handle (call_soon, a reader's) ends there
** (TA_SOON_HANDLE_SIZE), a third of the memory each call_soon allocates. */
struct ta_handle {
  unsigned char kind;       /* TA_KIND_HANDLE */
  unsigned char cancelled, is_timer;
  int nargs;
  ta_loop *loop;            /* NULL once the loop is gone */
  /* ---- a timer handle's only ---- */
  ta_timer timer;           /* its ref anchors the handle while in the timer heap */
};

#define TA_SOON_HANDLE_SIZE offsetof(ta_handle, timer)

struct ta_future {
  unsigned char kind;       /* TA_KIND_FUTURE or TA_KIND_TASK */
  unsigned char state, retrieved, must_cancel, cb_list;
  unsigned char has_exc;    /* the outcome user value is an error */
  unsigned char cb_task;    /* the one callback is a Task or Trio task that awaits it (future.c: CB_*) */
  int nresults;             /* results of a finished future */
  int ncallbacks;
  int cancel_requests;      /* Task.cancelling() */
  uint32_t gather_mark;     /* serial of the last gather it was passed to */
  ta_loop *loop;
};

/* An asyncio Task is one userdata: its Future and the engine task that
** runs its function (of kind ta_aio_task_kind, not anchored by the engine:
** a Task collected while pending is reported).  The engine task is
** compact (engine.h): it comes last and the userdata ends where its
** fields for Trio tasks would begin (TA_AIOTASK_SIZE). */
typedef struct ta_aiotask {
  ta_future f;
  ta_task t;                /* last: only its first TA_TASK_COMPACT_SIZE bytes exist */
} ta_aiotask;

#define TA_AIOTASK_SIZE (offsetof(ta_aiotask, t) + TA_TASK_COMPACT_SIZE)

#define ta_task_future(tp) (&((ta_aiotask *)((char *)(tp) - offsetof(ta_aiotask, t)))->f)
#define ta_future_task(fp) (&((ta_aiotask *)(fp))->t)

extern const ta_task_kind ta_aio_task_kind;
#define ta_is_aio_task(t) ((t)->kind == &ta_aio_task_kind)

void ta_loop_call_soon(lua_State *L, ta_loop *lp, lua_CFunction cb, int nargs);
void ta_loop_ready_push(lua_State *L, ta_loop *lp, int loopidx, int n);
void ta_loop_append(lua_State *L, ta_loop *lp);
void ta_loop_append_below(lua_State *L, ta_loop *lp);
void ta_loop_append_to(lua_State *L, ta_loop *lp, int loopidx);
ta_loop *ta_running_loop(lua_State *L, ta_engine *E);
void ta_loop_push_attrs(lua_State *L, int idx);
int ta_push_running_loop(lua_State *L, ta_engine *E);
int ta_loop_arm_timer(ta_loop *lp, ta_timer *tm, double delay);
void ta_loop_ready_from_timer(lua_State *L, ta_loop *lp);
void ta_aio_task_sleep_release(lua_State *L, ta_timer *tm);
int ta_loop_lease(lua_State *L, ta_loop *lp);
void ta_loop_drop_anchor(lua_State *L, ta_loop *lp, ta_timer *tm, int loopidx, int push);
void ta_handle_cancel(lua_State *L, ta_handle *h);
/* Wakes the loop's driver if it is parked (something to do).  Inline:
** every wake asks, and the driver is rarely parked then (a Task of the
** loop woken during a step, W1/W2: ~15 instructions per wake). */
void ta_loop_wake_parked(ta_loop *lp);
static inline void ta_loop_wake(ta_loop *lp) {
  if (lp->driver_parked) ta_loop_wake_parked(lp);
}
int ta_loop_driven(ta_loop *lp);
void ta_loop_exception(lua_State *L, ta_loop *lp, int ctxidx);
void ta_aio_task_run(lua_State *L, ta_future *f, int tidx);
void ta_loop_push_in_step(lua_State *L, ta_loop *lp);
void ta_loop_append_in_step(lua_State *L, ta_loop *lp);
void ta_loop_push_factory(lua_State *L, int loopidx);

/* iowait.c: the loop's waits on io objects */
int ta_loop_take_posted(ta_loop *lp);
void ta_loop_run_read_wakes(lua_State *L, ta_loop *lp, int top);
int ta_loop_next_posted(lua_State *L, ta_loop *lp);
int ta_loop_posted_done(lua_State *L, ta_loop *lp, int push);
const void *ta_loop_calling_arg(const ta_loop *lp, lua_CFunction fn);
void ta_loop_release_io(lua_State *L, ta_loop *lp);
/* Whether a persistent loop callback (a transport's read wait) fills the
** waiter slot w (iowait.c). */
int ta_aio_persistent_armed(const ta_waiter *w);
/* transport.c: a stream transport's read wait, which the loop calls
** directly; for the loop, when an io wait's callback raised */
int ta_transport_read_ready(lua_State *L);
int ta_transport_is_read_wait(lua_State *L, int fnidx);
void ta_transport_read_wake(lua_State *L, int idx);
#define TA_READ_WAKE_STACK 16 /* stack slots ta_transport_read_wake needs */
int ta_transport_read_failed(lua_State *L, int fnidx, int erridx);

/* For the I/O faces (ioreq_future.c): a new pending Future of the loop at
** loopidx, pushed; settling a pending plain Future f at fidx with the top n
** values (popped), or with the error on top (n < 0). */
ta_future *ta_future_push_new(lua_State *L, int loopidx);
void ta_future_settle(lua_State *L, ta_future *f, int fidx, int n);
int ta_future_pending(lua_State *L, int fidx);
int ta_future_cancel(lua_State *L, int fidx);
ta_future *ta_future_reuse(lua_State *L, int fidx);
int ta_future_await_k(lua_State *L, ta_task *t, ta_future *f, int await_idx, lua_KFunction k);
int ta_future_wait_failed(lua_State *L, int status, ta_task *t);
int ta_store_helpers(lua_State *L, int helpers_idx, int n);
void ta_call_helper(lua_State *L, int helpers_idx, int h, int nargs, int nres);
void ta_push_future_await(lua_State *L);
void ta_aio_io_dispatch(lua_State *L, ta_loop *lp);
void ta_aio_io_release(ta_loop *lp);
int ta_open_aio_ioreq(lua_State *L);

/* future.c: a C object parks the asyncio Task running on L in its
** ta_aio_park p, with no Future (ta_aio_park_k: the Task must be t, of the
** loop the object belongs to; the object anchors the Task meanwhile).  It
** wakes it with ta_aio_unpark (the Task on top, and above it the Task's
** loop object if ta_aio_unpark_needs_loop says so: a loop running one of
** its Tasks has its ready ring at hand; both popped), onto the loop's
** ready queue, resumed with no values, or with
** the error at erridx (0: none).  Task:cancel() wakes a
** parked Task itself (p->task is then NULL, as after any wake), to raise
** CancelledError at the wait.  The continuation k (context t) raises what
** ta_aio_park_failed says the Task was resumed with. */
typedef struct ta_aio_park {
  unsigned char kind;       /* TA_KIND_PARK */
  ta_task *task;            /* the Task parked in it, NULL if none */
} ta_aio_park;
void ta_aio_park_init(ta_aio_park *p);
int ta_aio_park_k(lua_State *L, ta_task *t, ta_aio_park *p, lua_KFunction k);
void ta_aio_unpark(lua_State *L, ta_aio_park *p, int erridx);
static inline int ta_aio_unpark_needs_loop(const ta_aio_park *p) {
  return ta_task_future(p->task)->loop->current == NULL;
}
int ta_aio_park_failed(ta_task *t);

/* streamreader.c: what the transport's read path (transport.c) needs to
** feed a StreamReaderProtocol's reader directly, as its data_received does,
** and the C StreamWriter.write to find a bound writer's socket */
typedef struct ta_sreader ta_sreader;
ta_sreader *ta_stream_reader_test(lua_State *L, ta_engine *E, int idx);
int ta_stream_reader_feed(lua_State *L, ta_sreader *r, int ridx, int didx);
struct ta_sockbox *ta_stream_writer_socket(lua_State *L, int ridx, const void *writer, const void *transport);

int ta_open_loop(lua_State *L);
int ta_open_future(lua_State *L);
int ta_open_queue(lua_State *L);
int ta_open_sync(lua_State *L);
int ta_open_stream_reader(lua_State *L);
int ta_open_iowait(lua_State *L);
int ta_open_transport(lua_State *L);

#endif
