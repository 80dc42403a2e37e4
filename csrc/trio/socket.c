/*
** socket.c — the Trio face of sockets (io/sock.h): the Trio-flavored
** methods of trio.socket sockets (accept, connect, send, recv, sendto,
** recvfrom) and a generic wait on an io object's waiter slot.
**
** Each operation follows Trio's rule for socket calls: a cancellation
** check first, then the operation; if it completes at once, a schedule
** point that cannot raise Cancelled (cancel_shielded_checkpoint); if not,
** the task parks in the socket's slot for that direction and tries again
** when woken.  Nothing is consumed by a wait that ends in cancellation.
** A socket closed by another task while this one waits gives
** ClosedResourceError; a socket closed before the call, OSError (EBADF),
** as Python's does.  A second task waiting on the same direction gets
** BusyResourceError.
*/
#include <string.h>

#include "trio/trio.h"
#include "io/sock.h"

/* The slot's wake: inside libuv (or Lua context), no Lua. */
static void trio_wake(ta_waiter *w) {
  ta_task *t = (ta_task *)w->data;
  w->wake = NULL;
  w->detach = NULL;
  w->data = NULL;
  t->E->io_waiters--;
  ta_reschedule(t, 0, 0);
}

static int slot_abort(lua_State *L, ta_task *t) {
  ta_waiter *w = (ta_waiter *)t->wait;
  (void)L;
  if (w != NULL && w->data == t) {
    w->wake = NULL;
    w->detach = NULL;
    w->data = NULL;
    t->E->io_waiters--;
  }
  return TA_ABORT_SUCCEEDED;
}

static const char *side_text(int side) {
  return side == TA_SIDE_WRITE ? "write to" : "read from";
}

/* Parks t in slot w until it is woken; k tries again. */
static int park_on(lua_State *L, ta_task *t, ta_waiter *w, int side, const char *fname,
                   ta_abort_fn abort, lua_KFunction k) {
  if (w->wake != NULL)
    return ta_error(L, "BusyResourceError", "%s: another task is already waiting to %s this socket",
                    fname, side_text(side));
  w->wake = trio_wake;
  w->detach = NULL;
  w->data = t;
  t->E->io_waiters++;
  t->wait = w;
  return ta_park_k(L, t, abort, k);
}

static int check_resume(lua_State *L, ta_task *t) {
  if (t->resume_error) {
    t->resume_error = 0;
    return lua_error(L);
  }
  return 0;
}

/* Upvalues of the methods: the engine and the stream helpers
** (trio_stream_setup). */
enum { UP_STREAM_HELPERS = 2 };
/* The ways of recv: the plain method, recvfrom (with the address), and
** SocketStream's receive_some (its checks, its errors). */
enum { PLAIN, RECVFROM, STREAM };

/* Who raises an operation's error: the operation itself (NO_HELPER), or
** one of the Lua helpers of lua/trio/streams.lua, for SocketStream's
** receive_some and send_all, which raise the stream's errors themselves
** (Trio's rules: ClosedResourceError, BrokenResourceError with the
** OSError as cause) so that their Lua methods need no pcall.  The value
** is the helper's index in the stream helpers. */
enum { NO_HELPER, RECV_ERROR, SEND_ERROR };

/* Raises the error on top, through `helper`: recv_error(err), or
** send_error(err, stream, writing) for SocketStream:send_all (arguments
** socket, data, stream), whose busy mark it clears first. */
static int raise_op_error(lua_State *L, int helper) {
  int nargs = 1;
  if (helper == NO_HELPER) return lua_error(L);
  if (lua_rawgeti(L, lua_upvalueindex(UP_STREAM_HELPERS), helper) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return lua_error(L);
  }
  lua_pushvalue(L, -2);
  if (helper == SEND_ERROR) {
    ta_sockbox *b = (ta_sockbox *)lua_touserdata(L, 1);
    b->stream_sending = 0;
    lua_pushvalue(L, 3);
    lua_pushboolean(L, b->s != NULL && b->s->nwreqs > 0); /* bytes still queued */
    nargs = 3;
  }
  lua_call(L, nargs, 0); /* raises the stream's error */
  return lua_error(L);
}

/* After fail_op's schedule point: the helper's index on top, the error
** below it. */
static int fail_after_k(lua_State *L, int status, lua_KContext ctx) {
  int helper;
  (void)status;
  check_resume(L, (ta_task *)ctx);
  helper = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return raise_op_error(L, helper);
}

