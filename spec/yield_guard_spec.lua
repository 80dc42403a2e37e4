-- require "trio" replaces the global coroutine.yield with a guarded one
-- (README, "What requiring trio changes"): inside a task's own coroutine a
-- raw yield raises FlavorError at the call site; everywhere else it is
-- Lua's yield, so plain coroutines, generators and coroutine-based
-- libraries (coxpcall-style pcall emulation) keep working, inside tasks
-- and outside any run.
local original_yield = coroutine.yield
local trio = require "trio"
local ta = require "trio_asyncio"

describe("the guarded coroutine.yield", function()
  it("is installed by require 'trio', and only then", function()
    assert.are_not.equal(original_yield, coroutine.yield)
  end)

  it("leaves plain coroutines alone outside any run", function()
    local co = coroutine.create(function(a)
      local b = coroutine.yield(a + 1)
      return b * 2
    end)
    assert.same({ true, 2 }, { coroutine.resume(co, 1) })
    assert.same({ true, 20 }, { coroutine.resume(co, 10) })
  end)

  it("leaves generators (coroutine.wrap) alone inside a task", function()
    local got = trio.run(function()
      local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
      local t = {}
      for v in gen do t[#t + 1] = v end
      trio.sleep(0) -- the task itself still suspends through the runtime
      return t
    end)
    assert.same({ 1, 2, 3 }, got)
  end)

  it("leaves a coxpcall-style pcall (a coroutine that forwards yields) working in a task", function()
    -- the shape of coxpcall: run f in a coroutine, pass its yields on
    local function copcall(f, ...)
      local co = coroutine.create(f)
      local r = table.pack(coroutine.resume(co, ...))
      while r[1] and coroutine.status(co) == "suspended" do
        r = table.pack(coroutine.resume(co, coroutine.yield(table.unpack(r, 2, r.n))))
      end
      return table.unpack(r, 1, r.n)
    end
    -- outside a task, yields are passed through to the outer coroutine
    local outer = coroutine.wrap(function()
      return copcall(function() return coroutine.yield("through") .. "!" end)
    end)
    assert.equal("through", outer())
    assert.same(true, (outer("back")))
    -- inside a task, a copcall body that does not yield works
    local ok, v = trio.run(function() return copcall(function() return 42 end) end)
    assert.is_true(ok)
    assert.equal(42, v)
  end)

  it("raises FlavorError at the call site for a raw yield in a task's own coroutine", function()
    local e = trio.run(function()
      local ok, err = pcall(coroutine.yield, "foreign")
      return not ok and err
    end)
    assert.is_true(ta.FlavorError:is(e), tostring(e))
    assert.truthy(tostring(e):find("raw coroutine.yield of foreign", 1, true), tostring(e))
  end)
end)
