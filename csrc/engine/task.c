/*
** task.c — tasks: one Lua thread each, tagged with a flavor.
**
** How a task moves: ta_spawn creates it RUNNABLE on the run queue; the
** scheduler resumes it (ta_step_task); an async primitive suspends it only
** through ta_park (PARKED, with an abort callback) or ta_schedule_point
** (RUNNABLE again at once).  Both set `trap` just before lua_yieldk, so a
** yield that did not come from us (a raw coroutine.yield) is recognised and
** turned into an error instead of a hang.  Whoever wakes a parked task
** pushes the resume values on its thread and calls ta_reschedule.
*/
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define engine_of(L) ta_upengine(L)

/* The running task, if L is its own thread.  O(1): only one task runs. */
ta_task *ta_current(lua_State *L) {
  ta_engine *E = engine_of(L);
  ta_task *t = E ? E->current : NULL;
  return (t != NULL && (t->co == L || E->curL == L)) ? t : NULL;
}

/* Explicit names (task.name = ...) live in a weak table: most tasks are
** named after their function, found on their own thread, which keeps the
** task object small. */
static const char names_key = 'N';

static void push_names(lua_State *L) {
  ta_push_weak_keyed(L, &names_key);
}

/* task.custom_sleep_data (Trio's): values by task object, valid while the
** task's sleep_data flag is set; making the task runnable clears the flag
** (the stale value goes with the next set or with the task). */
static char sleep_data_key;

/* Pushes the function the task runs.  A copy of it sits at the base of
** the task's thread below the running call (ta_task_init puts it there),
** so it is found also once the task has finished; a task that failed
** still has its frames, and the bottom one is its function. */
static void push_thread_function(lua_State *L, lua_State *co) {
  lua_Debug ar;
  int level = 0;
  while (lua_getstack(co, level, &ar)) level++;
  if (level == 0) {
    lua_pushvalue(co, 1);
  } else {
    lua_getstack(co, level - 1, &ar);
    lua_getinfo(co, "f", &ar);
  }
  lua_xmove(co, L, 1);
}

/* ... or, once it has exited, the function kept in its user value.  The
** task object must be at idx (0: pushed from its reference). */
static void push_task_function(lua_State *L, ta_task *t, int idx) {
  if (t->co != NULL) {
    push_thread_function(L, t->co);
    return;
  }
  if (idx) lua_pushvalue(L, idx);
  else ta_push_task(L, t);
  if (lua_isnil(L, -1)) return;
  lua_getiuservalue(L, -1, TA_UV_THREAD);
  lua_replace(L, -2);
}

/* Pushes and returns the task's name: explicit, or "file:line" of its
** function. The task userdata must be at `idx` (0: push it from the ref). */
static const char *task_name_at(lua_State *L, ta_task *t, int idx) {
  lua_Debug ar;
  if (idx || !t->objectless) { /* (only an object can have been named) */
    push_names(L);
    if (idx) lua_pushvalue(L, idx);
    else ta_push_task(L, t);
    lua_rawget(L, -2);
    lua_replace(L, -2);
    if (lua_type(L, -1) == LUA_TSTRING) return lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  push_task_function(L, t, idx);
  if (lua_type(L, -1) == LUA_TFUNCTION) {
    const char *global;
    lua_pushvalue(L, -1);
    lua_getinfo(L, ">S", &ar);
    /* the runtime's own functions and C functions go by their exported
    ** name (trio.sleep_forever), user functions by their place */
    if (ar.what[0] != 'C' && !ta_own_chunk(ar.source)) {
      lua_pop(L, 1);
      return lua_pushfstring(L, "%s:%d", ar.short_src, ar.linedefined);
    }
    if ((global = ta_push_function_name(L, -1)) != NULL) {
      lua_replace(L, -2);
      return global;
    }
  }
  lua_pop(L, 1);
  return lua_pushfstring(L, "task-%d", (int)t->id);
}

/* Pushes "module.field" for a function some loaded module exports (as
** luaL_traceback names C functions) and returns it; NULL, nothing pushed,
** when none does.  Used for tasks whose body is a C function. */
const char *ta_push_function_name(lua_State *L, int fidx) {
  int found = 0;
  fidx = lua_absindex(L, fidx);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1)) {
      /* the public modules' names win over the core module's */
      int core = strcmp(lua_tostring(L, -2), "trio_asyncio.core") == 0;
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, fidx) && !(core && found)) {
          lua_pushfstring(L, "%s.%s", lua_tostring(L, -4), lua_tostring(L, -2));
          if (found) lua_replace(L, -7);
          else lua_insert(L, -6);
          found = 1;
          if (!core) {
            lua_pop(L, 5);
            return lua_tostring(L, -1);
          }
        }
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return found ? lua_tostring(L, -1) : NULL;
}

/* A name its kind knows (an asyncio Task's set_name) wins over its
** function's place. */
const char *ta_task_name(lua_State *L, ta_task *t) {
  const char *name = t->kind->name != NULL ? t->kind->name(L, t, 0) : NULL;
  return name != NULL ? name : task_name_at(L, t, 0);
}

const char *ta_flavor_name(int flavor) {
  return flavor == TA_TRIO ? "trio" : flavor == TA_ASYNCIO ? "asyncio" : "allow_asyncio";
}

/* True for chunks of the runtime's own Lua face: lua/trio.lua, the trio and
** asyncio folders, lua/asyncio.lua, lua/trio_asyncio.lua, installed or not. */
static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

int ta_own_chunk(const char *src) {
  static const char *const files[] = {"trio.lua", "asyncio.lua", "trio_asyncio.lua", NULL};
  if (strstr(src, "/trio/") != NULL || strstr(src, "/asyncio/") != NULL) return 1;
  for (int i = 0; files[i]; i++) {
    size_t n = strlen(src), m = strlen(files[i]);
    /* the file itself, not one whose name merely ends the same way */
    if (ends_with(src, files[i]) && (n == m + 1 || src[n - m - 1] == '/')) return 1;
  }
  return 0;
}

/* Pushes "file:line" of the user code that made the call: the first Lua
** frame that is not part of the runtime itself. */
static const char *push_call_site(lua_State *L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0 && !ta_own_chunk(ar.source))
      return lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
  }
  return lua_pushliteral(L, "?");
}

/* The wrong-flavor error, with the phrase the principles text names for
** that direction first (DESIGN.md section 5). */
static int flavor_error(lua_State *L, ta_task *t, const char *fname, int want) {
  const char *where, *name;
  where = push_call_site(L);
  name = ta_task_name(L, t);
  if (want == TA_TRIO)
    return ta_error(L, "FlavorError",
                    "Task got bad yield: trio-flavored %s called from %s task '%s' (%s); "
                    "wrap it with trio_asyncio.trio_as_aio",
                    fname, ta_flavor_name(t->flavor), name, where);
  return ta_error(L, "FlavorError",
                  "trio.run received unrecognized yield message: asyncio-flavored %s called "
                  "from %s task '%s' (%s); wrap it with trio_asyncio.aio_as_trio",
                  fname, ta_flavor_name(t->flavor), name, where);
}

