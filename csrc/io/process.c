/*
** process.c — child processes on uv_spawn, for trio.run_process,
** trio.lowlevel.open_process, asyncio.create_subprocess_* and
** loop:subprocess_exec (the faces are Lua: lua/trio/process.lua,
** lua/asyncio/subprocess.lua).
**
** proc_spawn starts the child with its stdin/stdout/stderr each
** inherited, /dev/null, a pipe (the parent's end becomes a PipeStream of
** procpipe.c) or, for stderr, the same as stdout.  The pipes are made
** with uv_pipe (close-on-exec) and the child's ends closed in the parent
** right after the spawn, so the parent sees EOF when the child exits.
**
** A ProcessHandle holds a malloc'ed record with the uv_process_t, which
** stays open (on the engine's list: counted) until the child exits: its
** exit callback records the code and completes every proc_wait request.
** No zombie is left: libuv reaps the child when it exits; a handle
** collected while the child runs stays open until then and frees itself;
** at shutdown a child still running is killed (SIGKILL) and reaped
** (waitpid) before the handle closes.
*/
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/io.h"

#define PROC_MT "trio_asyncio.ProcessHandle"

typedef struct pwait pwait;

typedef struct proc {
  ta_owned owned;             /* first */
  uv_process_t h;
  ta_engine *E;
  int pid;
  int exited, returncode;     /* returncode: the exit status, or -signal */
  int open;                   /* the uv handle is open */
  int refs;                   /* the userdata, the open handle, requests */
  pwait *waiters;
} proc;

typedef struct phandle {
  proc *p;
} phandle;

struct pwait {
  ta_ioreq req;               /* first */
  proc *p;
  pwait *prev, *next;
};

static void proc_unref(proc *p) {
  if (--p->refs == 0) free(p);
}

static void on_closed(uv_handle_t *h) {
  proc *p = (proc *)h->data;
  ta_handle_closed(p->E);
  proc_unref(p);
}

static void close_handle(proc *p) {
  if (!p->open) return;
  p->open = 0;
  uv_close((uv_handle_t *)&p->h, on_closed);
}

static void finish(proc *p, int returncode) {
  pwait *w;
  p->exited = 1;
  p->returncode = returncode;
  while ((w = p->waiters) != NULL) {
    TA_LIST_REMOVE(p->waiters, w, prev, next);
    ta_ioreq_complete(&w->req);
  }
}

static void on_exit_cb(uv_process_t *h, int64_t status, int term_signal) {
  proc *p = (proc *)h->data;
  if (p->open) ta_handle_closing(p->E, &p->owned);
  finish(p, term_signal ? -term_signal : (int)status);
  close_handle(p);
}

/* Shutdown with the child running: kill it and reap it now. */
static void owned_close(ta_owned *o) {
  proc *p = (proc *)o;
  if (!p->exited) {
    int st = 0;
    kill(p->pid, SIGKILL);
    if (waitpid(p->pid, &st, 0) == p->pid)
      finish(p, WIFSIGNALED(st) ? -WTERMSIG(st) : WEXITSTATUS(st));
    else
      finish(p, -SIGKILL);
  }
  close_handle(p);
}

/* ---- waiting for the exit ---- */

static int pwait_deliver(lua_State *L, ta_ioreq *q) {
  pwait *w = (pwait *)q;
  lua_pushinteger(L, w->p->returncode);
  return 1;
}

static void pwait_cancel(ta_ioreq *q) {
  pwait *w = (pwait *)q;
  proc *p = w->p;
  if (!p->exited) {
    TA_LIST_REMOVE(p->waiters, w, prev, next);
    ta_ioreq_complete(q); /* abandoned: frees it */
  }
}

static void pwait_release(ta_ioreq *q) {
  pwait *w = (pwait *)q;
  proc_unref(w->p);
  free(w);
}

static const ta_ioreq_type pwait_type = {"process", pwait_deliver, pwait_cancel, pwait_release};

