/*
** stream.c — what TCP and Unix stream sockets share on uv_stream_t:
** reading into the socket's own buffer, writes (at once first, the
** rest queued with the Lua string anchored, never copied), listening and
** accepting, shutdown.
**
** Reading starts when someone first wants data and goes on while the
** buffer holds less than TA_RBUF_HIGH bytes: a Trio receive_some or an
** asyncio transport takes from the buffer, and a cancelled receive loses
** nothing (the bytes stay for the next one).  The buffer is allocated when
** libuv has bytes to read and freed when it is empty again, so an idle
** connection costs no buffer.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/sock.h"

#define RBUF_MIN_FREE 4096
/* A new buffer starts small (from malloc's per-thread cache: request and
** response traffic costs no arena work per read), or at the size the last
** one grew to when that one was filled beyond it (bulk transfers). */
#define RBUF_SMALL 1024
#define RBUF_LARGE_MAX (256 * 1024)
/* Emptied small buffers are kept by the engine for the next read (up to
** this many, 256 KiB): a batch of reads on many connections (one per
** connection with a request in flight) would otherwise take most of them
** from malloc's arena rather than its small per-thread cache. */
#define RBUF_SPARES_MAX 256

static char *take_small_rbuf(ta_engine *E) {
  char *b = (char *)E->spare_rbufs;
  if (b == NULL) return (char *)malloc(RBUF_SMALL);
  E->spare_rbufs = *(void **)b;
  E->nspare_rbufs--;
  return b;
}

static void free_rbuf(ta_sock *s) {
  ta_engine *E = s->E;
  if (s->rcap == RBUF_SMALL && E->nspare_rbufs < RBUF_SPARES_MAX) {
    *(void **)s->rbuf = E->spare_rbufs;
    E->spare_rbufs = s->rbuf;
    E->nspare_rbufs++;
  } else {
    free(s->rbuf);
  }
  s->rbuf = NULL;
  s->rpos = s->rlen = s->rcap = 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  ta_sock *s = (ta_sock *)h->data;
  (void)suggested;
  if (s->rbuf == NULL) {
    size_t first = s->rnext > RBUF_SMALL ? s->rnext : RBUF_SMALL;
    s->rbuf = first == RBUF_SMALL ? take_small_rbuf(s->E) : (char *)malloc(first);
    s->rcap = s->rbuf ? first : 0;
    s->rpos = s->rlen = 0;
  } else if (s->rcap - s->rlen < RBUF_MIN_FREE) {
    if (s->rpos > 0) {
      memmove(s->rbuf, s->rbuf + s->rpos, s->rlen - s->rpos);
      s->rlen -= s->rpos;
      s->rpos = 0;
    }
    if (s->rcap - s->rlen < RBUF_MIN_FREE) {
      char *nb = (char *)realloc(s->rbuf, s->rcap * 2);
      if (nb != NULL) {
        s->rbuf = nb;
        s->rcap *= 2;
      }
    }
  }
  /* (set in place: uv_buf_init is a call into libuv on every read) */
  buf->base = s->rbuf ? s->rbuf + s->rlen : NULL;
  buf->len = s->rcap - s->rlen;
}

static void stop_reading(ta_sock *s) {
  if (s->reading) uv_read_stop(&s->u.s);
  s->reading = 0;
}

/* Inside libuv: keep the bytes, wake the reader. */
static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  ta_sock *s = (ta_sock *)st->data;
  (void)buf;
  if (nread > 0) {
    s->rlen += (size_t)nread;
    if (s->rlen - s->rpos >= TA_RBUF_HIGH || s->read_paused) stop_reading(s);
  } else if (nread == 0) {
    return; /* EAGAIN */
  } else {
    s->rerr = (int)nread;
    stop_reading(s);
    /* the end of the stream (or its error): nothing more comes, so an empty
    ** buffer goes back at once (all of a server's connections closed
    ** together held 1 KiB each until closed: W5m measures that peak) */
    if (s->rbuf != NULL && s->rlen == s->rpos) free_rbuf(s);
  }
  ta_waiter_wake(&s->slot[TA_SIDE_READ]);
}

