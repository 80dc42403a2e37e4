/*
** thread.c — worker threads: the engine's own pool of OS threads, and
** the job that runs a Lua function there (trio.to_thread.run_sync,
** asyncio.to_thread, loop:run_in_executor).
**
** Why a pool of our own: libuv's threadpool (4 threads unless
** UV_THREADPOOL_SIZE says otherwise, shared by the whole process) serves
** file requests and getaddrinfo.  User functions may block for long; run
** there, 4 of them would stall every file and DNS request of the process.
**
** The pool: one per engine, found through a box in the registry.  Threads
** are started on demand (up to POOL_MAX), wait for jobs on a condition
** variable, and leave after IDLE_SECONDS without work.  Each thread keeps
** one lua_State of its own (standard libraries, the engine's package.path
** and cpath), made at its first job.  A finished job goes on the done list
** and the thread wakes the engine's loop with a uv_async_t; the async
** callback completes the job's request (io.h).  The mutex guards the
** queues, the counters and the async pointer; nothing else is shared.
**
** Lifetime: the pool is reference counted (the registry box, the open
** async handle, each thread), so it outlives an engine closed while jobs
** run: a thread that finishes a job for a closed engine frees the job
** itself.  A job abandoned (cancellable wait cancelled, shutdown) has its
** `stop` flag set; a count hook in the worker state raises at the next
** 1000 instructions, so a Lua loop ends; C code blocking in the worker
** runs to its end.
**
** Executors (asyncio.ThreadPoolExecutor) share the pool: a job may belong
** to a group (ta_jobgroup) that lets at most `limit` of its jobs run at
** once; its other jobs stay queued, held, and workers take the first
** queued job that is not held.  A caller that blocks the loop thread on
** a job (ConcurrentFuture:result) waits on done_cv for that job to finish
** and completes it itself (thread_result): the worker threads need
** nothing from the loop thread to progress, so the wait cannot deadlock.
**
** The run_sync job: the function (lua_dump, cached per function) and its
** arguments are copied into a buffer (copy.c), loaded in the worker state
** (loaded functions cached there by their bytes), called; its results or
** its error are copied back.
*/
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "io/io.h"

#define POOL_MAX 64
#define IDLE_SECONDS 10
#define HOOK_COUNT 1000

/* An executor's share of the pool: at most `limit` of its jobs run at once. */
typedef struct ta_jobgroup {
  atomic_int refs;            /* its WorkerGroup object, each of its jobs */
  int limit;
  int running, active;        /* its jobs running; queued or running (pool mutex) */
} ta_jobgroup;

typedef struct ta_pool {
  uv_mutex_t mu;
  uv_cond_t cv;               /* a job was queued (or the pool closed) */
  uv_cond_t done_cv;          /* a job finished */
  ta_job *head, *tail;        /* queued */
  ta_job *done;               /* finished, for the loop thread */
  int nqueued, nthreads, nidle, refs;
  int nheld;                  /* queued jobs their group's limit holds back */
  int closed;                 /* the engine side is gone */
  uv_async_t *async;          /* NULL once closed */
  char *path, *cpath;         /* package paths for worker states */
  unsigned gen;               /* ...changed this many times */
  /* loop thread only */
  ta_owned owned;
  ta_engine *E;
  size_t inflight;            /* submitted, not completed */
} ta_pool;

/* ---- the pool ---- */

static void pool_unref_locked(ta_pool *P, int *last) {
  *last = --P->refs == 0;
}

static void pool_free(ta_pool *P) {
  uv_mutex_destroy(&P->mu);
  uv_cond_destroy(&P->cv);
  uv_cond_destroy(&P->done_cv);
  free(P->path);
  free(P->cpath);
  free(P);
}

static void pool_unref(ta_pool *P) {
  int last;
  uv_mutex_lock(&P->mu);
  pool_unref_locked(P, &last);
  uv_mutex_unlock(&P->mu);
  if (last) pool_free(P);
}

/* ---- groups (the pool mutex guards running, active and nheld) ---- */

static void group_unref(ta_jobgroup *g) {
  if (g != NULL && atomic_fetch_sub(&g->refs, 1) == 1) free(g);
}

/* A job of g is queued: it is held when g's jobs already fill its limit. */
static void group_enter(ta_pool *P, ta_jobgroup *g) {
  if (g != NULL && g->active++ >= g->limit) P->nheld++;
}

/* j leaves the queue (was_running 0) or ends its run: a job of its group
** that was held may run now (1 is returned then). */
static int group_leave(ta_pool *P, ta_job *j, int was_running) {
  ta_jobgroup *g = j->group;
  if (g == NULL) return 0;
  if (was_running) g->running--;
  if (g->active-- > g->limit) {
    P->nheld--;
    return 1;
  }
  return 0;
}

