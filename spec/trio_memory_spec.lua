-- Memory: finished tasks are collectable, and a million short tasks in
-- sequence leave the Lua heap and the RSS flat.
local trio = require "trio"

local function full_gc()
  collectgarbage()
  collectgarbage()
end

-- Resident set size in KiB (Linux), or nil where /proc is missing.
local function rss_kb()
  local f = io.open("/proc/self/statm")
  if not f then return nil end
  local _, resident = f:read("l"):match("^(%d+)%s+(%d+)")
  f:close()
  return tonumber(resident) * 4
end

-- RSS says nothing under ASan (its quarantine keeps freed memory) or
-- valgrind; the Lua heap bound still holds there.
local function rss_is_meaningful()
  if (os.getenv("LD_PRELOAD") or ""):find("asan") then return false end
  local f = io.open("/proc/self/maps")
  if not f then return false end
  local maps = f:read("a")
  f:close()
  return not (maps:find("vgpreload", 1, true) or maps:find("libasan", 1, true))
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

describe("finished tasks are collectable", function()
  it("a finished child's coroutine is collected while the run goes on", function()
    local weak = setmetatable({}, { __mode = "k" })
    local left = trio.run(function()
      trio.open_nursery(function(n)
        for _ = 1, 10 do
          n:start_soon(function() weak[coroutine.running()] = true trio.sleep(0) end)
        end
      end)
      trio.sleep(0)
      full_gc()
      return count(weak)
    end)
    assert.equal(0, left)
  end)

  it("a finished child's task object, arguments and upvalues are collected", function()
    local weak = setmetatable({}, { __mode = "k" })
    local left = trio.run(function()
      trio.open_nursery(function(n)
        local arg, upv = {}, {}
        weak[arg] = "arg"
        weak[upv] = "upvalue"
        n:start_soon(function(a)
          weak[trio.lowlevel.current_task()] = "task"
          local _ = upv
          trio.sleep(0)
          return a
        end, arg)
      end)
      trio.sleep(0)
      full_gc()
      return count(weak)
    end)
    assert.equal(0, left)
  end)

  it("the root task and everything it held are collected after the run", function()
    local weak = setmetatable({}, { __mode = "k" })
    trio.run(function()
      weak[coroutine.running()] = "root thread"
      weak[trio.lowlevel.current_task()] = "root task"
      local big = {}
      for i = 1, 1000 do big[i] = i end
      weak[big] = "big"
      trio.sleep(0)
    end)
    full_gc()
    assert.same({}, weak)
  end)

  it("a failed task and its error value are collected once the error is dropped", function()
    local weak = setmetatable({}, { __mode = "k" })
    do
      local ok = pcall(trio.run, function()
        trio.open_nursery(function(n)
          n:start_soon(function()
            weak[coroutine.running()] = "thread"
            local e = { "error value" }
            weak[e] = "error"
            error(e)
          end)
        end)
      end)
      assert.is_false(ok)
    end
    full_gc()
    assert.same({}, weak)
  end)

  it("a cancelled task is collected", function()
    local weak = setmetatable({}, { __mode = "k" })
    local left = trio.run(function()
      trio.move_on_after(0.005, function()
        trio.open_nursery(function(n)
          n:start_soon(function() weak[coroutine.running()] = true trio.sleep_forever() end)
        end)
      end)
      full_gc()
      return count(weak)
    end)
    assert.equal(0, left)
  end)

  it("cancel scopes, nurseries, events and channels of a finished run are collected", function()
    local weak = setmetatable({}, { __mode = "k" })
    trio.run(function()
      local s = trio.CancelScope()
      weak[s] = "scope"
      s:run(function()
        trio.open_nursery(function(n)
          weak[n] = "nursery"
          local ev = trio.Event()
          weak[ev] = "event"
          local send, recv = trio.open_memory_channel(1)
          weak[send], weak[recv] = "send", "recv"
          n:start_soon(function() recv:receive() ev:set() end)
          send:send(1)
          ev:wait()
        end)
      end)
    end)
    full_gc()
    assert.same({}, weak)
  end)
end)

describe("a million short tasks in sequence", function()
  it("leave the Lua heap and the RSS flat", function()
    require("support").skip_under_gc_stress(pending)
    local samples = {}
    trio.run(function()
      local function noop() end
      trio.open_nursery(function(n)
        for i = 1, 1000000 do
          n:start_soon(noop)
          if i % 1000 == 0 then
            trio.sleep(0)
            if i % 100000 == 0 then
              full_gc()
              samples[#samples + 1] = { i = i, lua_kb = collectgarbage("count"), rss_kb = rss_kb() }
            end
          end
        end
      end)
    end)
    assert.equal(10, #samples)
    local base, last = samples[1], samples[#samples]
    -- 900,000 tasks between the samples: 2 MiB is about 2 bytes per task.
    assert.is_true(last.lua_kb - base.lua_kb < 2048,
      ("Lua heap grew from %.0f KiB to %.0f KiB"):format(base.lua_kb, last.lua_kb))
    if base.rss_kb and rss_is_meaningful() then
      assert.is_true(last.rss_kb - base.rss_kb < 16384,
        ("RSS grew from %d KiB to %d KiB"):format(base.rss_kb, last.rss_kb))
    end
  end)

  it("a hundred thousand nurseries in sequence leave the Lua heap flat", function()
    require("support").skip_under_gc_stress(pending)
    local samples = {}
    trio.run(function()
      for i = 1, 100000 do
        trio.open_nursery(function(n) n:start_soon(trio.sleep, 0) end)
        if i % 20000 == 0 then
          full_gc()
          samples[#samples + 1] = collectgarbage("count")
        end
      end
    end)
    assert.is_true(samples[#samples] - samples[1] < 1024,
      ("Lua heap grew from %.0f KiB to %.0f KiB"):format(samples[1], samples[#samples]))
  end)

  it("a hundred thousand cancel scopes and timeouts in sequence leave the heap flat", function()
    require("support").skip_under_gc_stress(pending)
    local samples = {}
    trio.run(function()
      for i = 1, 100000 do
        trio.move_on_after(10, trio.lowlevel.checkpoint)
        if i % 20000 == 0 then
          full_gc()
          samples[#samples + 1] = collectgarbage("count")
        end
      end
    end)
    assert.is_true(samples[#samples] - samples[1] < 1024,
      ("Lua heap grew from %.0f KiB to %.0f KiB"):format(samples[1], samples[#samples]))
  end)

  it("repeated runs leave the heap flat", function()
    require("support").skip_under_gc_stress(pending)
    local function one_run()
      trio.run(function()
        trio.open_nursery(function(n)
          for _ = 1, 10 do n:start_soon(trio.sleep, 0) end
        end)
      end)
    end
    for _ = 1, 100 do one_run() end
    full_gc()
    local base = collectgarbage("count")
    for _ = 1, 2000 do one_run() end
    full_gc()
    local after = collectgarbage("count")
    assert.is_true(after - base < 1024, ("Lua heap grew from %.0f KiB to %.0f KiB"):format(base, after))
  end)
end)
