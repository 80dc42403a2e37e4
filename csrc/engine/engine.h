/*
** engine.h — the engine layer: what every other layer builds on.
**
** Ownership in one paragraph: there is one engine per lua_State (a full
** userdata anchored in the registry).  The engine owns the libuv loop (or
** borrows a host's), the run queue, the deadline heap, the root of the
** cancel-status tree and the list of libuv handles the layers above open.
** Tasks, cancel scopes, nurseries and parking lots are userdata owned by
** Lua; while C structures point at them they are anchored (a live Trio task
** is in the engine's anchors (ta_anchor), an open nursery holds a
** registry reference to itself).  libuv
** handles are malloc'ed and freed only in their close callback.
**
** The engine knows no flavor: it calls the layers above only through
** function pointers they hand it (a task's kind, a timer's callback, an
** owned handle's close function, the host hooks).  Nothing in engine/
** includes a header from another layer.
*/
#ifndef TA_ENGINE_H
#define TA_ENGINE_H

#include <stdatomic.h>
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
typedef struct ta_lot ta_lot;
typedef struct ta_clock ta_clock;
typedef struct ta_timer ta_timer;
typedef struct ta_owned ta_owned;

/* ---- intrusive doubly linked lists ----
** For a node type with fields PREV and NEXT and a list head pointer HEAD.
*/
#define TA_LIST_PUSH(head, node, prev, next) do {                    \
    (node)->prev = NULL;                                            \
    (node)->next = (head);                                          \
    if ((head) != NULL) (head)->prev = (node);                      \
    (head) = (node);                                                \
  } while (0)
#define TA_LIST_REMOVE(head, node, prev, next) do {                  \
    if ((node)->prev != NULL) (node)->prev->next = (node)->next;    \
    else (head) = (node)->next;                                     \
    if ((node)->next != NULL) (node)->next->prev = (node)->prev;    \
    (node)->prev = (node)->next = NULL;                             \
  } while (0)

/* ---- flavors and task states ---- */
enum { TA_TRIO = 1, TA_ASYNCIO = 2, TA_BOTH = 3 };
enum { TA_NEW, TA_RUNNABLE, TA_RUNNING, TA_PARKED, TA_DONE };

/* What an abort callback answers when cancellation reaches a parked task. */
enum { TA_ABORT_FAILED = 0, TA_ABORT_SUCCEEDED = 1 };
typedef int (*ta_abort_fn)(lua_State *L, ta_task *t);

/* The run queue's first size, and how often (ns) a busy scheduler polls
** for I/O anyway (by default; the environment variable TA_POLL_INTERVAL_US,
** read when the engine is made, sets it: 0 polls every batch). */
enum { TA_RUNQ_INITIAL = 256 };
#define TA_POLL_INTERVAL_NS 1000000u

/* Scheduler batches an abandoned run gets to unwind (ta_run_abandon), and
** how many times it (and each retry of ta_retry_failed) tries again. */
enum { TA_ABANDON_ROUNDS = 1000, TA_ABANDON_TRIES = 3 };

/* User value of the engine's userdata: the error of the last retry that
** failed (setting a user value never allocates). */
enum { TA_ENGINE_UV_RETRY_ERROR = 1, TA_ENGINE_NUV = 1 };

/* Largest file descriptor the fd tables accept. */
#define TA_MAX_FD (1 << 24)

/* ---- timers (heap.c) ----
** A timer carries its own callback, as libuv's do: the engine fires due
** timers without knowing what owns them.  An owner that must stay alive
** while its timer is armed (an asyncio TimerHandle, a sleeping asyncio
** Task) keeps its registry reference (or, for a Task, the lease of a ring
** slot: asyncio/loop.c) in `ref`, which the engine never touches (it fills
** what would be padding). */
typedef void (*ta_timer_cb)(lua_State *L, ta_engine *E, ta_timer *tm);
struct ta_timer {
  double when;
  int index;          /* its slot in the heap, -1 when not in it */
  int ref;            /* the owner's, LUA_NOREF from ta_timer_init */
  ta_timer_cb cb;
};

/* The heap holds each timer's key (deadline, then order of arming, so
** equal deadlines fire first in, first out) and its slot: sifting compares
** keys in the array and records positions in `pos`, never touching the
** timers.  A long run of earliest-first removals sorts the heap's entries
** into `sorted`, taken from the front from then on (heap.c). */
typedef struct ta_heap_entry {
  double when;
  uint64_t seq;
  int slot;           /* -1 in `sorted`: removed */
} ta_heap_entry;

