/*
** sock.h — sockets on libuv handles, flavor-neutral (io/ layer).
**
** One C object per socket: a uv_tcp_t (AF_INET/AF_INET6 streams), a
** uv_pipe_t (AF_UNIX streams) or a uv_udp_t (datagrams), with what both
** faces need to wait on it: received bytes (or datagrams) kept in C until
** Lua takes them, writes in flight, a pending accept or connect, and two
** waiter slots (io.h), one per direction.  The Lua object
** ("trio_asyncio.socket", the trio.socket socket) is a box pointing at it;
** the socket is freed only in libuv's close callback, so it may outlive
** the box (closing) and the box may outlive it (closed: the pointer is
** NULL).
**
** Every operation a face can wait for is a "try" function called in Lua
** context: it returns the number of values it pushed (done), TA_IO_AGAIN
** (not yet: the face waits on the slot of that side and calls it again
** once woken), or a negative libuv error code (nothing pushed; the face
** raises it in its own style).
*/
#ifndef TA_IO_SOCK_H
#define TA_IO_SOCK_H

#include <sys/socket.h>

#include "io/io.h"

#define TA_SOCKET_MT "trio_asyncio.socket"

enum { TA_SK_TCP, TA_SK_PIPE, TA_SK_UDP };
enum { TA_SIDE_READ = 0, TA_SIDE_WRITE = 1 };
#define TA_IO_AGAIN (-100000)

/* Received stream bytes stop being read from the kernel above this (the
** peer then feels TCP flow control), and datagrams above these. */
#define TA_RBUF_HIGH (256 * 1024)
#define TA_DGRAM_MAX_QUEUE 256

typedef struct ta_sock ta_sock;
typedef struct ta_sockbox ta_sockbox;

/* A write (or datagram send, or shutdown) libuv holds: the Lua string it
** points into is anchored by `ref` until libuv is done with it. */
typedef struct ta_wreq {
  union { uv_write_t w; uv_udp_send_t u; uv_shutdown_t sh; } req;
  ta_sock *s;
  struct ta_wreq *prev, *next;
  int ref;
  size_t len;
} ta_wreq;

/* A datagram received, waiting for recvfrom. */
typedef struct ta_dgram {
  struct ta_dgram *next;
  struct sockaddr_storage from;
  size_t len;
  char data[];
} ta_dgram;

struct ta_sock {
  ta_owned owned;             /* first: the engine's list of handles */
  union { uv_handle_t h; uv_stream_t s; uv_tcp_t tcp; uv_pipe_t pipe; uv_udp_t udp; } u;
  ta_engine *E;
  ta_sockbox *box;            /* the Lua object, NULL once collected */
  unsigned char kind;         /* TA_SK_* */
  unsigned char closing;      /* uv_close called */
  unsigned char listening, reading, read_paused, connecting, connected;
  unsigned char send_shut;    /* shutdown(SHUT_WR) done or queued */
  int connect_status;         /* of the last connect once finished: 0 or an error */
  /* received: stream bytes rbuf[rpos, rlen), or datagrams */
  char *rbuf;
  size_t rpos, rlen, rcap;
  size_t rnext;               /* size of the next buffer, 0 for the small one */
  int rerr;                   /* UV_EOF at the end of the stream, or an error; 0 */
  ta_dgram *dq_head, *dq_tail;
  size_t dq_count;
  /* writes in flight, and those done whose strings wait to be released */
  ta_wreq *wreqs, *wdone;
  size_t nwreqs, wbytes;      /* requests in flight, and their bytes */
  int werr;                   /* first write error, 0 */
  ta_waiter slot[2];          /* TA_SIDE_READ, TA_SIDE_WRITE */
  ta_fdwatcher accept_w;      /* readiness of a listening socket (fd table) */
  unsigned char accept_watching;
};

/* The Lua object.  family/type/proto stay readable after close (short:
** the box stays 24 bytes with its tag; a socket the kernel made has an
** AF_* family, a SOCK_STREAM or SOCK_DGRAM type, a protocol below 263). */
struct ta_sockbox {
  const char *tag;            /* &ta_sockbox_tag (ta_totagged) */
  ta_sock *s;                 /* NULL once closed */
  short family, type, proto;
  unsigned char stream_sending; /* a Trio SocketStream's send_all (or
                              ** wait_send_all_might_not_block) is under way
                              ** on it: set and cleared by trio/socket.c */
};