/* The running task of that flavor, for a function that needs one but does
** not suspend (current_task works in a sort comparator, as in Trio); raises
** a clear error naming `fname` when there is none or the flavor is wrong. */
static inline ta_task *task_check(lua_State *L, ta_engine *E, const char *fname, int flavor) {
  ta_task *t = E->current; /* ta_current, with the engine found once */
  if (t != NULL && t->co != L && E->curL != L) t = NULL;
  if (t == NULL) {
    if (!E->running)
      luaL_error(L, "%s: async function called outside trio.run (no task is running); "
                    "call it from inside a task", fname);
    luaL_error(L, "%s: async function called from a plain Lua coroutine inside a task; "
                  "only the task's own coroutine may suspend (spawn a task with "
                  "nursery:start_soon instead)", fname);
  }
  if (!(t->flavor & flavor)) flavor_error(L, t, fname, flavor);
  return t;
}

ta_task *ta_task_check(lua_State *L, const char *fname, int flavor) {
  return task_check(L, engine_of(L), fname, flavor);
}

/* Every async primitive starts here (through ta_async_check_in, engine.h,
** when its inline test does not pass): ta_task_check, and the task must be
** able to suspend.  Refused before anything is queued or parked: a failed
** yield would leave the task scheduled twice. */
ta_task *ta_async_check_full(lua_State *L, ta_engine *E, const char *fname, int flavor) {
  ta_task *t = task_check(L, E, fname, flavor);
  if (!lua_isyieldable(L))
    ta_error(L, "RuntimeError",
             "%s: cannot suspend the task here: called from inside a C function that cannot "
             "yield (a table.sort comparator, a string.gsub callback, a metamethod, a "
             "finalizer or an instrument hook); call it outside that callback", fname);
  return t;
}

/* ---- creating tasks ---- */

/* ---- the task slab ----
** The struct of a task ta_spawn makes lives in a slot of its engine's
** slab, not in a Lua object: most Trio tasks never reach Lua code, and
** for them a userdata was a fifth of a task's cost (making, collecting
** and freeing it, W1 spawn).  Their anchor holds their thread.  The first
** push of the task (ta_push_task) makes its object: a userdata holding a
** pointer to the slot, anchored instead of the thread, which it holds in
** its user value.  The slot of a task without object is free once the
** batch that saw its exit is over (as its anchor's slot is emptied: no
** one holds the task any more, C code that held it while it ran, such as
** the run queue, has let go by then); an object owns the slot of its
** task once it has exited, and frees it when collected (task_gc). */
enum { TASK_CHUNK_SLOTS = 128 };
typedef struct task_chunk {
  struct task_chunk *next;
  ta_task slot[TASK_CHUNK_SLOTS];
} task_chunk;

/* The slot for a new task, kept in E->spawn_slot until the task is made:
** a spawn that raises leaves it there for the next one. */
static ta_task *slot_take(lua_State *L, ta_engine *E) {
  ta_task *t = E->spawn_slot;
  if (t != NULL) return t;
  if (E->free_tasks == NULL) {
    task_chunk *c = (task_chunk *)malloc(sizeof *c);
    if (c == NULL) luaL_error(L, "spawn: not enough memory");
    c->next = (task_chunk *)E->task_chunks;
    E->task_chunks = c;
    for (int i = TASK_CHUNK_SLOTS - 1; i >= 0; i--) {
      c->slot[i].free_next = E->free_tasks;
      E->free_tasks = &c->slot[i];
    }
  }
  t = E->free_tasks;
  E->free_tasks = t->free_next;
  E->spawn_slot = t;
  return t;
}

/* The slots of the tasks that exited without an object during the batch
** form a ring: E->exited_tasks is the newest, whose free_next is the
** oldest, so that the end of the batch frees them all at once, oldest
** first, without a walk over the slab (a cache miss a task in W1 spawn). */
static void slot_exited(ta_engine *E, ta_task *t) {
  ta_task *newest = E->exited_tasks;
  if (newest == NULL) {
    t->free_next = t;
  } else {
    t->free_next = newest->free_next;
    newest->free_next = t;
  }
  E->exited_tasks = t;
}

/* ... free now (from ta_flush_unanchors). */
void ta_task_slots_flush(ta_engine *E) {
  ta_task *newest = E->exited_tasks;
  if (newest == NULL) return;
  E->exited_tasks = NULL;
  ta_task *oldest = newest->free_next;
  newest->free_next = E->free_tasks;
  E->free_tasks = oldest;
}

/* With the engine: every slot, in use or not. */
void ta_task_slab_free(ta_engine *E) {
  task_chunk *c = (task_chunk *)E->task_chunks;
  while (c != NULL) {
    task_chunk *next = c->next;
    free(c);
    c = next;
  }
  E->task_chunks = NULL;
  E->free_tasks = E->exited_tasks = E->spawn_slot = NULL;
}

/* A collected task object gives back the slot of its task, which has
** exited: an object of a live task is anchored, unless the engine is
** closing (lua_close), when the slab goes as a whole. */
static int task_gc(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  ta_task **p = (ta_task **)lua_touserdata(L, 1);
  ta_task *t = *p;
  *p = NULL;
  if (t != NULL && !E->closing && t->state == TA_DONE) {
    t->free_next = E->free_tasks;
    E->free_tasks = t;
  }
  return 0;
}

/* Makes the object of task t, which is alive and has none (its anchor
** holds its thread), and pushes it: anchored instead of the thread, which
** goes into its user value.  Nothing after lua_newuserdatauv allocates. */
static void make_object(lua_State *L, ta_task *t) {
  ta_engine *E = t->E;
  ta_task **p = (ta_task **)lua_newuserdatauv(L, sizeof *p, TA_TASK_NUV);
  *p = t;
  ta_setmetatable(L, E, TA_MT_TASK);
  ta_push_anchored(L, E, t->ref);
  lua_setiuservalue(L, -2, TA_UV_THREAD);
  ta_reanchor(L, E, t->ref, -1);
  t->thread_uv = TA_UV_THREAD;
  t->objectless = 0;
}

/* Pushes the task's object: an anchored task while alive (afterwards
** nil); one anchored by its holders while that object lives.  The object
** of a task ta_spawn made is made here, when it first reaches code that
** may look at it: most Trio tasks never do. */
void ta_push_task(lua_State *L, ta_task *t) {
  if (!t->kind->anchored) {
    ta_push_weak(L, t->E, t->ref);
  } else if (t->objectless && t->ref != LUA_NOREF) {
    make_object(L, t);
  } else {
    ta_push_anchored(L, t->E, t->ref);
  }
}

/* Whether the task's object can still be pushed by ta_push_task: an
** anchored task while alive, another while its weak id lasts (until its
** object is finalized, or the end of its exit: ref_ends_at_exit). */
int ta_task_alive(ta_task *t) {
  return t->ref != LUA_NOREF;
}

