-- Ported from trio-asyncio tests/interop/test_calls.py
-- (github.com/python-trio/trio-asyncio, commit 4b0074272edcf892893a955c01b49d664e29b309).
--
-- Translation:
-- * the `loop` fixture is H.with_loop; the `loop=` arguments of the
--   wrappers are dropped (the current loop is that loop).
-- * sniffio.current_async_library() is trio_asyncio.current_flavor().
-- * An async context manager (TrioContext, AioContext) is, in Lua, a
--   function of its flavor that enters, calls body(ctx) and exits (DESIGN 3:
--   scoped constructs take a body function).  `async with
--   aio_as_trio(AioContext(...)) as ctx: <Trio body>` becomes
--   aio_as_trio(aio_context)(trio_as_aio(body)): the body runs Trio-flavored
--   between an asyncio-flavored enter and exit, as upstream.
-- * An async generator is an iterator closure of its flavor;
--   run_aio_generator(loop, agen) is spelled aio_as_trio(iterator) in Lua
--   (DESIGN 4.3), and async_gen_to_list is H.collect.
-- * Python's RuntimeError is trio.RuntimeError; `err.args[0]` is e.message.
--
-- Left out:
-- * test_asyncio_trio_cancel_out: it cancels the bridge's own cancel scope
--   around the Trio task through a private attribute
--   (current_task()._cancel_status._scope), which has no Lua counterpart.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local H = require "conformance.trio_asyncio_helpers"
local errof = H.errof

local RuntimeError = trio.RuntimeError
local aio_as_trio, trio_as_aio = ta.aio_as_trio, ta.trio_as_aio

local F = "tests/interop/test_calls.py::"

-- TrioContext: Trio-flavored enter and exit around body(ctx)
local function TrioContext(parent)
  local ctx = { parent = parent }
  return function(body)
    assert.equal(0, parent.did_it)
    parent.did_it = 1
    assert.equal("trio", ta.current_flavor())
    trio.sleep(0.01)
    parent.did_it = 2
    local r = table.pack(pcall(body, ctx))
    assert.equal(3, parent.did_it)
    parent.did_it = 4
    if not r[1] then error(r[2], 0) end
    return table.unpack(r, 2, r.n)
  end
end

-- AioContext: asyncio-flavored enter and exit around body(ctx)
local function AioContext(parent, loop)
  local ctx = { parent = parent, loop = loop }
  return function(body)
    assert.equal(0, parent.did_it)
    parent.did_it = 1
    assert.equal("asyncio", ta.current_flavor())
    asyncio.sleep(0.01)
    parent.did_it = 2
    local r = table.pack(pcall(body, ctx))
    assert.equal(3, parent.did_it)
    parent.did_it = 4
    if not r[1] then error(r[2], 0) end
    return table.unpack(r, 2, r.n)
  end
end

-- called from Trio
local function call_t_a(proc, ...)
  return aio_as_trio(proc)(...)
end

-- called from asyncio, to a Trio-flavored function
local function call_a_t(proc, ...)
  return trio_as_aio(proc)(...)
end

-- called from asyncio, to a sync function
local function call_a_ts(proc, ...)
  return proc(...)
end

it(F .. "test_call_at", function()
  H.with_loop(function(loop)
    local function delay(t)
      local done = asyncio.Event()
      loop:call_at(t, done.set, done)
      done:wait()
    end
    local t = loop:time() + 0.1
    aio_as_trio(delay)(t)
  end)
end)

it(F .. "test_asyncio_trio", function()
  H.with_loop(function()
    local function dly_trio(seen)
      trio.sleep(0.01)
      seen.flag = seen.flag | 2
      return 8
    end
    local seen = H.Seen()
    local res = aio_as_trio(call_a_t)(dly_trio, seen)
    assert.equal(8, res)
    assert.equal(2, seen.flag)
  end)
end)

it(F .. "test_call_asyncio_ctx", function()
  local self = {}
  H.with_loop(function(loop)
    self.did_it = 0
    aio_as_trio(AioContext(self, loop))(trio_as_aio(function(ctx)
      assert.equal(self, ctx.parent)
      assert.equal(2, self.did_it)
      self.did_it = 3
    end))
    assert.equal(4, self.did_it)
  end)
end)

it(F .. "test_call_trio_ctx", function()
  local self = {}
  H.with_loop(function()
    local function _call_trio_ctx()
      self.did_it = 0
      trio_as_aio(TrioContext(self))(aio_as_trio(function(ctx)
        assert.equal(self, ctx.parent)
        assert.equal(2, self.did_it)
        self.did_it = 3
      end))
      assert.equal(4, self.did_it)
    end
    aio_as_trio(_call_trio_ctx)()
  end)
end)