/* The operation failed with the error on top.  A task that waited raises
** it at once (it went through the scheduler); one whose first try failed
** raises it after a schedule point, as Trio's socket calls yield once
** whether that try returned or raised (_try_sync). */
static int fail_op(lua_State *L, ta_task *t, int waited, int helper) {
  if (waited) return raise_op_error(L, helper);
  lua_pushinteger(L, helper);
  return ta_schedule_point_k(L, t, 2, fail_after_k);
}

/* The socket of box b for an operation.  Closed while this task waited:
** ClosedResourceError, raised (see raise_op_error).  Closed before the
** call: NULL, with OSError EBADF pushed for the caller's fail_op. */
static ta_sock *box_sock(lua_State *L, ta_sockbox *b, const char *fname, int waited, int helper) {
  ta_sock *s = b->s;
  if (s == NULL) {
    if (!waited) {
      ta_push_oserror(L, UV_EBADF, NULL, "%s: the socket is closed", fname);
      return NULL;
    }
    lua_pushfstring(L, "%s: another task closed this socket", fname);
    ta_push_error(L, ta_upengine(L), "ClosedResourceError", lua_tostring(L, -1));
    raise_op_error(L, helper);
  }
  ta_sock_reap(L, s);
  return s;
}

/* The same for the box at 1, checked here unless the task waited (slot 1
** of the same call then holds the box checked before it). */
static ta_sock *op_sock(lua_State *L, const char *fname, int waited, int helper) {
  ta_sockbox *b = waited ? (ta_sockbox *)lua_touserdata(L, 1) : ta_checksockbox(L, 1);
  return box_sock(L, b, fname, waited, helper);
}

/* Done: the results on top are returned, after a schedule point if the
** task has not waited (Trio's cancel_shielded_checkpoint). */
static int done(lua_State *L, ta_task *t, int n, int waited) {
  if (waited) return n;
  return ta_schedule_point_ret(L, t, n);
}

static size_t check_max(lua_State *L, int idx) {
  lua_Integer max = luaL_checkinteger(L, idx);
  luaL_argcheck(L, max >= 0, idx, "negative size");
  return (size_t)max;
}

/* ---- recv, recvfrom ---- */

#define STREAM_RECEIVE_SIZE 65536 /* receive_some's default (trio.SocketStream) */

static int recv_k(lua_State *L, int status, lua_KContext ctx);
static int recvfrom_k(lua_State *L, int status, lua_KContext ctx);
static int stream_recv_k(lua_State *L, int status, lua_KContext ctx);

/* One try; max was checked before the first one (slot 2 holds it). */
static int recv_try(lua_State *L, ta_task *t, int waited, int mode, size_t max) {
  static const lua_KFunction again[] = {recv_k, recvfrom_k, stream_recv_k}; /* by mode */
  int with_addr = mode == RECVFROM;
  const char *fname = with_addr ? "recvfrom" : "recv";
  int helper = mode == STREAM ? RECV_ERROR : NO_HELPER;
  ta_sock *s = op_sock(L, fname, waited, helper);
  int n;
  if (s == NULL) return fail_op(L, t, waited, helper);
  lua_settop(L, 2);
  if (s->kind == TA_SK_UDP) {
    n = ta_udp_try_recvfrom(L, s, max, with_addr);
  } else {
    n = ta_stream_try_recv(L, s, max);
    if (n > 0 && with_addr) {
      lua_pushnil(L);
      n = 2;
    }
  }
  if (n > 0) return done(L, t, n, waited);
  if (n != TA_IO_AGAIN) {
    ta_push_oserror(L, n, NULL, "%s", fname);
    return fail_op(L, t, waited, helper);
  }
  return park_on(L, t, &s->slot[TA_SIDE_READ], TA_SIDE_READ, fname, slot_abort, again[mode]);
}

/* Woken: the next try (a continuation per mode, so that the mode is known
** without reading it from the stack) */
static int recv_again(lua_State *L, lua_KContext ctx, int mode) {
  ta_task *t = (ta_task *)ctx;
  check_resume(L, t);
  return recv_try(L, t, 1, mode, (size_t)lua_tointeger(L, 2));
}

static int recv_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return recv_again(L, ctx, PLAIN);
}

static int recvfrom_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return recv_again(L, ctx, RECVFROM);
}

static int stream_recv_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return recv_again(L, ctx, STREAM);
}

