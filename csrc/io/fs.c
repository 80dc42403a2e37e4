/*
** fs.c — files on uv_fs_*: open, read, write, close, stat, mkdir, unlink,
** rename, scandir, each a request of io.h run on libuv's threadpool (the
** scheduler never blocks on a file), completed into a parked Trio task or
** an asyncio Future by the faces; the Lua face (lua/trio/files.lua) builds
** trio.open_file, trio.Path and asyncio.open_file on these.
**
** An open file is a FileHandle userdata holding an fcore: the fd, the
** requests in flight on it, and a reference count (the userdata and each
** request), so that a request abandoned by its waiter never sees a freed
** fd record.  Closing while requests are in flight defers the close until
** they complete (the fd is never closed under a running read, so it
** cannot be reused by another open meanwhile); a read that completes on a
** file being closed delivers ClosedResourceError instead of its data.
** The fd is also closed when the FileHandle is collected.
**
** A read of n bytes (or of everything, n < 0) loops inside the libuv
** callbacks until it has n bytes or meets EOF, as Python's buffered read
** does; a "some" read returns what one read(2) gave (readline's chunks).
** A write loops until every byte is written.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"

#define FILE_MT "trio_asyncio.FileHandle"
#define CHUNK 65536

typedef struct fsreq fsreq;

typedef struct fcore {
  int fd;                     /* -1 once closed (or closing) */
  int pending;                /* requests in flight using fd */
  int refs;                   /* the FileHandle + each request */
  int closing;                /* close asked; fd stays open while pending */
  int close_fd;               /* the fd a deferred close closes */
  fsreq *close_req;           /* that deferred close, NULL if none */
  int orphan;                 /* the FileHandle was collected */
  char *name;
} fcore;

typedef struct fhandle {
  fcore *c;
} fhandle;

enum { K_OPEN, K_CLOSE, K_READ, K_WRITE, K_STAT, K_LSTAT, K_FSTAT, K_MKDIR, K_RMDIR, K_UNLINK,
       K_RENAME, K_SCANDIR };

static const char *const opnames[] = {"open", "close", "read", "write", "stat", "lstat", "stat",
                                      "mkdir", "rmdir", "unlink", "rename", "scandir"};

struct fsreq {
  ta_ioreq req;               /* first */
  uv_fs_t fs;
  int kind;
  int started;                /* a uv_fs_t call is out (cleanup needed) */
  fcore *fc;                  /* the file, for fd operations */
  int fd;
  char *path, *path2;
  char *data;                 /* read: the buffer; write: the bytes */
  size_t len, done;           /* read: wanted (SIZE_MAX: all), got; write: total, written */
  size_t cap;
  int some;                   /* read: one read(2) only */
  int flags, mode;
  ssize_t result;             /* < 0: libuv error */
  uv_stat_t st;
  int closed_under;           /* a read that completed while the file was closing */
};

static void fcore_unref(fcore *c) {
  if (--c->refs > 0) return;
  free(c->name);
  free(c);
}

/* The last request on an orphaned file closes its fd. */
static void fcore_idle(uv_loop_t *loop, fcore *c);

static void fs_cb(uv_fs_t *req);

static void start_close(uv_loop_t *loop, fsreq *r) {
  int rc;
  r->started = 1;
  r->fs.data = r;
  rc = uv_fs_close(loop, &r->fs, r->fd, fs_cb);
  if (rc < 0) { /* cannot happen for a valid fd: complete with the error */
    r->started = 0;
    r->result = rc;
    ta_ioreq_complete(&r->req);
  }
}

static void fcore_idle(uv_loop_t *loop, fcore *c) {
  if (c->pending > 0) return;
  if (c->close_req != NULL) {
    fsreq *r = c->close_req;
    c->close_req = NULL;
    start_close(loop, r);
  } else if (c->close_fd >= 0) {
    close(c->close_fd);
    c->close_fd = -1;
  }
}

static void fsreq_release(ta_ioreq *q) {
  fsreq *r = (fsreq *)q;
  if (r->started) uv_fs_req_cleanup(&r->fs);
  if (r->kind == K_OPEN && r->result >= 0 && r->fd >= 0) close(r->fd); /* never delivered */
  if (r->fc != NULL) fcore_unref(r->fc);
  free(r->path);
  free(r->path2);
  free(r->data);
  free(r);
}

static void fsreq_cancel(ta_ioreq *q) {
  fsreq *r = (fsreq *)q;
  if (r->started) uv_cancel((uv_req_t *)&r->fs);
}

