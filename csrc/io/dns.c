/*
** dns.c — name resolution on libuv's thread pool (uv_getaddrinfo_t,
** uv_getnameinfo_t), one request object per lookup.
**
** dns_getaddrinfo / dns_getnameinfo start a request and return it (with
** numeric_only, an address and a port number: finished at once); its
** waiter slot is woken when the lookup has finished, and dns_result (or
** ta_dns_try_result from C) gives the outcome.  A request dropped or
** cancelled before it finished is left to libuv: uv_cancel stops it if it
** has not started, and the callback frees it either way (the lookup may
** already run on a worker thread).
*/
#include <stdlib.h>
#include <string.h>
#include <netdb.h>

#include "io/sock.h"

enum { DNS_PENDING, DNS_DONE, DNS_ORPHAN };

typedef struct dnsreq {
  union { uv_getaddrinfo_t ai; uv_getnameinfo_t ni; } r;
  int is_ai, state, status;
  struct addrinfo *res;
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  char what[300];           /* "getaddrinfo example.com:80", for messages */
  ta_waiter slot;
} dnsreq;

typedef struct dnsbox {
  dnsreq *r;                /* NULL once consumed or cancelled */
} dnsbox;

static void dns_free(dnsreq *r) {
  if (r->res != NULL) uv_freeaddrinfo(r->res);
  free(r);
}

static void finished(dnsreq *r, int status) {
  if (r->state == DNS_ORPHAN) {
    dns_free(r);
    return;
  }
  r->state = DNS_DONE;
  r->status = status;
  ta_waiter_wake(&r->slot);
}

static void ai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  dnsreq *r = (dnsreq *)req->data;
  r->res = res;
  finished(r, status);
}

static void ni_cb(uv_getnameinfo_t *req, int status, const char *host, const char *serv) {
  dnsreq *r = (dnsreq *)req->data;
  if (status == 0) {
    snprintf(r->host, sizeof r->host, "%s", host ? host : "");
    snprintf(r->serv, sizeof r->serv, "%s", serv ? serv : "");
  }
  finished(r, status);
}

static dnsbox *checkbox(lua_State *L, int idx) {
  return (dnsbox *)luaL_checkudata(L, idx, TA_DNS_MT);
}

/* Drops the box's request: cancelled or abandoned if still running. */
static void release(dnsbox *b) {
  dnsreq *r = b->r;
  if (r == NULL) return;
  b->r = NULL;
  ta_waiter_detach(&r->slot);
  if (r->state == DNS_PENDING) {
    r->state = DNS_ORPHAN;
    uv_cancel((uv_req_t *)&r->r); /* if it did not start: the callback comes with ECANCELED */
  } else {
    dns_free(r);
  }
}

static dnsreq *new_request(lua_State *L, int is_ai) {
  dnsbox *b = (dnsbox *)lua_newuserdatauv(L, sizeof *b, 0);
  dnsreq *r;
  b->r = NULL;
  luaL_setmetatable(L, TA_DNS_MT);
  r = (dnsreq *)calloc(1, sizeof *r);
  if (r == NULL) luaL_error(L, "not enough memory");
  r->is_ai = is_ai;
  r->state = DNS_PENDING;
  r->r.ai.data = r;
  b->r = r;
  return r;
}

/* dns_getaddrinfo(host|nil, port|service|nil, family, type, proto, flags
** [, numeric_only]) -> request.  With numeric_only the lookup runs here,
** at once, for an address and a port number only (they need no thread:
** Trio tries this first); a name gives nil instead of a request (look it
** up the ordinary way then). */
static int l_getaddrinfo(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  const char *host = luaL_optstring(L, 1, NULL);
  const char *serv = NULL;
  char portbuf[32];
  struct addrinfo hints;
  dnsreq *r;
  int rc;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_Integer port = luaL_checkinteger(L, 2);
    luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port must be 0-65535");
    snprintf(portbuf, sizeof portbuf, "%d", (int)port);
    serv = portbuf;
  } else if (!lua_isnoneornil(L, 2)) {
    serv = luaL_checkstring(L, 2);
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = (int)luaL_optinteger(L, 3, AF_UNSPEC);
  hints.ai_socktype = (int)luaL_optinteger(L, 4, 0);
  hints.ai_protocol = (int)luaL_optinteger(L, 5, 0);
  hints.ai_flags = (int)luaL_optinteger(L, 6, 0);
  int numeric_only = lua_toboolean(L, 7);
  r = new_request(L, 1);
  snprintf(r->what, sizeof r->what, "getaddrinfo %s:%s", host ? host : "", serv ? serv : "");
  if (numeric_only) {
    hints.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    rc = uv_getaddrinfo(E->loop, &r->r.ai, NULL, host, serv, &hints); /* no callback: runs here */
    r->res = r->r.ai.addrinfo;
    r->state = DNS_DONE;
    r->status = rc;
    if (rc == UV_EAI_NONAME) lua_pushnil(L); /* the box frees the request */
    return 1;
  }
  rc = uv_getaddrinfo(E->loop, &r->r.ai, ai_cb, host, serv, &hints);
  if (rc < 0) {
    r->state = DNS_DONE;
    r->status = rc;
  }
  return 1;
}

