/*
** engine.c — one engine per lua_State: creating and closing it, the libuv
** handles it owns (its own and every layer's), the weak registry of
** objects by address, cached metatables, errors, and the one way a class
** is built.
*/
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define ENGINE_MT "trio_asyncio.Engine"

static const char engine_key = 'E'; /* registry key: its address */

/* ---- libuv handles of the layers ---- */

/* A layer opened a handle: it is on the engine's list until it closes. */
void ta_handle_opened(ta_engine *E, ta_owned *o) {
  TA_LIST_PUSH(E->owned, o, prev, next);
  if (!o->persistent) E->nhandles++;
}

/* A layer is closing a handle (before its uv_close): off the list. */
void ta_handle_closing(ta_engine *E, ta_owned *o) {
  TA_LIST_REMOVE(E->owned, o, prev, next);
}

/* Called from the close callback, after the memory was freed. */
void ta_handle_closed(ta_engine *E) { E->nhandles--; }

void ta_free_handle(uv_handle_t *h) { free(h); }

/* Let libuv run the close callbacks of handles we closed, when no run
** will poll soon (and never on a host's loop or inside uv_run). */
void ta_flush_closes(ta_engine *E) {
  if (E->host_loop || E->in_io_wait || E->running || E->closing) return;
  uv_run(E->loop, UV_RUN_NOWAIT);
}

static int tostring_unprotected(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* luaL_tolstring that cannot raise (for error reports made from the
** scheduler or a libuv callback: a value whose __tostring fails must not
** unwind through them).  Pushes the text and returns it. */
const char *ta_tostring(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, tostring_unprotected);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    const char *why = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    lua_pushfstring(L, "(a %s whose __tostring failed: %s)", luaL_typename(L, idx), why);
    lua_replace(L, -2);
  }
  return lua_tostring(L, -1);
}

/* Argument check for anything called: a function or an object with __call
** (the metafield is not left on the stack). */
void ta_check_callable(lua_State *L, int idx) {
  if (lua_isfunction(L, idx)) return;
  if (luaL_getmetafield(L, idx, "__call") == LUA_TNIL) luaL_typeerror(L, idx, "function");
  lua_pop(L, 1);
}

/* ---- errors ---- */

/* Pushes an error object of class `cls` (built by the Lua error factory,
** or a plain string before the Lua side has registered one). */
void ta_push_error(lua_State *L, ta_engine *E, const char *cls, const char *msg) {
  if (E != NULL && E->errfactory_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, E->errfactory_ref);
    lua_pushstring(L, cls);
    lua_pushstring(L, msg);
    if (lua_pcall(L, 2, 1, 0) == LUA_OK) return;
    lua_pop(L, 1);
  }
  lua_pushstring(L, msg);
}

/* Frames shown around "(skipping N levels)", as Lua's own traceback. */
enum { SHOWN_FIRST = 10, SHOWN_LAST = 11 };

/* The first stack level of co that does not exist (0 if none does). */
static int stack_depth(lua_State *co) {
  lua_Debug ar;
  int lo = 0, hi = 1;
  if (!lua_getstack(co, 0, &ar)) return 0;
  while (lua_getstack(co, hi, &ar)) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    int mid = lo + (hi - lo) / 2;
    if (lua_getstack(co, mid, &ar)) lo = mid;
    else hi = mid;
  }
  return hi;
}

/* Adds the line of the frame at `level`: where it is, then how it names
** its function (Lua's wording: "local 'f'", "method 'send_all'",
** "function <file:line>"; Lua's own traceback first searches every loaded
** module for a global name, which costs more than all the rest). */
/* Adds the decimal digits of n (snprintf costs some 900 instructions). */
static void add_int(luaL_Buffer *b, int n) {
  char digits[12];
  int i = (int)sizeof digits;
  unsigned u = n < 0 ? 0u - (unsigned)n : (unsigned)n;
  do digits[--i] = (char)('0' + u % 10); while ((u /= 10) != 0);
  if (n < 0) digits[--i] = '-';
  luaL_addlstring(b, digits + i, sizeof digits - (size_t)i);
}