/* Takes the first queued job that its group lets run, or NULL. */
static ta_job *take_runnable(ta_pool *P) {
  ta_job *prev = NULL;
  for (ta_job *j = P->head; j != NULL; prev = j, j = j->next_job) {
    if (j->group != NULL && j->group->running >= j->group->limit) continue;
    if (prev != NULL) prev->next_job = j->next_job;
    else P->head = j->next_job;
    if (P->tail == j) P->tail = prev;
    P->nqueued--;
    j->next_job = NULL;
    j->taken = 1;
    if (j->group != NULL) j->group->running++;
    return j;
  }
  return NULL;
}

/* ---- the done list: pushed by workers, taken whole by the loop thread's
** async callback, or one job at a time by a caller that waits for it ---- */

static void push_done(ta_pool *P, ta_job *j) {
  j->prev_done = NULL;
  j->next_job = P->done;
  if (P->done != NULL) P->done->prev_done = j;
  P->done = j;
}

static void unlink_done(ta_pool *P, ta_job *j) {
  if (j->prev_done != NULL) j->prev_done->next_job = j->next_job;
  else P->done = j->next_job;
  if (j->next_job != NULL) j->next_job->prev_done = j->prev_done;
  j->next_job = j->prev_done = NULL;
}

static void stop_hook(lua_State *W, lua_Debug *ar) {
  ta_job *j = *(ta_job **)lua_getextraspace(W);
  (void)ar;
  if (j != NULL && atomic_load(&j->stop))
    luaL_error(W, "the worker function was abandoned (its caller was cancelled)");
}

/* Any access to trio, asyncio or trio_asyncio in a worker. */
static int no_scheduler(lua_State *W) {
  const char *mod = lua_tostring(W, lua_upvalueindex(1));
  const char *k = luaL_tolstring(W, 2, NULL);
  return luaL_error(W, "%s.%s: %s cannot be used in a worker thread (to_thread runs its function "
                       "in a separate Lua state that has no scheduler; return values to the "
                       "caller instead)", mod, k, mod);
}

static int setup_worker(lua_State *W) {
  static const char *const mods[] = {"trio", "asyncio", "trio_asyncio"};
  luaL_openlibs(W);
  lua_getglobal(W, "package");
  lua_getfield(W, -1, "loaded");
  for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++) {
    lua_newtable(W);
    lua_createtable(W, 0, 2);
    lua_pushstring(W, mods[i]);
    lua_pushcclosure(W, no_scheduler, 1);
    lua_setfield(W, -2, "__index");
    lua_pushstring(W, mods[i]);
    lua_setfield(W, -2, "__name");
    lua_setmetatable(W, -2);
    lua_pushvalue(W, -1);
    lua_setfield(W, -3, mods[i]);
    lua_setglobal(W, mods[i]);
  }
  lua_pop(W, 2);
  lua_newtable(W); /* loaded functions by their bytes */
  lua_rawsetp(W, LUA_REGISTRYINDEX, (void *)setup_worker);
  return 0;
}

static lua_State *new_worker(void) {
  lua_State *W = luaL_newstate();
  if (W == NULL) return NULL;
  lua_pushcfunction(W, setup_worker);
  if (lua_pcall(W, 0, 0, 0) != LUA_OK) {
    lua_close(W);
    return NULL;
  }
  *(ta_job **)lua_getextraspace(W) = NULL;
  return W;
}

static void set_paths(lua_State *W, const char *path, const char *cpath) {
  lua_getglobal(W, "package");
  if (path != NULL) {
    lua_pushstring(W, path);
    lua_setfield(W, -2, "path");
  }
  if (cpath != NULL) {
    lua_pushstring(W, cpath);
    lua_setfield(W, -2, "cpath");
  }
  lua_pop(W, 1);
}

static void job_finished(ta_pool *P, ta_job *j) {
  int closed;
  uv_mutex_lock(&P->mu);
  closed = P->closed;
  j->finished = 1;
  if (group_leave(P, j, 1)) uv_cond_signal(&P->cv);
  uv_cond_broadcast(&P->done_cv);
  if (!closed) {
    push_done(P, j);
    uv_async_send(P->async);
  }
  uv_mutex_unlock(&P->mu);
  if (closed) j->req.type->release(&j->req);
}