/* A task at idx: a task object, or an object that holds one (an asyncio
** Task, registered with ta_task_class). */
ta_task *ta_checktask(lua_State *L, int idx) {
  void *p;
  const void *mt = ta_udata_mt(L, idx, &p);
  ta_engine *E = ta_engine_get(L);
  if (mt != NULL && mt == E->mt[TA_MT_TASK]) {
    ta_task *t = *(ta_task **)p;
    if (t == NULL) luaL_argerror(L, idx, "task object already finalized");
    return t;
  }
  if (mt != NULL) {
    for (int i = 0; i < TA_NMT; i++)
      if (mt == E->mt[i] && E->task_offset[i] >= 0)
        return (ta_task *)((char *)p + E->task_offset[i]);
  }
  luaL_typeerror(L, idx, "task");
  return NULL;
}

/* A new task gets its spawner's debug hook, so coverage tools and
** debuggers see task code: the C hook, and the Lua function that
** debug.sethook keeps for the spawner's thread (ldblib's _HOOKKEY table). */
static void inherit_hook(lua_State *L, lua_State *co) {
  lua_sethook(co, lua_gethook(L), lua_gethookmask(L), lua_gethookcount(L));
  if (lua_getfield(L, LUA_REGISTRYINDEX, "_HOOKKEY") == LUA_TTABLE) {
    lua_pushthread(L);
    if (lua_rawget(L, -2) != LUA_TNIL) {
      lua_pushthread(co);
      lua_xmove(co, L, 1);
      lua_insert(L, -2);
      lua_rawset(L, -3);
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

/* A sleeping task's timer fired: it wakes. */
void ta_sleep_timer_fired(lua_State *L, ta_engine *E, ta_timer *tm) {
  (void)L;
  (void)E;
  ta_reschedule((ta_task *)((char *)tm - offsetof(ta_task, timer)), 0, 0);
}

/* Fills in task t, part of the userdata on top of the stack, to run fn (at
** fnidx, an absolute index, followed by nargs arguments); it is not
** scheduled anywhere yet.
** Its thread goes into user value thread_uv of that userdata (0: for a
** task in the slab, with no object yet: the thread is anchored and
** popped, nothing is on the stack for the task).  The new
** task starts with its spawner's context (shared until written:
** copy-on-write).  A task whose kind is not anchored is part of an object
** anchored by whoever holds it, not by the engine.  keepidx (0: none) is a
** value the thread keeps alive while it runs, at its base (an asyncio
** Task's loop: one user value less); the kind's exited hook then puts
** what the task object keeps instead of the thread in its user value. */
void ta_task_init(lua_State *L, ta_engine *E, ta_task *t, int fnidx, int nargs, int flavor,
                  ta_task *parent, const ta_task_kind *kind, int thread_uv, int keepidx) {
  lua_State *co;
  memset(t, 0, kind->compact ? TA_TASK_COMPACT_SIZE : sizeof *t);
  t->E = E;
  t->kind = kind;
  t->ref = LUA_NOREF;
  t->ctx_ref = LUA_NOREF;
  if (!kind->compact) t->abort_ref = LUA_NOREF;
  ta_timer_init(&t->timer, ta_sleep_timer_fired);
  t->flavor = (unsigned char)flavor;
  t->thread_uv = (unsigned char)thread_uv;
  t->id = ++E->next_id;
  /* (a new thread has room for LUA_MINSTACK values, and a C function on
  ** L for LUA_MINSTACK pushes: the task's and its thread, 3 more, the
  ** arguments) */
  if (nargs + 5 > LUA_MINSTACK && !lua_checkstack(L, nargs + 5))
    luaL_error(L, "spawn: too many arguments");
  co = lua_newthread(L);
  if (lua_gethook(L) != NULL) inherit_hook(L, co);
  if (nargs + 3 > LUA_MINSTACK && !lua_checkstack(co, nargs + 3))
    luaL_error(L, "spawn: too many arguments");
  if (parent != NULL && parent->ctx_ref != LUA_NOREF) {
    t->ctx_ref = parent->ctx_ref;
    ta_shared_ref_hold(E, t->ctx_ref);
    parent->ctx_owned = 0; /* shared now: the spawner copies on its next write */
  } else if (parent == NULL && E->run_ctx_ref != LUA_NOREF) {
    /* the main task, system tasks, tasks started from callbacks: the
    ** context the run started in (shared, copied on write) */
    t->ctx_ref = E->run_ctx_ref;
    ta_shared_ref_hold(E, t->ctx_ref);
  }
  lua_pushvalue(L, fnidx); /* the copy at the thread's base: see push_thread_function */
  if (keepidx) { /* above it: index 1 stays the copy */
    lua_pushvalue(L, keepidx);
    t->keeps = 1;
  }
  lua_pushvalue(L, fnidx);
  for (int i = 1; i <= nargs; i++) lua_pushvalue(L, fnidx + i);
  lua_xmove(L, co, (keepidx ? 3 : 2) + nargs); /* all at once */
  if (thread_uv) lua_setiuservalue(L, -2, thread_uv);
  t->co = co;
  t->nargs = nargs;
  if (!kind->anchored) {
    t->ref = ta_weak_ref_at(L, E, -1);
    E->nunanchored++;
  } else {
    t->ref = ta_anchor(L, E, -1);
    E->ntasks++;
    if (!thread_uv) lua_pop(L, 1);
  }
  if (E->gc_stress) lua_gc(L, LUA_GCSTEP, 0);
}

/* Spawns a task of the given kind (anchored), scheduled by the engine, in
** cancel status st, in a slot of the task slab; the caller links it to its
** owner before anything can run.  It has no object yet: a caller that
** hands it to Lua pushes it with ta_push_task. */
ta_task *ta_spawn(lua_State *L, ta_engine *E, int fnidx, int nargs, int flavor,
                  const ta_task_kind *kind, ta_status *st, ta_task *parent) {
  ta_task *t = slot_take(L, E);
  ta_task_init(L, E, t, fnidx > 0 ? fnidx : lua_absindex(L, fnidx), nargs, flavor, parent, kind, 0, 0);
  E->spawn_slot = NULL;
  t->objectless = 1;
  ta_status_link_task(st, t);
  t->state = TA_RUNNABLE;
  ta_runq_push(E, t);
  if (ta_hooked(E)) {
    ta_hook(L, E, "task_spawned", t);
    ta_hook(L, E, "task_scheduled", t);
  }
  return t;
}

/* ---- suspending and waking ---- */

static int resume_k(lua_State *L, int status, lua_KContext ctx) {
  ta_task *t = (ta_task *)ctx;
  (void)status;
  if (t->resume_error) {
    t->resume_error = 0;
    return lua_error(L);
  }
  return lua_gettop(L) - t->kbase;
}

/* The one choke point for blocking: park t until someone reschedules it.
** If cancellation is already pending it is delivered through `abort` at
** once (level-triggered), so the wait ends with Cancelled.  (Inline in
** both entry points: a call less on each park, twice a W2 round trip.) */
static inline int park(lua_State *L, ta_task *t, ta_abort_fn abort, lua_KFunction k) {
  t->state = TA_PARKED;
  t->abort = abort;
  t->trap = 1;
  t->kbase = lua_gettop(L);
  if (ta_cancel_pending(t)) ta_cancel_on_yield(t);
  return lua_yieldk(L, 0, (lua_KContext)t, k);
}

int ta_park_k(lua_State *L, ta_task *t, ta_abort_fn abort, lua_KFunction k) {
  return park(L, t, abort, k);
}

int ta_park(lua_State *L, ta_task *t, ta_abort_fn abort) {
  return park(L, t, abort, resume_k);
}

/* A schedule point without a cancellation check: back to the run queue.
** The top nret values of the stack are returned after it: they are what
** the task is resumed with (nothing else resumes a task that is runnable),
** and a yield without a continuation returns those, which saves calling
** one (per send and receive on a channel).  (Inline in both entry points,
** as park.) */
static inline int schedule_point(lua_State *L, ta_task *t, int nret) {
  t->state = TA_RUNNABLE;
  t->trap = 1;
  t->nargs = nret;
  ta_runq_push(t->E, t);
  return lua_yieldk(L, 0, 0, NULL);
}

int ta_schedule_point_ret(lua_State *L, ta_task *t, int nret) {
  return schedule_point(L, t, nret);
}

/* The same, continued by k (it gets the task as context; t->kbase marks
** where the nret values begin). */
int ta_schedule_point_k(lua_State *L, ta_task *t, int nret, lua_KFunction k) {
  t->state = TA_RUNNABLE;
  t->trap = 1;
  t->kbase = lua_gettop(L) - nret;
  ta_runq_push(t->E, t);
  return lua_yieldk(L, 0, (lua_KContext)t, k);
}

/* A task suspends to whoever drives it (an asyncio Task to its loop, which
** looks at t->wait); k (NULL: the usual one) gets the task as context. */
int ta_task_yield(lua_State *L, ta_task *t, int nret, lua_KFunction k) {
  t->state = TA_PARKED;
  t->trap = 1;
  t->kbase = lua_gettop(L) - nret;
  return lua_yieldk(L, 0, (lua_KContext)t, k ? k : resume_k);
}

int ta_no_results_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L;
  (void)status;
  (void)ctx;
  return 0;
}

int ta_schedule_point(lua_State *L, ta_task *t) {
  return schedule_point(L, t, 0);
}

/* Trio's checkpoint: a schedule point first (the scheduler turns expired
** deadlines into cancellation), then the cancellation check. */
static int checkpoint_k(lua_State *L, int status, lua_KContext ctx) {
  ta_task *t = (ta_task *)ctx;
  (void)status;
  if (ta_cancel_pending(t)) ta_raise_cancelled(L);
  return lua_gettop(L) - t->kbase;
}

/* ... returning the top nret values of the stack after it.  (Inline in
** both entry points: trio.sleep(0) is W1's one checkpoint.) */
static inline int checkpoint(lua_State *L, ta_task *t, int nret) {
  t->state = TA_RUNNABLE;
  t->trap = 1;
  t->kbase = lua_gettop(L) - nret;
  ta_runq_push(t->E, t);
  if (ta_hooked(t->E)) ta_hook(L, t->E, "task_scheduled", t);
  return lua_yieldk(L, 0, (lua_KContext)t, checkpoint_k);
}

int ta_checkpoint_ret(lua_State *L, ta_task *t, int nret) {
  return checkpoint(L, t, nret);
}

int ta_checkpoint(lua_State *L, ta_task *t) {
  return checkpoint(L, t, 0);
}

/* The caller has already unlinked t from what it waited on and pushed
** `nvalues` resume values (or one error value) on t->co. */
void ta_reschedule(ta_task *t, int nvalues, int is_error) {
  ta_engine *E = t->E;
  if (t->state == TA_DONE) return; /* a stale wake-up: nothing to resume */
  t->state = TA_RUNNABLE;
  t->abort = NULL;
  t->wait = NULL;
  t->nargs = nvalues;
  t->resume_error = is_error != 0;
  if (t->queued) return; /* already scheduled: instruments heard of it then */
  ta_runq_push(E, t);
  if (ta_hooked(E) && E->curL != NULL && !E->in_io_wait) ta_hook(E->curL, E, "task_scheduled", t);
}

static const char *const CANCEL_SOURCES[] = {
  "unknown", "explicit", "deadline", "nursery", "KeyboardInterrupt", "shutdown"
};

/* The Cancelled of status s (NULL: of no cancellation known), with the
** source, reason and source_task of the status whose cancel made it
** cancelled: s itself or, cancelled through its parent, an ancestor (its
** origin: no walk up the tree, which made unwinding D nested nurseries
** cost D^2 steps). */
static void push_cancelled_of(lua_State *L, ta_engine *E, ta_status *s) {
  const char *reason = NULL, *task = NULL;
  int top = lua_gettop(L), source;
  if (s != NULL) s = s->origin;
  source = s != NULL ? s->cancel_source : TA_CANCEL_UNKNOWN;
  if (s != NULL && s->reason_ref != 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->reason_ref);
    lua_getfield(L, -1, "reason");
    lua_getfield(L, -2, "source_task");
    reason = lua_tostring(L, -2);
    task = lua_tostring(L, -1);
  }
  lua_pushfstring(L, "cancelled due to %s", CANCEL_SOURCES[source]);
  if (reason != NULL) lua_pushfstring(L, " with reason '%s'", reason);
  if (task != NULL) lua_pushfstring(L, " from task %s", task);
  lua_concat(L, lua_gettop(L) - top - (s != NULL && s->reason_ref != 0 ? 3 : 0));
  ta_push_error(L, E, "Cancelled", lua_tostring(L, -1));
  if (lua_istable(L, -1)) {
    lua_pushstring(L, CANCEL_SOURCES[source]);
    lua_setfield(L, -2, "source");
    if (reason != NULL) {
      lua_pushstring(L, reason);
      lua_setfield(L, -2, "reason");
    }
    if (task != NULL) {
      lua_pushstring(L, task);
      lua_setfield(L, -2, "source_task");
    }
  }
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
}

void ta_push_cancelled(lua_State *L, ta_task *t) {
  ta_engine *E = t->E;
  if (ta_ki_for(E, t)) {
    E->ki_pending = 0;
    ta_push_error(L, E, "KeyboardInterrupt", "interrupted by Ctrl-C (SIGINT)");
  } else {
    push_cancelled_of(L, E, t->status);
  }
}

/* Cancellation reached t: if it is parked and its abort callback agrees,
** wake it with Cancelled (or KeyboardInterrupt for the main task). */
static int deliver_protected(lua_State *L) {
  ta_task *t = (ta_task *)lua_touserdata(L, 1);
  int ki = ta_ki_for(t->E, t);
  ta_push_cancelled(L, t); /* at 2: made first, see ta_deliver_cancel */
  /* a Ctrl-C stays pending until delivered (abort callbacks look at it) */
  if (ki) t->E->ki_pending = 1;
  if (t->abort(L, t) != TA_ABORT_SUCCEEDED || t->state != TA_PARKED)
    return 0; /* not cancelled, or the abort callback woke it itself */
  if (ki) t->E->ki_pending = 0;
  lua_settop(L, 2); /* (what the abort callback left) */
  ta_reschedule(t, 1, 1);
  return 1; /* the Cancelled, for the task's thread */
}

/* Cancels a parked task through its abort callback.  Never raises: it runs
** inside walks of the status tree that must not stop half-way.  Should it
** fail (not enough memory to make the Cancelled), the task stays parked
** and the next tick delivers again (ta_status_redeliver). */
void ta_deliver_cancel(lua_State *L, ta_task *t) {
  if (t->state != TA_PARKED || t->abort == NULL) return;
  int top = lua_gettop(L);
  lua_pushcfunction(L, deliver_protected);
  lua_pushlightuserdata(L, t);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
    ta_keep_retry_error(L);
    t->E->redeliver = 1;
  } else if (lua_gettop(L) > top) {
    lua_xmove(L, t->co, 1); /* (L may be that thread: then it stays on top) */
  }
}

