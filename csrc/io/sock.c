/*
** sock.c — the socket object (trio.socket's socket, shared by both
** faces): creating it on the right libuv handle, the calls that never
** wait (bind, listen, names, options, shutdown, fileno, close), addresses
** as Lua values, and its life: the C socket is freed in libuv's close
** callback only, the Lua box may be collected before (the socket is then
** closed) or after (it then reads as closed).
**
** SIGPIPE: a write to a peer that has gone must raise BrokenPipeError,
** never kill the process.  libuv writes streams with write(2), which has no
** MSG_NOSIGNAL, so the opener ignores SIGPIPE once, when its disposition is
** still the default (a C host that installed its own handler keeps it), as
** Python does at startup.
*/
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/un.h>
#include <netdb.h>
#include <sys/stat.h>

#include "io/sock.h"

/* ---- life ---- */

static void free_sock(uv_handle_t *h) {
  ta_sock *s = (ta_sock *)h->data;
  ta_engine *E = s->E;
  ta_dgram *d, *dn;
  ta_wreq *r, *rn;
  ta_waiter_detach(&s->slot[0]);
  ta_waiter_detach(&s->slot[1]);
  if (s->box != NULL) s->box->s = NULL;
  for (d = s->dq_head; d != NULL; d = dn) {
    dn = d->next;
    free(d);
  }
  for (r = s->wdone; r != NULL; r = rn) { /* their strings: the registry keeps them */
    rn = r->next;
    free(r);
  }
  free(s->rbuf);
  free(s);
  ta_handle_closed(E);
}

/* Stops what libuv does for it and closes the handle (no Lua). */
static void close_handle(ta_sock *s) {
  if (s->closing) return;
  s->closing = 1;
  if (s->kind != TA_SK_UDP) ta_stream_stop_accepting(s);
  if (s->kind == TA_SK_UDP) uv_udp_recv_stop(&s->u.udp);
  else if (s->reading) uv_read_stop(&s->u.s);
  s->reading = 0;
  uv_close(&s->u.h, free_sock);
}

/* The engine shuts down (no Lua): waiters are dropped. */
static void close_owned(ta_owned *o) {
  ta_sock *s = (ta_sock *)o;
  ta_waiter_detach(&s->slot[0]);
  ta_waiter_detach(&s->slot[1]);
  close_handle(s);
}

void ta_sock_wake_all(ta_sock *s) {
  ta_waiter_wake(&s->slot[TA_SIDE_READ]);
  ta_waiter_wake(&s->slot[TA_SIDE_WRITE]);
}

void ta_sock_reap_done(lua_State *L, ta_sock *s) {
  while (s->wdone != NULL) {
    ta_wreq *r = s->wdone;
    s->wdone = r->next;
    luaL_unref(L, LUA_REGISTRYINDEX, r->ref);
    free(r);
  }
}

/* Closing from Lua: the strings of writes in flight are released now
** (after uv_close libuv writes nothing more; their callbacks only report
** cancellation), then the waiters are woken and see the socket closed. */
void ta_sock_close(lua_State *L, ta_sockbox *b) {
  ta_sock *s = b->s;
  if (s == NULL) return;
  b->s = NULL;
  s->box = NULL;
  for (ta_wreq *r = s->wreqs; r != NULL; r = r->next) {
    luaL_unref(L, LUA_REGISTRYINDEX, r->ref);
    r->ref = LUA_NOREF;
  }
  ta_sock_reap(L, s);
  ta_handle_closing(s->E, &s->owned);
  close_handle(s);
  ta_sock_wake_all(s);
  ta_flush_closes(s->E);
}

int ta_sock_fd(ta_sock *s) {
  uv_os_fd_t fd;
  if (s == NULL || uv_fileno(&s->u.h, &fd) != 0) return -1;
  return (int)fd;
}

static int kind_of(int family, int type) {
  if ((family == AF_INET || family == AF_INET6) && type == SOCK_STREAM) return TA_SK_TCP;
  if ((family == AF_INET || family == AF_INET6) && type == SOCK_DGRAM) return TA_SK_UDP;
  if (family == AF_UNIX && type == SOCK_STREAM) return TA_SK_PIPE;
  return -1;
}

/* Opens a UDP fd on its handle.  uv_udp_open turns SO_REUSEADDR on, which
** on a datagram socket lets another socket bind the same port and take its
** traffic (why asyncio dropped reuse_address for datagrams): the socket
** keeps the setting it had. */
static int open_udp_fd(ta_sock *s, int fd) {
  int reuse = 0, rc;
  socklen_t len = sizeof reuse;
  if (getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, &len) != 0) reuse = 0;
  rc = uv_udp_open(&s->u.udp, fd);
  /* cannot fail on the socket uv_udp_open has just accepted */
  if (rc == 0 && !reuse) (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse);
  return rc;
}

/* Opens fd on the handle of s (libuv makes it non-blocking). */
static int open_fd(ta_sock *s, int fd) {
  switch (s->kind) {
    case TA_SK_TCP: return uv_tcp_open(&s->u.tcp, fd);
    case TA_SK_PIPE: return uv_pipe_open(&s->u.pipe, fd);
    default: return open_udp_fd(s, fd);
  }
}