static void add_frame(lua_State *co, luaL_Buffer *b, int level) {
  lua_Debug ar;
  lua_getstack(co, level, &ar);
  lua_getinfo(co, "Slnt", &ar);
  luaL_addstring(b, "\n\t");
  luaL_addstring(b, ar.short_src);
  if (ar.currentline > 0) {
    luaL_addchar(b, ':');
    add_int(b, ar.currentline);
  }
  luaL_addstring(b, ": in ");
  if (*ar.namewhat != '\0') {
    luaL_addstring(b, ar.namewhat);
    luaL_addstring(b, " '");
    luaL_addstring(b, ar.name);
    luaL_addchar(b, '\'');
  } else if (*ar.what == 'm') {
    luaL_addstring(b, "main chunk");
  } else if (*ar.what != 'C') {
    luaL_addstring(b, "function <");
    luaL_addstring(b, ar.short_src);
    luaL_addchar(b, ':');
    add_int(b, ar.linedefined);
    luaL_addchar(b, '>');
  } else {
    luaL_addchar(b, '?');
  }
  if (ar.istailcall) luaL_addstring(b, "\n\t(...tail calls...)");
}

/* Pushes onto L the traceback of co from stack level `level` (0: its
** running function), as luaL_traceback words it ("msg\nstack traceback:"
** and a line per frame, the middle of a deep stack skipped), but naming
** functions as the calling code did, never by a search of every loaded
** module for them: with the runtime loaded that search costs some 800,000
** instructions a traceback (asyncio's "raised again" of a cancelled Task
** made one per cancel), and a Lua version with a debug.getinfo table per
** frame some 100,000 (each Cancelled); this one a few thousand. */
void ta_traceback(lua_State *L, lua_State *co, const char *msg, int level) {
  int n = stack_depth(co) - level;
  int skip = n > SHOWN_FIRST + SHOWN_LAST + 1;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (msg != NULL) {
    luaL_addstring(&b, msg);
    luaL_addchar(&b, '\n');
  }
  luaL_addstring(&b, "stack traceback:");
  for (int i = 1; i <= n; i++) {
    if (skip && i == SHOWN_FIRST + 1) {
      luaL_addstring(&b, "\n\t...\t(skipping ");
      add_int(&b, n - SHOWN_FIRST - SHOWN_LAST - 1);
      luaL_addstring(&b, " levels)");
      i = n - SHOWN_LAST; /* (the loop goes on with the last ones) */
    } else {
      add_frame(co, &b, level + i - 1);
    }
  }
  luaL_pushresult(&b);
}

int ta_error(lua_State *L, const char *cls, const char *fmt, ...) {
  va_list ap;
  const char *msg;
  va_start(ap, fmt);
  msg = lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  ta_push_error(L, ta_engine_get(L), cls, msg);
  return lua_error(L);
}

/* Raises "bad argument #1 to 'fname' (cls expected, got T)" for the value
** at index 1 (a method's self), as luaL_typeerror words it: T is the
** __name of its metatable when it has one, else its type. */
int ta_bad_self(lua_State *L, const char *fname, const char *cls) {
  const char *got = luaL_getmetafield(L, 1, "__name") == LUA_TSTRING ? lua_tostring(L, -1)
                                                                    : luaL_typename(L, 1);
  return luaL_error(L, "bad argument #1 to '%s' (%s expected, got %s)", fname, cls, got);
}

/* ---- the engine object ---- */

/* The engine's own handles live on E->loop (ours or the host's).  On a
** failure nothing is left open (a handle whose init failed is only freed). */
int ta_engine_handles_init(ta_engine *E) {
  int rc;
  E->wake = (uv_timer_t *)malloc(sizeof *E->wake);
  E->sigint = (uv_signal_t *)malloc(sizeof *E->sigint);
  rc = E->wake == NULL || E->sigint == NULL ? UV_ENOMEM : uv_timer_init(E->loop, E->wake);
  if (rc != 0) {
    free(E->wake);
    free(E->sigint);
    E->wake = NULL;
    E->sigint = NULL;
    return rc;
  }
  if ((rc = uv_signal_init(E->loop, E->sigint)) != 0) {
    uv_close((uv_handle_t *)E->wake, ta_free_handle);
    free(E->sigint);
    E->wake = NULL;
    E->sigint = NULL;
    return rc;
  }
  E->wake->data = E->sigint->data = E;
  if (E->host_loop) {
    uv_unref((uv_handle_t *)E->sigint);
  }
  if (E->host != NULL && (rc = E->host->open(E)) != 0) ta_engine_handles_close(E);
  return rc;
}

