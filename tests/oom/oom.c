/*
** oom.c — fault injection for trio-asyncio (`make oom`, issue #10).
**
** For each scenario (a Lua chunk, in tests/oom/) and each failure point
** N, a child process (fork) builds a fresh lua_State and runs the scenario
** with a fault armed, then checks what is left:
**
**   alloc mode  the lua_Alloc refuses every growing allocation after the
**               first N ones (of the scenario; setup is not counted);
**   uv mode     the N-th call the engine makes to a libuv function that can
**               fail (uv_loop_init, uv_async_init, uv_signal_init,
**               uv_poll_init, uv_poll_start, uv_signal_start; with --uv-all
**               also the ones libuv never fails: *_init of timers, prepare
**               and idle handles, and their *_start) returns an error.  The
**               calls are intercepted at link time (-Wl,--wrap=uv_...), so
**               the library is used as is.
**
** Only two outcomes are allowed: the scenario completes, or it raises a
** clean error (alloc: "not enough memory"; uv: an error naming the failure).
** Then, with the fault disarmed, a fresh small run of each flavor must work
** in the same state, and lua_close must be clean.  Anything else is
** reported:
**
**   CRASH     the child died of a signal (or a sanitizer report)
**   HANG      the child did not finish in time (alarm)
**   UNCLEAN   the scenario raised an error that is not a clean one
**   BRICKED   after the fault, a fresh run failed in the same state
**   LEAK      LeakSanitizer found memory never freed at exit
**
** Usage: oom [--uv | --uv-all] [--stride S | --points P] [--from A] [--to B]
**            [--timeout SEC] [--list] [--verbose] scenario.lua...
** --points P sweeps at most P points per scenario (the stride follows);
** --list prints every bad point, --verbose every point with the child's
** stderr (and, under ASan, where the first failures happened).
** Exit status 1 when anything bad was found.  Build under ASan for
** double frees and uses after free (make oom does).
*/
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <uv.h>

#include "trio_asyncio.h"

/* Sanitizer defaults for the children: abort on the first report, and a
** distinct exit code for leaks. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
  return "abort_on_error=1:detect_leaks=1:exitcode=86:allocator_may_return_null=1";
}

/* ---- the failing allocator ---- */

static struct {
  int armed;
  long limit;   /* refuse growth once `count` reached it; < 0: never */
  long count;   /* growing allocations while armed */
  long refused;
} A;

/* Under a sanitizer, --verbose shows where the first refusals happened. */
void __sanitizer_print_stack_trace(void) __attribute__((weak));
static int show_refusals;

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (A.armed && (ptr == NULL || nsize > osize)) {
    if (A.limit >= 0 && A.count >= A.limit) {
      if (A.refused++ < show_refusals && __sanitizer_print_stack_trace) {
        fprintf(stderr, "--- allocation %ld refused here:\n", A.count + A.refused);
        __sanitizer_print_stack_trace();
      }
      return NULL;
    }
    A.count++;
  }
  return realloc(ptr, nsize);
}

/* ---- libuv failure injection (link with -Wl,--wrap=NAME for each) ---- */

static struct {
  int armed, all;
  long fail_at; /* index of the call to fail; < 0: none */
  long count;
  const char *failed; /* name of the call that was failed */
} U;

static int uv_fail(const char *name, int can_fail) {
  if (!U.armed || (!can_fail && !U.all)) return 0;
  if (U.count++ != U.fail_at) return 0;
  U.failed = name;
  if (show_refusals) {
    fprintf(stderr, "--- %s fails here:\n", name);
    if (__sanitizer_print_stack_trace) __sanitizer_print_stack_trace();
  }
  return 1;
}

