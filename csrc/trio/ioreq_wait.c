/*
** ioreq_wait.c — a Trio task waiting for a request of the I/O layer (io.h):
** a file operation, a job on a worker thread, a child's exit.  The task
** parks; the request's completion (a libuv callback) reschedules it, and
** the continuation, back in Lua, takes the results.
**
** Cancellation: a cancellable wait abandons the request and raises
** Cancelled at once (the operation ends on its own and its results are
** dropped); otherwise the task keeps waiting, gets the results, and sees
** the cancellation at its next checkpoint (as Trio's to_thread.run_sync
** without abandon_on_cancel, and its file methods, do).
*/
#include "trio/trio.h"

static void trio_wake(ta_ioreq *r) {
  ta_task *t = (ta_task *)r->waiter;
  r->E->io_waiters--;
  r->wake = NULL;
  ta_reschedule(t, 0, 0);
}

static int abort_cancellable(lua_State *L, ta_task *t) {
  ta_ioreq *r = (ta_ioreq *)t->wait;
  (void)L;
  r->E->io_waiters--;
  ta_ioreq_abandon(r);
  return TA_ABORT_SUCCEEDED;
}

static int abort_wait_on(lua_State *L, ta_task *t) {
  (void)L;
  (void)t;
  return TA_ABORT_FAILED;
}

static int io_wait_k(lua_State *L, int status, lua_KContext ctx) {
  ta_task *t = (ta_task *)ctx;
  ta_ioreq *r;
  (void)status;
  if (t->resume_error) {
    t->resume_error = 0;
    return lua_error(L);
  }
  r = ta_ioreq_check(L, 1);
  if (r == NULL) return luaL_error(L, "io_wait: the request was abandoned");
  lua_settop(L, 1);
  return ta_ioreq_deliver(L, r);
}

/* io_wait(req [, cancellable]) -> the request's results: Trio-flavored. */
static int l_io_wait(lua_State *L) {
  ta_ioreq *r = ta_ioreq_check(L, 1);
  int cancellable = lua_toboolean(L, 2);
  ta_task *t = ta_async_check(L, "io_wait", TA_TRIO);
  luaL_argcheck(L, r != NULL && r->state != TA_IOREQ_NEW && r->wake == NULL, 1,
                "a started request nobody waits for expected");
  lua_settop(L, 1);
  if (r->state == TA_IOREQ_DONE) return ta_ioreq_deliver(L, r);
  r->wake = trio_wake;
  r->waiter = t;
  t->wait = r;
  r->E->io_waiters++;
  return ta_park_k(L, t, cancellable ? abort_cancellable : abort_wait_on, io_wait_k);
}

static const luaL_Reg ioreq_wait_funcs[] = {
  {"io_wait", l_io_wait},
  {NULL, NULL}
};

int ta_open_trio_ioreq(lua_State *L) {
  ta_register(L, ioreq_wait_funcs);
  return 0;
}
