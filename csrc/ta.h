/*
** ta.h — internal declarations shared by the C core of trio-asyncio.
**
** Ownership in one paragraph: there is one engine per lua_State (a full
** userdata anchored in the registry).  The engine owns the libuv loop (or
** borrows a host's), the run queue, the deadline heap and the root of the
** cancel-status tree.  Tasks, cancel scopes, nurseries and parking lots are
** userdata owned by Lua; while C structures point at them they are anchored
** (a live task holds a registry reference to itself, an open nursery too).
** libuv handles are malloc'ed and freed only in their close callback.
*/
#ifndef TA_H
#define TA_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

#if LUA_VERSION_NUM != 504
#error "trio-asyncio needs Lua 5.4"
#endif

/* lua_closethread appeared in 5.4.6; Debian 12 ships 5.4.4. */
#if LUA_VERSION_RELEASE_NUM >= 50406
#define ta_closethread(co, from) lua_closethread((co), (from))
#else
#define ta_closethread(co, from) ((void)(from), lua_resetthread(co))
#endif

typedef struct ta_engine ta_engine;
typedef struct ta_task ta_task;
typedef struct ta_status ta_status;
typedef struct ta_scope ta_scope;
typedef struct ta_nursery ta_nursery;
typedef struct ta_lot ta_lot;
typedef struct ta_clock ta_clock;

/* ---- flavors and task states ---- */
enum { TA_TRIO = 1, TA_ASYNCIO = 2, TA_BOTH = 3 };
enum { TA_NEW, TA_RUNNABLE, TA_RUNNING, TA_PARKED, TA_DONE };

/* What an abort callback answers when cancellation reaches a parked task. */
enum { TA_ABORT_FAILED = 0, TA_ABORT_SUCCEEDED = 1 };
typedef int (*ta_abort_fn)(lua_State *L, ta_task *t);

/* ---- the deadline heap (heap.c) ---- */
enum { TA_TIMER_SLEEP, TA_TIMER_SCOPE, TA_TIMER_HANDLE };
typedef struct ta_timer {
  double when;
  int index;          /* position in the heap, -1 when not in it */
  int kind;           /* TA_TIMER_*: tells the engine what owns it */
} ta_timer;

typedef struct ta_heap {
  ta_timer **items;
  int n, cap;
} ta_heap;

void ta_heap_free(ta_heap *h);
int ta_heap_push(ta_heap *h, ta_timer *t);
void ta_heap_remove(ta_heap *h, ta_timer *t);
void ta_heap_update(ta_heap *h, ta_timer *t); /* after t->when changed */
static inline ta_timer *ta_heap_top(ta_heap *h) { return h->n ? h->items[0] : NULL; }

/* ---- cancel status tree (cancel.c) ----
** Plumbing, apart from the CancelScope API object: a status is cancelled
** when its scope was cancelled, or when its parent is and it is not shielded.
** Every task is linked into exactly one status. */
struct ta_status {
  ta_status *parent, *first_child, *next_sibling, *prev_sibling;
  ta_task *first_task;
  double deadline;    /* of its scope; HUGE_VAL when none */
  unsigned char cancel_called, shield, cancelled;
};

struct ta_scope {
  ta_status st;
  ta_engine *E;
  ta_timer timer;     /* deadline, in the heap while entered and finite */
  int state;          /* 0 new, 1 entered, 2 exited */
  int cancelled_caught;
  ta_task *owner;     /* task that entered it */
};

void ta_status_link_task(ta_status *s, ta_task *t);
void ta_status_unlink_task(ta_task *t);
void ta_status_link_child(ta_status *parent, ta_status *s);
void ta_status_unlink(ta_status *s);
void ta_status_recompute(lua_State *L, ta_engine *E, ta_status *s);
void ta_status_cancel(lua_State *L, ta_engine *E, ta_status *s);
ta_scope *ta_scope_new(lua_State *L, ta_engine *E, double deadline, int shield);
void ta_scope_enter(lua_State *L, ta_scope *sc, ta_task *t);
int ta_scope_exit(lua_State *L, ta_scope *sc);
void ta_scope_deadline_fired(lua_State *L, ta_engine *E, ta_timer *tm);
double ta_effective_deadline(ta_status *s);
int ta_open_cancel(lua_State *L);

