-- The I/O faces of trio and asyncio are installed on first use
-- (lua/trio_asyncio/lazy.lua): requiring the modules does not load them,
-- and the lookup of a missing name installs the parts in order until one
-- adds it (a name no part adds, or pairs(), installs all of them).
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

  it("installs only the parts up to the one a name is in", function()
    local out = fresh_lua(IO_MODULES .. [[
      io.write(type(trio.run_process), " ", tostring(package.loaded["trio.process"] ~= nil), " ")
      io.write(tostring(package.loaded["trio.socket"]), " ", tostring(package.loaded["trio.ssl"]), " ")
      io.write(type(asyncio.create_subprocess_exec), " ", tostring(package.loaded["asyncio.net"]), " ")
      io.write(tostring(getmetatable(trio) ~= nil), " ", type(trio.open_file), " ")
      io.write(type(trio.SSLStream), " ", loaded(), " ", tostring(getmetatable(trio)))
    ]])
    assert.equal("function true nil nil function nil true function function 9 nilexit=0\n", out)
  end)
end)

describe("trio_asyncio.lazy.defer", function()
  local lazy = require "trio_asyncio.lazy"

  local function parts_log()
    local log, t = {}, {}
    local parts = {
      function() log[#log + 1] = "a:" .. tostring(t.c); t.a = 1 end,
      function() log[#log + 1] = "b"; t.b = 2 end,
      function() log[#log + 1] = "c"; t.c = 3 end,
    }
    return log, t, parts
  end

  it("installs parts in order until the key is found, and each only once", function()
    local log, t, parts = parts_log()
    lazy.defer(parts, t)
    assert.equal(2, t.b)
    assert.same({ "a:nil", "b" }, log)
    assert.equal(1, t.a)
    assert.is_not_nil(getmetatable(t))
    assert.equal(3, t.c)
    assert.same({ "a:nil", "b", "c" }, log)
    assert.is_nil(getmetatable(t))
  end)

  it("installs every part for a key no part adds, and for pairs()", function()
    local log, t, parts = parts_log()
    lazy.defer(parts, t)
    assert.is_nil(t.nothing)
    assert.same({ "a:nil", "b", "c" }, log)
    local log2, t2, parts2 = parts_log()
    lazy.defer(parts2, t2)
    local n = 0
    for _ in pairs(t2) do n = n + 1 end
    assert.equal(3, n)
    assert.equal(3, #log2)
  end)

  it("raises a part's error once and goes on with the next parts", function()
    local t = {}
    lazy.defer({ function() error("part one failed", 0) end, function() t.b = 2 end }, t)
    local ok, err = pcall(function() return t.b end)
    assert.is_false(ok)
    assert.equal("part one failed", err)
    assert.equal(2, t.b)
    assert.is_nil(getmetatable(t))
  end)
end)
