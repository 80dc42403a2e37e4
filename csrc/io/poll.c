/*
** poll.c — the fd table (see io.h): one uv_poll_t per watched fd, shared
** by every watcher of that fd, whichever flavor.  The handle watches the
** union of what its watchers want; it is closed as soon as nobody watches,
** and freed in its close callback.  Shutdown closes it through the
** engine's list of owned handles.
*/
#include <stdlib.h>

#include "io/io.h"

typedef struct fdrecord {
  ta_owned owned;             /* first: the engine's list of handles */
  uv_poll_t h;
  ta_engine *E;
  int fd;
  ta_fdwatcher *watchers;
} fdrecord;

typedef struct fdtable {
  fdrecord **rec;
  int n;
  int nopen;                  /* records in it: the table goes with the last */
} fdtable;

static fdtable *table(ta_engine *E) { return (fdtable *)E->fds; }

static fdrecord *find(ta_engine *E, int fd) {
  fdtable *tb = table(E);
  return (tb != NULL && fd >= 0 && fd < tb->n) ? tb->rec[fd] : NULL;
}

static void free_record(uv_handle_t *h) {
  fdrecord *r = (fdrecord *)h->data;
  ta_handle_closed(r->E);
  free(r);
}

/* The engine's shutdown (or the last watcher leaving) closes it. */
static void close_record(ta_owned *o) {
  fdrecord *r = (fdrecord *)o;
  fdtable *tb = table(r->E);
  if (tb != NULL && r->fd < tb->n && tb->rec[r->fd] == r) {
    tb->rec[r->fd] = NULL;
    if (--tb->nopen == 0) {
      free(tb->rec);
      free(tb);
      r->E->fds = NULL;
    }
  }
  for (ta_fdwatcher *w = r->watchers; w != NULL; w = w->next) w->prev = NULL;
  r->watchers = NULL;
  uv_poll_stop(&r->h);
  uv_close((uv_handle_t *)&r->h, free_record);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  fdrecord *r = (fdrecord *)h->data;
  ta_fdwatcher *w, *next;
  if (status < 0) events = UV_READABLE | UV_WRITABLE;
  for (w = r->watchers; w != NULL; w = next) {
    next = w->next; /* ready may unwatch w */
    if (w->events & events) w->ready(w, w->events & events);
  }
}

/* Polls for what the watchers want now; closes the record when nothing.
** Returns uv_poll_start's error (0 otherwise). */
static int restart(fdrecord *r) {
  int events = 0;
  for (ta_fdwatcher *w = r->watchers; w != NULL; w = w->next) events |= w->events;
  if (r->watchers == NULL) {
    ta_handle_closing(r->E, &r->owned);
    close_record(&r->owned);
  } else if (events == 0) {
    uv_poll_stop(&r->h);
  } else {
    return uv_poll_start(&r->h, events, on_poll);
  }
  return 0;
}

/* The record of fd, opened if needed; NULL with *rc set on failure. */
static fdrecord *open_record(ta_engine *E, int fd, int *rc) {
  fdtable *tb = table(E);
  fdrecord *r;
  if (tb == NULL) {
    tb = (fdtable *)calloc(1, sizeof *tb);
    if (tb == NULL) return *rc = UV_ENOMEM, NULL;
    E->fds = tb;
  }
  if (fd >= tb->n) {
    int n = tb->n ? tb->n : 16;
    fdrecord **a;
    while (n <= fd) n *= 2;
    a = (fdrecord **)realloc(tb->rec, (size_t)n * sizeof *a);
    if (a == NULL) return *rc = UV_ENOMEM, NULL;
    for (int i = tb->n; i < n; i++) a[i] = NULL;
    tb->rec = a;
    tb->n = n;
  }
  if (tb->rec[fd] != NULL) return tb->rec[fd];
  r = (fdrecord *)calloc(1, sizeof *r);
  *rc = r == NULL ? UV_ENOMEM : uv_poll_init(E->loop, &r->h, fd);
  if (*rc < 0) {
    free(r);
    if (tb->nopen == 0) {
      free(tb->rec);
      free(tb);
      E->fds = NULL;
    }
    return NULL;
  }
  r->h.data = r;
  r->E = E;
  r->fd = fd;
  r->owned.close = close_record;
  tb->rec[fd] = r;
  tb->nopen++;
  ta_handle_opened(E, &r->owned);
  return r;
}