typedef struct ta_heap {
  ta_heap_entry *items;  /* the 4-ary heap, nheap entries */
  ta_heap_entry *sorted; /* entries taken out in order: [next, end) */
  ta_timer **timers;     /* by slot */
  int *pos;              /* by slot: index in items, or -1 - index in sorted (free: next free slot + 1) */
  int n;                 /* armed timers */
  int nheap, cap, scap, nslots;
  int free_slot;         /* a free slot + 1, 0 for none */
  int next, end;
  int root_pops;         /* earliest removed from items since the last arming */
  int sort_min;          /* heap entries from which a burst is sorted; 0: heap.c's default */
  uint64_t seq;          /* arming counter */
} ta_heap;

void ta_timer_init(ta_timer *tm, ta_timer_cb cb);
void ta_heap_free(ta_heap *h);
int ta_heap_push(ta_heap *h, ta_timer *t);
void ta_heap_remove(ta_heap *h, ta_timer *t);
void ta_heap_update(ta_heap *h, ta_timer *t); /* after t->when changed */
ta_timer *ta_heap_top(ta_heap *h); /* the earliest, NULL when empty */

/* ---- the cancel-status tree (status.c) ----
** Plumbing, apart from the CancelScope API object: a status is cancelled
** when its scope was cancelled, or when its parent is and it is not
** shielded.  Every task is linked into exactly one status. */

/* Why a status was cancelled (trio.Cancelled's `source`); the first
** reason recorded wins.  TA_CANCEL_BY_PARENT: cancelled only to pass on
** its parent's cancellation (a nursery's waiting parent), whose reason it
** reports. */
enum { TA_CANCEL_UNKNOWN, TA_CANCEL_EXPLICIT, TA_CANCEL_DEADLINE, TA_CANCEL_NURSERY,
       TA_CANCEL_KI, TA_CANCEL_SHUTDOWN, TA_CANCEL_BY_PARENT };

struct ta_status {
  ta_status *parent, *first_child, *next_sibling, *prev_sibling;
  ta_task *first_task;
  double deadline;    /* of its scope; HUGE_VAL when none */
  unsigned char cancel_called, shield, cancelled;
  unsigned char cancel_source; /* TA_CANCEL_*, once cancel_called */
  /* The nearest status, itself or an ancestor, whose own cancel was
  ** called (not TA_CANCEL_BY_PARENT): whose reason a Cancelled here
  ** reports.  NULL: none.  Kept by status.c as the tree and marks change. */
  ta_status *origin;
  /* Registry reference of {reason=, source_task=} (0: none), released by
  ** ta_status_release_reason when its scope is left or collected. */
  int reason_ref;
};

void ta_status_link_task(ta_status *s, ta_task *t);
void ta_status_unlink_task(ta_task *t);
void ta_status_link_child(ta_status *parent, ta_status *s);
void ta_status_unlink(ta_status *s);
void ta_status_recompute(lua_State *L, ta_engine *E, ta_status *s);
void ta_status_redeliver(lua_State *L, ta_engine *E, ta_status *s);
void ta_status_cancel(lua_State *L, ta_engine *E, ta_status *s, int source);
void ta_status_mark_cancelled(ta_status *s, int source);
void ta_status_set_reason(lua_State *L, ta_status *s, int reason_idx, ta_task *from);
void ta_status_release_reason(lua_State *L, ta_status *s);
void ta_status_detach(ta_status *st, ta_status *parent);
double ta_effective_deadline(ta_status *s);