static void *worker_main(void *arg) {
  ta_pool *P = (ta_pool *)arg;
  lua_State *W = NULL;
  unsigned gen = 0;
  int last;
  uv_mutex_lock(&P->mu);
  for (;;) {
    ta_job *j = NULL;
    char *path = NULL, *cpath = NULL;
    while (!P->closed && (j = take_runnable(P)) == NULL) {
      int rc;
      P->nidle++;
      rc = uv_cond_timedwait(&P->cv, &P->mu, (uint64_t)IDLE_SECONDS * 1000000000u);
      P->nidle--;
      if (rc == UV_ETIMEDOUT) {
        if ((j = take_runnable(P)) != NULL) break;
        goto out;
      }
    }
    if (j == NULL) break; /* closed */
    if (gen != P->gen || W == NULL) {
      gen = P->gen;
      path = P->path ? strdup(P->path) : NULL;
      cpath = P->cpath ? strdup(P->cpath) : NULL;
    }
    uv_mutex_unlock(&P->mu);
    if (W == NULL) W = new_worker();
    if (W != NULL) {
      if (path != NULL || cpath != NULL) set_paths(W, path, cpath);
      *(ta_job **)lua_getextraspace(W) = j;
      lua_sethook(W, stop_hook, LUA_MASKCOUNT, HOOK_COUNT);
    }
    free(path);
    free(cpath);
    j->work(j, W); /* W NULL: the job reports that no state could be made */
    if (W != NULL) {
      lua_sethook(W, NULL, 0, 0);
      *(ta_job **)lua_getextraspace(W) = NULL;
      lua_settop(W, 0);
      /* A stopped function was cut short before its own cleanup (f:close()):
      ** collect what it left now, not when the idle thread leaves. */
      if (atomic_load(&j->stop)) lua_gc(W, LUA_GCCOLLECT);
    }
    job_finished(P, j);
    uv_mutex_lock(&P->mu);
  }
out:
  P->nthreads--;
  pool_unref_locked(P, &last);
  uv_mutex_unlock(&P->mu);
  if (last) pool_free(P);
  if (W != NULL) lua_close(W);
  return NULL;
}

/* Loop thread: complete the finished jobs. */
static void on_async(uv_async_t *h) {
  ta_pool *P = (ta_pool *)h->data;
  ta_job *done, *next;
  uv_mutex_lock(&P->mu);
  done = P->done;
  P->done = NULL;
  uv_mutex_unlock(&P->mu);
  /* oldest first */
  {
    ta_job *rev = NULL;
    while (done != NULL) {
      next = done->next_job;
      done->next_job = rev;
      rev = done;
      done = next;
    }
    done = rev;
  }
  for (; done != NULL; done = next) {
    next = done->next_job;
    done->next_job = NULL;
    if (P->inflight > 0 && --P->inflight == 0) uv_unref((uv_handle_t *)P->async);
    ta_ioreq_complete(&done->req);
  }
}

static void on_async_closed(uv_handle_t *h) {
  ta_pool *P = (ta_pool *)h->data;
  free(h);
  pool_unref(P);
}

/* Frees a job the pool will never run or complete.  Its request may still
** be on the engine's list (the list closes the newest first, and the first
** job's request is older than the pool): it is closed first, as the list
** would, so that neither the list nor its IORequest sees freed memory. */
static void drop_job(ta_job *j) {
  if (j->req.linked) {
    ta_handle_closing(j->req.E, &j->req.owned);
    j->req.owned.close(&j->req.owned);
  }
  j->req.type->release(&j->req);
}

/* Shutdown: threads finish what they run and leave; queued and finished
** jobs are abandoned. */
static void close_pool(ta_owned *o) {
  ta_pool *P = (ta_pool *)((char *)o - offsetof(ta_pool, owned));
  ta_job *done, *queued;
  uv_async_t *a;
  uv_mutex_lock(&P->mu);
  P->closed = 1;
  a = P->async;
  P->async = NULL;
  done = P->done;
  queued = P->head;
  for (ta_job *j = queued; j != NULL; j = j->next_job) group_leave(P, j, 0);
  P->done = P->head = P->tail = NULL;
  P->nqueued = 0;
  uv_cond_broadcast(&P->cv);
  uv_mutex_unlock(&P->mu);
  for (ta_job *j = done, *next; j != NULL; j = next) {
    next = j->next_job;
    drop_job(j);
  }
  for (ta_job *j = queued, *next; j != NULL; j = next) {
    next = j->next_job;
    drop_job(j);
  }
  uv_close((uv_handle_t *)a, on_async_closed);
}

typedef struct poolbox {
  ta_pool *P;
} poolbox;

static int poolbox_gc(lua_State *L) {
  poolbox *b = (poolbox *)lua_touserdata(L, 1);
  if (b->P != NULL) pool_unref(b->P);
  b->P = NULL;
  return 0;
}

static char pool_key;

/* Worker threads may outlive the engine (a job running while the state
** closes) and run code of this module: when it is a shared object that
** lua_close unloads, keep it mapped (RTLD_NODELETE) for the process's
** life.  Linked statically into a host, there is nothing to do. */
static void pin_module(void) {
  Dl_info info;
  if (dladdr((void *)pin_module, &info) != 0 && info.dli_fname != NULL) {
    void *h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    (void)h; /* never closed: the mapping stays */
  }
}