static void start_reading(ta_sock *s) {
  int rc;
  if (s->reading || s->read_paused || s->rerr || s->closing || s->listening) return;
  if (s->rlen - s->rpos >= TA_RBUF_HIGH) return;
  rc = uv_read_start(&s->u.s, alloc_cb, read_cb);
  if (rc < 0) s->rerr = rc;
  else s->reading = 1;
}

void ta_stream_pause_reading(ta_sock *s, int paused) {
  s->read_paused = (unsigned char)(paused != 0);
  if (paused) stop_reading(s);
  else start_reading(s);
}

int ta_stream_try_recv(lua_State *L, ta_sock *s, size_t max) {
  size_t avail = s->rlen - s->rpos;
  if (avail > 0 && max > 0) {
    size_t n = avail < max ? avail : max;
    lua_pushlstring(L, s->rbuf + s->rpos, n);
    s->rpos += n;
    if (s->rpos == s->rlen) {
      s->rnext = s->rlen > RBUF_SMALL ? (s->rcap < RBUF_LARGE_MAX ? s->rcap : RBUF_LARGE_MAX) : 0;
      free_rbuf(s);
    }
    start_reading(s); /* again, below the high mark */
    return 1;
  }
  if (max == 0 && (avail > 0 || s->rerr == 0 || s->rerr == UV_EOF)) {
    lua_pushliteral(L, "");
    return 1;
  }
  if (s->rerr == UV_EOF) {
    lua_pushliteral(L, "");
    return 1;
  }
  if (s->rerr != 0) return s->rerr;
  if (s->listening) return UV_ENOTCONN;
  start_reading(s);
  if (s->rerr != 0 && s->rerr != UV_EOF) return s->rerr;
  return TA_IO_AGAIN;
}

/* ---- writes ---- */

static void write_done(ta_sock *s, ta_wreq *r, int status) {
  TA_LIST_REMOVE(s->wreqs, r, prev, next);
  s->nwreqs--;
  s->wbytes -= r->len;
  if (status < 0 && status != UV_ECANCELED && s->werr == 0) s->werr = status;
  if (r->ref != LUA_NOREF) { /* released in Lua context (ta_sock_reap) */
    r->next = s->wdone;
    s->wdone = r;
  } else {
    free(r);
  }
  ta_waiter_wake(&s->slot[TA_SIDE_WRITE]);
}

static void write_cb(uv_write_t *req, int status) {
  ta_wreq *r = (ta_wreq *)req;
  write_done(r->s, r, status);
}

static ta_wreq *new_wreq(ta_sock *s) {
  ta_wreq *r = (ta_wreq *)calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->s = s;
  r->ref = LUA_NOREF;
  return r;
}

static void link_wreq(ta_sock *s, ta_wreq *r) {
  TA_LIST_PUSH(s->wreqs, r, prev, next);
  s->nwreqs++;
  s->wbytes += r->len;
}

int ta_stream_write(lua_State *L, ta_sock *s, int idx, size_t off, size_t *written) {
  size_t len;
  const char *p = lua_tolstring(L, idx, &len);
  return ta_stream_write_bytes(L, s, idx, p + off, len - off, written);
}

/* Whether libuv would take a write on s at once (uv_try_write): a
** connected stream with no write queued (nwreqs 0: the caller checks), not
** closing, not shut down (the caller checks), whose reading has not failed
** (libuv then stops taking writes: UV_EPIPE).  Then write(2) goes
** directly, as uv_try_write does it, without its layers (some 70
** instructions of every write). */
static int writes_directly(const ta_sock *s) {
  return s->connected && !s->connecting && !s->closing && (s->rerr == 0 || s->rerr == UV_EOF);
}

/* write(2) of up to len bytes at p on s, as libuv's uv__try_write: the
** bytes written, 0 if the socket takes none now, or an error.  The fd is
** read where libuv keeps it for a stream (uv_fileno reads the same field,
** behind two calls; writes_directly said the stream is open). */
static int write_now(ta_sock *s, const char *p, size_t len) {
  ssize_t n;
  int fd = s->u.s.io_watcher.fd;
  if (len > 0x7fffffff) len = 0x7fffffff;
  do {
    n = write(fd, p, len);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) return (int)n;
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? 0 : -errno;
}

