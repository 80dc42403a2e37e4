/*
** signal.c — signals on uv_signal_t, for trio.open_signal_receiver and
** loop:add_signal_handler.
**
** A SignalWatch watches a set of signals (one uv_signal_t each, owned by
** the engine's handle list) and queues the signals that arrive, each at
** most once until it is taken (Trio coalesces the same way).  A waiter
** takes them one at a time through a request (io.h): signal_next(watch)
** completes as soon as a signal is queued, and its delivery takes the
** first one; an abandoned request takes nothing, so no signal is lost to a
** cancelled wait.  Both faces are Lua (lua/trio/signals.lua).
**
** libuv installs one process-wide handler per signal while any handle
** watches it, and puts back SIG_DFL when the last one stops; the handles
** start and stop through engine/sigown.c, which puts back the handling
** that was there before (SIG_IGN for SIGPIPE, a host's handler) when the
** last handle of the process on that signal stops.
** Watching SIGINT stops the engine's own SIGINT handle (KeyboardInterrupt)
** meanwhile, as Trio's receiver replaces the KeyboardInterrupt handler; the
** engine counts the watches (E->sigint_watched) so that a run starting
** meanwhile (an asyncio loop's next run_until_complete) leaves it off.
*/
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

#define WATCH_MT "trio_asyncio.SignalWatch"
#define MAX_WATCHED 32

typedef struct sigwatch sigwatch;

typedef struct sighandle {
  ta_owned owned;             /* first */
  uv_signal_t h;
  ta_engine *E;
  sigwatch *w;                /* NULL once the watch is gone */
  int signum;
} sighandle;

typedef struct sigreq {
  ta_ioreq req;               /* first */
  sigwatch *w;                /* NULL once the watch is closed */
} sigreq;

struct sigwatch {
  ta_engine *E;
  int n;
  sighandle *hs[MAX_WATCHED];
  int pending[MAX_WATCHED];   /* queued signals, oldest first, each once */
  int npending;
  sigreq *waiter;             /* the request waiting for the next one */
  int closed;
  int took_sigint;            /* counted in E->sigint_watched */
};

