/*
** procpipe.c — the parent's end of a child process's stdin, stdout or
** stderr: a uv_pipe_t with the requests (io.h) the stream faces wait on.
** Self-contained for processes (docs/ARCHITECTURE.md says how it could
** share the socket streams' code).
**
** Reading: the pipe reads ahead into a buffer while it holds less than
** HIGH_WATER bytes; pipe_recv(max) completes when the buffer has data, or
** at EOF or an error, and its *delivery* takes up to max bytes, so a wait
** that is abandoned (a cancelled receive) loses nothing.  "" is EOF.
**
** Writing: pipe_send(data) is one uv_write, completed by its callback;
** the bytes are copied, so the caller's string may go.  A send abandoned
** before it completed marks the stream broken (part of it may have been
** written): later sends raise BrokenResourceError, as Trio's streams do.
**
** Closing: pipe_close(graceful) shuts the write side down after the
** queued writes (uv_shutdown: the child reads EOF) or closes at once; its
** request completes when the handle is closed.  A receive waiting then
** gets ClosedResourceError.  The handle is on the engine's list (counted)
** until it is closed; a collected PipeStream is closed.
*/
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

#define PIPE_MT "trio_asyncio.PipeStream"
#define HIGH_WATER (256 * 1024)
#define READ_SIZE 65536

typedef struct preq preq;

typedef struct pcore {
  ta_owned owned;             /* first */
  uv_pipe_t h;
  ta_engine *E;
  int writable;
  int open;                   /* the handle is open (not closing) */
  int refs;                   /* the userdata, requests, the open handle */
  /* reading */
  char *buf;
  size_t off, len, cap;       /* data is buf[off .. off+len) */
  int eof, err, reading;
  preq *reader;
  /* writing */
  int broken;
  size_t queued;              /* bytes handed to uv_write, not written yet */
  preq *closer;               /* the close request, completed at close */
  uv_shutdown_t shut;
} pcore;

typedef struct pbox {
  pcore *c;
} pbox;

enum { R_RECV, R_SEND, R_CLOSE };

struct preq {
  ta_ioreq req;               /* first */
  pcore *c;
  int kind;
  size_t max;                 /* recv */
  uv_write_t w;               /* send */
  char *data;
  size_t len;
  int status;                 /* send: the write's status; recv: closed under it */
};

static void core_unref(pcore *c) {
  if (--c->refs > 0) return;
  free(c->buf);
  free(c);
}

static void complete_reader(pcore *c) {
  preq *r = c->reader;
  if (r == NULL) return;
  c->reader = NULL;
  ta_ioreq_complete(&r->req);
}

/* ---- closing ---- */

static void on_closed(uv_handle_t *h) {
  pcore *c = (pcore *)h->data;
  preq *r = c->closer;
  ta_handle_closed(c->E);
  c->closer = NULL;
  if (r != NULL) ta_ioreq_complete(&r->req);
  core_unref(c);
}

static void close_now(pcore *c) {
  if (!c->open) return;
  c->open = 0;
  ta_handle_closing(c->E, &c->owned);
  if (c->reading) uv_read_stop((uv_stream_t *)&c->h);
  c->reading = 0;
  if (c->reader != NULL) {
    c->reader->status = UV_ECANCELED; /* delivered as ClosedResourceError */
    complete_reader(c);
  }
  uv_close((uv_handle_t *)&c->h, on_closed);
}

