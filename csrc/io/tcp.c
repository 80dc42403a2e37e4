/*
** tcp.c — what is particular to TCP sockets (uv_tcp_t): connecting.
** Creating, binding, listening, reading and writing are shared with Unix
** stream sockets (sock.c, stream.c).
*/
#include <stdlib.h>

#include "io/sock.h"

static void connect_cb(uv_connect_t *req, int status) {
  ta_sock *s = (ta_sock *)req->data;
  free(req);
  s->connecting = 0;
  s->connect_status = status;
  if (status == 0) s->connected = 1;
  ta_waiter_wake(&s->slot[TA_SIDE_WRITE]);
}

/* Unix sockets connect at once (pipe.c); TCP through libuv. */
int ta_sock_start_connect(lua_State *L, ta_sock *s, const struct sockaddr *sa, socklen_t len) {
  uv_connect_t *req;
  int rc;
  (void)L;
  if (s->connecting) return UV_EALREADY;
  if (s->connected) return UV_EISCONN;
  if (s->listening) return UV_EINVAL;
  if (s->kind == TA_SK_PIPE) {
    rc = ta_pipe_connect(s, sa, len);
    s->connect_status = rc;
    if (rc == 0) s->connected = 1;
    return rc;
  }
  req = (uv_connect_t *)malloc(sizeof *req);
  if (req == NULL) return UV_ENOMEM;
  req->data = s;
  rc = uv_tcp_connect(req, &s->u.tcp, sa, connect_cb);
  if (rc < 0) {
    free(req);
    return rc;
  }
  s->connecting = 1;
  return 0;
}

int ta_sock_try_connect(ta_sock *s) {
  if (s->connecting) return TA_IO_AGAIN;
  return s->connect_status;
}