/* SocketStream's receive_some(max_bytes) checks its argument its own way
** (nil is the default size, put in slot 2). */
static size_t check_max_bytes(lua_State *L) {
  lua_Integer max;
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_pushinteger(L, STREAM_RECEIVE_SIZE);
    return STREAM_RECEIVE_SIZE;
  }
  if (!lua_isinteger(L, 2))
    luaL_error(L, "bad argument #1 to 'receive_some' (max_bytes: integer expected, got %s)",
               lua_type(L, 2) == LUA_TNUMBER ? "float" : luaL_typename(L, 2));
  max = lua_tointeger(L, 2);
  if (max < 1) luaL_error(L, "bad argument #1 to 'receive_some' (max_bytes must be >= 1)");
  return (size_t)max;
}

static int recv_start(lua_State *L, int mode) {
  static const char *const names[] = {"recv", "recvfrom", "SocketStream:receive_some"}; /* by mode */
  size_t max = mode == STREAM ? check_max_bytes(L) : check_max(L, 2);
  ta_task *t = ta_async_check(L, names[mode], TA_TRIO);
  if (ta_cancel_pending(t)) return ta_checkpoint(L, t);
  return recv_try(L, t, 0, mode, max);
}

/* sock:recv(max) -> data ("" at the end of a stream) */
static int m_recv(lua_State *L) {
  return recv_start(L, PLAIN);
}

/* sock:recvfrom(max) -> data, address */
static int m_recvfrom(lua_State *L) {
  return recv_start(L, RECVFROM);
}

/* core.trio_stream_recv(sock, max_bytes): SocketStream:receive_some */
static int m_stream_recv(lua_State *L) {
  return recv_start(L, STREAM);
}

/* ---- accept ---- */

static int accept_k(lua_State *L, int status, lua_KContext ctx);

static int accept_try(lua_State *L, ta_task *t, int waited) {
  ta_sock *s = op_sock(L, "accept", waited, NO_HELPER);
  int n;
  if (s == NULL) return fail_op(L, t, waited, NO_HELPER);
  lua_settop(L, 1);
  if (s->kind == TA_SK_UDP) {
    ta_push_oserror(L, UV_ENOTSUP, NULL, "accept");
    return fail_op(L, t, waited, NO_HELPER);
  }
  n = ta_stream_try_accept(L, s);
  if (n > 0) {
    /* -> sock, peer address */
    lua_getfield(L, -1, "getpeername");
    lua_pushvalue(L, -2);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
      lua_pop(L, 1);
      lua_pushnil(L);
    }
    return done(L, t, 2, waited);
  }
  if (n != TA_IO_AGAIN) {
    ta_push_oserror(L, n, NULL, "accept");
    return fail_op(L, t, waited, NO_HELPER);
  }
  return park_on(L, t, &s->slot[TA_SIDE_READ], TA_SIDE_READ, "accept", slot_abort, accept_k);
}

static int accept_k(lua_State *L, int status, lua_KContext ctx) {
  ta_task *t = (ta_task *)ctx;
  (void)status;
  check_resume(L, t);
  return accept_try(L, t, 1);
}

/* sock:accept() -> sock, addr */
static int m_accept(lua_State *L) {
  ta_task *t;
  ta_checksockbox(L, 1);
  t = ta_async_check(L, "accept", TA_TRIO);
  if (ta_cancel_pending(t)) return ta_checkpoint(L, t);
  return accept_try(L, t, 0);
}

/* ---- send, sendto ---- */

static int send_k(lua_State *L, int status, lua_KContext ctx);

/* After the data was handed over (some queued): wait until libuv wrote
** it; a cancelled wait leaves it queued (it is still sent). */
static int send_wait(lua_State *L, ta_task *t, const char *fname) {
  ta_sock *s = op_sock(L, fname, 1, NO_HELPER);
  int rc = ta_stream_try_drain(s);
  if (rc == 0) {
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 2));
    return 1;
  }
  if (rc != TA_IO_AGAIN) return ta_oserror(L, rc, NULL, "%s", fname);
  return park_on(L, t, &s->slot[TA_SIDE_WRITE], TA_SIDE_WRITE, fname, slot_abort, send_k);
}

static int send_k(lua_State *L, int status, lua_KContext ctx) {
  ta_task *t = (ta_task *)ctx;
  (void)status;
  check_resume(L, t);
  return send_wait(L, t, lua_gettop(L) >= 3 && !lua_isnil(L, 3) ? "sendto" : "send");
}