static ta_pool *pool_new(ta_engine *E) {
  ta_pool *P = (ta_pool *)calloc(1, sizeof *P);
  if (P == NULL) return NULL;
  P->async = (uv_async_t *)malloc(sizeof *P->async);
  if (P->async == NULL || uv_mutex_init(&P->mu) != 0) goto fail;
  if (uv_cond_init(&P->cv) != 0) {
    uv_mutex_destroy(&P->mu);
    goto fail;
  }
  if (uv_cond_init(&P->done_cv) != 0) {
    uv_mutex_destroy(&P->mu);
    uv_cond_destroy(&P->cv);
    goto fail;
  }
  if (uv_async_init(E->loop, P->async, on_async) != 0) {
    uv_mutex_destroy(&P->mu);
    uv_cond_destroy(&P->cv);
    uv_cond_destroy(&P->done_cv);
    goto fail;
  }
  P->async->data = P;
  uv_unref((uv_handle_t *)P->async);
  pin_module();
  P->E = E;
  P->refs = 2; /* the box, the async handle */
  P->owned.close = close_pool;
  P->owned.persistent = 1;
  ta_handle_opened(E, &P->owned);
  return P;
fail:
  free(P->async);
  free(P);
  return NULL;
}

/* The engine's pool, made (or remade after a shutdown of the handle list)
** on first use; NULL when out of memory. */
static ta_pool *get_pool(lua_State *L, ta_engine *E) {
  poolbox *b;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &pool_key) == LUA_TUSERDATA) {
    b = (poolbox *)lua_touserdata(L, -1);
  } else {
    lua_pop(L, 1);
    b = (poolbox *)lua_newuserdatauv(L, sizeof *b, 0);
    b->P = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, poolbox_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &pool_key);
  }
  lua_pop(L, 1);
  if (b->P != NULL && (b->P->closed || b->P->E != E)) {
    pool_unref(b->P);
    b->P = NULL;
  }
  if (b->P == NULL) b->P = pool_new(E);
  return b->P;
}

/* Keeps the pool's copy of package.path/cpath in step with L's. */
static void sync_paths(lua_State *L, ta_pool *P) {
  const char *path, *cpath;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_LOADLIBNAME);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 2);
    return;
  }
  lua_getfield(L, -1, "path");
  lua_getfield(L, -2, "cpath");
  path = lua_tostring(L, -2);
  cpath = lua_tostring(L, -1);
  uv_mutex_lock(&P->mu);
  if ((path && (!P->path || strcmp(path, P->path) != 0)) ||
      (cpath && (!P->cpath || strcmp(cpath, P->cpath) != 0))) {
    free(P->path);
    free(P->cpath);
    P->path = path ? strdup(path) : NULL;
    P->cpath = cpath ? strdup(cpath) : NULL;
    P->gen++;
  }
  uv_mutex_unlock(&P->mu);
  lua_pop(L, 4);
}

static int start_thread(ta_pool *P) {
  pthread_t th;
  pthread_attr_t attr;
  int rc;
  if (pthread_attr_init(&attr) != 0) return UV_ENOMEM;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  rc = pthread_create(&th, &attr, worker_main, P);
  pthread_attr_destroy(&attr);
  return rc == 0 ? 0 : -rc;
}

int ta_job_submit(lua_State *L, ta_engine *E, ta_job *j) {
  ta_pool *P = get_pool(L, E);
  ta_jobgroup *g = j->group;
  int rc = 0, held;
  if (P == NULL) return UV_ENOMEM;
  sync_paths(L, P);
  j->pool = P;
  j->next_job = NULL;
  j->taken = j->finished = 0;
  atomic_store(&j->stop, 0);
  uv_mutex_lock(&P->mu);
  held = g != NULL && g->active >= g->limit; /* it waits for a job of its group */
  if (!held && P->nqueued - P->nheld >= P->nidle && P->nthreads < POOL_MAX) {
    P->nthreads++;
    P->refs++;
    if ((rc = start_thread(P)) != 0) {
      P->nthreads--;
      P->refs--;
      if (P->nthreads > 0) rc = 0; /* a running thread will take it */
    }
  }
  if (rc == 0) {
    if (P->tail != NULL) P->tail->next_job = j;
    else P->head = j;
    P->tail = j;
    P->nqueued++;
    group_enter(P, g);
    if (!held) uv_cond_signal(&P->cv);
  }
  uv_mutex_unlock(&P->mu);
  if (rc != 0) return rc;
  if (P->inflight++ == 0) uv_ref((uv_handle_t *)P->async);
  return 0;
}

