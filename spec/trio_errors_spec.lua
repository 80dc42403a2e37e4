-- Error objects: classes, construction, tostring, Class:is, and tracebacks
-- that survive crossing task boundaries.
local trio = require "trio"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

local function starts_with(s, prefix)
  return s:sub(1, #prefix) == prefix
end

local function raise_in_helper(cls, msg)
  local e = cls(msg)
  error(e)
end

local CLASSES = {
  "Cancelled", "TooSlowError", "ClosedResourceError",
  "BrokenResourceError", "BusyResourceError", "EndOfChannel", "WouldBlock",
  "RunFinishedError", "TrioInternalError", "KeyboardInterrupt",
}

describe("error classes", function()
  for _, name in ipairs(CLASSES) do
    it("trio." .. name .. " constructs an error with message and traceback", function()
      local e = trio[name]("the message")
      assert.equal("table", type(e))
      assert.equal("the message", e.message)
      assert.equal("string", type(e.traceback))
      assert.is_true(trio[name]:is(e))
      local s = tostring(e)
      assert.is_true(starts_with(s, "trio." .. name .. ": the message"), s)
    end)
  end

  it("Class:is is false for other classes", function()
    local e = trio.TooSlowError("x")
    assert.is_false(trio.ExceptionGroup:is(e))
    for _, name in ipairs(CLASSES) do
      if name ~= "TooSlowError" then
        assert.is_false(trio[name]:is(e), name)
      end
    end
  end)

  it("Class:is is false for strings, nil, numbers and plain tables", function()
    for _, v in ipairs { "trio.TooSlowError: x", 42, {}, { message = "x" }, true } do
      assert.is_false(trio.TooSlowError:is(v), tostring(v))
    end
    assert.is_false(trio.TooSlowError:is(nil))
    assert.is_false(trio.Cancelled:is(setmetatable({}, {})))
  end)

  it("the traceback records where the error was created", function()
    local ok, e = pcall(function() raise_in_helper(trio.BusyResourceError, "busy") end)
    assert.is_false(ok)
    assert_has(e.traceback, "raise_in_helper")
  end)

  it("the traceback reads as Lua's: one line per frame from the creator, the names its caller used", function()
    local function make_here()
      local e = trio.WouldBlock("x")
      return e
    end
    local line = debug.getinfo(1, "l").currentline - 3
    local tb = make_here().traceback
    local first, second = tb:match("^stack traceback:\n\t([^\n]+)\n\t([^\n]+)")
    assert.equal("trio_errors_spec.lua:" .. line .. ": in local 'make_here'", first:match("[^/]+$"))
    assert_has(second, "trio_errors_spec.lua:" .. (line + 4) .. ": in ")
  end)

  it("a deep stack's traceback shows its first 10 and last 11 frames around the skipped ones", function()
    local function nest(n) if n == 0 then return trio.WouldBlock("deep") end return (nest(n - 1)) end
    local tb = nest(60).traceback
    local frames, skipped = 0, nil
    for l in tb:gmatch("\n\t([^\n]+)") do
      if l:find("^%.%.%.") then skipped = tonumber(l:match("skipping (%d+) levels")) else frames = frames + 1 end
    end
    assert.equal(21, frames)
    assert.is_true(skipped ~= nil and skipped > 40, tb)
    assert_has(tb, "in upvalue 'nest'")
  end)

  it("cause is nil unless given", function()
    assert.is_nil(trio.WouldBlock("x").cause)
  end)

  it("tostring of trio_asyncio.FlavorError uses its qualified name", function()
    local ta = require "trio_asyncio"
    local e = ta.FlavorError("wrong flavor")
    assert.is_true(starts_with(tostring(e), "trio_asyncio.FlavorError: wrong flavor"), tostring(e))
    assert.is_true(ta.FlavorError:is(e))
    assert.is_false(trio.Cancelled:is(e))
  end)

  it("errors raised by the runtime are instances of the documented classes", function()
    local cancelled, too_slow, would_block, end_of_channel = trio.run(function()
      local _, c
      trio.move_on_after(0, function()
        _, c = pcall(trio.sleep, 1)
      end)
      local _, ts = pcall(trio.fail_after, 0, trio.sleep, 1)
      local send, recv = trio.open_memory_channel(0)
      local _, wb = pcall(recv.receive_nowait, recv)
      send:close()
      local _, eoc = pcall(recv.receive, recv)
      return c, ts, wb, eoc
    end)
    assert.is_true(trio.Cancelled:is(cancelled))
    assert.is_true(trio.TooSlowError:is(too_slow))
    assert.is_true(trio.WouldBlock:is(would_block))
    assert.is_true(trio.EndOfChannel:is(end_of_channel))
    assert.is_true(starts_with(tostring(cancelled), "trio.Cancelled"))
    assert.is_true(starts_with(tostring(too_slow), "trio.TooSlowError"))
  end)
end)

describe("errors crossing task boundaries", function()
  it("an error object raised in a child keeps its identity, class and traceback", function()
    local mine
    local e = errof(trio.run, function()
      trio.open_nursery(function(n)
        n:start_soon(function()
          local _, err = pcall(function() raise_in_helper(trio.BusyResourceError, "in child") end)
          mine = err
          error(err)
        end)
      end)
    end)
    assert.is_true(trio.ExceptionGroup:is(e))
    assert.equal(mine, e.exceptions[1])
    assert.is_true(trio.BusyResourceError:is(e.exceptions[1]))
    assert.equal("in child", e.exceptions[1].message)
    assert_has(e.exceptions[1].traceback, "raise_in_helper")
  end)

  it("a plain string error from a child stays a string, its traceback kept beside it", function()
    local e = errof(trio.run, function()
      trio.open_nursery(function(n)
        n:start_soon(function() error("plain", 0) end)
      end)
    end)
    assert.equal("plain", e.exceptions[1])
    assert.equal("string", type(e.tracebacks[1]))
    assert.is_true(#e.tracebacks[1] > 0)
  end)

  it("an error passed through two nurseries keeps the innermost traceback", function()
    local e = errof(trio.run, function()
      trio.open_nursery(function(n1)
        n1:start_soon(function()
          trio.open_nursery(function(n2)
            n2:start_soon(function() raise_in_helper(trio.ClosedResourceError, "deep") end)
          end)
        end)
      end)
    end)
    local inner = e.exceptions[1]
    assert.is_true(trio.ExceptionGroup:is(inner))
    local leaf = inner.exceptions[1]
    assert.is_true(trio.ClosedResourceError:is(leaf))
    assert_has(leaf.traceback, "raise_in_helper")
  end)

  it("tostring of an ExceptionGroup mentions each member's message", function()
    local e = errof(trio.run, function()
      trio.open_nursery(function(n)
        n:start_soon(function() error("alpha", 0) end)
        n:start_soon(function() raise_in_helper(trio.TooSlowError, "beta") end)
      end)
    end)
    local s = tostring(e)
    assert.is_true(starts_with(s, "trio.ExceptionGroup"), s)
    assert_has(s, "alpha")
    assert_has(s, "beta")
  end)

  it("an error value of any type (number, table without metatable) survives a nursery", function()
    local t = {}
    local e = errof(trio.run, function()
      trio.open_nursery(function(n)
        n:start_soon(function() error(t) end)
        n:start_soon(function() error(17) end)
      end)
    end)
    assert.equal(t, e.exceptions[1])
    assert.equal(17, e.exceptions[2])
  end)
end)