/* ---- task kinds ----
** What a task is beyond a coroutine (a Trio task in a nursery, the engine
** task inside an asyncio Task) is told by its kind: the engine calls a
** flavor only through these functions. */
typedef struct ta_task_kind {
  const char *what;          /* for messages: "trio task", "asyncio Task" */
  /* The task object is anchored by the engine (an anchor id while
  ** alive) or by whoever holds it (0: found through the weak registry). */
  int anchored;
  /* Its tasks are compact (TA_TASK_COMPACT_SIZE bytes, see ta_task): only
  ** for a kind that is not anchored, whose tasks ta_task_init makes. */
  int compact;
  /* The task ended: ok with nres results on t->co, or failed.  Its
  ** object is on top of L, at tidx (0: not pushed, when its object never
  ** reached Lua code and `exit_may_raise` said no: nothing will see it
  ** again), and its error, if any, just below;
  ** what the hook pushes the engine drops.  The hook of a kind whose
  ** tasks keep a value (ta_task_init) replaces the thread in its user
  ** value.  NULL: nothing to tell. */
  void (*exited)(lua_State *L, ta_task *t, int tidx, int ok, int nres);
  /* Whether `exited` may raise for this exit (allocate, call Lua); when
  ** not, the engine tells the exit without a protected call.  NULL: it
  ** always may. */
  int (*exit_may_raise)(ta_task *t, int ok);
  /* Pushes an explicitly given name and returns it, or returns NULL; the
  ** task's object is at idx (0: pushed from its reference). */
  const char *(*name)(lua_State *L, ta_task *t, int idx);
  /* Pushes field k of the task (its object at idx) and returns 1, or 0. */
  int (*field)(lua_State *L, ta_task *t, int idx, const char *k);
} ta_task_kind;

/* ---- tasks (task.c) ----
** The fields up to `status` are what every task has.  The rest only a task
** the engine schedules itself (ta_spawn: Trio tasks, the main task) uses:
** cancel status, owner and siblings, parking, lots, exit retries.  A task of a compact
** kind (an asyncio Task: its loop steps it, nothing parks it, it is in no
** cancel status, lot or nursery) is allocated without them,
** TA_TASK_COMPACT_SIZE bytes, and never touches them. */
struct ta_task {
  ta_engine *E;
  lua_State *co;            /* NULL once the task has exited */
  const ta_task_kind *kind;
  void *wait;               /* what it is parked on (lot, endpoint, future, ...) */
  ta_timer timer;           /* sleeps */
  int ref;                  /* anchored: its anchor id while alive; else its weak id */
  int nargs;                /* values pushed on co for the next resume */
  int kbase;                /* stack top when it yielded: resume values lie above */
  int ctx_ref;              /* shared reference to its context table, or LUA_NOREF */
  uint32_t id;
  /* Bit fields, so that a compact task is 80 bytes (an asyncio Task's
  ** userdata then fits a malloc block 16 bytes smaller). */
  unsigned char flavor : 2;         /* TA_TRIO, TA_ASYNCIO or TA_BOTH */
  unsigned char state : 3;          /* TA_NEW ... TA_DONE */
  unsigned char thread_uv : 2;      /* user value of its object holding its thread (1..3) */
  unsigned char trap : 1;           /* set by our primitives just before they yield */
  unsigned char resume_error : 1;   /* resume by raising the value on co's stack */
  unsigned char ctx_owned : 1;      /* context table is ours (copy-on-write) */
  unsigned char system : 1;
  unsigned char cancel_asked : 1;   /* Trio cancelled it while it waited on a future */
  unsigned char lot_breaker : 1;    /* registered as a parking-lot breaker (trio/parking_lot.c) */
  unsigned char queued : 1;         /* on the run queue: never twice */
  unsigned char sleep_data : 1;     /* custom_sleep_data set since it was last made runnable */
  unsigned char reported : 1;       /* its exit was told to its owner (task.c report_exit) */
  unsigned char tell_on_yield : 1;  /* parked under a cancellation: told once it has yielded */
  unsigned char system_tree : 1;    /* a system task, or a task under one (ta_task_in_system_tree) */
  unsigned char keeps : 1;          /* its thread keeps a value alive (ta_task_init keepidx) */
  unsigned char objectless : 1;     /* no object made yet: its anchor holds its thread (ta_spawn, ta_push_task) */
  unsigned char ref_ends_at_exit : 1; /* not anchored: its weak id goes once its exit is told (its
                                       ** object has no finalizer left to give it back) */
  /* ---- not in a compact task ---- */
  ta_status *status;
  ta_task *sib_prev, *sib_next; /* among its owner's tasks (a nursery's children) */
  ta_task *status_prev, *status_next;
  void *owner;              /* what holds it: a nursery (the kind knows) */
  ta_abort_fn abort;
  ta_task *wait_prev;
  union {                   /* (a task that has exited waits in no lot) */
    ta_task *wait_next;       /* in a parking lot (lot.c) */
    ta_task *unreported_next; /* exited: in the engine's list of exits still to tell */
    ta_task *free_next;       /* a free slot of the engine's task slab (task.c) */
  };
  int abort_ref;            /* Lua abort function of wait_task_rescheduled */
};

