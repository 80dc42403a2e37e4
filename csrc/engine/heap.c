/*
** heap.c — 4-ary min-heap of deadlines.  A timer holds a slot, fixed while
** it is armed; the slot gives its timer and its entry's index, so that a
** cancelled sleep or a moved scope deadline is removed in O(log n).
** The keys (deadline, arming order) sit in the heap array itself, and the
** indexes in a dense array by slot: sifting touches neither the timers nor
** task memory (with 100k+ timers, reading keys through the timers'
** pointers, then writing each moved timer's index, were mostly cache
** misses).  Four children per entry halve the levels of a binary heap: at
** 1M timers a removal of the earliest timer reads 10 levels of adjacent
** children (96 bytes each) instead of 20 scattered pairs, about 15%
** faster.  Sifting moves entries into a hole instead of swapping.
*/
#include <stdlib.h>

#include "engine/engine.h"

#define ARITY 4

void ta_timer_init(ta_timer *tm, ta_timer_cb cb) {
  tm->when = 0;
  tm->index = -1;
  tm->ref = LUA_NOREF;
  tm->cb = cb;
}

/* a fires before b: earlier deadline, or the same one armed earlier */
static int before(const ta_heap_entry *a, const ta_heap_entry *b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void place(ta_heap *h, int i, ta_heap_entry e) {
  h->items[i] = e;
  h->pos[e.slot] = i;
}

/* Settles entry e, whose slot is the hole at i, towards the root. */
static void sift_up(ta_heap *h, int i, ta_heap_entry e) {
  while (i > 0) {
    int p = (i - 1) / ARITY;
    if (!before(&e, &h->items[p])) break;
    place(h, i, h->items[p]);
    i = p;
  }
  place(h, i, e);
}

/* Settles entry e, whose slot is the hole at i, towards the leaves. */
static void sift_down(ta_heap *h, int i, ta_heap_entry e) {
  for (;;) {
    int c = ARITY * i + 1, end;
    if (c >= h->n) break;
    end = h->n - c < ARITY ? h->n : c + ARITY;
    for (int k = c + 1; k < end; k++) /* c: the earliest child */
      if (before(&h->items[k], &h->items[c])) c = k;
    if (!before(&h->items[c], &e)) break;
    place(h, i, h->items[c]);
    i = c;
  }
  place(h, i, e);
}

/* Puts e into the hole at i, whichever way it has to move. */
static void settle(ta_heap *h, int i, ta_heap_entry e) {
  if (i > 0 && before(&e, &h->items[(i - 1) / ARITY])) sift_up(h, i, e);
  else sift_down(h, i, e);
}

void ta_heap_free(ta_heap *h) {
  free(h->items);
  free(h->timers);
  free(h->pos);
  h->items = NULL;
  h->timers = NULL;
  h->pos = NULL;
  h->n = h->cap = h->nslots = h->free_slot = 0;
}

/* Grows the three arrays together (there are never more slots than
** entries' room); returns 0, or -1 when out of memory. */
static int grow(ta_heap *h) {
  int cap = h->cap ? h->cap * 2 : 64;
  ta_heap_entry *items;
  ta_timer **timers;
  int *pos;
  if (cap < h->cap) return -1; /* (overflow) */
  if ((items = realloc(h->items, (size_t)cap * sizeof *items)) == NULL) return -1;
  h->items = items;
  if ((timers = realloc(h->timers, (size_t)cap * sizeof *timers)) == NULL) return -1;
  h->timers = timers;
  if ((pos = realloc(h->pos, (size_t)cap * sizeof *pos)) == NULL) return -1;
  h->pos = pos;
  h->cap = cap;
  return 0;
}

/* Returns 0, or -1 when out of memory. */
int ta_heap_push(ta_heap *h, ta_timer *t) {
  ta_heap_entry e;
  if (h->nslots == h->cap && h->free_slot == 0 && grow(h) != 0) return -1;
  if (h->free_slot != 0) {
    e.slot = h->free_slot - 1;
    h->free_slot = h->pos[e.slot];
  } else {
    e.slot = h->nslots++;
  }
  h->timers[e.slot] = t;
  t->index = e.slot;
  e.when = t->when;
  e.seq = h->seq++;
  sift_up(h, h->n++, e);
  return 0;
}

void ta_heap_remove(ta_heap *h, ta_timer *t) {
  int slot = t->index, i;
  if (slot < 0) return;
  i = h->pos[slot];
  if (i == 0) { /* the next earliest is one of the root's children: its timer is asked for now */
    for (int c = 1; c <= ARITY && c < h->n; c++) __builtin_prefetch(h->timers[h->items[c].slot]);
  }
  h->n--;
  if (i != h->n) settle(h, i, h->items[h->n]);
  h->pos[slot] = h->free_slot;
  h->free_slot = slot + 1;
  t->index = -1;
}

/* After t->when changed: t moves to its new place, after the timers that
** already had that deadline. */
void ta_heap_update(ta_heap *h, ta_timer *t) {
  int i = h->pos[t->index];
  ta_heap_entry e = h->items[i];
  e.when = t->when;
  e.seq = h->seq++;
  settle(h, i, e);
}
