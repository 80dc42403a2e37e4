/*
** oserror.c — OS failures as trio_asyncio.OSError objects: the class
** chosen from the libuv error as Python chooses it from errno, with the
** fields errno (the POSIX number), code ("ECONNREFUSED"), message (what was
** being done: the caller's text, then libuv's) and filename.
*/
#include <stdarg.h>

#include "io/io.h"

/* The OSError subclass Python would raise for this libuv error. */
static const char *class_of(int uverr) {
  switch (uverr) {
    case UV_ECONNREFUSED: return "ConnectionRefusedError";
    case UV_ECONNRESET: return "ConnectionResetError";
    case UV_ECONNABORTED: return "ConnectionAbortedError";
    case UV_EPIPE: return "BrokenPipeError";
    case UV_ENOENT: return "FileNotFoundError";
    case UV_EEXIST: return "FileExistsError";
    case UV_EACCES: case UV_EPERM: return "PermissionError";
    case UV_EISDIR: return "IsADirectoryError";
    case UV_ENOTDIR: return "NotADirectoryError";
    case UV_EAI_ADDRFAMILY: case UV_EAI_AGAIN: case UV_EAI_BADFLAGS: case UV_EAI_BADHINTS:
    case UV_EAI_CANCELED: case UV_EAI_FAIL: case UV_EAI_FAMILY: case UV_EAI_MEMORY:
    case UV_EAI_NODATA: case UV_EAI_NONAME: case UV_EAI_OVERFLOW: case UV_EAI_PROTOCOL:
    case UV_EAI_SERVICE: case UV_EAI_SOCKTYPE:
      return "gaierror";
    default: return "OSError";
  }
}

static int is_gai(int uverr) { return class_of(uverr)[0] == 'g'; }

void ta_push_oserror_v(lua_State *L, int uverr, const char *filename, const char *fmt,
                       va_list ap) {
  const char *what = lua_pushvfstring(L, fmt, ap);
  const char *msg = lua_pushfstring(L, "%s: %s", what, uv_strerror(uverr));
  ta_push_error(L, ta_engine_get(L), class_of(uverr), msg);
  lua_replace(L, -3);
  lua_pop(L, 1);
  if (!lua_istable(L, -1)) return;
  /* libuv's codes are -errno on Unix; getaddrinfo's have their own space */
  lua_pushinteger(L, is_gai(uverr) ? uverr : -uverr);
  lua_setfield(L, -2, "errno");
  lua_pushstring(L, uv_err_name(uverr));
  lua_setfield(L, -2, "code");
  if (filename != NULL) {
    lua_pushstring(L, filename);
    lua_setfield(L, -2, "filename");
  }
}

void ta_push_oserror(lua_State *L, int uverr, const char *filename, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ta_push_oserror_v(L, uverr, filename, fmt, ap);
  va_end(ap);
}

int ta_oserror(lua_State *L, int uverr, const char *filename, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ta_push_oserror_v(L, uverr, filename, fmt, ap);
  va_end(ap);
  return lua_error(L);
}