static void owned_close(ta_owned *o) {
  pcore *c = (pcore *)o;
  /* the engine took it off its list already */
  if (!c->open) return;
  c->open = 0;
  if (c->reading) uv_read_stop((uv_stream_t *)&c->h);
  c->reading = 0;
  if (c->reader != NULL) {
    c->reader->status = UV_ECANCELED;
    complete_reader(c);
  }
  uv_close((uv_handle_t *)&c->h, on_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  pcore *c = (pcore *)req->data;
  (void)status;
  if (c->open) close_now(c);
  core_unref(c); /* the shutdown's reference */
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  pcore *c = (pcore *)h->data;
  (void)suggested;
  if (c->off > 0 && c->off + c->len + READ_SIZE > c->cap) { /* compact first */
    memmove(c->buf, c->buf + c->off, c->len);
    c->off = 0;
  }
  if (c->off + c->len + READ_SIZE > c->cap) {
    size_t cap = c->cap ? c->cap * 2 : READ_SIZE;
    char *p;
    while (cap < c->off + c->len + READ_SIZE) cap *= 2;
    p = (char *)realloc(c->buf, cap);
    if (p == NULL) {
      *b = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
      return;
    }
    c->buf = p;
    c->cap = cap;
  }
  *b = uv_buf_init(c->buf + c->off + c->len, READ_SIZE);
}

static void stop_reading(pcore *c) {
  if (c->reading) uv_read_stop((uv_stream_t *)&c->h);
  c->reading = 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  pcore *c = (pcore *)s->data;
  (void)b;
  if (n > 0) {
    c->len += (size_t)n;
    if (c->len >= HIGH_WATER) stop_reading(c);
  } else if (n == UV_EOF) {
    c->eof = 1;
    stop_reading(c);
  } else if (n < 0) {
    c->err = (int)n;
    stop_reading(c);
  } else {
    return; /* 0: nothing this time */
  }
  complete_reader(c);
}

static void start_reading(pcore *c) {
  int rc;
  if (c->reading || c->eof || c->err || !c->open) return;
  rc = uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read);
  if (rc < 0) c->err = rc;
  else c->reading = 1;
}

/* ---- requests ---- */

static int preq_deliver(lua_State *L, ta_ioreq *q) {
  preq *r = (preq *)q;
  pcore *c = r->c;
  ta_engine *E = q->E;
  if (r->kind == R_RECV) {
    size_t n;
    if (r->status == UV_ECANCELED) {
      ta_push_error(L, E, "ClosedResourceError", "the pipe was closed while receiving");
      return -1;
    }
    n = c->len < r->max ? c->len : r->max;
    if (n > 0) {
      lua_pushlstring(L, c->buf + c->off, n);
      c->off += n;
      c->len -= n;
      if (c->len == 0) c->off = 0;
      if (c->len < HIGH_WATER && c->open) start_reading(c); /* read ahead again */
      return 1;
    }
    if (c->err) {
      ta_push_oserror(L, c->err, NULL, "read from pipe");
      return -1;
    }
    lua_pushliteral(L, ""); /* EOF */
    return 1;
  }
  if (r->kind == R_SEND) {
    if (r->status < 0) {
      ta_push_oserror(L, r->status, NULL, "write to pipe");
      return -1;
    }
    lua_pushinteger(L, (lua_Integer)r->len);
    return 1;
  }
  return 0;
}

static void preq_cancel(ta_ioreq *q) {
  preq *r = (preq *)q;
  pcore *c = r->c;
  if (r->kind == R_RECV && c->reader == r) {
    c->reader = NULL;
    ta_ioreq_complete(q); /* abandoned: frees it, takes no data */
  } else if (r->kind == R_SEND) {
    c->broken = 1; /* the write goes on; how much of it is unknown */
  }
}

static void preq_release(ta_ioreq *q) {
  preq *r = (preq *)q;
  if (r->c != NULL) {
    if (r->c->reader == r) r->c->reader = NULL;
    if (r->c->closer == r) r->c->closer = NULL;
    core_unref(r->c);
  }
  free(r->data);
  free(r);
}

static const ta_ioreq_type preq_type = {"pipe", preq_deliver, preq_cancel, preq_release};

static preq *new_preq(lua_State *L, pcore *c, int kind) {
  preq *r = (preq *)calloc(1, sizeof *r);
  if (r == NULL) luaL_error(L, "not enough memory");
  r->c = c;
  r->kind = kind;
  c->refs++;
  ta_ioreq_start(c->E, &r->req, &preq_type);
  return r;
}

