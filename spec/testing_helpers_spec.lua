-- The test helpers for users: trio.testing.it / trio_test and
-- trio_asyncio.testing.it / aio_test.  User specs (spec/fixtures/) are run
-- through busted in a child process to see what busted counts.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

-- package.path / cpath with the relative entries made absolute, for a
-- child process started in another directory.
local function absolute(path)
  local cwd = os.getenv("PWD") or io.popen("pwd"):read("l")
  return (path:gsub("[^;]+", function(entry)
    if entry:sub(1, 1) == "/" then return entry end
    return cwd .. "/" .. entry:gsub("^%./", "")
  end))
end

-- Runs busted on a fixture spec (at most 60 s) from an empty directory;
-- returns its output.
local function busted_on(fixture)
  local cwd = os.getenv("PWD") or io.popen("pwd"):read("l")
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local cmd = ("cd %s && LUA_PATH=%q LUA_CPATH=%q timeout 60 lua5.4 /usr/bin/busted --ignore-lua "
    .. "-o plainTerminal %s/spec/fixtures/%s 2>&1"):format(
    dir, absolute(package.path), absolute(package.cpath), cwd, fixture)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  os.execute("rm -rf " .. dir)
  return out
end

describe("trio.testing.it in a user's spec", function()
  it("reports a failing assertion inside a child task as 1 failure", function()
    local out = busted_on("child_failure.lua")
    assert_has(out, "0 successes / 1 failure / 0 errors / 0 pending")
    assert_has(out, "child_failure.lua:10: Expected objects to be equal.")
    assert_has(out, "Failure -> ")
  end)

  it("counts failures, errors and successes the way busted does for plain code", function()
    local out = busted_on("failure_kinds.lua")
    assert_has(out, "1 success / 2 failures / 2 errors / 0 pending")
    assert_has(out, "failure kinds helper, one failing child")
    assert_has(out, "failure kinds asyncio helper, failing Task")
    -- the two that stay errors
    assert_has(out, "Error -> ")
    assert_has(out, "failure kinds plain it, one failing child")
    assert_has(out, "failure kinds helper, two failing children")
  end)
end)

