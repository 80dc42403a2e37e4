/*
** fdwait.c — trio.lowlevel wait_readable / wait_writable /
** notify_closing: a parked task as a watcher of the fd table (io/poll.c).
** One task may wait to read and one to write an fd at a time; a second is
** a BusyResourceError.  An asyncio add_reader of the same fd is another
** watcher of the same record.
*/
#include <stdlib.h>

#include "trio/trio.h"

typedef struct fdwait {
  ta_fdwatcher w;             /* first */
  ta_task *task;
} fdwait;

static void wait_done(ta_engine *E, fdwait *fw) {
  ta_fd_unwatch(E, &fw->w);
  E->io_waiters--;
  free(fw);
}

/* Inside libuv's callback: no Lua, just reschedule. */
static void on_ready(ta_fdwatcher *w, int events) {
  fdwait *fw = (fdwait *)w;
  ta_task *t = fw->task;
  (void)events;
  wait_done(t->E, fw);
  ta_reschedule(t, 0, 0);
}

static int fdwait_abort(lua_State *L, ta_task *t) {
  (void)L;
  wait_done(t->E, (fdwait *)t->wait);
  return TA_ABORT_SUCCEEDED;
}

static fdwait *find_wait(ta_engine *E, int fd, int events) {
  for (ta_fdwatcher *w = ta_fd_watchers(E, fd); w != NULL; w = w->next)
    if (w->ready == on_ready && w->events == events) return (fdwait *)w;
  return NULL;
}

static int wait_fd(lua_State *L, const char *fname, int events) {
  ta_engine *E = ta_upengine(L);
  int fd = ta_check_fd(L, 1, fname);
  ta_task *t;
  fdwait *fw;
  int rc;
  t = ta_async_check(L, fname, TA_TRIO);
  if (ta_cancel_pending(t)) return ta_checkpoint(L, t);
  if (find_wait(E, fd, events) != NULL)
    return ta_error(L, "BusyResourceError", "%s: another task is already waiting to %s fd %d",
                    fname, events == UV_WRITABLE ? "write to" : "read from", fd);
  fw = (fdwait *)calloc(1, sizeof *fw);
  if (fw == NULL) return luaL_error(L, "%s: not enough memory", fname);
  fw->w.fd = fd;
  fw->w.events = events;
  fw->w.ready = on_ready;
  fw->task = t;
  if ((rc = ta_fd_watch(E, &fw->w)) != 0) {
    free(fw);
    if (rc == UV_EEXIST) /* libuv has one watcher per fd: a stream of ours holds it */
      return ta_oserror(L, rc, NULL, "%s: fd %d is read through one of our streams (libuv watches it); "
                        "use the stream's own methods, or only raw waits on this fd", fname, fd);
    return ta_oserror(L, rc, NULL, "%s: cannot watch fd %d", fname, fd);
  }
  E->io_waiters++;
  t->wait = fw;
  return ta_park(L, t, fdwait_abort);
}

static int l_wait_readable(lua_State *L) {
  return wait_fd(L, "trio.lowlevel.wait_readable", UV_READABLE);
}

static int l_wait_writable(lua_State *L) {
  return wait_fd(L, "trio.lowlevel.wait_writable", UV_WRITABLE);
}

/* The fd is about to be closed: its waiting tasks get ClosedResourceError.
** Outside a run it is an error, as in Trio (no run, no waiters to tell). */
static int l_notify_closing(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  fdwait *fw;
  int fd;
  if (lua_isinteger(L, 1) && (lua_tointeger(L, 1) < 0 || lua_tointeger(L, 1) >= TA_MAX_FD))
    return 0; /* as Trio: nobody can wait on such an fd, so nobody is told */
  fd = ta_check_fd(L, 1, "trio.lowlevel.notify_closing");
  if (!E->running) return luaL_error(L, "trio.lowlevel.notify_closing: must be called inside trio.run");
  while ((fw = find_wait(E, fd, UV_READABLE)) != NULL ||
         (fw = find_wait(E, fd, UV_WRITABLE)) != NULL) {
    ta_task *t = fw->task;
    wait_done(E, fw);
    ta_push_error(L, E, "ClosedResourceError", "the file descriptor was closed while waiting");
    lua_xmove(L, t->co, 1);
    ta_reschedule(t, 1, 1);
  }
  return 0;
}

static const luaL_Reg fdwait_funcs[] = {
  {"wait_readable", l_wait_readable},
  {"wait_writable", l_wait_writable},
  {"notify_closing", l_notify_closing},
  {NULL, NULL}
};

int ta_open_fdwait(lua_State *L) {
  ta_register(L, fdwait_funcs);
  return 0;
}