/* Closes every handle: the layers' (each through its own close function,
** so the engine names no type of theirs), then its own. */
void ta_engine_handles_close(ta_engine *E) {
  while (E->owned != NULL) {
    ta_owned *o = E->owned;
    ta_handle_closing(E, o);
    o->close(o);
  }
  if (E->wake == NULL) return; /* never opened (ta_engine_handles_init failed) */
  uv_close((uv_handle_t *)E->wake, ta_free_handle);
  ta_signal_stop(E->sigint); /* uv_close alone would skip the restore */
  uv_close((uv_handle_t *)E->sigint, ta_free_handle);
  E->wake = NULL;
  E->sigint = NULL;
}

/* ---- slot ids ---- */

/* (An id taken whose slot was not emptied yet gets a new value there:
** nothing is left to empty.) */
static int ids_take(ta_ids *ids) {
  if (ids->nfree == 0) return ++ids->top;
  if (ids->nclean == ids->nfree) ids->nclean--;
  return ids->free[--ids->nfree];
}

/* Returns 0 when the id could not be kept (not enough memory). */
static int ids_give(ta_ids *ids, int id) {
  if (ids->nfree == ids->capfree) {
    int cap = ids->capfree ? ids->capfree * 2 : 64;
    int *a = (int *)realloc(ids->free, (size_t)cap * sizeof *a);
    if (a == NULL) return 0;
    ids->free = a;
    ids->capfree = cap;
  }
  ids->free[ids->nfree++] = id;
  return 1;
}

static void ids_free(ta_ids *ids) {
  free(ids->free);
  memset(ids, 0, sizeof *ids);
}

static int engine_gc(lua_State *L) {
  ta_engine *E = (ta_engine *)luaL_checkudata(L, 1, ENGINE_MT);
  int host = E->host_loop;
  if (E->closing) return 0;
  if (E->running) {
    E->host_loop = 1; /* no more polling: the state is closing */
    ta_run_abandon(L, E, 1);
  }
  E->closing = 1;
  ta_engine_handles_close(E);
  if (!host) {
    uv_run(E->loop, UV_RUN_DEFAULT);
    uv_loop_close(E->loop);
  }
  free(E->runq);
  free(E->batch);
  free(E->status_todo);
  while (E->spare_rbufs != NULL) {
    void *next = *(void **)E->spare_rbufs;
    free(E->spare_rbufs);
    E->spare_rbufs = next;
  }
  E->nspare_rbufs = 0;
  ids_free(&E->weak_ids);
  ids_free(&E->anchor_ids);
  ta_task_slab_free(E);
  free(E->ref_holders);
  E->ref_holders = NULL;
  E->capholders = 0;
  ta_heap_free(&E->timers);
  return 0;
}

/* Pushes the weak-keyed table kept in the registry under key (made on
** first use): side tables of rarely used fields. */
void ta_push_weak_keyed(lua_State *L, const void *key) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

/* ---- cached metatables ---- */

static const char *const mt_names[TA_NMT] = {
  TA_TASK_MT, "trio_asyncio.Future", "trio_asyncio.FutureWithError", "trio_asyncio.AioTask",
  "trio_asyncio.Handle", "trio_asyncio.Loop", "trio_asyncio.MemorySendChannel",
  "trio_asyncio.MemoryReceiveChannel", "trio_asyncio.Queue", "trio_asyncio.LifoQueue",
  "trio_asyncio.PriorityQueue", "trio_asyncio.CancelScope", "trio_asyncio.Nursery",
  "trio_asyncio.ParkingLot", "trio_asyncio.socket", "trio_asyncio.StreamReader",
  "trio_asyncio.QueueState", "trio_asyncio.TaskCancelScope", "trio_asyncio.AioTaskDone",
  "asyncio.TransportCore"
};

/* Caches the metatable on top of the stack (made with luaL_newmetatable
** under which's name). */
void ta_cache_metatable(lua_State *L, ta_engine *E, int which) {
  E->mt[which] = lua_topointer(L, -1);
  lua_pushvalue(L, -1);
  E->mt_ref[which] = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Objects of the cached class `which` hold a task at `offset`
** (ta_checktask finds it). */
void ta_task_class(ta_engine *E, int which, ptrdiff_t offset) {
  E->task_offset[which] = offset;
}

/* luaL_setmetatable for a cached metatable. */
void ta_setmetatable(lua_State *L, ta_engine *E, int which) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->mt_ref[which]);
  lua_setmetatable(L, -2);
}

