/*
** embed.c — the C host API (csrc/include/trio_asyncio.h): running on a
** host's libuv loop, stepping from a host's own main loop, guest runs, and
** wake-ups posted from other threads.
**
** On a host loop, a uv_prepare_t runs one scheduler tick per loop
** iteration (the host's uv_run does the polling); a uv_idle_t keeps the
** loop from blocking while tasks are runnable, and the engine's wake timer
** is armed for the next deadline.  Only a live guest run keeps the host's
** loop alive (its async handle is referenced for that long).
**
** The one process-wide structure: the registry of live engines, so that
** trio_asyncio_call_soon_threadsafe can tell a closed lua_State from a live
** one without touching freed memory.  It is guarded by a mutex.
*/
#include <stdlib.h>

#include "ta.h"
#include "trio_asyncio.h"

typedef struct ta_threadcall {
  void (*fn)(lua_State *L, void *arg);
  void *arg;
  struct ta_threadcall *next;
} threadcall;

typedef struct live_engine {
  lua_State *L;
  ta_engine *E;
  struct live_engine *next;
} live_engine;

static uv_once_t registry_once = UV_ONCE_INIT;
static uv_mutex_t registry_lock;
static live_engine *registry;

static void registry_init(void) { uv_mutex_init(&registry_lock); }

static ta_engine *registry_find(lua_State *L) {
  for (live_engine *e = registry; e != NULL; e = e->next)
    if (e->L == L) return e->E;
  return NULL;
}

/* ---- thread-safe calls ---- */

static int call_one(lua_State *L) {
  threadcall *c = (threadcall *)lua_touserdata(L, 1);
  c->fn(L, c->arg);
  return 0;
}

/* Runs on the loop's thread: every queued call once, in posting order. */
static void on_async(uv_async_t *h) {
  ta_engine *E = (ta_engine *)h->data;
  threadcall *list, *rev = NULL;
  uv_mutex_lock(&registry_lock);
  list = E->calls;
  E->calls = NULL;
  uv_mutex_unlock(&registry_lock);
  while (list != NULL) {
    threadcall *next = list->next;
    list->next = rev;
    rev = list;
    list = next;
  }
  while (rev != NULL) {
    threadcall *next = rev->next;
    lua_pushcfunction(E->L, call_one);
    lua_pushlightuserdata(E->L, rev);
    if (lua_pcall(E->L, 1, 0, 0) != LUA_OK) {
      lua_writestringerror("trio_asyncio: a thread-posted callback raised: %s\n",
                           luaL_tolstring(E->L, -1, NULL));
      lua_pop(E->L, 2);
    }
    free(rev);
    rev = next;
  }
}

int trio_asyncio_call_soon_threadsafe(lua_State *L, void (*fn)(lua_State *L, void *arg),
                                      void *arg) {
  ta_engine *E;
  threadcall *c;
  int rc = 0;
  if (L == NULL || fn == NULL) return UV_EINVAL;
  uv_once(&registry_once, registry_init);
  uv_mutex_lock(&registry_lock);
  E = registry_find(L);
  if (E == NULL || E->closing || E->async == NULL) {
    rc = UV_EINVAL;
  } else if (!E->running) {
    rc = UV_ECANCELED;
  } else if ((c = (threadcall *)malloc(sizeof *c)) == NULL) {
    rc = UV_ENOMEM;
  } else {
    c->fn = fn;
    c->arg = arg;
    c->next = E->calls;
    E->calls = c;
    rc = uv_async_send(E->async);
  }
  uv_mutex_unlock(&registry_lock);
  return rc;
}

/* ---- guest runs ---- */

static void arm(ta_engine *E);

/* One tick of a guest run; when the run is over, its done callback gets
** ("ok", results...) / ("error", err) / ("internal", err). */
int ta_guest_step(lua_State *L, ta_engine *E, double max_wait) {
  int n, top;
  if (!E->running || !E->guest) return 0;
  ta_run_step(L, E, max_wait);
  if (ta_run_alive(E)) return 1;
  E->guest = 0;
  top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, E->guest_done_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, E->guest_done_ref);
  E->guest_done_ref = LUA_NOREF;
  n = ta_run_finish(L, E);
  if (lua_pcall(L, n, 0, 0) != LUA_OK) {
    lua_writestringerror("trio_asyncio: the guest run's done callback raised: %s\n",
                         luaL_tolstring(L, -1, NULL));
  }
  lua_settop(L, top);
  return 0;
}

static int guest_tick(lua_State *L) {
  ta_engine *E = (ta_engine *)lua_touserdata(L, 1);
  double max_wait = lua_tonumber(L, 2);
  lua_pushboolean(L, ta_guest_step(L, E, max_wait));
  return 1;
}

/* A protected guest step: an error escaping the scheduler must not unwind
** through libuv or the host. */
static int protected_step(ta_engine *E, double max_wait) {
  lua_State *L = E->L;
  int alive;
  lua_pushcfunction(L, guest_tick);
  lua_pushlightuserdata(L, E);
  lua_pushnumber(L, max_wait);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    lua_writestringerror("trio_asyncio: scheduler error: %s\n", luaL_tolstring(L, -1, NULL));
    lua_pop(L, 2);
    return E->running ? 1 : 0;
  }
  alive = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return alive;
}

static void on_idle(uv_idle_t *h) { (void)h; }