static void on_write(uv_write_t *w, int status) {
  preq *r = (preq *)w->data;
  r->status = status;
  r->c->queued -= r->len;
  free(r->data);
  r->data = NULL;
  ta_ioreq_complete(&r->req);
}

/* ---- the PipeStream object ---- */

static pbox *checkpipe(lua_State *L, int idx) {
  return (pbox *)luaL_checkudata(L, idx, PIPE_MT);
}

static pcore *openpipe(lua_State *L, int idx, const char *what) {
  pbox *b = checkpipe(L, idx);
  if (b->c == NULL || !b->c->open)
    return (pcore *)(intptr_t)ta_error(L, "ClosedResourceError", "%s: the pipe is closed", what);
  return b->c;
}

/* pipe_recv(p [, max=65536]) -> IORequest of the next bytes ("" at EOF) */
static int l_pipe_recv(lua_State *L) {
  pcore *c = openpipe(L, 1, "receive_some");
  lua_Integer max = luaL_optinteger(L, 2, 65536);
  preq *r;
  luaL_argcheck(L, max >= 1, 2, "max_bytes must be at least 1");
  luaL_argcheck(L, !c->writable, 1, "not a receive stream");
  if (c->reader != NULL)
    return ta_error(L, "BusyResourceError", "another task is already receiving from this pipe");
  r = new_preq(L, c, R_RECV);
  r->max = (size_t)max;
  ta_ioreq_push(L, &r->req);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  if (c->len > 0 || c->eof || c->err) {
    ta_ioreq_complete(&r->req);
  } else {
    c->reader = r;
    start_reading(c);
    if (c->err) complete_reader(c);
  }
  return 1;
}

/* pipe_send(p, data) -> IORequest completed when data is written */
static int l_pipe_send(lua_State *L) {
  pcore *c = openpipe(L, 1, "send_all");
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  preq *r;
  uv_buf_t b;
  int rc;
  luaL_argcheck(L, c->writable, 1, "not a send stream");
  if (c->broken)
    return ta_error(L, "BrokenResourceError", "a previous send on this pipe was cancelled or failed");
  r = new_preq(L, c, R_SEND);
  r->len = len;
  r->data = (char *)malloc(len ? len : 1);
  if (r->data == NULL) {
    r->status = UV_ENOMEM;
    ta_ioreq_complete(&r->req);
  } else {
    memcpy(r->data, s, len);
    b = uv_buf_init(r->data, (unsigned)len);
    r->w.data = r;
    rc = uv_write(&r->w, (uv_stream_t *)&c->h, &b, 1, on_write);
    if (rc < 0) {
      r->status = rc;
      ta_ioreq_complete(&r->req);
    } else {
      c->queued += len;
    }
  }
  ta_ioreq_push(L, &r->req);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

/* pipe_close(p [, graceful]) -> IORequest completed when closed, or
** nothing when it is closed already.  graceful: a write side is shut
** down after its queued writes. */
static int l_pipe_close(lua_State *L) {
  pbox *b = checkpipe(L, 1);
  pcore *c = b->c;
  int graceful = lua_toboolean(L, 2);
  preq *r;
  if (c == NULL || !c->open || c->closer != NULL) return 0;
  r = new_preq(L, c, R_CLOSE);
  c->closer = r;
  ta_ioreq_push(L, &r->req);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  if (graceful && c->writable && c->queued > 0) {
    c->shut.data = c;
    c->refs++;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->h, on_shutdown) < 0) {
      c->refs--;
      close_now(c);
    }
  } else {
    close_now(c);
  }
  return 1;
}

/* pipe_info(p) -> open, broken, queued bytes, buffered bytes, eof */
static int l_pipe_info(lua_State *L) {
  pbox *b = checkpipe(L, 1);
  pcore *c = b->c;
  lua_pushboolean(L, c != NULL && c->open);
  lua_pushboolean(L, c != NULL && c->broken);
  lua_pushinteger(L, c ? (lua_Integer)c->queued : 0);
  lua_pushinteger(L, c ? (lua_Integer)c->len : 0);
  lua_pushboolean(L, c != NULL && c->eof && c->len == 0);
  return 5;
}