/* ---- tasks (task.c) ---- */
struct ta_task {
  ta_engine *E;
  lua_State *co;            /* NULL once the task has exited */
  ta_status *status;
  ta_task *status_prev, *status_next;
  ta_nursery *nursery;      /* Trio task: its parent nursery (or NULL) */
  ta_task *sib_prev, *sib_next; /* in its nursery; an asyncio task: in its loop's list */
  ta_abort_fn abort;
  void *wait;               /* what it is parked on (lot, endpoint, future, ...) */
  ta_task *wait_prev, *wait_next;
  ta_timer timer;           /* sleeps */
  int ref;                  /* registry (or weak-table) ref anchoring the userdata while alive */
  int nargs;                /* values pushed on co for the next resume */
  int abort_ref;            /* Lua abort function of wait_task_rescheduled */
  int kbase;                /* stack top when it yielded: resume values lie above */
  int ctx_ref;              /* registry ref of its context table, or LUA_NOREF */
  uint32_t id;
  unsigned char flavor, state;
  unsigned char trap;       /* set by our primitives just before they yield */
  unsigned char resume_error; /* resume by raising the value on co's stack */
  unsigned char ctx_owned;  /* context table is ours (copy-on-write) */
  unsigned char system;
  unsigned char weak;       /* part of an asyncio Task (ta_aiotask), anchored by it */
  unsigned char cancel_asked; /* Trio cancelled it while it waited on a future */
};

#define TA_TASK_MT "trio_asyncio.Task"

/* user values of a task userdata */
enum { TA_UV_THREAD = 1, TA_TASK_NUV = 1 };

/* The user value holding a task's thread: an asyncio Task keeps it after
** its Future's own user values (future.c). */
#define TA_AIO_UV_THREAD 3
#define ta_thread_uv(t) ((t)->weak ? TA_AIO_UV_THREAD : TA_UV_THREAD)

ta_task *ta_current(lua_State *L);
ta_task *ta_async_check(lua_State *L, const char *fname, int flavor);
void ta_task_init(lua_State *L, ta_engine *E, ta_task *t, int fnidx, int nargs, int flavor,
                  ta_task *parent, int weak);
ta_task *ta_spawn(lua_State *L, ta_engine *E, int fnidx, int nargs, int flavor,
                  ta_nursery *n, ta_status *st, ta_task *parent);
void ta_push_task(lua_State *L, ta_task *t);
ta_task *ta_checktask(lua_State *L, int idx);
int ta_park(lua_State *L, ta_task *t, ta_abort_fn abort);
int ta_park_k(lua_State *L, ta_task *t, ta_abort_fn abort, lua_KFunction k);
int ta_schedule_point(lua_State *L, ta_task *t);
int ta_checkpoint(lua_State *L, ta_task *t);
int ta_checkpoint_ret(lua_State *L, ta_task *t, int nret);
int ta_schedule_point_ret(lua_State *L, ta_task *t, int nret);
void ta_reschedule(ta_task *t, int nvalues, int is_error);
void ta_deliver_cancel(lua_State *L, ta_task *t);
void ta_raise_cancelled(lua_State *L);
void ta_check_cancelled(lua_State *L, ta_task *t);
void ta_step_task(lua_State *L, ta_task *t);
void ta_task_fail(lua_State *L, ta_task *t);
const char *ta_task_name(lua_State *L, ta_task *t);
int ta_task_field(lua_State *L, ta_task *t, int idx, const char *k);
int ta_open_task(lua_State *L);

/* ---- nurseries (nursery.c) ---- */
struct ta_nursery {
  ta_engine *E;
  ta_task *first_child;
  int nchildren;
  ta_task *waiter;          /* parent task waiting in nursery_wait */
  ta_task *parent_task;
  ta_nursery *next_open, *prev_open; /* the engine's open nurseries */
  ta_scope *scope;
  int ref;                  /* registry ref while open */
  int closed;
};
void ta_nursery_child_exited(lua_State *L, ta_nursery *n, ta_task *t, int ok);
void ta_nursery_add_error(lua_State *L, ta_nursery *n, int erridx, int tbidx);
void ta_push_nursery(lua_State *L, ta_nursery *n);
int ta_open_nursery(lua_State *L);

/* ---- parking lot (parking.c) ---- */
struct ta_lot {
  ta_task *first, *last;
  int n;
};
void ta_lot_append(ta_lot *lot, ta_task *t);
void ta_lot_remove(ta_lot *lot, ta_task *t);
ta_task *ta_lot_pop(ta_lot *lot);
int ta_lot_park(lua_State *L, ta_task *t, ta_lot *lot);
int ta_open_parking(lua_State *L);

/* ---- channels (channel.c), io (io.c), clock (clock.c) ---- */
int ta_open_channel(lua_State *L);
int ta_open_io(lua_State *L);
void ta_io_close_all(ta_engine *E);

struct ta_clock {
  double offset;      /* clock time at base_ns */
  uint64_t base_ns;   /* real time of the last rebase */
  double rate;
  double autojump;    /* seconds of real blocking before a jump; <0 = never */
};
double ta_clock_now(ta_clock *c);
uint64_t ta_coarse_ns(void);
void ta_clock_jump(ta_clock *c, double s);
int ta_open_clock(lua_State *L);