/* After a tick on a host loop: don't let the host block while tasks are
** runnable; otherwise wake up for the next deadline. */
static void arm(ta_engine *E) {
  ta_timer *top = ta_heap_top(&E->timers);
  if (!E->running || !E->guest) {
    uv_idle_stop(E->idle);
    uv_prepare_stop(E->prepare);
    uv_timer_stop(E->wake);
    uv_unref((uv_handle_t *)E->async);
    return;
  }
  if (E->nrunq > 0 || E->nsoon > 0) {
    uv_idle_start(E->idle, on_idle);
    return;
  }
  uv_idle_stop(E->idle);
  if (top != NULL) {
    double dt = top->when - ta_now(E);
    uv_update_time(E->loop);
    uv_timer_start(E->wake, ta_on_wake, dt > 0 ? (uint64_t)(dt * 1000) + 1 : 0, 0);
  }
}

static void on_prepare(uv_prepare_t *h) {
  ta_engine *E = (ta_engine *)h->data;
  if (E->closing) return;
  protected_step(E, 0);
  arm(E);
}

/* While a guest run is alive it keeps the host's loop alive (through the
** async handle, which also receives the threads' wake-ups). */
void ta_guest_started(ta_engine *E) {
  if (!E->host_loop) return;
  uv_ref((uv_handle_t *)E->async);
  uv_prepare_start(E->prepare, on_prepare);
  arm(E);
}

/* guest_step(max_wait) -> alive: one step of the guest run, from Lua code
** outside any task (the sync asyncio loop drives its run this way). */
static int l_guest_step(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  double max_wait = luaL_optnumber(L, 1, -1);
  if (E->current != NULL)
    return luaL_error(L, "run_until_complete: cannot run a sync loop from inside a task");
  lua_pushboolean(L, ta_guest_step(L, E, max_wait));
  return 1;
}

int ta_open_embed(lua_State *L) {
  static const luaL_Reg funcs[] = {{"guest_step", l_guest_step}, {NULL, NULL}};
  ta_register(L, funcs);
  return 0;
}

/* ---- engine handles of this layer ---- */

int ta_embed_init(ta_engine *E) {
  uv_once(&registry_once, registry_init);
  E->async = (uv_async_t *)malloc(sizeof *E->async);
  E->prepare = (uv_prepare_t *)malloc(sizeof *E->prepare);
  E->idle = (uv_idle_t *)malloc(sizeof *E->idle);
  if (E->async == NULL || E->prepare == NULL || E->idle == NULL) {
    free(E->async);
    free(E->prepare);
    free(E->idle);
    E->async = NULL;
    E->prepare = NULL;
    E->idle = NULL;
    return UV_ENOMEM;
  }
  uv_async_init(E->loop, E->async, on_async);
  uv_prepare_init(E->loop, E->prepare);
  uv_idle_init(E->loop, E->idle);
  E->async->data = E->prepare->data = E->idle->data = E;
  uv_unref((uv_handle_t *)E->async);
  uv_unref((uv_handle_t *)E->prepare);
  uv_mutex_lock(&registry_lock);
  if (registry_find(E->L) == NULL && E->L != NULL) {
    live_engine *e = (live_engine *)malloc(sizeof *e);
    if (e != NULL) {
      e->L = E->L;
      e->E = E;
      e->next = registry;
      registry = e;
    }
  }
  uv_mutex_unlock(&registry_lock);
  return 0;
}

/* Unregister and close this layer's handles (freed in their callbacks);
** calls still queued are dropped. */
void ta_embed_close(lua_State *L, ta_engine *E) {
  threadcall *c;
  (void)L;
  uv_mutex_lock(&registry_lock);
  for (live_engine **p = &registry; *p != NULL; p = &(*p)->next) {
    if ((*p)->E == E) {
      live_engine *dead = *p;
      *p = dead->next;
      free(dead);
      break;
    }
  }
  c = E->calls;
  E->calls = NULL;
  uv_mutex_unlock(&registry_lock);
  while (c != NULL) {
    threadcall *next = c->next;
    free(c);
    c = next;
  }
  if (E->async != NULL) {
    uv_close((uv_handle_t *)E->async, ta_free_handle);
    uv_close((uv_handle_t *)E->prepare, ta_free_handle);
    uv_close((uv_handle_t *)E->idle, ta_free_handle);
    E->async = NULL;
    E->prepare = NULL;
    E->idle = NULL;
  }
}

/* ---- the public API ---- */

int trio_asyncio_use_loop(lua_State *L, uv_loop_t *loop) {
  ta_engine *E;
  if (L == NULL || loop == NULL) return UV_EINVAL;
  E = ta_engine_get(L);
  if (E->loop == loop) return 0;
  if (E->running || E->host_loop) return UV_EBUSY;
  /* Move from our own loop to the host's. */
  ta_embed_close(L, E);
  ta_engine_handles_close(E);
  uv_run(&E->own_loop, UV_RUN_DEFAULT);
  uv_loop_close(&E->own_loop);
  E->loop = loop;
  E->host_loop = 1;
  return ta_engine_handles_init(E);
}

int trio_asyncio_step(lua_State *L, double timeout) {
  ta_engine *E = ta_engine_get(L);
  if (!E->running || !E->guest) return 0;
  return protected_step(E, timeout < 0 ? -1 : timeout);
}

int trio_asyncio_backend_fd(lua_State *L) {
  return uv_backend_fd(ta_engine_get(L)->loop);
}

double trio_asyncio_backend_timeout(lua_State *L) {
  ta_engine *E = ta_engine_get(L);
  ta_timer *top = ta_heap_top(&E->timers);
  double dt;
  if (E->nrunq > 0 || E->nsoon > 0) return 0;
  if (top == NULL) return -1;
  dt = top->when - ta_now(E);
  return dt > 0 ? dt : 0;
}
