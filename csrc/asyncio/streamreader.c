/*
** streamreader.c — asyncio.StreamReader as a C object, with the semantics
** of CPython's asyncio/streams.py (lua/asyncio/streams.lua has the rest of
** the streams: the protocol, StreamWriter, readline, lines, the openers).
**
** The bytes received and not yet read are contiguous: while they come from
** one feed_data they stay in its Lua string (a read of all of them returns
** that string: request and response traffic copies nothing), a second
** feed moves them into a malloc'ed buffer (freed once empty).  So a read
** that finds its data costs one C call, and readuntil searches one block
** of memory.  A read that has to wait parks its asyncio Task in the
** reader (ta_aio_park_k: no Future; feed_data, feed_eof and set_exception
** put the Task back on the ready queue, Task:cancel() too).  Anything
** else that reads (a Trio task in allow_asyncio mode, or a Task of
** another loop) awaits a Future of the reader's loop (Future:await under
** lua_pcallk, as asyncio/queue.c does, so a cancelled read cleans up); the
** future of such a wait that ended with a result is kept and reused by the
** next one (nobody else holds it).
**
** Flow control as asyncio's: above twice the limit buffered, the reader
** pauses its transport's reading; once a read leaves the limit or less, it
** resumes it.  The errors with fields (IncompleteReadError,
** LimitOverrunError) and asyncio's ValueError are made by Lua helpers that
** lua/asyncio/streams.lua hands over with stream_reader_setup.
*/
#include <stdlib.h>
#include <string.h>

#include "asyncio/asyncio.h"
#include "io/sock.h"

/* User values: the loop the waits' futures belong to, the waiter (the
** future of the current or last wait on a future: a read awaits it while
** `waiting` is WAIT_FUTURE; once a wait ended with a result it is pending
** again, for the next wait, while `waiter_ready`), the exception set with
** set_exception, the transport, the string the bytes are in (chunk mode),
** the bound writer and its transport's socket (see "StreamWriter.drain"
** below), the Task that parked last (in `park`: the reader anchors it
** while it waits, and keeps it until another Task parks). */
enum { RUV_LOOP = 1, RUV_WAITER, RUV_EXC, RUV_TRANSPORT, RUV_CHUNK, RUV_WRITER, RUV_SOCK, RUV_PARKED,
       R_NUV = RUV_PARKED };

/* What a read waits on (`waiting`): nothing, a future, or in `park`. */
enum { WAIT_NONE, WAIT_FUTURE, WAIT_PARK };

/* Upvalues of the methods: the engine, the Lua helpers, Future:await.
** The helpers and the classes stream_writer_bind looks for, by index: */
enum { UP_HELPERS = 2, UP_AWAIT = 3 };
enum { H_INCOMPLETE = 1, H_OVERRUN, H_VALUE_ERROR, H_READ_ALL, H_DRAIN, H_N = H_DRAIN };
enum { H_TRANSPORT = H_N + 1, H_STREAM_PROTOCOL };

/* The bytes are [start, start + len) of chunk (the string in RUV_CHUNK)
** or, when chunk is NULL, of buf (cap bytes; NULL while empty). */
struct ta_sreader {
  const char *tag;        /* &reader_tag (ta_totagged) */
  ta_engine *E;           /* (the methods' upvalue, found faster here) */
  const char *chunk;
  char *buf;
  size_t start, len, cap;
  lua_Integer limit;
  unsigned char eof;      /* feed_eof was called */
  unsigned char paused;   /* we paused the transport's reading */
  unsigned char waiting;  /* what a read waits on (WAIT_*) */
  unsigned char has_exc;  /* RUV_EXC holds the exception */
  unsigned char has_transport;
  unsigned char waiter_ready; /* RUV_WAITER's future is pending and unused */
  unsigned char write_blocked; /* its StreamReaderProtocol is paused or lost */
  ta_future *waiter;      /* the future in RUV_WAITER, NULL if none */
  ta_loop *loop;          /* RUV_LOOP's */
  ta_aio_park park;       /* where a Task of that loop waits (WAIT_PARK) */
  const ta_task *parked;  /* the Task in RUV_PARKED, NULL if none */
  const void *writer;     /* the bound StreamWriter (in RUV_WRITER), NULL if none */
  const void *transport;  /* its transport (RUV_TRANSPORT) */
  ta_sockbox *sock;       /* that transport's socket (RUV_SOCK) */
};

