-- Ported from trio-asyncio tests/interop/test_adapter.py
-- (github.com/python-trio/trio-asyncio, commit 4b0074272edcf892893a955c01b49d664e29b309).
--
-- Test names keep their class (TestAdapt::, TestAllow::): both classes have
-- tests of the same name.
--
-- Translation:
-- * the `loop` fixture is H.with_loop; `loop=` arguments are dropped.
-- * sniffio.current_async_library() is trio_asyncio.current_flavor().
-- * A bound method `sth.m` is bind(sth, "m"); a method decorated with
--   @trio_as_aio / @aio_as_trio is the wrapper stored in the class.
-- * A coroutine object `sth.dly_asyncio()` (a call not yet run) is a
--   zero-argument closure; awaiting the wrapper object itself
--   (`await aio_as_trio(f)`) is calling the wrapper without arguments.
-- * An async generator is an iterator closure of its flavor (the check at
--   its start runs at its first step, as Python runs a generator's body at
--   the first __anext__).
-- * An @asynccontextmanager is a function of its flavor taking the body:
--   enter, body(self), exit (the exit part is skipped when the body raises,
--   as after a bare `yield`).  `async with aio_as_trio(ctx)` with a Trio body
--   is aio_as_trio(ctx)(trio_as_aio(body)), and the other way round.
--
-- Left out: nothing.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local H = require "conformance.trio_asyncio_helpers"

local aio_as_trio, trio_as_aio, allow_asyncio = ta.aio_as_trio, ta.trio_as_aio, ta.allow_asyncio

local F = "tests/interop/test_adapter.py::"

local function bind(obj, name)
  return function(...) return obj[name](obj, ...) end
end

local SomeThing = {}
SomeThing.__index = SomeThing

function SomeThing.new(loop)
  return setmetatable({ loop = loop, flag = 0 }, SomeThing)
end

function SomeThing:dly_trio()
  assert.equal("trio", ta.current_flavor())
  trio.sleep(0.01)
  self.flag = self.flag | 2
  return 8
end

SomeThing.dly_trio_adapted = trio_as_aio(function(self)
  assert.equal("trio", ta.current_flavor())
  trio.sleep(0.01)
  self.flag = self.flag | 2
  return 8
end)

SomeThing.dly_asyncio_adapted = aio_as_trio(function(self)
  assert.equal("asyncio", ta.current_flavor())
  asyncio.sleep(0.01)
  self.flag = self.flag | 1
  return 4
end)

function SomeThing:dly_asyncio(do_test)
  if do_test ~= false then assert.equal("asyncio", ta.current_flavor()) end
  asyncio.sleep(0.01)
  self.flag = self.flag | 1
  return 4
end

function SomeThing:iter_asyncio(do_test)
  local step = 0
  return function()
    step = step + 1
    if step == 1 then
      if do_test ~= false then assert.equal("asyncio", ta.current_flavor()) end
      asyncio.sleep(0.01)
      return 1
    elseif step == 2 then
      asyncio.sleep(0.01)
      return 2
    elseif step == 3 then
      asyncio.sleep(0.01)
      self.flag = self.flag | 1
    end
  end
end

function SomeThing:iter_trio()
  local step = 0
  return function()
    step = step + 1
    if step == 1 then
      assert.equal("trio", ta.current_flavor())
      trio.sleep(0.01)
      return 1
    elseif step == 2 then
      trio.sleep(0.01)
      return 2
    elseif step == 3 then
      trio.sleep(0.01)
      self.flag = self.flag | 1
    end
  end
end

function SomeThing:ctx_asyncio(body)
  asyncio.sleep(0.01)
  self.flag = self.flag | 1
  body(self)
  asyncio.sleep(0.01)
  self.flag = self.flag | 2
end

function SomeThing:ctx_trio(body)
  trio.sleep(0.01)
  self.flag = self.flag | 1
  body(self)
  trio.sleep(0.01)
  self.flag = self.flag | 2
end

-- TestAdapt

it(F .. "TestAdapt::test_asyncio_trio_adapted", function()
  H.with_loop(function(loop)
    local sth = SomeThing.new(loop)
    local res = aio_as_trio(bind(sth, "dly_trio_adapted"))()
    assert.equal(8, res)
    assert.equal(2, sth.flag)
  end)
end)

it(F .. "TestAdapt::test_asyncio_trio_adapted_no_call", function()
  H.with_loop(function(loop)
    local sth = SomeThing.new(loop)
    local res = aio_as_trio(bind(sth, "dly_trio_adapted"))()
    assert.equal(8, res)
    assert.equal(2, sth.flag)
  end)
end)

it(F .. "TestAdapt::test_trio_asyncio_adapted", function()
  H.with_loop(function(loop)
    local sth = SomeThing.new(loop)
    local res = sth:dly_asyncio_adapted()
    assert.equal(4, res)
    assert.equal(1, sth.flag)
  end)
end)

it(F .. "TestAdapt::test_trio_asyncio", function()
  H.with_loop(function(loop)
    local sth = SomeThing.new(loop)
    local res = aio_as_trio(bind(sth, "dly_asyncio"))()
    assert.equal(4, res)
    assert.equal(1, sth.flag)
  end)
end)

it(F .. "TestAdapt::test_trio_asyncio_awaitable", function()
  H.with_loop(function(loop)
    local sth = SomeThing.new(loop)
    local coro = function() return sth:dly_asyncio() end
    local res = aio_as_trio(coro)()
    assert.equal(4, res)
    assert.equal(1, sth.flag)
  end)
end)

