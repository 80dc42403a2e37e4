-- Ported from Trio's src/trio/_tests/test_util.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- test_util.py tests private helpers of Trio's (trio._util); what they
-- give the public API is checked here on that API:
-- Adapted: test_ConflictDetector (on trio.testing's memory streams, whose
-- "another task is using this stream" detector is Trio's ConflictDetector:
-- streams used one inside the other are fine, a stream re-entered by the
-- same task or used by two tasks raises trio.BusyResourceError),
-- test_module_metadata_is_fixed_up (Python's __module__ / __qualname__
-- are the names values show: every error class a module exports is named
-- by the module and key it is exported under, or is the very class of
-- another export, as trio.OSError is trio_asyncio.OSError),
-- test_coroutine_or_error (what start_soon refuses: a value that cannot
-- be called, an asyncio Future, a coroutine; an asyncio-flavored function
-- is refused when it is called in the task, with FlavorError, since a Lua
-- function's flavor is not visible before it runs: docs/SEMANTICS.md
-- "Everywhere"), test_no_public_constructor_metaclass (the types Trio
-- makes with NoPublicConstructor are not exported as constructors: tasks,
-- nurseries, task statuses, tokens, channels and processes come from the
-- functions that make them).
-- Dropped: test_is_main_thread (Python's threading module; a worker's
-- Lua state has no trio at all, trio_test_threads_spec.lua checks that),
-- test_final_decorator (no class statement to subclass with),
-- test_fixup_module_metadata (the helper that test_module_metadata_is_fixed_up
-- relies on; the names are checked there), test_raise_single_exception_from_group
-- (a private helper of Trio's with no counterpart in our API).
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local errors = require "trio.errors"
local H = require "conformance.trio_helpers"

local P = "_tests/test_util.py::"
local wait_all_tasks_blocked = trio.testing.wait_all_tasks_blocked

local function is_error_class(v)
  local c = v
  while type(c) == "table" do
    if c == errors.Error then return true end
    c = rawget(c, "__parent")
  end
  return false
end

describe("Trio test_util.py", function()
  -- adapted: ConflictDetector("ul1") is a MemorySendStream's detector,
  -- entered by its send_all (and held while its hook runs)
  it(P .. "test_ConflictDetector", function()
    H.run(function()
      local ul1, ul2 = trio.testing.MemorySendStream(), trio.testing.MemorySendStream()
      -- with ul1: with ul2: -- two detectors nest
      ul1.send_all_hook = function() ul2:send_all("ok") end
      ul1:send_all("x")
      assert.equal("ok", ul2:get_data_nowait())

      -- with ul1: with ul1: -- the same one re-entered
      ul1.send_all_hook = function() ul1:send_all("again") end
      local e = H.raises(trio.BusyResourceError, ul1.send_all, ul1, "x")
      assert.equal("another task is using this stream", e.message)

      -- two tasks in it at once
      ul1.send_all_hook = function() wait_all_tasks_blocked() end
      H.raises_group(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(ul1.send_all, ul1, "a")
          nursery:start_soon(ul1.send_all, ul1, "b")
        end)
      end, H.msg("another task is using this stream"))
    end)
  end)

  -- adapted: the public name of each error class
  it(P .. "test_module_metadata_is_fixed_up", function()
    local modules = {
      trio = trio, ["trio.lowlevel"] = trio.lowlevel, ["trio.testing"] = trio.testing,
      ["trio.socket"] = trio.socket, ["trio.to_thread"] = trio.to_thread,
      asyncio = asyncio, trio_asyncio = ta, ["trio_asyncio.ssl"] = ta.ssl,
    }
    local exported, checked = {}, 0
    for mname, m in pairs(modules) do
      for key, v in pairs(m) do
        if is_error_class(v) then exported[mname .. "." .. key] = v end
      end
    end
    for full, cls in pairs(exported) do
      if cls.__name ~= full then
        -- an alias: the class must be exported under its own name too
        assert(exported[cls.__name] == cls, full .. " is named " .. tostring(cls.__name)
          .. ", which no module exports")
      end
      checked = checked + 1
    end
    assert(checked > 30, "too few error classes found: " .. checked)
    assert.equal("trio.Cancelled", trio.Cancelled.__name)
    assert.equal(trio.OSError, ta.OSError)
    assert.equal("trio.Cancelled: x", tostring(trio.Cancelled("x")):match("^[^\n]*"))
    assert.equal("trio.TooSlowError: slow", tostring(trio.TooSlowError("slow")):match("^[^\n]*"))
  end)

  -- adapted: what start_soon is given is checked when start_soon is called
  it(P .. "test_coroutine_or_error", function()
    local loop = ta.new_event_loop()
    local ok, err = pcall(H.run, function()
      trio.open_nursery(function(nursery)
        -- a coroutine object (upstream: f() instead of f)
        local co = coroutine.create(function() end)
        H.raises(H.msg("bad argument #1 to 'start_soon' (function expected, got thread)"),
          function() nursery:start_soon(co) end)
        -- an asyncio Future (upstream: create_asyncio_future_in_new_loop())
        H.raises(H.msg("Future"), function() nursery:start_soon(loop:create_future()) end)
        -- Deferred(): any other value that cannot be called
        H.raises(H.msg("function expected, got table"), function() nursery:start_soon({}) end)
        H.raises(H.msg("function expected, got nil"), function() nursery:start_soon(nil) end)
        -- the same checks in start and spawn_system_task
        H.raises(H.msg("bad argument #1 to 'start' (function expected, got thread)"),
          function() nursery:start(co) end)
        H.raises(H.msg("bad argument #1 to 'spawn_system_task' (function expected, got number)"),
          function() trio.lowlevel.spawn_system_task(1) end)
      end)
      -- an asyncio-flavored function: FlavorError in the task, naming the
      -- wrapper to use
      local e = H.raises_group(function()
        trio.open_nursery(function(nursery) nursery:start_soon(asyncio.sleep, 0) end)
      end, ta.FlavorError)
      assert.truthy(tostring(e.exceptions[1]):find("aio_as_trio", 1, true))
    end)
    loop:close()
    assert(ok, err)
  end)

  -- adapted: no constructor is exported for these types (the lookups
  -- also install the lazily loaded parts of the modules)
  it(P .. "test_no_public_constructor_metaclass", function()
    for _, name in ipairs { "Task", "TrioToken" } do
      assert(trio.lowlevel[name] == nil, "trio.lowlevel." .. name .. " is exported")
    end
    for _, name in ipairs { "Nursery", "TaskStatus", "MemorySendChannel", "MemoryReceiveChannel", "Process" } do
      assert(trio[name] == nil, "trio." .. name .. " is exported")
    end
    -- their objects come from the functions that make them
    H.run(function()
      assert.equal("string", type(trio.lowlevel.current_task().name))
      assert.equal("function", type(trio.lowlevel.current_trio_token().run_sync_soon))
      local send, receive = trio.open_memory_channel(1)
      send:send_nowait("v")
      assert.equal("v", receive:receive_nowait())
      send:close()
      receive:close()
      trio.open_nursery(function(nursery)
        assert.equal(trio.lowlevel.current_task(), nursery.parent_task)
      end)
    end)
  end)
end)