static phandle *checkproc(lua_State *L, int idx) {
  phandle *h = (phandle *)luaL_checkudata(L, idx, PROC_MT);
  if (h->p == NULL) luaL_argerror(L, idx, "process handle already released");
  return h;
}

/* proc_wait(ph) -> IORequest of the returncode */
static int l_proc_wait(lua_State *L) {
  proc *p = checkproc(L, 1)->p;
  pwait *w = (pwait *)calloc(1, sizeof *w);
  if (w == NULL) return luaL_error(L, "not enough memory");
  w->p = p;
  p->refs++;
  ta_ioreq_start(p->E, &w->req, &pwait_type);
  ta_ioreq_push(L, &w->req);
  if (p->exited) ta_ioreq_complete(&w->req);
  else TA_LIST_PUSH(p->waiters, w, prev, next);
  return 1;
}

/* proc_poll(ph) -> the returncode, or nil while it runs */
static int l_proc_poll(lua_State *L) {
  proc *p = checkproc(L, 1)->p;
  if (!p->exited) return 0;
  lua_pushinteger(L, p->returncode);
  return 1;
}

/* proc_kill(ph, signum) -> true if sent, false if the child has exited */
static int l_proc_kill(lua_State *L) {
  proc *p = checkproc(L, 1)->p;
  int signum = (int)luaL_checkinteger(L, 2);
  int rc;
  if (p->exited || !p->open) {
    lua_pushboolean(L, 0);
    return 1;
  }
  rc = uv_process_kill(&p->h, signum);
  if (rc == UV_ESRCH) { /* exited, not reaped yet: as good as exited */
    lua_pushboolean(L, 0);
    return 1;
  }
  if (rc < 0) return ta_oserror(L, rc, NULL, "send signal %d to process %d", signum, p->pid);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_proc_pid(lua_State *L) {
  lua_pushinteger(L, checkproc(L, 1)->p->pid);
  return 1;
}

/* A collected handle: the record stays until the child has exited. */
static int proc_gc(lua_State *L) {
  phandle *h = (phandle *)luaL_checkudata(L, 1, PROC_MT);
  if (h->p != NULL) proc_unref(h->p);
  h->p = NULL;
  return 0;
}

static int proc_tostring(lua_State *L) {
  phandle *h = (phandle *)luaL_checkudata(L, 1, PROC_MT);
  if (h->p == NULL) lua_pushliteral(L, "ProcessHandle (released)");
  else if (h->p->exited) lua_pushfstring(L, "ProcessHandle %d (exited %d)", h->p->pid, h->p->returncode);
  else lua_pushfstring(L, "ProcessHandle %d (running)", h->p->pid);
  return 1;
}

/* ---- spawning ---- */

enum { S_INHERIT, S_DEVNULL, S_PIPE, S_STDOUT, S_FD };

/* argv lists up to this long need no malloc'ed pointer array */
#define ARGV_ON_STACK 16

typedef struct spawn_state {
  char **argv;                /* argv_small or malloc'ed; the strings are Lua's */
  char *argv_small[ARGV_ON_STACK + 1];
  char **env;
  int child_fd[3];            /* what the child gets: -1 none */
  int parent_fd[3];           /* our end of a pipe: -1 none */
  int devnull;
} spawn_state;

static void spawn_cleanup(spawn_state *s) {
  if (s->argv != s->argv_small) free(s->argv);
  s->argv = NULL;
  if (s->env) {
    for (char **e = s->env; *e; e++) free(*e);
    free(s->env);
  }
  for (int i = 0; i < 3; i++) {
    if (s->parent_fd[i] >= 0) close(s->parent_fd[i]);
    s->parent_fd[i] = -1;
  }
  if (s->devnull >= 0) close(s->devnull);
  s->devnull = -1;
}

/* The close of the child's ends: a pipe's child end, not inherited fds. */
static void close_child_ends(spawn_state *s, const int *kinds) {
  for (int i = 0; i < 3; i++) {
    if (kinds[i] == S_PIPE && s->child_fd[i] >= 0) close(s->child_fd[i]);
    s->child_fd[i] = -1;
  }
}

static int stdio_kind(lua_State *L, int opts, const char *key, int *fd) {
  int t = lua_getfield(L, opts, key);
  int kind = S_INHERIT;
  if (t == LUA_TNIL || (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "inherit") == 0)) {
    kind = S_INHERIT;
  } else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "devnull") == 0) {
    kind = S_DEVNULL;
  } else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "pipe") == 0) {
    kind = S_PIPE;
  } else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "stdout") == 0 && key[3] == 'e') {
    kind = S_STDOUT;
  } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0) {
    kind = S_FD;
    *fd = (int)lua_tointeger(L, -1);
  } else {
    luaL_error(L, "proc_spawn: bad %s: %s", key, luaL_tolstring(L, -1, NULL));
  }
  lua_pop(L, 1);
  return kind;
}