#define TA_TASK_COMPACT_SIZE offsetof(ta_task, status)
#define ta_task_compact(t) ((t)->kind->compact)

#define TA_TASK_MT "trio_asyncio.Task"

/* User values of a task object: its thread while alive, then the function
** it ran (so that its name stays); the object its kind calls its parent
** once it has exited (a Trio task's nursery, so that parent_nursery stays;
** while it lives, its owner).  The object of a task ta_spawn made holds
** only a pointer to its struct (in the engine's task slab), and is made
** when Lua code first asks for it (ta_push_task). */
enum { TA_UV_THREAD = 1, TA_UV_PARENT = 2, TA_TASK_NUV = 2 };

ta_task *ta_current(lua_State *L);
ta_task *ta_task_check(lua_State *L, const char *fname, int flavor);
/* ta_async_check_in (below) with every check made and its error raised. */
ta_task *ta_async_check_full(lua_State *L, ta_engine *E, const char *fname, int flavor);
void ta_task_init(lua_State *L, ta_engine *E, ta_task *t, int fnidx, int nargs, int flavor,
                  ta_task *parent, const ta_task_kind *kind, int thread_uv, int keepidx);
ta_task *ta_spawn(lua_State *L, ta_engine *E, int fnidx, int nargs, int flavor,
                  const ta_task_kind *kind, ta_status *st, ta_task *parent);
void ta_push_task(lua_State *L, ta_task *t);
void ta_task_slots_flush(ta_engine *E);
void ta_task_slab_free(ta_engine *E);
int ta_task_alive(ta_task *t);
ta_task *ta_checktask(lua_State *L, int idx);
int ta_park(lua_State *L, ta_task *t, ta_abort_fn abort);
int ta_park_k(lua_State *L, ta_task *t, ta_abort_fn abort, lua_KFunction k);
int ta_schedule_point(lua_State *L, ta_task *t);
int ta_checkpoint(lua_State *L, ta_task *t);
int ta_checkpoint_ret(lua_State *L, ta_task *t, int nret);
int ta_schedule_point_ret(lua_State *L, ta_task *t, int nret);
int ta_schedule_point_k(lua_State *L, ta_task *t, int nret, lua_KFunction k);
int ta_task_yield(lua_State *L, ta_task *t, int nret, lua_KFunction k);
/* The continuation of a lua_callk whose caller returns nothing after it. */
int ta_no_results_k(lua_State *L, int status, lua_KContext ctx);
void ta_reschedule(ta_task *t, int nvalues, int is_error);
void ta_deliver_cancel(lua_State *L, ta_task *t);
void ta_cancel_on_yield(ta_task *t);
void ta_push_cancelled(lua_State *L, ta_task *t);
void ta_raise_cancelled(lua_State *L);
void ta_retry_exits(lua_State *L, ta_engine *E);
void ta_task_in_system_tree(ta_task *t);
void ta_step_task_at(lua_State *L, ta_task *t, int objidx);
#define ta_step_task(L, t) ta_step_task_at((L), (t), 0)
void ta_task_fail(lua_State *L, ta_task *t);
const char *ta_task_name(lua_State *L, ta_task *t);
const char *ta_flavor_name(int flavor);
int ta_task_field(lua_State *L, ta_task *t, int idx, const char *k);
int ta_own_chunk(const char *src);
const char *ta_push_function_name(lua_State *L, int fidx);
void ta_ctx_capture(lua_State *L, ta_engine *E);
void ta_ctx_release(lua_State *L, ta_engine *E);
int ta_ctx_get(lua_State *L, int keyidx);
int ta_ctx_push_frozen(lua_State *L, ta_task *t);
void ta_sleep_timer_fired(lua_State *L, ta_engine *E, ta_timer *tm);
int ta_open_task(lua_State *L);

/* ---- parking lot core (lot.c) ---- */
struct ta_lot {
  ta_task *first, *last;
  int n;
};
void ta_lot_append(ta_lot *lot, ta_task *t);
void ta_lot_remove(ta_lot *lot, ta_task *t);
ta_task *ta_lot_pop(ta_lot *lot);
void ta_lot_abandon(ta_lot *lot);
int ta_lot_park(lua_State *L, ta_task *t, ta_lot *lot);

