/*
** copy.c — Lua values copied between two lua_States through a byte
** buffer: the arguments, results and errors of a function run on a worker
** thread.  Two states never touch each other; each side only reads or
** writes the buffer it owns at that moment.
**
** What travels: nil, booleans, integers and floats (kept apart), strings,
** and tables of these (keys and values), nested but without cycles and
** without metatables; an error object (a table whose metatable is an error
** class of trio.errors) travels as its class name and its fields.  A table
** reached twice without a cycle is copied twice.
**
** Format: one tag byte per value; integers and floats in native byte
** order (both sides are the same process); strings as a size_t length and
** the bytes; a table as '{', its key/value pairs, '}'.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

#define MAX_DEPTH 100

enum { T_NIL = 'n', T_FALSE = 'F', T_TRUE = 'T', T_INT = 'i', T_FLT = 'd', T_STR = 's',
       T_TABLE = '{', T_END = '}', T_ERROR = 'E' };

int ta_buf_put(ta_buf *b, const void *p, size_t n) {
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    char *q;
    while (cap < b->n + n) cap *= 2;
    q = (char *)realloc(b->p, cap);
    if (q == NULL) return -1;
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
  return 0;
}

void ta_buf_free(ta_buf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

static int put_tag(ta_buf *b, char tag) { return ta_buf_put(b, &tag, 1); }

static int put_str(ta_buf *b, const char *s, size_t len) {
  if (put_tag(b, T_STR) < 0 || ta_buf_put(b, &len, sizeof len) < 0) return -1;
  return ta_buf_put(b, s, len);
}

/* The class name of an error object of trio.errors at idx, or NULL: its
** metatable has __name and an `is` method, as every class made by
** errors.class does. */
static const char *error_class(lua_State *L, int idx) {
  const char *name = NULL;
  if (!lua_getmetatable(L, idx)) return NULL;
  if (lua_getfield(L, -1, "__name") == LUA_TSTRING) {
    lua_getfield(L, -2, "is");
    if (lua_isfunction(L, -1)) name = lua_tostring(L, -2);
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return name; /* the metatable keeps the string alive */
}

typedef struct enc {
  lua_State *L;
  ta_buf *b;
  int onpath;                 /* index of a table: tables being copied */
  int allow_errors;
  char why[160];              /* what could not be copied */
} enc;

static int encode(enc *e, int idx, int depth);

static int encode_table(enc *e, int idx, int depth) {
  lua_State *L = e->L;
  if (depth >= MAX_DEPTH) {
    snprintf(e->why, sizeof e->why, "tables nested more than %d deep", MAX_DEPTH);
    return -1;
  }
  lua_pushvalue(L, idx);
  if (lua_rawget(L, e->onpath) != LUA_TNIL) {
    lua_pop(L, 1);
    snprintf(e->why, sizeof e->why, "a table with a cycle");
    return -1;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, e->onpath);
  if (put_tag(e->b, T_TABLE) < 0) goto nomem;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L);
    if (encode(e, top - 1, depth + 1) < 0 || encode(e, top, depth + 1) < 0) {
      lua_pop(L, 2);
      return -1;
    }
    lua_pop(L, 1);
  }
  if (put_tag(e->b, T_END) < 0) goto nomem;
  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_rawset(L, e->onpath);
  return 0;
nomem:
  snprintf(e->why, sizeof e->why, "not enough memory");
  return -1;
}

static int encode(enc *e, int idx, int depth) {
  lua_State *L = e->L;
  ta_buf *b = e->b;
  int rc = 0;
  idx = lua_absindex(L, idx);
  if (!lua_checkstack(L, 8)) {
    snprintf(e->why, sizeof e->why, "tables nested too deep");
    return -1;
  }
  switch (lua_type(L, idx)) {
    case LUA_TNIL: rc = put_tag(b, T_NIL); break;
    case LUA_TBOOLEAN: rc = put_tag(b, lua_toboolean(L, idx) ? T_TRUE : T_FALSE); break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        rc = put_tag(b, T_INT) < 0 ? -1 : ta_buf_put(b, &i, sizeof i);
      } else {
        lua_Number d = lua_tonumber(L, idx);
        rc = put_tag(b, T_FLT) < 0 ? -1 : ta_buf_put(b, &d, sizeof d);
      }
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      rc = put_str(b, s, len);
      break;
    }
    case LUA_TTABLE: {
      const char *cls;
      if (lua_getmetatable(L, idx)) {
        lua_pop(L, 1);
        cls = e->allow_errors ? error_class(L, idx) : NULL;
        if (cls == NULL) {
          snprintf(e->why, sizeof e->why, "a table with a metatable");
          return -1;
        }
        if (put_tag(b, T_ERROR) < 0 || put_str(b, cls, strlen(cls)) < 0) goto nomem;
      }
      return encode_table(e, idx, depth);
    }
    default:
      snprintf(e->why, sizeof e->why, "a %s", luaL_typename(L, idx));
      return -1;
  }
  if (rc < 0) goto nomem;
  return 0;
