/*
** tls.c — TLS on OpenSSL with memory BIOs: no socket here.  A TLS object
** turns the bytes its caller feeds it (read from any stream) into
** plaintext, and plaintext into bytes its caller takes and sends; so the
** same object serves trio.SSLStream (over any Trio stream) and asyncio's
** TLS transport (over a plain transport).  Nothing here waits: each step
** says "done" or "want_read" (feed it more bytes, then call it again);
** with memory BIOs OpenSSL never wants to write.
**
** Two classes:
**   trio_asyncio.TLSContext  SSL_CTX: verify mode, certificates, CAs,
**                            ALPN, TLS >= 1.2, renegotiation refused
**   trio_asyncio.TLSObject   SSL with its two BIOs; it keeps its context
**                            alive through its user value (the ALPN
**                            callback points into the context)
** Errors are trio_asyncio.ssl.SSLError (SSLCertVerificationError for a
** certificate that failed verification) with OpenSSL's reason in the
** message and Python's fields: reason, library, verify_code,
** verify_message.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "io/io.h"

#define CTX_MT "trio_asyncio.TLSContext"
#define OBJ_MT "trio_asyncio.TLSObject"

typedef struct tls_ctx {
  SSL_CTX *ctx;               /* NULL once freed */
  unsigned char *alpn;        /* protocols in wire format (malloc), or NULL */
  unsigned alpn_len;
} tls_ctx;

typedef struct tls_obj {
  SSL *ssl;                   /* NULL once closed; owns both BIOs */
  BIO *in, *out;              /* bytes from the peer / bytes for the peer */
} tls_obj;

/* ---- errors ---- */

/* OpenSSL's reason text as Python names reasons: "certificate verify
** failed" -> "CERTIFICATE_VERIFY_FAILED". */
static void push_reason_name(lua_State *L, const char *text) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (const char *p = text; *p; p++) {
    char c = *p;
    if (c == ' ' || c == '-') c = '_';
    else if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    luaL_addchar(&b, c);
  }
  luaL_pushresult(&b);
}

static const char *library_name(unsigned long e) {
  switch (ERR_GET_LIB(e)) {
    case ERR_LIB_SSL: return "SSL";
    case ERR_LIB_X509: return "X509";
    case ERR_LIB_PEM: return "PEM";
    case ERR_LIB_SYS: return "SYS";
    case ERR_LIB_EVP: return "EVP";
    case ERR_LIB_ASN1: return "ASN1";
    default: {
      const char *s = ERR_lib_error_string(e);
      return s != NULL ? s : "UNKNOWN";
    }
  }
}