/* ---- clock (clock.c) ---- */
struct ta_clock {
  double offset;      /* clock time at base_ns */
  uint64_t base_ns;   /* real time of the last rebase */
  double rate;
  double autojump;    /* seconds of real blocking before a jump; <0 = never */
  /* A clock of the user's (trio/time.c): its time, and the real seconds
  ** to wait until it reaches a deadline.  NULL for a MockClock. */
  double (*now)(ta_clock *c);
  double (*sleep_time)(ta_clock *c, double deadline);
};
#define TA_CLOCK_MT "trio_asyncio.MockClock"
#define TA_USERCLOCK_MT "trio_asyncio.UserClock"
double ta_clock_now(ta_clock *c);
void ta_clock_rebase(ta_clock *c);
uint64_t ta_coarse_ns(void);
void ta_clock_jump(ta_clock *c, double s);
double ta_now(ta_engine *E);

/* ---- libuv handles the engine owns (engine.c) ----
** Every libuv handle of every layer is on the engine's list while open, so
** that shutdown closes them all without knowing their types.  `close`
** stops the handle and calls uv_close (its close callback frees it and
** calls ta_handle_closed); it is called at most once. */
struct ta_owned {
  ta_owned *prev, *next;
  void (*close)(ta_owned *o);
  int persistent;     /* the engine's own machinery: not counted in nhandles */
};
void ta_handle_opened(ta_engine *E, ta_owned *o);
void ta_handle_closing(ta_engine *E, ta_owned *o);
void ta_handle_closed(ta_engine *E);
void ta_free_handle(uv_handle_t *h);
void ta_flush_closes(ta_engine *E);

/* Every uv_signal_t of the runtime starts and stops through these
** (engine/sigown.c): the handling a signal had before comes back when the
** last one in the process stops. */
int ta_signal_start(uv_signal_t *h, uv_signal_cb cb, int signum);
void ta_signal_stop(uv_signal_t *h);

/* ---- what a host (embed/) plugs into a run ---- */
typedef struct ta_host_hooks {
  int (*guest_started)(ta_engine *E);   /* a guest run started; a libuv error code */
  int (*open)(ta_engine *E);            /* (re)open its handles on E->loop */
} ta_host_hooks;

/* ---- engine (engine.c, run.c) ---- */

/* Ids of the slots of a table's array part that the engine hands out
** itself (the weak registry, the anchors): the highest one handed out,
** and those given back, to be handed out again first. */
typedef struct ta_ids {
  int top;
  int *free, nfree, capfree;
  int nclean;         /* free[0..nclean) have empty slots; those above may not yet */
} ta_ids;

/* Metatables of the objects made and checked on hot paths, cached in the
** engine so that setting or checking one costs no lookup by name. */
enum {
  TA_MT_TASK, TA_MT_FUTURE, TA_MT_FUTURE_EXC, TA_MT_AIOTASK, TA_MT_HANDLE, TA_MT_LOOP,
  TA_MT_SEND_CHANNEL, TA_MT_RECEIVE_CHANNEL, TA_MT_QUEUE, TA_MT_LIFO_QUEUE, TA_MT_PRIORITY_QUEUE,
  TA_MT_SCOPE, TA_MT_NURSERY, TA_MT_LOT, TA_MT_SOCKET, TA_MT_STREAM_READER, TA_MT_QUEUE_STATE,
  TA_MT_TASK_SCOPE, TA_MT_AIOTASK_DONE, TA_MT_TRANSPORT_CORE,
  TA_NMT
};