/* The metatable of the userdata at idx, as a pointer to compare with the
** cached ones; NULL when it is no userdata or has none.  *p (p may be
** NULL) gets the userdata's address. */
const void *ta_udata_mt(lua_State *L, int idx, void **p) {
  const void *mt;
  void *u = lua_touserdata(L, idx);
  if (p != NULL) *p = u;
  if (u == NULL || !lua_getmetatable(L, idx)) return NULL;
  mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  return mt;
}

/* ta_testudata (engine.h) without the engine: by the metatable's name. */
void *ta_testudata_named(lua_State *L, int idx, int which) {
  return luaL_testudata(L, idx, mt_names[which]);
}

/* ta_checkudata's error (engine.h): the value at idx is no `which`. */
int ta_udata_typeerror(lua_State *L, int idx, int which) {
  return luaL_typeerror(L, idx, mt_names[which]);
}

/* How often a busy scheduler polls for I/O: TA_POLL_INTERVAL_US
** microseconds when that environment variable is a whole number (0: every
** batch, like peers that poll every iteration), else TA_POLL_INTERVAL_NS. */
static uint64_t poll_interval_from_env(void) {
  const char *s = getenv("TA_POLL_INTERVAL_US");
  char *end;
  unsigned long long us;
  if (s == NULL || *s < '0' || *s > '9') return TA_POLL_INTERVAL_NS;
  us = strtoull(s, &end, 10);
  if (*end != '\0' || us > UINT64_MAX / 1000) return TA_POLL_INTERVAL_NS;
  return (uint64_t)us * 1000;
}

/* The engine of L's state, created on first use. */
ta_engine *ta_engine_get(lua_State *L) {
  ta_engine *E;
  int rc;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &engine_key) == LUA_TUSERDATA) {
    E = (ta_engine *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return E;
  }
  lua_pop(L, 1);
  E = (ta_engine *)lua_newuserdatauv(L, sizeof *E, TA_ENGINE_NUV);
  memset(E, 0, sizeof *E);
  E->closing = 1; /* closed until its loop and handles are open: __gc must be safe */
  if (luaL_newmetatable(L, ENGINE_MT)) {
    lua_pushcfunction(L, engine_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  E->clock_ref = E->result_ref = E->hook_ref = E->errfactory_ref = LUA_NOREF;
  E->guest_done_ref = E->run_ctx_ref = LUA_NOREF;
  E->internal_ref = E->aio_cancelled_ref = E->trio_wakeup_ref = LUA_NOREF;
  for (int i = 0; i < TA_NMT; i++) E->task_offset[i] = -1;
  E->gc_stress = getenv("TA_GC_STRESS") != NULL && *getenv("TA_GC_STRESS") != '\0';
  E->poll_interval_ns = poll_interval_from_env();
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  E->L = lua_tothread(L, -1); /* before the handles: they register E->L */
  lua_pop(L, 1);
  if (uv_loop_init(&E->own_loop) != 0) luaL_error(L, "trio_asyncio: cannot initialise the libuv loop");
  E->loop = &E->own_loop;
  if ((rc = ta_engine_handles_init(E)) != 0) {
    uv_run(E->loop, UV_RUN_DEFAULT); /* the closes of what was opened */
    uv_loop_close(E->loop);
    luaL_error(L, "trio_asyncio: cannot open the engine's libuv handles: %s", uv_strerror(rc));
  }
  E->closing = 0; /* from here __gc closes the loop: an allocation below may fail */
  E->root.deadline = HUGE_VAL;
  lua_newtable(L);
  E->soon_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  E->weak_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  E->anchor_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &engine_key);
  return E;
}

/* Stores the value at idx (left there) at slot id of the table tref. */
static int slot_store(lua_State *L, int tref, int idx, int id) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, tref);
  lua_pushvalue(L, idx < 0 && idx > LUA_REGISTRYINDEX ? idx - 1 : idx); /* (below the table) */
  lua_rawseti(L, -2, id);
  lua_pop(L, 1);
  return id;
}

static void slot_push(lua_State *L, int tref, int id) {
  if (id <= 0) {
    lua_pushnil(L);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, tref);
  lua_rawgeti(L, -1, id);
  lua_replace(L, -2);
}