static int submit(fsreq *r);

static void fs_cb(uv_fs_t *req) {
  fsreq *r = (fsreq *)req->data;
  ssize_t res = req->result;
  uv_loop_t *loop = req->loop;
  if (r->kind == K_READ && res > 0) {
    r->done += (size_t)res;
    res = 0;
    if (!r->some && !r->req.abandoned && !(r->fc != NULL && r->fc->closing) &&
        (r->len == SIZE_MAX || r->done < r->len)) { /* more: read again */
      uv_fs_req_cleanup(&r->fs);
      r->started = 0;
      if (submit(r) == 0) return;
      res = r->result;
    }
  } else if (r->kind == K_WRITE && res >= 0) {
    r->done += (size_t)res;
    if (r->done < r->len && !r->req.abandoned) {
      uv_fs_req_cleanup(&r->fs);
      r->started = 0;
      if (submit(r) == 0) return;
      res = r->result;
    }
  }
  r->result = res;
  if (r->kind == K_OPEN && res >= 0) r->fd = (int)res;
  if ((r->kind == K_STAT || r->kind == K_LSTAT || r->kind == K_FSTAT) && res >= 0) r->st = req->statbuf;
  if (r->fc != NULL && r->kind != K_CLOSE) {
    fcore *c = r->fc;
    if (c->closing && r->kind == K_READ) r->closed_under = 1;
    c->pending--;
    fcore_idle(loop, c);
  }
  ta_ioreq_complete(&r->req);
}

/* Issues the libuv call for r; 0, or -1 with r->result the error. */
static int submit(fsreq *r) {
  uv_loop_t *loop = r->req.E->loop;
  uv_fs_t *fs = &r->fs;
  int rc = 0;
  fs->data = r;
  switch (r->kind) {
    case K_OPEN: rc = uv_fs_open(loop, fs, r->path, r->flags, r->mode, fs_cb); break;
    case K_READ: {
      uv_buf_t b;
      size_t want = r->some ? r->len : (r->len == SIZE_MAX ? CHUNK : r->len - r->done);
      if (r->done + want > r->cap) {
        size_t cap = r->cap ? r->cap : CHUNK;
        char *p;
        while (cap < r->done + want) cap *= 2;
        p = (char *)realloc(r->data, cap);
        if (p == NULL) {
          r->result = UV_ENOMEM;
          return -1;
        }
        r->data = p;
        r->cap = cap;
      }
      b = uv_buf_init(r->data + r->done, (unsigned)want);
      rc = uv_fs_read(loop, fs, r->fd, &b, 1, -1, fs_cb);
      break;
    }
    case K_WRITE: {
      uv_buf_t b = uv_buf_init(r->data + r->done, (unsigned)(r->len - r->done));
      rc = uv_fs_write(loop, fs, r->fd, &b, 1, -1, fs_cb);
      break;
    }
    case K_STAT: rc = uv_fs_stat(loop, fs, r->path, fs_cb); break;
    case K_LSTAT: rc = uv_fs_lstat(loop, fs, r->path, fs_cb); break;
    case K_FSTAT: rc = uv_fs_fstat(loop, fs, r->fd, fs_cb); break;
    case K_MKDIR: rc = uv_fs_mkdir(loop, fs, r->path, r->mode, fs_cb); break;
    case K_RMDIR: rc = uv_fs_rmdir(loop, fs, r->path, fs_cb); break;
    case K_UNLINK: rc = uv_fs_unlink(loop, fs, r->path, fs_cb); break;
    case K_RENAME: rc = uv_fs_rename(loop, fs, r->path, r->path2, fs_cb); break;
    case K_SCANDIR: rc = uv_fs_scandir(loop, fs, r->path, 0, fs_cb); break;
    default: rc = UV_EINVAL;
  }
  if (rc < 0) {
    r->result = rc;
    return -1;
  }
  r->started = 1;
  return 0;
}

/* ---- delivery ---- */

static void push_closed(lua_State *L, ta_engine *E, fsreq *r) {
  ta_push_error(L, E, "ClosedResourceError",
                lua_pushfstring(L, "%s: the file was closed while the %s was pending",
                                r->path ? r->path : "file", opnames[r->kind]));
  lua_remove(L, -2);
}

