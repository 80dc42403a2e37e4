/*
** heap.c — the deadline heap: a 4-ary min-heap, and a sorted run of its
** earliest entries after a long run of earliest-first removals.
**
** A timer holds a slot, fixed while it is armed; the slot gives its timer
** and where its entry is, so that a cancelled sleep or a moved scope
** deadline is removed in O(log n).  The keys (deadline, arming order) sit
** in the entries themselves, and the positions in a dense array by slot:
** sifting touches neither the timers nor task memory (with 100k+ timers,
** reading keys through the timers' pointers, then writing each moved
** timer's index, were mostly cache misses).  Four children per entry
** halve the levels of a binary heap: at 1M timers a removal of the
** earliest timer reads 10 levels of adjacent children (96 bytes each)
** instead of 20 scattered pairs, about 15% faster.  Sifting moves entries
** into a hole instead of swapping.
**
** Many timers often expire at once (1M sleepers started together): each
** removal of the root still sifts through every level.  After BULK_MIN
** such removals in a row, and at least 1/BULK_SHARE of what is left, a
** heap of at least BULK_HEAP_MIN entries (a smaller one stays in cache, and
** its burst is not worth the sort's buffer: 24 bytes a timer at the peak,
** when every timer is armed) is sorted (radix passes over the deadlines' bits, then runs
** of equal deadlines by arming order) into `sorted`, whose front is then
** taken in O(1).  Timers armed meanwhile go into the (emptied) heap; the
** earliest timer is the earlier of the two fronts, so the order is
** exactly the heap's.  A timer removed from the middle of `sorted` leaves
** a hole (slot -1) that taking the front skips; a moved one goes into the
** heap.
*/
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define ARITY 4
#define BULK_MIN 1024
#define BULK_SHARE 16
#define BULK_HEAP_MIN (1 << 17)
#define RUN 16           /* merge sort (equal deadlines): runs sorted by insertion first */
#define PREFETCH_AHEAD 8 /* taking from `sorted`: the timer this many entries on is asked for */

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
    if (c >= h->nheap) break;
    end = h->nheap - c < ARITY ? h->nheap : c + ARITY;
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
  free(h->sorted);
  free(h->timers);
  free(h->pos);
  memset(h, 0, sizeof *h);
}

/* Grows the heap and the arrays by slot together (there are never more
** slots than the heap has room for); returns 0, or -1 when out of memory. */
static int grow(ta_heap *h) {
  int cap;
  ta_heap_entry *items;
  ta_timer **timers;
  int *pos;
  if (h->cap > INT_MAX / 2) return -1;
  cap = h->cap ? h->cap * 2 : 64;
  if ((items = realloc(h->items, (size_t)cap * sizeof *items)) == NULL) return -1;
  h->items = items;
  if ((timers = realloc(h->timers, (size_t)cap * sizeof *timers)) == NULL) return -1;
  h->timers = timers;
  if ((pos = realloc(h->pos, (size_t)cap * sizeof *pos)) == NULL) return -1;
  h->pos = pos;
  h->cap = cap;
  return 0;
}

/* ---- the sorted run ---- */

static void insertion_sort(ta_heap_entry *a, int n) {
  for (int i = 1; i < n; i++) {
    ta_heap_entry e = a[i];
    int j = i;
    for (; j > 0 && before(&e, &a[j - 1]); j--) a[j] = a[j - 1];
    a[j] = e;
  }
}

/* Merges the sorted runs of `width` entries of src, pairwise, into dst. */
static void merge_pass(const ta_heap_entry *src, ta_heap_entry *dst, int n, int width) {
  for (int lo = 0; lo < n; lo += 2 * width) {
    int mid = lo + width < n ? lo + width : n, hi = mid + width < n ? mid + width : n;
    int a = lo, b = mid, k = lo;
    while (a < mid && b < hi) dst[k++] = before(&src[b], &src[a]) ? src[b++] : src[a++];
    while (a < mid) dst[k++] = src[a++];
    while (b < hi) dst[k++] = src[b++];
  }
}

/* Sorts a[0..n) with room for n entries at tmp. */
static void merge_sort(ta_heap_entry *a, ta_heap_entry *tmp, int n) {
  ta_heap_entry *src = a, *dst = tmp;
  for (int lo = 0; lo < n; lo += RUN) insertion_sort(a + lo, n - lo < RUN ? n - lo : RUN);
  for (int w = RUN; w < n; w *= 2) {
    ta_heap_entry *t = src;
    merge_pass(src, dst, n, w);
    src = dst;
    dst = t;
  }
  if (src != a) memcpy(a, src, (size_t)n * sizeof *a);
}

/* A deadline's bits, ordered as the deadlines are (-0.0 as 0.0; never NaN). */
static uint64_t when_bits(double when) {
  uint64_t b;
  if (when == 0) when = 0.0;
  memcpy(&b, &when, sizeof b);
  return b >> 63 ? ~b : b | (UINT64_C(1) << 63);
}