int ta_fd_watch(ta_engine *E, ta_fdwatcher *w) {
  int rc = 0;
  fdrecord *r = open_record(E, w->fd, &rc);
  if (r == NULL) return rc;
  TA_LIST_PUSH(r->watchers, w, prev, next);
  if ((rc = restart(r)) != 0) { /* nothing would ever wake w: not watched */
    TA_LIST_REMOVE(r->watchers, w, prev, next);
    restart(r);
  }
  return rc;
}

/* A poll that cannot be started for the new events wakes every watcher,
** as a poll error does: their operations then meet the error themselves. */
void ta_fd_update(ta_engine *E, ta_fdwatcher *w) {
  fdrecord *r = find(E, w->fd);
  int rc = r != NULL ? restart(r) : 0;
  if (rc != 0) on_poll(&r->h, rc, 0);
}

void ta_fd_unwatch(ta_engine *E, ta_fdwatcher *w) {
  fdrecord *r = find(E, w->fd);
  if (r == NULL) return; /* closed at shutdown already */
  TA_LIST_REMOVE(r->watchers, w, prev, next);
  restart(r);
}

ta_fdwatcher *ta_fd_watchers(ta_engine *E, int fd) {
  fdrecord *r = find(E, fd);
  return r != NULL ? r->watchers : NULL;
}

void ta_fd_counts(ta_engine *E, int *nread, int *nwrite) {
  fdtable *tb = table(E);
  *nread = *nwrite = 0;
  if (tb == NULL) return;
  for (int fd = 0; fd < tb->n; fd++) {
    if (tb->rec[fd] == NULL) continue;
    for (ta_fdwatcher *w = tb->rec[fd]->watchers; w != NULL; w = w->next) {
      if (w->events & UV_READABLE) (*nread)++;
      if (w->events & UV_WRITABLE) (*nwrite)++;
    }
  }
}

/* Pushes obj:fileno or obj:getfd of the value at arg and gives 1, or gives
** 0 with nothing pushed when it has neither (or cannot be indexed). */
static int push_fd_method(lua_State *L, int arg) {
  int t = lua_type(L, arg);
  if (t == LUA_TUSERDATA) {
    if (luaL_getmetafield(L, arg, "__index") == LUA_TNIL) return 0;
    lua_pop(L, 1);
  } else if (t != LUA_TTABLE) return 0;
  if (lua_getfield(L, arg, "fileno") == LUA_TFUNCTION) return 1;
  lua_pop(L, 1);
  if (lua_getfield(L, arg, "getfd") == LUA_TFUNCTION) return 1;
  lua_pop(L, 1);
  return 0;
}

int ta_check_fd(lua_State *L, int arg, const char *fname) {
  lua_Integer fd;
  if (lua_isinteger(L, arg)) fd = lua_tointeger(L, arg);
  else if (push_fd_method(L, arg)) {
    lua_pushvalue(L, arg);
    lua_call(L, 1, 1);
    if (!lua_isinteger(L, -1))
      return luaL_error(L, "bad argument #%d to '%s' (its fileno() gave %s, not an integer)", arg, fname,
                        lua_type(L, -1) == LUA_TNUMBER ? "a float" : luaL_typename(L, -1));
    fd = lua_tointeger(L, -1);
    lua_pop(L, 1);
  } else
    return luaL_error(L, "bad argument #%d to '%s' (fd: integer or object with fileno() expected, got %s)",
                      arg, fname, lua_type(L, arg) == LUA_TNUMBER ? "float" : luaL_typename(L, arg));
  if (fd < 0 || fd >= TA_MAX_FD)
    return luaL_error(L, "bad argument #%d to '%s' (not a valid file descriptor: %I)", arg, fname, (LUAI_UACINT)fd);
  return (int)fd;
}