/* What only stream_reader_new writes at the start of a reader. */
static const char reader_tag = 0;

/* The StreamReader at idx, NULL if it is something else (told by size
** and tag: a reader's hot paths ask several times per read and per
** write). */
static ta_sreader *reader_at(lua_State *L, int idx) {
  return (ta_sreader *)ta_totagged(L, idx, sizeof(ta_sreader), &reader_tag);
}

static ta_sreader *checkreader(lua_State *L, const char *fname) {
  ta_sreader *r = reader_at(L, 1);
  if (r == NULL) ta_bad_self(L, fname, "asyncio.StreamReader");
  return r;
}

/* Calls the Lua helper h with the top nargs values (popped); one result. */
static void call_helper(lua_State *L, int h, int nargs) {
  ta_call_helper(L, lua_upvalueindex(UP_HELPERS), h, nargs, 1);
}

static int raise_value_error(lua_State *L, const char *msg) {
  lua_pushstring(L, msg);
  call_helper(L, H_VALUE_ERROR, 1);
  return lua_error(L);
}

static lua_Integer checkcount(lua_State *L, int idx, const char *fname) {
  if (!lua_isinteger(L, idx))
    luaL_error(L, "bad argument #1 to '%s' (integer expected, got %s)", fname,
               lua_type(L, idx) == LUA_TNUMBER ? "float" : luaL_typename(L, idx));
  return lua_tointeger(L, idx);
}

/* Calls method `name` of the transport (reader at ridx); an error of
** pause_reading makes the reader forget the transport, as asyncio does. */
static int transport_call(lua_State *L, ta_sreader *r, int ridx, const char *name, int protect) {
  int ok = 1;
  lua_getiuservalue(L, ridx, RUV_TRANSPORT);
  lua_getfield(L, -1, name);
  lua_insert(L, -2);
  if (protect) ok = lua_pcall(L, 1, 0, 0) == LUA_OK;
  else lua_call(L, 1, 0);
  if (!ok) {
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_setiuservalue(L, ridx, RUV_TRANSPORT);
    r->has_transport = 0;
  }
  return ok;
}

static void maybe_resume_transport(lua_State *L, ta_sreader *r) {
  if (r->paused && (lua_Integer)r->len <= r->limit) {
    r->paused = 0;
    transport_call(L, r, 1, "resume_reading", 0);
  }
}

static const char *bytes(const ta_sreader *r) {
  return (r->chunk ? r->chunk : r->buf) + r->start;
}

/* A chunk read to its end stays anchored (in RUV_CHUNK, unused: `chunk`
** is NULL) until the next feed replaces it when it is this small: request
** and response traffic then costs no user value write per read. */
#define CHUNK_KEEP_MAX 1024

/* Pushes the first n bytes (n <= len) and drops them: all of a chunk is
** the chunk itself; the storage goes once empty. */
static void take(lua_State *L, ta_sreader *r, size_t n) {
  if (r->chunk && r->start == 0 && n == r->len) lua_getiuservalue(L, 1, RUV_CHUNK);
  else lua_pushlstring(L, bytes(r), n);
  r->start += n;
  r->len -= n;
  if (r->len > 0) return;
  if (r->chunk) {
    r->chunk = NULL;
    if (r->start > CHUNK_KEEP_MAX) { /* (start: the chunk's length now) */
      lua_pushnil(L);
      lua_setiuservalue(L, 1, RUV_CHUNK);
    }
  }
  free(r->buf);
  r->buf = NULL;
  r->start = r->cap = 0;
}

/* Pushes the whole buffer and empties it. */
static void take_all(lua_State *L, ta_sreader *r) {
  take(L, r, r->len);
}

/* Appends the string at sidx (n bytes at p) to the reader at ridx. */
static void append(lua_State *L, ta_sreader *r, int ridx, int sidx, const char *p, size_t n) {
  if (r->len == 0) { /* chunk mode */
    lua_pushvalue(L, sidx);
    lua_setiuservalue(L, ridx, RUV_CHUNK);
    r->chunk = p;
    r->start = 0;
    r->len = n;
    return;
  }
  if (r->chunk != NULL || r->start + r->len + n > r->cap) {
    if (r->chunk == NULL && r->start > 0 && r->len + n <= r->cap) { /* room at the front */
      memmove(r->buf, r->buf + r->start, r->len);
    } else {
      size_t cap = r->cap ? r->cap : 256;
      char *buf;
      while (cap < r->len + n) cap *= 2;
      buf = (char *)malloc(cap);
      if (buf == NULL) luaL_error(L, "StreamReader:feed_data: out of memory");
      memcpy(buf, bytes(r), r->len);
      free(r->buf);
      r->buf = buf;
      r->cap = cap;
      if (r->chunk) {
        r->chunk = NULL;
        lua_pushnil(L);
        lua_setiuservalue(L, ridx, RUV_CHUNK);
      }
    }
    r->start = 0;
  }
  memcpy(r->buf + r->start + r->len, p, n);
  r->len += n;
}