/* new_sock(family, type, proto, fd, dup): fd >= 0 is opened (a duplicate
** of it if dup; else it is the socket's, even on failure), -1 makes a new
** OS socket, -2 leaves the handle without one.  Pushes the box; returns
** NULL with *err set (nothing pushed) on failure. */
static ta_sock *new_sock(lua_State *L, ta_engine *E, int family, int type, int proto, int fd,
                         int dup, int *err) {
  int kind = kind_of(family, type), rc;
  ta_sock *s;
  ta_sockbox *b;
  if (kind < 0) {
    if (fd >= 0 && !dup) close(fd);
    return *err = UV_EAFNOSUPPORT, NULL;
  }
  if (fd == -1) {
    fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
    if (fd < 0) return *err = -errno, NULL;
  } else if (fd >= 0 && dup) {
    fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return *err = -errno, NULL;
  }
  s = (ta_sock *)calloc(1, sizeof *s);
  if (s == NULL) {
    if (fd >= 0) close(fd);
    return *err = UV_ENOMEM, NULL;
  }
  s->E = E;
  s->kind = (unsigned char)kind;
  switch (kind) {
    case TA_SK_TCP: rc = uv_tcp_init(E->loop, &s->u.tcp); break;
    case TA_SK_PIPE: rc = uv_pipe_init(E->loop, &s->u.pipe, 0); break;
    default: rc = uv_udp_init(E->loop, &s->u.udp); break;
  }
  if (rc < 0) {
    if (fd >= 0) close(fd);
    free(s);
    return *err = rc, NULL;
  }
  s->u.h.data = s;
  s->owned.close = close_owned;
  ta_handle_opened(E, &s->owned);
  if (fd >= 0 && (rc = open_fd(s, fd)) < 0) {
    close(fd);
    ta_handle_closing(E, &s->owned);
    close_handle(s);
    return *err = rc, NULL;
  }
  b = (ta_sockbox *)lua_newuserdatauv(L, sizeof *b, 0);
  b->s = s;
  b->tag = &ta_sockbox_tag;
  b->family = (short)family;
  b->type = (short)type;
  b->proto = (short)proto;
  b->stream_sending = 0;
  s->box = b;
  ta_setmetatable(L, E, TA_MT_SOCKET);
  return s;
}

ta_sock *ta_sock_new(lua_State *L, int family, int type, int proto) {
  int err = 0;
  return new_sock(L, ta_engine_get(L), family, type, proto, -2, 0, &err);
}

ta_sock *ta_sock_adopt(lua_State *L, int family, int type, int proto, int fd, int *err) {
  return new_sock(L, ta_engine_get(L), family, type, proto, fd, 0, err);
}

const char ta_sockbox_tag = 0;

ta_sockbox *ta_checksockbox(lua_State *L, int idx) {
  ta_sockbox *b = ta_tosockbox(L, idx);
  if (b == NULL) luaL_typeerror(L, idx, TA_SOCKET_MT);
  return b;
}

ta_sock *ta_tosock(lua_State *L, int idx) {
  return ta_checksockbox(L, idx)->s;
}

ta_sock *ta_checksock(lua_State *L, int idx, const char *fname) {
  ta_sock *s = ta_tosock(L, idx);
  if (s == NULL) ta_oserror(L, UV_EBADF, NULL, "%s: the socket is closed", fname);
  ta_sock_reap(L, s);
  return s;
}

/* ---- addresses ---- */

static int addr_error(lua_State *L, const char *fname, int argn, const char *msg) {
  return luaL_error(L, "bad argument #%d to '%s' (%s)", argn, fname, msg);
}

