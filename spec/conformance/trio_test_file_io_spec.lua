-- Ported from Trio's src/trio/_tests/test_file_io.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: Trio's AsyncIOWrapper around a Python file object is our
-- trio.AsyncFile, which trio.open_file returns; `async with` is a
-- `<close>` variable; aclose() is close(); `async for line in f` is
-- `for line in f:lines()`, whose lines lose their "\n" as Lua's
-- io.lines does, so Lua's io library is the "wrapped" file the results
-- are compared with.  Each test uses a temp dir of its own.
--
-- Ported: test_open, test_aclose_cancelled.
-- Adapted: test_unsupported_not_forwarded (a method the API does not
-- list is nil on our file, where Trio raises AttributeError),
-- test_type_stubs_match_lists (the stubs are types/trio.lua's
-- trio.AsyncFile: their methods are the file's methods, and the ones
-- marked @async are checkpoints), test_sync_attrs_forwarded (the
-- attributes name, mode and closed and fileno() are plain values that
-- agree with the file), test_async_methods_generated_once (a method
-- fetched twice is the same function), test_async_methods_wrap (each
-- method gives what the same call on Lua's io file gives; Trio checks
-- the call reached a mock), test_open_context_manager (a `<close>`
-- variable), test_async_iter (lines() on a file, not a StringIO).
-- Dropped: test_wrap_invalid, test_wrap_non_iobase, test_wrapped_property,
-- test_sync_attrs_match_wrapper, test_async_methods_match_wrapper and
-- test_detach_rewraps_asynciobase (trio.wrap_file, `wrapped` and detach()
-- wrap Python file objects: our API has open_file only, DESIGN.md §4.4);
-- test_dir_matches_wrapped and test_async_methods_signature (Python
-- introspection: dir(), __name__, __qualname__, __doc__).
local trio = require "trio"
local H = require "conformance.trio_helpers"

local P = "_tests/test_file_io.py::"

local tmp = require "conformance.temp_dir"(before_each, after_each)
local dir, path

before_each(function()
  dir = tmp.path
  path = dir .. "/test"
end)

local function write_plain(p, data)
  local f = assert(io.open(p, "wb"))
  f:write(data)
  f:close()
end

local function is_async_file(f)
  return getmetatable(f) ~= nil and getmetatable(f).__name == "trio.AsyncFile"
end

-- The method names of types/trio.lua's trio.AsyncFile stub, each with
-- whether it is marked @async.
local function stub_methods()
  local f = assert(io.open("types/trio.lua", "r"))
  local src = f:read("a")
  f:close()
  local start = assert(src:find("---@class trio.AsyncFile\n", 1, true), "no trio.AsyncFile stub")
  local stop = src:find("\n---@class ", start + 1, true) or #src
  local body = src:sub(start, stop)
  local found, async_next = {}, false
  for line in body:gmatch("[^\n]+") do
    if line == "---@async" then
      async_next = true
    else
      local name = line:match("^function AsyncFile:([%w_]+)%(")
      if name then found[name] = async_next and "async" or "sync" end
      if not line:match("^%-%-%-@") then async_next = false end
    end
  end
  return found
end