/* A task parking under a cancelled status is told once it has yielded
** (ta_step_task), still the current task (ta_current answers it on the
** scheduler's thread then), as Trio does.  Not from its own thread: the
** delivery runs in a protected call, a frame of its own, where the abort
** callback would not see the values the task parked with at the base of
** its stack, and what it pushed for the task would be lost. */
void ta_cancel_on_yield(ta_task *t) {
  t->tell_on_yield = 1;
}

void ta_raise_cancelled(lua_State *L) {
  ta_task *t = ta_current(L);
  if (t) ta_push_cancelled(L, t);
  else push_cancelled_of(L, engine_of(L), NULL);
  lua_error(L);
}

/* ---- running and exiting ---- */

/* A task's exit is told (to the run for the main task, to its owner
** through its kind, to instruments) in one of three ways, chosen by
** report_exit; in each the task's error, if any, is on top of L, and what
** is pushed is left for the caller to drop. */

/* What every telling ends with, the task's object at tidx of L: its kind's
** exited hook (not for the main task), instruments, then the thread
** dropped, keeping only its function (for the task's name): the coroutine
** and what it held become collectable even if someone keeps the task
** object. */
static void tell_exit_with_object(lua_State *L, ta_task *t, int tidx, int ok, int nres) {
  ta_engine *E = t->E;
  lua_State *co = t->co;
  if (t != E->main && t->kind->exited != NULL) t->kind->exited(L, t, tidx, ok, nres);
  t->reported = 1;
  if (ta_hooked(E)) {
    ta_push_task(L, t);
    ta_hook_in_task(L, E, t, "task_exited");
  }
  if (t->keeps) return; /* (its kind's exited hook replaced the thread) */
  if (ok) { /* finished: its frames are gone, the copy at the base stays */
    lua_pushvalue(co, 1);
    lua_xmove(co, L, 1);
  } else {
    push_thread_function(L, co);
  }
  lua_setiuservalue(L, tidx, t->thread_uv);
}