/* ---- the asyncio loop (loop.c) and futures (future.c) ---- */
typedef struct ta_loop ta_loop;
typedef struct ta_future ta_future;
typedef struct ta_handle ta_handle;

enum { TA_FUT_PENDING, TA_FUT_CANCELLED, TA_FUT_FINISHED };

/* The first byte of every loop object, so that the ready queue tells a
** Task (stepped directly, no handle needed) from a Handle. */
enum { TA_KIND_FUTURE, TA_KIND_TASK, TA_KIND_HANDLE };

struct ta_loop {
  ta_engine *E;
  int nready;               /* entries in the ready table */
  ta_heap timers;           /* call_later / call_at handles */
  ta_task *driver;          /* Trio task running the loop, NULL if none */
  int driver_parked;
  ta_future *current;       /* asyncio Task being stepped */
  int closed, closing, pausing;
  int debug;                /* report slow callbacks, record where tasks are created */
  double slow_callback_duration;
  size_t ntasks;            /* pending asyncio Tasks... */
  ta_task *tasks;           /* ...their engine tasks, newest first */
  struct ta_aiowatch **fdw; /* add_reader / add_writer by fd */
  int nfdw;
  struct ta_aiowatch *pending_io; /* watches with readiness to dispatch */
};

struct ta_handle {
  unsigned char kind;       /* TA_KIND_HANDLE */
  unsigned char cancelled, is_timer;
  int nargs;
  ta_loop *loop;            /* NULL once the loop is gone */
  ta_timer timer;
  int ref;                  /* registry ref while in the timer heap */
};

struct ta_future {
  unsigned char kind;       /* TA_KIND_FUTURE or TA_KIND_TASK */
  unsigned char state, retrieved, must_cancel, cb_list;
  unsigned char has_exc;    /* the outcome user value is an error */
  int nresults;             /* results of a finished future */
  int ncallbacks;
  int cancel_requests;      /* Task.cancelling() */
  uint32_t gather_mark;     /* serial of the last gather it was passed to */
  ta_loop *loop;
};

/* An asyncio Task is one userdata: its Future and the engine task that
** runs its function.  The engine task's ref is the Task's weak self
** reference. */
typedef struct ta_aiotask {
  ta_future f;
  ta_task t;
} ta_aiotask;

#define TA_AIOTASK_MT "trio_asyncio.AioTask"
#define ta_task_future(tp) (&((ta_aiotask *)((char *)(tp) - offsetof(ta_aiotask, t)))->f)
#define ta_future_task(fp) (&((ta_aiotask *)(fp))->t)

int ta_open_loop(lua_State *L);
int ta_open_future(lua_State *L);
void ta_loop_call_soon(lua_State *L, ta_loop *lp, lua_CFunction cb, int nargs);
void ta_loop_append(lua_State *L, ta_loop *lp);
int ta_push_running_loop(lua_State *L, ta_engine *E);
void ta_loop_call_later(lua_State *L, ta_loop *lp, double delay, lua_CFunction cb, int nargs);
void ta_handle_cancel(lua_State *L, ta_handle *h);
void ta_loop_wake(ta_loop *lp);
void ta_aio_task_exited(lua_State *L, ta_task *t, int ok, int nres);
void ta_aio_task_run(lua_State *L, int tidx);
const char *ta_aio_task_name(lua_State *L, ta_task *t);
int ta_aio_yield(lua_State *L, ta_task *t, int nret, lua_KFunction k);
void ta_loop_exception(lua_State *L, ta_loop *lp, int ctxidx);

/* ---- engine (engine.c) ---- */

/* Metatables of the objects made and checked on hot paths, cached in the
** engine so that setting or checking one costs no lookup by name. */
enum { TA_MT_TASK, TA_MT_FUTURE, TA_MT_FUTURE_EXC, TA_MT_AIOTASK, TA_MT_HANDLE, TA_MT_LOOP, TA_NMT };

