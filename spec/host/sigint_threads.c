/*
** sigint_threads.c — two lua_States on two threads start and end runs in
** a given interleaving; SIGINT's handling afterwards is what the host set
** before (the runtime counts the SIGINT handles of all engines in the
** process, and the last one to stop puts the old handling back), and the
** run that ends last still gets Ctrl-C as KeyboardInterrupt after the
** other one ended.  spec/signals_spec.lua runs it; `make tsan` too.
**
** argv[1]: SIGINT's handling set by the host first: "ignore" or "handler"
**          (a C handler counting the signals it gets).
** argv[2]: the order of the events, "ABAB" (A starts, B starts, A ends,
**          B ends) or "ABBA".  A runs trio.run, B asyncio.run.
** argv[3]: rounds (default 3).
** Prints "round N last_ki 1 during other" for each round (the run that
** ended last got KeyboardInterrupt; SIGINT was libuv's, not the host's,
** while it ran), then "after STATE HITS".
*/
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "host_test.h"

static uv_mutex_t turn_lock;
static uv_cond_t turn_moved;
static char events[4][3];  /* "A+", "B-", ...: guarded by turn_lock with step */
static int step;
/* turn(event): waits (at most 10 s) until `event` ("A+" ...) is next. */
static int l_turn(lua_State *L) {
  const char *ev = luaL_checkstring(L, 1);
  double t0 = now_s();
  int ok;
  uv_mutex_lock(&turn_lock);
  while (step < 4 && strcmp(events[step], ev) != 0 && now_s() - t0 < 10)
    uv_cond_timedwait(&turn_moved, &turn_lock, 100 * 1000 * 1000);
  ok = step < 4 && strcmp(events[step], ev) == 0;
  uv_mutex_unlock(&turn_lock);
  if (!ok) return luaL_error(L, "turn %s never came", ev);
  return 0;
}

/* done(): the event whose turn it was happened; the next one goes. */
static int l_done(lua_State *L) {
  (void)L;
  uv_mutex_lock(&turn_lock);
  step++;
  uv_cond_broadcast(&turn_moved);
  uv_mutex_unlock(&turn_lock);
  return 0;
}

static int l_sigint_state(lua_State *L) {
  lua_pushstring(L, host_sigint_state());
  return 1;
}

static int l_kill_sigint(lua_State *L) {
  (void)L;
  kill(getpid(), SIGINT); /* to the process: any thread may take it */
  return 0;
}

/* One thread's part of a round: NAME is "A" or "B"; LAST says whether its
** run ends last (then it checks Ctrl-C still reaches it).  The chunk
** returns "last_ki 1 during other" or "" (not last). */
static const char *part =
    "local name, last = ...\n"
    "local trio, asyncio = require 'trio', require 'asyncio'\n"
    "local run = name == 'A' and trio.run or asyncio.run\n"
    "local sleep = name == 'A' and trio.sleep or asyncio.sleep\n"
    "local during\n"
    "host.turn(name .. '+')\n"
    "local ok, err = pcall(run, function()\n"
    "  host.done()\n"
    "  host.turn(name .. '-')\n"
    "  if last then\n"
    "    during = host.sigint_state()\n"
    "    host.kill_sigint()\n"
    "    sleep(5)\n"
    "  end\n"
    "end)\n"
    "host.done()\n"
    "if not last then assert(ok, tostring(err)) return '' end\n"
    "local ki = not ok and tostring(err):find('KeyboardInterrupt') and 1 or 0\n"
    "return ('last_ki %d during %s'):format(ki, during)\n";

typedef struct {
  const char *name;
  int last;
  char result[128];
} thread_part;

static void run_part(void *arg) {
  thread_part *p = (thread_part *)arg;
  static const luaL_Reg funcs[] = {
    {"turn", l_turn},
    {"done", l_done},
    {"sigint_state", l_sigint_state},
    {"kill_sigint", l_kill_sigint},
    {NULL, NULL},
  };
  lua_State *L = new_state();
  luaL_newlib(L, funcs);
  lua_setglobal(L, "host");
  CHECK(luaL_loadstring(L, part) == LUA_OK);
  lua_pushstring(L, p->name);
  lua_pushboolean(L, p->last);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    snprintf(p->result, sizeof p->result, "error %s", lua_tostring(L, -1));
    l_done(L); /* let the other thread go on */
  } else {
    snprintf(p->result, sizeof p->result, "%s", lua_tostring(L, -1));
  }
  lua_close(L);
}

int main(int argc, char **argv) {
  const char *how = argc > 1 ? argv[1] : "ignore";
  const char *order = argc > 2 ? argv[2] : "ABAB";
  int rounds = argc > 3 ? atoi(argv[3]) : 3;
  CHECK(strlen(order) == 4);
  setvbuf(stdout, NULL, _IOLBF, 0);
  CHECK(host_set_sigint(strcmp(how, "handler") == 0 ? host_sigint_handler : SIG_IGN) == 0);
  uv_mutex_init(&turn_lock);
  uv_cond_init(&turn_moved);
  for (int r = 1; r <= rounds; r++) {
    thread_part a = {"A", 0, ""}, b = {"B", 0, ""};
    uv_thread_t ta, tb;
    int seen_a = 0, seen_b = 0;
    for (int i = 0; i < 4; i++) { /* a name's first event starts, its second ends */
      int ending = order[i] == 'A' ? seen_a++ : seen_b++;
      snprintf(events[i], sizeof events[i], "%c%c", order[i], ending ? '-' : '+');
    }
    (order[3] == 'A' ? &a : &b)->last = 1;
    step = 0;
    CHECK(uv_thread_create(&ta, run_part, &a) == 0);
    CHECK(uv_thread_create(&tb, run_part, &b) == 0);
    uv_thread_join(&ta);
    uv_thread_join(&tb);
    printf("round %d %s%s\n", r, a.result, b.result);
  }
  printf("after %s %d\n", host_sigint_state(), (int)*host_sigint_hits());
  uv_cond_destroy(&turn_moved);
  uv_mutex_destroy(&turn_lock);
  return 0;
}