/* Wakes the waiting read of the reader at ridx, with the error at the
** absolute index excidx unless that is 0; a waiter cancelled meanwhile
** stays as it is.  (RUV_WAITER keeps the future until the next wait:
** only `waiting` tells whether there is one.) */
static void wake_waiter(lua_State *L, ta_sreader *r, int ridx, int excidx) {
  int waiting = r->waiting;
  if (waiting == WAIT_NONE) return;
  r->waiting = WAIT_NONE;
  if (waiting == WAIT_PARK) {
    if (r->park.task == NULL) return; /* woken by Task:cancel() */
    lua_getiuservalue(L, ridx, RUV_PARKED);
    if (ta_aio_unpark_needs_loop(&r->park)) lua_getiuservalue(L, ridx, RUV_LOOP);
    ta_aio_unpark(L, &r->park, excidx);
    return;
  }
  if (r->waiter->state != TA_FUT_PENDING) return;
  lua_getiuservalue(L, ridx, RUV_WAITER);
  if (excidx) lua_pushvalue(L, excidx);
  else lua_pushboolean(L, 1);
  ta_future_settle(L, r->waiter, -2, excidx ? -1 : 1);
  lua_pop(L, 1);
}

/* ---- feeding ---- */

/* Appends the string at didx to the reader at ridx (not at EOF), wakes
** its waiting read, pauses the transport above twice the limit. */
static void feed(lua_State *L, ta_sreader *r, int ridx, int didx) {
  size_t n;
  const char *p = lua_tolstring(L, didx, &n);
  if (n == 0) return;
  append(L, r, ridx, didx, p, n);
  wake_waiter(L, r, ridx, 0);
  if (r->has_transport && !r->paused && (lua_Integer)r->len > 2 * r->limit &&
      transport_call(L, r, ridx, "pause_reading", 1))
    r->paused = 1;
}

/* feed_data(data) */
static int r_feed_data(lua_State *L) {
  ta_sreader *r = checkreader(L, "feed_data");
  if (lua_type(L, 2) != LUA_TSTRING)
    return luaL_error(L, "bad argument #1 to 'feed_data' (string expected, got %s)", luaL_typename(L, 2));
  if (r->eof) return ta_error(L, "RuntimeError", "feed_data after feed_eof");
  feed(L, r, 1, 2);
  return 0;
}

/* For the transport's read path (transport.c), which hands its data to a
** StreamReaderProtocol's reader without the Lua calls in between. */

/* The StreamReader at idx, NULL if it is something else (see reader_at). */
ta_sreader *ta_stream_reader_test(lua_State *L, ta_engine *E, int idx) {
  (void)E;
  return reader_at(L, idx);
}

/* reader:feed_data(data) for the reader r at ridx and the string at didx,
** returning 1; 0 (and nothing done) when feed_data would raise. */
int ta_stream_reader_feed(lua_State *L, ta_sreader *r, int ridx, int didx) {
  if (r->eof) return 0;
  feed(L, r, lua_absindex(L, ridx), lua_absindex(L, didx));
  return 1;
}

/* feed_eof() */
static int r_feed_eof(lua_State *L) {
  ta_sreader *r = checkreader(L, "feed_eof");
  r->eof = 1;
  wake_waiter(L, r, 1, 0);
  return 0;
}

/* at_eof(): true once EOF was fed and the buffer is empty */
static int r_at_eof(lua_State *L) {
  ta_sreader *r = checkreader(L, "at_eof");
  lua_pushboolean(L, r->eof && r->len == 0);
  return 1;
}

static int r_exception(lua_State *L) {
  checkreader(L, "exception");
  lua_getiuservalue(L, 1, RUV_EXC);
  return 1;
}