struct ta_engine {
  lua_State *L;             /* main thread, for closing */
  uv_loop_t own_loop;
  uv_loop_t *loop;
  uv_timer_t *wake;         /* bounds the I/O wait by the next deadline */
  uv_signal_t *sigint;
  ta_task **runq, **batch;
  size_t nrunq, caprunq, capbatch;
  size_t nbatch, batch_next; /* the batch being run, and its next task */
  ta_heap timers;
  ta_status root;           /* root of the cancel-status tree of a run */
  ta_status **status_todo;  /* statuses to recompute (status.c)... */
  size_t nstatus_todo, capstatus_todo;
  int recomputing;          /* ...while a walk runs */
  int redeliver;            /* a cancellation could not be delivered: again */
  int redeliver_tries;      /* ticks in a row whose redelivery failed */
  ta_task *unreported;      /* exited tasks whose exit could not be told yet */
  int exit_retries;         /* ticks in a row that told none of them */
  ta_task *current;         /* task being resumed, NULL in scheduler code */
  ta_task *main;            /* root task of the run */
  ta_clock *clock;          /* NULL: the real monotonic clock */
  int clock_ref;
  atomic_int running;       /* a run is active (read by threads posting calls) */
  int abandoned;            /* ...that ta_run_abandon could not end yet */
  int pierce_shields;       /* ...whose shielded tasks are cancelled too */
  int main_done, main_ok;
  int result_ref;           /* packed results or the error of the main task */
  int hook_ref;             /* instrument dispatcher, LUA_NOREF when none */
  int errfactory_ref;       /* Lua function(class, message, traceback) */
  int soon_ref;             /* queue of run_sync_soon callbacks */
  int run_ctx_ref;          /* the context the run started in, or LUA_NOREF */
  int nsoon;
  int soon_closed;          /* the run is ending: run_sync_soon raises RunFinishedError */
  int ki_pending;
  int ki_host;              /* Ctrl-C is for the host stepping this guest run (a sync loop) */
  atomic_int closing;       /* the state is closing (read by threads posting calls) */
  int gc_stress;            /* TA_GC_STRESS: a GC step at every spawn and resume */
  size_t ntasks;            /* live anchored tasks: they keep a run alive */
  size_t nsystem_tree;      /* ...of which system tasks and the tasks under them */
  size_t nunanchored;       /* live tasks anchored by their holders (asyncio Tasks) */
  const void *mt[TA_NMT];   /* metatables the hot paths set and check... */
  int mt_ref[TA_NMT];       /* ...and their registry references */
  ptrdiff_t task_offset[TA_NMT]; /* where objects of that class hold a task, or -1 */
  size_t nhandles;          /* open libuv handles of the layers (owned list) */
  ta_owned *owned;          /* ...the list */
  size_t io_waiters;        /* tasks and watches waiting for fd readiness */
  uint64_t last_poll_ns;
  uint64_t poll_interval_ns; /* TA_POLL_INTERVAL_NS or $TA_POLL_INTERVAL_US */
  ta_lot blocked_waiters;   /* wait_all_tasks_blocked (cushion in each task's timer.when) */
  double idle_accum;        /* real seconds every task has been blocked (for the cushions) */
  uint64_t last_tick_ns;    /* when the last tick ended (0: none yet in this run) */
  int wake_fired;           /* the wake timer fired during the last I/O wait */
  uint32_t next_id;
  int internal_ref;         /* first error of a system task or callback */
  int weak_ref;             /* weak-valued table: objects by their weak id... */
  ta_ids weak_ids;          /* ...and the ids (given back by finalizers) */
  int anchor_ref;           /* table anchoring live objects by their anchor id... */
  ta_ids anchor_ids;        /* ...and the ids */
  /* The task slab (task.c): the structs of the tasks ta_spawn makes. */
  ta_task *free_tasks;      /* slots free for a new task... */
  ta_task *exited_tasks;    /* ...slots free once the batch that saw their task exit is over... */
  ta_task *spawn_slot;      /* ...the slot ta_spawn is filling (the next takes it if that raised) */
  void *task_chunks;        /* ...and the blocks they are cut from, freed with the engine */
  int *ref_holders;         /* holders of each shared reference, by ref (ta_shared_ref) */
  int capholders;
  int guest;                /* the run is a guest run (driven by the host) */
  int guest_ending;         /* its last task exited: the next step ends it */
  lua_State *curL;          /* thread running scheduler or task code now */
  int in_io_wait;           /* inside uv_run: no Lua calls */
  int guest_done_ref;       /* done callback of the guest run */
  int host_loop;            /* E->loop belongs to the host */
  const ta_host_hooks *host;  /* set by embed/ */
  void *host_state;           /* ...and its per-engine state */
  void *fds;                  /* the fd table of io/ (NULL until used) */
  int sigint_watched;         /* io/: signal watches of SIGINT (no KeyboardInterrupt then) */
  void *spare_rbufs;          /* io/: small read buffers kept for reuse, each starting */
  int nspare_rbufs;           /* with the pointer to the next (freed with the engine) */
  /* State of the flavor layers that the engine only stores. */
  void *open_nurseries;     /* trio/: every open nursery */
  void *checked_nursery;    /* trio/: an open nursery start_soon checked last */
  void *running_loop;       /* asyncio/: loop whose callbacks are running */
  int aio_cancelled_ref;    /* asyncio/: the asyncio.CancelledError class */
  int trio_wakeup_ref;      /* asyncio/: the done callback of a Trio task waiting on a future */
  uint32_t gather_serial;   /* asyncio/: of the last asyncio.gather */
  /* The bridge's crossings between trio/ and asyncio/, which cannot call
  ** each other (each sets its own; trio_asyncio's trio_as_aio, W6): */
  void (*start_scope_task)(lua_State *L, ta_engine *E); /* trio/: scope.c, start_scope_task */
  void (*offer_results)(lua_State *L, int fidx, int n); /* asyncio/: future.c, offer_results */
};

