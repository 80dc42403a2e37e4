/*
** io.h — the I/O layer: libuv resources, flavor-neutral, on engine/ only.
**
** The fd table: one record per watched file descriptor, shared by both
** flavors (libuv allows one uv_poll_t per fd).  Each record has a list of
** watchers; a watcher wants some events and is told when they come.  Its
** callback runs inside a libuv callback, so it must not run Lua: it
** reschedules a parked task, or marks an asyncio watch pending and wakes
** its loop.  A Trio wait_readable and an asyncio add_reader on the same fd
** are two watchers of one record.
*/
#ifndef TA_IO_H
#define TA_IO_H

#include <stdatomic.h>

#include "engine/engine.h"

typedef struct ta_fdwatcher ta_fdwatcher;
struct ta_fdwatcher {
  ta_fdwatcher *prev, *next;
  int fd;
  int events;                 /* UV_READABLE | UV_WRITABLE wanted; 0: none now */
  /* events came (both on an error of the fd) */
  void (*ready)(ta_fdwatcher *w, int events);
};

/* Starts watching w->fd for w->events: 0, or a libuv error code (the fd
** is not pollable, no memory) for the caller to report. */
int ta_fd_watch(ta_engine *E, ta_fdwatcher *w);
/* After w->events changed. */
void ta_fd_update(ta_engine *E, ta_fdwatcher *w);
/* Stops watching; the record closes when nobody watches its fd. */
void ta_fd_unwatch(ta_engine *E, ta_fdwatcher *w);
/* The first watcher of fd (then follow ->next), or NULL. */
ta_fdwatcher *ta_fd_watchers(ta_engine *E, int fd);
/* How many watchers (of either flavor) want to read, and to write. */
void ta_fd_counts(ta_engine *E, int *nread, int *nwrite);
/* The fd argument at arg of the public function fname: an integer, or an
** object with a fileno() method (trio.socket sockets, files) or getfd()
** (LuaSocket), as Python takes any object with fileno().  Raises an
** argument error naming fname for anything else or an fd out of range. */
int ta_check_fd(lua_State *L, int arg, const char *fname);

/* ---- waiters ----
** How an operation on a resource (a socket, a name lookup) waits, written
** once for both flavors.  The resource has one slot per direction; the
** face that waits fills it: the Trio face with a parked task, the asyncio
** face with a Future or a callback of a loop.  When something changes that
** the operation must look at again (data came, a connect finished, the
** socket was closed), the resource calls wake, possibly from a libuv
** callback: wake never runs Lua, it reschedules the task or queues the
** loop's callback, and empties the slot (one wake per wait).  The
** operation then runs again in Lua context and either completes or waits
** again.  detach is called instead if the resource is freed while a slot
** is still filled (the engine closing it).
*/
typedef struct ta_waiter ta_waiter;
struct ta_waiter {
  void (*wake)(ta_waiter *w);   /* NULL: nobody waits */
  void (*detach)(ta_waiter *w);
  void *data;                   /* the face's: a task, a loop's record */
};

static inline void ta_waiter_wake(ta_waiter *w) {
  if (w->wake != NULL) w->wake(w);
}

static inline void ta_waiter_detach(ta_waiter *w) {
  if (w->wake != NULL && w->detach != NULL) w->detach(w);
  w->wake = NULL;
  w->detach = NULL;
  w->data = NULL;
}

/* ---- OS errors (oserror.c) ----
** Pushes (or raises) the trio_asyncio.OSError subclass for a libuv error
** code, with errno, code, filename (may be NULL) and the message
** "<what fmt says>: <libuv's text>", e.g. "connect 127.0.0.1:1: connection
** refused". */
void ta_push_oserror(lua_State *L, int uverr, const char *filename, const char *fmt, ...);
int ta_oserror(lua_State *L, int uverr, const char *filename, const char *fmt, ...);

/* ---- operations that complete once (ioreq.c) ----
** A file request, a job on a worker thread, a child's exit...: started
** from Lua, completed by a libuv callback.  It completes one waiter, which
** is either a parked Trio task (trio/ioreq_wait.c) or an asyncio Future
** (asyncio/ioreq_future.c): the waiter's face sets `wake` and `waiter` before
** the request can complete.
**
** Lua holds a request through a small userdata (trio_asyncio.IORequest,
** made by ta_ioreq_push); the face waits on that object.  Life of a
** request:
**   started    ta_ioreq_start links it on the engine's handle list (as a
**              persistent node: a request is not a handle, but shutdown
**              must find it);
**   completed  the operation calls ta_ioreq_complete from its libuv
**              callback: no Lua; the waiter's wake() reschedules a task or
**              posts to a loop;
**   delivered  the waiter, back in Lua, calls ta_ioreq_deliver: the
**              operation's deliver() pushes its results (or its error)
**              and the request is freed.
** A waiter that gives up (a cancellable wait cancelled, a Future
** cancelled, the IORequest collected) calls ta_ioreq_abandon: the
** operation's cancel() may end it early, and it frees itself when it
** completes.  Shutdown abandons whatever is still in flight.
*/
typedef struct ta_ioreq ta_ioreq;
typedef struct ta_ioreq_type {
  const char *name;
  /* Pushes the results and returns how many, or pushes the error and
  ** returns -1.  Lua context; the request is freed afterwards. */
  int (*deliver)(lua_State *L, ta_ioreq *r);
  /* Optional: the waiter is gone, end early if possible (uv_cancel, a
  ** flag a worker thread checks).  Never frees. */
  void (*cancel)(ta_ioreq *r);
  /* Frees the request (may run on a worker thread once the engine is
  ** gone: it must touch nothing but the request). */
  void (*release)(ta_ioreq *r);
} ta_ioreq_type;