it(F .. "test_asyncio_trio_sync", function()
  H.with_loop(function()
    local function dly_trio(seen)
      seen.flag = seen.flag | 2
      return 8
    end
    local seen = H.Seen()
    local res = aio_as_trio(call_a_ts)(dly_trio, seen)
    assert.equal(8, res)
    assert.equal(2, seen.flag)
  end)
end)

it(F .. "test_trio_asyncio", function()
  H.with_loop(function()
    local function dly_asyncio(seen)
      asyncio.sleep(0.01)
      seen.flag = seen.flag | 1
      return 4
    end
    local seen = H.Seen()
    local res = call_t_a(dly_asyncio, seen)
    assert.equal(4, res)
    assert.equal(1, seen.flag)
  end)
end)

it(F .. "test_asyncio_trio_error", function()
  H.with_loop(function()
    local function err_trio()
      trio.sleep(0.01)
      error(RuntimeError("I has another owie"))
    end
    local e = errof(aio_as_trio(call_a_t), err_trio)
    assert.is_true(RuntimeError:is(e), tostring(e))
    assert.equal("I has another owie", e.message)
  end)
end)

it(F .. "test_asyncio_trio_sync_error", function()
  H.with_loop(function(loop)
    local function err_trio_sync()
      loop:time() -- the loop is running
      error(RuntimeError("I has more owie"))
    end
    local e = errof(aio_as_trio(call_a_ts), err_trio_sync)
    assert.is_true(RuntimeError:is(e), tostring(e))
    assert.equal("I has more owie", e.message)
  end)
end)

it(F .. "test_trio_asyncio_error", function()
  H.with_loop(function()
    local function err_asyncio()
      asyncio.sleep(0.01)
      error(RuntimeError("I has an owie"))
    end
    local e = errof(call_t_a, err_asyncio)
    assert.is_true(RuntimeError:is(e), tostring(e))
    assert.equal("I has an owie", e.message)
  end)
end)

it(F .. "test_trio_asyncio_cancel_out", function()
  H.with_loop(function()
    local function cancelled_asyncio(seen)
      seen.flag = seen.flag | 1
      asyncio.sleep(0.01)
      local f = asyncio.Future()
      f:cancel()
      return f:result() -- raises
    end

    local function cancelled_future(seen)
      seen.flag = seen.flag | 1
      local f = asyncio.Future()
      f:cancel()
      return f -- holds the error
    end

    local function check_cancel(proc, seen)
      local scope = trio.CancelScope()
      scope:run(function()
        local e = errof(call_t_a, proc, seen)
        assert.is_true(asyncio.CancelledError:is(e), tostring(e))
      end)
      assert.is_false(scope.cancel_called)
      seen.flag = seen.flag | 4
    end

    local seen = H.Seen()
    check_cancel(cancelled_future, seen)
    assert.equal(1 | 4, seen.flag)

    seen = H.Seen()
    check_cancel(cancelled_asyncio, seen)
    assert.equal(1 | 4, seen.flag)
  end)
end)

it(F .. "test_asyncio_trio_cancel_in", function()
  H.with_loop(function()
    local function in_trio(started, seen)
      started:set()
      local ok, e = pcall(trio.sleep, 1)
      if not ok and trio.Cancelled:is(e) then
        seen.flag = seen.flag | 1
      elseif ok then
        seen.flag = seen.flag | 4
      end
      seen.flag = seen.flag | 2
      if not ok then error(e, 0) end
    end

    local function cancel_asyncio(seen)
      local started = asyncio.Event()
      local f = asyncio.ensure_future(function() return call_a_t(in_trio, started, seen) end)
      started:wait()
      f:cancel()
      local e = errof(f.await, f)
      assert.is_true(asyncio.CancelledError:is(e), tostring(e))
      seen.flag = seen.flag | 8
    end

    local seen = H.Seen()
    aio_as_trio(cancel_asyncio)(seen)
    assert.equal(1 | 2 | 8, seen.flag)
  end)
end)