/* {host, port} or a path, for a socket of this family, into ss. */
socklen_t ta_sock_toaddr(lua_State *L, int idx, int family, struct sockaddr_storage *ss,
                         const char *fname, int argn) {
  memset(ss, 0, sizeof *ss);
  idx = lua_absindex(L, idx);
  if (family == AF_UNIX) {
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    size_t len;
    const char *path;
    if (lua_type(L, idx) != LUA_TSTRING)
      addr_error(L, fname, argn, lua_pushfstring(L, "path string expected, got %s", luaL_typename(L, idx)));
    path = lua_tolstring(L, idx, &len);
    if (len == 0) addr_error(L, fname, argn, "empty path");
    if (len >= sizeof un->sun_path || (path[0] != '\0' && strlen(path) != len))
      addr_error(L, fname, argn, "path too long or with a NUL byte");
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, len);
    /* an abstract name (leading NUL) is exactly its bytes */
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] != '\0'));
  }
  if (family == AF_INET || family == AF_INET6) {
    const char *host;
    lua_Integer port;
    int isnum, rc;
    if (lua_type(L, idx) != LUA_TTABLE)
      addr_error(L, fname, argn, lua_pushfstring(L, "address {host, port} expected, got %s",
                                                 luaL_typename(L, idx)));
    lua_rawgeti(L, idx, 1);
    lua_rawgeti(L, idx, 2);
    if (lua_type(L, -2) != LUA_TSTRING)
      addr_error(L, fname, argn, lua_pushfstring(L, "address {host, port}: host string expected, got %s",
                                                 luaL_typename(L, -2)));
    port = lua_tointegerx(L, -1, &isnum);
    if (!isnum || lua_type(L, -1) != LUA_TNUMBER)
      addr_error(L, fname, argn, lua_pushfstring(L, "address {host, port}: port number expected, got %s",
                                                 luaL_typename(L, -1)));
    if (port < 0 || port > 65535)
      addr_error(L, fname, argn, "address {host, port}: port must be 0-65535");
    host = lua_tostring(L, -2);
    if (family == AF_INET) {
      if (host[0] == '\0') host = "0.0.0.0";
      else if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
      else if (strcmp(host, "<broadcast>") == 0) host = "255.255.255.255";
      rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss);
    } else {
      if (host[0] == '\0') host = "::";
      else if (strcmp(host, "localhost") == 0) host = "::1";
      rc = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss);
    }
    if (rc != 0) {
      struct sockaddr_storage other;
      int v6 = family == AF_INET6;
      int wrong = v6 ? uv_ip4_addr(host, 0, (struct sockaddr_in *)&other) == 0
                     : uv_ip6_addr(host, 0, (struct sockaddr_in6 *)&other) == 0;
      if (wrong)
        ta_oserror(L, UV_EAI_ADDRFAMILY, NULL, "%s %s: an IPv%d address for an AF_INET%s socket", fname,
                   host, v6 ? 4 : 6, v6 ? "6" : "");
      ta_oserror(L, UV_EAI_NONAME, NULL, "%s %s: not a numeric address (resolve names with getaddrinfo)",
                 fname, host);
    }
    lua_pop(L, 2);
    return family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
  }
  return (socklen_t)luaL_error(L, "%s: unsupported address family %d", fname, family);
}

/* Pushes {host, port}. */
static void push_host_port(lua_State *L, const char *host, unsigned port) {
  lua_createtable(L, 2, 0);
  lua_pushstring(L, host);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, port);
  lua_rawseti(L, -2, 2);
}

void ta_sock_pushaddr(lua_State *L, const struct sockaddr *sa, socklen_t len) {
  char host[INET6_ADDRSTRLEN + 1];
  switch (sa->sa_family) {
    case AF_INET: {
      const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
      uv_ip4_name(in, host, sizeof host);
      push_host_port(L, host, ntohs(in->sin_port));
      return;
    }
    case AF_INET6: {
      const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
      uv_ip6_name(in6, host, sizeof host);
      push_host_port(L, host, ntohs(in6->sin6_port));
      return;
    }
    case AF_UNIX: {
      const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
      size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
      if (n > 0 && un->sun_path[0] != '\0') n = strnlen(un->sun_path, n);
      lua_pushlstring(L, un->sun_path, n);
      return;
    }
    default:
      lua_pushnil(L);
  }
}

const char *ta_sock_addrstr(lua_State *L, const struct sockaddr *sa, socklen_t len) {
  char host[INET6_ADDRSTRLEN + 1];
  switch (sa->sa_family) {
    case AF_INET:
      uv_ip4_name((const struct sockaddr_in *)sa, host, sizeof host);
      return lua_pushfstring(L, "%s:%d", host, (int)ntohs(((const struct sockaddr_in *)sa)->sin_port));
    case AF_INET6:
      uv_ip6_name((const struct sockaddr_in6 *)sa, host, sizeof host);
      return lua_pushfstring(L, "[%s]:%d", host, (int)ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
    case AF_UNIX:
      ta_sock_pushaddr(L, sa, len);
      return lua_tostring(L, -1);
    default:
      return lua_pushliteral(L, "?");
  }
}

/* ---- constructors ---- */

static int sock_raise(lua_State *L, int err, const char *what) {
  return ta_oserror(L, err, NULL, "%s", what);
}

/* socket([family=AF_INET [, type=SOCK_STREAM [, proto=0]]]) */
static int l_socket(lua_State *L) {
  int family = (int)luaL_optinteger(L, 1, AF_INET);
  int type = (int)luaL_optinteger(L, 2, SOCK_STREAM);
  int proto = (int)luaL_optinteger(L, 3, 0);
  int err = 0;
  if (kind_of(family, type) < 0)
    return luaL_error(L, "socket: unsupported family/type (%d, %d): TCP and UDP over AF_INET or "
                      "AF_INET6, and AF_UNIX streams", family, type);
  if (new_sock(L, ta_upengine(L), family, type, proto, -1, 0, &err) == NULL) sock_raise(L, err, "socket");
  return 1;
}

/* socketpair([family=AF_UNIX [, type=SOCK_STREAM]]) -> a, b */
static int l_socketpair(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  int family = (int)luaL_optinteger(L, 1, AF_UNIX);
  int type = (int)luaL_optinteger(L, 2, SOCK_STREAM);
  uv_os_sock_t fds[2];
  int err = 0, rc;
  luaL_argcheck(L, family == AF_UNIX && type == SOCK_STREAM, 1, "only AF_UNIX, SOCK_STREAM pairs");
  rc = uv_socketpair(SOCK_STREAM, 0, fds, 0, 0);
  if (rc < 0) return sock_raise(L, rc, "socketpair");
  lua_settop(L, 0);
  if (new_sock(L, E, family, type, 0, fds[0], 0, &err) == NULL) {
    close(fds[1]);
  } else {
    new_sock(L, E, family, type, 0, fds[1], 0, &err);
  }
  if (lua_gettop(L) < 2) {
    if (lua_gettop(L) == 1) ta_sock_close(L, ta_checksockbox(L, 1));
    return sock_raise(L, err, "socketpair");
  }
  return 2;
}

/* from_fd(fd, family, type [, proto]): a socket on a duplicate of fd (as
** Python's socket.fromfd). */
static int l_from_fd(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  int family = (int)luaL_checkinteger(L, 2);
  int type = (int)luaL_checkinteger(L, 3);
  int proto = (int)luaL_optinteger(L, 4, 0);
  int err = 0;
  int sniffed;
  socklen_t len = sizeof sniffed;
  luaL_argcheck(L, fd >= 0 && fd < TA_MAX_FD, 1, "not a valid file descriptor");
  /* the fd's own family, type and protocol win over the arguments (Trio's
  ** fromfd sniffs them), so that a wrong guess cannot wrap it wrongly */
  if (getsockopt((int)fd, SOL_SOCKET, SO_DOMAIN, &sniffed, &len) == 0) family = sniffed;
  len = sizeof sniffed;
  if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &sniffed, &len) == 0) type = sniffed;
  len = sizeof sniffed;
  if (getsockopt((int)fd, SOL_SOCKET, SO_PROTOCOL, &sniffed, &len) == 0) proto = sniffed;
  luaL_argcheck(L, kind_of(family, type) >= 0, 2, "unsupported family/type");
  if (new_sock(L, ta_upengine(L), family, type, proto, (int)fd, 1, &err) == NULL)
    ta_oserror(L, err, NULL, "from_fd %d", (int)fd);
  return 1;
}