static int send_start(lua_State *L, ta_task *t, ta_sock *s, const struct sockaddr *sa,
                      const char *fname) {
  size_t written = 0;
  int rc;
  if (s->kind == TA_SK_UDP) rc = ta_udp_send(L, s, 2, sa);
  else rc = ta_stream_write(L, s, 2, 0, &written);
  if (rc < 0) {
    if (sa != NULL) ta_push_oserror(L, rc, NULL, "%s %s", fname, ta_sock_addrstr(L, sa, sizeof(struct sockaddr_storage)));
    else ta_push_oserror(L, rc, NULL, "%s", fname);
    return fail_op(L, t, 0, NO_HELPER);
  }
  if (rc == 1) {
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 2));
    return ta_schedule_point_ret(L, t, 1);
  }
  return park_on(L, t, &s->slot[TA_SIDE_WRITE], TA_SIDE_WRITE, fname, slot_abort, send_k);
}

/* sock:send(data) -> the number of bytes sent (all of them: what the
** socket does not take at once is queued, and the call waits for it) */
static int m_send(lua_State *L) {
  ta_task *t;
  ta_sock *s;
  luaL_checkstring(L, 2);
  lua_settop(L, 2);
  t = ta_async_check(L, "send", TA_TRIO);
  if (ta_cancel_pending(t)) return ta_checkpoint(L, t);
  s = op_sock(L, "send", 0, NO_HELPER);
  if (s == NULL) return fail_op(L, t, 0, NO_HELPER);
  if (s->slot[TA_SIDE_WRITE].wake != NULL)
    return ta_error(L, "BusyResourceError", "send: another task is already waiting to write to this socket");
  return send_start(L, t, s, NULL, "send");
}

/* sock:sendto(data, addr) -> the number of bytes sent */
static int m_sendto(lua_State *L) {
  ta_sockbox *b = ta_checksockbox(L, 1);
  struct sockaddr_storage ss;
  ta_task *t;
  ta_sock *s;
  luaL_checkstring(L, 2);
  lua_settop(L, 3);
  ta_sock_toaddr(L, 3, b->family, &ss, "sendto", 2);
  t = ta_async_check(L, "sendto", TA_TRIO);
  if (ta_cancel_pending(t)) return ta_checkpoint(L, t);
  s = op_sock(L, "sendto", 0, NO_HELPER);
  if (s == NULL) return fail_op(L, t, 0, NO_HELPER);
  if (s->kind != TA_SK_UDP) {
    ta_push_oserror(L, UV_EISCONN, NULL, "sendto");
    return fail_op(L, t, 0, NO_HELPER);
  }
  if (s->slot[TA_SIDE_WRITE].wake != NULL)
    return ta_error(L, "BusyResourceError", "sendto: another task is already waiting to write to this socket");
  return send_start(L, t, s, (struct sockaddr *)&ss, "sendto");
}

/* ---- SocketStream:send_all ---- */

/* core.trio_stream_send(sock, data, stream): the whole of
** SocketStream:send_all but its checks of the stream's own fields.  The
** socket's box carries the busy mark (stream_sending) from the checks to
** every exit: a return, or an error raised through the stream's
** send_error (raise_op_error), which also marks the stream broken when a
** cancellation left bytes queued.  No pcall in Lua, no Lua field written
** on the way of a send that succeeds. */
static int stream_sent_k(lua_State *L, int status, lua_KContext ctx);
static int stream_drained_k(lua_State *L, int status, lua_KContext ctx);

static int stream_send_fail(lua_State *L, ta_task *t, int waited, int rc) {
  ta_push_oserror(L, rc, NULL, "send");
  return fail_op(L, t, waited, SEND_ERROR);
}

/* Queued bytes are being written: wait until they all are (a cancelled
** wait leaves them queued: they are still sent, and the stream broken). */
static int stream_send_wait(lua_State *L, ta_task *t) {
  ta_sock *s = op_sock(L, "send", 1, SEND_ERROR);
  int rc = ta_stream_try_drain(s);
  if (rc == 0) {
    ((ta_sockbox *)lua_touserdata(L, 1))->stream_sending = 0;
    return 0;
  }
  if (rc != TA_IO_AGAIN) return stream_send_fail(L, t, 1, rc);
  return park_on(L, t, &s->slot[TA_SIDE_WRITE], TA_SIDE_WRITE, "send", slot_abort, stream_drained_k);
}

/* A send resumed with an error (Cancelled): raised as the stream's. */
static void stream_send_check_resume(lua_State *L, ta_task *t) {
  if (t->resume_error) {
    t->resume_error = 0;
    raise_op_error(L, SEND_ERROR);
  }
}