enum { TA_IOREQ_NEW, TA_IOREQ_RUNNING, TA_IOREQ_DONE };

struct ta_ioreq {
  ta_owned owned;             /* first: on the engine's list while running */
  const ta_ioreq_type *type;
  ta_engine *E;
  void (*wake)(ta_ioreq *r);  /* the waiter's: from a libuv callback, no Lua */
  void (*unwait)(ta_ioreq *r); /* the waiter's, optional: it is abandoned */
  void *waiter;
  unsigned char state, abandoned;
  unsigned char linked;       /* on the engine's list */
  void *box;                  /* its IORequest object while it has one */
  /* the asyncio waiter's links (asyncio/ioreq_future.c): its loop's requests,
  ** and the loop's list of completed ones */
  void *wloop;
  ta_ioreq *wprev, *wnext, *next_done;
  int fref;                   /* the waiting Future's weak id (engine.c), or LUA_NOREF */
  /* the asyncio waiter only watches: its Future is set when the request
  ** completes, and the results stay for whoever holds the IORequest */
  unsigned char notify_only;
};

/* The operation was started: r->type and r->E are set. */
void ta_ioreq_start(ta_engine *E, ta_ioreq *r, const ta_ioreq_type *type);
/* From the operation's libuv callback. */
void ta_ioreq_complete(ta_ioreq *r);
/* The waiter, in Lua: pushes the results (returns n) or raises; or,
** ta_ioreq_results, returns -1 with the error pushed.  r is freed. */
int ta_ioreq_deliver(lua_State *L, ta_ioreq *r);
int ta_ioreq_results(lua_State *L, ta_ioreq *r);
/* The waiter gives up. */
void ta_ioreq_abandon(ta_ioreq *r);
/* Pushes a new IORequest object for r (it abandons r if collected before
** delivery); ta_ioreq_check returns the request of the object at idx,
** NULL once delivered, and ta_ioreq_take detaches it from the object. */
void ta_ioreq_push(lua_State *L, ta_ioreq *r);
ta_ioreq *ta_ioreq_check(lua_State *L, int idx);
ta_ioreq *ta_ioreq_take(lua_State *L, int idx);
int ta_open_ioreq(lua_State *L);

/* ---- values copied between lua_States (copy.c) ---- */
typedef struct ta_buf {
  char *p;
  size_t n, cap;
} ta_buf;
int ta_buf_put(ta_buf *b, const void *p, size_t n);
void ta_buf_free(ta_buf *b);
/* Appends the n values from idx to b: 0, or -1 with *failed the index
** (0-based) of the value that cannot be copied and why ("a function", "a
** table with a cycle"...).  Error objects (allow_errors) go as their
** class and fields. */
int ta_copy_encode(lua_State *L, int idx, int n, ta_buf *b, int allow_errors, int *failed,
                   char *why, size_t whylen);
/* Pushes n values read from b at *pos (advanced): 0, or -1 (nothing
** pushed) on a malformed buffer.  push_error(L, short_class, ud) pushes a
** new error object of that class (NULL: error objects come as tables). */
int ta_copy_decode(lua_State *L, const ta_buf *b, size_t *pos, int n,
                   void (*push_error)(lua_State *L, const char *cls, void *ud), void *ud);

/* ---- worker threads (thread.c) ----
** The engine's own pool of OS threads, apart from libuv's threadpool (which
** serves file and DNS requests).  A job runs `work` on a worker thread,
** with that thread's lua_State (standard libraries; made on first use,
** kept for the thread's life); then it completes like any request. */
typedef struct ta_job ta_job;
struct ta_job {
  ta_ioreq req;               /* first */
  ta_job *next_job;
  ta_job *prev_done;          /* on the pool's done list, which it leaves alone */
  void (*work)(ta_job *j, lua_State *W);
  struct ta_pool *pool;
  struct ta_jobgroup *group;  /* its executor's limit, or NULL */
  atomic_int stop;            /* abandoned: a running Lua function stops */
  unsigned char taken, finished; /* by a worker; its work ended (pool mutex) */
};
/* Queues j (its req started, its work set): 0, or a libuv error code. */
int ta_job_submit(lua_State *L, ta_engine *E, ta_job *j);
/* The C host's worker job (declared in include/trio_asyncio.h). */
int trio_asyncio_push_work(lua_State *L, void (*work)(void *arg),
                           int (*done)(lua_State *L, void *arg), void *arg);
int ta_open_thread(lua_State *L);

/* ---- files (fs.c) ---- */
int ta_open_fs(lua_State *L);

/* ---- signals (signal.c) ---- */
int ta_open_signal(lua_State *L);

/* ---- child processes (process.c) and their pipes (procpipe.c) ----
** ta_procpipe_push pushes a PipeStream over fd, the parent's end of a
** pipe (writable: the child's stdin): 0, or a libuv error (nothing
** pushed, fd still the caller's). */
int ta_procpipe_push(lua_State *L, ta_engine *E, int fd, int writable);
int ta_open_procpipe(lua_State *L);
int ta_open_process(lua_State *L);

/* ---- TLS on OpenSSL memory BIOs (tls.c) ---- */
int ta_open_tls(lua_State *L);

#endif
