-- testing_spec.lua: testing your own async code with busted.
--   busted examples/testing_spec.lua      (from the repository root)
-- trio.testing.it runs the body in a fresh Trio run and
-- trio_asyncio.testing.it runs it as an asyncio Task; with autojump, time
-- skips ahead whenever every task is blocked, so timeouts test instantly.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"

-- The code under test: retries a flaky operation with a pause between tries.
local function with_retries(op, tries, pause)
  for i = 1, tries do
    local ok, result = pcall(op)
    if ok then return result, i end
    if i == tries then error(result, 0) end
    trio.sleep(pause)
  end
end

describe("with_retries", function()
  trio.testing.it("returns the first success and waits between tries", function()
    local calls = 0
    local t0 = trio.current_time()
    local result, tries = with_retries(function()
      calls = calls + 1
      if calls < 3 then error("flaky", 0) end
      return "ok"
    end, 5, 60)
    assert.are.equal("ok", result)
    assert.are.equal(3, tries)
    assert.are.equal(120, trio.current_time() - t0) -- two pauses, no real waiting
  end, { autojump = true })

  trio.testing.it("gives up after the last try with its error", function()
    local ok, err = pcall(with_retries, function() error("down", 0) end, 3, 1)
    assert.is_false(ok)
    assert.are.equal("down", err)
  end, { autojump = true })

  trio.testing.it("can be cancelled from outside", function()
    local scope = trio.move_on_after(10, with_retries, function() error("down", 0) end, 100, 1)
    assert.is_true(scope.cancelled_caught)
  end, { autojump = true, timeout = 60 })

  trio.testing.it("runs retries of several callers side by side", function()
    local done = {}
    trio.open_nursery(function(nursery)
      for name, fails in pairs { a = 1, b = 2 } do
        nursery:start_soon(function()
          local n = 0
          with_retries(function()
            n = n + 1
            if n <= fails then error("flaky", 0) end
          end, 5, 1)
          done[name] = trio.current_time()
        end)
      end
    end)
    assert.are.same({ a = 1, b = 2 }, done)
  end, { autojump = true })
end)

describe("an asyncio-flavored cache", function()
  local function make_cache(fetch)
    local cache = {}
    return function(key)
      if cache[key] == nil then cache[key] = asyncio.ensure_future(function() return fetch(key) end) end
      return cache[key]:await()
    end
  end

  ta.testing.it("fetches each key once, even for concurrent callers", function()
    local fetches = 0
    local get = make_cache(function(key)
      fetches = fetches + 1
      asyncio.sleep(5)
      return key .. "!"
    end)
    local results = asyncio.gather(function() return get("x") end, function() return get("x") end)
    assert.are.same({ "x!", "x!" }, { results[1], results[2] })
    assert.are.equal(1, fetches)
  end, { autojump = true })
end)
