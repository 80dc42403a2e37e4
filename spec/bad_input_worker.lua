--- bad_input_worker.lua FROM TO [BUDGET]: runs the cases FROM..TO of
-- spec/bad_input_cases.lua (run by spec/bad_input_spec.lua in a child
-- process, so that a crash or a hang costs one case).  For each case it
-- prints, flushed at once:
--
--   S <id>                         the case starts
--   R <id> ok                      the call returned
--   R <id> err <what> <message>    it raised: <what> is the error's class
--                                  name, "string" or "nil"; first line only
--   U <id> ok | U <id> BRICKED <m> a trivial trio.run still works after it
--
-- and stops after a BRICKED state, or, without printing DONE, after a
-- case that ended BUDGET seconds or more after the start (the parent
-- starts a new worker for the rest: its timeout bounds one case, not a
-- batch whose length depends on the machine's load).
-- $TA_BAD_INPUT_SKIP lists case ids not
-- to run (known bugs that hang or crash), comma-separated.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local cases = require("bad_input_cases").cases()

local FROM, TO = tonumber(arg[1]) or 1, tonumber(arg[2]) or #cases
local BUDGET = tonumber(arg[3]) or math.huge
local started_at = os.time()
local BOUND = 0.01 -- every wait of a case is cancelled after this long

local skip = {}
for id in (os.getenv("TA_BAD_INPUT_SKIP") or ""):gmatch("%d+") do skip[tonumber(id)] = true end

local function out(...)
  io.stdout:write(table.concat({ ... }, " "), "\n")
  io.stdout:flush()
end

local function first_line(e)
  local ok, s = pcall(tostring, e)
  if not ok then return "(an error value whose tostring raises)" end
  return (s:match("[^\n]*"):gsub("%s+$", ""))
end

local function what(e)
  if e == nil then return "nil" end
  if type(e) == "string" then return "string" end
  if errors.is_error(e) then return (rawget(getmetatable(e), "__name"):gsub("%s", "_")) end
  return type(e)
end

-- ---------------------------------------------------------------------
-- objects of finished runs and closed loops, made once

local dead = {}
trio.run(function()
  trio.open_nursery(function(n) dead.nursery = n end)
  dead.scope = trio.CancelScope {}
  dead.scope:run(function() end)
  dead.task = trio.lowlevel.current_task()
  dead.token = trio.lowlevel.current_trio_token()
  dead.lot = trio.lowlevel.ParkingLot()
  dead.event = trio.Event()
end)
local function closed_loop()
  local loop = asyncio.new_event_loop()
  loop:run_until_complete(function() end)
  loop:close()
  return loop
end

-- The factories of O, called inside the case's context (env: what the
-- context made: the nursery, the running loop).
local factories = {
  nursery = function(env) return env.nursery end,
  closed_nursery = function()
    local n
    trio.open_nursery(function(x) n = x end)
    return n
  end,
  scope = function() return trio.CancelScope {} end,
  send = function() return (trio.open_memory_channel(1)) end,
  recv = function() return select(2, trio.open_memory_channel(1)) end,
  closed_send = function() local s = trio.open_memory_channel(1) s:close() return s end,
  closed_recv = function() local _, r = trio.open_memory_channel(1) r:close() return r end,
  lot = function() return trio.lowlevel.ParkingLot() end,
  clock = function() return trio.testing.MockClock {} end,
  task = function() return trio.lowlevel.current_task() end,
  token = function() return trio.lowlevel.current_trio_token() end,
  cvar = function() return trio.ContextVar("bad_input") end,
  tEvent = function() return trio.Event() end,
  tLock = function() return trio.Lock() end,
  tStrictFIFOLock = function() return trio.StrictFIFOLock() end,
  tSemaphore = function() return trio.Semaphore(1) end,
  tCapacityLimiter = function() return trio.CapacityLimiter(1) end,
  tCondition = function() return trio.Condition() end,
  dead_nursery = function() return dead.nursery end,
  dead_scope = function() return dead.scope end,
  dead_task = function() return dead.task end,
  dead_token = function() return dead.token end,
  dead_lot = function() return dead.lot end,
  dead_event = function() return dead.event end,
  loop = function() return ta.current_loop() or asyncio.get_running_loop() end,
  syncloop = function(env)
    local loop = asyncio.new_event_loop()
    env.cleanup[#env.cleanup + 1] = function() pcall(loop.close, loop) end
    return loop
  end,
  closed_loop = closed_loop,
  future = function() return asyncio.get_running_loop():create_future() end,
  done_future = function()
    local f = asyncio.get_running_loop():create_future()
    f:set_result(1)
    return f
  end,
  other_future = function() return asyncio.new_event_loop():create_future() end,
  closed_future = function()
    local loop = asyncio.new_event_loop()
    local f = loop:create_future()
    loop:close()
    return f
  end,
  aiotask = function() return asyncio.create_task(function() asyncio.sleep(0) return 1 end) end,
  handle = function() return asyncio.get_running_loop():call_later(10, function() end) end,
  closed_handle = function()
    local loop = asyncio.new_event_loop()
    local h = loop:call_later(10, function() end)
    loop:close()
    return h
  end,
  Queue = function() return asyncio.Queue(1) end,
  LifoQueue = function() return asyncio.LifoQueue(1) end,
  PriorityQueue = function() return asyncio.PriorityQueue(1) end,
  aEvent = function() return asyncio.Event() end,
  other_event = function() return asyncio.Event() end,
  aLock = function() return asyncio.Lock() end,
  aSemaphore = function() return asyncio.Semaphore(1) end,
  aBoundedSemaphore = function() return asyncio.BoundedSemaphore(1) end,
  aCondition = function() return asyncio.Condition() end,
  cfuture = function() return asyncio.ConcurrentFuture() end,
  executor = function() return asyncio.ThreadPoolExecutor(1) end,
}

-- ---------------------------------------------------------------------
-- contexts: in_ctx(ctx, body) calls body(env) there, bounded

-- env.cleanup: what the objects need after the case (run outside the
-- context: closing a sync loop, for one).
local function in_ctx(ctx, body, env)
  if ctx == "plain" then
    body(env)
  elseif ctx == "trio" then
    trio.run(function() trio.move_on_after(BOUND, body, env) end)
  elseif ctx == "nursery" then
    trio.run(function()
      trio.move_on_after(BOUND, trio.open_nursery, function(n)
        env.nursery = n
        body(env)
        n.cancel_scope:cancel()
      end)
    end)
  elseif ctx == "aio" then
    asyncio.run(function() pcall(asyncio.timeout, BOUND, body, env) end)
  elseif ctx == "bridge" then
    ta.run(function() trio.move_on_after(BOUND, body, env) end)
  elseif ctx == "baio" then
    ta.run(function()
      ta.aio_as_trio(function() pcall(asyncio.timeout, BOUND, body, env) end)()
    end)
  else
    error("unknown context " .. tostring(ctx))
  end
end

local env = setmetatable({ trio = trio, asyncio = asyncio, trio_asyncio = ta }, { __index = _G })

local function run_case(c)
  local chunk = assert(load("local O, S, A1, A2, A3 = ...\n" .. c.code, "=" .. c.name, "t", env))
  local result
  local cenv0 = { cleanup = {} }
  local _, werr = pcall(in_ctx, c.ctx, function(cenv)
    local O = c.object and factories[c.object](cenv)
    local S = c.self and c.self()
    local a = {}
    for i = 1, c.nargs do a[i] = c.args[i]() end
    result = table.pack(pcall(chunk, O, S, a[1], a[2], a[3]))
  end, cenv0)
  for _, f in ipairs(cenv0.cleanup) do f() end
  if result == nil then
    -- the context itself failed before the call finished
    return "err " .. what(werr) .. " (around the call) " .. first_line(werr)
  end
  if result[1] then return "ok" end
  return "err " .. what(result[2]) .. " " .. first_line(result[2])
end

for id = FROM, math.min(TO, #cases) do
  local c = cases[id]
  if not skip[id] then
    out("S", id)
    local ok, r = pcall(run_case, c)
    if not ok then r = "err " .. what(r) .. " (worker) " .. first_line(r) end
    out("R", id, r)
    local uok, v = pcall(trio.run, function() trio.sleep(0) return 7 end)
    if uok and v == 7 and not core.debug_state().running then
      out("U", id, "ok")
      if os.time() - started_at >= BUDGET then os.exit(0) end
    else
      out("U", id, "BRICKED", first_line(v))
      os.exit(0)
    end
  end
end
out("DONE")