/* ---- the object (sock.c) ---- */
/* What only sock.c writes into a socket object (its tag). */
extern const char ta_sockbox_tag;
/* The socket object at idx, NULL if it is anything else (told by size
** and tag: every socket operation asks). */
static inline ta_sockbox *ta_tosockbox(lua_State *L, int idx) {
  return (ta_sockbox *)ta_totagged(L, idx, sizeof(ta_sockbox), &ta_sockbox_tag);
}
/* The same, or an argument error. */
ta_sockbox *ta_checksockbox(lua_State *L, int idx);
/* The open socket at idx, or raises OSError EBADF naming fname. */
ta_sock *ta_checksock(lua_State *L, int idx, const char *fname);
/* The socket at idx or NULL when closed (argument errors still raise). */
ta_sock *ta_tosock(lua_State *L, int idx);
/* A new socket object of the kind for (family, type) pushed, its handle
** initialised but without an fd; NULL with *err set if unsupported. */
ta_sock *ta_sock_new(lua_State *L, int family, int type, int proto);
/* The same on an fd that the socket takes over (NULL, fd left open, on
** failure with *err set). */
ta_sock *ta_sock_adopt(lua_State *L, int family, int type, int proto, int fd, int *err);
/* Wakes whatever waits on either side (something changed). */
void ta_sock_wake_all(ta_sock *s);
/* Releases the strings of writes libuv is done with (Lua context).
** Inline: every transport read and write checks, and rarely finds any. */
void ta_sock_reap_done(lua_State *L, ta_sock *s);
static inline void ta_sock_reap(lua_State *L, ta_sock *s) {
  if (s->wdone != NULL) ta_sock_reap_done(L, s);
}
/* Closes it (Lua context): waiters are woken (they will see it closed). */
void ta_sock_close(lua_State *L, ta_sockbox *b);
/* Address <-> Lua: {host, port} or a path string.  ta_sock_toaddr raises
** an argument error naming fname for a bad shape. */
socklen_t ta_sock_toaddr(lua_State *L, int idx, int family, struct sockaddr_storage *ss,
                         const char *fname, int argn);
void ta_sock_pushaddr(lua_State *L, const struct sockaddr *sa, socklen_t len);
/* "127.0.0.1:80", "[::1]:80" or the path, for messages. */
const char *ta_sock_addrstr(lua_State *L, const struct sockaddr *sa, socklen_t len);
int ta_sock_fd(ta_sock *s);

/* ---- streams: TCP and Unix (stream.c) ---- */
/* Listening is done by hand (listen(2), readiness from the fd table,
** accept4(2)) rather than with uv_listen: libuv accepts ahead (holding an
** fd) and drops connections on EMFILE, where Trio leaves them queued and
** reports the error. */
int ta_stream_listen(ta_sock *s, int backlog);
int ta_stream_try_accept(lua_State *L, ta_sock *s);     /* pushes the new socket */
void ta_stream_stop_accepting(ta_sock *s);
int ta_stream_try_recv(lua_State *L, ta_sock *s, size_t max); /* pushes the bytes ("" at EOF) */
/* Writes the string at idx from offset off: what the socket takes now is
** written at once, the rest is queued.  Returns 1 when all was written,
** 0 when some is queued, or an error (nothing queued). */
int ta_stream_write(lua_State *L, ta_sock *s, int idx, size_t off, size_t *written);
/* The same for the len bytes at p, which are (or end) that string's,
** for a caller that has them already. */
int ta_stream_write_bytes(lua_State *L, ta_sock *s, int idx, const char *p, size_t len, size_t *written);
/* Done once the writes in flight are: 0 (nothing pushed), TA_IO_AGAIN, or
** the error of one. */
int ta_stream_try_drain(ta_sock *s);
int ta_stream_shutdown(ta_sock *s);
void ta_stream_pause_reading(ta_sock *s, int paused);
/* Bytes received and not taken yet. */
static inline size_t ta_stream_buffered(const ta_sock *s) { return s->rlen - s->rpos; }

/* ---- connect (tcp.c, pipe.c) ---- */
int ta_sock_start_connect(lua_State *L, ta_sock *s, const struct sockaddr *sa, socklen_t len);
int ta_sock_try_connect(ta_sock *s);                    /* 0 when connected */
int ta_pipe_connect(ta_sock *s, const struct sockaddr *sa, socklen_t len);

/* ---- datagrams (udp.c) ---- */
int ta_udp_try_recvfrom(lua_State *L, ta_sock *s, size_t max, int with_addr);
/* Sends the string at idx to sa (NULL: the connected peer): 1 sent, 0
** queued, or an error. */
int ta_udp_send(lua_State *L, ta_sock *s, int idx, const struct sockaddr *sa);
int ta_udp_connect(ta_sock *s, const struct sockaddr *sa);

/* ---- name resolution (dns.c) ---- */
#define TA_DNS_MT "trio_asyncio.DNSRequest"
/* dns_getaddrinfo / dns_getnameinfo start a request object; its slot 0 is
** woken when it finished; ta_dns_try_result pushes the outcome: n values,
** TA_IO_AGAIN, or -1 with the error (a gaierror) pushed. */
int ta_dns_try_result(lua_State *L, int idx);
/* The slot of the request at idx (NULL once it was consumed). */
ta_waiter *ta_dns_slot(lua_State *L, int idx);

/* The waiter slot `side` of the io object at idx (a socket or a request),
** or an argument error naming fname. */
ta_waiter *ta_io_slot(lua_State *L, int idx, int side, const char *fname);

int ta_open_sock(lua_State *L);
int ta_open_dns(lua_State *L);

#endif
