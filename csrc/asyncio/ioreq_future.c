/*
** ioreq_future.c — an asyncio Future completed by a request of the I/O layer
** (io.h): run_in_executor, asyncio.to_thread, the asyncio file methods,
** a child's exit.
**
** The request's completion (a libuv callback, no Lua) puts it on its
** loop's list of completed requests and wakes the loop; the loop's next
** iteration delivers the results into the Future (ta_aio_io_dispatch),
** before running its ready batch.  The Future is found from the request
** through the weak registry, and keeps the request's IORequest object
** alive (a weak-keyed table, future -> object): a Future nobody holds any
** more is collected, its IORequest with it, which abandons the request.
** A Future cancelled meanwhile just drops the results (as asyncio's
** run_in_executor does: the thread is not stopped).  A loop that closes
** abandons its requests.
**
** A *notifying* Future (io_notify) only watches a request that someone
** else holds (a ConcurrentFuture's job): it is set to no value when the
** request completes and delivers nothing; a loop that closes, or the
** Future collected, leaves the request running for its holder.
*/
#include "asyncio/asyncio.h"

static const char holder_key = 'H';

static void unlink_req(ta_loop *lp, ta_ioreq *r) {
  if (r->wprev != NULL) r->wprev->wnext = r->wnext;
  else lp->io_reqs = r->wnext;
  if (r->wnext != NULL) r->wnext->wprev = r->wprev;
  r->wprev = r->wnext = NULL;
}

static void undone(ta_loop *lp, ta_ioreq *r) {
  for (ta_ioreq **pp = &lp->io_done; *pp != NULL; pp = &(*pp)->next_done) {
    if (*pp == r) {
      *pp = r->next_done;
      break;
    }
  }
  r->next_done = NULL;
}

/* The request is abandoned (its IORequest was collected, shutdown). */
static void aio_unwait(ta_ioreq *r) {
  ta_loop *lp = (ta_loop *)r->wloop;
  if (lp == NULL) return;
  unlink_req(lp, r);
  undone(lp, r);
  r->wloop = NULL;
  r->E->io_waiters--;
}

static void aio_wake(ta_ioreq *r) {
  ta_loop *lp = (ta_loop *)r->wloop;
  r->next_done = lp->io_done;
  lp->io_done = r;
  ta_loop_wake(lp);
}

void ta_aio_io_dispatch(lua_State *L, ta_loop *lp) {
  ta_ioreq *done = lp->io_done, *rev = NULL, *next;
  int top = lua_gettop(L);
  lp->io_done = NULL;
  while (done != NULL) { /* oldest first */
    next = done->next_done;
    done->next_done = rev;
    rev = done;
    done = next;
  }
  for (ta_ioreq *r = rev; r != NULL; r = next) {
    next = r->next_done;
    r->next_done = NULL;
    unlink_req(lp, r);
    r->wloop = NULL;
    r->unwait = NULL;
    r->E->io_waiters--;
    ta_push_weak(L, lp->E, r->fref);
    ta_weak_unref(L, lp->E, r->fref); /* done with it: the id may serve again */
    r->fref = LUA_NOREF;
    if (r->notify_only) {
      r->wake = NULL; /* the holder delivers it */
      if (ta_future_pending(L, -1)) ta_future_settle(L, (ta_future *)lua_touserdata(L, -1), top + 1, 0);
    } else if (!ta_future_pending(L, -1)) {
      ta_ioreq_abandon(r); /* its results go nowhere */
    } else {
      int n = ta_ioreq_results(L, r);
      ta_future_settle(L, (ta_future *)lua_touserdata(L, top + 1), top + 1, n < 0 ? -1 : n);
    }
    lua_settop(L, top);
  }
}

void ta_aio_io_release(ta_loop *lp) {
  while (lp->io_reqs != NULL) {
    ta_ioreq *r = lp->io_reqs;
    if (r->notify_only) { /* its holder may still deliver it */
      aio_unwait(r);
      r->unwait = NULL;
      r->wake = NULL;
    } else {
      ta_ioreq_abandon(r);
    }
  }
  lp->io_done = NULL;
}

/* A new Future of the loop at 1 that waits for the request at 2. */
static int watch(lua_State *L, const char *fname, int notify_only) {
  ta_engine *E = ta_upengine(L);
  ta_loop *lp = (ta_loop *)ta_checkudata(L, E, 1, TA_MT_LOOP);
  ta_ioreq *r = ta_ioreq_check(L, 2);
  luaL_argcheck(L, r != NULL && r->state != TA_IOREQ_NEW && r->wake == NULL && r->wloop == NULL, 2,
                "a started request nobody waits for expected");
  if (lp->closed) return ta_error(L, "RuntimeError", "%s: Event loop is closed", fname);
  lua_settop(L, 2);
  ta_future_push_new(L, 1);
  if (!notify_only) { /* the Future holds the request */
    ta_push_weak_keyed(L, &holder_key);
    lua_pushvalue(L, 3);
    lua_pushvalue(L, 2);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  r->notify_only = (unsigned char)notify_only;
  lua_pushvalue(L, 3);
  r->fref = ta_weak_ref(L, E);
  r->wloop = lp;
  r->wake = aio_wake;
  r->unwait = aio_unwait;
  r->wprev = NULL;
  r->wnext = lp->io_reqs;
  if (lp->io_reqs != NULL) lp->io_reqs->wprev = r;
  lp->io_reqs = r;
  E->io_waiters++;
  if (r->state == TA_IOREQ_DONE) aio_wake(r);
  return 1;
}

/* io_future(loop, req) -> a Future of loop that the request completes. */
static int l_io_future(lua_State *L) { return watch(L, "io_future", 0); }

/* io_notify(loop, req) -> a Future of loop set (to no value) when the
** request completes; the request's holder delivers it. */
static int l_io_notify(lua_State *L) { return watch(L, "io_notify", 1); }

static const luaL_Reg aio_ioreq_funcs[] = {
  {"io_future", l_io_future},
  {"io_notify", l_io_notify},
  {NULL, NULL}
};

int ta_open_aio_ioreq(lua_State *L) {
  ta_register(L, aio_ioreq_funcs);
  return 0;
}
