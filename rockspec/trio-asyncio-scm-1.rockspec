-- luarocks make rockspec/trio-asyncio-scm-1.rockspec   (from the repo root)
-- make rock: a binary rock packed from the checkout (scripts/rock.sh), which
-- `luarocks install`s on a machine without the checkout.
-- Keep the C sources and Lua modules below in step with csrc/ and lua/
-- (.ci/run checks that every file there is listed).
rockspec_format = "3.0"
package = "trio-asyncio"
version = "scm-1"
source = {
   -- The project has no public repository or download yet, so this rock is
   -- never built from a fetched source and the URL below leads nowhere:
   -- `luarocks make` builds the checkout it runs in, and `make rock` packs a
   -- binary rock from it (README, "Installing with LuaRocks").  Replace it
   -- with the repository's URL once there is one; `homepage` is left out
   -- until then.
   url = "git://localhost/trio-asyncio",
}
description = {
   summary = "Structured concurrency (Trio), an asyncio event loop, and a bridge between them, for Lua 5.4 on libuv",
   detailed = [[
Two concurrency flavors in one Lua 5.4 process, written in C on libuv:
Trio's structured concurrency (nurseries, cancel scopes, channels), an
asyncio event loop (Futures, Tasks, gather), and trio_asyncio, an asyncio
loop on the Trio scheduler with explicit aio_as_trio / trio_as_aio
crossings.  Includes busted test helpers (trio.testing.it) and a static
library for C hosts.
]],
   license = "MIT",
   labels = { "concurrency", "async", "libuv", "coroutines" },
}
dependencies = {
   "lua >= 5.4, < 5.5",
}
-- libuv is a system library, found as luv and cqueues find theirs
-- (Debian: libuv1-dev); override with LIBUV_DIR / LIBUV_INCDIR / LIBUV_LIBDIR.
-- OpenSSL likewise, as LuaSec and cqueues find it (Debian: libssl-dev);
-- override with OPENSSL_DIR / OPENSSL_INCDIR / OPENSSL_LIBDIR.
external_dependencies = {
   LIBUV = { header = "uv.h", library = "uv" },
   OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
}
build = {
   type = "builtin",
   modules = {
      ["trio_asyncio.core"] = {
         sources = {
           "csrc/engine/clock.c", "csrc/engine/engine.c", "csrc/engine/heap.c",
           "csrc/engine/lot.c", "csrc/engine/run.c", "csrc/engine/sigown.c", "csrc/engine/status.c",
           "csrc/engine/task.c", "csrc/io/copy.c", "csrc/io/dns.c", "csrc/io/fs.c",
           "csrc/io/ioreq.c", "csrc/io/oserror.c", "csrc/io/pipe.c", "csrc/io/poll.c",
           "csrc/io/process.c", "csrc/io/procpipe.c", "csrc/io/signal.c",
           "csrc/io/sock.c", "csrc/io/stream.c", "csrc/io/tcp.c", "csrc/io/thread.c",
           "csrc/io/tls.c", "csrc/io/udp.c", "csrc/trio/channel.c", "csrc/trio/fdwait.c",
           "csrc/trio/ioreq_wait.c", "csrc/trio/lowlevel.c", "csrc/trio/nursery.c",
           "csrc/trio/parking_lot.c", "csrc/trio/run.c", "csrc/trio/scope.c",
           "csrc/trio/socket.c", "csrc/trio/time.c", "csrc/asyncio/future.c", "csrc/asyncio/queue.c", "csrc/asyncio/sync.c",
           "csrc/asyncio/streamreader.c", "csrc/asyncio/ioreq_future.c", "csrc/asyncio/iowait.c", "csrc/asyncio/loop.c",
           "csrc/asyncio/transport.c",
           "csrc/embed/embed.c", "csrc/core.c",
         },
         incdirs = { "csrc/include", "csrc", "$(LIBUV_INCDIR)", "$(OPENSSL_INCDIR)" },
         libdirs = { "$(LIBUV_LIBDIR)", "$(OPENSSL_LIBDIR)" },
         libraries = { "uv", "ssl", "crypto" },
         defines = { "_GNU_SOURCE" },
      },
      trio = "lua/trio.lua",
      ["trio.errors"] = "lua/trio/errors.lua",
      ["trio.files"] = "lua/trio/files.lua",
      ["trio.process"] = "lua/trio/process.lua",
      ["trio.signals"] = "lua/trio/signals.lua",
      ["trio.socket"] = "lua/trio/socket.lua",
      ["trio.ssl"] = "lua/trio/ssl.lua",
      ["trio.streams"] = "lua/trio/streams.lua",
      ["trio.sync"] = "lua/trio/sync.lua",
      ["trio.testing"] = "lua/trio/testing.lua",
      ["trio.testing_streams"] = "lua/trio/testing_streams.lua",
      ["trio.to_thread"] = "lua/trio/to_thread.lua",
      asyncio = "lua/asyncio.lua",
      ["asyncio.loop_state"] = "lua/asyncio/loop_state.lua",
      ["asyncio.net"] = "lua/asyncio/net.lua",
      ["asyncio.streams"] = "lua/asyncio/streams.lua",
      ["asyncio.queues"] = "lua/asyncio/queues.lua",
      ["asyncio.sslproto"] = "lua/asyncio/sslproto.lua",
      ["asyncio.subprocess"] = "lua/asyncio/subprocess.lua",
      ["asyncio.system"] = "lua/asyncio/system.lua",
      ["asyncio.executor"] = "lua/asyncio/executor.lua",
      ["asyncio.sync"] = "lua/asyncio/sync.lua",
      ["asyncio.staggered"] = "lua/asyncio/staggered.lua",
      trio_asyncio = "lua/trio_asyncio.lua",
      ["trio_asyncio.lazy"] = "lua/trio_asyncio/lazy.lua",
      ["trio_asyncio.luasocket"] = "lua/trio_asyncio/luasocket.lua",
      ["trio_asyncio.ssl"] = "lua/trio_asyncio/ssl.lua",
      ["trio_asyncio.testing"] = "lua/trio_asyncio/testing.lua",
      ["trio_asyncio.version"] = "lua/trio_asyncio/version.lua",
   },
}
-- `luarocks test` (in the checkout, after installing the rock): the busted
-- suite against the installed modules, found through LUA_PATH / LUA_CPATH
-- (eval "$(luarocks path)"), never the checkout's lua/ or build/.  It
-- installs nothing (type "busted" would download busted; make test would
-- call apt-get): busted (Debian lua-busted) must be there already.
test = {
   type = "command",
   command = "TA_INSTALLED=1 bash scripts/test.sh",
}