static void setnum(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void settime(lua_State *L, const char *k, uv_timespec_t ts) {
  char ns[32];
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  lua_setfield(L, -2, k);
  snprintf(ns, sizeof ns, "%s_ns", k);
  lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000000000 + ts.tv_nsec);
  lua_setfield(L, -2, ns);
}

/* Python's os.stat_result field names. */
static void push_stat(lua_State *L, const uv_stat_t *s) {
  lua_createtable(L, 0, 16);
  setnum(L, "st_mode", (lua_Integer)s->st_mode);
  setnum(L, "st_ino", (lua_Integer)s->st_ino);
  setnum(L, "st_dev", (lua_Integer)s->st_dev);
  setnum(L, "st_nlink", (lua_Integer)s->st_nlink);
  setnum(L, "st_uid", (lua_Integer)s->st_uid);
  setnum(L, "st_gid", (lua_Integer)s->st_gid);
  setnum(L, "st_size", (lua_Integer)s->st_size);
  setnum(L, "st_rdev", (lua_Integer)s->st_rdev);
  setnum(L, "st_blksize", (lua_Integer)s->st_blksize);
  setnum(L, "st_blocks", (lua_Integer)s->st_blocks);
  settime(L, "st_atime", s->st_atim);
  settime(L, "st_mtime", s->st_mtim);
  settime(L, "st_ctime", s->st_ctim);
}

static void push_file(lua_State *L, fsreq *r);

static int fsreq_deliver(lua_State *L, ta_ioreq *q) {
  fsreq *r = (fsreq *)q;
  ta_engine *E = q->E;
  if (r->closed_under) {
    push_closed(L, E, r);
    return -1;
  }
  if (r->result < 0) {
    const char *name = r->path ? r->path : "file";
    if (r->kind == K_RENAME)
      ta_push_oserror(L, (int)r->result, r->path, "rename %s -> %s", r->path, r->path2);
    else
      ta_push_oserror(L, (int)r->result, r->fc == NULL ? r->path : NULL, "%s %s", opnames[r->kind], name);
    if (r->fc != NULL && r->path != NULL && lua_istable(L, -1)) {
      lua_pushstring(L, r->path);
      lua_setfield(L, -2, "filename");
    }
    return -1;
  }
  switch (r->kind) {
    case K_OPEN: push_file(L, r); return 1;
    case K_READ: lua_pushlstring(L, r->data ? r->data : "", r->done); return 1;
    case K_WRITE: lua_pushinteger(L, (lua_Integer)r->done); return 1;
    case K_STAT: case K_LSTAT: case K_FSTAT: push_stat(L, &r->st); return 1;
    case K_SCANDIR: {
      uv_dirent_t ent;
      int i = 0;
      lua_newtable(L);
      while (uv_fs_scandir_next(&r->fs, &ent) != UV_EOF) {
        lua_pushstring(L, ent.name);
        lua_rawseti(L, -2, ++i);
      }
      return 1;
    }
    default: return 0;
  }
}

static const ta_ioreq_type fsreq_type = {"fs", fsreq_deliver, fsreq_cancel, fsreq_release};

/* ---- starting requests ---- */

static fsreq *new_req(lua_State *L, int kind, const char *path) {
  fsreq *r = (fsreq *)calloc(1, sizeof *r);
  if (r == NULL) luaL_error(L, "not enough memory");
  r->kind = kind;
  r->fd = -1;
  if (path != NULL && (r->path = strdup(path)) == NULL) {
    free(r);
    luaL_error(L, "not enough memory");
  }
  return r;
}

/* Starts r and pushes its IORequest (holding the value at keep, if any). */
static int start(lua_State *L, fsreq *r, int keep) {
  ta_engine *E = ta_upengine(L);
  ta_ioreq_start(E, &r->req, &fsreq_type);
  if (r->fc != NULL) r->fc->pending++;
  if (submit(r) < 0) {
    if (r->fc != NULL) {
      r->fc->pending--;
      fcore_idle(E->loop, r->fc);
    }
    ta_ioreq_complete(&r->req); /* nobody waits yet: it waits for delivery */
  }
  ta_ioreq_push(L, &r->req);
  if (keep) {
    lua_pushvalue(L, keep);
    lua_setiuservalue(L, -2, 1);
  }
  return 1;
}

static fhandle *checkfile(lua_State *L, int idx) {
  return (fhandle *)luaL_checkudata(L, idx, FILE_MT);
}

