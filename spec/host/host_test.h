/*
** host_test.h — helpers shared by the C host test programs (spec/host/),
** compiled and run by spec/embed_spec.lua.  A program prints one "key value"
** line per fact; the spec asserts on those lines.  CHECK failures print
** "FAIL ..." and exit 1.  Everything is bounded: no program waits forever.
*/
#ifndef HOST_TEST_H
#define HOST_TEST_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

#include "trio_asyncio.h"

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);               \
      fflush(stdout);                                                      \
      exit(1);                                                             \
    }                                                                      \
  } while (0)

/* A fresh state with the standard libraries and our modules preloaded. */
static inline lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  CHECK(L != NULL);
  luaL_openlibs(L);
  trio_asyncio_preload(L);
  return L;
}

/* Runs a chunk; a Lua error is a test failure. */
static inline void run_lua(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) != LUA_OK) {
    printf("FAIL lua error: %s\n", lua_tostring(L, -1));
    fflush(stdout);
    exit(1);
  }
}

/* The value of a Lua expression as an integer (for asserting from C). */
static inline long long lua_int(lua_State *L, const char *expr) {
  long long v;
  lua_getglobal(L, "load");
  lua_pushfstring(L, "return %s", expr);
  lua_call(L, 1, 1);
  lua_call(L, 0, 1);
  v = (long long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* SIGINT for the host tests of its handling (hostile.c, sigint_threads.c):
** a C handler counting the signals it gets, setting the handling, and
** naming the handling now: "ignore", "default", "handler" (this one) or
** "other" (someone else's, such as libuv's). */
static inline volatile sig_atomic_t *host_sigint_hits(void) {
  static volatile sig_atomic_t hits;
  return &hits;
}

static inline void host_sigint_handler(int sig) {
  (void)sig;
  (*host_sigint_hits())++;
}

static inline int host_set_sigint(void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = handler;
  return sigaction(SIGINT, &sa, NULL);
}

static inline const char *host_sigint_state(void) {
  struct sigaction sa;
  if (sigaction(SIGINT, NULL, &sa) != 0) return "unknown";
  if (sa.sa_handler == SIG_IGN) return "ignore";
  if (sa.sa_handler == SIG_DFL) return "default";
  return sa.sa_handler == host_sigint_handler ? "handler" : "other";
}

/* Monotonic seconds. */
static inline double now_s(void) { return (double)uv_hrtime() / 1e9; }

#endif