static int stream_drained_k(lua_State *L, int status, lua_KContext ctx) {
  ta_task *t = (ta_task *)ctx;
  (void)status;
  stream_send_check_resume(L, t);
  return stream_send_wait(L, t);
}

/* after the schedule point of a send written at once */
static int stream_sent_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  stream_send_check_resume(L, (ta_task *)ctx);
  ((ta_sockbox *)lua_touserdata(L, 1))->stream_sending = 0;
  return 0;
}

static int m_stream_send(lua_State *L) {
  ta_sockbox *b = ta_checksockbox(L, 1);
  ta_task *t;
  ta_sock *s;
  size_t written;
  int rc;
  if (b->stream_sending)
    return ta_error(L, "BusyResourceError", "another task is currently sending data on this SocketStream");
  if (lua_type(L, 2) != LUA_TSTRING)
    return luaL_error(L, "bad argument #1 to 'send_all' (string expected, got %s)", luaL_typename(L, 2));
  lua_settop(L, 3);
  t = ta_async_check(L, "SocketStream:send_all", TA_TRIO);
  if (ta_cancel_pending(t)) { /* a checkpoint: Cancelled after a schedule point */
    ta_push_cancelled(L, t);
    b->stream_sending = 1; /* busy through the schedule point; raising clears it */
    return fail_op(L, t, 0, SEND_ERROR);
  }
  s = box_sock(L, b, "send", 0, SEND_ERROR);
  if (s == NULL) {
    b->stream_sending = 1; /* busy through the schedule point, as any send; raising clears it */
    return fail_op(L, t, 0, SEND_ERROR);
  }
  if (s->slot[TA_SIDE_WRITE].wake != NULL)
    return ta_error(L, "BusyResourceError", "send: another task is already waiting to write to this socket");
  b->stream_sending = 1;
  rc = ta_stream_write(L, s, 2, 0, &written);
  if (rc < 0) return stream_send_fail(L, t, 0, rc);
  if (rc == 1) return ta_schedule_point_k(L, t, 0, stream_sent_k);
  return park_on(L, t, &s->slot[TA_SIDE_WRITE], TA_SIDE_WRITE, "send", slot_abort, stream_drained_k);
}

/* trio_stream_sending(sock[, busy]) -> whether a SocketStream sends on
** sock (wait_send_all_might_not_block and send_eof ask; the first also
** sets it around its wait) */
static int l_stream_sending(lua_State *L) {
  ta_sockbox *b = ta_checksockbox(L, 1);
  if (!lua_isnoneornil(L, 2)) b->stream_sending = (unsigned char)lua_toboolean(L, 2);
  lua_pushboolean(L, b->stream_sending);
  return 1;
}

/* ---- connect ---- */

/* A cancelled connect leaves the socket unusable: it is closed (Trio). */
static int connect_abort(lua_State *L, ta_task *t) {
  ta_sockbox *b = (ta_sockbox *)lua_touserdata(t->co, 1);
  slot_abort(L, t);
  if (b != NULL) ta_sock_close(L, b);
  return TA_ABORT_SUCCEEDED;
}

static int connect_error(lua_State *L, ta_task *t, int waited, int rc) {
  ta_sockbox *b = ta_checksockbox(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = ta_sock_toaddr(L, 2, b->family, &ss, "connect", 1);
  const char *where = ta_sock_addrstr(L, (struct sockaddr *)&ss, len);
  ta_push_oserror(L, rc, b->family == AF_UNIX ? where : NULL, "connect %s", where);
  return fail_op(L, t, waited, NO_HELPER);
}

static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  ta_task *t = (ta_task *)ctx;
  ta_sock *s;
  int rc;
  (void)status;
  check_resume(L, t);
  s = op_sock(L, "connect", 1, NO_HELPER);
  rc = ta_sock_try_connect(s);
  if (rc == 0) return 0;
  if (rc != TA_IO_AGAIN) return connect_error(L, t, 1, rc);
  return park_on(L, t, &s->slot[TA_SIDE_WRITE], TA_SIDE_WRITE, "connect", connect_abort, connect_k);
}