/* The open file at idx, for an operation: raises ClosedResourceError once
** it is closed (or being closed). */
static fcore *openfile(lua_State *L, int idx, const char *what) {
  fhandle *h = checkfile(L, idx);
  if (h->c == NULL || h->c->fd < 0 || h->c->closing)
    return (fcore *)(intptr_t)ta_error(L, "ClosedResourceError", "%s: the file is closed", what);
  return h->c;
}

static fsreq *fd_req(lua_State *L, int kind, fcore *c) {
  fsreq *r = new_req(L, kind, c->name);
  r->fc = c;
  c->refs++;
  r->fd = c->fd;
  return r;
}

/* fs_open(path, flags, mode) */
static int l_fs_open(lua_State *L) {
  fsreq *r = new_req(L, K_OPEN, luaL_checkstring(L, 1));
  r->flags = (int)luaL_checkinteger(L, 2);
  r->mode = (int)luaL_optinteger(L, 3, 0666);
  return start(L, r, 0);
}

/* fs_read(file, n, some): n < 0 reads to EOF */
static int l_fs_read(lua_State *L) {
  fcore *c = openfile(L, 1, "read");
  lua_Integer n = luaL_checkinteger(L, 2);
  fsreq *r;
  if (n == 0) n = 1; /* the face answers "" itself; never a zero-length read */
  r = fd_req(L, K_READ, c);
  r->len = n < 0 ? SIZE_MAX : (size_t)n;
  r->some = lua_toboolean(L, 3);
  return start(L, r, 1);
}

/* fs_write(file, data) */
static int l_fs_write(lua_State *L) {
  fcore *c = openfile(L, 1, "write");
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  fsreq *r = fd_req(L, K_WRITE, c);
  r->len = len;
  r->data = (char *)malloc(len ? len : 1);
  if (r->data == NULL) {
    fsreq_release(&r->req);
    return luaL_error(L, "not enough memory");
  }
  memcpy(r->data, s, len);
  return start(L, r, 1);
}

/* fs_fstat(file) */
static int l_fs_fstat(lua_State *L) {
  return start(L, fd_req(L, K_FSTAT, openfile(L, 1, "stat")), 1);
}