/* Any task, its object pushed from objidx of L when its stepper holds it
** there and it finished (a failure's error must lie below the object),
** else from its reference; the engine's anchor, if any, is let go later
** by release_exited.  Used when telling may raise and the failure must be
** caught (in exit_report's protected call: the main task, any task under
** instruments, an anchored task whose kind says its exit may raise), and
** unprotected for a task its holders anchor (an asyncio Task), whose
** failure to tell is raised anyway.  The main task's outcome is kept for
** the end of the run. */
static void tell_exit(lua_State *L, ta_task *t, int ok, int nres, int objidx) {
  ta_engine *E = t->E;
  if (t == E->main) {
    lua_State *co = t->co;
    E->main_ok = ok;
    if (ok) { /* one value at a time: any number of results fits */
      lua_createtable(L, nres, 1);
      for (int i = nres; i >= 1; i--) {
        lua_xmove(co, L, 1);
        lua_rawseti(L, -2, i);
      }
      lua_pushinteger(L, nres);
      lua_setfield(L, -2, "n");
    }
    E->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  if (objidx && ok) lua_pushvalue(L, objidx);
  else ta_push_task(L, t);
  tell_exit_with_object(L, t, lua_gettop(L), ok, nres);
}

/* A task the engine anchors whose object has reached Lua code, when
** telling cannot raise (not the main task, no instruments, its kind says
** so: a Trio child that finished): the engine lets go of it as it pushes
** its object, so release_exited has no anchor left to release. */
static void tell_exit_unanchoring(lua_State *L, ta_task *t, int ok, int nres) {
  ta_push_unanchor(L, t->E, t->ref);
  t->ref = LUA_NOREF;
  tell_exit_with_object(L, t, lua_gettop(L), ok, nres);
}

/* A task the engine anchors whose object never reached Lua code, when
** telling cannot raise (as for tell_exit_unanchoring): now nothing can
** reach it, it keeps neither thread nor function, it is garbage (once the
** end of the batch has emptied its anchor).  Nothing is pushed: its kind's
** exited hook gets tidx 0, and its thread is not dropped from an object
** no one will see. */
static void tell_exit_unseen(lua_State *L, ta_task *t, int ok, int nres) {
  ta_unanchor_later(L, t->E, t->ref);
  t->ref = LUA_NOREF;
  slot_exited(t->E, t); /* (a slab slot: free after the batch) */
  if (t->kind->exited != NULL) t->kind->exited(L, t, 0, ok, nres);
  t->reported = 1;
}

/* exit_report(t, ok, nres [, error]): tell_exit in a protected call. */
static int exit_report(lua_State *L) {
  ta_task *t = (ta_task *)lua_touserdata(L, 1);
  int ok = lua_toboolean(L, 2), nres = (int)lua_tointeger(L, 3);
  lua_rotate(L, 1, -3);
  lua_settop(L, ok ? 0 : 1); /* the error, if any, alone at 1 */
  tell_exit(L, t, ok, nres, 0);
  return 0;
}

/* Tells the task's exit (the error, if any, on top of L, popped); returns
** whether it was told.  When telling raises (not enough memory), the main
** task's run gets that error; another task the engine anchors keeps the
** error on its thread and joins the engine's unreported list: each tick
** tries again (ta_retry_exits), so that its owner is never left waiting;
** for a task its holders anchor (an asyncio Task) the failure is raised.
** objidx: where the task's object is on L, if its stepper holds it there
** (0: it is pushed from its reference). */
static int report_exit(lua_State *L, ta_task *t, int ok, int nres, int objidx) {
  int base = lua_gettop(L) - (ok ? 0 : 1);
  /* No protected call when telling cannot raise (the common exit of a
  ** Trio child that finished: its only news is that it is gone), nor for
  ** a task its holders anchor, whose failure to tell is raised anyway
  ** (below); instruments, called once the exit was told, are protected. */
  if (t != t->E->main && !ta_hooked(t->E) &&
      (!t->kind->anchored ||
       (t->kind->exit_may_raise != NULL && !t->kind->exit_may_raise(t, ok)))) {
    if (!t->kind->anchored) {
      tell_exit(L, t, ok, nres, objidx);
    } else if (t->objectless) {
      tell_exit_unseen(L, t, ok, nres);
      if (lua_gettop(L) == base) return 1; /* (a finished one pushed nothing) */
    } else {
      tell_exit_unanchoring(L, t, ok, nres);
    }
    lua_settop(L, base);
    return 1;
  }
  lua_pushcfunction(L, exit_report);
  lua_pushlightuserdata(L, t);
  lua_pushboolean(L, ok);
  lua_pushinteger(L, nres);
  lua_rotate(L, base + 1, 4); /* the error, if any, after the arguments */
  if (lua_pcall(L, ok ? 3 : 4, 0, 0) == LUA_OK || t->reported) {
    lua_settop(L, base);
    return 1;
  }
  if (t == t->E->main) {
    t->E->main_ok = 0;
    t->E->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, base);
    return 1;
  }
  if (!t->kind->anchored) {
    /* nothing keeps it alive until a retry, and whoever waits for it would
    ** wait for ever: the failure is raised, so that the run is abandoned
    ** (its cancellation reaches the waiters) */
    lua_error(L);
  }
  /* room for the error on the thread: a failed one has the slot its own
  ** error left; a finished one drops its results, lost with the exit */
  if (ok) lua_settop(t->co, 1);
  lua_pushvalue(L, -1);
  ta_keep_retry_error(L);
  lua_xmove(L, t->co, 1);
  lua_settop(L, base);
  t->unreported_next = t->E->unreported;
  t->E->unreported = t;
  return 0;
}