describe("Trio test_file_io.py", function()
  it(P .. "test_unsupported_not_forwarded (adapted: a method not in the API is nil)", function()
    H.run(function()
      local f = trio.open_file(path, "w")
      -- Lua's io file has these; ours does not forward them
      assert.is_function(io.stdout.setvbuf)
      assert.is_nil(f.setvbuf)
      assert.is_nil(f.unsupported_attr)
      f:close()
    end)
  end)

  it(P .. "test_type_stubs_match_lists (adapted: types/trio.lua against the file)", function()
    local stubs = stub_methods()
    H.run(function()
      write_plain(path, "line\n")
      local f = trio.open_file(path, "r+")
      local methods = {}
      for name, fn in pairs(getmetatable(f).__index) do
        if type(fn) == "function" then methods[name] = true end
      end
      assert.same(H.keys(methods), H.keys(stubs))
      -- the stub's @async methods are checkpoints (the close comes last)
      local calls = {
        read = { 0 }, readline = {}, write = { "" }, flush = {}, close = {},
      }
      for _, name in ipairs(H.keys(stubs)) do
        if stubs[name] == "async" and name ~= "close" then
          assert(calls[name], "no call for the async method " .. name)
          H.assert_checkpoints(f[name], f, table.unpack(calls[name]))
        end
      end
      assert.equal("async", stubs.close)
      H.assert_checkpoints(f.close, f)
    end)
  end)

  it(P .. "test_sync_attrs_forwarded (adapted: name, mode, closed, fileno)", function()
    H.run(function()
      local f = trio.open_file(path, "w")
      assert.equal(path, f.name)
      assert.equal("w", f.mode)
      assert.is_false(f.closed)
      local fd = f:fileno()
      assert.equal("integer", math.type(fd))
      assert.is_true(fd > 2)
      f:close()
      assert.is_true(f.closed)
      H.raises(trio.ClosedResourceError, f.fileno, f)
    end)
  end)

  it(P .. "test_async_methods_generated_once (adapted: the same function each time)", function()
    H.run(function()
      local f = trio.open_file(path, "w")
      for _, name in ipairs { "read", "readline", "lines", "write", "seek", "flush", "close", "fileno" } do
        assert.is_function(f[name])
        assert.equal(f[name], f[name])
      end
      f:close()
    end)
  end)

  it(P .. "test_async_methods_wrap (adapted: each method against Lua's io file)", function()
    local data = "first line\nsecond\n\nlast without newline"
    write_plain(path, data)
    local copy = dir .. "/copy"
    write_plain(copy, data)
    H.run(function()
      local f = trio.open_file(path, "r+")
      local g = assert(io.open(copy, "r+b"))
      assert.equal(g:read(5), f:read(5))
      assert.equal(g:read("L"), f:readline())
      assert.equal(g:seek("cur"), f:seek())
      assert.equal(g:seek("set", 3), f:seek("set", 3))
      assert.equal(g:read(4), f:read(4))
      assert.equal(g:seek("end", -4), f:seek("end", -4))
      assert.equal(g:read("a"), f:read())
      -- at EOF: Lua's read(n) gives nil where Python (and we) give ""
      assert.is_nil(g:read(1))
      assert.equal("", f:read(1))
      assert.equal(g:seek("set", 0), f:seek("set", 0))
      g:write("XY")
      assert.equal(2, f:write("XY"))
      g:flush()
      f:flush()
      assert.equal(g:seek("cur"), f:seek("cur"))
      assert.equal(g:read("a"), f:read())
      g:close()
      f:close()
    end)
    local a, b = assert(io.open(path, "rb")), assert(io.open(copy, "rb"))
    assert.equal(b:read("a"), a:read("a"))
    a:close()
    b:close()
  end)

  it(P .. "test_open", function()
    H.run(function()
      local f = trio.open_file(path, "w")
      assert.is_true(is_async_file(f))
      f:close()
      assert.is_true(f.closed)
    end)
  end)

  it(P .. "test_open_context_manager (adapted: a <close> variable)", function()
    local seen
    H.run(function()
      do
        local f <close> = trio.open_file(path, "w")
        assert.is_true(is_async_file(f))
        assert.is_false(f.closed)
        seen = f
      end
      assert.is_true(seen.closed)
    end)
    assert.is_true(seen.closed)
  end)

  it(P .. "test_async_iter (adapted: lines() against io.lines)", function()
    write_plain(path, "test\nfoo\nbar")
    local expected = {}
    for line in io.lines(path) do expected[#expected + 1] = line end
    assert.same({ "test", "foo", "bar" }, expected)
    H.run(function()
      local f = trio.open_file(path)
      local result = {}
      for line in f:lines() do result[#result + 1] = line end
      f:close()
      assert.same(expected, result)
    end)
  end)

  it(P .. "test_aclose_cancelled", function()
    local f
    H.run(function()
      local scope = trio.CancelScope()
      scope:run(function()
        f = trio.open_file(path, "w")
        scope:cancel()
        H.raises(trio.Cancelled, f.write, f, "a")
        H.raises(trio.Cancelled, f.close, f)
      end)
      assert.is_true(f.closed)
    end)
    -- nothing was written, and the descriptor is really closed
    local r = assert(io.open(path, "rb"))
    assert.equal("", r:read("a"))
    r:close()
    H.raises(trio.ClosedResourceError, f.fileno, f)
  end)
end)