#define WRAP(name, can_fail, err, params, args)                 \
  int __real_##name params;                                     \
  int __wrap_##name params;                                     \
  int __wrap_##name params {                                    \
    if (uv_fail(#name, can_fail)) return err;                   \
    return __real_##name args;                                  \
  }

WRAP(uv_loop_init, 1, UV_EMFILE, (uv_loop_t *l), (l))
WRAP(uv_async_init, 1, UV_EMFILE, (uv_loop_t *l, uv_async_t *h, uv_async_cb cb), (l, h, cb))
WRAP(uv_signal_init, 1, UV_EMFILE, (uv_loop_t *l, uv_signal_t *h), (l, h))
WRAP(uv_poll_init, 1, UV_ENOMEM, (uv_loop_t *l, uv_poll_t *h, int fd), (l, h, fd))
WRAP(uv_poll_start, 1, UV_ENOMEM, (uv_poll_t *h, int ev, uv_poll_cb cb), (h, ev, cb))
WRAP(uv_signal_start, 1, UV_EINVAL, (uv_signal_t *h, uv_signal_cb cb, int sig), (h, cb, sig))
WRAP(uv_timer_init, 0, UV_ENOMEM, (uv_loop_t *l, uv_timer_t *h), (l, h))
WRAP(uv_prepare_init, 0, UV_ENOMEM, (uv_loop_t *l, uv_prepare_t *h), (l, h))
WRAP(uv_idle_init, 0, UV_ENOMEM, (uv_loop_t *l, uv_idle_t *h), (l, h))
WRAP(uv_timer_start, 0, UV_EINVAL, (uv_timer_t *h, uv_timer_cb cb, uint64_t t, uint64_t r), (h, cb, t, r))
WRAP(uv_prepare_start, 0, UV_EINVAL, (uv_prepare_t *h, uv_prepare_cb cb), (h, cb))
WRAP(uv_idle_start, 0, UV_EINVAL, (uv_idle_t *h, uv_idle_cb cb), (h, cb))

/* ---- helpers for the scenarios (globals of the child's state) ---- */

static uv_loop_t host_loop;
static int have_host_loop;

static int l_pipe(lua_State *L) {
  int fds[2];
  if (pipe(fds) != 0) return luaL_error(L, "pipe: %s", strerror(errno));
  lua_pushinteger(L, fds[0]);
  lua_pushinteger(L, fds[1]);
  return 2;
}

static int l_write(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  lua_pushinteger(L, (lua_Integer)write((int)luaL_checkinteger(L, 1), s, n));
  return 1;
}

static int l_close(lua_State *L) {
  close((int)luaL_checkinteger(L, 1));
  return 0;
}

/* oom_use_loop() -> rc: run the engine on a host loop of the driver. */
static int l_use_loop(lua_State *L) {
  if (!have_host_loop) {
    if (__real_uv_loop_init(&host_loop) != 0) return luaL_error(L, "cannot make the host loop");
    have_host_loop = 1;
  }
  lua_pushinteger(L, trio_asyncio_use_loop(L, &host_loop));
  return 1;
}

/* oom_uv_run() -> rc: uv_run(DEFAULT) of the host loop. */
static int l_uv_run(lua_State *L) {
  if (!have_host_loop) return luaL_error(L, "oom_uv_run: no host loop");
  lua_pushinteger(L, uv_run(&host_loop, UV_RUN_DEFAULT));
  return 1;
}

static void register_helpers(lua_State *L) {
  lua_register(L, "oom_pipe", l_pipe);
  lua_register(L, "oom_write", l_write);
  lua_register(L, "oom_close", l_close);
  lua_register(L, "oom_use_loop", l_use_loop);
  lua_register(L, "oom_uv_run", l_uv_run);
}

/* ---- one child: run a scenario with the fault armed at n ---- */

enum { R_DONE_UNREACHED = 0, R_DONE = 1, R_CLEAN = 2, R_UNCLEAN = 3, R_BRICKED = 4, R_SETUP = 5 };

static const char *const result_names[] = {"complete (fault not reached)", "complete", "clean error",
                                           "UNCLEAN", "BRICKED", "SETUP FAILED"};

/* Run in the child with the fault disarmed: closing what the scenario left
** open (a sync loop a memory error interrupted), then one small run of each
** flavor. */
static const char *usable_check =
    "collectgarbage() collectgarbage()\n"
    "local trio, asyncio, ta = require 'trio', require 'asyncio', require 'trio_asyncio'\n"
    "if OOM_SYNC_LOOP then pcall(OOM_SYNC_LOOP.close, OOM_SYNC_LOOP) OOM_SYNC_LOOP = nil end\n"
    "assert(trio.run(function() trio.sleep(0) return 7 end) == 7, 'trio.run')\n"
    "assert(asyncio.run(function() asyncio.sleep(0) return 8 end) == 8, 'asyncio.run')\n"
    "assert(ta.run(function() return ta.aio_as_trio(function() asyncio.sleep(0) return 9 end)() end) == 9,"
    " 'trio_asyncio.run')\n";

static int tostring_k(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* A protected tostring of the value on top (popped); copies into buf. */
static void describe_top(lua_State *L, char *buf, size_t size) {
  const char *s;
  lua_pushcfunction(L, tostring_k);
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    snprintf(buf, size, "(error value whose tostring fails)");
  } else {
    s = lua_tostring(L, -1);
    snprintf(buf, size, "%s", s ? s : "(nil)");
  }
  lua_pop(L, 1);
}

static int clean_error(const char *msg, int uv_mode) {
  if (strstr(msg, "not enough memory") || strstr(msg, "error in error handling")) return 1;
  if (!uv_mode) return 0;
  /* a libuv failure surfaced with its name or text */
  return strstr(msg, "too many open files") || strstr(msg, "invalid argument") ||
         strstr(msg, "EMFILE") || strstr(msg, "ENOMEM") || strstr(msg, "EINVAL") ||
         strstr(msg, "cannot");
}

/* Copies as much of src as fits (truncation is fine for a report). */
static void copy_str(char *dst, size_t size, const char *src) {
  size_t n = strlen(src);
  if (n >= size) n = size - 1;
  memcpy(dst, src, n);
  dst[n] = 0;
}

/* Returns the result code; writes a one-line detail into msg. */
static int child_run(const char *path, int uv_mode, long n, int is_load, char *msg, size_t size,
                     long *counted, lua_State **Lp) {
  lua_State *L;
  int status, result;
  char err[4096];
  msg[0] = 0;
  *Lp = L = lua_newstate(limited_alloc, NULL);
  if (L == NULL) return snprintf(msg, size, "lua_newstate failed"), R_SETUP;
  luaL_openlibs(L);
  trio_asyncio_preload(L);
  register_helpers(L);
  if (!is_load &&
      luaL_dostring(L, "trio, asyncio, ta = require 'trio', require 'asyncio', require 'trio_asyncio'") != LUA_OK) {
    snprintf(msg, size, "setup: %s", lua_tostring(L, -1));
    return R_SETUP;
  }
  if (luaL_loadfile(L, path) != LUA_OK) {
    snprintf(msg, size, "load: %s", lua_tostring(L, -1));
    return R_SETUP;
  }
  if (uv_mode) {
    U.armed = 1;
    U.fail_at = n;
    U.count = 0;
  } else {
    A.armed = 1;
    A.limit = n;
    A.count = 0;
  }
  status = lua_pcall(L, 0, 0, 0);
  A.armed = U.armed = 0;
  *counted = uv_mode ? U.count : A.count;
  if (status == LUA_OK) {
    result = (uv_mode ? U.failed != NULL : A.refused > 0) ? R_DONE : R_DONE_UNREACHED;
  } else {
    describe_top(L, err, sizeof err);
    result = clean_error(err, uv_mode) ? R_CLEAN : R_UNCLEAN;
    copy_str(msg, size, err);
  }
  if (luaL_dostring(L, usable_check) != LUA_OK) {
    char both[6000];
    size_t used = (size_t)snprintf(both, sizeof both, "%.1000s%s", msg, msg[0] ? " / " : "");
    describe_top(L, err, sizeof err);
    snprintf(both + used, sizeof both - used, "after the fault: %.4000s", err);
    copy_str(msg, size, both);
    result = R_BRICKED;
  }
  *Lp = L;
  return result;
}

/* The end of a child: lua_close (a double free there is reported as a
** crash after the result was sent), then the host loop. */
static void child_close(lua_State *L) {
  if (L != NULL) lua_close(L);
  if (have_host_loop) {
    uv_run(&host_loop, UV_RUN_NOWAIT);
    uv_loop_close(&host_loop);
  }
}

/* --verbose: a hanging child shows where it hangs (under ASan), then dies
** of the alarm as without --verbose. */
static void on_alarm_verbose(int sig) {
  static const char msg[] = "--- the child hangs here:\n";
  (void)!write(2, msg, sizeof msg - 1);
  if (__sanitizer_print_stack_trace) __sanitizer_print_stack_trace();
  signal(sig, SIG_DFL);
  raise(sig);
}

/* ---- the parent: one fork per failure point ---- */

typedef struct {
  int result;      /* R_* or -1 for a crash/hang/leak */
  char what[64];   /* "CRASH (signal 11)", "HANG", "LEAK", or the result name */
  char detail[1024];
  long counted;
} outcome;

static int opt_timeout = 10, opt_verbose = 0;

static void read_all(int fd, char *buf, size_t size) {
  size_t n = 0;
  ssize_t k;
  while (n + 1 < size && (k = read(fd, buf + n, size - 1 - n)) > 0) n += (size_t)k;
  buf[n] = 0;
}

/* The first lines of a sanitizer report (or the stderr tail). */
static void report_excerpt(const char *errpath, char *out, size_t size) {
  FILE *f = fopen(errpath, "r");
  char line[512];
  size_t used = 0;
  int frames = 0, started = 0;
  out[0] = 0;
  if (f == NULL) return;
  char tail[3][512] = {{0}};
  int ntail = 0;
  while (fgets(line, sizeof line, f) && used + 1 < size) {
    memcpy(tail[ntail++ % 3], line, sizeof line);
    int is_head = strstr(line, "ERROR:") || strstr(line, "runtime error") || strstr(line, "PANIC") ||
                  strstr(line, "SUMMARY");
    int is_frame = strstr(line, "    #") == line && frames < 6 && started;
    if (is_head) started = 1;
    if (is_head || is_frame) {
      if (is_frame) frames++;
      line[strcspn(line, "\n")] = 0;
      used += (size_t)snprintf(out + used, size - used, "\n      %s", line);
    }
  }
  fclose(f);
  if (!started) /* no sanitizer report: the last lines of stderr */
    for (int k = ntail > 3 ? ntail - 3 : 0; k < ntail && used + 1 < size; k++) {
      char *l = tail[k % 3];
      l[strcspn(l, "\n")] = 0;
      used += (size_t)snprintf(out + used, size - used, "\n      %.200s", l);
    }
}

static outcome run_point(const char *path, int uv_mode, long n, int is_load) {
  outcome o;
  int fds[2], wstatus = 0;
  char errpath[] = "/tmp/ta-oom-XXXXXX";
  int errfd = mkstemp(errpath);
  pid_t pid;
  memset(&o, 0, sizeof o);
  if (pipe(fds) != 0 || errfd < 0) {
    perror("oom");
    exit(2);
  }
  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    char msg[1024];
    long counted = 0;
    lua_State *L = NULL;
    int r;
    close(fds[0]);
    dup2(errfd, 2);
    if (opt_verbose) signal(SIGALRM, on_alarm_verbose);
    alarm((unsigned)opt_timeout);
    show_refusals = opt_verbose ? 100 : 0;
    r = child_run(path, uv_mode, n, is_load, msg, sizeof msg, &counted, &L);
    dprintf(fds[1], "%d %ld %s", r, counted, msg);
    close(fds[1]);
    child_close(L);
    exit(r); /* normal exit: LeakSanitizer checks here */
  }
  close(fds[1]);
  {
    char buf[1200];
    read_all(fds[0], buf, sizeof buf);
    close(fds[0]);
    waitpid(pid, &wstatus, 0);
    if (sscanf(buf, "%d %ld", &o.result, &o.counted) == 2) {
      const char *d = strchr(buf, ' ');
      d = d ? strchr(d + 1, ' ') : NULL;
      snprintf(o.detail, sizeof o.detail, "%s", d ? d + 1 : "");
    } else {
      o.result = -1;
    }
  }
  if (WIFSIGNALED(wstatus) || (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 86)) {
    /* A sanitizer report or a signal.  A leak found at the child's exit
    ** after it reported its result is labelled with both. */
    char excerpt[1024];
    int reported = o.result;
    report_excerpt(errpath, excerpt, sizeof excerpt);
    o.result = -1;
    if (strstr(excerpt, "LeakSanitizer") != NULL)
      snprintf(o.what, sizeof o.what, "%s%sLEAK", reported >= 0 && reported != R_DONE &&
               reported != R_DONE_UNREACHED && reported != R_CLEAN ? result_names[reported] : "",
               reported >= 0 && reported != R_DONE && reported != R_DONE_UNREACHED &&
               reported != R_CLEAN ? " + " : "");
    else if (WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGALRM)
      snprintf(o.what, sizeof o.what, "HANG (over %d s)%s", opt_timeout, reported >= 0 ? " at lua_close" : "");
    else if (reported >= 0) /* the scenario and the check had finished */
      snprintf(o.what, sizeof o.what, "%s, then CRASH at lua_close", result_names[reported]);
    else if (WIFSIGNALED(wstatus))
      snprintf(o.what, sizeof o.what, "CRASH (signal %d)", WTERMSIG(wstatus));
    else
      snprintf(o.what, sizeof o.what, "CRASH (sanitizer)");
    copy_str(o.detail + strlen(o.detail), sizeof o.detail - strlen(o.detail), excerpt);
  } else if (o.result < 0) {
    snprintf(o.what, sizeof o.what, "CRASH (exit %d, no result)", WEXITSTATUS(wstatus));
    report_excerpt(errpath, o.detail, sizeof o.detail);
  } else {
    snprintf(o.what, sizeof o.what, "%s", result_names[o.result]);
  }
  if (opt_verbose) { /* the whole of the child's stderr */
    FILE *f = fopen(errpath, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) printf("    | %s", line);
    if (f) fclose(f);
  }
  close(errfd);
  unlink(errpath);
  return o;
}