/* A queued job is taken off the queue and completes at once, without
** running: 1; 0 when no worker can take it any more (it runs or ran). */
static int job_unqueue(ta_job *j) {
  ta_pool *P = j->pool;
  int found = 0;
  if (P == NULL) return 0;
  uv_mutex_lock(&P->mu);
  for (ta_job **pp = &P->head, *prev = NULL; *pp != NULL; prev = *pp, pp = &(*pp)->next_job) {
    if (*pp == j) {
      *pp = j->next_job;
      if (P->tail == j) P->tail = prev;
      P->nqueued--;
      if (group_leave(P, j, 0)) uv_cond_signal(&P->cv); /* a held job may run now */
      j->finished = 1;
      found = 1;
      break;
    }
  }
  if (found) {
    push_done(P, j);
    uv_async_send(P->async); /* (a closed pool has no queue) */
  }
  uv_mutex_unlock(&P->mu);
  return found;
}

/* The job was abandoned: a queued one completes at once (it frees itself);
** a running one is asked to stop. */
static void job_cancel(ta_job *j) {
  atomic_store(&j->stop, 1);
  job_unqueue(j);
}

/* ---- the run_sync job ---- */

typedef struct syncjob {
  ta_job job;                 /* first */
  ta_buf in;                  /* the function's bytes, then its arguments */
  ta_buf out;                 /* results, or the error */
  size_t fnlen;
  int nargs, nres, ok;
} syncjob;

static void syncjob_release(ta_ioreq *r) {
  syncjob *s = (syncjob *)r;
  group_unref(s->job.group);
  ta_buf_free(&s->in);
  ta_buf_free(&s->out);
  free(s);
}

static void put_error_string(syncjob *s, const char *msg) {
  int failed;
  char why[8];
  lua_State *T = luaL_newstate(); /* only when the worker state itself failed */
  s->out.n = 0;
  s->ok = 0;
  if (T == NULL) return;
  lua_pushstring(T, msg);
  ta_copy_encode(T, -1, 1, &s->out, 0, &failed, why, sizeof why);
  lua_close(T);
}

/* Pushes the function of the job on W: from W's cache, else loaded from
** its bytes. */
static int push_function(lua_State *W, syncjob *s) {
  lua_rawgetp(W, LUA_REGISTRYINDEX, (void *)setup_worker);
  lua_pushlstring(W, s->in.p, s->fnlen);
  lua_pushvalue(W, -1);
  if (lua_rawget(W, -3) == LUA_TFUNCTION) {
    lua_replace(W, -3);
    lua_pop(W, 1);
    return 0;
  }
  lua_pop(W, 1);
  if (luaL_loadbufferx(W, s->in.p, s->fnlen, "=to_thread", "b") != LUA_OK) {
    lua_replace(W, -3);
    lua_pop(W, 1);
    return -1;
  }
  /* keep the cache small: functions are few in practice */
  if (luaL_len(W, -3) == 0) {
    lua_pushinteger(W, 0);
    lua_rawseti(W, -4, 1); /* a count in [1] */
  }
  lua_rawgeti(W, -3, 1);
  if (lua_tointeger(W, -1) >= 256) {
    lua_newtable(W);
    lua_rawsetp(W, LUA_REGISTRYINDEX, (void *)setup_worker);
    lua_pop(W, 1);
  } else {
    lua_pushinteger(W, lua_tointeger(W, -1) + 1);
    lua_rawseti(W, -5, 1);
    lua_pop(W, 1);
    lua_pushvalue(W, -2);
    lua_pushvalue(W, -2);
    lua_rawset(W, -5);
  }
  lua_replace(W, -3);
  lua_pop(W, 1);
  return 0;
}

static void syncjob_work(ta_job *j, lua_State *W) {
  syncjob *s = (syncjob *)j;
  size_t pos = s->fnlen;
  int base, failed, n;
  char why[160];
  if (W == NULL) {
    put_error_string(s, "to_thread: could not create the worker thread's Lua state (out of memory)");
    return;
  }
  base = lua_gettop(W);
  if (push_function(W, s) < 0) {
    s->ok = 0;
    s->out.n = 0;
    if (ta_copy_encode(W, -1, 1, &s->out, 0, &failed, why, sizeof why) < 0)
      put_error_string(s, "to_thread: the function could not be loaded in the worker");
    lua_settop(W, base);
    return;
  }
  if (ta_copy_decode(W, &s->in, &pos, s->nargs, NULL, NULL) < 0) {
    lua_settop(W, base);
    put_error_string(s, "to_thread: the arguments could not be read in the worker");
    return;
  }
  s->ok = lua_pcall(W, s->nargs, LUA_MULTRET, 0) == LUA_OK;
  n = lua_gettop(W) - base;
  s->nres = n;
  if (ta_copy_encode(W, base + 1, n, &s->out, 1, &failed, why, sizeof why) < 0) {
    char msg[400];
    if (s->ok)
      snprintf(msg, sizeof msg, "to_thread: result #%d of the worker function is %s, which "
                                "cannot be copied back from the worker thread", failed + 1, why);
    else
      snprintf(msg, sizeof msg, "to_thread: the worker function raised %s, which cannot be "
                                "copied back from the worker thread", why);
    s->out.n = 0;
    lua_settop(W, base);
    put_error_string(s, msg);
    s->nres = 1;
  }
  lua_settop(W, base);
}