/* What a task holds once its exit was told is let go. */
static void release_exited(lua_State *L, ta_task *t, int ok) {
  ta_engine *E = t->E;
  lua_State *co = t->co;
  /* A coroutine that died with an error keeps its pending to-be-closed
  ** variables until it is closed: close them now (their errors are lost,
  ** the task's own error already went to its owner). */
  if (!ok && lua_status(co) != LUA_OK && lua_status(co) != LUA_YIELD) ta_closethread(co, L);
  lua_settop(co, 0);
  if (t->ctx_ref != LUA_NOREF) {
    ta_shared_unref(L, E, t->ctx_ref);
    t->ctx_ref = LUA_NOREF;
  }
  if (!ta_task_compact(t) && t->abort_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, t->abort_ref);
    t->abort_ref = LUA_NOREF;
  }
  if (!t->kind->anchored) { /* its holder keeps the weak entry until collected... */
    E->nunanchored--;
    if (t->ref_ends_at_exit) { /* ...or, without a finalizer, until now */
      ta_weak_unref_later(L, E, t->ref);
      t->ref = LUA_NOREF;
    }
  } else {
    if (t->ref != LUA_NOREF) ta_unanchor(L, E, t->ref); /* (else it was let go as its exit was told) */
    t->ref = LUA_NOREF;
    E->ntasks--;
    if (t->system_tree) E->nsystem_tree--;
  }
  t->co = NULL;
  /* Its exit is told: the run no longer knows the main task by its slot,
  ** which its collected object gives back and a later spawn may take (that
  ** task's exit was then taken for main's: its nursery never heard it). */
  if (t == E->main) E->main = NULL;
}

/* The task is done: ok with nres results on its thread, or failed with
** the error on top of L (popped); objidx: see report_exit. */
static void task_exit(lua_State *L, ta_task *t, int ok, int nres, int objidx) {
  t->state = TA_DONE;
  if (!ta_task_compact(t)) ta_status_unlink_task(t);
  if (t == t->E->main) t->E->main_done = 1;
  if (report_exit(L, t, ok, nres, objidx)) release_exited(L, t, ok);
}

/* Tells again the exits that could not be told (report_exit).  After
** TA_ABANDON_TRIES ticks that told none, it raises the last failure
** (ta_retry_failed): the run is abandoned rather than spinning, and a
** later start of a run tells them. */
void ta_retry_exits(lua_State *L, ta_engine *E) {
  ta_task *list = E->unreported, *t;
  int told = 0;
  E->unreported = NULL;
  while ((t = list) != NULL) {
    list = t->unreported_next;
    lua_xmove(t->co, L, 1); /* its error */
    if (report_exit(L, t, 0, 1, 0)) {
      release_exited(L, t, 0);
      told = 1;
    }
  }
  ta_retry_failed(L, &E->exit_retries, told || E->unreported == NULL);
}

/* A yield that did not come through ta_park/ta_schedule_point: the task
** yielded something the scheduler does not understand.  It cannot be
** resumed meaningfully, so it fails with a clear error. */
static void foreign_yield(lua_State *L, ta_task *t, int nres) {
  lua_State *co;
  int top = lua_gettop(L);
  int aio = t->flavor == TA_ASYNCIO;
  const char *msg;
  if (nres > 0) { /* the value, to L first: the coroutine is suspended */
    lua_pushvalue(t->co, -nres);
    lua_xmove(t->co, L, 1);
    ta_tostring(L, -1);
    lua_replace(L, -2);
  } else {
    lua_pushliteral(L, "nothing");
  }
  ta_task_name(L, t);
  ta_traceback(L, t->co, NULL, 0);
  msg = lua_pushfstring(L, "%s: raw coroutine.yield of %s from %s task '%s' (only the "
                           "runtime's own async functions may suspend a task)",
                        aio ? "Task got bad yield" : "trio.run received unrecognized yield message",
                        lua_tostring(L, top + 1), aio ? "asyncio" : "trio",
                        lua_tostring(L, top + 2));
  ta_push_error(L, t->E, "FlavorError", msg);
  if (lua_istable(L, -1)) {
    lua_pushvalue(L, top + 3);
    lua_setfield(L, -2, "traceback");
  }
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  co = t->co;
  task_exit(L, t, 0, 0, 0); /* while its frames still tell its function */
  ta_closethread(co, L);
}

/* t is a system task or was spawned under one: at the end of a run it is
** expected to outlive the main task (ta_run_step). */
void ta_task_in_system_tree(ta_task *t) {
  t->system_tree = 1;
  t->E->nsystem_tree++;
}

/* Ends a task that never ran, with the error on top of L (popped). */
void ta_task_fail(lua_State *L, ta_task *t) {
  task_exit(L, t, 0, 1, 0);
}