/* pipe_fileno(p) -> the fd, or nil once closed */
static int l_pipe_fileno(lua_State *L) {
  pbox *b = checkpipe(L, 1);
  uv_os_fd_t fd;
  if (b->c == NULL || !b->c->open || uv_fileno((uv_handle_t *)&b->c->h, &fd) != 0) return 0;
  lua_pushinteger(L, (lua_Integer)fd);
  return 1;
}

static int pipe_gc(lua_State *L) {
  pbox *b = checkpipe(L, 1);
  if (b->c != NULL) {
    close_now(b->c);
    core_unref(b->c);
  }
  b->c = NULL;
  return 0;
}

static int pipe_tostring(lua_State *L) {
  pbox *b = checkpipe(L, 1);
  lua_pushfstring(L, "PipeStream (%s, %s)", b->c && b->c->writable ? "send" : "receive",
                  b->c && b->c->open ? "open" : "closed");
  return 1;
}

/* Pushes a PipeStream over fd (the parent's end of a pipe): 0, or a libuv
** error code (nothing pushed; fd is then the caller's to close). */
int ta_procpipe_push(lua_State *L, ta_engine *E, int fd, int writable) {
  pbox *b = (pbox *)lua_newuserdatauv(L, sizeof *b, 0);
  pcore *c;
  int rc;
  b->c = NULL;
  luaL_setmetatable(L, PIPE_MT);
  c = (pcore *)calloc(1, sizeof *c);
  if (c == NULL) {
    lua_pop(L, 1);
    return UV_ENOMEM;
  }
  c->E = E;
  c->writable = writable;
  if ((rc = uv_pipe_init(E->loop, &c->h, 0)) < 0 || (rc = uv_pipe_open(&c->h, fd)) < 0) {
    /* an initialized handle must be closed; it was never opened on fd */
    if (rc != 0 && c->h.loop != NULL) {
      c->refs = 1;
      c->open = 1;
      ta_handle_opened(E, &c->owned);
      c->h.data = c;
      close_now(c);
    } else {
      free(c);
    }
    lua_pop(L, 1);
    return rc;
  }
  c->h.data = c;
  c->open = 1;
  c->refs = 2; /* the userdata, the open handle (dropped in on_closed) */
  c->owned.close = owned_close;
  ta_handle_opened(E, &c->owned);
  b->c = c;
  return 0;
}

static const luaL_Reg pipe_meta[] = {
  {"__gc", pipe_gc},
  {"__tostring", pipe_tostring},
  {NULL, NULL}
};

static const luaL_Reg pipe_funcs[] = {
  {"pipe_recv", l_pipe_recv},
  {"pipe_send", l_pipe_send},
  {"pipe_close", l_pipe_close},
  {"pipe_info", l_pipe_info},
  {"pipe_fileno", l_pipe_fileno},
  {NULL, NULL}
};

static void free_primer(uv_handle_t *h) { free(h); }

int ta_open_procpipe(lua_State *L) {
  ta_engine *E = (ta_engine *)lua_touserdata(L, -1);
  uv_pipe_t *primer = (uv_pipe_t *)malloc(sizeof *primer);
  /* libuv opens a reserve fd (/dev/null, for EMFILE) at a loop's first
  ** stream: open it now, with the loop, not at the first child's pipe */
  if (primer != NULL && uv_pipe_init(E->loop, primer, 0) == 0) uv_close((uv_handle_t *)primer, free_primer);
  else free(primer);
  /* a write to a child that closed its stdin must raise, not kill us */
  {
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
  }
  ta_newclass(L, PIPE_MT, pipe_meta, NULL, NULL);
  lua_pop(L, 1);
  ta_register(L, pipe_funcs);
  return 0;
}