static void push_error_cls(lua_State *L, const char *cls, void *ud) {
  ta_push_error(L, (ta_engine *)ud, cls, "");
}

static int syncjob_deliver(lua_State *L, ta_ioreq *r) {
  syncjob *s = (syncjob *)r;
  size_t pos = 0;
  int n = s->ok ? s->nres : 1;
  if (!s->ok && s->out.n == 0) {
    lua_pushliteral(L, "to_thread: out of memory in the worker thread");
    return -1;
  }
  if (!lua_checkstack(L, n + 8) || ta_copy_decode(L, &s->out, &pos, n, push_error_cls, r->E) < 0) {
    lua_pushliteral(L, "to_thread: the worker's results could not be read");
    return -1;
  }
  return s->ok ? n : -1;
}

static void syncjob_cancel(ta_ioreq *r) { job_cancel((ta_job *)r); }

static const ta_ioreq_type syncjob_type = {
  "to_thread", syncjob_deliver, syncjob_cancel, syncjob_release
};

/* Raises "bad argument" at the caller of the Lua face that called us. */
static int arg_error(lua_State *L, const char *fmt, ...) {
  va_list ap;
  luaL_where(L, 2);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  (void)L;
  return ta_buf_put((ta_buf *)ud, p, sz) < 0 ? 1 : 0;
}

static char dumps_key;

/* Checks that the function at idx can run on a worker and appends its
** bytes to b (cached per function in a weak table). */
static void put_function(lua_State *L, int idx, int argn, const char *fname, ta_buf *b) {
  lua_Debug ar;
  const char *name;
  if (lua_type(L, idx) != LUA_TFUNCTION || lua_iscfunction(L, idx))
    arg_error(L, "bad argument #%d to '%s' (Lua function expected, got %s)", argn, fname,
               lua_iscfunction(L, idx) ? "C function" : luaL_typename(L, idx));
  for (int i = 1; (name = lua_getupvalue(L, idx, i)) != NULL; i++) {
    lua_pop(L, 1);
    if (strcmp(name, "_ENV") != 0 || i > 1)
      arg_error(L, "bad argument #%d to '%s' (the function has upvalue '%s': a function run on "
                    "a worker thread may use globals but no upvalue other than _ENV; pass values "
                    "as arguments)", argn, fname, *name ? name : "?");
  }
  (void)ar;
  ta_push_weak_keyed(L, &dumps_key);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, -2) != LUA_TSTRING) {
    ta_buf tmp = {NULL, 0, 0};
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    if (lua_dump(L, dump_writer, &tmp, 0) != 0) {
      ta_buf_free(&tmp);
      luaL_error(L, "%s: not enough memory", fname);
    }
    lua_pop(L, 1);
    lua_pushlstring(L, tmp.p, tmp.n);
    ta_buf_free(&tmp);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  {
    size_t len;
    const char *p = lua_tolstring(L, -1, &len);
    if (ta_buf_put(b, p, len) < 0) luaL_error(L, "%s: not enough memory", fname);
  }
  lua_pop(L, 2);
}

static int job_gc(lua_State *L) {
  syncjob **sp = (syncjob **)lua_touserdata(L, 1);
  if (*sp != NULL) syncjob_release(&(*sp)->job.req);
  *sp = NULL;
  return 0;
}

/* thread_job(fname, argn, fn, ...) -> IORequest (not started): fn and its
** arguments copied; an argument that cannot be copied raises "bad
** argument #k to 'fname'" (fn is argument #argn of the public call). */
static int l_thread_job(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  const char *fname = luaL_checkstring(L, 1);
  int argn = (int)luaL_checkinteger(L, 2);
  int nargs = lua_gettop(L) - 3, failed;
  char why[160];
  syncjob *s, **holder;
  if (nargs < 0) arg_error(L, "bad argument #%d to '%s' (function expected, got no value)", argn, fname);
  /* held by a userdata until the request object owns it: an error below
  ** frees it */
  holder = (syncjob **)lua_newuserdatauv(L, sizeof *holder, 0);
  *holder = NULL;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, job_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  s = (syncjob *)calloc(1, sizeof *s);
  if (s == NULL) return luaL_error(L, "%s: not enough memory", fname);
  *holder = s;
  put_function(L, 3, argn, fname, &s->in);
  s->fnlen = s->in.n;
  s->nargs = nargs;
  if (ta_copy_encode(L, 4, nargs, &s->in, 0, &failed, why, sizeof why) < 0)
    return arg_error(L, "bad argument #%d to '%s' (%s cannot be copied to a worker thread)",
                      argn + 1 + failed, fname, why);
  s->job.work = syncjob_work;
  s->job.req.type = &syncjob_type;
  s->job.req.E = E;
  s->job.req.state = TA_IOREQ_NEW;
  *holder = NULL;
  ta_ioreq_push(L, &s->job.req);
  return 1;
}