/* set_exception(exc): later reads raise it; a waiting read gets it now */
static int r_set_exception(lua_State *L) {
  ta_sreader *r = checkreader(L, "set_exception");
  lua_settop(L, 2);
  r->has_exc = !lua_isnil(L, 2);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, 1, RUV_EXC);
  wake_waiter(L, r, 1, 2);
  return 0;
}

static int r_set_transport(lua_State *L) {
  ta_sreader *r = checkreader(L, "set_transport");
  luaL_checkany(L, 2);
  if (r->has_transport) return ta_error(L, "RuntimeError", "Transport already set");
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, RUV_TRANSPORT);
  r->has_transport = 1;
  return 0;
}

/* _replace_transport(t): the writer's start_tls moves the reader onto the
** TLS transport */
static void unbind_writer(lua_State *L, ta_sreader *r, int ridx);

static int r_replace_transport(lua_State *L) {
  ta_sreader *r = checkreader(L, "_replace_transport");
  lua_settop(L, 2);
  r->has_transport = !lua_isnil(L, 2);
  lua_setiuservalue(L, 1, RUV_TRANSPORT);
  unbind_writer(L, r, 1);
  return 0;
}

/* _discard_overrun(consumed, sep): after a LimitOverrunError, readline
** drops the line (up to and with the separator found at consumed), or
** everything if the separator is not there */
static int r_discard_overrun(lua_State *L) {
  ta_sreader *r = checkreader(L, "_discard_overrun");
  lua_Integer consumed = luaL_checkinteger(L, 2);
  size_t seplen;
  const char *sep = luaL_checklstring(L, 3, &seplen);
  if (consumed >= 0 && (size_t)consumed + seplen <= r->len &&
      memcmp(bytes(r) + consumed, sep, seplen) == 0) {
    take(L, r, (size_t)consumed + seplen);
    lua_pop(L, 1);
  } else if (r->len > 0) {
    take_all(L, r);
    lua_pop(L, 1);
  }
  maybe_resume_transport(L, r);
  return 0;
}

/* ---- waiting ---- */

/* Whether the task t, running on L, waits by parking in the reader: an
** asyncio Task of the reader's loop. */
static int parks(lua_State *L, const ta_sreader *r, const ta_task *t) {
  return ta_is_aio_task(t) && t->co == L && ta_task_future(t)->loop == r->loop;
}

/* Parks the Task t in the reader (made its RUV_PARKED unless it is
** already), or else makes the waiter (the last wait's future when ready,
** or a new one of the reader's loop) and awaits it (ta_future_await_k); k
** continues.  Stack: [reader, args...]. */
static int wait_for_data(lua_State *L, ta_sreader *r, ta_task *t, const char *fname,
                         lua_KFunction k) {
  if (r->waiting)
    return ta_error(L, "RuntimeError",
                    "%s() called while another coroutine is already waiting for incoming data", fname);
  if (r->paused) {
    r->paused = 0;
    transport_call(L, r, 1, "resume_reading", 0);
  }
  if (parks(L, r, t)) {
    if (r->parked != t) {
      ta_push_weak(L, r->E, t->ref);
      lua_setiuservalue(L, 1, RUV_PARKED);
      r->parked = t;
    }
    r->waiting = WAIT_PARK;
    return ta_aio_park_k(L, t, &r->park, k);
  }
  if (r->waiter_ready) {
    lua_getiuservalue(L, 1, RUV_WAITER);
    r->waiter_ready = 0;
  } else {
    lua_getiuservalue(L, 1, RUV_LOOP);
    r->waiter = ta_future_push_new(L, -1);
    lua_replace(L, -2);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, RUV_WAITER);
  }
  r->waiting = WAIT_FUTURE;
  return ta_future_await_k(L, t, r->waiter, lua_upvalueindex(UP_AWAIT), k);
}