ta_engine *ta_engine_get(lua_State *L);
void ta_cache_metatable(lua_State *L, ta_engine *E, int which);
void ta_task_class(ta_engine *E, int which, ptrdiff_t offset);
void ta_setmetatable(lua_State *L, ta_engine *E, int which);
const void *ta_udata_mt(lua_State *L, int idx, void **p);
void *ta_testudata_named(lua_State *L, int idx, int which);
int ta_udata_typeerror(lua_State *L, int idx, int which);

/* luaL_testudata for a cached metatable; E may be NULL (a function
** without the engine as upvalue), then it is looked up by name.  Inline:
** channel endpoints, futures and queues are checked on every operation,
** and the calls were a tenth of a channel round trip's own code. */
static inline void *ta_testudata(lua_State *L, ta_engine *E, int idx, int which) {
  void *p;
  const void *mt;
  if (E == NULL) return ta_testudata_named(L, idx, which);
  if ((p = lua_touserdata(L, idx)) == NULL || !lua_getmetatable(L, idx)) return NULL;
  mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  return mt == E->mt[which] ? p : NULL;
}

/* The same, raising luaL_checkudata's error when it is not one. */
static inline void *ta_checkudata(lua_State *L, ta_engine *E, int idx, int which) {
  void *p = ta_testudata(L, E, idx, which);
  if (p == NULL) ta_udata_typeerror(L, idx, which);
  return p;
}
void ta_push_engine(lua_State *L);
int ta_weak_ref(lua_State *L, ta_engine *E);
int ta_weak_ref_at(lua_State *L, ta_engine *E, int idx);
void ta_push_weak(lua_State *L, ta_engine *E, int id);
void ta_weak_unref(lua_State *L, ta_engine *E, int id);
void ta_weak_unref_later(lua_State *L, ta_engine *E, int id);
int ta_anchor(lua_State *L, ta_engine *E, int idx);
void ta_push_anchored(lua_State *L, ta_engine *E, int id);
void ta_reanchor(lua_State *L, ta_engine *E, int id, int idx);
void ta_unanchor(lua_State *L, ta_engine *E, int id);
void ta_push_unanchor(lua_State *L, ta_engine *E, int id);
void ta_unanchor_later(lua_State *L, ta_engine *E, int id);
void ta_flush_unanchors(lua_State *L, ta_engine *E);
int ta_shared_ref(lua_State *L, ta_engine *E);
void ta_shared_ref_hold(ta_engine *E, int ref);
void ta_shared_unref(lua_State *L, ta_engine *E, int ref);
void ta_push_weak_keyed(lua_State *L, const void *key);
void ta_check_callable(lua_State *L, int idx);
const char *ta_tostring(lua_State *L, int idx);
double ta_now(ta_engine *E);
void ta_runq_grow(ta_engine *E);

/* Queues t for the next batch, once: a task already queued stays where it
** is (a stale second entry would step it twice, or step it after it
** exited).  Inline: every wake-up pushes. */
static inline void ta_runq_push(ta_engine *E, ta_task *t) {
  t->sleep_data = 0; /* as Trio's reschedule: custom_sleep_data is cleared */
  if (t->queued) return;
  t->queued = 1;
  if (E->nrunq == E->caprunq) ta_runq_grow(E);
  E->runq[E->nrunq++] = t;
}
void ta_tick(lua_State *L, ta_engine *E, double max_wait);
double ta_idle_timeout(ta_engine *E);
double ta_wait_timeout(ta_engine *E);
double ta_sleep_time(ta_engine *E, double deadline);
void ta_run_start(lua_State *L, ta_engine *E, int fnidx, int argsidx, int clockidx, int flavor,
                  const ta_task_kind *kind);
