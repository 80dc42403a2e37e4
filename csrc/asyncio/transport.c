/*
** transport.c — the hot paths of asyncio's stream transports in C: the
** read path (what a wake of the persistent read wait runs: take the bytes,
** call protocol:data_received) and transport:write.  The transport itself
** is the Lua table of lua/asyncio/net.lua (its fields, its other methods,
** the rare paths: end of stream, errors, flow control); these functions
** are two of its methods (Transport._read_ready, Transport.write) and call
** back into its Lua methods for everything but the common case.
**
** The same for the streams over such a transport (lua/asyncio/streams.lua):
** the read path feeds a StreamReaderProtocol's reader
** (csrc/asyncio/streamreader.c) itself, as its Lua data_received would
** (found by address: stream_transport_setup hands it over).
**
** The read path works on the transport's core (transport_core below), a
** userdata the transport table holds in its _core field: its socket, its
** protocol and that protocol's data_received (looked up when the protocol
** is set: new_transport, after connection_made, set_protocol), so that a
** read looks no Lua field up.  The read wait is armed with the read path
** on the core, and the loop runs it directly (ta_transport_read_wake,
** from csrc/asyncio/iowait.c's ta_loop_run_read_wakes: no Lua call of a C function),
** which calls protocol:data_received unprotected (its error comes back
** through ta_transport_read_failed).
**
** The read path tells "closing or paused" from its socket: the transport
** stops its socket's reading (sock_pause_reading) whenever it pauses or
** starts closing, so `read_paused` on the socket is set exactly then, and
** no Lua field is read per read.
*/
#include <string.h>

#include "asyncio/asyncio.h"
#include "io/sock.h"

#define MAX_READ (256 * 1024)
#define READS_PER_CALL 16 /* then the rest waits for the loop's next batch */

/* The fields the hot paths read are upvalues of their functions, interned
** once (lua_getfield would look each name up in the string cache).
** Upvalue 1 is the engine, 2 the shared state, then the names. */
static const char *const field_names[] = {"_sock",   "data_received", "_closing", "_eof_written",
                                          "_reader", "transport",     "write"};
enum {
  UP_SHARED = 2,
  F_SOCK,
  F_DATA_RECEIVED,
  F_CLOSING,
  F_EOF_WRITTEN,
  F_READER,
  F_TRANSPORT,
  F_WRITE,
  F_END
};

/* What the functions share (one per engine, an upvalue of each): what
** stream_transport_setup hands over from lua/asyncio/streams.lua,
** compared by address (anchored in the userdata's user value):
** StreamReaderProtocol.data_received, NULL before the setup. */
typedef struct shared_state {
  const void *data_received;
} shared_state;

static const shared_state *shared(lua_State *L) {
  return (const shared_state *)lua_touserdata(L, lua_upvalueindex(UP_SHARED));
}

/* A transport's core: its socket's box (the socket anchored in a user
** value), and in user values the transport, the protocol, and the
** protocol's data_received and (for a StreamReaderProtocol) its reader as
** they were when the protocol was set. */
typedef struct {
  ta_sockbox *box;
  ta_engine *E;
  const struct shared_state *shared;
  const void *transport;          /* its address, for transport:write (calling_core) */
  unsigned char in_data_received; /* the read path calls it unprotected (direct_call) */
  unsigned char protocol_replaced; /* set_protocol meanwhile: the called one in CUV_CALLED */
  unsigned char stream_protocol;   /* CUV_DATA_RECEIVED is StreamReaderProtocol's,
                                      and CUV_READER its StreamReader (or nil) */
} transport_core;

enum { CUV_TRANSPORT = 1, CUV_SOCK, CUV_PROTOCOL, CUV_DATA_RECEIVED, CUV_CALLED, CUV_READER, CORE_NUV = CUV_READER };

/* The core at idx, or an argument error (in a function of this file:
** the engine is its upvalue 1). */
static transport_core *check_core(lua_State *L, int idx) {
  return (transport_core *)ta_checkudata(L, ta_upengine(L), idx, TA_MT_TRANSPORT_CORE);
}

/* Pushes obj[field] (obj an absolute index) and returns its type. */
static int get_field(lua_State *L, int obj, int field) {
  lua_pushvalue(L, lua_upvalueindex(field));
  return lua_gettable(L, obj);
}

