/*
** status.c — the cancel-status tree: the plumbing under CancelScope
** (trio/scope.c), nurseries and the root of a run.
**
** Cancellation is level-triggered: a status is `cancelled` while its scope
** was cancelled, or its parent is cancelled and it is not shielded.  The
** flag is recomputed eagerly down the tree whenever an input changes
** (cancel(), shield, a deadline firing, a scope entered), and each task of a
** status that becomes cancelled gets the cancellation delivered through its
** abort callback if it is parked.  Tasks that are running see the flag at
** their next checkpoint.
*/
#include <math.h>
#include <stdlib.h>

#include "engine/engine.h"

void ta_status_link_task(ta_status *s, ta_task *t) {
  t->status = s;
  TA_LIST_PUSH(s->first_task, t, status_prev, status_next);
}

void ta_status_unlink_task(ta_task *t) {
  ta_status *s = t->status;
  if (s == NULL) return;
  TA_LIST_REMOVE(s->first_task, t, status_prev, status_next);
  t->status = NULL;
}

/* Sets `origin` in the subtree under root, top down (root's parent's is
** right).  A walk along the tree's own links, with no stack: most subtrees
** are one status (a scope entered, a mark on a scope with nothing inside). */
static void refresh_origins(ta_status *root) {
  ta_status *s = root;
  for (;;) {
    s->origin = s->cancel_called && s->cancel_source != TA_CANCEL_BY_PARENT ? s
              : s->parent != NULL ? s->parent->origin : NULL;
    if (s->first_child != NULL) {
      s = s->first_child;
      continue;
    }
    while (s != root && s->next_sibling == NULL) s = s->parent;
    if (s == root) return;
    s = s->next_sibling;
  }
}

void ta_status_link_child(ta_status *parent, ta_status *s) {
  s->parent = parent;
  TA_LIST_PUSH(parent->first_child, s, prev_sibling, next_sibling);
  refresh_origins(s);
}

void ta_status_unlink(ta_status *s) {
  if (s->parent == NULL) return;
  TA_LIST_REMOVE(s->parent->first_child, s, prev_sibling, next_sibling);
  s->parent = NULL;
  refresh_origins(s);
}

/* (a run being abandoned pierces shields once nothing else can end it:
** engine/run.c, abandon_steps) */
static int should_be_cancelled(ta_engine *E, ta_status *s) {
  return s->cancel_called ||
         ((!s->shield || E->pierce_shields) && s->parent != NULL && s->parent->cancelled);
}

/* Statuses still to look at, on a stack of the engine's: the walk down
** the tree is a loop, not a recursion, so any nesting depth fits in the C
** stack (delivering a cancellation can cancel a nursery's scope below,
** which joins the same walk). */
static int push_pending(ta_engine *E, ta_status *s) {
  if (E->nstatus_todo == E->capstatus_todo) {
    size_t cap = E->capstatus_todo ? E->capstatus_todo * 2 : 64;
    ta_status **a = (ta_status **)realloc(E->status_todo, cap * sizeof *a);
    if (a == NULL) return 0;
    E->status_todo = a;
    E->capstatus_todo = cap;
  }
  E->status_todo[E->nstatus_todo++] = s;
  return 1;
}

static void recompute_one(lua_State *L, ta_engine *E, ta_status *s) {
  int now = should_be_cancelled(E, s);
  if (now == s->cancelled) return;
  s->cancelled = (unsigned char)now;
  if (now) {
    ta_task *t = s->first_task, *next;
    for (; t != NULL; t = next) {
      next = t->status_next;
      ta_deliver_cancel(L, t);
    }
  }
  for (ta_status *c = s->first_child; c != NULL; c = c->next_sibling)
    if (!push_pending(E, c)) recompute_one(L, E, c); /* no memory: recurse */
}

void ta_status_recompute(lua_State *L, ta_engine *E, ta_status *s) {
  if (E->recomputing) { /* inside the walk: it gets there, if it changes */
    /* (an unchanged status is not pushed: a redelivery walk would deliver
    ** to its tasks again, and a nursery's waiting parent, whose abort
    ** cancels the nursery's own status, would be asked for ever) */
    if (should_be_cancelled(E, s) != s->cancelled && !push_pending(E, s)) recompute_one(L, E, s);
    return;
  }
  E->recomputing = 1;
  recompute_one(L, E, s);
  while (E->nstatus_todo > 0) recompute_one(L, E, E->status_todo[--E->nstatus_todo]);
  E->recomputing = 0;
}

