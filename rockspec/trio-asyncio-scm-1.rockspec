-- luarocks make rockspec/trio-asyncio-scm-1.rockspec   (from the repo root)
-- Keep the C sources and Lua modules below in step with csrc/ and lua/.
rockspec_format = "3.0"
package = "trio-asyncio"
version = "scm-1"
source = {
   -- `luarocks make` builds the checkout it is run in and fetches nothing;
   -- the project has no public repository yet.
   url = "git://localhost/trio-asyncio",
}
description = {
   summary = "Structured concurrency (Trio), an asyncio event loop, and a bridge between them, for Lua 5.4 on libuv",
   license = "MIT",
}
dependencies = {
   "lua >= 5.4, < 5.5",
}
external_dependencies = {
   LIBUV = { header = "uv.h", library = "uv" },
}
build = {
   type = "builtin",
   modules = {
      ["trio_asyncio.core"] = {
         sources = {
           "csrc/engine/clock.c", "csrc/engine/engine.c", "csrc/engine/heap.c",
           "csrc/engine/lot.c", "csrc/engine/run.c", "csrc/engine/status.c",
           "csrc/engine/task.c", "csrc/io/poll.c", "csrc/trio/channel.c",
           "csrc/trio/fdwait.c", "csrc/trio/lowlevel.c", "csrc/trio/nursery.c",
           "csrc/trio/parking_lot.c", "csrc/trio/run.c", "csrc/trio/scope.c",
           "csrc/trio/time.c", "csrc/asyncio/future.c", "csrc/asyncio/loop.c",
           "csrc/embed/embed.c", "csrc/core.c",
         },
         incdirs = { "csrc/include", "csrc", "$(LIBUV_INCDIR)" },
         libdirs = { "$(LIBUV_LIBDIR)" },
         libraries = { "uv" },
         defines = { "_GNU_SOURCE" },
      },
      trio = "lua/trio.lua",
      ["trio.errors"] = "lua/trio/errors.lua",
      ["trio.sync"] = "lua/trio/sync.lua",
      asyncio = "lua/asyncio.lua",
      ["asyncio.loop_state"] = "lua/asyncio/loop_state.lua",
      ["asyncio.queues"] = "lua/asyncio/queues.lua",
      ["asyncio.sync"] = "lua/asyncio/sync.lua",
      trio_asyncio = "lua/trio_asyncio.lua",
   },
}
test = {
   -- type "busted" would try to download busted; the Makefile knows how to
   -- run the suite (one process per spec file, leak checks).
   type = "command",
   command = "make test",
}