/* In the continuation of wait_for_data: the wait ends if it is still the
** reader's (asyncio's `finally: self._waiter = None` would also drop a
** later read's waiter, which then never wakes): a parked Task woken by a
** cancellation, or the waiter still its future; that future is kept for
** the next wait if this one ended with a result and no later read has
** replaced it; a failed wait raises its error again.  Leaves the stack as
** it was before the wait: [reader, args...] (nargs values). */
static ta_sreader *after_wait(lua_State *L, int status, lua_KContext ctx, int nargs) {
  ta_task *t = (ta_task *)ctx;
  ta_sreader *r = reader_at(L, 1); /* (a wait on a future has the future there) */
  int failed, fidx, ours;
  if (r != NULL) { /* it parked */
    if (r->waiting == WAIT_PARK && r->park.task == NULL) r->waiting = WAIT_NONE;
    if (ta_aio_park_failed(t)) lua_error(L);
    lua_settop(L, nargs);
    return r;
  }
  failed = ta_future_wait_failed(L, status, t);
  r = (ta_sreader *)lua_touserdata(L, 1);
  fidx = lua_gettop(L);
  ours = r->waiter == (ta_future *)lua_touserdata(L, fidx);
  if (ours) r->waiting = WAIT_NONE; /* (already, unless a cancellation woke it) */
  if (failed) {
    ta_future_cancel(L, fidx); /* in case it is not done yet */
    lua_settop(L, fidx - 1);
    lua_error(L);
  }
  if (ours && ta_future_reuse(L, fidx)) r->waiter_ready = 1;
  lua_settop(L, nargs);
  return r;
}

static int raise_exception(lua_State *L) {
  lua_getiuservalue(L, 1, RUV_EXC);
  return lua_error(L);
}

/* ---- reading ---- */

/* read on [reader, n] (n > 0, also passed) */
static int read_k(lua_State *L, int status, lua_KContext ctx);

static int read_loop(lua_State *L, ta_sreader *r, ta_task *t, lua_Integer n) {
  if (r->len == 0 && !r->eof) return wait_for_data(L, r, t, "read", read_k);
  take(L, r, r->len < (size_t)n ? r->len : (size_t)n);
  maybe_resume_transport(L, r);
  return 1;
}

static int read_k(lua_State *L, int status, lua_KContext ctx) {
  ta_sreader *r = after_wait(L, status, ctx, 2);
  return read_loop(L, r, (ta_task *)ctx, lua_tointeger(L, 2));
}

static int read_all_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L;
  (void)status;
  (void)ctx;
  return 1;
}

