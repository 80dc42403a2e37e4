/*
** io.c — readiness waits on raw file descriptors (trio.lowlevel
** wait_readable / wait_writable / notify_closing), on one uv_poll_t per fd.
** libuv allows one poll handle per fd, so a watch holds at most one reader
** and one writer; a second waiter is a BusyResourceError.  The handle is
** closed as soon as nobody waits, and freed in its close callback.
*/
#include <stdlib.h>

#include "ta.h"

typedef struct ta_fdwatch {
  uv_poll_t h;
  ta_engine *E;
  int fd;
  ta_task *reader, *writer;
} fdwatch;

static void free_watch(uv_handle_t *h) {
  fdwatch *w = (fdwatch *)h->data;
  ta_handle_closed(w->E);
  free(w);
}

static void release(fdwatch *w) {
  ta_engine *E = w->E;
  E->fdw[w->fd] = NULL;
  uv_poll_stop(&w->h);
  uv_close((uv_handle_t *)&w->h, free_watch);
}

static void on_ready(uv_poll_t *h, int status, int events);

static void update(fdwatch *w) {
  int events = (w->reader ? UV_READABLE : 0) | (w->writer ? UV_WRITABLE : 0);
  if (events == 0) release(w);
  else uv_poll_start(&w->h, events, on_ready);
}

static void wake(ta_task *t) {
  t->E->io_waiters--;
  ta_reschedule(t, 0, 0);
}

static void on_ready(uv_poll_t *h, int status, int events) {
  fdwatch *w = (fdwatch *)h->data;
  if (w->reader && (status < 0 || (events & UV_READABLE))) {
    wake(w->reader);
    w->reader = NULL;
  }
  if (w->writer && (status < 0 || (events & UV_WRITABLE))) {
    wake(w->writer);
    w->writer = NULL;
  }
  update(w);
}

static int io_abort(lua_State *L, ta_task *t) {
  fdwatch *w = (fdwatch *)t->wait;
  (void)L;
  if (w->reader == t) w->reader = NULL;
  if (w->writer == t) w->writer = NULL;
  t->E->io_waiters--;
  update(w);
  return TA_ABORT_SUCCEEDED;
}

static fdwatch *get_watch(lua_State *L, ta_engine *E, int fd) {
  fdwatch *w;
  int rc;
  if (fd >= E->nfdw) {
    int n = E->nfdw ? E->nfdw : 16;
    fdwatch **a;
    while (n <= fd) n *= 2;
    a = (fdwatch **)realloc(E->fdw, (size_t)n * sizeof *a);
    if (a == NULL) luaL_error(L, "not enough memory");
    for (int i = E->nfdw; i < n; i++) a[i] = NULL;
    E->fdw = a;
    E->nfdw = n;
  }
  if (E->fdw[fd] != NULL) return E->fdw[fd];
  w = (fdwatch *)calloc(1, sizeof *w);
  if (w == NULL) luaL_error(L, "not enough memory");
  rc = uv_poll_init(E->loop, &w->h, fd);
  if (rc < 0) {
    free(w);
    luaL_error(L, "cannot watch fd %d: %s", fd, uv_strerror(rc));
  }
  w->h.data = w;
  w->E = E;
  w->fd = fd;
  E->fdw[fd] = w;
  ta_handle_opened(E);
  return w;
}

static int wait_fd(lua_State *L, const char *fname, int writing) {
  ta_engine *E = ta_upengine(L);
  lua_Integer fd = luaL_checkinteger(L, 1);
  ta_task *t;
  fdwatch *w;
  luaL_argcheck(L, fd >= 0 && fd < 1 << 24, 1, "not a valid file descriptor");
  t = ta_async_check(L, fname, TA_TRIO);
  ta_check_cancelled(L, t);
  w = get_watch(L, E, (int)fd);
  if (writing ? w->writer != NULL : w->reader != NULL)
    return ta_error(L, "BusyResourceError", "%s: another task is already waiting to %s fd %d",
                    fname, writing ? "write to" : "read from", (int)fd);
  if (writing) w->writer = t;
  else w->reader = t;
  update(w);
  E->io_waiters++;
  t->wait = w;
  return ta_park(L, t, io_abort);
}

static int l_wait_readable(lua_State *L) { return wait_fd(L, "trio.lowlevel.wait_readable", 0); }
static int l_wait_writable(lua_State *L) { return wait_fd(L, "trio.lowlevel.wait_writable", 1); }

static void wake_closed(lua_State *L, ta_task *t) {
  t->E->io_waiters--;
  ta_push_error(L, t->E, "ClosedResourceError", "the file descriptor was closed while waiting");
  lua_xmove(L, t->co, 1);
  ta_reschedule(t, 1, 1);
}

static int l_notify_closing(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  lua_Integer fd = luaL_checkinteger(L, 1);
  fdwatch *w;
  if (fd < 0 || fd >= E->nfdw || (w = E->fdw[fd]) == NULL) return 0;
  if (w->reader) wake_closed(L, w->reader);
  if (w->writer) wake_closed(L, w->writer);
  w->reader = w->writer = NULL;
  release(w);
  return 0;
}

void ta_io_close_all(ta_engine *E) {
  for (int i = 0; i < E->nfdw; i++)
    if (E->fdw[i] != NULL) release(E->fdw[i]);
}

static const luaL_Reg io_funcs[] = {
  {"wait_readable", l_wait_readable},
  {"wait_writable", l_wait_writable},
  {"notify_closing", l_notify_closing},
  {NULL, NULL}
};

int ta_open_io(lua_State *L) {
  ta_register(L, io_funcs);
  return 0;
}
