/*
** pipe.c — what is particular to Unix stream sockets (uv_pipe_t):
** connecting.  The socket has its fd from the start (sock.c makes it, so
** that options can be set before bind or connect), and connect(2) on a
** Unix socket finishes at once, so it is done here directly (which also
** allows abstract names, that uv_pipe_connect cannot express).
*/
#include <errno.h>
#include <sys/socket.h>

#include "io/sock.h"

int ta_pipe_connect(ta_sock *s, const struct sockaddr *sa, socklen_t len) {
  int r;
  do {
    r = connect(ta_sock_fd(s), sa, len);
  } while (r != 0 && errno == EINTR);
  return r == 0 ? 0 : -errno;
}