/* sock:connect(addr): addr must be numeric (trio.socket's Lua face
** resolves names first). */
static int m_connect(lua_State *L) {
  ta_sockbox *b = ta_checksockbox(L, 1);
  struct sockaddr_storage ss;
  socklen_t len;
  ta_task *t;
  ta_sock *s;
  int rc;
  lua_settop(L, 2);
  len = ta_sock_toaddr(L, 2, b->family, &ss, "connect", 1);
  t = ta_async_check(L, "connect", TA_TRIO);
  if (ta_cancel_pending(t)) return ta_checkpoint(L, t);
  s = op_sock(L, "connect", 0, NO_HELPER);
  if (s == NULL) return fail_op(L, t, 0, NO_HELPER);
  if (s->slot[TA_SIDE_WRITE].wake != NULL)
    return ta_error(L, "BusyResourceError", "connect: another task is already waiting to write to this socket");
  if (s->kind == TA_SK_UDP) rc = ta_udp_connect(s, (struct sockaddr *)&ss);
  else rc = ta_sock_start_connect(L, s, (struct sockaddr *)&ss, len);
  if (rc < 0) return connect_error(L, t, 0, rc);
  if (s->kind == TA_SK_UDP || !s->connecting) return ta_schedule_point(L, t);
  return park_on(L, t, &s->slot[TA_SIDE_WRITE], TA_SIDE_WRITE, "connect", connect_abort, connect_k);
}

/* ---- waiting on any io object ---- */

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  ta_task *t = (ta_task *)ctx;
  (void)status;
  check_resume(L, t);
  return 0;
}

/* trio_wait_io(obj, side): park until the slot of obj for side (0 read,
** 1 write) is woken; returns at once if obj is closed or done. */
static int l_wait_io(lua_State *L) {
  int side = (int)luaL_optinteger(L, 2, 0);
  ta_waiter *w = ta_io_slot(L, 1, side, "trio_wait_io");
  ta_task *t = ta_async_check(L, "trio_wait_io", TA_TRIO);
  if (w == NULL) return ta_checkpoint(L, t);
  lua_settop(L, 2);
  return park_on(L, t, w, side, "wait", slot_abort, wait_k);
}

/* sock_writing(sock) -> true while writes are in flight */
static int l_writing(lua_State *L) {
  ta_sock *s = ta_tosock(L, 1);
  lua_pushboolean(L, s != NULL && s->nwreqs > 0);
  return 1;
}

/* trio_stream_setup{recv_error, send_error}: the Lua helpers that raise
** the stream error for an error of SocketStream's receive_some and
** send_all (lua/trio/streams.lua; see raise_op_error); upvalue 1: the
** stream helpers. */
static int l_trio_stream_setup(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argcheck(L, lua_rawgeti(L, 1, RECV_ERROR) == LUA_TFUNCTION, 1, "recv_error function expected");
  luaL_argcheck(L, lua_rawgeti(L, 1, SEND_ERROR) == LUA_TFUNCTION, 1, "send_error function expected");
  lua_rawseti(L, lua_upvalueindex(1), SEND_ERROR);
  lua_rawseti(L, lua_upvalueindex(1), RECV_ERROR);
  return 0;
}

/* The methods (upvalues: the engine, the stream helpers): SocketStream's
** receive_some and send_all are core.trio_stream_recv / trio_stream_send,
** which check their arguments and the flavor here, once per call. */
int ta_open_trio_socket(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"accept", m_accept},
    {"connect", m_connect},
    {"send", m_send},
    {"sendto", m_sendto},
    {"recv", m_recv},
    {"recvfrom", m_recvfrom},
    {"trio_stream_send", m_stream_send},
    {"trio_stream_recv", m_stream_recv},
  };
  static const luaL_Reg funcs[] = {
    {"trio_wait_io", l_wait_io},
    {"sock_writing", l_writing},
    {"trio_stream_sending", l_stream_sending},
    {NULL, NULL}
  };
  int module = lua_gettop(L) - 1, helpers;
  lua_newtable(L); /* the stream helpers */
  helpers = lua_gettop(L);
  lua_pushvalue(L, helpers);
  lua_pushcclosure(L, l_trio_stream_setup, 1);
  lua_setfield(L, module, "trio_stream_setup");
  luaL_getmetatable(L, TA_SOCKET_MT);
  lua_getfield(L, -1, "__methods");
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    lua_pushvalue(L, module + 1); /* engine */
    lua_pushvalue(L, helpers);
    lua_pushcclosure(L, methods[i].func, UP_STREAM_HELPERS);
    lua_setfield(L, strncmp(methods[i].name, "trio_stream_", 12) == 0 ? module : -2, methods[i].name);
  }
  lua_settop(L, module + 1);
  ta_register(L, funcs);
  return 0;
}