/* read([n=-1]): up to n bytes (at least one unless at EOF); n nil or
** negative: everything until EOF */
static int r_read(lua_State *L) {
  ta_sreader *r = checkreader(L, "read");
  lua_Integer n = lua_isinteger(L, 2) ? lua_tointeger(L, 2) : lua_isnoneornil(L, 2) ? -1 : checkcount(L, 2, "read");
  ta_task *t = ta_async_check_in(L, r->E, "StreamReader:read", TA_ASYNCIO);
  if (r->has_exc) return raise_exception(L);
  if (n == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  if (n < 0) { /* read(limit) until EOF, in Lua (it waits) */
    lua_settop(L, 1);
    lua_pushinteger(L, r->limit);
    lua_rawgeti(L, lua_upvalueindex(UP_HELPERS), H_READ_ALL);
    lua_insert(L, 1);
    lua_callk(L, 2, 1, 0, read_all_k);
    return 1;
  }
  if (lua_gettop(L) != 2) lua_settop(L, 2);
  return read_loop(L, r, t, n);
}

/* readexactly on [reader, n] (n > 0, also passed) */
static int readexactly_k(lua_State *L, int status, lua_KContext ctx);

static int readexactly_loop(lua_State *L, ta_sreader *r, ta_task *t, lua_Integer n) {
  if ((lua_Integer)r->len >= n) {
    take(L, r, (size_t)n);
    maybe_resume_transport(L, r);
    return 1;
  }
  if (r->eof) {
    take_all(L, r);
    lua_pushinteger(L, n);
    call_helper(L, H_INCOMPLETE, 2);
    return lua_error(L);
  }
  return wait_for_data(L, r, t, "readexactly", readexactly_k);
}

static int readexactly_k(lua_State *L, int status, lua_KContext ctx) {
  ta_sreader *r = after_wait(L, status, ctx, 2);
  return readexactly_loop(L, r, (ta_task *)ctx, lua_tointeger(L, 2));
}

/* readexactly(n): exactly n bytes, or IncompleteReadError */
static int r_readexactly(lua_State *L) {
  ta_sreader *r = checkreader(L, "readexactly");
  lua_Integer n = checkcount(L, 2, "readexactly");
  ta_task *t;
  if (n < 0) return raise_value_error(L, "readexactly size can not be less than zero");
  t = ta_async_check_in(L, r->E, "StreamReader:readexactly", TA_ASYNCIO);
  if (r->has_exc) return raise_exception(L);
  if (n == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  if (lua_gettop(L) != 2) lua_settop(L, 2);
  return readexactly_loop(L, r, t, n);
}

/* readuntil on [reader, separator, offset]: offset is where the search
** goes on after a wait (what was searched cannot hold the separator). */
static int readuntil_k(lua_State *L, int status, lua_KContext ctx);

static int overrun(lua_State *L, const char *msg, lua_Integer consumed) {
  lua_pushstring(L, msg);
  lua_pushinteger(L, consumed);
  call_helper(L, H_OVERRUN, 2);
  return lua_error(L);
}

static int readuntil_loop(lua_State *L, ta_sreader *r, ta_task *t) {
  size_t seplen;
  const char *sep = lua_tolstring(L, 2, &seplen);
  size_t offset = (size_t)lua_tointeger(L, 3);
  const char *found = NULL;
  while (1) {
    if (r->len >= offset + seplen) {
      found = (const char *)memmem(bytes(r) + offset, r->len - offset, sep, seplen);
      if (found != NULL) break;
      offset = r->len + 1 - seplen;
      if ((lua_Integer)offset > r->limit)
        return overrun(L, "Separator is not found, and chunk exceed the limit", (lua_Integer)offset);
    }
    if (r->eof) {
      take_all(L, r);
      lua_pushnil(L);
      call_helper(L, H_INCOMPLETE, 2);
      return lua_error(L);
    }
    lua_pushinteger(L, (lua_Integer)offset);
    lua_replace(L, 3);
    return wait_for_data(L, r, t, "readuntil", readuntil_k);
  }
  {
    size_t isep = (size_t)(found - bytes(r));
    if ((lua_Integer)isep > r->limit)
      return overrun(L, "Separator is found, but chunk is longer than limit", (lua_Integer)isep);
    take(L, r, isep + seplen);
    maybe_resume_transport(L, r);
    return 1;
  }
}

static int readuntil_k(lua_State *L, int status, lua_KContext ctx) {
  return readuntil_loop(L, after_wait(L, status, ctx, 3), (ta_task *)ctx);
}

/* readuntil([separator="\n"]): the data up to and including separator;
** IncompleteReadError at EOF (partial, expected=nil), LimitOverrunError
** (consumed) past the limit */
static int r_readuntil(lua_State *L) {
  ta_sreader *r = checkreader(L, "readuntil");
  ta_task *t;
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_pushliteral(L, "\n");
  } else if (lua_type(L, 2) != LUA_TSTRING) {
    return luaL_error(L, "bad argument #1 to 'readuntil' (string expected, got %s)", luaL_typename(L, 2));
  }
  if (lua_rawlen(L, 2) == 0) return raise_value_error(L, "Separator should be at least one-byte string");
  t = ta_async_check_in(L, r->E, "StreamReader:readuntil", TA_ASYNCIO);
  if (r->has_exc) return raise_exception(L);
  lua_settop(L, 2);
  lua_pushinteger(L, 0);
  return readuntil_loop(L, r, t);
}

/* ---- StreamWriter.drain ---- */

/* writer:drain() returns at once when there is nothing to raise or wait
** for: the writer's reader has no exception, its transport is not closing
** and its protocol is neither paused nor lost.  For a writer made over
** asyncio's own Transport and a StreamReaderProtocol of its reader (what
** open_connection and start_server make), that is known without reading a
** Lua field but the writer's _reader and transport: asyncio.StreamWriter
** binds the writer to its reader (stream_writer_bind), which keeps the
** writer, the transport and the transport's socket, and
** StreamReaderProtocol's pause_writing, resume_writing and connection_lost
** tell the reader whether writes are blocked (stream_reader_write_blocked).
** A transport stops its socket's reading whenever it starts closing (see
** lua/asyncio/net.lua), so a socket that reads means "not closing".  Any
** other writer, or one whose transport was replaced (start_tls), goes
** through the Lua drain (lua/asyncio/streams.lua), which may wait. */

static void unbind_writer(lua_State *L, ta_sreader *r, int ridx) {
  if (r->writer == NULL) return;
  r->writer = r->transport = NULL;
  r->sock = NULL;
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, RUV_WRITER);
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, RUV_SOCK);
}