/* The same without metamethods, for fields the constructors set. */
static int rawget_field(lua_State *L, int obj, int field) {
  lua_pushvalue(L, lua_upvalueindex(field));
  return lua_rawget(L, obj);
}

/* t:name(the nargs values on top of the stack); t is at idx. */
static void call_method_of(lua_State *L, int idx, const char *name, int nargs) {
  lua_getfield(L, idx, name);
  lua_pushvalue(L, idx);
  lua_rotate(L, -2 - nargs, 2);
  lua_call(L, nargs + 1, 0);
}

/* The same for the transport at 1. */
static void call_method(lua_State *L, const char *name, int nargs) {
  call_method_of(L, 1, name, nargs);
}

/* The read path's stack, from its base b (the core), in the order of a
** call of data_received(protocol, data): */
enum { R_CORE, R_DATA_RECEIVED, R_PROTOCOL, R_DATA, R_READER };

/* In the read path: the transport's name(the nargs values on top). */
static void transport_method(lua_State *L, int b, const char *name, int nargs) {
  lua_getiuservalue(L, b + R_CORE, CUV_TRANSPORT);
  lua_getfield(L, -1, name);
  lua_insert(L, -2);
  lua_rotate(L, -2 - nargs, 2); /* [method, transport, args...] */
  lua_call(L, nargs + 1, 0);
}

/* Arms the persistent read wait unless it is armed already (once; some
** other waiter in the slot makes _arm_read raise BusyResourceError). */
static void arm_read(lua_State *L, int b, ta_sock *s) {
  if (!ta_aio_persistent_armed(&s->slot[TA_SIDE_READ])) transport_method(L, b, "_arm_read", 0);
}

/* In the read path, on [core, data_received, protocol, data] with a
** protocol set since the core looked its data_received up:
** StreamReaderProtocol's data_received, self._reader:feed_data(data), done
** directly when the reader is a StreamReader that takes the data; 0 if the
** caller has to call it (the stack as it was then; else the caller drops
** what is above the data). */
static int feed_stream_reader(lua_State *L, const transport_core *c, int b) {
  ta_sreader *r;
  if (lua_topointer(L, b + R_DATA_RECEIVED) != c->shared->data_received || !lua_istable(L, b + R_PROTOCOL)) return 0;
  lua_pushliteral(L, "_reader");
  lua_rawget(L, b + R_PROTOCOL); /* R_READER */
  r = ta_stream_reader_test(L, c->E, b + R_READER);
  if (r != NULL && ta_stream_reader_feed(L, r, b + R_READER, b + R_DATA)) return 1;
  lua_settop(L, b + R_DATA);
  return 0;
}

/* The same for the StreamReaderProtocol the core knows (stream_protocol),
** on [core, reader, nil, data] (its CUV_READER, checked when cached, or
** nil): 0 with the stack made [core, data_received, protocol, data] for
** the caller's call. */
static int feed_cached_reader(lua_State *L, int b) {
  ta_sreader *r = (ta_sreader *)lua_touserdata(L, b + R_DATA_RECEIVED);
  if (r != NULL && ta_stream_reader_feed(L, r, b + R_DATA_RECEIVED, b + R_DATA)) return 1;
  lua_getiuservalue(L, b + R_CORE, CUV_DATA_RECEIVED);
  lua_replace(L, b + R_DATA_RECEIVED);
  lua_getiuservalue(L, b + R_CORE, CUV_PROTOCOL);
  lua_replace(L, b + R_PROTOCOL);
  return 0;
}

/* The core whose read path the running loop is calling (a write from
** protocol:data_received runs inside it), or NULL.  The core passed
** check_core: the read path calls no Lua before. */
static const transport_core *calling_core(const ta_engine *E) {
  const ta_loop *lp = (const ta_loop *)E->running_loop;
  return lp != NULL ? (const transport_core *)ta_loop_calling_arg(lp, ta_transport_read_ready) : NULL;
}

/* The protocol called from the read path, kept when set_protocol replaced
** it during the call (for its error), is no longer needed: the core c at
** idx lets it go. */
static void forget_called(lua_State *L, transport_core *c, int idx) {
  c->protocol_replaced = 0;
  lua_pushnil(L);
  lua_setiuservalue(L, idx, CUV_CALLED);
}