#define GROUP_MT "trio_asyncio.WorkerGroup"

/* thread_group(limit) -> a WorkerGroup: jobs submitted with it run at most
** `limit` at once (an executor's max_workers). */
static int l_thread_group(lua_State *L) {
  lua_Integer limit = luaL_checkinteger(L, 1);
  ta_jobgroup **box;
  luaL_argcheck(L, limit >= 1 && limit <= INT_MAX, 1, "a positive limit expected");
  box = (ta_jobgroup **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = (ta_jobgroup *)calloc(1, sizeof **box);
  if (*box == NULL) return luaL_error(L, "thread_group: not enough memory");
  atomic_init(&(*box)->refs, 1);
  (*box)->limit = (int)limit;
  luaL_setmetatable(L, GROUP_MT);
  return 1;
}

static int group_gc(lua_State *L) {
  ta_jobgroup **box = (ta_jobgroup **)luaL_checkudata(L, 1, GROUP_MT);
  group_unref(*box);
  *box = NULL;
  return 0;
}

/* cpu_count() -> how many threads this process may run in parallel. */
static int l_cpu_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_available_parallelism());
  return 1;
}

/* thread_submit(req [, group]): queue a job made by thread_job (in the
** group's share of the pool). */
static int l_thread_submit(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_ioreq *r = ta_ioreq_check(L, 1);
  ta_jobgroup **group = lua_isnoneornil(L, 2) ? NULL : (ta_jobgroup **)luaL_checkudata(L, 2, GROUP_MT);
  int rc;
  luaL_argcheck(L, r != NULL && r->type == &syncjob_type && r->state == TA_IOREQ_NEW, 1,
                "a new to_thread job expected");
  if (group != NULL && *group != NULL) {
    ((ta_job *)r)->group = *group;
    atomic_fetch_add(&(*group)->refs, 1);
  }
  ta_ioreq_start(E, r, &syncjob_type);
  if ((rc = ta_job_submit(L, E, (ta_job *)r)) != 0) {
    ta_ioreq_complete(r); /* unlinks; the waiter is not there yet */
    return ta_oserror(L, rc, NULL, "to_thread: cannot start a worker thread");
  }
  return 0;
}

static ta_ioreq *check_submitted(lua_State *L) {
  ta_ioreq *r = ta_ioreq_check(L, 1);
  luaL_argcheck(L, r != NULL && r->type == &syncjob_type && r->state != TA_IOREQ_NEW, 1,
                "a submitted to_thread job not yet delivered expected");
  return r;
}

/* Waits until the worker finished j (timeout in seconds; < 0: as long as
** it runs; 0: just looks) and takes it off the done list, for the caller
** to complete: 1; 0 when it has not finished.  (The caller runs on the
** loop thread, as on_async: a finished job not yet completed is on the
** done list.) */
static int take_finished(ta_job *j, double timeout) {
  ta_pool *P = j->pool;
  uint64_t deadline = uv_hrtime() + (timeout > 0 ? (uint64_t)(timeout * 1e9) : 0);
  int finished;
  uv_mutex_lock(&P->mu);
  while (!j->finished && timeout != 0) {
    uint64_t now = uv_hrtime();
    if (timeout < 0) uv_cond_wait(&P->done_cv, &P->mu);
    else if (now >= deadline) break;
    else uv_cond_timedwait(&P->done_cv, &P->mu, deadline - now);
  }
  finished = j->finished;
  if (finished) unlink_done(P, j);
  uv_mutex_unlock(&P->mu);
  if (finished && P->inflight > 0 && --P->inflight == 0) uv_unref((uv_handle_t *)P->async);
  return finished;
}

