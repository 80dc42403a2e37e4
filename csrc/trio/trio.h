/*
** trio.h — the Trio layer: cancel scopes, nurseries, channels, time,
** trio.lowlevel and fd waits.  Built on engine/ and io/; knows nothing of
** asyncio.
*/
#ifndef TA_TRIO_H
#define TA_TRIO_H

#include "engine/engine.h"
#include "io/io.h"

typedef struct ta_scope ta_scope;
typedef struct ta_nursery ta_nursery;

struct ta_scope {
  ta_status st;
  ta_engine *E;
  ta_timer timer;     /* deadline, in the heap while entered and finite */
  int state;          /* 0 new, 1 entered, 2 exited */
  int cancelled_caught;
  ta_task *owner;     /* task that entered it */
  double relative;    /* relative deadline until entered (HUGE_VAL: none) */
};

ta_scope *ta_scope_new(lua_State *L, ta_engine *E, double deadline, int shield);
void ta_scope_enter(lua_State *L, ta_scope *sc, ta_task *t);
int ta_scope_exit(lua_State *L, ta_scope *sc);

struct ta_nursery {
  ta_engine *E;
  ta_task *first_child;
  int nchildren;
  ta_task *waiter;          /* parent task waiting in nursery_wait */
  ta_task *parent_task;
  ta_nursery *next_open, *prev_open; /* the engine's open nurseries */
  ta_scope *scope;
  ta_nursery *target;       /* nursery:start's own nursery: where started() moves the task */
  int ref;                  /* registry ref while open */
  int closed;
};

/* The kind of every Trio task: the main task of a run, system tasks and
** the children of nurseries. */
extern const ta_task_kind ta_trio_task_kind;

void ta_push_nursery(lua_State *L, ta_nursery *n);
void ta_nursery_start_soon(lua_State *L, ta_engine *E, int fnidx);
void ta_break_lots_of(lua_State *L, ta_task *t);

int ta_open_scope(lua_State *L);
int ta_open_nursery(lua_State *L);
int ta_open_parking_lot(lua_State *L);
int ta_open_channel(lua_State *L);
int ta_open_time(lua_State *L);
int ta_open_lowlevel(lua_State *L);
int ta_open_trio_run(lua_State *L);
int ta_open_fdwait(lua_State *L);
int ta_open_trio_socket(lua_State *L);
int ta_open_trio_ioreq(lua_State *L);

#endif