/* In the read path, on [core, data_received, protocol, data] (taken by
** the call): calls protocol:data_received(data).  From the loop's own call
** of the read wait (`direct`: ta_transport_read_wake, not in debug mode,
** which times that call), unprotected: an error ends
** the loop's call and the loop hands it to ta_transport_read_failed (below)
** while in_data_received is still set, which reports it as the protected
** call does.  0 if it raised (reported, the transport closed). */
static int call_data_received(lua_State *L, transport_core *c, int b, int direct) {
  const ta_loop *lp = (const ta_loop *)c->E->running_loop;
  if (direct && !c->in_data_received && lp != NULL && !lp->debug) {
    c->in_data_received = 1;
    lua_call(L, 2, 0);
    c->in_data_received = 0;
    if (c->protocol_replaced) forget_called(L, c, b + R_CORE);
    return 1;
  }
  lua_pushvalue(L, b + R_PROTOCOL);
  lua_insert(L, b + R_DATA_RECEIVED); /* (kept for its error) */
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) { /* the protocol, its error */
    transport_method(L, b, "_data_received_failed", 2);
    return 0;
  }
  return 1;
}

/* The loop's call of an io wait's callback fn (at fnidx, its argument
** above) raised the error at erridx: when that was a read path's
** unprotected protocol:data_received, its transport reports it and closes
** (t:_data_received_failed(protocol, error), protected) and this returns
** 1; else, or when that raised (its error replaces the one at erridx),
** 0: the loop reports the error. */
int ta_transport_read_failed(lua_State *L, int fnidx, int erridx) {
  transport_core *c;
  int top = lua_gettop(L);
  if (lua_tocfunction(L, fnidx) != ta_transport_read_ready) return 0;
  c = (transport_core *)lua_touserdata(L, fnidx + 1); /* (its wait was armed on a core: it ran) */
  if (c == NULL || !c->in_data_received) return 0;
  c->in_data_received = 0;
  lua_getiuservalue(L, fnidx + 1, CUV_TRANSPORT);
  lua_getfield(L, -1, "_data_received_failed");
  lua_insert(L, -2);
  lua_getiuservalue(L, fnidx + 1, c->protocol_replaced ? CUV_CALLED : CUV_PROTOCOL);
  if (c->protocol_replaced) forget_called(L, c, fnidx + 1);
  lua_pushvalue(L, erridx);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
    lua_replace(L, erridx);
    lua_settop(L, top);
    return 0;
  }
  lua_settop(L, top);
  return 1;
}

/* In the read path, when the core has no data_received: the protocol's
** own now (into R_DATA_RECEIVED; one added since it was set, or a protocol
** that cannot be indexed raises, as for a transport that looks it up on
** each read); 0 if there is none. */
static int data_received_now(lua_State *L, int b) {
  int t = lua_type(L, b + R_PROTOCOL);
  if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, b + R_PROTOCOL))) return 0;
  t = lua_getfield(L, b + R_PROTOCOL, "data_received");
  lua_replace(L, b + R_DATA_RECEIVED);
  return t != LUA_TNIL;
}

/* The read path of the core c at b, the top of the stack (with
** TA_READ_WAKE_STACK free slots above it, as a C function called from Lua
** has): takes what the transport's socket has received and hands it to
** the protocol, a few times, then waits for more (armed only after the
** socket said it has nothing more: an end of stream already seen would
** never wake it).  The transport's Lua methods do the rest.  `direct`:
** the loop's own call (ta_transport_read_wake).  Leaves values above b. */
static void read_path(lua_State *L, transport_core *c, int b, int direct) {
  ta_sockbox *box = c->box;
  if (box->s != NULL) ta_sock_reap(L, box->s);
  for (int i = 0; i < READS_PER_CALL; i++) {
    ta_sock *s = box->s; /* (again after each Lua call: it may have closed it) */
    int rc, more, cached = 1, fed;
    int stream = c->stream_protocol; /* its reader's feed: the protocol is not needed */
    size_t avail;
    if (s == NULL || s->read_paused) return; /* closed, closing or paused */
    avail = ta_stream_buffered(s);
    if (stream) {
      lua_getiuservalue(L, b + R_CORE, CUV_READER); /* for now in R_DATA_RECEIVED */
      lua_pushnil(L);                               /* and nil in R_PROTOCOL */
    } else {
      cached = lua_getiuservalue(L, b + R_CORE, CUV_DATA_RECEIVED) != LUA_TNIL; /* R_DATA_RECEIVED */
      lua_getiuservalue(L, b + R_CORE, CUV_PROTOCOL);                           /* R_PROTOCOL */
    }
    rc = ta_stream_try_recv(L, s, MAX_READ); /* R_DATA */
    if (rc == TA_IO_AGAIN) {
      arm_read(L, b, s);
      return;
    }
    if (rc < 0) {
      ta_push_oserror(L, rc, NULL, "recv");
      lua_pushliteral(L, "Fatal read error on socket transport");
      transport_method(L, b, "_fatal_error", 2);
      return;
    }
    if (avail == 0) { /* "": the end of the stream */
      transport_method(L, b, "_read_eof", 0);
      return;
    }
    /* anything else pending: bytes left, an end of stream, an error */
    more = ta_stream_buffered(s) > 0 || s->rerr != 0 || !s->reading;
    if (stream) fed = feed_cached_reader(L, b);
    else if (cached) fed = 0;
    else fed = !data_received_now(L, b) || feed_stream_reader(L, c, b); /* (none: nothing to call) */
    if (!fed && !call_data_received(L, c, b, direct)) return;
    if (!more) {
      if (box->s != NULL) arm_read(L, b, box->s);
      return;
    }
    lua_settop(L, b);
  }
  /* loop:call_soon(transport._read_ready, transport) */
  lua_getiuservalue(L, b + R_CORE, CUV_TRANSPORT);
  lua_getfield(L, -1, "_loop");
  lua_getfield(L, -1, "call_soon");
  lua_insert(L, -2);
  lua_getfield(L, -3, "_read_ready");
  lua_pushvalue(L, -4);
  lua_call(L, 3, 0);
}