/* Whether the value at idx has the metatable helpers[h] (an instance of
** that class itself, not of a subclass). */
static int is_instance_of(lua_State *L, int idx, int h) {
  int yes;
  if (!lua_getmetatable(L, idx)) return 0;
  lua_rawgeti(L, lua_upvalueindex(UP_HELPERS), h);
  yes = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return yes;
}

/* stream_writer_bind(writer, transport, protocol, reader): asyncio.StreamWriter
** binds the writer to its reader when the transport is an asyncio Transport
** (the reader's, on a stream socket) and the protocol a StreamReaderProtocol
** of that reader; otherwise the reader forgets the writer it had. */
static int l_stream_writer_bind(lua_State *L) {
  ta_sreader *r = reader_at(L, 4);
  ta_sockbox *box;
  if (r == NULL) return 0;
  lua_settop(L, 4);
  unbind_writer(L, r, 4);
  if (!lua_istable(L, 1) || !lua_istable(L, 2) || !lua_istable(L, 3) || !is_instance_of(L, 2, H_TRANSPORT) ||
      !is_instance_of(L, 3, H_STREAM_PROTOCOL))
    return 0;
  lua_getiuservalue(L, 4, RUV_TRANSPORT); /* 5 */
  lua_getfield(L, 3, "_reader");          /* 6 */
  lua_getfield(L, 2, "_sock");            /* 7 */
  box = ta_tosockbox(L, 7);
  if (!lua_rawequal(L, 2, 5) || !lua_rawequal(L, 4, 6) || box == NULL || box->s == NULL ||
      box->s->kind == TA_SK_UDP)
    return 0;
  lua_setiuservalue(L, 4, RUV_SOCK);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 4, RUV_WRITER);
  r->writer = lua_topointer(L, 1);
  r->transport = lua_topointer(L, 2);
  r->sock = box;
  return 0;
}

/* stream_reader_write_blocked(reader, blocked): what StreamReaderProtocol
** tells its reader (anything but a StreamReader: nothing to do). */
static int l_stream_reader_write_blocked(lua_State *L) {
  ta_sreader *r = reader_at(L, 1);
  if (r != NULL) r->write_blocked = (unsigned char)lua_toboolean(L, 2);
  return 0;
}

/* Upvalues of drain: the engine, the helpers, the names of the two fields
** it reads (interned once). */
enum { DUP_READER_KEY = 3, DUP_TRANSPORT_KEY, DUP_N = DUP_TRANSPORT_KEY };

/* The socket of the bound transport of the StreamReader at ridx (a
** writer's _reader) if `writer` is bound to it and `transport` (the
** writer's transport) is still the bound one, else NULL. */
ta_sockbox *ta_stream_writer_socket(lua_State *L, int ridx, const void *writer, const void *transport) {
  ta_sreader *r = reader_at(L, ridx);
  return r != NULL && r->writer == writer && writer != NULL && r->transport == transport ? r->sock : NULL;
}

/* writer:drain() (async) */
static int w_drain(lua_State *L) {
  ta_sreader *r;
  if (lua_type(L, 1) != LUA_TTABLE) luaL_checktype(L, 1, LUA_TTABLE); /* raises */
  if (lua_gettop(L) != 1) lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(DUP_READER_KEY));
  lua_rawget(L, 1); /* 2 */
  r = reader_at(L, 2);
  ta_async_check_in(L, r != NULL ? r->E : ta_upengine(L), "StreamWriter:drain", TA_ASYNCIO);
  if (r != NULL && r->writer == lua_topointer(L, 1) && !r->has_exc && !r->write_blocked && r->sock->s != NULL &&
      !r->sock->s->read_paused) {
    lua_pushvalue(L, lua_upvalueindex(DUP_TRANSPORT_KEY));
    lua_rawget(L, 1); /* 3 */
    if (lua_topointer(L, 3) == r->transport) return 0;
  }
  lua_settop(L, 1);
  lua_rawgeti(L, lua_upvalueindex(UP_HELPERS), H_DRAIN);
  lua_insert(L, 1);
  lua_callk(L, 1, 0, 0, ta_no_results_k);
  return 0;
}

/* ---- the object ---- */

static int r_gc(lua_State *L) {
  ta_sreader *r = (ta_sreader *)lua_touserdata(L, 1);
  free(r->buf);
  r->buf = NULL;
  r->chunk = NULL;
  r->start = r->len = r->cap = 0;
  return 0;
}