/* proc_spawn(file, argv, opts) -> ProcessHandle, stdin, stdout, stderr
** (PipeStreams or nil).  opts: cwd, env (a table that replaces the
** environment), stdin/stdout/stderr ("inherit", "devnull", "pipe", an fd;
** stderr also "stdout"), detached (a new session). */
static int l_proc_spawn(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  const char *file = luaL_checkstring(L, 1);
  spawn_state s;
  uv_process_options_t o;
  uv_stdio_container_t stdio[3];
  int kinds[3], fds[3] = {-1, -1, -1};
  static const char *const keys[3] = {"stdin", "stdout", "stderr"};
  phandle *h;
  proc *p;
  int n, rc;
  const char *cwd = NULL;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  memset(&s, 0, sizeof s);
  memset(&o, 0, sizeof o);
  s.devnull = -1;
  for (int i = 0; i < 3; i++) s.child_fd[i] = s.parent_fd[i] = -1;
  for (int i = 0; i < 3; i++) kinds[i] = stdio_kind(L, 3, keys[i], &fds[i]);
  if (lua_getfield(L, 3, "cwd") == LUA_TSTRING) cwd = lua_tostring(L, -1);
  lua_pop(L, 1); /* the opts table keeps it */
  /* the handle first ("closed first": its __gc is always safe) */
  h = (phandle *)lua_newuserdatauv(L, sizeof *h, 0);
  h->p = NULL;
  luaL_setmetatable(L, PROC_MT);
  n = (int)luaL_len(L, 2);
  if (n < 1) return luaL_error(L, "proc_spawn: empty argument list");
  /* The child gets pointers to the Lua strings themselves (the faces
  ** turn numbers into strings): the argv table anchors them until
  ** uv_spawn has returned, and the child has exec'ed by then. */
  if (n <= ARGV_ON_STACK) {
    s.argv = s.argv_small;
  } else if ((s.argv = (char **)malloc(((size_t)n + 1) * sizeof *s.argv)) == NULL) {
    return luaL_error(L, "not enough memory");
  }
  for (int i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 2, i) != LUA_TSTRING) {
      spawn_cleanup(&s);
      return luaL_error(L, "proc_spawn: argument %d is not a string", i);
    }
    s.argv[i - 1] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  s.argv[n] = NULL;
  if (lua_getfield(L, 3, "env") == LUA_TTABLE) {
    int count = 0, i = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      count++;
      lua_pop(L, 1);
    }
    s.env = (char **)calloc((size_t)count + 1, sizeof *s.env);
    if (s.env == NULL) {
      spawn_cleanup(&s);
      return luaL_error(L, "not enough memory");
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1)) {
        lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
        s.env[i++] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        if (s.env[i - 1] == NULL) {
          lua_pop(L, 2);
          spawn_cleanup(&s);
          return luaL_error(L, "not enough memory");
        }
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  /* stdio */
  for (int i = 0; i < 3; i++) {
    int pfds[2];
    switch (kinds[i]) {
      case S_INHERIT: s.child_fd[i] = i; break;
      case S_FD: s.child_fd[i] = fds[i]; break;
      case S_DEVNULL:
        if (s.devnull < 0 && (s.devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
          rc = uv_translate_sys_error(errno);
          close_child_ends(&s, kinds);
          spawn_cleanup(&s);
          return ta_oserror(L, rc, "/dev/null", "open /dev/null");
        }
        s.child_fd[i] = s.devnull;
        break;
      case S_PIPE:
        if ((rc = uv_pipe(pfds, 0, 0)) < 0) {
          close_child_ends(&s, kinds);
          spawn_cleanup(&s);
          return ta_oserror(L, rc, NULL, "cannot make a pipe for the child's %s", keys[i]);
        }
        if (i == 0) {
          s.child_fd[i] = pfds[0];
          s.parent_fd[i] = pfds[1];
        } else {
          s.child_fd[i] = pfds[1];
          s.parent_fd[i] = pfds[0];
        }
        break;
      case S_STDOUT: s.child_fd[i] = s.child_fd[1]; break;
    }
    stdio[i].flags = UV_INHERIT_FD;
    stdio[i].data.fd = s.child_fd[i];
  }
  p = (proc *)calloc(1, sizeof *p);
  if (p == NULL) {
    close_child_ends(&s, kinds);
    spawn_cleanup(&s);
    return luaL_error(L, "not enough memory");
  }
  p->E = E;
  o.exit_cb = on_exit_cb;
  o.file = file;
  o.args = s.argv;
  o.env = s.env;
  o.cwd = cwd;
  o.stdio = stdio;
  o.stdio_count = 3;
  lua_getfield(L, 3, "detached");
  if (lua_toboolean(L, -1)) o.flags |= UV_PROCESS_DETACHED;
  lua_pop(L, 1);
  rc = uv_spawn(E->loop, &p->h, &o);
  close_child_ends(&s, kinds);
  if (rc < 0) {
    /* libuv wants the handle closed even when the spawn failed */
    p->h.data = p;
    p->open = 1;
    p->refs = 1;
    ta_handle_opened(E, &p->owned); /* on_closed counts it closed */
    ta_handle_closing(E, &p->owned);
    close_handle(p);
    spawn_cleanup(&s);
    if (rc == UV_ENOENT && cwd != NULL && access(cwd, F_OK) != 0)
      return ta_oserror(L, rc, cwd, "spawn %s: no such working directory %s", file, cwd);
    return ta_oserror(L, rc, file, "spawn %s", file);
  }
  p->h.data = p;
  p->pid = p->h.pid;
  p->open = 1;
  p->refs = 2; /* the userdata, the open handle */
  p->owned.close = owned_close;
  ta_handle_opened(E, &p->owned);
  h->p = p;
  /* the parent's ends become PipeStreams */
  for (int i = 0; i < 3; i++) {
    if (s.parent_fd[i] < 0) {
      lua_pushnil(L);
      continue;
    }
    if ((rc = ta_procpipe_push(L, E, s.parent_fd[i], i == 0)) < 0) {
      lua_pushnil(L); /* the fd is closed by spawn_cleanup */
      continue;
    }
    s.parent_fd[i] = -1; /* the PipeStream owns it */
  }
  spawn_cleanup(&s);
  return 4;
}

static const luaL_Reg proc_meta[] = {
  {"__gc", proc_gc},
  {"__tostring", proc_tostring},
  {NULL, NULL}
};

static const luaL_Reg proc_funcs[] = {
  {"proc_spawn", l_proc_spawn},
  {"proc_wait", l_proc_wait},
  {"proc_poll", l_proc_poll},
  {"proc_kill", l_proc_kill},
  {"proc_pid", l_proc_pid},
  {NULL, NULL}
};

int ta_open_process(lua_State *L) {
  ta_newclass(L, PROC_MT, proc_meta, NULL, NULL);
  lua_pop(L, 1);
  ta_register(L, proc_funcs);
  return 0;
}
