/*
** heap.c — 4-ary min-heap of deadlines.  Each timer records its index so
** that a cancelled sleep or a moved scope deadline is removed in O(log n).
** The keys (deadline, arming order) sit in the heap array itself: with
** 100k+ timers, reading them through the timers' pointers (in task memory)
** was mostly cache misses.  Four children per entry halve the levels of a
** binary heap: at 1M timers a removal of the earliest timer reads 10
** levels of adjacent children (96 bytes each) instead of 20 scattered
** pairs, about 15% faster.  Sifting moves entries into a hole instead of
** swapping.
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
  e.tm->index = i;
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
  h->items = NULL;
  h->n = h->cap = 0;
}

/* Returns 0, or -1 when out of memory. */
int ta_heap_push(ta_heap *h, ta_timer *t) {
  ta_heap_entry e;
  if (h->n == h->cap) {
    int cap = h->cap ? h->cap * 2 : 64;
    ta_heap_entry *items = realloc(h->items, (size_t)cap * sizeof *items);
    if (items == NULL) return -1;
    h->items = items;
    h->cap = cap;
  }
  e.when = t->when;
  e.seq = h->seq++;
  e.tm = t;
  sift_up(h, h->n++, e);
  return 0;
}

void ta_heap_remove(ta_heap *h, ta_timer *t) {
  int i = t->index;
  if (i < 0) return;
  if (i == 0) { /* the next earliest is one of the root's children: its timer is asked for now */
    for (int c = 1; c <= ARITY && c < h->n; c++) __builtin_prefetch(h->items[c].tm);
  }
  h->n--;
  if (i != h->n) settle(h, i, h->items[h->n]);
  t->index = -1;
}

/* After t->when changed: t moves to its new place, after the timers that
** already had that deadline. */
void ta_heap_update(ta_heap *h, ta_timer *t) {
  ta_heap_entry e = h->items[t->index];
  e.when = t->when;
  e.seq = h->seq++;
  settle(h, t->index, e);
}