it(F .. "TestAdapt::test_trio_asyncio_future", function()
  H.with_loop(function(loop)
    local sth = SomeThing.new(loop)
    local f = function() return sth:dly_asyncio(false) end
    f = asyncio.ensure_future(f)
    local res = aio_as_trio(f)()
    assert.equal(4, res)
    assert.equal(1, sth.flag)
  end)
end)

it(F .. "TestAdapt::test_trio_asyncio_iter", function()
  H.with_loop(function(loop)
    local sth = SomeThing.new(loop)
    local n = 0
    assert.equal("trio", ta.current_flavor())
    for x in aio_as_trio(sth:iter_asyncio()) do
      n = n + 1
      assert.equal(n, x)
    end
    assert.equal(2, n)
    assert.equal(1, sth.flag)
  end)
end)

local function run_asyncio_trio_iter(loop)
  local sth = SomeThing.new(loop)
  local n = 0
  assert.equal("asyncio", ta.current_flavor())
  for x in trio_as_aio(sth:iter_trio()) do
    n = n + 1
    assert.equal(n, x)
  end
  assert.equal(2, n)
  assert.equal(1, sth.flag)
end

it(F .. "TestAdapt::test_asyncio_trio_iter", function()
  H.with_loop(function(loop)
    aio_as_trio(run_asyncio_trio_iter)(loop)
  end)
end)

it(F .. "TestAdapt::test_trio_asyncio_ctx", function()
  H.with_loop(function(loop)
    local sth = SomeThing.new(loop)
    aio_as_trio(bind(sth, "ctx_asyncio"))(trio_as_aio(function()
      assert.equal(1, sth.flag)
    end))
    assert.equal(3, sth.flag)
  end)
end)

local function run_asyncio_trio_ctx(loop)
  local sth = SomeThing.new(loop)
  trio_as_aio(bind(sth, "ctx_trio"))(aio_as_trio(function()
    assert.equal(1, sth.flag)
  end))
  assert.equal(3, sth.flag)
end

it(F .. "TestAdapt::test_asyncio_trio_ctx", function()
  H.with_loop(function(loop)
    aio_as_trio(run_asyncio_trio_ctx)(loop)
  end)
end)

-- TestAllow

it(F .. "TestAllow::test_asyncio_trio", function()
  local function run_asyncio_trio(loop)
    local sth = SomeThing.new(loop)
    local res = trio_as_aio(bind(sth, "dly_trio"))()
    assert.equal(8, res)
    assert.equal(2, sth.flag)
  end
  H.with_loop(function(loop)
    allow_asyncio(run_asyncio_trio, loop)
  end)
end)

it(F .. "TestAllow::test_trio_asyncio", function()
  local function run_trio_asyncio(loop)
    local sth = SomeThing.new(loop)
    local res = sth:dly_asyncio(false)
    assert.equal(4, res)
    assert.equal(1, sth.flag)
  end
  H.with_loop(function(loop)
    allow_asyncio(run_trio_asyncio, loop)
  end)
end)

it(F .. "TestAllow::test_trio_asyncio_future", function()
  local function run_trio_asyncio_future(loop)
    local sth = SomeThing.new(loop)
    local f = function() return sth:dly_asyncio(false) end
    f = asyncio.ensure_future(f)
    local res = f:await()
    assert.equal(4, res)
    assert.equal(1, sth.flag)
  end
  H.with_loop(function(loop)
    allow_asyncio(run_trio_asyncio_future, loop)
  end)
end)

it(F .. "TestAllow::test_trio_asyncio_future_getter", function()
  -- a sync function that returns an asyncio Future
  local function get_asyncio_future(loop, sth)
    local function set_result(future)
      asyncio.sleep(0.01)
      sth.flag = sth.flag | 1
      future:set_result(4)
    end
    local f = loop:create_future()
    loop:create_task(set_result, f)
    return f
  end
  H.with_loop(function(loop)
    local sth = SomeThing.new(loop)
    local res = allow_asyncio(get_asyncio_future, loop, sth)
    assert.equal(4, res)
    assert.equal(1, sth.flag)
  end)
end)

it(F .. "TestAllow::test_trio_asyncio_adapted", function()
  local function run_trio_asyncio_adapted(loop)
    local sth = SomeThing.new(loop)
    local res = sth:dly_asyncio_adapted()
    assert.equal(4, res)
    assert.equal(1, sth.flag)
  end
  H.with_loop(function(loop)
    allow_asyncio(run_trio_asyncio_adapted, loop)
  end)
end)

it(F .. "TestAllow::test_trio_asyncio_iter", function()
  local function run_trio_asyncio_iter(loop)
    local sth = SomeThing.new(loop)
    local n = 0
    for x in sth:iter_asyncio(false) do
      n = n + 1
      assert.equal(n, x)
    end
    assert.equal(2, n)
    assert.equal(1, sth.flag)
  end
  H.with_loop(function(loop)
    allow_asyncio(run_trio_asyncio_iter, loop)
  end)
end)

it(F .. "TestAllow::test_trio_asyncio_ctx", function()
  local function run_trio_asyncio_ctx(loop)
    local sth = SomeThing.new(loop)
    sth:ctx_asyncio(function()
      assert.equal(1, sth.flag)
    end)
    assert.equal(3, sth.flag)
  end
  H.with_loop(function(loop)
    allow_asyncio(run_trio_asyncio_ctx, loop)
  end)
end)