/* Pushes an SSLError for the failed step `what` from OpenSSL's error
** queue (emptied): "what: [LIB: REASON] reason text (detail)".  With ssl
** given and a certificate that failed verification, the error is an
** SSLCertVerificationError with verify_code and verify_message. */
static void push_ssl_error(lua_State *L, SSL *ssl, const char *what, const char *detail) {
  unsigned long e = ERR_peek_last_error();
  const char *text = e != 0 ? ERR_reason_error_string(e) : NULL;
  long verify = X509_V_OK;
  if (text == NULL) text = e != 0 ? "unknown error" : "EOF occurred in violation of protocol";
  if (ssl != NULL && e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL
      && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
    verify = SSL_get_verify_result(ssl);
  ERR_clear_error();
  luaL_checkstack(L, 8, NULL);
  if (e != 0) push_reason_name(L, text);
  else lua_pushliteral(L, "UNEXPECTED_EOF_WHILE_READING");
  int reason = lua_gettop(L);
  const char *lib = e != 0 ? library_name(e) : "SSL";
  if (verify != X509_V_OK) {
    const char *vmsg = X509_verify_cert_error_string(verify);
    const char *host = verify == X509_V_ERR_HOSTNAME_MISMATCH
                           ? X509_VERIFY_PARAM_get0_host(SSL_get0_param(ssl), 0) : NULL;
    if (host != NULL)  /* Python's wording */
      vmsg = lua_pushfstring(L, "Hostname mismatch, certificate is not valid for '%s'.", host);
    else if (verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
      vmsg = "IP address mismatch, certificate is not valid for the address asked for.";
    lua_pushfstring(L, "%s: [%s: %s] %s: %s", what, lib, lua_tostring(L, reason), text, vmsg);
    ta_push_error(L, ta_engine_get(L), "SSLCertVerificationError", lua_tostring(L, -1));
    if (lua_istable(L, -1)) {
      lua_pushinteger(L, verify);
      lua_setfield(L, -2, "verify_code");
      lua_pushstring(L, vmsg);
      lua_setfield(L, -2, "verify_message");
    }
  } else {
    if (detail != NULL)
      lua_pushfstring(L, "%s: [%s: %s] %s (%s)", what, lib, lua_tostring(L, reason), text, detail);
    else
      lua_pushfstring(L, "%s: [%s: %s] %s", what, lib, lua_tostring(L, reason), text);
    ta_push_error(L, ta_engine_get(L), "SSLError", lua_tostring(L, -1));
  }
  if (lua_istable(L, -1)) {
    lua_pushvalue(L, reason);
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, lib);
    lua_setfield(L, -2, "library");
  }
  lua_replace(L, reason);
  lua_settop(L, reason);
}

static int ssl_error(lua_State *L, SSL *ssl, const char *what, const char *detail) {
  push_ssl_error(L, ssl, what, detail);
  return lua_error(L);
}

/* A file argument that cannot be read is an OSError naming it (as Python's
** FileNotFoundError), not OpenSSL's "system lib" error. */
static void check_readable(lua_State *L, const char *fname, const char *path) {
  if (access(path, R_OK) != 0) ta_oserror(L, -errno, path, "%s: %s", fname, path);
}

/* ---- contexts ---- */

static tls_ctx *check_ctx(lua_State *L, int idx) {
  tls_ctx *c = (tls_ctx *)luaL_checkudata(L, idx, CTX_MT);
  if (c->ctx == NULL) luaL_argerror(L, idx, "TLS context already freed");
  return c;
}

static int ctx_gc(lua_State *L) {
  tls_ctx *c = (tls_ctx *)luaL_checkudata(L, 1, CTX_MT);
  if (c->ctx != NULL) SSL_CTX_free(c->ctx);
  c->ctx = NULL;
  free(c->alpn);
  c->alpn = NULL;
  return 0;
}

/* Server side: the first of the client's protocols that we list too, in
** our order of preference (as Python does); none in common: no ALPN. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg) {
  tls_ctx *c = (tls_ctx *)arg;
  unsigned char *sel;
  (void)ssl;
  if (c->alpn == NULL) return SSL_TLSEXT_ERR_NOACK;
  if (SSL_select_next_proto(&sel, outlen, c->alpn, c->alpn_len, in, inlen)
      != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

/* tls_context() -> a context with no certificates, verifying nothing:
** TLS 1.2 at least, renegotiation refused, no compression. */
static int l_tls_context(lua_State *L) {
  tls_ctx *c = (tls_ctx *)lua_newuserdatauv(L, sizeof *c, 0);
  c->ctx = NULL;
  c->alpn = NULL;
  c->alpn_len = 0;
  luaL_setmetatable(L, CTX_MT);
  ERR_clear_error();
  c->ctx = SSL_CTX_new(TLS_method());
  if (c->ctx == NULL) return ssl_error(L, NULL, "create_default_context", NULL);
  SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION
                                  | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(c->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_alpn_select_cb(c->ctx, select_alpn, c);
  return 1;
}

/* ctx:set_verify(mode): "none", "optional" or "required". */
static int ctx_set_verify(lua_State *L) {
  static const char *const names[] = {"none", "optional", "required", NULL};
  static const int modes[] = {SSL_VERIFY_NONE, SSL_VERIFY_PEER,
                              SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT};
  tls_ctx *c = check_ctx(L, 1);
  SSL_CTX_set_verify(c->ctx, modes[luaL_checkoption(L, 2, NULL, names)], NULL);
  return 0;
}

typedef struct password {
  const char *p;
  size_t n;
} password;

/* OpenSSL's default would prompt on the terminal: give the password the
** caller passed, or fail. */
static int password_cb(char *buf, int size, int rwflag, void *ud) {
  password *pw = (password *)ud;
  (void)rwflag;
  if (pw->p == NULL || pw->n > (size_t)size) return -1;
  memcpy(buf, pw->p, pw->n);
  return (int)pw->n;
}

/* ctx:load_cert_chain(certfile [, keyfile [, password]]): the certificate
** chain (PEM) and its private key (keyfile nil: in certfile). */
static int ctx_load_cert_chain(lua_State *L) {
  tls_ctx *c = check_ctx(L, 1);
  const char *certfile = luaL_checkstring(L, 2);
  const char *keyfile = luaL_optstring(L, 3, certfile);
  password pw = {NULL, 0};
  if (!lua_isnoneornil(L, 4)) pw.p = luaL_checklstring(L, 4, &pw.n);
  check_readable(L, "load_cert_chain", certfile);
  check_readable(L, "load_cert_chain", keyfile);
  ERR_clear_error();
  SSL_CTX_set_default_passwd_cb(c->ctx, password_cb);
  SSL_CTX_set_default_passwd_cb_userdata(c->ctx, &pw);
  int ok = SSL_CTX_use_certificate_chain_file(c->ctx, certfile) == 1;
  const char *bad = certfile;
  if (ok) {
    ok = SSL_CTX_use_PrivateKey_file(c->ctx, keyfile, SSL_FILETYPE_PEM) == 1;
    bad = keyfile;
  }
  SSL_CTX_set_default_passwd_cb(c->ctx, NULL);
  SSL_CTX_set_default_passwd_cb_userdata(c->ctx, NULL);
  if (!ok) return ssl_error(L, NULL, "load_cert_chain", bad);
  if (SSL_CTX_check_private_key(c->ctx) != 1)
    return ssl_error(L, NULL, "load_cert_chain", keyfile);
  return 0;
}

/* Adds the PEM certificates of `data` to the context's store: how many. */
static int add_cadata(lua_State *L, tls_ctx *c, const char *data, size_t n) {
  BIO *bio = BIO_new_mem_buf(data, (int)n);
  X509_STORE *store = SSL_CTX_get_cert_store(c->ctx);
  int count = 0;
  X509 *x;
  if (bio == NULL) return ssl_error(L, NULL, "load_verify_locations", "cadata");
  while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
    int ok = X509_STORE_add_cert(store, x);
    X509_free(x);
    if (!ok && ERR_GET_REASON(ERR_peek_last_error()) != X509_R_CERT_ALREADY_IN_HASH_TABLE) {
      BIO_free(bio);
      return ssl_error(L, NULL, "load_verify_locations", "cadata");
    }
    count++;
  }
  BIO_free(bio);
  ERR_clear_error(); /* the end of the data reads as an error */
  return count;
}

/* ctx:load_verify_locations(cafile, capath, cadata): trusted CAs from a
** PEM file, a hashed directory, and/or PEM text (any may be nil). */
static int ctx_load_verify_locations(lua_State *L) {
  tls_ctx *c = check_ctx(L, 1);
  const char *cafile = luaL_optstring(L, 2, NULL);
  const char *capath = luaL_optstring(L, 3, NULL);
  size_t n = 0;
  const char *cadata = luaL_optlstring(L, 4, NULL, &n);
  if (cafile == NULL && capath == NULL && cadata == NULL)
    return luaL_error(L, "load_verify_locations: cafile, capath or cadata must be given");
  if (cafile != NULL) check_readable(L, "load_verify_locations", cafile);
  if (capath != NULL) check_readable(L, "load_verify_locations", capath);
  ERR_clear_error();
  if ((cafile != NULL || capath != NULL)
      && SSL_CTX_load_verify_locations(c->ctx, cafile, capath) != 1)
    return ssl_error(L, NULL, "load_verify_locations", cafile != NULL ? cafile : capath);
  if (cadata != NULL && add_cadata(L, c, cadata, n) == 0)
    return luaL_error(L, "load_verify_locations: cadata holds no PEM certificate");
  return 0;
}

/* ctx:set_default_verify_paths(): the system's CAs. */
static int ctx_set_default_verify_paths(lua_State *L) {
  tls_ctx *c = check_ctx(L, 1);
  ERR_clear_error();
  if (SSL_CTX_set_default_verify_paths(c->ctx) != 1)
    return ssl_error(L, NULL, "load_default_certs", NULL);
  return 0;
}

/* ctx:set_alpn_protocols(list): each a string of 1-255 bytes; the client
** offers them, the server picks among them. */
static int ctx_set_alpn_protocols(lua_State *L) {
  tls_ctx *c = check_ctx(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer count = luaL_len(L, 2);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (lua_Integer i = 1; i <= count; i++) {
    size_t n;
    lua_geti(L, 2, i);
    const char *p = lua_tolstring(L, -1, &n);
    if (p == NULL || n == 0 || n > 255)
      return luaL_error(L, "set_alpn_protocols: protocol %d must be a string of 1 to 255 bytes",
                        (int)i);
    lua_pop(L, 1);
    luaL_addchar(&b, (char)n);
    luaL_addlstring(&b, p, n);
  }
  luaL_pushresult(&b);
  size_t len;
  const char *wire = lua_tolstring(L, -1, &len);
  unsigned char *copy = NULL;
  if (len > 0) {
    copy = (unsigned char *)malloc(len);
    if (copy == NULL) return luaL_error(L, "set_alpn_protocols: not enough memory");
    memcpy(copy, wire, len);
    ERR_clear_error();
    if (SSL_CTX_set_alpn_protos(c->ctx, copy, (unsigned)len) != 0) {
      free(copy);
      return ssl_error(L, NULL, "set_alpn_protocols", NULL);
    }
  }
  free(c->alpn);
  c->alpn = copy;
  c->alpn_len = (unsigned)len;
  return 0;
}

/* ctx:set_ciphers(list): OpenSSL's cipher list syntax (TLS 1.2). */
static int ctx_set_ciphers(lua_State *L) {
  tls_ctx *c = check_ctx(L, 1);
  const char *list = luaL_checkstring(L, 2);
  ERR_clear_error();
  if (SSL_CTX_set_cipher_list(c->ctx, list) != 1) return ssl_error(L, NULL, "set_ciphers", list);
  return 0;
}

/* ---- TLS objects ---- */

static tls_obj *check_obj(lua_State *L) {
  tls_obj *o = (tls_obj *)luaL_checkudata(L, 1, OBJ_MT);
  if (o->ssl == NULL) luaL_argerror(L, 1, "TLS object already closed");
  return o;
}

static int obj_close(lua_State *L) {
  tls_obj *o = (tls_obj *)luaL_checkudata(L, 1, OBJ_MT);
  if (o->ssl != NULL) SSL_free(o->ssl); /* frees the BIOs; OpenSSL cleanses its keys */
  o->ssl = NULL;
  o->in = o->out = NULL;
  return 0;
}

static int is_ip_address(const char *host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* ctx:wrap(server_side, server_hostname, check_hostname) -> a TLS object.
** A client sends server_hostname as SNI (unless it is an address) and,
** with check_hostname, verification also requires the certificate to
** name it. */
static int ctx_wrap(lua_State *L) {
  tls_ctx *c = check_ctx(L, 1);
  int server_side = lua_toboolean(L, 2);
  const char *hostname = luaL_optstring(L, 3, NULL);
  int check_hostname = lua_toboolean(L, 4);
  tls_obj *o = (tls_obj *)lua_newuserdatauv(L, sizeof *o, 1);
  o->ssl = NULL;
  o->in = o->out = NULL;
  luaL_setmetatable(L, OBJ_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1); /* the context outlives us */
  ERR_clear_error();
  o->ssl = SSL_new(c->ctx);
  if (o->ssl == NULL) return ssl_error(L, NULL, "wrap", NULL);
  o->in = BIO_new(BIO_s_mem());
  o->out = BIO_new(BIO_s_mem());
  if (o->in == NULL || o->out == NULL) {
    BIO_free(o->in);
    BIO_free(o->out);
    o->in = o->out = NULL;
    return ssl_error(L, NULL, "wrap", NULL);
  }
  BIO_set_mem_eof_return(o->in, -1); /* empty: "want read", until feed_eof */
  SSL_set_bio(o->ssl, o->in, o->out);
  if (server_side) {
    SSL_set_accept_state(o->ssl);
  } else {
    SSL_set_connect_state(o->ssl);
    if (hostname != NULL) {
      int ip = is_ip_address(hostname);
      if (!ip && SSL_set_tlsext_host_name(o->ssl, hostname) != 1)
        return ssl_error(L, NULL, "wrap", hostname);
      if (check_hostname) {
        X509_VERIFY_PARAM *param = SSL_get0_param(o->ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, hostname)
                    : X509_VERIFY_PARAM_set1_host(param, hostname, 0);
        if (ok != 1) return ssl_error(L, NULL, "wrap", hostname);
      }
    }
  }
  return 1;
}

/* obj:feed(data): bytes received from the peer. */
static int obj_feed(lua_State *L) {
  tls_obj *o = check_obj(L);
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  if (n > 0 && BIO_write(o->in, data, (int)n) != (int)n)
    return luaL_error(L, "TLSObject:feed: not enough memory");
  return 0;
}

/* obj:feed_eof(): the peer's stream ended. */
static int obj_feed_eof(lua_State *L) {
  tls_obj *o = check_obj(L);
  BIO_set_mem_eof_return(o->in, 0);
  return 0;
}

/* Pushes what the memory BIO b holds, and empties it. */
static int push_drained(lua_State *L, BIO *b) {
  char *p;
  long n = BIO_get_mem_data(b, &p);
  if (n <= 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  lua_pushlstring(L, p, (size_t)n);
  (void)BIO_reset(b);
  return 1;
}

/* obj:take_outgoing() -> the bytes to send to the peer ("" if none). */
static int obj_take_outgoing(lua_State *L) { return push_drained(L, check_obj(L)->out); }

/* obj:take_incoming() -> the bytes fed but not read by TLS (after the
** peer's close_notify: what unwrap hands back). */
static int obj_take_incoming(lua_State *L) { return push_drained(L, check_obj(L)->in); }

/* Empties the thread's OpenSSL error queue, which must be empty before
** an SSL I/O call for SSL_get_error to be right (SSL_get_error(3)).  That
** function looks at the queue with ERR_peek_error, so peeking first is
** enough, and skips the clearing work in the usual case of an empty
** queue. */
static void clear_errors(void) {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

/* The result of an SSL call that returned ret: pushes "done",
** "want_read" or "closed" (the peer's close_notify), then the bytes the
** call produced for the peer (what take_outgoing would return); or
** raises the SSLError of the step `what` (the alert telling the peer why
** stays for take_outgoing). */
static int step_result(lua_State *L, tls_obj *o, int ret, const char *what) {
  switch (SSL_get_error(o->ssl, ret)) {
    case SSL_ERROR_NONE: lua_pushliteral(L, "done"); break;
    case SSL_ERROR_WANT_READ: lua_pushliteral(L, "want_read"); break;
    case SSL_ERROR_ZERO_RETURN: lua_pushliteral(L, "closed"); break;
    default: return ssl_error(L, o->ssl, what, NULL);
  }
  return 1 + push_drained(L, o->out);
}

/* obj:handshake() -> "done" | "want_read" | "closed", outgoing bytes */
static int obj_handshake(lua_State *L) {
  tls_obj *o = check_obj(L);
  clear_errors();
  return step_result(L, o, SSL_do_handshake(o->ssl), "do_handshake");
}

/* obj:write(data) -> "done" | "want_read", outgoing bytes: all of data
** was encrypted into the outgoing bytes (memory BIOs take everything). */
static int obj_write(lua_State *L) {
  tls_obj *o = check_obj(L);
  size_t n, written = 0;
  const char *data = luaL_checklstring(L, 2, &n);
  if (n == 0) {
    lua_pushliteral(L, "done");
    return 1 + push_drained(L, o->out);
  }
  clear_errors();
  int ret = SSL_write_ex(o->ssl, data, n, &written);
  return step_result(L, o, ret, "write");
}

/* obj:read(max) -> data, status, outgoing bytes; or nil, "want_read" |
** "closed" (the peer's close_notify), outgoing bytes.  Reads as many
** records as are already here, up to max: plaintext is never longer than
** the bytes fed, which bounds the buffer.  With data, status "want_read"
** says that every byte fed has been read (the next read would only want
** more), "done" that there may be more.  The buffer is cleansed once
** copied into the Lua string. */
static int obj_read(lua_State *L) {
  tls_obj *o = check_obj(L);
  lua_Integer max = luaL_checkinteger(L, 2);
  luaL_argcheck(L, max >= 1, 2, "max_bytes must be >= 1");
  char small[16384];
  size_t cap = (size_t)max, got = 0;
  if (cap > sizeof small) { /* only what is here, or what small holds */
    size_t avail = (size_t)SSL_pending(o->ssl) + BIO_ctrl_pending(o->in);
    if (avail < cap) cap = avail > sizeof small ? avail : sizeof small;
  }
  char *buf = cap <= sizeof small ? small : (char *)lua_newuserdatauv(L, cap, 0);
  int last = 1;
  clear_errors();
  while (got < cap) {
    size_t n = 0;
    last = SSL_read_ex(o->ssl, buf + got, cap - got, &n);
    if (!last) break;
    got += n;
  }
  if (got > 0) {
    /* a failure after data is the next read's to report */
    int drained = !last && SSL_get_error(o->ssl, last) == SSL_ERROR_WANT_READ;
    clear_errors();
    lua_pushlstring(L, buf, got);
    OPENSSL_cleanse(buf, got);
    if (drained) lua_pushliteral(L, "want_read");
    else lua_pushliteral(L, "done");
    return 2 + push_drained(L, o->out);
  }
  lua_pushnil(L);
  return 1 + step_result(L, o, last, "read");
}

/* obj:shutdown() -> "done" (both close_notify sent and received) |
** "want_read" (ours is in the outgoing bytes; the peer's is to come),
** outgoing bytes */
static int obj_shutdown(lua_State *L) {
  tls_obj *o = check_obj(L);
  clear_errors();
  int ret = SSL_shutdown(o->ssl);
  if (ret == 0) ret = SSL_shutdown(o->ssl); /* look for the peer's close_notify */
  if (ret == 1) {
    lua_pushliteral(L, "done");
    return 1 + push_drained(L, o->out);
  }
  return step_result(L, o, ret, "unwrap");
}

/* obj:handshake_done() -> whether the handshake has completed */
static int obj_handshake_done(lua_State *L) {
  tls_obj *o = check_obj(L);
  lua_pushboolean(L, SSL_is_init_finished(o->ssl));
  return 1;
}

static int obj_server_side(lua_State *L) {
  tls_obj *o = check_obj(L);
  lua_pushboolean(L, SSL_is_server(o->ssl));
  return 1;
}

/* obj:version() -> "TLSv1.3", or nil before the handshake */
static int obj_version(lua_State *L) {
  tls_obj *o = check_obj(L);
  if (!SSL_is_init_finished(o->ssl)) return 0;
  lua_pushstring(L, SSL_get_version(o->ssl));
  return 1;
}

/* obj:cipher() -> name, protocol, secret bits (nil before the handshake) */
static int obj_cipher(lua_State *L) {
  tls_obj *o = check_obj(L);
  const SSL_CIPHER *c = SSL_get_current_cipher(o->ssl);
  if (c == NULL) return 0;
  lua_pushstring(L, SSL_CIPHER_get_name(c));
  lua_pushstring(L, SSL_CIPHER_get_version(c));
  lua_pushinteger(L, SSL_CIPHER_get_bits(c, NULL));
  return 3;
}

/* obj:selected_alpn_protocol() -> the protocol agreed, or nil */
static int obj_selected_alpn(lua_State *L) {
  tls_obj *o = check_obj(L);
  const unsigned char *p;
  unsigned n;
  SSL_get0_alpn_selected(o->ssl, &p, &n);
  if (n == 0) return 0;
  lua_pushlstring(L, (const char *)p, n);
  return 1;
}

/* ---- the peer's certificate, shaped like Python's getpeercert() ---- */

/* A name as Python gives it: a list of RDNs, each a list of
** {"commonName", "value"} pairs. */
static void push_x509_name(lua_State *L, X509_NAME *name) {
  int n = X509_NAME_entry_count(name), rdn = 0, last_set = -1;
  lua_newtable(L);
  for (int i = 0; i < n; i++) {
    X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
    int set = X509_NAME_ENTRY_set(e);
    if (set != last_set) {
      if (last_set != -1) lua_seti(L, -2, ++rdn);
      lua_newtable(L);
      last_set = set;
    }
    ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(e);
    int nid = OBJ_obj2nid(obj);
    char oid[80];
    const char *key = nid != NID_undef ? OBJ_nid2ln(nid) : NULL;
    if (key == NULL) {
      OBJ_obj2txt(oid, sizeof oid, obj, 1);
      key = oid;
    }
    unsigned char *utf8 = NULL;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
    lua_createtable(L, 2, 0);
    lua_pushstring(L, key);
    lua_seti(L, -2, 1);
    lua_pushlstring(L, len > 0 ? (const char *)utf8 : "", len > 0 ? (size_t)len : 0);
    OPENSSL_free(utf8);
    lua_seti(L, -2, 2);
    lua_seti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  }
  if (last_set != -1) lua_seti(L, -2, ++rdn);
}

static void push_asn1_time(lua_State *L, const ASN1_TIME *t) {
  BIO *b = BIO_new(BIO_s_mem());
  char *p;
  long n;
  if (b == NULL || ASN1_TIME_print(b, t) != 1) {
    BIO_free(b);
    lua_pushnil(L);
    return;
  }
  n = BIO_get_mem_data(b, &p);
  lua_pushlstring(L, p, (size_t)n);
  BIO_free(b);
}

static void push_pair(lua_State *L, const char *kind, const char *value, size_t n) {
  lua_createtable(L, 2, 0);
  lua_pushstring(L, kind);
  lua_seti(L, -2, 1);
  lua_pushlstring(L, value, n);
  lua_seti(L, -2, 2);
  lua_seti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* subjectAltName: a list of {"DNS", "localhost"}, {"IP Address", "..."}. */
static void push_alt_names(lua_State *L, X509 *cert) {
  GENERAL_NAMES *names = (GENERAL_NAMES *)X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  lua_newtable(L);
  if (names == NULL) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
    GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
    const ASN1_STRING *s;
    switch (g->type) {
      case GEN_DNS: s = g->d.dNSName; goto text;
      case GEN_EMAIL: s = g->d.rfc822Name; goto text;
      case GEN_URI: s = g->d.uniformResourceIdentifier; goto text;
      text:
        push_pair(L, g->type == GEN_DNS ? "DNS" : g->type == GEN_EMAIL ? "email" : "URI",
                  (const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
        break;
      case GEN_IPADD: {
        char text[INET6_ADDRSTRLEN];
        int len = ASN1_STRING_length(g->d.iPAddress);
        const unsigned char *p = ASN1_STRING_get0_data(g->d.iPAddress);
        if (len == 4) inet_ntop(AF_INET, p, text, sizeof text);
        else if (len == 16) inet_ntop(AF_INET6, p, text, sizeof text);
        else break;
        push_pair(L, "IP Address", text, strlen(text));
        break;
      }
      default: break;
    }
  }
  GENERAL_NAMES_free(names);
}

static void push_serial(lua_State *L, X509 *cert) {
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
  char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
  lua_pushstring(L, hex != NULL ? hex : "");
  OPENSSL_free(hex);
  BN_free(bn);
}

/* obj:getpeercert([binary_form]) -> as Python: nil without a certificate,
** {} when it was not verified (verify mode "none"), else a table with
** subject, issuer, version, serialNumber, notBefore, notAfter,
** subjectAltName; binary_form: the DER bytes. */
static int obj_getpeercert(lua_State *L) {
  tls_obj *o = check_obj(L);
  int binary = lua_toboolean(L, 2);
  if (!SSL_is_init_finished(o->ssl))
    return luaL_error(L, "getpeercert: the handshake has not completed yet");
  X509 *cert = SSL_get1_peer_certificate(o->ssl);
  if (cert == NULL) return 0;
  if (binary) {
    unsigned char *der = NULL;
    int n = i2d_X509(cert, &der);
    X509_free(cert);
    if (n < 0) return ssl_error(L, NULL, "getpeercert", NULL);
    lua_pushlstring(L, (const char *)der, (size_t)n);
    OPENSSL_free(der);
    return 1;
  }
  lua_newtable(L);
  if ((SSL_get_verify_mode(o->ssl) & SSL_VERIFY_PEER) == 0) {
    X509_free(cert);
    return 1;
  }
  push_x509_name(L, X509_get_subject_name(cert));
  lua_setfield(L, -2, "subject");
  push_x509_name(L, X509_get_issuer_name(cert));
  lua_setfield(L, -2, "issuer");
  lua_pushinteger(L, X509_get_version(cert) + 1);
  lua_setfield(L, -2, "version");
  push_serial(L, cert);
  lua_setfield(L, -2, "serialNumber");
  push_asn1_time(L, X509_get0_notBefore(cert));
  lua_setfield(L, -2, "notBefore");
  push_asn1_time(L, X509_get0_notAfter(cert));
  lua_setfield(L, -2, "notAfter");
  push_alt_names(L, cert);
  lua_setfield(L, -2, "subjectAltName");
  X509_free(cert);
  return 1;
}

static int obj_tostring(lua_State *L) {
  tls_obj *o = (tls_obj *)luaL_checkudata(L, 1, OBJ_MT);
  lua_pushfstring(L, "trio_asyncio.TLSObject (%s%s): %p",
                  o->ssl == NULL ? "closed" : SSL_is_server(o->ssl) ? "server" : "client",
                  o->ssl != NULL && SSL_is_init_finished(o->ssl) ? ", handshake done" : "",
                  (void *)o);
  return 1;
}

static const luaL_Reg ctx_meta[] = {
  {"__gc", ctx_gc},
  {NULL, NULL},
};

static const luaL_Reg ctx_methods[] = {
  {"set_verify", ctx_set_verify},
  {"load_cert_chain", ctx_load_cert_chain},
  {"load_verify_locations", ctx_load_verify_locations},
  {"set_default_verify_paths", ctx_set_default_verify_paths},
  {"set_alpn_protocols", ctx_set_alpn_protocols},
  {"set_ciphers", ctx_set_ciphers},
  {"wrap", ctx_wrap},
  {NULL, NULL},
};

static const luaL_Reg obj_meta[] = {
  {"__gc", obj_close},
  {"__close", obj_close},
  {"__tostring", obj_tostring},
  {NULL, NULL},
};

static const luaL_Reg obj_methods[] = {
  {"feed", obj_feed},
  {"feed_eof", obj_feed_eof},
  {"take_outgoing", obj_take_outgoing},
  {"take_incoming", obj_take_incoming},
  {"handshake", obj_handshake},
  {"write", obj_write},
  {"read", obj_read},
  {"shutdown", obj_shutdown},
  {"handshake_done", obj_handshake_done},
  {"server_side", obj_server_side},
  {"version", obj_version},
  {"cipher", obj_cipher},
  {"selected_alpn_protocol", obj_selected_alpn},
  {"getpeercert", obj_getpeercert},
  {"close", obj_close},
  {NULL, NULL},
};

static const luaL_Reg tls_funcs[] = {
  {"tls_context", l_tls_context},
  {NULL, NULL},
};

int ta_open_tls(lua_State *L) {
  ta_newclass(L, CTX_MT, ctx_meta, ctx_methods, "__index");
  lua_pop(L, 1);
  ta_newclass(L, OBJ_MT, obj_meta, obj_methods, "__index");
  lua_pop(L, 1);
  ta_register(L, tls_funcs);
  lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
  lua_setfield(L, -3, "openssl_version");
  return 0;
}
