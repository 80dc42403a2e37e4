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

#endif