/* thread_result(req [, timeout]) -> false when the job has not finished
** within timeout seconds (nil: as long as it runs, 0: at once); else
** true, then true and the results, or false and the error.  The caller
** delivers the job itself, blocking this thread meanwhile, whoever else
** waited for it (a watching Future is left pending):
** ConcurrentFuture:result and the polls of its state. */
static int l_thread_result(lua_State *L) {
  ta_ioreq *r = check_submitted(L);
  double timeout = luaL_optnumber(L, 2, -1);
  int base = lua_gettop(L), n;
  if (timeout != timeout) timeout = 0;         /* NaN: just look */
  else if (timeout > 1e9) timeout = -1;        /* (31 years) as long as it runs */
  if (r->state == TA_IOREQ_RUNNING && !take_finished((ta_job *)r, timeout)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (r->unwait != NULL) r->unwait(r);
  r->unwait = NULL;
  r->wake = NULL;
  if (r->state == TA_IOREQ_RUNNING) ta_ioreq_complete(r);
  lua_pushboolean(L, 1);
  lua_pushboolean(L, 1);
  n = ta_ioreq_results(L, r);
  if (n >= 0) return 2 + n;
  lua_pushboolean(L, 0);
  lua_replace(L, base + 2);
  return 3;
}

/* thread_cancel(req) -> true when the job had not started: it never will
** (the request is abandoned); false when a worker runs or ran it. */
static int l_thread_cancel(lua_State *L) {
  ta_ioreq *r = check_submitted(L);
  int unqueued = r->state == TA_IOREQ_RUNNING && job_unqueue((ta_job *)r);
  if (unqueued) ta_ioreq_abandon(r);
  lua_pushboolean(L, unqueued);
  return 1;
}

/* thread_stage(req) -> "queued", "running" or "finished". */
static int l_thread_stage(lua_State *L) {
  ta_ioreq *r = check_submitted(L);
  ta_job *j = (ta_job *)r;
  const char *stage = "finished";
  if (r->state == TA_IOREQ_RUNNING) {
    uv_mutex_lock(&j->pool->mu);
    stage = j->finished ? "finished" : j->taken ? "running" : "queued";
    uv_mutex_unlock(&j->pool->mu);
  }
  lua_pushstring(L, stage);
  return 1;
}

/* ---- C work for hosts (trio_asyncio_push_work) ---- */

typedef struct cjob {
  ta_job job;                 /* first */
  void (*fn)(void *arg);
  int (*done)(lua_State *L, void *arg);
  void *arg;
  int delivered;
} cjob;

static void cjob_work(ta_job *j, lua_State *W) {
  cjob *c = (cjob *)j;
  (void)W;
  c->fn(c->arg);
}

static int cjob_deliver(lua_State *L, ta_ioreq *r) {
  cjob *c = (cjob *)r;
  c->delivered = 1;
  return c->done != NULL ? c->done(L, c->arg) : 0;
}

static void cjob_cancel(ta_ioreq *r) { job_cancel((ta_job *)r); }

/* Dropped without delivery: done(NULL, arg) lets the host free arg. */
static void cjob_release(ta_ioreq *r) {
  cjob *c = (cjob *)r;
  if (!c->delivered && c->done != NULL) c->done(NULL, c->arg);
  free(c);
}

static const ta_ioreq_type cjob_type = {"work", cjob_deliver, cjob_cancel, cjob_release};

/* The public API (csrc/include/trio_asyncio.h; io/ does not include it). */
int trio_asyncio_push_work(lua_State *L, void (*work)(void *arg),
                           int (*done)(lua_State *L, void *arg), void *arg) {
  ta_engine *E;
  cjob *c;
  int rc;
  if (L == NULL || work == NULL) return UV_EINVAL;
  E = ta_engine_get(L);
  if (E == NULL || E->closing) return UV_EINVAL;
  if (!lua_checkstack(L, 4) || (c = (cjob *)calloc(1, sizeof *c)) == NULL) return UV_ENOMEM;
  c->fn = work;
  c->done = done;
  c->arg = arg;
  c->job.work = cjob_work;
  ta_ioreq_start(E, &c->job.req, &cjob_type);
  if ((rc = ta_job_submit(L, E, &c->job)) != 0) {
    c->delivered = 1; /* not started: the caller keeps arg */
    ta_ioreq_complete(&c->job.req);
    cjob_release(&c->job.req);
    return rc;
  }
  ta_ioreq_push(L, &c->job.req);
  return 0;
}

static const luaL_Reg thread_funcs[] = {
  {"thread_job", l_thread_job},
  {"thread_submit", l_thread_submit},
  {"thread_group", l_thread_group},
  {"cpu_count", l_cpu_count},
  {"thread_result", l_thread_result},
  {"thread_cancel", l_thread_cancel},
  {"thread_stage", l_thread_stage},
  {NULL, NULL}
};

static const luaL_Reg group_meta[] = {
  {"__gc", group_gc},
  {NULL, NULL}
};

int ta_open_thread(lua_State *L) {
  ta_register(L, thread_funcs);
  ta_newclass(L, GROUP_MT, group_meta, NULL, NULL);
  lua_pop(L, 1);
  return 0;
}