/* read_ready(core): the read path (the callback of the transport's read
** wait; the loop calls it directly, ta_transport_read_wake). */
int ta_transport_read_ready(lua_State *L) {
  transport_core *c = check_core(L, 1);
  lua_settop(L, 1);
  luaL_argcheck(L, c->box->s == NULL || c->box->s->kind != TA_SK_UDP, 1, "a stream socket's transport expected");
  read_path(L, c, 1, 0);
  return 0;
}

/* For the loop: the read path of the core at idx, the top of the stack
** (TA_READ_WAKE_STACK free slots above it), a read wait's argument that
** ta_transport_is_read_wait accepted; the stack is left above idx.  (The
** loop calls it so only when not in debug mode.) */
void ta_transport_read_wake(lua_State *L, int idx) {
  read_path(L, (transport_core *)lua_touserdata(L, idx), idx, 1);
}

/* Whether fn(arg) (at fnidx, arg above) is a stream transport's read wait,
** which the loop may call with ta_transport_read_wake. */
int ta_transport_is_read_wait(lua_State *L, int fnidx) {
  const transport_core *c;
  if (lua_tocfunction(L, fnidx) != ta_transport_read_ready) return 0;
  c = (const transport_core *)ta_testudata(L, ta_engine_get(L), fnidx + 1, TA_MT_TRANSPORT_CORE);
  return c != NULL && (c->box->s == NULL || c->box->s->kind != TA_SK_UDP);
}

/* The data_received of protocol (at idx) into the core's user value: nil
** when it has none, or cannot be indexed (as nil or false); for a
** StreamReaderProtocol, also its _reader when that is a StreamReader. */
static void cache_data_received(lua_State *L, int core, int idx) {
  transport_core *c = (transport_core *)lua_touserdata(L, core);
  int t = lua_type(L, idx);
  if (t == LUA_TTABLE || (t != LUA_TNIL && t != LUA_TBOOLEAN && luaL_getmetafield(L, idx, "__index") != LUA_TNIL)) {
    if (t != LUA_TTABLE) lua_pop(L, 1);
    get_field(L, idx, F_DATA_RECEIVED);
  } else {
    lua_pushnil(L);
  }
  c->stream_protocol = !lua_isnil(L, -1) && lua_topointer(L, -1) == c->shared->data_received;
  lua_setiuservalue(L, core, CUV_DATA_RECEIVED);
  if (c->stream_protocol && t == LUA_TTABLE) {
    rawget_field(L, idx, F_READER);
    if (ta_stream_reader_test(L, c->E, -1) == NULL) {
      lua_pop(L, 1);
      lua_pushnil(L);
    }
  } else {
    lua_pushnil(L);
  }
  lua_setiuservalue(L, core, CUV_READER);
}