/* One step of t, whose object its stepper holds at objidx on L (an
** absolute index; 0: nowhere), which saves finding it when t exits. */
void ta_step_task_at(lua_State *L, ta_task *t, int objidx) {
  ta_engine *E = t->E;
  ta_task *prev = E->current;
  lua_State *prevL = E->curL;
  /* (restored after the step, as the running task: a loop whose callbacks
  ** raised out of its driver, not enough memory, leaves none behind) */
  void *prev_loop = E->running_loop;
  int nres = 0, st, nargs = t->nargs, hooked = ta_hooked(E), tidx = 0;
  if (hooked) {
    ta_push_task(L, t); /* keeps it nameable for after_task_step */
    tidx = lua_gettop(L);
    lua_pushvalue(L, tidx);
    ta_hook_in_task(L, E, t, "before_task_step");
  }
  if (E->gc_stress) lua_gc(L, LUA_GCSTEP, 0);
  E->current = t;
  E->curL = t->co;
  t->state = TA_RUNNING;
  t->trap = 0;
  t->nargs = 0;
  st = lua_resume(t->co, L, nargs, &nres);
  E->current = prev;
  E->curL = prevL;
  E->running_loop = prev_loop;
  if (st == LUA_YIELD) {
    if (!t->trap) foreign_yield(L, t, nres);
    else if (t->tell_on_yield) { /* as Trio does: after the yield, the task still current */
      t->tell_on_yield = 0;
      E->current = t;
      E->curL = L;
      ta_deliver_cancel(L, t);
      E->current = prev;
      E->curL = prevL;
    }
  } else if (st == LUA_OK) {
    task_exit(L, t, 1, nres - 1 - t->keeps, objidx); /* lua_resume counts what is at the base */
  } else {
    lua_xmove(t->co, L, 1);
    /* Give error objects the stack they were raised on, if they lack one. */
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_pushliteral(L, "traceback");
      if (lua_rawget(L, -2) == LUA_TNIL) {
        lua_pushliteral(L, "traceback");
        ta_traceback(L, t->co, NULL, 0);
        lua_rawset(L, -4);
      }
      lua_pop(L, 1);
    }
    task_exit(L, t, 0, 1, objidx);
  }
  if (hooked) {
    if (ta_hooked(E)) {
      lua_pushvalue(L, tidx);
      ta_hook_in_task(L, E, t, "after_task_step");
    }
    lua_remove(L, tidx);
  }
}

/* The fields every task shows (name, flavor, id, done, and those of its
** kind): pushes field k of the task t (its object at idx) and returns 1,
** or returns 0 for another key.  asyncio Tasks show them too. */
int ta_task_field(lua_State *L, ta_task *t, int idx, const char *k) {
  if (strcmp(k, "name") == 0) {
    const char *name = t->kind->name != NULL ? t->kind->name(L, t, idx) : NULL;
    if (name == NULL) task_name_at(L, t, idx);
  } else if (strcmp(k, "flavor") == 0) {
    lua_pushstring(L, ta_flavor_name(t->flavor));
  } else if (strcmp(k, "id") == 0) {
    lua_pushinteger(L, t->id);
  } else if (strcmp(k, "done") == 0) {
    lua_pushboolean(L, t->state == TA_DONE);
  } else if (strcmp(k, "custom_sleep_data") == 0) {
    if (!t->sleep_data) {
      lua_pushnil(L);
    } else {
      ta_push_weak_keyed(L, &sleep_data_key);
      if (idx) lua_pushvalue(L, idx);
      else ta_push_task(L, t);
      lua_rawget(L, -2);
      lua_replace(L, -2);
    }
  } else {
    return t->kind->field != NULL && t->kind->field(L, t, idx, k);
  }
  return 1;
}

static int task_index(lua_State *L) {
  ta_task *t = ta_checktask(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (!ta_task_field(L, t, 1, k)) {
    luaL_getmetafield(L, 1, "__methods");
    lua_getfield(L, -1, k);
  }
  return 1;
}

static int task_newindex(lua_State *L) {
  ta_task *t = ta_checktask(L, 1);
  if (strcmp(luaL_checkstring(L, 2), "custom_sleep_data") == 0) {
    lua_settop(L, 3);
    ta_push_weak_keyed(L, &sleep_data_key);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 3);
    lua_rawset(L, -3);
    t->sleep_data = !lua_isnil(L, 3);
    return 0;
  }
  if (strcmp(lua_tostring(L, 2), "name") != 0)
    return luaL_error(L, "task field '%s' is read-only", lua_tostring(L, 2));
  luaL_checkstring(L, 3);
  push_names(L);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 3);
  lua_rawset(L, -3);
  return 0;
}

static int task_tostring(lua_State *L) {
  ta_task *t = ta_checktask(L, 1);
  lua_pushfstring(L, "%s task '", ta_flavor_name(t->flavor));
  lua_getfield(L, 1, "name");
  lua_pushfstring(L, "' (%p)", (void *)t);
  lua_concat(L, 3);
  return 1;
}

/* Task context (for trio.ContextVar): a table shared with the spawner until
** the task writes, then copied (copy-on-write keeps spawning cheap).  It is
** held by a shared reference (one more holder per task sharing it), only
** while the task has one. */
static int ctx_table(lua_State *L, int for_write) {
  ta_engine *E = engine_of(L);
  ta_task *t = E->current;
  if (t == NULL || t->co == NULL) {
    lua_getfield(L, LUA_REGISTRYINDEX, "trio_asyncio.context");
    if (lua_isnil(L, -1) && for_write) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setfield(L, LUA_REGISTRYINDEX, "trio_asyncio.context");
    }
    return lua_istable(L, -1);
  }
  if (t->ctx_ref != LUA_NOREF) lua_rawgeti(L, LUA_REGISTRYINDEX, t->ctx_ref);
  else lua_pushnil(L);
  if (for_write && !t->ctx_owned) {
    lua_newtable(L);
    if (lua_istable(L, -2)) {
      lua_pushnil(L);
      while (lua_next(L, -3)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
      }
    }
    lua_replace(L, -2);
    lua_pushvalue(L, -1);
    ta_shared_unref(L, E, t->ctx_ref);
    t->ctx_ref = ta_shared_ref(L, E);
    t->ctx_owned = 1;
  }
  return lua_istable(L, -1);
}

/* The run starts in a copy of the context outside any task (what
** ContextVar:set did before trio.run); released when the run ends. */
void ta_ctx_capture(lua_State *L, ta_engine *E) {
  ta_ctx_release(L, E);
  if (lua_getfield(L, LUA_REGISTRYINDEX, "trio_asyncio.context") != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, -3)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  E->run_ctx_ref = ta_shared_ref(L, E);
  lua_pop(L, 1);
}

void ta_ctx_release(lua_State *L, ta_engine *E) {
  ta_shared_unref(L, E, E->run_ctx_ref);
  E->run_ctx_ref = LUA_NOREF;
}

/* Pushes the value stored for the key at keyidx in the running task's
** context (nil when unset) and returns its type: ctx_get for C callers,
** without a Lua call. */
int ta_ctx_get(lua_State *L, int keyidx) {
  int type = LUA_TNIL;
  keyidx = lua_absindex(L, keyidx);
  if (ctx_table(L, 0)) {
    lua_pushvalue(L, keyidx);
    type = lua_rawget(L, -2);
  } else {
    lua_pushnil(L);
  }
  lua_replace(L, -2);
  return type;
}

/* Pushes task t's context table and returns 1 when t does not own it
** (it shares it, or shared it, with other tasks): such a table never
** changes, since a write copies it first (ctx_table), so what it held once
** it holds for good.  Else returns 0, nothing pushed.  For callers that
** remember what they found in a context (trio/scope.c's task body). */
int ta_ctx_push_frozen(lua_State *L, ta_task *t) {
  if (t->ctx_ref == LUA_NOREF || t->ctx_owned) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->ctx_ref);
  return 1;
}

