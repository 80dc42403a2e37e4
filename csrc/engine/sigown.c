/*
** sigown.c — who owns a signal's handling, process-wide.
**
** libuv installs its own handler for a signal while any uv_signal_t of
** the process (on any loop, on any thread) watches it, and puts SIG_DFL
** back when the last one stops: what was there before (SIG_IGN, lua.c's
** "interrupted!" handler, a C host's handler) would be lost.  Every
** uv_signal_t of the runtime (the engine's SIGINT handle for
** KeyboardInterrupt, io/signal.c's watches) starts and stops through here:
** a count per signal of the handles active in the whole process, and the
** sigaction found when the count left 0, put back when it returns to 0.
** Several engines on several threads share the table, so it is guarded by
** a mutex initialized once (uv_once); libuv's own signal lock is taken
** inside uv_signal_start/stop, always after ours.
**
** When libuv still handles the signal after our last handle stopped (a
** host's own uv_signal_t watches it), the handling is libuv's and stays.
** When someone replaced libuv's handler meanwhile (a C host's sigaction
** during a run), that handling stays too, as Trio leaves a handler it
** finds in place of its own: libuv's uv_signal_stop would reset it.
*/
#include <signal.h>
#include <stdlib.h>

#include "engine/engine.h"

static uv_once_t owners_once = UV_ONCE_INIT;
static uv_mutex_t owners_lock;
static struct {
  int active;                /* handles of ours watching the signal */
  struct sigaction before;   /* the handling when `active` left 0 */
  struct sigaction libuvs;   /* libuv's handling, installed then */
} owners[NSIG];        /* guarded by owners_lock */

static void owners_init(void) {
  if (uv_mutex_init(&owners_lock) != 0) abort();
}

/* Starts h on signum (or changes its callback); records the handling it
** replaces if no handle of ours watched signum.  Returns libuv's code. */
int ta_signal_start(uv_signal_t *h, uv_signal_cb cb, int signum) {
  int rc, was_active = uv_is_active((uv_handle_t *)h);
  if (signum <= 0 || signum >= NSIG) return UV_EINVAL;
  if (was_active && h->signum != signum) ta_signal_stop(h);
  uv_once(&owners_once, owners_init);
  uv_mutex_lock(&owners_lock);
  if (uv_is_active((uv_handle_t *)h)) { /* the same signal: only the callback changes */
    rc = uv_signal_start(h, cb, signum);
  } else {
    struct sigaction before = {0};
    int fresh = owners[signum].active == 0;
    if (fresh && sigaction(signum, NULL, &before) != 0) before.sa_handler = SIG_DFL;
    rc = uv_signal_start(h, cb, signum);
    if (rc == 0) {
      if (fresh) {
        owners[signum].before = before;
        if (sigaction(signum, NULL, &owners[signum].libuvs) != 0) owners[signum].libuvs = before;
      }
      owners[signum].active++;
    }
  }
  uv_mutex_unlock(&owners_lock);
  return rc;
}

/* Stops h (if it was started); the last handle of ours on its signal puts
** back the handling recorded when the first one started, unless libuv's
** handler was replaced meanwhile: then the replacement stays. */
void ta_signal_stop(uv_signal_t *h) {
  int signum;
  if (!uv_is_active((uv_handle_t *)h)) return;
  signum = h->signum;
  uv_once(&owners_once, owners_init);
  uv_mutex_lock(&owners_lock);
  if (owners[signum].active == 1) {
    struct sigaction now, found;
    int replaced = sigaction(signum, NULL, &found) == 0 && found.sa_handler != owners[signum].libuvs.sa_handler;
    uv_signal_stop(h);
    /* libuv put SIG_DFL back unless a handle not of ours still watches */
    if (sigaction(signum, NULL, &now) == 0 && now.sa_handler == SIG_DFL)
      sigaction(signum, replaced ? &found : &owners[signum].before, NULL);
  } else {
    uv_signal_stop(h);
  }
  owners[signum].active--;
  uv_mutex_unlock(&owners_lock);
}
