/*
** clock.c — the engine clock: real monotonic time, a MockClock (trio/time.c
** makes them) that runs at a rate and can jump, or a clock of the user's
** (its `now` and `sleep_time` functions, also from trio/time.c).
*/
#include <time.h>

#include "engine/engine.h"

double ta_clock_now(ta_clock *c) {
  if (c->now != NULL) return c->now(c);
  return c->offset + c->rate * (double)(uv_hrtime() - c->base_ns) / 1e9;
}

void ta_clock_rebase(ta_clock *c) {
  c->offset = ta_clock_now(c);
  c->base_ns = uv_hrtime();
}

void ta_clock_jump(ta_clock *c, double s) {
  c->offset += s;
}

double ta_now(ta_engine *E) {
  if (E->clock != NULL) return ta_clock_now(E->clock);
  return (double)uv_hrtime() / 1e9;
}

/* A cheap monotonic clock (ns), for deciding when to poll: the coarse one
** costs no hardware clock read, and lags the real one by at most a tick
** (a few ms). */
uint64_t ta_coarse_ns(void) {
#ifdef CLOCK_MONOTONIC_COARSE
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0)
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
  return uv_hrtime();
}
