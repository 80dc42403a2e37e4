-- The paths of the crossings' C callers (csrc/asyncio/future.c):
-- aio_as_trio(f) and trio_as_aio(f) keep the wrapper they made for f
-- (weakly, l_caller_of): the same f gives the same wrapper while it lives,
-- which behaves exactly as a new one would, and neither f nor its wrapper
-- is kept alive by that.  aio_as_trio finds the loop in the Trio task's
-- context, or says there is none.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local errors = require "trio.errors"

local function in_aio(fn)
  return ta.run(function() return ta.run_aio_coroutine(fn) end)
end

describe("the wrappers of aio_as_trio and trio_as_aio", function()
  it("the same function gives the same wrapper, another function another one", function()
    local function f() return 1 end
    local function g() return 2 end
    assert.equal(ta.aio_as_trio(f), ta.aio_as_trio(f))
    assert.equal(ta.trio_as_aio(f), ta.trio_as_aio(f))
    assert.not_equal(ta.aio_as_trio(f), ta.aio_as_trio(g))
    assert.not_equal(ta.trio_as_aio(f), ta.trio_as_aio(g))
    -- each direction keeps its own: never the other flavor's wrapper
    assert.not_equal(ta.aio_as_trio(f), ta.trio_as_aio(f))
  end)

  it("a kept wrapper calls its own function with the call's arguments, each direction", function()
    local seen = {}
    local function add(a, b) seen[#seen + 1] = ta.current_flavor(); return a + b end
    local from_trio, from_aio = ta.run(function()
      local r = {}
      for i = 1, 3 do r[i] = ta.aio_as_trio(add)(i, 10) end
      local s = ta.run_aio_coroutine(function()
        local t = {}
        for i = 1, 3 do t[i] = ta.trio_as_aio(add)(i, 20) end
        return t
      end)
      return r, s
    end)
    assert.same({ 11, 12, 13 }, from_trio)
    assert.same({ 21, 22, 23 }, from_aio)
    assert.same({ "asyncio", "asyncio", "asyncio", "trio", "trio", "trio" }, seen)
  end)

  it("a kept wrapper raises and is cancelled as a new one would", function()
    local function boom() error("boom", 0) end
    local function slow() trio.sleep(100) end
    local first, second, cancelled = in_aio(function()
      local ok1, e1 = pcall(ta.trio_as_aio(boom))
      local ok2, e2 = pcall(ta.trio_as_aio(boom))
      local task = asyncio.create_task(ta.trio_as_aio(slow))
      asyncio.sleep(0.001)
      task:cancel()
      local ok3, e3 = pcall(task.await, task)
      return { ok1, e1 }, { ok2, e2 }, { ok3, asyncio.CancelledError:is(e3) }
    end)
    assert.same({ false, "boom" }, first)
    assert.same({ false, "boom" }, second)
    assert.same({ false, true }, cancelled)
  end)

  it("keeps neither the function nor its wrapper alive", function()
    local weak = setmetatable({}, { __mode = "k" })
    do
      local function f() return 1 end
      weak[f] = true
      weak[ta.aio_as_trio(f)] = true
      weak[ta.trio_as_aio(f)] = true
    end
    collectgarbage("collect")
    collectgarbage("collect")
    assert.is_nil(next(weak))
  end)

  it("what is not callable is refused every time, nothing kept for it", function()
    for _ = 1, 2 do
      assert.error_matches(function() ta.aio_as_trio(42) end, "function, Future or Task expected")
      assert.error_matches(function() ta.trio_as_aio(nil) end, "function expected")
    end
  end)

  it("aio_as_trio outside any open_loop says so, in a task and in one whose context has no loop", function()
    local errs = {}
    trio.run(function()
      local ok, e = pcall(ta.aio_as_trio(function() return 1 end))
      errs[1] = not ok and e
      trio.open_nursery(function(n)
        n:start_soon(function()
          asyncio._current_loop_var:set(nil)
          local ok2, e2 = pcall(ta.aio_as_trio(function() return 2 end))
          errs[2] = not ok2 and e2
        end)
      end)
    end)
    for i = 1, 2 do
      assert.truthy(errors.RuntimeError:is(errs[i]), tostring(errs[i]))
      assert.matches("no asyncio loop is open here", errs[i].message)
    end
  end)

  it("aio_as_trio finds the loop of the Trio task's context, also in a child task", function()
    local got = ta.run(function()
      local loop = ta.current_loop()
      local r = {}
      trio.open_nursery(function(n)
        n:start_soon(function() r[1] = ta.aio_as_trio(function() return asyncio.get_running_loop() end)() end)
      end)
      r[2] = ta.aio_as_trio(function() return asyncio.get_running_loop() end)()
      return r[1] == loop and r[2] == loop
    end)
    assert.is_true(got)
  end)

  it("a callable whose __call went away after wrapping is refused at the call, clearly", function()
    local mt = { __call = function(_, a) return a end }
    local callable = setmetatable({}, mt)
    local ok, e = ta.run(function()
      local wrapped = ta.aio_as_trio(callable)
      assert.equal(5, wrapped(5))
      mt.__call = nil
      return pcall(wrapped, 6)
    end)
    assert.is_false(ok)
    assert.matches("function expected, got table", tostring(e))
  end)

  it("the Trio task's start refuses a receiver that is no asyncio Future", function()
    local core = require "trio_asyncio.core"
    local start = core.make_scope_task {
      context_var = asyncio._current_loop_var, enter_context = function() end,
      not_started = function() end, raised = function() end,
    }
    local ran = false
    local ok, e = pcall(trio.run, function()
      trio.open_nursery(function(n) start(n, nil, 42, function() ran = true end) end)
    end)
    assert.is_false(ok)
    assert.matches("bad argument #3 .*asyncio Future expected, got number", tostring(e))
    assert.is_false(ran)
  end)

  it("a trio_as_aio whose start_task is no start of make_scope_task is refused clearly", function()
    local core = require "trio_asyncio.core"
    local called = false
    local bad = core.make_trio_as_aio {
      name = "bad", check = function() return true end,
      start_task = function() called = true end, service_key = "service",
      start = function() error("not reached") end,
    }
    local ok, e = pcall(in_aio, function() return bad(function() return 1 end)() end)
    assert.is_false(ok)
    assert.matches("start_scope_task: a start function of make_scope_task expected", tostring(e))
    assert.is_false(called)
  end)

  it("many results cross both ways, in order (the Trio task's stack grows for them)", function()
    local function many(n)
      local t = {}
      for i = 1, n do t[i] = i * 3 end
      return table.unpack(t, 1, n)
    end
    for _, n in ipairs { 0, 1, 2, 16, 17, 18, 40, 300 } do
      local from_trio, from_aio = ta.run(function()
        local a = table.pack(ta.aio_as_trio(many)(n))
        local b = ta.run_aio_coroutine(function() return table.pack(ta.trio_as_aio(many)(n)) end)
        return a, b
      end)
      local want = table.pack(many(n))
      assert.same(want, from_trio)
      assert.same(want, from_aio)
    end
  end)
end)