struct ta_engine {
  lua_State *L;             /* main thread, for closing */
  uv_loop_t own_loop;
  uv_loop_t *loop;
  uv_timer_t *wake;         /* bounds the I/O wait by the next deadline */
  uv_signal_t *sigint;
  ta_task **runq, **batch;
  size_t nrunq, caprunq, capbatch;
  ta_heap timers;
  ta_status root;           /* root of the cancel-status tree of a run */
  ta_task *current;         /* task being resumed, NULL in scheduler code */
  ta_task *main;            /* root task of the run */
  ta_clock *clock;          /* NULL: the real monotonic clock */
  int clock_ref;
  int running;              /* a run is active */
  int main_done, main_ok;
  int result_ref;           /* packed results or the error of the main task */
  int hook_ref;             /* instrument dispatcher, LUA_NOREF when none */
  int errfactory_ref;       /* Lua function(class, message, traceback) */
  int soon_ref;             /* queue of run_sync_soon callbacks */
  int nsoon;
  int ki_pending;
  int closing;
  size_t ntasks;            /* live Trio-scheduled tasks */
  size_t naio;              /* live asyncio tasks */
  int aio_cancelled_ref;    /* the asyncio.CancelledError class */
  const void *mt[TA_NMT];   /* metatables the hot paths set and check... */
  int mt_ref[TA_NMT];       /* ...and their registry references */
  uint32_t gather_serial;   /* of the last asyncio.gather */
  size_t nhandles;          /* live libuv handles besides wake/sigint */
  size_t io_waiters;
  uint64_t last_poll_ns;
  ta_lot blocked_waiters;   /* wait_all_tasks_blocked */
  ta_nursery *open_nurseries; /* every open nursery (task.child_nurseries) */
  uint32_t next_id;
  int internal_ref;         /* first error of a system task or callback */
  int weak_ref;             /* weak-valued table anchoring asyncio objects */
  int guest;                /* the run is a guest run (driven by the host) */
  lua_State *curL;          /* thread running scheduler or task code now */
  int in_io_wait;           /* inside uv_run: no Lua calls */
  int guest_done_ref;       /* done callback of the guest run */
  int host_loop;            /* E->loop belongs to the host */
  uv_prepare_t *prepare;    /* host-loop mode: runs a tick each iteration */
  uv_idle_t *idle;          /* host-loop mode: no blocking while tasks are runnable */
  uv_async_t *async;        /* call_soon_threadsafe wake-ups */
  uv_mutex_t async_lock;
  struct ta_threadcall *calls; /* queued by other threads, under async_lock */
  struct ta_loop *running_loop; /* loop whose callbacks are running */
  struct ta_fdwatch **fdw;  /* I/O waits by file descriptor */
  int nfdw;
};

ta_engine *ta_engine_get(lua_State *L);
void ta_cache_metatable(lua_State *L, ta_engine *E, int which);
void ta_setmetatable(lua_State *L, ta_engine *E, int which);
const void *ta_udata_mt(lua_State *L, int idx);
void *ta_testudata(lua_State *L, ta_engine *E, int idx, int which);
void *ta_checkudata(lua_State *L, ta_engine *E, int idx, int which);
void ta_push_engine(lua_State *L);
int ta_weakref(lua_State *L, ta_engine *E);
void ta_push_weak(lua_State *L, ta_engine *E, int ref);
void ta_push_weak_keyed(lua_State *L, const void *key);
void ta_weakunref(lua_State *L, ta_engine *E, int ref);
double ta_now(ta_engine *E);
void ta_runq_push(ta_engine *E, ta_task *t);
void ta_tick(lua_State *L, ta_engine *E, double max_wait);
void ta_run_start(lua_State *L, ta_engine *E, int fnidx, int argsidx, int clockidx, int flavor);
int ta_run_alive(ta_engine *E);
void ta_run_step(lua_State *L, ta_engine *E, double max_wait);
int ta_run_finish(lua_State *L, ta_engine *E);
void ta_guest_started(ta_engine *E);
int ta_guest_step(lua_State *L, ta_engine *E, double max_wait);
void ta_embed_close(lua_State *L, ta_engine *E);
int ta_embed_init(ta_engine *E);
int ta_open_embed(lua_State *L);
void ta_hook(lua_State *L, ta_engine *E, const char *event, ta_task *t);
void ta_hook_arg(lua_State *L, ta_engine *E, const char *event);
void ta_push_error(lua_State *L, ta_engine *E, const char *cls, const char *msg);
int ta_error(lua_State *L, const char *cls, const char *fmt, ...);
void ta_handle_opened(ta_engine *E);
void ta_handle_closed(ta_engine *E);
void ta_free_handle(uv_handle_t *h);
void ta_on_wake(uv_timer_t *h); /* the wake timer's callback: waking is all it does */
void ta_flush_closes(ta_engine *E);
int ta_engine_handles_init(ta_engine *E);
void ta_engine_handles_close(ta_engine *E);
int ta_open_engine(lua_State *L);
void ta_register(lua_State *L, const luaL_Reg *funcs); /* into [core, engine] */

/* The engine is upvalue 1 of every function of the core module. */
#define ta_upengine(L) ((ta_engine *)lua_touserdata((L), lua_upvalueindex(1)))

/* Hot-path hint for a hook check. */
#define ta_hooked(E) ((E)->hook_ref != LUA_NOREF)

#endif