static int r_tostring(lua_State *L) {
  ta_sreader *r = checkreader(L, "__tostring");
  lua_pushfstring(L, "asyncio.StreamReader (%I bytes%s)", (lua_Integer)r->len, r->eof ? ", eof" : "");
  return 1;
}

/* stream_reader_new(limit, loop): limit a positive integer, loop a Loop
** (lua/asyncio/streams.lua checks them) */
static int l_stream_reader_new(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  lua_Integer limit = luaL_checkinteger(L, 1);
  ta_sreader *r;
  luaL_argcheck(L, limit > 0, 1, "limit must be positive");
  ta_loop *lp = (ta_loop *)ta_checkudata(L, E, 2, TA_MT_LOOP);
  r = (ta_sreader *)lua_newuserdatauv(L, sizeof *r, R_NUV);
  memset(r, 0, sizeof *r);
  r->tag = &reader_tag;
  r->E = E;
  r->loop = lp;
  r->limit = limit;
  ta_aio_park_init(&r->park);
  ta_setmetatable(L, E, TA_MT_STREAM_READER);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, RUV_LOOP);
  return 1;
}

/* stream_reader_setup{incomplete, overrun, value_error, read_all, drain,
** Transport, StreamReaderProtocol} -> StreamWriter.drain: the Lua helpers
** the reader and the C drain call, the classes stream_writer_bind looks
** for. */
static int l_stream_reader_setup(lua_State *L) {
  ta_store_helpers(L, lua_upvalueindex(UP_HELPERS), H_N);
  for (int h = H_TRANSPORT; h <= H_STREAM_PROTOCOL; h++) {
    luaL_argcheck(L, lua_rawgeti(L, 1, h) == LUA_TTABLE, 1, "classes Transport, StreamReaderProtocol expected");
    lua_rawseti(L, lua_upvalueindex(UP_HELPERS), h);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(UP_HELPERS));
  lua_pushliteral(L, "_reader");
  lua_pushliteral(L, "transport");
  lua_pushcclosure(L, w_drain, DUP_N);
  return 1;
}

static const luaL_Reg reader_methods[] = {
  {"feed_data", r_feed_data},
  {"feed_eof", r_feed_eof},
  {"at_eof", r_at_eof},
  {"exception", r_exception},
  {"set_exception", r_set_exception},
  {"set_transport", r_set_transport},
  {"_replace_transport", r_replace_transport},
  {"_discard_overrun", r_discard_overrun},
  {"read", r_read},
  {"readexactly", r_readexactly},
  {"readuntil", r_readuntil},
  {NULL, NULL}
};

static const luaL_Reg reader_meta[] = {
  {"__gc", r_gc},
  {"__tostring", r_tostring},
  {NULL, NULL}
};

static const luaL_Reg reader_funcs[] = {
  {"stream_reader_new", l_stream_reader_new},
  {"stream_reader_setup", l_stream_reader_setup},
  {"stream_writer_bind", l_stream_writer_bind},
  {"stream_reader_write_blocked", l_stream_reader_write_blocked},
  {NULL, NULL}
};

/* The class "trio_asyncio.StreamReader" (its __name: asyncio.StreamReader);
** the methods get the engine, the helpers table and Future:await as
** upvalues 1-3 (ta_open_future ran before). */
int ta_open_stream_reader(lua_State *L) {
  ta_engine *E = (ta_engine *)lua_touserdata(L, -1);
  int engine = lua_gettop(L), helpers;
  lua_newtable(L);
  helpers = lua_gettop(L);
  ta_push_future_await(L);
  lua_pushvalue(L, engine);
  ta_newclass(L, "trio_asyncio.StreamReader", reader_meta, NULL, NULL);
  lua_pushliteral(L, "asyncio.StreamReader");
  lua_setfield(L, -2, "__name");
  lua_newtable(L);
  lua_pushvalue(L, engine);
  lua_pushvalue(L, helpers);
  lua_pushvalue(L, helpers + 1);
  luaL_setfuncs(L, reader_methods, 3);
  lua_setfield(L, -2, "__index");
  ta_cache_metatable(L, E, TA_MT_STREAM_READER);
  lua_settop(L, helpers + 1);
  lua_pushvalue(L, engine - 1); /* the module table */
  lua_pushvalue(L, engine);
  lua_pushvalue(L, helpers);
  lua_pushvalue(L, helpers + 1);
  luaL_setfuncs(L, reader_funcs, 3);
  lua_settop(L, engine);
  return 0;
}
