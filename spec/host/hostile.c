/*
** hostile.c — a C host that runs the Lua chunk given as argv[1] in a fresh
** state and offers it a few things a host can do that plain Lua cannot
** (spec/reliability_spec.lua drives it; each run is bounded by alarm()):
**
**   host.close_state()        lua_close of the state from inside the running
**                             Lua code (then prints "closed" and exits 0)
**   host.post_error(kind)     trio_asyncio_call_soon_threadsafe of a callback
**                             that raises: kind "string", or "badtostring" (an
**                             error object whose __tostring raises); returns rc
**   host.use_loop()           trio_asyncio_use_loop on a new host loop; rc
**   host.uv_run(mode)         uv_run of that host loop ("default"/"nowait")
**   host.pipe()               a new pipe: read fd, write fd (closed at exit)
**   host.run_loop_after = true  after the chunk, the host (C, unprotected)
**                             runs uv_run(DEFAULT) on that loop, as a real
**                             host does
**   host.sigint(how)          sets SIGINT's handling: "ignore" (SIG_IGN),
**                             "default" (SIG_DFL) or "handler" (a C handler
**                             counting the signals it gets)
**   host.sigint_state()       SIGINT's handling now: "ignore", "default",
**                             "handler" (ours), or "other" (someone else's);
**                             and how many signals our handler got
**   host.raise_sigint()       raise(SIGINT) on this thread
** After lua_close (also host.close_state's), the host prints
** "sigint_after_close STATE" when the chunk called host.sigint.
**
** With no argument it does nothing (so `make host-tests` / `make tsan` can
** build and run it without a chunk).  The program prints "exit ok" when the
** chunk returned and the state closed.
*/
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "host_test.h"

static lua_State *gL;
static uv_loop_t host_loop;
static int have_host_loop;
static int sigint_set;                 /* the chunk called host.sigint */

static void print_sigint_after_close(void) {
  if (sigint_set) printf("sigint_after_close %s\n", host_sigint_state());
}

static int l_sigint(lua_State *L) {
  static const char *const hows[] = {"ignore", "default", "handler", NULL};
  int how = luaL_checkoption(L, 1, NULL, hows);
  if (host_set_sigint(how == 0 ? SIG_IGN : how == 1 ? SIG_DFL : host_sigint_handler) != 0)
    return luaL_error(L, "sigaction failed");
  sigint_set = 1;
  return 0;
}

static int l_sigint_state(lua_State *L) {
  lua_pushstring(L, host_sigint_state());
  lua_pushinteger(L, *host_sigint_hits());
  return 2;
}

static int l_raise_sigint(lua_State *L) {
  (void)L;
  raise(SIGINT);
  return 0;
}

static int l_close_state(lua_State *L) {
  (void)L;
  printf("closing\n");
  fflush(stdout);
  lua_close(gL);
  printf("closed\n");
  print_sigint_after_close();
  fflush(stdout);
  _exit(0);
  return 0;
}

static int badtostring(lua_State *L) {
  return luaL_error(L, "__tostring raised on purpose");
}

static void raise_string(lua_State *L, void *arg) {
  (void)arg;
  luaL_error(L, "posted callback raised on purpose");
}

static void raise_badtostring(lua_State *L, void *arg) {
  (void)arg;
  lua_newtable(L);
  lua_newtable(L);
  lua_pushcfunction(L, badtostring);
  lua_setfield(L, -2, "__tostring");
  lua_setmetatable(L, -2);
  lua_error(L);
}

static int l_post_error(lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  int rc = trio_asyncio_call_soon_threadsafe(
      gL, strcmp(kind, "badtostring") == 0 ? raise_badtostring : raise_string, NULL);
  lua_pushinteger(L, rc);
  return 1;
}

static int l_use_loop(lua_State *L) {
  if (!have_host_loop) {
    CHECK(uv_loop_init(&host_loop) == 0);
    have_host_loop = 1;
  }
  lua_pushinteger(L, trio_asyncio_use_loop(gL, &host_loop));
  return 1;
}

static int l_uv_run(lua_State *L) {
  const char *mode = luaL_optstring(L, 1, "default");
  if (!have_host_loop) return luaL_error(L, "uv_run: call host.use_loop() first");
  lua_pushinteger(L, uv_run(&host_loop, strcmp(mode, "nowait") == 0 ? UV_RUN_NOWAIT : UV_RUN_DEFAULT));
  return 1;
}

static int l_pipe(lua_State *L) {
  int fds[2];
  if (pipe(fds) != 0) return luaL_error(L, "pipe failed");
  lua_pushinteger(L, fds[0]);
  lua_pushinteger(L, fds[1]);
  return 2;
}

static void on_alarm(int sig) {
  static const char msg[] = "TIMEOUT hostile: the chunk did not finish in time\n";
  (void)sig;
  (void)!write(1, msg, sizeof msg - 1);
  _exit(124);
}

int main(int argc, char **argv) {
  static const luaL_Reg funcs[] = {
    {"close_state", l_close_state},
    {"post_error", l_post_error},
    {"use_loop", l_use_loop},
    {"uv_run", l_uv_run},
    {"pipe", l_pipe},
    {"sigint", l_sigint},
    {"sigint_state", l_sigint_state},
    {"raise_sigint", l_raise_sigint},
    {NULL, NULL},
  };
  if (argc < 2) return 0;
  signal(SIGALRM, on_alarm);
  alarm(argc > 2 ? (unsigned)atoi(argv[2]) : 20);
  setvbuf(stdout, NULL, _IOLBF, 0);
  gL = new_state();
  luaL_newlib(gL, funcs);
  lua_setglobal(gL, "host");
  if (luaL_dostring(gL, argv[1]) != LUA_OK) {
    printf("lua error: %s\n", lua_tostring(gL, -1));
    lua_pop(gL, 1);
  }
  if (have_host_loop && lua_int(gL, "host.run_loop_after and 1 or 0")) {
    printf("host uv_run %d\n", uv_run(&host_loop, UV_RUN_DEFAULT));
  }
  lua_close(gL);
  print_sigint_after_close();
  if (have_host_loop) {
    uv_run(&host_loop, UV_RUN_NOWAIT);
    printf("loop_close %d\n", uv_loop_close(&host_loop));
  }
  printf("exit ok\n");
  return 0;
}