/* A delivery that failed (not enough memory) left a parked task of a
** cancelled status untold: the whole tree under s is walked again, top
** down, every flag recomputed and the cancellation delivered to every
** parked task under a cancelled status. */
void ta_status_redeliver(lua_State *L, ta_engine *E, ta_status *s) {
  E->redeliver = 0;
  E->nstatus_todo = 0;
  E->recomputing = 1;
  if (!push_pending(E, s)) goto later;
  while (E->nstatus_todo > 0) {
    ta_status *x = E->status_todo[--E->nstatus_todo];
    x->cancelled = (unsigned char)should_be_cancelled(E, x);
    if (x->cancelled) {
      ta_task *t = x->first_task, *next;
      for (; t != NULL; t = next) {
        next = t->status_next;
        ta_deliver_cancel(L, t);
      }
    }
    for (ta_status *c = x->first_child; c != NULL; c = c->next_sibling)
      if (!push_pending(E, c)) goto later;
  }
  E->recomputing = 0;
  return;
later:
  E->nstatus_todo = 0;
  E->recomputing = 0;
  E->redeliver = 1;
}

/* Sets cancel_called, recording why if it is the first time.  (A mark
** TA_CANCEL_BY_PARENT leaves every origin as it was.) */
void ta_status_mark_cancelled(ta_status *s, int source) {
  if (s->cancel_called) return;
  s->cancel_called = 1;
  s->cancel_source = (unsigned char)source;
  if (source != TA_CANCEL_BY_PARENT) refresh_origins(s);
}

void ta_status_cancel(lua_State *L, ta_engine *E, ta_status *s, int source) {
  ta_status_mark_cancelled(s, source);
  ta_status_recompute(L, E, s);
}

/* Records the details of a cancellation about to happen, unless s was
** cancelled already (the first reason wins): the reason text at
** reason_idx (0: none) and the task it comes from (NULL: none), as its
** tostring (Trio keeps the task's repr, not the task).  May raise (not
** enough memory): call it before ta_status_cancel. */
void ta_status_set_reason(lua_State *L, ta_status *s, int reason_idx, ta_task *from) {
  if (s->cancel_called || s->reason_ref != 0) return;
  if (reason_idx != 0) reason_idx = lua_absindex(L, reason_idx);
  lua_createtable(L, 0, 2);
  if (reason_idx != 0) {
    lua_pushvalue(L, reason_idx);
    lua_setfield(L, -2, "reason");
  }
  if (from != NULL) {
    ta_push_task(L, from);
    luaL_tolstring(L, -1, NULL);
    lua_setfield(L, -3, "source_task");
    lua_pop(L, 1);
  }
  s->reason_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void ta_status_release_reason(lua_State *L, ta_status *s) {
  if (s->reason_ref == 0) return;
  luaL_unref(L, LUA_REGISTRYINDEX, s->reason_ref);
  s->reason_ref = 0;
}

/* -inf when already cancelled, else the nearest deadline up to a shield. */
double ta_effective_deadline(ta_status *s) {
  double d = HUGE_VAL;
  for (; s != NULL; s = s->parent) {
    if (s->cancelled) return -HUGE_VAL;
    if (s->deadline < d) d = s->deadline;
    if (s->shield) break;
  }
  return d;
}

/* Takes st out of the tree, handing its tasks and child statuses to
** parent (normally only the owner task is left; the rest happens only when
** a coroutine was killed inside the scope). */
void ta_status_detach(ta_status *st, ta_status *parent) {
  while (st->first_task) {
    ta_task *t = st->first_task;
    ta_status_unlink_task(t);
    ta_status_link_task(parent, t);
  }
  while (st->first_child) {
    ta_status *c = st->first_child;
    ta_status_unlink(c);
    ta_status_link_child(parent, c);
  }
  ta_status_unlink(st);
}