static int is_bad(const outcome *o) {
  return o->result < 0 || o->result == R_UNCLEAN || o->result == R_BRICKED || o->result == R_SETUP;
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* Bad points are grouped by what happened: the outcome, the message with
** numbers and addresses blotted out, and the first frame in csrc/. */
typedef struct {
  char key[400];
  long count, first, last;
  outcome sample;
} group;

#define MAX_GROUPS 64
static group groups[MAX_GROUPS];
static int ngroups;

static void make_key(const outcome *o, char *key, size_t size) {
  char norm[160];
  const char *frame = strstr(o->detail, "csrc/");
  size_t j = 0;
  for (const char *p = o->detail; *p && *p != '\n' && j + 1 < sizeof norm; p++) {
    if (*p >= '0' && *p <= '9') {
      if (j == 0 || norm[j - 1] != '#') norm[j++] = '#';
      while (p[1] && ((p[1] >= '0' && p[1] <= '9') || (p[1] >= 'a' && p[1] <= 'f') || p[1] == 'x')) p++;
    } else {
      norm[j++] = *p;
    }
  }
  norm[j] = 0;
  snprintf(key, size, "%s | %s | %.60s", o->what, norm, frame ? frame : "");
  key[strcspn(key, "\n")] = 0;
}

static void add_to_group(const outcome *o, long n) {
  char key[400];
  int g;
  make_key(o, key, sizeof key);
  for (g = 0; g < ngroups; g++)
    if (strcmp(groups[g].key, key) == 0) break;
  if (g == ngroups) {
    if (ngroups == MAX_GROUPS) g = MAX_GROUPS - 1; /* the rest share the last */
    else {
      ngroups++;
      copy_str(groups[g].key, sizeof groups[g].key, key);
      groups[g].count = 0;
      groups[g].first = n;
      groups[g].sample = *o;
    }
  }
  groups[g].count++;
  groups[g].last = n;
}

int main(int argc, char **argv) {
  int uv_mode = 0, bad_total = 0, list = 0, i;
  long stride = 1, from = 0, to = -1, max_points = 0;
  const char *self = argv[0];
  setenv("LIBC_FATAL_STDERR_", "1", 1); /* glibc's abort messages to stderr, not the tty */
  for (i = 1; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "--uv") == 0) uv_mode = 1;
    else if (strcmp(argv[i], "--uv-all") == 0) uv_mode = U.all = 1;
    else if (strcmp(argv[i], "--stride") == 0 && i + 1 < argc) stride = atol(argv[++i]);
    else if (strcmp(argv[i], "--points") == 0 && i + 1 < argc) max_points = atol(argv[++i]);
    else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) from = atol(argv[++i]);
    else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc) to = atol(argv[++i]);
    else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) opt_timeout = atoi(argv[++i]);
    else if (strcmp(argv[i], "--verbose") == 0) opt_verbose = list = 1;
    else if (strcmp(argv[i], "--list") == 0) list = 1;
    else {
      fprintf(stderr, "usage: oom [--uv|--uv-all] [--stride S | --points P] [--from A] [--to B] "
                      "[--timeout SEC] [--list] [--verbose] scenario.lua...\n");
      return 2;
    }
  }
  if (stride < 1) stride = 1;
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (; i < argc; i++) {
    const char *path = argv[i];
    const char *mode = uv_mode ? (U.all ? "--uv-all " : "--uv ") : "";
    int is_load = strcmp(base_name(path), "load.lua") == 0;
    long total, n, counts[6] = {0}, bad = 0, points = 0, step = stride;
    outcome probe = run_point(path, uv_mode, -1, is_load);
    if (probe.result != R_DONE_UNREACHED) {
      printf("%-11s without a fault: %s %s\n", base_name(path), probe.what, probe.detail);
      bad_total++;
      continue;
    }
    total = probe.counted;
    if (max_points > 0 && (total + max_points) / max_points > step) step = (total + max_points) / max_points;
    ngroups = 0;
    for (n = from; n <= total && (to < 0 || n <= to); n += step) {
      outcome o = run_point(path, uv_mode, n, is_load);
      points++;
      if (o.result >= 0) counts[o.result]++;
      if (list && (opt_verbose || is_bad(&o)))
        printf("%s %s %s N=%ld: %s%s%s\n", is_bad(&o) ? "BAD" : "   ", base_name(path),
               uv_mode ? "uv-call" : "alloc", n, o.what, o.detail[0] ? ": " : "", o.detail);
      if (is_bad(&o)) {
        bad++;
        add_to_group(&o, n);
      }
    }
    printf("%-11s %s: %ld points of %ld (stride %ld): %ld complete, %ld clean error, %ld bad\n",
           base_name(path), uv_mode ? (U.all ? "every libuv call" : "libuv calls that can fail") : "allocations",
           points, total + 1, step, counts[R_DONE] + counts[R_DONE_UNREACHED], counts[R_CLEAN], bad);
    for (int g = 0; g < ngroups; g++) {
      printf("  BAD x%ld (N=%ld..%ld): %s%s%s\n", groups[g].count, groups[g].first, groups[g].last,
             groups[g].sample.what, groups[g].sample.detail[0] ? ": " : "", groups[g].sample.detail);
      printf("    reproduce: %s %s--from %ld --to %ld --verbose %s\n", self, mode, groups[g].first,
             groups[g].first, path);
    }
    bad_total += bad > 0;
  }
  return bad_total ? 1 : 0;
}