/* fs_close(file): deferred while requests are in flight; nothing to do
** (nil) when it is closed already. */
static int l_fs_close(lua_State *L) {
  fhandle *h = checkfile(L, 1);
  fcore *c = h->c;
  fsreq *r;
  ta_engine *E = ta_upengine(L);
  if (c == NULL || c->fd < 0 || c->closing) return 0;
  r = fd_req(L, K_CLOSE, c);
  c->closing = 1;
  c->fd = -1;
  ta_ioreq_start(E, &r->req, &fsreq_type);
  if (c->pending > 0) {
    c->close_req = r; /* started when the last one completes */
  } else {
    start_close(E->loop, r);
  }
  ta_ioreq_push(L, &r->req);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static int path_op(lua_State *L, int kind) {
  fsreq *r = new_req(L, kind, luaL_checkstring(L, 1));
  if (kind == K_MKDIR) r->mode = (int)luaL_optinteger(L, 2, 0777);
  if (kind == K_RENAME && (r->path2 = strdup(luaL_checkstring(L, 2))) == NULL) {
    fsreq_release(&r->req);
    return luaL_error(L, "not enough memory");
  }
  return start(L, r, 0);
}

static int l_fs_stat(lua_State *L) { return path_op(L, K_STAT); }
static int l_fs_lstat(lua_State *L) { return path_op(L, K_LSTAT); }
static int l_fs_mkdir(lua_State *L) { return path_op(L, K_MKDIR); }
static int l_fs_rmdir(lua_State *L) { return path_op(L, K_RMDIR); }
static int l_fs_unlink(lua_State *L) { return path_op(L, K_UNLINK); }
static int l_fs_rename(lua_State *L) { return path_op(L, K_RENAME); }
static int l_fs_scandir(lua_State *L) { return path_op(L, K_SCANDIR); }

/* ---- the FileHandle ---- */

static void push_file(lua_State *L, fsreq *r) {
  fhandle *h = (fhandle *)lua_newuserdatauv(L, sizeof *h, 0);
  fcore *c;
  h->c = NULL;
  luaL_setmetatable(L, FILE_MT);
  c = (fcore *)calloc(1, sizeof *c);
  if (c == NULL) luaL_error(L, "not enough memory"); /* r still owns the fd: released */
  c->name = r->path;
  r->path = NULL;
  c->fd = r->fd;
  c->close_fd = -1;
  c->refs = 1;
  r->fd = -1; /* the handle owns it now */
  h->c = c;
}

/* Closes the fd now, without waiting (close(2) of a file does not block):
** for __gc and __close.  With requests in flight, the last one closes it. */
static void close_now(lua_State *L, fhandle *h) {
  fcore *c = h->c;
  (void)L;
  if (c == NULL) return;
  if (c->fd >= 0 && !c->closing) {
    c->closing = 1;
    if (c->pending > 0) {
      c->close_fd = c->fd;
    } else {
      close(c->fd);
    }
    c->fd = -1;
  }
}

static int file_gc(lua_State *L) {
  fhandle *h = checkfile(L, 1);
  if (h->c == NULL) return 0;
  close_now(L, h);
  h->c->orphan = 1;
  fcore_unref(h->c);
  h->c = NULL;
  return 0;
}

/* fh_close_now(file): the synchronous close of a to-be-closed variable. */
static int l_fh_close_now(lua_State *L) {
  close_now(L, checkfile(L, 1));
  return 0;
}

/* fh_seek(file, whence, offset) -> the new position (lseek never waits). */
static int l_fh_seek(lua_State *L) {
  static const char *const names[] = {"set", "cur", "end", NULL};
  static const int whences[] = {SEEK_SET, SEEK_CUR, SEEK_END};
  fcore *c = openfile(L, 1, "seek");
  int w = luaL_checkoption(L, 2, "cur", names);
  lua_Integer off = luaL_optinteger(L, 3, 0);
  off_t pos = lseek(c->fd, (off_t)off, whences[w]);
  if (pos < 0) return ta_oserror(L, uv_translate_sys_error(errno), c->name, "seek %s", c->name);
  lua_pushinteger(L, (lua_Integer)pos);
  return 1;
}

/* fh_info(file) -> fd or nil (closed), name */
static int l_fh_info(lua_State *L) {
  fhandle *h = checkfile(L, 1);
  if (h->c == NULL || h->c->fd < 0 || h->c->closing) lua_pushnil(L);
  else lua_pushinteger(L, h->c->fd);
  lua_pushstring(L, h->c ? h->c->name : NULL);
  return 2;
}

static int file_tostring(lua_State *L) {
  fhandle *h = checkfile(L, 1);
  lua_pushfstring(L, "FileHandle %s (%s)", h->c ? h->c->name : "?",
                  h->c && h->c->fd >= 0 && !h->c->closing ? "open" : "closed");
  return 1;
}

static const luaL_Reg file_meta[] = {
  {"__gc", file_gc},
  {"__tostring", file_tostring},
  {NULL, NULL}
};

static const luaL_Reg fs_funcs[] = {
  {"fs_open", l_fs_open},
  {"fs_read", l_fs_read},
  {"fs_write", l_fs_write},
  {"fs_fstat", l_fs_fstat},
  {"fs_close", l_fs_close},
  {"fs_stat", l_fs_stat},
  {"fs_lstat", l_fs_lstat},
  {"fs_mkdir", l_fs_mkdir},
  {"fs_rmdir", l_fs_rmdir},
  {"fs_unlink", l_fs_unlink},
  {"fs_rename", l_fs_rename},
  {"fs_scandir", l_fs_scandir},
  {"fh_close_now", l_fh_close_now},
  {"fh_seek", l_fh_seek},
  {"fh_info", l_fh_info},
  {NULL, NULL}
};

int ta_open_fs(lua_State *L) {
  static const struct { const char *name; int value; } flags[] = {
    {"O_RDONLY", UV_FS_O_RDONLY}, {"O_WRONLY", UV_FS_O_WRONLY}, {"O_RDWR", UV_FS_O_RDWR},
    {"O_CREAT", UV_FS_O_CREAT}, {"O_TRUNC", UV_FS_O_TRUNC}, {"O_APPEND", UV_FS_O_APPEND},
    {"O_EXCL", UV_FS_O_EXCL}, {"O_CLOEXEC", O_CLOEXEC},
  };
  ta_newclass(L, FILE_MT, file_meta, NULL, NULL);
  lua_pop(L, 1);
  ta_register(L, fs_funcs);
  lua_createtable(L, 0, (int)(sizeof flags / sizeof flags[0]));
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
    lua_pushinteger(L, flags[i].value);
    lua_setfield(L, -2, flags[i].name);
  }
  lua_setfield(L, -3, "fs_flags"); /* into the core table, below the engine */
  return 0;
}
