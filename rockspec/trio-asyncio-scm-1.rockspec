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
            "csrc/cancel.c", "csrc/channel.c", "csrc/clock.c", "csrc/core.c",
            "csrc/embed.c", "csrc/engine.c", "csrc/future.c", "csrc/heap.c",
            "csrc/io.c", "csrc/loop.c", "csrc/nursery.c", "csrc/parking.c",
            "csrc/task.c",
         },
         incdirs = { "csrc/include", "csrc", "$(LIBUV_INCDIR)" },
         libdirs = { "$(LIBUV_LIBDIR)" },
         libraries = { "uv" },
         defines = { "_GNU_SOURCE" },
      },
      trio = "lua/trio.lua",
      ["trio.errors"] = "lua/trio/errors.lua",
      ["trio.sync"] = "lua/trio/sync.lua",
      ["trio.testing"] = "lua/trio/testing.lua",
      asyncio = "lua/asyncio.lua",
      ["asyncio.queues"] = "lua/asyncio/queues.lua",
      ["asyncio.sync"] = "lua/asyncio/sync.lua",
      trio_asyncio = "lua/trio_asyncio.lua",
      ["trio_asyncio.testing"] = "lua/trio_asyncio/testing.lua",
      ["trio_asyncio.version"] = "lua/trio_asyncio/version.lua",
   },
}
test = {
   -- type "busted" would try to download busted; the Makefile knows how to
   -- run the suite (one process per spec file, leak checks).
   type = "command",
   command = "make test",
}