int ta_stream_write_bytes(lua_State *L, ta_sock *s, int idx, const char *p, size_t len, size_t *written) {
  uv_buf_t buf;
  ta_wreq *r;
  int n = 0, rc;
  *written = 0;
  if (s->werr) return s->werr;
  if (s->send_shut) return UV_EPIPE;
  if (len == 0) return 1;
  if (s->nwreqs == 0) {
    if (writes_directly(s)) {
      n = write_now(s, p, len);
    } else {
      buf = uv_buf_init((char *)p, (unsigned)(len > 0x7fffffff ? 0x7fffffff : len));
      n = uv_try_write(&s->u.s, &buf, 1);
      if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
    }
    if (n < 0) return s->werr = n, n;
    *written = (size_t)n;
    if ((size_t)n == len) return 1;
  }
  r = new_wreq(s);
  if (r == NULL) return UV_ENOMEM;
  r->len = len - (size_t)n;
  buf = uv_buf_init((char *)p + n, (unsigned)r->len);
  rc = uv_write(&r->req.w, &s->u.s, &buf, 1, write_cb);
  if (rc < 0) {
    free(r);
    return s->werr = rc, rc;
  }
  lua_pushvalue(L, idx);
  r->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  link_wreq(s, r);
  return 0;
}

int ta_stream_try_drain(ta_sock *s) {
  if (s->werr) return s->werr;
  if (s->nwreqs > 0) return TA_IO_AGAIN;
  return 0;
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  ta_wreq *r = (ta_wreq *)req;
  write_done(r->s, r, status == UV_ENOTCONN ? 0 : status);
}

/* shutdown(SHUT_WR): at once when nothing is queued, else after the
** queued writes (libuv orders it). */
int ta_stream_shutdown(ta_sock *s) {
  ta_wreq *r;
  int rc;
  if (s->send_shut) return 0;
  if (s->nwreqs == 0) {
    if (shutdown(ta_sock_fd(s), SHUT_WR) != 0) return -errno;
    s->send_shut = 1;
    return 0;
  }
  r = new_wreq(s);
  if (r == NULL) return UV_ENOMEM;
  rc = uv_shutdown(&r->req.sh, &s->u.s, shutdown_cb);
  if (rc < 0) {
    free(r);
    return rc;
  }
  s->send_shut = 1;
  link_wreq(s, r);
  return 0;
}

/* ---- listening and accepting ---- */

/* Inside libuv: the listening socket is readable. */
static void accept_ready(ta_fdwatcher *w, int events) {
  ta_sock *s = (ta_sock *)((char *)w - offsetof(ta_sock, accept_w));
  (void)events;
  ta_stream_stop_accepting(s);
  ta_waiter_wake(&s->slot[TA_SIDE_READ]);
}

void ta_stream_stop_accepting(ta_sock *s) {
  if (!s->accept_watching) return;
  s->accept_watching = 0;
  ta_fd_unwatch(s->E, &s->accept_w);
}

int ta_stream_listen(ta_sock *s, int backlog) {
  stop_reading(s);
  if (listen(ta_sock_fd(s), backlog) != 0) return -errno;
  s->listening = 1;
  return 0;
}

int ta_stream_try_accept(lua_State *L, ta_sock *s) {
  ta_sockbox *server = s->box;
  int fd, err = 0, rc;
  if (!s->listening) return UV_EINVAL;
  do {
    fd = accept4(ta_sock_fd(s), NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd >= 0) {
    ta_sock *c = ta_sock_adopt(L, server->family, server->type, server->proto, fd, &err);
    if (c == NULL) return err;
    c->connected = 1;
    return 1;
  }
  if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
  if (!s->accept_watching) {
    s->accept_w.fd = ta_sock_fd(s);
    s->accept_w.events = UV_READABLE;
    s->accept_w.ready = accept_ready;
    if ((rc = ta_fd_watch(s->E, &s->accept_w)) != 0) return rc;
    s->accept_watching = 1;
  }
  return TA_IO_AGAIN;
}
