-- The I/O faces of trio and asyncio are installed on first use
-- (lua/trio_asyncio/lazy.lua): requiring the modules does not load them,
-- and the first lookup of a missing name, or pairs(), installs all of them.
-- Each case runs in a fresh interpreter, since this one has loaded them.

local function fresh_lua(code)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local p = assert(io.popen(("LUA_PATH=%q LUA_CPATH=%q timeout 30 lua5.4 %s 2>&1; echo \"exit=$?\"")
    :format(package.path, package.cpath, path)))
  local out = p:read("a")
  p:close()
  os.remove(path)
  return out
end

local IO_MODULES = [[
local io_modules = { "trio.socket", "trio.streams", "trio.testing_streams", "trio.files",
  "trio.process", "trio.signals", "trio.to_thread", "asyncio.net", "asyncio.streams",
  "asyncio.subprocess", "asyncio.system" }
local function loaded()
  local n = 0
  for _, m in ipairs(io_modules) do if package.loaded[m] then n = n + 1 end end
  return n
end
local trio, asyncio = require "trio", require "asyncio"
require "trio_asyncio"
]]

describe("lazily installed I/O", function()
  it("is not loaded by require, and is by the first missing trio name", function()
    local out = fresh_lua(IO_MODULES .. [[
      io.write(loaded(), " ")
      io.write(type(trio.open_tcp_stream), " ", loaded(), " ")
      io.write(type(trio.testing.memory_stream_pair), " ", type(trio.lowlevel.open_process), " ")
      io.write(type(asyncio.open_connection), " ", loaded(), " ", tostring(getmetatable(trio)))
    ]])
    assert.equal("0 function 7 function function function 11 nilexit=0\n", out)
  end)

  it("is loaded by pairs() over a module, which then lists every name", function()
    local out = fresh_lua(IO_MODULES .. [[
      local names = {}
      for k in pairs(asyncio) do names[k] = true end
      io.write(loaded(), " ", tostring(names.open_connection), " ", tostring(names.sleep))
    ]])
    assert.equal("11 true trueexit=0\n", out)
  end)

  it("is loaded by the first lookup of a Loop method it adds", function()
    local out = fresh_lua(IO_MODULES .. [[
      local loop = asyncio.new_event_loop()
      io.write(loaded(), " ", type(loop.create_connection), " ", loaded(), " ", type(loop.no_such_method))
      loop:close()
    ]])
    assert.equal("0 function 11 nilexit=0\n", out)
  end)

  it("leaves a name no part installs nil", function()
    local out = fresh_lua(IO_MODULES .. [[
      io.write(tostring(trio.no_such_name), " ", tostring(asyncio.no_such_name), " ", loaded())
    ]])
    assert.equal("nil nil 11exit=0\n", out)
  end)
end)