/* ctx_get(key) -> stored value (nil when unset) */
static int t_ctx_get(lua_State *L) {
  lua_settop(L, 1);
  ta_ctx_get(L, 1);
  return 1;
}

/* ctx_set(key, value) -> previous stored value */
static int t_ctx_set(lua_State *L) {
  lua_settop(L, 2);
  ctx_table(L, 1);
  lua_pushvalue(L, 1);
  lua_rawget(L, -2);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_rawset(L, -4);
  return 1;
}

/* current_flavor() -> "trio", "asyncio", "allow_asyncio" or nil */
static int t_current_flavor(lua_State *L) {
  ta_task *t = ta_current(L);
  if (t == NULL) return 0;
  lua_pushstring(L, t->flavor == TA_BOTH ? "trio" : ta_flavor_name(t->flavor));
  return 1;
}

/* check_aio(fname) / check_trio(fname): raise as an async function of
** that flavor named fname would if called here. */
static int t_check_aio(lua_State *L) {
  ta_async_check(L, luaL_checkstring(L, 1), TA_ASYNCIO);
  return 0;
}

static int t_check_trio(lua_State *L) {
  ta_async_check(L, luaL_checkstring(L, 1), TA_TRIO);
  return 0;
}

/* coroutine.yield, guarded: in a task's own coroutine a raw yield can only
** be a foreign library's suspension, which the scheduler cannot serve, so
** it raises at the call site (the scheduler still catches yields made
** through a copy of the original function). */
static int t_guarded_yield(lua_State *L) {
  ta_task *t = ta_current(L);
  if (t != NULL) {
    int aio = t->flavor == TA_ASYNCIO;
    const char *what = lua_gettop(L) > 0 ? ta_tostring(L, 1) : "nothing";
    const char *name = ta_task_name(L, t);
    return ta_error(L, "FlavorError",
                    "%s: raw coroutine.yield of %s from %s task '%s' (only the runtime's own "
                    "async functions may suspend a task; call this library from a plain "
                    "coroutine or through its own event loop)",
                    aio ? "Task got bad yield" : "trio.run received unrecognized yield message",
                    what, aio ? "asyncio" : "trio", name);
  }
  return lua_yield(L, lua_gettop(L));
}

/* task_where(task) -> "what (file:line)" where the task is suspended,
** "running", "not started" or "done". */
/* Frames that say nothing of where a task waits. */
static int plumbing(const char *name) {
  return strcmp(name, "pcall") == 0 || strcmp(name, "xpcall") == 0 || strcmp(name, "error") == 0;
}

/* task_where(task) -> "what (file:line)": the outermost runtime function
** the task's own code called and the line of that call; "running",
** "not started" or "done"; "what (waiting)" or "what (runnable)" for a
** task whose body is a C function. */
static int t_task_where(lua_State *L) {
  ta_task *t = ta_checktask(L, 1);
  lua_Debug ar;
  const char *what = NULL;
  if (t->co == NULL) return lua_pushliteral(L, "done"), 1;
  if (t->state == TA_RUNNING) return lua_pushliteral(L, "running"), 1;
  if (!lua_getstack(t->co, 0, &ar))
    return lua_pushstring(L, t->state == TA_RUNNABLE ? "not started" : "waiting"), 1;
  for (int level = 0; lua_getstack(t->co, level, &ar); level++) {
    lua_getinfo(t->co, "Sln", &ar);
    if (ar.currentline > 0 && !ta_own_chunk(ar.source)) {
      if (what != NULL) lua_pushfstring(L, "%s (%s:%d)", what, ar.short_src, ar.currentline);
      else lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
      return 1;
    }
    if (ar.name != NULL && !plumbing(ar.name)) {
      what = ar.name;
    } else if (ar.name == NULL && ar.what[0] == 'C' && level == 0) {
      /* called through pcall or by the scheduler: name it by its export */
      lua_getinfo(t->co, "f", &ar);
      lua_xmove(t->co, L, 1);
      what = ta_push_function_name(L, -1);
      lua_remove(L, what != NULL ? -2 : -1);
    }
  }
  /* no frame of user code: the body is the runtime's own or a C
  ** function (n:start_soon(trio.sleep_forever)): say which */
  push_thread_function(L, t->co);
  if (ta_push_function_name(L, -1) != NULL) what = lua_tostring(L, -1);
  else if (what == NULL) what = "?";
  lua_pushfstring(L, "%s (%s)", what, t->state == TA_RUNNABLE ? "runnable" : "waiting");
  return 1;
}

/* function_name(fn) -> "module.field" of a function a loaded module
** exports, or nil. */
static int t_function_name(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  return ta_push_function_name(L, 1) != NULL;
}

/* Slots of the task slab not free (in use, or free after this batch). */
static lua_Integer task_slots_taken(ta_engine *E) {
  lua_Integer n = 0;
  for (task_chunk *c = (task_chunk *)E->task_chunks; c != NULL; c = c->next) n += TASK_CHUNK_SLOTS;
  for (ta_task *t = E->free_tasks; t != NULL; t = t->free_next) n--;
  return n - (E->spawn_slot != NULL);
}

/* debug_ids() -> {weak = n, anchors = n, task_slots = n, spare_rbufs = n}:
** the weak ids and anchor ids in use (handed out and not given back), the
** slots of the task slab that are not free, for specs that check that
** tasks give theirs back, and the emptied stream read buffers the engine
** keeps for the next read (io/stream.c). */
static int t_debug_ids(lua_State *L) {
  ta_engine *E = engine_of(L);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, E->nspare_rbufs);
  lua_setfield(L, -2, "spare_rbufs");
  lua_pushinteger(L, task_slots_taken(E));
  lua_setfield(L, -2, "task_slots");
  lua_pushinteger(L, E->weak_ids.top - E->weak_ids.nfree);
  lua_setfield(L, -2, "weak");
  lua_pushinteger(L, E->anchor_ids.top - E->anchor_ids.nfree);
  lua_setfield(L, -2, "anchors");
  return 1;
}

static const luaL_Reg task_funcs[] = {
  {"debug_ids", t_debug_ids},
  {"task_where", t_task_where},
  {"function_name", t_function_name},
  {"guarded_yield", t_guarded_yield},
  {"check_aio", t_check_aio},
  {"check_trio", t_check_trio},
  {"ctx_get", t_ctx_get},
  {"ctx_set", t_ctx_set},
  {"current_flavor", t_current_flavor},
  {NULL, NULL}
};

/* Expects the core table at -2 and the engine at -1. */
static const luaL_Reg task_meta[] = {
  {"__index", task_index},
  {"__newindex", task_newindex},
  {"__tostring", task_tostring},
  {"__gc", task_gc},
  {NULL, NULL}
};

/* Methods are added by the Lua face (trio.lua). */
static const luaL_Reg task_methods[] = {{NULL, NULL}};

int ta_open_task(lua_State *L) {
  ta_newclass(L, TA_TASK_MT, task_meta, task_methods, "__methods");
  ta_cache_metatable(L, (ta_engine *)lua_touserdata(L, -2), TA_MT_TASK);
  lua_pop(L, 1);
  ta_register(L, task_funcs);
  return 0;
}
