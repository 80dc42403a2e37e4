/*
** heap.c — binary min-heap of deadlines.  Each timer records its index so
** that a cancelled sleep or a moved scope deadline is removed in O(log n).
*/
#include <stdlib.h>

#include "engine/engine.h"

void ta_timer_init(ta_timer *tm, ta_timer_cb cb) {
  tm->when = 0;
  tm->index = -1;
  tm->cb = cb;
}

static void swap_at(ta_heap *h, int i, int j) {
  ta_timer *a = h->items[i], *b = h->items[j];
  h->items[i] = b; b->index = i;
  h->items[j] = a; a->index = j;
}

static void sift_up(ta_heap *h, int i) {
  while (i > 0) {
    int p = (i - 1) / 2;
    if (h->items[p]->when <= h->items[i]->when) break;
    swap_at(h, i, p);
    i = p;
  }
}

static void sift_down(ta_heap *h, int i) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && h->items[l]->when < h->items[m]->when) m = l;
    if (r < h->n && h->items[r]->when < h->items[m]->when) m = r;
    if (m == i) break;
    swap_at(h, i, m);
    i = m;
  }
}

void ta_heap_free(ta_heap *h) {
  free(h->items);
  h->items = NULL;
  h->n = h->cap = 0;
}

/* Returns 0, or -1 when out of memory. */
int ta_heap_push(ta_heap *h, ta_timer *t) {
  if (h->n == h->cap) {
    int cap = h->cap ? h->cap * 2 : 64;
    ta_timer **items = realloc(h->items, (size_t)cap * sizeof *items);
    if (items == NULL) return -1;
    h->items = items;
    h->cap = cap;
  }
  t->index = h->n;
  h->items[h->n++] = t;
  sift_up(h, t->index);
  return 0;
}

void ta_heap_remove(ta_heap *h, ta_timer *t) {
  int i = t->index;
  if (i < 0) return;
  h->n--;
  if (i != h->n) {
    h->items[i] = h->items[h->n];
    h->items[i]->index = i;
    sift_down(h, i);
    sift_up(h, i);
  }
  t->index = -1;
}

void ta_heap_update(ta_heap *h, ta_timer *t) {
  sift_down(h, t->index);
  sift_up(h, t->index);
}