nomem:
  snprintf(e->why, sizeof e->why, "not enough memory");
  return -1;
}

int ta_copy_encode(lua_State *L, int idx, int n, ta_buf *b, int allow_errors, int *failed,
                   char *why, size_t whylen) {
  enc e;
  int top = lua_gettop(L);
  idx = lua_absindex(L, idx);
  e.L = L;
  e.b = b;
  e.allow_errors = allow_errors;
  e.why[0] = '\0';
  if (!lua_checkstack(L, 8)) {
    *failed = 0;
    snprintf(why, whylen, "stack overflow");
    return -1;
  }
  lua_newtable(L);
  e.onpath = lua_gettop(L);
  for (int i = 0; i < n; i++) {
    if (encode(&e, idx + i, 0) < 0) {
      *failed = i;
      snprintf(why, whylen, "%s", e.why);
      lua_settop(L, top);
      return -1;
    }
  }
  lua_settop(L, top);
  return 0;
}

/* ---- decoding ---- */

typedef struct dec {
  lua_State *L;
  const char *p, *end;
  void (*push_error)(lua_State *L, const char *cls, void *ud);
  void *ud;
} dec;

static int get(dec *d, void *out, size_t n) {
  if ((size_t)(d->end - d->p) < n) return -1;
  memcpy(out, d->p, n);
  d->p += n;
  return 0;
}

static int decode(dec *d, int depth);

static int decode_table(dec *d, int depth) {
  lua_State *L = d->L;
  lua_newtable(L);
  for (;;) {
    if (d->p >= d->end) return -1;
    if (*d->p == T_END) {
      d->p++;
      return 0;
    }
    if (decode(d, depth + 1) < 0 || decode(d, depth + 1) < 0) return -1;
    if (lua_isnil(L, -2)) lua_pop(L, 2); /* cannot happen from encode */
    else lua_rawset(L, -3);
  }
}

static int decode(dec *d, int depth) {
  lua_State *L = d->L;
  char tag;
  if (depth > MAX_DEPTH + 2 || !lua_checkstack(L, 6) || get(d, &tag, 1) < 0) return -1;
  switch (tag) {
    case T_NIL: lua_pushnil(L); return 0;
    case T_FALSE: lua_pushboolean(L, 0); return 0;
    case T_TRUE: lua_pushboolean(L, 1); return 0;
    case T_INT: {
      lua_Integer i;
      if (get(d, &i, sizeof i) < 0) return -1;
      lua_pushinteger(L, i);
      return 0;
    }
    case T_FLT: {
      lua_Number x;
      if (get(d, &x, sizeof x) < 0) return -1;
      lua_pushnumber(L, x);
      return 0;
    }
    case T_STR: {
      size_t len;
      if (get(d, &len, sizeof len) < 0 || (size_t)(d->end - d->p) < len) return -1;
      lua_pushlstring(L, d->p, len);
      d->p += len;
      return 0;
    }
    case T_TABLE: return decode_table(d, depth);
    case T_ERROR: {
      /* class name, then the fields: the error is made by the receiver's
      ** factory from the class's short name, and gets the fields */
      if (decode(d, depth + 1) < 0) return -1;
      if (get(d, &tag, 1) < 0 || tag != T_TABLE || decode_table(d, depth) < 0) return -1;
      if (d->push_error == NULL) {
        lua_remove(L, -2);
        return 0;
      }
      {
        int fields = lua_gettop(L), cls = fields - 1;
        const char *name = lua_tostring(L, cls);
        const char *dot = strrchr(name, '.');
        d->push_error(L, dot ? dot + 1 : name, d->ud);
        if (lua_istable(L, -1)) {
          lua_pushnil(L);
          while (lua_next(L, fields)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -4);
          }
        }
        lua_replace(L, cls);
        lua_settop(L, cls);
      }
      return 0;
    }
    default: return -1;
  }
}

int ta_copy_decode(lua_State *L, const ta_buf *b, size_t *pos, int n,
                   void (*push_error)(lua_State *L, const char *cls, void *ud), void *ud) {
  dec d;
  int top = lua_gettop(L);
  d.L = L;
  d.p = b->p + *pos;
  d.end = b->p + b->n;
  d.push_error = push_error;
  d.ud = ud;
  for (int i = 0; i < n; i++) {
    if (decode(&d, 0) < 0) {
      lua_settop(L, top);
      return -1;
    }
  }
  *pos = (size_t)(d.p - b->p);
  return 0;
}
