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
** Upvalue 1 is the engine, 2 the stream classes, then the names. */
static const char *const field_names[] = {"_sock",         "_protocol", "data_received", "_closing",
                                          "_eof_written", "_reader",   "transport",     "write"};
enum {
  UP_CLASSES = 2,
  F_SOCK,
  F_PROTOCOL,
  F_DATA_RECEIVED,
  F_CLOSING,
  F_EOF_WRITTEN,
  F_READER,
  F_TRANSPORT,
  F_WRITE,
  F_END
};

/* What stream_transport_setup hands over from lua/asyncio/streams.lua,
** compared by address (anchored in the userdata's user value):
** StreamReaderProtocol.data_received.  NULL before the setup. */
typedef struct {
  const void *data_received;
} stream_classes;

static const stream_classes *classes(lua_State *L) {
  return (const stream_classes *)lua_touserdata(L, lua_upvalueindex(UP_CLASSES));
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

/* The socket of the io wait whose callback the running loop is calling:
** the read path's usual caller is its transport's read wait, and a write
** from protocol:data_received runs inside that callback too. */
static const ta_sockbox *calling_sockbox(const ta_engine *E) {
  const ta_loop *lp = (const ta_loop *)E->running_loop;
  return lp != NULL ? ta_loop_calling_sockbox(lp) : NULL;
}

/* The socket object at idx, checked by its metatable (as ta_checksockbox,
** without looking the engine up again). */
static ta_sockbox *socket_box(lua_State *L, const ta_engine *E, int idx) {
  ta_sockbox *box = (ta_sockbox *)lua_touserdata(L, idx);
  int ok;
  if (box == NULL || !lua_getmetatable(L, idx)) return ta_checksockbox(L, idx); /* raises */
  ok = lua_topointer(L, -1) == E->mt[TA_MT_SOCKET];
  lua_pop(L, 1);
  return ok ? box : ta_checksockbox(L, idx);
}

/* The socket object at idx (a transport's _sock): checked, unless it is
** the calling io wait's (an open socket's, alive meanwhile). */
static inline ta_sockbox *checked_sockbox(lua_State *L, const ta_engine *E, int idx) {
  ta_sockbox *box = (ta_sockbox *)lua_touserdata(L, idx);
  return box != NULL && box == calling_sockbox(E) ? box : socket_box(L, E, idx);
}

/* t:name(the nargs values on top of the stack); t is at 1. */
static void call_method(lua_State *L, const char *name, int nargs) {
  lua_getfield(L, 1, name);
  lua_pushvalue(L, 1);
  lua_rotate(L, -2 - nargs, 2);
  lua_call(L, nargs + 1, 0);
}

/* Arms the persistent read wait unless it is armed already (once; some
** other waiter in the slot makes _arm_read raise BusyResourceError). */
static void arm_read(lua_State *L, ta_sock *s) {
  if (!ta_aio_persistent_armed(&s->slot[TA_SIDE_READ])) call_method(L, "_arm_read", 0);
}

/* In the read path, on [transport, sock, data, protocol,
** protocol.data_received]: StreamReaderProtocol's data_received,
** self._reader:feed_data(data), done directly when the reader is a
** StreamReader that takes the data; 0 if the caller has to call it (the
** stack as it was then; else the caller drops what is above the data). */
static int feed_stream_reader(lua_State *L, ta_engine *E) {
  ta_sreader *r;
  if (lua_topointer(L, 5) != classes(L)->data_received || !lua_istable(L, 4)) return 0;
  rawget_field(L, 4, F_READER); /* 6 */
  r = ta_stream_reader_test(L, E, 6);
  if (r != NULL && ta_stream_reader_feed(L, r, 6, 3)) return 1;
  lua_settop(L, 5);
  return 0;
}

/* transport:_read_ready(): takes what the socket has received and hands it
** to the protocol, a few times, then waits for more (armed only after the
** socket said it has nothing more: an end of stream already seen would
** never wake it). */
static int l_read_ready(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_sockbox *box;
  if (lua_type(L, 1) != LUA_TTABLE) luaL_checktype(L, 1, LUA_TTABLE); /* raises */
  if (lua_gettop(L) != 1) lua_settop(L, 1);
  get_field(L, 1, F_SOCK); /* 2: keeps the box alive */
  box = checked_sockbox(L, E, 2);
  luaL_argcheck(L, box->s == NULL || box->s->kind != TA_SK_UDP, 1, "a stream socket's transport expected");
  if (box->s != NULL) ta_sock_reap(L, box->s);
  for (int i = 0; i < READS_PER_CALL; i++) {
    ta_sock *s = box->s; /* (again after each Lua call: it may have closed it) */
    int rc, more, ptype;
    size_t avail;
    if (s == NULL || s->read_paused) return 0; /* closed, closing or paused */
    avail = ta_stream_buffered(s);
    rc = ta_stream_try_recv(L, s, MAX_READ);   /* the data at 3 */
    if (rc == TA_IO_AGAIN) {
      arm_read(L, s);
      return 0;
    }
    if (rc < 0) {
      ta_push_oserror(L, rc, NULL, "recv");
      lua_pushliteral(L, "Fatal read error on socket transport");
      call_method(L, "_fatal_error", 2);
      return 0;
    }
    if (avail == 0) { /* "": the end of the stream */
      call_method(L, "_read_eof", 0);
      return 0;
    }
    /* anything else pending: bytes left, an end of stream, an error */
    more = ta_stream_buffered(s) > 0 || s->rerr != 0 || !s->reading;
    ptype = get_field(L, 1, F_PROTOCOL); /* 4 */
    if (ptype != LUA_TNIL && (ptype != LUA_TBOOLEAN || lua_toboolean(L, 4)) &&
        get_field(L, 4, F_DATA_RECEIVED) != LUA_TNIL && !feed_stream_reader(L, E)) {
      lua_pushvalue(L, 4);
      lua_pushvalue(L, 3);
      if (lua_pcall(L, 2, 0, 0) != LUA_OK) { /* the protocol, its error */
        call_method(L, "_data_received_failed", 2);
        return 0;
      }
    }
    if (!more) {
      if (box->s != NULL) arm_read(L, box->s);
      return 0;
    }
    lua_settop(L, 2);
  }
  /* loop:call_soon(transport._read_ready, transport) */
  lua_getfield(L, 1, "_loop");
  lua_getfield(L, -1, "call_soon");
  lua_insert(L, -2);
  lua_getfield(L, 1, "_read_ready");
  lua_pushvalue(L, 1);
  lua_call(L, 3, 0);
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
  ta_sockbox *box;
  ta_sock *s;
  size_t len, written;
  int rc;
  if (lua_type(L, 1) != LUA_TTABLE) luaL_checktype(L, 1, LUA_TTABLE); /* raises */
  if (lua_type(L, 2) != LUA_TSTRING) { /* as the Lua methods say it */
    const char *got = lua_isnone(L, 2) ? "nil" : luaL_typename(L, 2);
    luaL_where(L, 2);
    lua_pushfstring(L, "bad argument #1 to 'write' (string expected, got %s)", got);
    lua_concat(L, 2);
    return lua_error(L);
  }
  if (lua_gettop(L) != 2) lua_settop(L, 2);
  lua_tolstring(L, 2, &len);
  get_field(L, 1, F_SOCK); /* 3 */
  box = checked_sockbox(L, ta_upengine(L), 3);
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
  ta_sock_reap(L, s);
  rc = s->kind == TA_SK_UDP ? ta_udp_send(L, s, 2, NULL) : ta_stream_write(L, s, 2, 0, &written);
  return rc == 1 ? 0 : write_done(L, s, rc);
}

/* StreamWriter:write(data): self.transport:write(data).  A writer bound
** to its reader (asyncio.StreamWriter over a plain Transport, see
** csrc/asyncio/streamreader.c) with that transport still its own writes
** to the bound socket directly, in the common case of transport:write
** above; any other goes through its transport's write method. */
static int l_stream_writer_write(lua_State *L) {
  ta_sreader *r = NULL;
  if (lua_gettop(L) != 2) lua_settop(L, 2);
  if (lua_type(L, 1) == LUA_TTABLE && lua_type(L, 2) == LUA_TSTRING) {
    rawget_field(L, 1, F_READER);    /* 3 */
    rawget_field(L, 1, F_TRANSPORT); /* 4 */
    r = ta_stream_writer_bound(L, ta_upengine(L), 3, lua_topointer(L, 1), lua_topointer(L, 4));
  }
  if (r != NULL) {
    ta_sock *s = ta_stream_reader_sockbox(r)->s;
    size_t len, written;
    int rc;
    lua_tolstring(L, 2, &len);
    if (plain_write(s, len)) {
      ta_sock_reap(L, s);
      rc = ta_stream_write(L, s, 2, 0, &written);
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
  stream_classes *cls = (stream_classes *)lua_touserdata(L, lua_upvalueindex(UP_CLASSES));
  luaL_checktype(L, 1, LUA_TFUNCTION);
  cls->data_received = lua_topointer(L, 1);
  lua_settop(L, 1);
  lua_setiuservalue(L, lua_upvalueindex(UP_CLASSES), 1);
  return 0;
}

/* Expects the module table and the engine on top (as ta_register). */
int ta_open_transport(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"transport_read_ready", l_read_ready},
    {"transport_write", l_write},
    {"stream_writer_write", l_stream_writer_write},
    {"stream_transport_setup", l_stream_transport_setup},
  };
  int engine = lua_gettop(L), cls;
  memset(lua_newuserdatauv(L, sizeof(stream_classes), 1), 0, sizeof(stream_classes));
  cls = lua_gettop(L);
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