/* transport_core(transport, sock, protocol) -> the transport's core */
static int l_transport_core(lua_State *L) {
  ta_sockbox *box;
  transport_core *c;
  luaL_checktype(L, 1, LUA_TTABLE);
  box = ta_checksockbox(L, 2);
  lua_settop(L, 3);
  c = (transport_core *)lua_newuserdatauv(L, sizeof *c, CORE_NUV); /* 4 */
  memset(c, 0, sizeof *c);
  c->box = box;
  c->E = ta_upengine(L);
  c->shared = shared(L);
  c->transport = lua_topointer(L, 1);
  ta_setmetatable(L, c->E, TA_MT_TRANSPORT_CORE);
  for (int i = 1; i <= 3; i++) { /* CUV_TRANSPORT, CUV_SOCK, CUV_PROTOCOL */
    lua_pushvalue(L, i);
    lua_setiuservalue(L, 4, i);
  }
  cache_data_received(L, 4, 3);
  return 1;
}

/* transport_set_protocol(core, protocol): the protocol the read path
** calls, its data_received looked up now. */
static int l_transport_set_protocol(lua_State *L) {
  transport_core *c = check_core(L, 1);
  lua_settop(L, 2);
  if (c->in_data_received && !c->protocol_replaced) { /* keep the one called, for its error */
    c->protocol_replaced = 1;
    lua_getiuservalue(L, 1, CUV_PROTOCOL);
    lua_setiuservalue(L, 1, CUV_CALLED);
  }
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, 1, CUV_PROTOCOL);
  cache_data_received(L, 1, 2);
  return 0;
}

/* After a write of [transport, data] to s: rc as ta_stream_write's, or
** UV_EBADF when the socket is closed. */
static int write_done(lua_State *L, const ta_sock *s, int rc) {
  lua_settop(L, 2);
  if (rc < 0) {
    ta_push_oserror(L, rc, NULL, s == NULL ? "write: the socket is closed" : "send");
    lua_pushliteral(L, "Fatal write error on socket transport");
    call_method(L, "_fatal_error", 2);
  } else if (rc == 0) {
    call_method(L, "_write_queued", 0);
  }
  return 0;
}

/* Writes data (at 2 of L: its len bytes at p) to open socket s: rc as
** ta_stream_write's (1: all of it written).  A stream writer's bound
** socket is never UDP (streamreader.c binds none).  write_to_socket then
** tells transport (at 1) what came of it (write_done), unless the socket
** took it all at once. */
static int socket_write(lua_State *L, ta_sock *s, const char *p, size_t len) {
  size_t written;
  ta_sock_reap(L, s);
  return s->kind == TA_SK_UDP ? ta_udp_send(L, s, 2, NULL) : ta_stream_write_bytes(L, s, 2, p, len, &written);
}

static int write_to_socket(lua_State *L, ta_sock *s, const char *p, size_t len) {
  int rc = socket_write(L, s, p, len);
  return rc == 1 ? 0 : write_done(L, s, rc);
}

/* Whether a write to s (len bytes) goes the common way: an open stream
** socket that is not closing (its reading stopped, see above) and had no
** write_eof() (its sending shut down), and something to write. */
static int plain_write(const ta_sock *s, size_t len) {
  return s != NULL && !s->read_paused && !s->send_shut && len > 0;
}

/* transport:write(data): never waits; what the socket does not take at
** once is queued (then t:_write_queued() arms the write wait and checks
** the high water mark).  A transport that is closing or had write_eof()
** goes to t:_write_refused(data) (raises, or counts the lost write).
** Those two fields are read only when the socket says they may be set:
** closing stops its reading (as for the read path) and write_eof() shuts
** its sending down (or fails, and the transport closes). */
static int l_write(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  const transport_core *c;
  ta_sockbox *box;
  ta_sock *s;
  const char *p;
  size_t len;
  if (lua_type(L, 2) != LUA_TSTRING) { /* as the Lua methods say it */
    const char *got = lua_isnone(L, 2) ? "nil" : luaL_typename(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE); /* (that error first) */
    luaL_where(L, 2);
    lua_pushfstring(L, "bad argument #1 to 'write' (string expected, got %s)", got);
    lua_concat(L, 2);
    return lua_error(L);
  }
  if (lua_gettop(L) != 2) lua_settop(L, 2);
  p = lua_tolstring(L, 2, &len);
  c = calling_core(E);
  if (c != NULL && c->transport == lua_topointer(L, 1)) { /* from its own read path: a table */
    box = c->box;
    if (plain_write(box->s, len)) return write_to_socket(L, box->s, p, len);
    lua_pushnil(L); /* 3 (the core anchors the socket) */
  } else {
    luaL_checktype(L, 1, LUA_TTABLE);
    get_field(L, 1, F_SOCK); /* 3 */
    box = ta_checksockbox(L, 3);
  }
  s = box->s;
  if (!plain_write(s, len)) {
    get_field(L, 1, F_CLOSING); /* (_lost_called comes after _closing) */
    get_field(L, 1, F_EOF_WRITTEN);
    if (lua_toboolean(L, 4) || lua_toboolean(L, 5) || len == 0) {
      lua_settop(L, 2);
      call_method(L, "_write_refused", 1);
      return 0;
    }
  }
  if (s == NULL) return write_done(L, s, UV_EBADF);
  return write_to_socket(L, s, p, len);
}