it(F .. "test_trio_asyncio_cancel_in", function()
  H.with_loop(function()
    local function in_asyncio(started, seen)
      started:set()
      local ok, e = pcall(asyncio.sleep, 9999)
      if not ok and asyncio.CancelledError:is(e) then
        seen.flag = seen.flag | 1
      elseif not ok and trio.Cancelled:is(e) then
        seen.flag = seen.flag | 16
      elseif ok then
        seen.flag = seen.flag | 4
      end
      seen.flag = seen.flag | 2
      if not ok and not asyncio.CancelledError:is(e) and not trio.Cancelled:is(e) then
        error(e, 0)
      end
    end

    local function cancel_trio(seen)
      local started = trio.Event()
      trio.open_nursery(function(nursery)
        nursery:start_soon(call_t_a, in_asyncio, started, seen)
        started:wait()
        nursery.cancel_scope:cancel()
      end)
      seen.flag = seen.flag | 8
    end

    local seen = H.Seen()
    cancel_trio(seen)
    assert.equal(1 | 2 | 8, seen.flag)
  end)
end)

it(F .. "test_trio_asyncio_cancel_direct", function()
  H.with_loop(function()
    local function in_asyncio(_, seen)
      -- on purpose not asyncio-flavored: it raises at once
      seen.flag = seen.flag | 1
      error(asyncio.CancelledError())
    end

    local function cancel_trio(seen)
      local started = trio.Event()
      local ok, e = pcall(trio.open_nursery, function(nursery)
        nursery:start_soon(call_t_a, in_asyncio, started, seen)
        started:wait()
        nursery.cancel_scope:cancel()
      end)
      seen.flag = seen.flag | 8
      if not ok then error(e, 0) end
    end

    local seen = H.Seen()
    local e = errof(cancel_trio, seen)
    -- RaisesGroup(asyncio.CancelledError)
    assert.is_true(trio.ExceptionGroup:is(e), tostring(e))
    assert.equal(1, #e.exceptions, tostring(e))
    assert.is_true(asyncio.CancelledError:is(e.exceptions[1]), tostring(e))
    assert.equal(1 | 8, seen.flag)
  end)
end)

it(F .. "test_trio_asyncio_error_direct", function()
  H.with_loop(function()
    local function err_asyncio()
      -- on purpose not asyncio-flavored
      error(RuntimeError("I has an owie"))
    end
    local e = errof(call_t_a, err_asyncio)
    assert.is_true(RuntimeError:is(e), tostring(e))
    assert.equal("I has an owie", e.message)
  end)
end)

it(F .. "test_trio_asyncio_generator", function()
  H.with_loop(function()
    local function dly_asyncio()
      local step = 0
      return function()
        step = step + 1
        if step == 1 then return 1 end
        if step == 2 then
          asyncio.sleep(0.01)
          return 2
        end
      end
    end
    local res = H.collect(aio_as_trio(dly_asyncio()))
    assert.same({ 1, 2 }, res)
  end)
end)

it(F .. "test_trio_asyncio_generator_with_error", function()
  H.with_loop(function()
    local function dly_asyncio()
      local step = 0
      return function()
        step = step + 1
        if step == 1 then return 1 end
        error(RuntimeError("I has an owie"))
      end
    end
    local e = errof(H.collect, aio_as_trio(dly_asyncio()))
    assert.is_true(RuntimeError:is(e), tostring(e))
    assert.equal("I has an owie", e.message)
  end)
end)

it(F .. "test_trio_asyncio_generator_with_cancellation", function()
  H.with_loop(function()
    local function dly_asyncio(hold, seen)
      local step = 0
      return function()
        step = step + 1
        if step == 1 then return 1 end
        seen.flag = seen.flag | 1
        hold:wait()
      end
    end

    local hold = asyncio.Event()
    local seen = H.Seen()
    local scope
    trio.open_nursery(function(nursery)
      scope = nursery.cancel_scope
      nursery:start_soon(H.collect, aio_as_trio(dly_asyncio(hold, seen)))
      trio.testing.wait_all_tasks_blocked()
      nursery.cancel_scope:cancel()
    end)
    assert.is_true(scope.cancel_called)
    assert.equal(1, seen.flag)
  end)
end)

it(F .. "test_trio_asyncio_iterator", function()
  H.with_loop(function()
    local function slow_nums()
      local n = 0
      return function()
        if n >= 5 then return nil end
        n = n + 1
        asyncio.sleep(0.01)
        return n
      end
    end
    local sum = 0
    for n in aio_as_trio(slow_nums()) do sum = sum + n end
    assert.equal(15, sum)
  end)
end)

it(F .. "test_trio_asyncio_iterator_depr", function()
  H.with_loop(function()
    local function slow_nums()
      local n = 0
      return function()
        if n >= 5 then return nil end
        n = n + 1
        asyncio.sleep(0.01)
        return n
      end
    end
    local sum = 0
    for n in aio_as_trio(slow_nums()) do sum = sum + n end
    assert.equal(15, sum)
  end)
end)