int ta_run_alive(ta_engine *E);
void ta_run_step(lua_State *L, ta_engine *E, double max_wait);
int ta_run_finish(lua_State *L, ta_engine *E);
int ta_run_abandon(lua_State *L, ta_engine *E, int must_end);
int ta_run_active(lua_State *L, ta_engine *E);
/* What ta_guest_step answers. */
enum { TA_GUEST_DONE = 0, TA_GUEST_ALIVE = 1, TA_GUEST_DONE_RAISED = 2 };
int ta_guest_step(lua_State *L, ta_engine *E, double max_wait);
void ta_internal_error(lua_State *L, ta_engine *E);
void ta_keep_retry_error(lua_State *L);
void ta_retry_failed(lua_State *L, int *tries, int progress);
int ta_engine_handles_init(ta_engine *E);
void ta_engine_handles_close(ta_engine *E);
void ta_hook(lua_State *L, ta_engine *E, const char *event, ta_task *t);
void ta_hook_arg(lua_State *L, ta_engine *E, const char *event);
void ta_hook_in_task(lua_State *L, ta_engine *E, ta_task *t, const char *event);
void ta_push_error(lua_State *L, ta_engine *E, const char *cls, const char *msg);
int ta_error(lua_State *L, const char *cls, const char *fmt, ...);
void ta_traceback(lua_State *L, lua_State *co, const char *msg, int level);
int ta_bad_self(lua_State *L, const char *fname, const char *cls);
void ta_register(lua_State *L, const luaL_Reg *funcs); /* into [core, engine] */
void ta_push_helpers(lua_State *L, int tidx, const char *const names[], const char *fname);
void ta_newclass(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods,
                 const char *methods_field);
int ta_open_run(lua_State *L);

/* Hot paths tell their own userdata by size and tag instead of by
** metatable: the C struct's first member is a `const char *tag` pointing
** at a static char that only its file writes there.  The userdata at idx
** if it has exactly size bytes and starts with tag, else NULL: two C API
** calls where fetching and comparing the metatable takes four and pushes
** a value.  (A light userdata has no size: never taken.) */
static inline void *ta_totagged(lua_State *L, int idx, size_t size, const char *tag) {
  void *p = lua_touserdata(L, idx);
  return p != NULL && lua_rawlen(L, idx) == size && *(const char **)p == tag ? p : NULL;
}

/* The engine is upvalue 1 of every function of the core module. */
#define ta_upengine(L) ((ta_engine *)lua_touserdata((L), lua_upvalueindex(1)))

/* ta_async_check (below) in engine E, which the caller already found (hot
** paths find it once).  Inline for the usual case, a task of that flavor
** calling from its own thread where it can yield (a call less: about
** 40 instructions a W2 round trip, four checks); anything else goes through
** ta_async_check_full, which also raises the errors. */
static inline ta_task *ta_async_check_in(lua_State *L, ta_engine *E, const char *fname, int flavor) {
  ta_task *t = E->current;
  if (t != NULL && t->co == L && (t->flavor & flavor) && lua_isyieldable(L)) return t;
  return ta_async_check_full(L, E, fname, flavor);
}

/* The running task of that flavor, able to suspend: what every async
** primitive (a function of the core module) checks first; raises a clear
** error naming fname otherwise.  The same as ta_async_check_in, the engine
** found from the calling function's upvalue. */
static inline ta_task *ta_async_check(lua_State *L, const char *fname, int flavor) {
  return ta_async_check_in(L, ta_upengine(L), fname, flavor);
}

/* A Ctrl-C is pending for task t (the main task), not for a host. */
#define ta_ki_for(E, t) ((E)->ki_pending && !(E)->ki_host && (t) == (E)->main)

/* Task t has a cancellation to deliver: a cancelled scope, or a Ctrl-C.
** An operation starts with Trio's checkpoint_if_cancelled as
**   if (ta_cancel_pending(t)) return ta_checkpoint(L, t);
** with a cancellation pending, it is a checkpoint (a schedule point, then
** Cancelled), as Trio's are; else it goes on. */
#define ta_cancel_pending(t) ((t)->status->cancelled || ta_ki_for((t)->E, (t)))

/* Hot-path hint for a hook check. */
#define ta_hooked(E) ((E)->hook_ref != LUA_NOREF)

#endif
