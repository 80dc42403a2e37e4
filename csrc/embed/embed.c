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

#include "embed/embed.h"
#include "trio_asyncio.h"

typedef struct threadcall {
  void (*fn)(lua_State *L, void *arg);
  void *arg;
  struct threadcall *next;
} threadcall;

/* What this layer keeps per engine (E->host_state): its handles on the
** engine's loop, and the calls other threads queued. */
typedef struct host_state {
  ta_owned owned;             /* first: on the engine's list of handles */
  ta_engine *E;
  uv_prepare_t *prepare;      /* host-loop mode: runs a tick each iteration */
  uv_idle_t *idle;            /* host-loop mode: no blocking while tasks are runnable */
  uv_async_t *async;          /* call_soon_threadsafe wake-ups */
  threadcall *calls;          /* queued by other threads, under registry_lock */
} host_state;

#define host_of(E) ((host_state *)(E)->host_state)

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
  host_state *hs = (host_state *)h->data;
  lua_State *L = hs->E->L;
  threadcall *list, *rev = NULL;
  uv_mutex_lock(&registry_lock);
  list = hs->calls;
  hs->calls = NULL;
  uv_mutex_unlock(&registry_lock);
  while (list != NULL) {
    threadcall *next = list->next;
    list->next = rev;
    rev = list;
    list = next;
  }
  while (rev != NULL) {
    threadcall *next = rev->next;
    lua_pushcfunction(L, call_one);
    lua_pushlightuserdata(L, rev);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      lua_writestringerror("trio_asyncio: a thread-posted callback raised: %s\n",
                           ta_tostring(L, -1));
      lua_pop(L, 2);
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
  if (E == NULL || E->closing || host_of(E) == NULL) {
    rc = UV_EINVAL;
  } else if (!E->running) {
    rc = UV_ECANCELED;
  } else if ((c = (threadcall *)malloc(sizeof *c)) == NULL) {
    rc = UV_ENOMEM;
  } else {
    c->fn = fn;
    c->arg = arg;
    c->next = host_of(E)->calls;
    host_of(E)->calls = c;
    rc = uv_async_send(host_of(E)->async);
  }
  uv_mutex_unlock(&registry_lock);
  return rc;
}

/* ---- guest runs on a host's loop ---- */