describe("trio.testing.trio_test", function()
  it("runs the body in a fresh Trio run and returns its results", function()
    local test = trio.testing.trio_test(function(clock)
      assert.is_nil(clock)
      assert.is_not_nil(trio.lowlevel.current_root_task())
      trio.sleep(0)
      return 1, nil, 3
    end)
    local r = table.pack(test())
    assert.same({ 1, nil, 3, n = 3 }, r)
    assert.is_nil(trio.lowlevel.current_root_task())
  end)

  it("with autojump, passes a MockClock that jumps while every task sleeps", function()
    local t0 = os.time()
    local got
    trio.testing.trio_test(function(clock)
      got = clock
      trio.sleep(1000)
      return trio.current_time()
    end, { autojump = true })()
    assert.equal("trio_asyncio.MockClock", getmetatable(got).__name)
    assert.is_true(os.time() - t0 < 5)
  end)

  it("uses a given clock", function()
    local clock = trio.testing.MockClock { autojump_threshold = 0 }
    local start = clock:current_time()
    local seen, t = trio.testing.trio_test(function(c)
      trio.sleep(7)
      return c, trio.current_time()
    end, { clock = clock })()
    assert.equal(clock, seen)
    assert.equal(start + 7, t)
  end)

  it("fails a body that outlives opts.timeout (on the autojump clock at once)", function()
    local e = errof(trio.testing.trio_test(function() trio.sleep_forever() end,
      { timeout = 30, autojump = true }))
    assert.equal("trio.testing: the test did not finish within 30 s", e)
    e = errof(trio.testing.trio_test(function() trio.sleep_forever() end, { timeout = 0.05 }))
    assert.equal("trio.testing: the test did not finish within 0.05 s", e)
  end)

  it("fails a test that leaves a file descriptor open", function()
    local kept
    local e = errof(trio.testing.trio_test(function()
      kept = assert(io.open("/dev/null"))
    end))
    kept:close()
    assert.equal("trio.testing: the test left 1 file descriptor(s) behind", e)
  end)

  it("does not check leaks with leak_check = false", function()
    local kept
    trio.testing.trio_test(function() kept = assert(io.open("/dev/null")) end, { leak_check = false })()
    kept:close()
  end)

  it("passes instruments to the run", function()
    local events = {}
    trio.testing.trio_test(function() trio.sleep(0) end, {
      instruments = { { before_run = function() events[#events + 1] = "before_run" end } },
    })()
    assert.same({ "before_run" }, events)
  end)

  it("raises a plain error and a group of one non-failure as they are", function()
    assert.equal("boom", errof(trio.testing.trio_test(function() error("boom", 0) end)))
    local e = errof(trio.testing.trio_test(function()
      trio.open_nursery(function(n) n:start_soon(error, "child boom", 0) end)
    end))
    assert.is_true(trio.ExceptionGroup:is(e))
    assert.same({ "child boom" }, e.exceptions)
  end)

  it("checks its arguments", function()
    assert_has(errof(trio.testing.trio_test, 42), "bad argument #1 to 'trio_test' (function expected, got number)")
    assert_has(errof(trio.testing.trio_test, print, 42),
      "bad argument #2 to 'trio_test' (options table expected, got number)")
    assert_has(errof(trio.testing.trio_test, print, { timeout = -1 }),
      "bad argument #2 to 'trio_test' (opts.timeout must be a non-negative number)")
    assert_has(errof(trio.testing.trio_test, print, { autojump = "yes" }),
      "bad argument #2 to 'trio_test' (opts.autojump must be true or a threshold in seconds)")
    assert_has(errof(trio.testing.it, 1, print), "bad argument #1 to 'it' (string expected, got number)")
    assert_has(errof(trio.testing.it, "x", print, 5), "bad argument #3 to 'it' (options table expected, got number)")
  end)

  it("refuses trio.testing.it outside busted with a sentence that says what to use", function()
    local cmd = ("LUA_PATH=%q LUA_CPATH=%q lua5.4 -e %q 2>&1"):format(package.path, package.cpath,
      [[require("trio").testing.it("x", function() end)]])
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    assert_has(out, "trio.testing.it: must be called while busted loads a spec file "
      .. "(with another framework, wrap the body with trio.testing.trio_test)")
  end)
end)

-- The helper used the way a user's spec uses it.
describe("trio.testing.it used here", function()
  trio.testing.it("runs in a run with an autojump clock", function(clock)
    assert.is_not_nil(clock)
    local t = trio.current_time()
    trio.sleep(3600)
    assert.equal(3600, trio.current_time() - t)
  end, { autojump = true })

  ta.testing.it("runs an asyncio body as a Task, with the loop", function(loop)
    assert.equal(loop, asyncio.get_running_loop())
    assert.equal("test body", asyncio.current_task():get_name())
    assert.equal(42, asyncio.gather(function() return 42 end)[1])
  end)
end)

describe("trio_asyncio.testing.aio_test", function()
  it("runs fn(loop, clock) as the main Task; the loop's timers follow the autojump clock", function()
    local t0 = os.time()
    local elapsed, flavor = ta.testing.aio_test(function(loop, clock)
      assert.equal("trio_asyncio.MockClock", getmetatable(clock).__name)
      local t = loop:time()
      asyncio.sleep(500)
      return loop:time() - t, ta.current_flavor()
    end, { autojump = true })()
    assert.equal(500, elapsed)
    assert.equal("asyncio", flavor)
    assert.is_true(os.time() - t0 < 5)
  end)

  it("fails a test that leaves an asyncio Task pending, naming it", function()
    local cancelled = false
    local e = errof(ta.testing.aio_test(function()
      asyncio.create_task(function()
        local ok, err = pcall(asyncio.sleep, 10)
        cancelled = not ok and asyncio.CancelledError:is(err)
        error(err, 0)
      end):set_name("forgotten")
      asyncio.sleep(0)
    end, { autojump = true }))
    assert_has(e, "trio_asyncio.testing: 1 asyncio Task(s) still pending when the test ended: 'forgotten'")
    assert.is_true(cancelled)
  end)

  it("fails a test whose callback raised (the loop's exception handler got it)", function()
    local e = errof(ta.testing.aio_test(function(loop)
      loop:call_soon(function() error("callback boom", 0) end)
      asyncio.sleep(0)
      asyncio.sleep(0)
    end))
    assert.equal("callback boom", e)
  end)

  it("re-raises an assertion failure from a Task as itself", function()
    local e = errof(ta.testing.aio_test(function()
      asyncio.gather(function() assert.equal(1, 2) end)
    end))
    assert.equal("failure", getmetatable(e).__type)
  end)

  it("checks its arguments", function()
    assert_has(errof(ta.testing.aio_test, nil), "bad argument #1 to 'aio_test' (function expected, got nil)")
    assert_has(errof(ta.testing.it, "x", print, "no"), "bad argument #3 to 'it' (options table expected, got string)")
  end)
end)