/* StreamWriter:write(data): self.transport:write(data).  A writer bound
** to its reader (asyncio.StreamWriter over a plain Transport, see
** csrc/asyncio/streamreader.c) with that transport still its own writes
** to the bound socket directly, in the common case of transport:write
** above; any other goes through its transport's write method. */
static int l_stream_writer_write(lua_State *L) {
  ta_sockbox *box = NULL;
  if (lua_gettop(L) != 2) lua_settop(L, 2);
  if (lua_type(L, 1) == LUA_TTABLE && lua_type(L, 2) == LUA_TSTRING) {
    rawget_field(L, 1, F_READER);    /* 3 */
    rawget_field(L, 1, F_TRANSPORT); /* 4 */
    box = ta_stream_writer_socket(L, 3, lua_topointer(L, 1), lua_topointer(L, 4));
  }
  if (box != NULL) {
    ta_sock *s = box->s;
    size_t len;
    const char *p = lua_tolstring(L, 2, &len);
    if (plain_write(s, len)) {
      int rc = socket_write(L, s, p, len);
      if (rc == 1) return 0;
      lua_copy(L, 4, 1); /* [transport, data] (write_done drops the rest) */
      return write_done(L, s, rc);
    }
  }
  lua_settop(L, 2);
  get_field(L, 1, F_TRANSPORT); /* 3 */
  get_field(L, 3, F_WRITE);     /* 4 */
  lua_insert(L, 1);
  lua_insert(L, 2); /* [write, transport, self, data] */
  lua_remove(L, 3);
  lua_callk(L, 2, 0, 0, ta_no_results_k);
  return 0;
}

/* stream_transport_setup(StreamReaderProtocol.data_received): what
** lua/asyncio/streams.lua hands over. */
static int l_stream_transport_setup(lua_State *L) {
  shared_state *st = (shared_state *)lua_touserdata(L, lua_upvalueindex(UP_SHARED));
  luaL_checktype(L, 1, LUA_TFUNCTION);
  st->data_received = lua_topointer(L, 1);
  lua_settop(L, 1);
  lua_setiuservalue(L, lua_upvalueindex(UP_SHARED), 1);
  return 0;
}

/* Expects the module table and the engine on top (as ta_register). */
int ta_open_transport(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"transport_core", l_transport_core},
    {"transport_set_protocol", l_transport_set_protocol},
    {"transport_read_ready", ta_transport_read_ready},
    {"transport_write", l_write},
    {"stream_writer_write", l_stream_writer_write},
    {"stream_transport_setup", l_stream_transport_setup},
  };
  static const luaL_Reg core_meta[] = {{NULL, NULL}};
  int engine = lua_gettop(L), cls;
  shared_state *st = (shared_state *)lua_newuserdatauv(L, sizeof(shared_state), 1);
  memset(st, 0, sizeof *st);
  cls = lua_gettop(L);
  lua_pushvalue(L, engine);
  ta_newclass(L, "asyncio.TransportCore", core_meta, NULL, NULL);
  ta_cache_metatable(L, (ta_engine *)lua_touserdata(L, engine), TA_MT_TRANSPORT_CORE);
  lua_pop(L, 2);
  for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++) {
    lua_pushvalue(L, engine);
    lua_pushvalue(L, cls);
    for (int f = F_SOCK; f < F_END; f++) lua_pushstring(L, field_names[f - F_SOCK]);
    lua_pushcclosure(L, funcs[i].func, F_END - 1);
    lua_setfield(L, engine - 1, funcs[i].name);
  }
  lua_settop(L, engine);
  return 0;
}