static int guest_tick(lua_State *L) {
  ta_engine *E = (ta_engine *)lua_touserdata(L, 1);
  double max_wait = lua_tonumber(L, 2);
  int rc = ta_guest_step(L, E, max_wait);
  if (rc == TA_GUEST_DONE_RAISED) { /* no caller to raise it to: reported */
    lua_writestringerror("trio_asyncio: the guest run's done callback raised: %s\n", ta_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_pushboolean(L, rc == TA_GUEST_ALIVE);
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
    lua_writestringerror("trio_asyncio: scheduler error: %s\n", ta_tostring(L, -1));
    lua_pop(L, 2);
    return E->running ? 1 : 0;
  }
  alive = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return alive;
}

static void on_idle(uv_idle_t *h) { (void)h; }
static void on_wake(uv_timer_t *h) { (void)h; }

/* After a tick on a host loop: don't let the host block while tasks are
** runnable; otherwise wake up for the next deadline.  A wake-up that cannot
** be armed (libuv never fails these, but a host's wrapped libuv may) falls
** back to the async handle, whose send cannot fail: the host loop comes
** straight back instead of sleeping through a deadline or runnable tasks. */
static void arm(ta_engine *E) {
  host_state *hs = host_of(E);
  double dt;
  if (!E->running || !E->guest) {
    uv_idle_stop(hs->idle);
    uv_prepare_stop(hs->prepare);
    uv_timer_stop(E->wake);
    uv_unref((uv_handle_t *)hs->async);
    return;
  }
  dt = E->guest_ending ? 0 : ta_wait_timeout(E);
  if (dt == 0) {
    if (uv_idle_start(hs->idle, on_idle) != 0) uv_async_send(hs->async);
    return;
  }
  uv_idle_stop(hs->idle);
  if (dt > 0) {
    uv_update_time(E->loop);
    if (uv_timer_start(E->wake, on_wake, (uint64_t)(dt * 1000) + 1, 0) != 0)
      uv_async_send(hs->async);
  }
}

static void on_prepare(uv_prepare_t *h) {
  ta_engine *E = ((host_state *)h->data)->E;
  if (E->closing) return;
  protected_step(E, 0);
  arm(E);
}

/* While a guest run is alive it keeps the host's loop alive (through the
** async handle, which also receives the threads' wake-ups).  Returns a
** libuv error code: the run cannot start if its steps cannot be hooked in. */
static int guest_started(ta_engine *E) {
  host_state *hs = host_of(E);
  int rc;
  if (!E->host_loop || hs == NULL) return 0;
  if ((rc = uv_prepare_start(hs->prepare, on_prepare)) != 0) return rc;
  uv_ref((uv_handle_t *)hs->async);
  arm(E);
  return 0;
}

/* ---- this layer's handles, on the engine's list ---- */

/* Unregister and close the handles (freed in their callbacks); calls still
** queued are dropped. */
static void host_close(ta_owned *o) {
  host_state *hs = (host_state *)o;
  ta_engine *E = hs->E;
  threadcall *c;
  uv_mutex_lock(&registry_lock);
  for (live_engine **p = &registry; *p != NULL; p = &(*p)->next) {
    if ((*p)->E == E) {
      live_engine *dead = *p;
      *p = dead->next;
      free(dead);
      break;
    }
  }
  c = hs->calls;
  hs->calls = NULL;
  E->host_state = NULL;
  uv_mutex_unlock(&registry_lock);
  while (c != NULL) {
    threadcall *next = c->next;
    free(c);
    c = next;
  }
  uv_close((uv_handle_t *)hs->async, ta_free_handle);
  uv_close((uv_handle_t *)hs->prepare, ta_free_handle);
  uv_close((uv_handle_t *)hs->idle, ta_free_handle);
  free(hs);
}

/* Inits the three handles of hs; on a failure, those already opened are
** closed (freed in their close callback) and the others freed. */
static int host_handles_init(uv_loop_t *loop, host_state *hs) {
  int rc = uv_async_init(loop, hs->async, on_async);
  if (rc != 0) {
    free(hs->async);
    free(hs->prepare);
    free(hs->idle);
    return rc;
  }
  if ((rc = uv_prepare_init(loop, hs->prepare)) != 0) {
    uv_close((uv_handle_t *)hs->async, ta_free_handle);
    free(hs->prepare);
    free(hs->idle);
    return rc;
  }
  if ((rc = uv_idle_init(loop, hs->idle)) != 0) {
    uv_close((uv_handle_t *)hs->async, ta_free_handle);
    uv_close((uv_handle_t *)hs->prepare, ta_free_handle);
    free(hs->idle);
  }
  return rc;
}

/* Opens the handles on E->loop and registers the engine for threads. */
static int host_open(ta_engine *E) {
  host_state *hs = (host_state *)calloc(1, sizeof *hs);
  live_engine *e = (live_engine *)malloc(sizeof *e);
  int rc;
  uv_once(&registry_once, registry_init);
  if (hs != NULL) {
    hs->async = (uv_async_t *)malloc(sizeof *hs->async);
    hs->prepare = (uv_prepare_t *)malloc(sizeof *hs->prepare);
    hs->idle = (uv_idle_t *)malloc(sizeof *hs->idle);
  }
  if (hs == NULL || e == NULL || hs->async == NULL || hs->prepare == NULL || hs->idle == NULL) {
    if (hs != NULL) {
      free(hs->async);
      free(hs->prepare);
      free(hs->idle);
    }
    free(hs);
    free(e);
    return UV_ENOMEM;
  }
  hs->E = E;
  hs->owned.close = host_close;
  hs->owned.persistent = 1;
  if ((rc = host_handles_init(E->loop, hs)) != 0) {
    free(hs);
    free(e);
    return rc;
  }
  hs->async->data = hs->prepare->data = hs->idle->data = hs;
  uv_unref((uv_handle_t *)hs->async);
  uv_unref((uv_handle_t *)hs->prepare);
  ta_handle_opened(E, &hs->owned);
  uv_mutex_lock(&registry_lock);
  E->host_state = hs;
  e->L = E->L;
  e->E = E;
  e->next = registry;
  registry = e;
  uv_mutex_unlock(&registry_lock);
  return 0;
}

static const ta_host_hooks hooks = {guest_started, host_open};

/* The engine of L, with this layer plugged in. */
static ta_engine *engine(lua_State *L) {
  ta_engine *E = ta_engine_get(L);
  if (E->host == NULL) {
    E->host = &hooks;
    if (host_open(E) != 0) E->host = NULL;
  }
  return E;
}

int ta_open_embed(lua_State *L) {
  engine(L);
  return 0;
}

/* ---- the public API ---- */

int trio_asyncio_use_loop(lua_State *L, uv_loop_t *loop) {
  ta_engine *E;
  int rc;
  if (L == NULL || loop == NULL) return UV_EINVAL;
  E = engine(L);
  if (E->loop == loop) return 0;
  if (E->running || E->host_loop) return UV_EBUSY;
  /* Move from our own loop to the host's. */
  ta_engine_handles_close(E);
  uv_run(&E->own_loop, UV_RUN_DEFAULT);
  uv_loop_close(&E->own_loop);
  E->loop = loop;
  E->host_loop = 1;
  if ((rc = ta_engine_handles_init(E)) != 0) {
    /* back on a loop of our own; the host's loop finishes the closes */
    E->loop = &E->own_loop;
    E->host_loop = 0;
    if (uv_loop_init(&E->own_loop) == 0) ta_engine_handles_init(E);
  }
  return rc;
}

int trio_asyncio_step(lua_State *L, double timeout) {
  ta_engine *E = engine(L);
  if (!E->running || !E->guest) return 0;
  return protected_step(E, timeout < 0 ? -1 : timeout);
}

int trio_asyncio_backend_fd(lua_State *L) {
  return uv_backend_fd(engine(L)->loop);
}

double trio_asyncio_backend_timeout(lua_State *L) {
  ta_engine *E = engine(L);
  return E->guest_ending ? 0 : ta_wait_timeout(E);
}