/* Sorts src[0..n) by deadline alone, least significant byte first (a
** byte that all deadlines share is skipped), moving entries between src
** and dst; returns the array that holds the result. */
static ta_heap_entry *radix_sort(ta_heap_entry *src, ta_heap_entry *dst, int n) {
  static const int nbytes = (int)sizeof(uint64_t);
  int count[sizeof(uint64_t)][256];
  memset(count, 0, sizeof count);
  for (int i = 0; i < n; i++) {
    uint64_t b = when_bits(src[i].when);
    for (int d = 0; d < nbytes; d++) count[d][(b >> (8 * d)) & 0xff]++;
  }
  for (int d = 0; d < nbytes; d++) {
    int at = 0, skip = 0;
    ta_heap_entry *t;
    for (int v = 0; v < 256; v++) { /* count: where the entries with byte v go */
      int c = count[d][v];
      if (c == n) skip = 1;
      count[d][v] = at;
      at += c;
    }
    if (skip) continue;
    for (int i = 0; i < n; i++) dst[count[d][(when_bits(src[i].when) >> (8 * d)) & 0xff]++] = src[i];
    t = src;
    src = dst;
    dst = t;
  }
  return src;
}

/* Moves every heap entry into `sorted`, earliest first: by deadline, then
** each run of equal deadlines by arming order.  Without memory for
** `sorted` the heap stays as it is. */
static void sort_out(ta_heap *h) {
  int n = h->nheap;
  ta_heap_entry *s;
  if (h->scap < n) { /* (empty: nothing to keep).  Sized to the entries, not
                        ** to cap: it is made at the peak, every timer armed */
    free(h->sorted);
    h->scap = 0;
    if ((h->sorted = malloc((size_t)n * sizeof *h->sorted)) == NULL) return;
    h->scap = n;
  }
  s = h->sorted;
  if (radix_sort(h->items, s, n) != s) memcpy(s, h->items, (size_t)n * sizeof *s);
  for (int lo = 0, hi; lo < n; lo = hi) {
    for (hi = lo + 1; hi < n && s[hi].when == s[lo].when; hi++) continue;
    if (hi - lo > 1) merge_sort(s + lo, h->items, hi - lo);
  }
  for (int j = 0; j < n; j++) h->pos[s[j].slot] = -1 - j;
  h->next = 0;
  h->end = n;
  h->nheap = 0;
}

/* After the front of `sorted` was removed: skips holes to the next entry
** and asks for the timers that will be taken next. */
static void advance(ta_heap *h) {
  int k;
  while (h->next < h->end && h->sorted[h->next].slot < 0) h->next++;
  if (h->next == h->end) {
    h->next = h->end = 0;
    return;
  }
  k = h->next + PREFETCH_AHEAD;
  if (k < h->end && h->sorted[k].slot >= 0) __builtin_prefetch(h->timers[h->sorted[k].slot]);
  k += PREFETCH_AHEAD;
  if (k < h->end && h->sorted[k].slot >= 0) __builtin_prefetch(&h->timers[h->sorted[k].slot]);
}

/* ---- the interface ---- */

ta_timer *ta_heap_top(ta_heap *h) {
  const ta_heap_entry *e = NULL;
  if (h->next < h->end) e = &h->sorted[h->next];
  if (h->nheap > 0 && (e == NULL || before(&h->items[0], e))) e = &h->items[0];
  return e != NULL ? h->timers[e->slot] : NULL;
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
  h->n++;
  h->root_pops = 0;
  sift_up(h, h->nheap++, e);
  return 0;
}

void ta_heap_remove(ta_heap *h, ta_timer *t) {
  int slot = t->index, i;
  if (slot < 0) return;
  i = h->pos[slot];
  if (i < 0) { /* in `sorted` */
    h->sorted[-1 - i].slot = -1;
    if (-1 - i == h->next) advance(h);
  } else {
    if (i == 0) { /* the next earliest is one of the root's children: its timer is asked for now */
      for (int c = 1; c <= ARITY && c < h->nheap; c++) __builtin_prefetch(h->timers[h->items[c].slot]);
    }
    h->nheap--;
    if (i != h->nheap) settle(h, i, h->items[h->nheap]);
    if (i == 0 && h->next == h->end && ++h->root_pops >= BULK_MIN
        && h->root_pops >= h->nheap / BULK_SHARE && h->nheap >= (h->sort_min ? h->sort_min : BULK_HEAP_MIN)) {
      h->root_pops = 0;
      sort_out(h);
    }
  }
  h->n--;
  h->pos[slot] = h->free_slot;
  h->free_slot = slot + 1;
  t->index = -1;
}

/* After t->when changed: t moves to its new place, after the timers that
** already had that deadline. */
void ta_heap_update(ta_heap *h, ta_timer *t) {
  int i = h->pos[t->index];
  ta_heap_entry e;
  if (i < 0) { /* out of `sorted`, into the heap (with a slot free, pushing cannot fail) */
    ta_heap_remove(h, t);
    (void)ta_heap_push(h, t);
    return;
  }
  e = h->items[i];
  e.when = t->when;
  e.seq = h->seq++;
  h->root_pops = 0;
  settle(h, i, e);
}