/* Empties slot id of the table tref and gives the id back to ids. */
static void slot_free(lua_State *L, ta_engine *E, int tref, ta_ids *ids, int id) {
  if (id <= 0 || E->closing) return; /* at lua_close the whole table goes */
  lua_rawgeti(L, LUA_REGISTRYINDEX, tref);
  lua_pushnil(L);
  lua_rawseti(L, -2, id);
  lua_pop(L, 1);
  ids_give(ids, id); /* (if lost, it is never reused: harmless) */
}

/* The weak registry: objects that must stay collectable (an asyncio Task
** collected while pending is reported; a loop nobody keeps) but that C
** must find from a raw pointer.  A weak-valued table indexed by ids the
** engine hands out itself (array part: cheap to set and for the GC to
** clear).  An id is free again only once its object's finalizer gave it
** back (or its holder let go of it while the object has no finalizer: a
** finished asyncio Task, task.c release_exited): Lua clears a dying
** object's weak slot before its finalizer runs,
** so reusing a cleared slot at once (what luaL_ref does, going by the
** table's border) would give the id to a new object while the old one's
** __gc was still to come, and that __gc would free the new one's id. */
int ta_weak_ref(lua_State *L, ta_engine *E) {
  int id = ta_weak_ref_at(L, E, -1);
  lua_pop(L, 1);
  return id;
}

/* The same for the value at idx, left there. */
int ta_weak_ref_at(lua_State *L, ta_engine *E, int idx) {
  return slot_store(L, E->weak_ref, idx, ids_take(&E->weak_ids));
}

/* Pushes the object of id (nil once it was collected, or for LUA_NOREF). */
void ta_push_weak(lua_State *L, ta_engine *E, int id) {
  slot_push(L, E->weak_ref, id);
}

/* Gives id back: from its object's finalizer, or once nothing will look
** the object up by this id again (whoever held the id forgot it). */
void ta_weak_unref(lua_State *L, ta_engine *E, int id) {
  slot_free(L, E, E->weak_ref, &E->weak_ids, id);
}

/* The same without touching the table: from the object's finalizer (Lua
** emptied the slot already), or as an asyncio Task without a finalizer
** ends (task.c release_exited), or a finalizer called by hand.  The slot
** is never emptied: a weak slot keeps nothing alive, nothing looks up a
** given-back id, and the next ta_weak_ref_at of the id overwrites it (a
** stale Task there is done, which l_loop_tasks skips); so the id goes
** among the clean ones, and ta_flush_unanchors has no store to make for
** it (a store of nil per Task that ended). */
void ta_weak_unref_later(lua_State *L, ta_engine *E, int id) {
  ta_ids *ids = &E->weak_ids;
  if (id <= 0 || E->closing) return;
  if (!ids_give(ids, id)) {
    slot_free(L, E, E->weak_ref, ids, id);
    return;
  }
  ids->free[ids->nfree - 1] = ids->free[ids->nclean];
  ids->free[ids->nclean++] = id;
}

/* The anchors: what luaL_ref on the registry does for objects C keeps
** alive (live Trio tasks), at a fraction of its cost: the ids are the
** engine's (no free list threaded through the table, no length
** operator), in the array part of a table of their own.  Anchors the
** value at idx (left there) and returns its id. */
int ta_anchor(lua_State *L, ta_engine *E, int idx) {
  return slot_store(L, E->anchor_ref, idx, ids_take(&E->anchor_ids));
}

/* Pushes the object anchored at id (nil for LUA_NOREF). */
void ta_push_anchored(lua_State *L, ta_engine *E, int id) {
  slot_push(L, E->anchor_ref, id);
}

/* Anchors the value at idx (left there) at id instead of what was there:
** one store in a slot that exists, which never allocates. */
void ta_reanchor(lua_State *L, ta_engine *E, int id, int idx) {
  slot_store(L, E->anchor_ref, idx, id);
}

void ta_unanchor(lua_State *L, ta_engine *E, int id) {
  slot_free(L, E, E->anchor_ref, &E->anchor_ids, id);
}

/* Lets go of the object anchored at id without touching the table: the
** id is free at once (a new anchor overwrites its slot), and its slot is
** emptied by the next ta_flush_unanchors (the end of the scheduler's
** batch, or of the run): one fetch of the table for many exits. */
void ta_unanchor_later(lua_State *L, ta_engine *E, int id) {
  if (id <= 0 || E->closing) return;
  if (!ids_give(&E->anchor_ids, id)) slot_free(L, E, E->anchor_ref, &E->anchor_ids, id);
}

