/*
** trio_asyncio.h — the contract for C hosts embedding trio-asyncio.
**
** Link libtrio_asyncio.a (or -ltrio_asyncio), Lua 5.4 and libuv.  Every
** integer return is 0 on success (or the documented count) and a negative
** libuv-style error code on failure.  Pass the lua_State returned by
** luaL_newstate (the main thread).
*/
#ifndef TRIO_ASYNCIO_H
#define TRIO_ASYNCIO_H

#include <lua.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The C module behind require "trio_asyncio.core". */
int luaopen_trio_asyncio_core(lua_State *L);

/* Registers trio, asyncio, trio_asyncio (and their submodules) and
** trio_asyncio.core in package.preload: no Lua files are needed. */
void trio_asyncio_preload(lua_State *L);

/* Run the engine on the host's libuv loop: tasks of a guest run progress
** while the host runs uv_run.  Call before starting any run.  After
** lua_close(L), run the host loop once (uv_run NOWAIT) so our handles'
** close callbacks run; then uv_loop_close succeeds. */
int trio_asyncio_use_loop(lua_State *L, uv_loop_t *loop);

/* Run ready work of the guest run, waiting at most `timeout` seconds for
** I/O or timers (0: do not wait; negative: until something happens).
** Returns 1 while the run is alive, 0 when there is none. */
int trio_asyncio_step(lua_State *L, double timeout);

/* A file descriptor that becomes readable when the engine has work (the
** libuv backend fd), for hosts that poll. */
int trio_asyncio_backend_fd(lua_State *L);

/* Seconds until the engine's next timer, 0 if work is ready, -1 if none. */
double trio_asyncio_backend_timeout(lua_State *L);

/* From any thread: call fn(L, arg) on the loop's thread soon.  Returns
** UV_EINVAL for an unknown or closed state, UV_ECANCELED when no run is
** active. */
int trio_asyncio_call_soon_threadsafe(lua_State *L,
                                      void (*fn)(lua_State *L, void *arg), void *arg);

/* Runs work(arg) on one of the engine's worker threads (its own pool,
** never libuv's threadpool) and pushes a request object onto L that Lua
** code waits for with req:wait() in a task of either flavor (Trio:
** req:wait(true) is cancellable).  When work has returned, done(L, arg)
** runs on the loop's thread, inside the waiting task: it pushes the
** results and returns their number, or pushes an error and returns -1.
** If nobody waits any more (a cancelled wait, a collected request, the
** state closed), done(NULL, arg) is called instead, maybe from a worker
** thread, so that the host can free arg.  Returns 0, or a negative libuv
** error with nothing pushed and done not called. */
int trio_asyncio_push_work(lua_State *L, void (*work)(void *arg),
                           int (*done)(lua_State *L, void *arg), void *arg);

#ifdef __cplusplus
}
#endif

#endif