static const struct { const char *name; int num; } signames[] = {
  {"SIGHUP", SIGHUP}, {"SIGINT", SIGINT}, {"SIGQUIT", SIGQUIT}, {"SIGILL", SIGILL},
  {"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT}, {"SIGBUS", SIGBUS}, {"SIGFPE", SIGFPE},
  {"SIGKILL", SIGKILL}, {"SIGUSR1", SIGUSR1}, {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2},
  {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM}, {"SIGCHLD", SIGCHLD},
  {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP}, {"SIGTSTP", SIGTSTP}, {"SIGTTIN", SIGTTIN},
  {"SIGTTOU", SIGTTOU}, {"SIGURG", SIGURG}, {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ},
  {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH}, {"SIGIO", SIGIO},
  {"SIGSYS", SIGSYS},
};

/* ---- the handles ---- */

static void handle_closed(uv_handle_t *h) {
  sighandle *s = (sighandle *)h->data;
  ta_handle_closed(s->E);
  free(s);
}

/* Stops the handle (the previous handling comes back with the process's
** last handle on the signal), closes it. */
static void close_handle(ta_owned *o) {
  sighandle *s = (sighandle *)o;
  ta_signal_stop(&s->h);
  if (s->w != NULL) {
    for (int i = 0; i < s->w->n; i++)
      if (s->w->hs[i] == s) s->w->hs[i] = NULL;
    s->w = NULL;
  }
  uv_close((uv_handle_t *)&s->h, handle_closed);
}

static void complete_waiter(sigwatch *w) {
  sigreq *r = w->waiter;
  if (r == NULL) return;
  w->waiter = NULL;
  ta_ioreq_complete(&r->req);
}

static void on_signal(uv_signal_t *h, int signum) {
  sighandle *s = (sighandle *)h->data;
  sigwatch *w = s->w;
  if (w == NULL || w->closed) return;
  for (int i = 0; i < w->npending; i++)
    if (w->pending[i] == signum) goto queued;
  if (w->npending < MAX_WATCHED) w->pending[w->npending++] = signum;
queued:
  complete_waiter(w);
}

/* ---- requests: the next signal ---- */

static int sigreq_deliver(lua_State *L, ta_ioreq *q) {
  sigreq *r = (sigreq *)q;
  sigwatch *w = r->w;
  int signum;
  (void)L;
  if (w == NULL || w->npending == 0) return 0; /* the watch closed: nothing */
  signum = w->pending[0];
  memmove(w->pending, w->pending + 1, (size_t)(--w->npending) * sizeof w->pending[0]);
  lua_pushinteger(L, signum);
  return 1;
}

static void sigreq_cancel(ta_ioreq *q) {
  sigreq *r = (sigreq *)q;
  if (r->w != NULL && r->w->waiter == r) {
    r->w->waiter = NULL;
    ta_ioreq_complete(q); /* abandoned: frees it */
  }
}

static void sigreq_release(ta_ioreq *q) {
  sigreq *r = (sigreq *)q;
  if (r->w != NULL && r->w->waiter == r) r->w->waiter = NULL;
  free(r);
}

static const ta_ioreq_type sigreq_type = {"signal", sigreq_deliver, sigreq_cancel, sigreq_release};

/* ---- the watch ---- */

static sigwatch *checkwatch(lua_State *L, int idx) {
  return (sigwatch *)luaL_checkudata(L, idx, WATCH_MT);
}

static void watch_close(sigwatch *w) {
  ta_engine *E = w->E;
  if (w->closed) return;
  w->closed = 1;
  for (int i = 0; i < w->n; i++) {
    sighandle *s = w->hs[i];
    if (s == NULL) continue;
    w->hs[i] = NULL;
    s->w = NULL;
    ta_handle_closing(E, &s->owned);
    close_handle(&s->owned);
  }
  if (w->took_sigint && --E->sigint_watched == 0 && E->sigint != NULL && E->running &&
      !E->host_loop && E->sigint->signal_cb != NULL)
    ta_signal_start(E->sigint, E->sigint->signal_cb, SIGINT);
  w->took_sigint = 0;
  w->npending = 0;
  if (w->waiter != NULL) { /* it completes with nothing */
    sigreq *r = w->waiter;
    w->waiter = NULL;
    r->w = NULL;
    ta_ioreq_complete(&r->req);
  }
}

static int watch_gc(lua_State *L) {
  watch_close(checkwatch(L, 1));
  return 0;
}

/* signal_watch(list of signal numbers) -> SignalWatch (the face checked
** and converted the names); raises OSError if libuv refuses one. */
static int l_signal_watch(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  sigwatch *w;
  int n;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = (int)luaL_len(L, 1);
  luaL_argcheck(L, n >= 1 && n <= MAX_WATCHED, 1, "between 1 and 32 signals expected");
  w = (sigwatch *)lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  w->E = E;
  w->closed = 1; /* "closed first": __gc is safe until every handle runs */
  luaL_setmetatable(L, WATCH_MT);
  for (int i = 1; i <= n; i++) {
    int signum = (int)(lua_rawgeti(L, 1, i), lua_tointeger(L, -1));
    sighandle *s;
    int rc;
    lua_pop(L, 1);
    for (int j = 0; j < w->n; j++)
      if (w->hs[j] != NULL && w->hs[j]->signum == signum) goto next;
    s = (sighandle *)calloc(1, sizeof *s);
    if (s == NULL) {
      w->closed = 0;
      watch_close(w);
      return luaL_error(L, "not enough memory");
    }
    s->E = E;
    s->signum = signum;
    uv_signal_init(E->loop, &s->h);
    s->h.data = s;
    s->owned.close = close_handle;
    ta_handle_opened(E, &s->owned);
    s->w = w;
    w->hs[w->n++] = s;
    if (signum == SIGINT) { /* no KeyboardInterrupt while SIGINT is watched */
      if (E->sigint_watched++ == 0 && E->sigint != NULL) ta_signal_stop(E->sigint);
      w->took_sigint = 1;
    }
    if ((rc = ta_signal_start(&s->h, on_signal, signum)) != 0) {
      w->closed = 0;
      watch_close(w);
      return ta_oserror(L, rc, NULL, "cannot watch signal %d", signum);
    }
  next:;
  }
  w->closed = 0;
  return 1;
}

/* signal_next(watch) -> IORequest of the next signal (its number; nothing
** if the watch closes first). */
static int l_signal_next(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  sigwatch *w = checkwatch(L, 1);
  sigreq *r;
  if (w->closed) return ta_error(L, "ClosedResourceError", "the signal receiver is closed");
  if (w->waiter != NULL)
    return ta_error(L, "BusyResourceError", "another task is already waiting for a signal here");
  r = (sigreq *)calloc(1, sizeof *r);
  if (r == NULL) return luaL_error(L, "not enough memory");
  r->w = w;
  ta_ioreq_start(E, &r->req, &sigreq_type);
  ta_ioreq_push(L, &r->req);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1); /* the request keeps the watch alive */
  if (w->npending > 0) ta_ioreq_complete(&r->req);
  else w->waiter = r;
  return 1;
}

/* signal_close(watch): stop watching; the previous handling comes back. */
static int l_signal_close(lua_State *L) {
  watch_close(checkwatch(L, 1));
  return 0;
}

/* signal_pending(watch) -> how many signals are queued */
static int l_signal_pending(lua_State *L) {
  lua_pushinteger(L, checkwatch(L, 1)->npending);
  return 1;
}

static const luaL_Reg watch_meta[] = {
  {"__gc", watch_gc},
  {NULL, NULL}
};

static const luaL_Reg signal_funcs[] = {
  {"signal_watch", l_signal_watch},
  {"signal_next", l_signal_next},
  {"signal_close", l_signal_close},
  {"signal_pending", l_signal_pending},
  {NULL, NULL}
};

int ta_open_signal(lua_State *L) {
  ta_newclass(L, WATCH_MT, watch_meta, NULL, NULL);
  lua_pop(L, 1);
  ta_register(L, signal_funcs);
  lua_createtable(L, 0, (int)(sizeof signames / sizeof signames[0]));
  for (size_t i = 0; i < sizeof signames / sizeof signames[0]; i++) {
    lua_pushinteger(L, signames[i].num);
    lua_setfield(L, -2, signames[i].name);
  }
  lua_setfield(L, -3, "signal_numbers");
  return 0;
}