/* ---- methods that never wait ---- */

static int m_bind(lua_State *L) {
  ta_sockbox *b = ta_checksockbox(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = ta_sock_toaddr(L, 2, b->family, &ss, "bind", 1);
  ta_sock *s = ta_checksock(L, 1, "bind");
  if (bind(ta_sock_fd(s), (struct sockaddr *)&ss, len) != 0) {
    int e = -errno;
    const char *where = ta_sock_addrstr(L, (struct sockaddr *)&ss, len);
    return ta_oserror(L, e, b->family == AF_UNIX ? where : NULL, "bind %s", where);
  }
  return 0;
}

static int m_listen(lua_State *L) {
  ta_sock *s = ta_checksock(L, 1, "listen");
  lua_Integer backlog = luaL_optinteger(L, 2, 128);
  int rc;
  if (backlog < 0) backlog = 0;
  if (backlog > 65535) backlog = 65535;
  if (s->kind == TA_SK_UDP) return ta_oserror(L, UV_ENOTSUP, NULL, "listen");
  if ((rc = ta_stream_listen(s, (int)backlog)) < 0) return ta_oserror(L, rc, NULL, "listen");
  return 0;
}

static int sockname(lua_State *L, int peer) {
  const char *fname = peer ? "getpeername" : "getsockname";
  ta_sock *s = ta_checksock(L, 1, fname);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int r;
  memset(&ss, 0, sizeof ss);
  r = peer ? getpeername(ta_sock_fd(s), (struct sockaddr *)&ss, &len)
           : getsockname(ta_sock_fd(s), (struct sockaddr *)&ss, &len);
  if (r != 0) return ta_oserror(L, -errno, NULL, "%s", fname);
  ta_sock_pushaddr(L, (struct sockaddr *)&ss, len);
  return 1;
}

static int m_getsockname(lua_State *L) { return sockname(L, 0); }
static int m_getpeername(lua_State *L) { return sockname(L, 1); }

/* setsockopt(level, name, value): an integer or boolean, or a string of
** packed bytes for struct options. */
static int m_setsockopt(lua_State *L) {
  ta_sock *s;
  int level = (int)luaL_checkinteger(L, 2), name = (int)luaL_checkinteger(L, 3);
  int ival, r;
  const void *p;
  size_t len;
  switch (lua_type(L, 4)) {
    case LUA_TBOOLEAN: ival = lua_toboolean(L, 4); p = &ival; len = sizeof ival; break;
    case LUA_TNUMBER: ival = (int)luaL_checkinteger(L, 4); p = &ival; len = sizeof ival; break;
    case LUA_TSTRING: p = lua_tolstring(L, 4, &len); break;
    default: return luaL_typeerror(L, 4, "integer, boolean or string");
  }
  s = ta_checksock(L, 1, "setsockopt");
  r = setsockopt(ta_sock_fd(s), level, name, p, (socklen_t)len);
  if (r != 0) return ta_oserror(L, -errno, NULL, "setsockopt(%d, %d)", level, name);
  return 0;
}

/* getsockopt(level, name [, buflen]) -> integer, or the raw bytes */
static int m_getsockopt(lua_State *L) {
  ta_sock *s;
  int level = (int)luaL_checkinteger(L, 2), name = (int)luaL_checkinteger(L, 3);
  lua_Integer buflen = luaL_optinteger(L, 4, -1);
  luaL_argcheck(L, buflen <= 1024, 4, "buflen must be at most 1024");
  s = ta_checksock(L, 1, "getsockopt");
  if (buflen < 0) {
    int v = 0;
    socklen_t len = sizeof v;
    if (getsockopt(ta_sock_fd(s), level, name, &v, &len) != 0)
      return ta_oserror(L, -errno, NULL, "getsockopt(%d, %d)", level, name);
    lua_pushinteger(L, v);
  } else {
    char buf[1024];
    socklen_t len = (socklen_t)buflen;
    if (getsockopt(ta_sock_fd(s), level, name, buf, &len) != 0)
      return ta_oserror(L, -errno, NULL, "getsockopt(%d, %d)", level, name);
    lua_pushlstring(L, buf, len);
  }
  return 1;
}

/* shutdown(how): SHUT_WR waits for writes still in flight (libuv queues
** the shutdown after them). */
static int m_shutdown(lua_State *L) {
  ta_sock *s = ta_checksock(L, 1, "shutdown");
  lua_Integer how = luaL_checkinteger(L, 2);
  int rc = 0;
  luaL_argcheck(L, how == SHUT_RD || how == SHUT_WR || how == SHUT_RDWR, 2,
                "SHUT_RD, SHUT_WR or SHUT_RDWR expected");
  if (how != SHUT_WR && shutdown(ta_sock_fd(s), SHUT_RD) != 0) rc = -errno;
  if (rc == 0 && how != SHUT_RD) {
    if (s->kind == TA_SK_UDP) {
      if (shutdown(ta_sock_fd(s), SHUT_WR) != 0) rc = -errno;
    } else {
      rc = ta_stream_shutdown(s);
    }
  }
  if (rc < 0) return ta_oserror(L, rc, NULL, "shutdown");
  return 0;
}

static int m_fileno(lua_State *L) {
  lua_pushinteger(L, ta_sock_fd(ta_tosock(L, 1)));
  return 1;
}

static int m_close(lua_State *L) {
  ta_sock_close(L, ta_checksockbox(L, 1));
  return 0;
}

static int l_is_closed(lua_State *L) {
  lua_pushboolean(L, ta_tosock(L, 1) == NULL);
  return 1;
}

/* sock_path_id(path) -> "device:inode" of the file at path (not
** followed if a link) and whether it is a socket, or nil if there is
** none: a Unix server removes its socket file only while it is still the
** one it bound (Python's check of st_ino), and replaces a stale socket
** file when it binds.  A plain lstat(2), as Python's os.stat in
** Server.close. */
static int l_path_id(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (lstat(path, &st) != 0) return 0;
  lua_pushfstring(L, "%I:%I", (lua_Integer)st.st_dev, (lua_Integer)st.st_ino);
  lua_pushboolean(L, S_ISSOCK(st.st_mode));
  return 2;
}

static int sock_gc(lua_State *L) {
  ta_sock_close(L, (ta_sockbox *)lua_touserdata(L, 1));
  return 0;
}

static const char *family_name(int f) {
  return f == AF_INET ? "AF_INET" : f == AF_INET6 ? "AF_INET6" : f == AF_UNIX ? "AF_UNIX" : "?";
}

static int sock_tostring(lua_State *L) {
  ta_sockbox *b = ta_checksockbox(L, 1);
  lua_pushfstring(L, "trio.socket.socket (fd=%d, family=%s, type=%s)", ta_sock_fd(b->s),
                  family_name(b->family), b->type == SOCK_STREAM ? "SOCK_STREAM" : "SOCK_DGRAM");
  return 1;
}

/* The fields family, type, proto; else the methods (upvalue 2). */
static int sock_index(lua_State *L) {
  ta_sockbox *b = ta_checksockbox(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k != NULL) {
    if (strcmp(k, "family") == 0) return lua_pushinteger(L, b->family), 1;
    if (strcmp(k, "type") == 0) return lua_pushinteger(L, b->type), 1;
    if (strcmp(k, "proto") == 0) return lua_pushinteger(L, b->proto), 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(2));
  return 1;
}

/* ---- the waiter slots of io objects ---- */

ta_waiter *ta_io_slot(lua_State *L, int idx, int side, const char *fname) {
  ta_sockbox *b = ta_tosockbox(L, idx);
  if (b != NULL) {
    if (b->s == NULL) return NULL;
    return &b->s->slot[side ? TA_SIDE_WRITE : TA_SIDE_READ];
  }
  if (luaL_testudata(L, idx, TA_DNS_MT) != NULL) return ta_dns_slot(L, idx);
  luaL_error(L, "%s: a socket or request expected", fname);
  return NULL;
}

/* ---- low-level helpers for the faces' Lua code ---- */

/* sock_try_recv(sock, max) -> data, more; or nothing if it would wait;
** raises OSError.  more is false when a stream has nothing else to give
** before libuv reads again (its buffer is empty, no end or error is
** pending; at the end it stays true): a caller woken by the read slot
** need not look again. */
static int l_try_recv(lua_State *L) {
  ta_sock *s = ta_checksock(L, 1, "recv");
  lua_Integer max = luaL_checkinteger(L, 2);
  int n;
  luaL_argcheck(L, max >= 0, 2, "negative size");
  if (s->kind == TA_SK_UDP) {
    n = ta_udp_try_recvfrom(L, s, (size_t)max, 0);
    if (n > 0) lua_pushboolean(L, 1);
  } else {
    n = ta_stream_try_recv(L, s, (size_t)max);
    if (n > 0) lua_pushboolean(L, ta_stream_buffered(s) > 0 || s->rerr != 0 || !s->reading);
  }
  if (n == TA_IO_AGAIN) return 0;
  if (n < 0) return ta_oserror(L, n, NULL, "recv");
  return n + 1;
}

/* sock_try_recvfrom(sock, max) -> data, addr, or nothing if it would wait */
static int l_try_recvfrom(lua_State *L) {
  ta_sock *s = ta_checksock(L, 1, "recvfrom");
  lua_Integer max = luaL_checkinteger(L, 2);
  int n;
  luaL_argcheck(L, max >= 0, 2, "negative size");
  if (s->kind != TA_SK_UDP) {
    n = ta_stream_try_recv(L, s, (size_t)max);
    if (n > 0) {
      lua_pushnil(L);
      return 2;
    }
  } else {
    n = ta_udp_try_recvfrom(L, s, (size_t)max, 1);
  }
  if (n == TA_IO_AGAIN) return 0;
  if (n < 0) return ta_oserror(L, n, NULL, "recvfrom");
  return n;
}

/* sock_try_accept(sock) -> new socket, or nil if it would wait */
static int l_try_accept(lua_State *L) {
  ta_sock *s = ta_checksock(L, 1, "accept");
  int n;
  if (s->kind == TA_SK_UDP) return ta_oserror(L, UV_ENOTSUP, NULL, "accept");
  n = ta_stream_try_accept(L, s);
  if (n == TA_IO_AGAIN) return 0;
  if (n < 0) return ta_oserror(L, n, NULL, "accept");
  return n;
}

/* sock_write(sock, data [, offset]) -> true if all went out now, false if
** some is queued (wait with sock_try_drain); raises OSError. */
static int l_write(lua_State *L) {
  ta_sock *s = ta_checksock(L, 1, "write");
  size_t len, written = 0;
  lua_Integer off = luaL_optinteger(L, 3, 0);
  int rc;
  luaL_checklstring(L, 2, &len);
  luaL_argcheck(L, off >= 0 && (size_t)off <= len, 3, "offset out of range");
  if (s->kind == TA_SK_UDP) rc = ta_udp_send(L, s, 2, NULL);
  else rc = ta_stream_write(L, s, 2, (size_t)off, &written);
  if (rc < 0) return ta_oserror(L, rc, NULL, "send");
  lua_pushboolean(L, rc == 1);
  return 1;
}

/* sock_try_drain(sock) -> true once no write is in flight; raises the
** error of a failed one */
static int l_try_drain(lua_State *L) {
  ta_sock *s = ta_checksock(L, 1, "drain");
  int rc = ta_stream_try_drain(s);
  if (rc == TA_IO_AGAIN) return lua_pushboolean(L, 0), 1;
  if (rc < 0) return ta_oserror(L, rc, NULL, "send");
  lua_pushboolean(L, 1);
  return 1;
}

/* sock_sendto(sock, data, addr) -> true if sent now, false if queued */
static int l_sendto(lua_State *L) {
  ta_sockbox *b = ta_checksockbox(L, 1);
  struct sockaddr_storage ss;
  ta_sock *s;
  int rc;
  luaL_checkstring(L, 2);
  ta_sock_toaddr(L, 3, b->family, &ss, "sendto", 2);
  s = ta_checksock(L, 1, "sendto");
  if (s->kind != TA_SK_UDP) return ta_oserror(L, UV_EISCONN, NULL, "sendto");
  rc = ta_udp_send(L, s, 2, (struct sockaddr *)&ss);
  if (rc < 0) {
    const char *where = ta_sock_addrstr(L, (struct sockaddr *)&ss, sizeof ss);
    return ta_oserror(L, rc, NULL, "sendto %s", where);
  }
  lua_pushboolean(L, rc == 1);
  return 1;
}

/* sock_start_connect(sock, addr) -> true when connected at once, false
** while in progress (then sock_try_connect); raises OSError */
static int l_start_connect(lua_State *L) {
  ta_sockbox *b = ta_checksockbox(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = ta_sock_toaddr(L, 2, b->family, &ss, "connect", 1);
  ta_sock *s = ta_checksock(L, 1, "connect");
  int rc;
  if (s->kind == TA_SK_UDP) rc = ta_udp_connect(s, (struct sockaddr *)&ss);
  else rc = ta_sock_start_connect(L, s, (struct sockaddr *)&ss, len);
  if (rc < 0) {
    const char *where = ta_sock_addrstr(L, (struct sockaddr *)&ss, len);
    return ta_oserror(L, rc, b->family == AF_UNIX ? where : NULL, "connect %s", where);
  }
  lua_pushboolean(L, s->kind == TA_SK_UDP || !s->connecting);
  return 1;
}

/* sock_try_connect(sock, addr) -> true once connected, false while in
** progress; raises the connect's OSError (addr is for its message) */
static int l_try_connect(lua_State *L) {
  ta_sock *s = ta_checksock(L, 1, "connect");
  int rc = ta_sock_try_connect(s);
  if (rc == TA_IO_AGAIN) return lua_pushboolean(L, 0), 1;
  if (rc < 0) {
    ta_sockbox *b = ta_checksockbox(L, 1);
    struct sockaddr_storage ss;
    socklen_t len = ta_sock_toaddr(L, 2, b->family, &ss, "connect", 1);
    const char *where = ta_sock_addrstr(L, (struct sockaddr *)&ss, len);
    return ta_oserror(L, rc, b->family == AF_UNIX ? where : NULL, "connect %s", where);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* sock_pause_reading(sock, paused) */
static int l_pause_reading(lua_State *L) {
  ta_sock *s = ta_tosock(L, 1);
  if (s != NULL && s->kind != TA_SK_UDP) ta_stream_pause_reading(s, lua_toboolean(L, 2));
  return 0;
}

/* sock_buffer_sizes(sock) -> bytes of writes in flight, bytes received not
** yet taken */
static int l_buffer_sizes(lua_State *L) {
  ta_sock *s = ta_tosock(L, 1);
  lua_pushinteger(L, s ? (lua_Integer)s->wbytes : 0);
  lua_pushinteger(L, s && s->kind != TA_SK_UDP ? (lua_Integer)ta_stream_buffered(s) : 0);
  return 2;
}

/* ---- raw calls on the fd ----
** For code that drives the fd itself (readiness from add_reader or
** wait_readable, as LuaSocket users do): a send(2) or recv(2) that never
** waits and never goes through libuv.  A socket used this way must not
** also be used with the waiting methods (libuv would read ahead). */

static const char *errcode(int e) { return uv_err_name(-e); }

/* sock_raw_send(sock, data [, i [, j]]) -> bytes sent, or nil, code */
static int l_raw_send(lua_State *L) {
  ta_sock *s = ta_checksock(L, 1, "send");
  size_t len;
  const char *p = luaL_checklstring(L, 2, &len);
  lua_Integer i = luaL_optinteger(L, 3, 1), j = luaL_optinteger(L, 4, (lua_Integer)len);
  ssize_t n;
  if (i < 1) i = 1;
  if (j > (lua_Integer)len) j = (lua_Integer)len;
  if (j < i) return lua_pushinteger(L, 0), 1;
  do {
    n = send(ta_sock_fd(s), p + i - 1, (size_t)(j - i + 1), MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    lua_pushnil(L);
    lua_pushstring(L, errcode(errno));
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* sock_raw_recv(sock, max) -> data ("" at EOF), or nil, code */
static int l_raw_recv(lua_State *L) {
  ta_sock *s = ta_checksock(L, 1, "receive");
  lua_Integer max = luaL_checkinteger(L, 2);
  luaL_Buffer b;
  char *buf;
  ssize_t n;
  luaL_argcheck(L, max > 0, 2, "size must be positive");
  buf = luaL_buffinitsize(L, &b, (size_t)max);
  do {
    n = recv(ta_sock_fd(s), buf, (size_t)max, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int e = errno;
    luaL_pushresultsize(&b, 0);
    lua_pushnil(L);
    lua_pushstring(L, errcode(e));
    return 2;
  }
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* sock_raw_connect(sock, addr) -> true (connected), false (in progress:
** wait until writable, then read SO_ERROR), or nil, code */
static int l_raw_connect(lua_State *L) {
  ta_sockbox *b = ta_checksockbox(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = ta_sock_toaddr(L, 2, b->family, &ss, "connect", 1);
  ta_sock *s = ta_checksock(L, 1, "connect");
  int r;
  do {
    r = connect(ta_sock_fd(s), (struct sockaddr *)&ss, len);
  } while (r != 0 && errno == EINTR);
  if (r == 0) return lua_pushboolean(L, 1), 1;
  if (errno == EINPROGRESS || errno == EAGAIN) return lua_pushboolean(L, 0), 1;
  lua_pushnil(L);
  lua_pushstring(L, errcode(errno));
  return 2;
}

/* sock_raw_accept(sock) -> new socket, or nil, code */
static int l_raw_accept(lua_State *L) {
  ta_sockbox *b = ta_checksockbox(L, 1);
  ta_sock *s = ta_checksock(L, 1, "accept");
  int fd, err = 0;
  do {
    fd = accept4(ta_sock_fd(s), NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int e = errno;
    lua_pushnil(L);
    lua_pushstring(L, errcode(e));
    return 2;
  }
  if (ta_sock_adopt(L, b->family, b->type, b->proto, fd, &err) == NULL) {
    lua_pushnil(L);
    lua_pushstring(L, uv_err_name(err));
    return 2;
  }
  return 1;
}

/* socket_now() -> seconds of a monotonic clock, usable outside any run
** (the LuaSocket facade's gettime and timeouts) */
static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}

/* socket_constants() -> the OS's values of the socket constants */
static int l_constants(lua_State *L) {
  static const struct { const char *name; int value; } k[] = {
#define K(n) {#n, n}
    K(AF_INET), K(AF_INET6), K(AF_UNIX), K(AF_UNSPEC),
    K(SOCK_STREAM), K(SOCK_DGRAM),
    K(SOL_SOCKET), K(SO_REUSEADDR), K(SO_REUSEPORT), K(SO_KEEPALIVE), K(SO_LINGER),
    K(SO_RCVBUF), K(SO_SNDBUF), K(SO_ERROR), K(SO_BROADCAST), K(SO_TYPE), K(SO_ACCEPTCONN),
    K(SO_RCVLOWAT), K(SO_SNDLOWAT),
    K(IPPROTO_IP), K(IPPROTO_IPV6), K(IPPROTO_TCP), K(IPPROTO_UDP),
    K(IPV6_V6ONLY), K(IP_TTL), K(IP_MULTICAST_TTL), K(IP_MULTICAST_LOOP),
    K(TCP_NODELAY), K(TCP_KEEPIDLE), K(TCP_KEEPINTVL), K(TCP_KEEPCNT), K(TCP_NOTSENT_LOWAT),
    K(SHUT_RD), K(SHUT_WR), K(SHUT_RDWR),
    K(AI_PASSIVE), K(AI_CANONNAME), K(AI_NUMERICHOST), K(AI_NUMERICSERV), K(AI_ADDRCONFIG),
    K(AI_V4MAPPED), K(AI_ALL),
    K(NI_NUMERICHOST), K(NI_NUMERICSERV), K(NI_NAMEREQD), K(NI_DGRAM), K(NI_NOFQDN),
    K(SOMAXCONN),
#undef K
  };
  lua_createtable(L, 0, (int)(sizeof k / sizeof k[0]));
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
    lua_pushinteger(L, k[i].value);
    lua_setfield(L, -2, k[i].name);
  }
  return 1;
}

static const luaL_Reg sock_meta[] = {
  {"__gc", sock_gc},
  {"__close", sock_gc},
  {"__tostring", sock_tostring},
  {NULL, NULL}
};

static const luaL_Reg sock_methods[] = {
  {"bind", m_bind},
  {"listen", m_listen},
  {"getsockname", m_getsockname},
  {"getpeername", m_getpeername},
  {"setsockopt", m_setsockopt},
  {"getsockopt", m_getsockopt},
  {"shutdown", m_shutdown},
  {"fileno", m_fileno},
  {"close", m_close},
  {NULL, NULL}
};

static const luaL_Reg sock_funcs[] = {
  {"socket", l_socket},
  {"socket_constants", l_constants},
  {"socketpair", l_socketpair},
  {"socket_from_fd", l_from_fd},
  {"sock_try_recv", l_try_recv},
  {"sock_try_recvfrom", l_try_recvfrom},
  {"sock_try_accept", l_try_accept},
  {"sock_write", l_write},
  {"sock_try_drain", l_try_drain},
  {"sock_sendto", l_sendto},
  {"sock_start_connect", l_start_connect},
  {"sock_try_connect", l_try_connect},
  {"sock_pause_reading", l_pause_reading},
  {"sock_buffer_sizes", l_buffer_sizes},
  {"sock_is_closed", l_is_closed},
  {"sock_path_id", l_path_id},
  {"sock_raw_send", l_raw_send},
  {"sock_raw_recv", l_raw_recv},
  {"sock_raw_connect", l_raw_connect},
  {"socket_now", l_now},
  {"sock_raw_accept", l_raw_accept},
  {NULL, NULL}
};

/* libuv opens one spare fd per loop with its first stream (to survive
** EMFILE in accept): open it now, so that fd counts stay level from the
** first socket on. */
static void open_spare_fd(ta_engine *E) {
  uv_pipe_t *p = (uv_pipe_t *)malloc(sizeof *p);
  if (p == NULL) return;
  if (uv_pipe_init(E->loop, p, 0) != 0) {
    free(p);
    return;
  }
  uv_close((uv_handle_t *)p, ta_free_handle);
  ta_flush_closes(E);
}

int ta_open_sock(lua_State *L) {
  struct sigaction old;
  if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
  open_spare_fd((ta_engine *)lua_touserdata(L, -1));
  ta_newclass(L, TA_SOCKET_MT, sock_meta, sock_methods, "__methods");
  ta_cache_metatable(L, (ta_engine *)lua_touserdata(L, -2), TA_MT_SOCKET);
  lua_pushvalue(L, -2); /* engine */
  lua_getfield(L, -2, "__methods");
  lua_pushcclosure(L, sock_index, 2);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  ta_register(L, sock_funcs);
  return 0;
}
