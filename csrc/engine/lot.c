/*
** lot.c — the parking lot: a fair FIFO of parked tasks.  Abort simply
** unlinks the task, so every lock, event, condition and channel built on
** it gets correct cancellation for free.
*/
#include "engine/engine.h"

void ta_lot_append(ta_lot *lot, ta_task *t) {
  t->wait_prev = lot->last;
  t->wait_next = NULL;
  if (lot->last) lot->last->wait_next = t;
  else lot->first = t;
  lot->last = t;
  lot->n++;
}

void ta_lot_remove(ta_lot *lot, ta_task *t) {
  if (t->wait_prev) t->wait_prev->wait_next = t->wait_next;
  else lot->first = t->wait_next;
  if (t->wait_next) t->wait_next->wait_prev = t->wait_prev;
  else lot->last = t->wait_prev;
  lot->n--;
  t->wait_prev = t->wait_next = NULL;
}

/* The first waiter, unlinked (the head has no predecessor to fix). */
ta_task *ta_lot_pop(ta_lot *lot) {
  ta_task *t = lot->first;
  if (t == NULL) return NULL;
  lot->first = t->wait_next;
  if (t->wait_next != NULL) t->wait_next->wait_prev = NULL;
  else lot->last = NULL;
  lot->n--;
  t->wait_next = NULL;
  return t;
}

/* A task parked in a lot has the lot in t->wait (NULL once the lot is
** abandoned: then only cancellation wakes it, and there is nothing to unlink). */
static int lot_abort(lua_State *L, ta_task *t) {
  (void)L;
  if (t->wait) ta_lot_remove((ta_lot *)t->wait, t);
  return TA_ABORT_SUCCEEDED;
}

/* The lot's memory is about to go (its owner was collected): its waiters
** stay parked, reachable only by cancellation, and no longer point at it. */
void ta_lot_abandon(ta_lot *lot) {
  ta_task *t;
  while ((t = ta_lot_pop(lot)) != NULL) t->wait = NULL;
}

int ta_lot_park(lua_State *L, ta_task *t, ta_lot *lot) {
  ta_lot_append(lot, t);
  t->wait = lot;
  return ta_park(L, t, lot_abort);
}
