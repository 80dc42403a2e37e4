/*
** udp.c — datagram sockets on uv_udp_t: received datagrams wait in a
** queue (with their sender) until recvfrom takes them; sends go out at
** once when the socket takes them (uv_udp_try_send), else are queued with
** the Lua string anchored.
*/
#include <stdlib.h>
#include <string.h>

#include "io/sock.h"

#define UDP_BUF 65536

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  ta_sock *s = (ta_sock *)h->data;
  (void)suggested;
  if (s->rbuf == NULL) {
    s->rbuf = (char *)malloc(UDP_BUF);
    s->rcap = s->rbuf ? UDP_BUF : 0;
  }
  *buf = uv_buf_init(s->rbuf, (unsigned)s->rcap);
}

static void stop_receiving(ta_sock *s) {
  if (s->reading) uv_udp_recv_stop(&s->u.udp);
  s->reading = 0;
}

static void recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags) {
  ta_sock *s = (ta_sock *)h->data;
  ta_dgram *d;
  (void)flags;
  if (nread == 0 && addr == NULL) return; /* nothing more to read now */
  if (nread < 0) {
    s->rerr = (int)nread; /* e.g. ECONNREFUSED on a connected socket */
  } else {
    d = (ta_dgram *)malloc(sizeof *d + (size_t)nread);
    if (d == NULL) return;
    d->next = NULL;
    d->len = (size_t)nread;
    memset(&d->from, 0, sizeof d->from);
    if (addr != NULL)
      memcpy(&d->from, addr, addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                         : sizeof(struct sockaddr_in));
    memcpy(d->data, buf->base, (size_t)nread);
    if (s->dq_tail) s->dq_tail->next = d;
    else s->dq_head = d;
    s->dq_tail = d;
    if (++s->dq_count >= TA_DGRAM_MAX_QUEUE) stop_receiving(s);
  }
  ta_waiter_wake(&s->slot[TA_SIDE_READ]);
}

static void start_receiving(ta_sock *s) {
  int rc;
  if (s->reading || s->closing || s->read_paused || s->dq_count >= TA_DGRAM_MAX_QUEUE) return;
  rc = uv_udp_recv_start(&s->u.udp, alloc_cb, recv_cb);
  if (rc < 0) s->rerr = rc;
  else s->reading = 1;
}

int ta_udp_try_recvfrom(lua_State *L, ta_sock *s, size_t max, int with_addr) {
  ta_dgram *d = s->dq_head;
  if (d != NULL) {
    s->dq_head = d->next;
    if (s->dq_head == NULL) s->dq_tail = NULL;
    s->dq_count--;
    lua_pushlstring(L, d->data, d->len < max ? d->len : max);
    if (with_addr) ta_sock_pushaddr(L, (struct sockaddr *)&d->from, sizeof d->from);
    free(d);
    start_receiving(s);
    return with_addr ? 2 : 1;
  }
  if (s->rerr != 0) { /* reported once, as the OS does */
    int e = s->rerr;
    s->rerr = 0;
    return e;
  }
  start_receiving(s);
  if (s->rerr != 0) {
    int e = s->rerr;
    s->rerr = 0;
    return e;
  }
  return TA_IO_AGAIN;
}

static void send_cb(uv_udp_send_t *req, int status) {
  ta_wreq *r = (ta_wreq *)req;
  ta_sock *s = r->s;
  TA_LIST_REMOVE(s->wreqs, r, prev, next);
  s->nwreqs--;
  s->wbytes -= r->len;
  if (status < 0 && status != UV_ECANCELED && s->werr == 0) s->werr = status;
  if (r->ref != LUA_NOREF) {
    r->next = s->wdone;
    s->wdone = r;
  } else {
    free(r);
  }
  ta_waiter_wake(&s->slot[TA_SIDE_WRITE]);
}

int ta_udp_send(lua_State *L, ta_sock *s, int idx, const struct sockaddr *sa) {
  size_t len;
  const char *p = lua_tolstring(L, idx, &len);
  uv_buf_t buf = uv_buf_init((char *)p, (unsigned)len);
  ta_wreq *r;
  int rc;
  if (s->werr) { /* an earlier queued send failed: report it once */
    int e = s->werr;
    s->werr = 0;
    return e;
  }
  if (s->nwreqs == 0) {
    rc = uv_udp_try_send(&s->u.udp, &buf, 1, sa);
    if (rc >= 0) return 1;
    if (rc != UV_EAGAIN && rc != UV_ENOSYS) return rc;
  }
  r = (ta_wreq *)calloc(1, sizeof *r);
  if (r == NULL) return UV_ENOMEM;
  r->s = s;
  r->len = len;
  rc = uv_udp_send(&r->req.u, &s->u.udp, &buf, 1, sa, send_cb);
  if (rc < 0) {
    free(r);
    return rc;
  }
  lua_pushvalue(L, idx);
  r->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  TA_LIST_PUSH(s->wreqs, r, prev, next);
  s->nwreqs++;
  s->wbytes += len;
  return 0;
}

/* A datagram socket may connect again, to another peer (POSIX, Python);
** libuv wants it disconnected first. */
int ta_udp_connect(ta_sock *s, const struct sockaddr *sa) {
  int rc = uv_udp_connect(&s->u.udp, sa);
  if (rc == UV_EISCONN) {
    rc = uv_udp_connect(&s->u.udp, NULL);
    s->connected = 0;
    if (rc == 0) rc = uv_udp_connect(&s->u.udp, sa);
  }
  if (rc == 0) s->connected = 1;
  return rc;
}