static void flush_ids(lua_State *L, ta_engine *E, int tref, ta_ids *ids) {
  if (ids->nclean == ids->nfree) return;
  if (!E->closing) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, tref);
    for (int i = ids->nclean; i < ids->nfree; i++) {
      lua_pushnil(L);
      lua_rawseti(L, -2, ids->free[i]);
    }
    lua_pop(L, 1);
  }
  ids->nclean = ids->nfree;
}

/* (and the weak ids given back by ta_weak_unref_later, and the task
** slots of the exits the batch saw) */
void ta_flush_unanchors(lua_State *L, ta_engine *E) {
  flush_ids(L, E, E->anchor_ref, &E->anchor_ids);
  flush_ids(L, E, E->weak_ref, &E->weak_ids);
  ta_task_slots_flush(E);
}

/* Shared references: a registry reference with several holders (a
** task's context, shared with the tasks it spawns until one of them
** writes), counted in C, so that one more holder touches no table (a
** luaL_ref per task was a tenth of a trio_as_aio call) and reading it is
** one lua_rawgeti.  Pops the value on top, returns its reference, held
** once. */
int ta_shared_ref(lua_State *L, ta_engine *E) {
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (ref >= E->capholders) {
    int cap = E->capholders ? E->capholders : 64;
    int *a;
    while (cap <= ref) cap *= 2;
    a = (int *)realloc(E->ref_holders, (size_t)cap * sizeof *a);
    if (a == NULL) {
      luaL_unref(L, LUA_REGISTRYINDEX, ref);
      luaL_error(L, "trio_asyncio: not enough memory");
    }
    E->ref_holders = a;
    E->capholders = cap;
  }
  E->ref_holders[ref] = 1;
  return ref;
}

/* One more holder of the shared reference ref. */
void ta_shared_ref_hold(ta_engine *E, int ref) {
  E->ref_holders[ref]++;
}

/* One holder less (LUA_NOREF: none); the last one releases the reference. */
void ta_shared_unref(lua_State *L, ta_engine *E, int ref) {
  if (ref < 0 || E->closing) return; /* at lua_close the whole registry goes */
  if (--E->ref_holders[ref] == 0) luaL_unref(L, LUA_REGISTRYINDEX, ref);
}

/* Pushes the object anchored at id and lets go of it: ta_push_anchored
** and ta_unanchor with one fetch of the table (a task's exit that cannot
** fail). */
void ta_push_unanchor(lua_State *L, ta_engine *E, int id) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->anchor_ref);
  lua_rawgeti(L, -1, id);
  if (!E->closing) { /* at lua_close the whole table goes */
    lua_pushnil(L);
    lua_rawseti(L, -3, id);
    ids_give(&E->anchor_ids, id);
  }
  lua_replace(L, -2);
}

void ta_push_engine(lua_State *L) {
  ta_engine_get(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &engine_key);
}

/* Pushes an array of the values t[names[i]] (t: the table at tidx, names
** ending with NULL), in that order: the Lua helpers a C closure keeps as
** an upvalue.  Each must be given; fname names the maker in the error. */
void ta_push_helpers(lua_State *L, int tidx, const char *const names[], const char *fname) {
  int n = 0;
  tidx = lua_absindex(L, tidx);
  luaL_checktype(L, tidx, LUA_TTABLE);
  while (names[n] != NULL) n++;
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    if (lua_getfield(L, tidx, names[i]) == LUA_TNIL) luaL_error(L, "%s: no helper '%s'", fname, names[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

/* Registers funcs into the core table with the engine as upvalue; expects
** [core, engine] on top and leaves them. */
void ta_register(lua_State *L, const luaL_Reg *funcs) {
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
}

/* The one way a class is built (as liolib's createmeta): metatable `name`
** with the metamethods `meta` and a table of `methods` stored under
** `methods_field` ("__index" when lookups go straight to it, "__methods"
** when an __index function serves fields first).  Every function gets the
** engine as upvalue 1.  Expects the engine on top; leaves the metatable
** above it (pop it before making the next class). */
void ta_newclass(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods,
                 const char *methods_field) {
  int engine = lua_gettop(L);
  luaL_newmetatable(L, name);
  lua_pushvalue(L, engine);
  luaL_setfuncs(L, meta, 1);
  if (methods != NULL) {
    lua_newtable(L);
    lua_pushvalue(L, engine);
    luaL_setfuncs(L, methods, 1);
    lua_setfield(L, -2, methods_field);
  }
}