/* dns_getnameinfo(addr, flags) -> request; addr {host, port} (numeric) */
static int l_getnameinfo(lua_State *L) {
  ta_engine *E = ta_upengine(L);
  struct sockaddr_storage ss;
  int flags = (int)luaL_optinteger(L, 2, 0);
  int family, rc;
  dnsreq *r;
  const char *host;
  unsigned char parsed[sizeof(struct in6_addr)];
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_rawgeti(L, 1, 1);
  host = lua_tostring(L, -1);
  family = (host != NULL && strchr(host, ':') != NULL) ? AF_INET6 : AF_INET;
  /* a numeric address only, as Python's (no "localhost" or "" shortcut) */
  if (host != NULL && uv_inet_pton(family, host, parsed) != 0)
    ta_oserror(L, UV_EAI_NONAME, NULL, "getnameinfo %s: a numeric address expected", host);
  lua_pop(L, 1);
  ta_sock_toaddr(L, 1, family, &ss, "getnameinfo", 1);
  r = new_request(L, 0);
  snprintf(r->what, sizeof r->what, "getnameinfo %s", ta_sock_addrstr(L, (struct sockaddr *)&ss, sizeof ss));
  lua_pop(L, 1);
  rc = uv_getnameinfo(E->loop, &r->r.ni, ni_cb, (struct sockaddr *)&ss, flags);
  if (rc < 0) {
    r->state = DNS_DONE;
    r->status = rc;
  }
  return 1;
}

static void push_addrinfo(lua_State *L, struct addrinfo *res) {
  int n = 0;
  lua_newtable(L);
  for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
    if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, a->ai_family);
    lua_setfield(L, -2, "family");
    lua_pushinteger(L, a->ai_socktype);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, a->ai_protocol);
    lua_setfield(L, -2, "proto");
    lua_pushstring(L, a->ai_canonname ? a->ai_canonname : "");
    lua_setfield(L, -2, "canonname");
    ta_sock_pushaddr(L, a->ai_addr, a->ai_addrlen);
    lua_setfield(L, -2, "addr");
    lua_rawseti(L, -2, ++n);
  }
}

int ta_dns_try_result(lua_State *L, int idx) {
  dnsbox *b = checkbox(L, idx);
  dnsreq *r = b->r;
  int n;
  if (r == NULL) {
    lua_pushliteral(L, "name resolution: the request was already consumed");
    return -1;
  }
  if (r->state == DNS_PENDING) return TA_IO_AGAIN;
  if (r->status < 0) {
    ta_push_oserror(L, r->status, NULL, "%s", r->what);
    release(b);
    return -1;
  }
  if (r->is_ai) {
    push_addrinfo(L, r->res);
    n = 1;
  } else {
    lua_pushstring(L, r->host);
    lua_pushstring(L, r->serv);
    n = 2;
  }
  release(b);
  return n;
}

ta_waiter *ta_dns_slot(lua_State *L, int idx) {
  dnsbox *b = checkbox(L, idx);
  if (b->r == NULL || b->r->state != DNS_PENDING) return NULL;
  return &b->r->slot;
}

/* dns_result(request) -> the list (getaddrinfo), or host, service
** (getnameinfo); nothing while it runs; raises gaierror */
static int l_result(lua_State *L) {
  int n = ta_dns_try_result(L, 1);
  if (n == TA_IO_AGAIN) return 0;
  if (n < 0) return lua_error(L);
  return n;
}

/* dns_cancel(request) */
static int l_cancel(lua_State *L) {
  release(checkbox(L, 1));
  return 0;
}

static int dns_gc(lua_State *L) {
  release((dnsbox *)lua_touserdata(L, 1));
  return 0;
}

static const luaL_Reg dns_meta[] = {
  {"__gc", dns_gc},
  {NULL, NULL}
};

static const luaL_Reg dns_funcs[] = {
  {"dns_getaddrinfo", l_getaddrinfo},
  {"dns_getnameinfo", l_getnameinfo},
  {"dns_result", l_result},
  {"dns_cancel", l_cancel},
  {NULL, NULL}
};

int ta_open_dns(lua_State *L) {
  ta_newclass(L, TA_DNS_MT, dns_meta, NULL, NULL);
  lua_pop(L, 1);
  ta_register(L, dns_funcs);
  return 0;
}
