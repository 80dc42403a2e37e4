-- Bad input (issue #10): every public function of trio, asyncio and
-- trio_asyncio, and every method of their objects, called with wrong types,
-- nil, NaN, +-inf, negative and huge numbers, closed objects and objects of
-- another loop or of a finished run (the table: spec/bad_input_cases.lua).
-- Each call must raise a "bad argument" error naming the function, or a
-- clean error, or simply work; never an internal error, a crash or a hang,
-- and a trivial trio.run must still work afterwards.
--
-- The cases run in child processes (spec/bad_input_worker.lua), restarted
-- after a crash, a hang or a bricked state, so one bad case costs one case.
-- Cases that fail today are pending with "[bug: ...]" (grouped per
-- function); TA_RUN_PENDING=1 runs them too.
local cases_mod = require "bad_input_cases"
local CASES = cases_mod.cases()

local RUN_PENDING = os.getenv("TA_RUN_PENDING") == "1"
local BUILD = os.getenv("TA_BUILD") or "build"

-- ---------------------------------------------------------------------
-- Known failures (they need a fix in C or in lua/): rules matching cases
-- by signature name and label, each with its diagnosis
-- (spec/bad_input_known.lua).  A case matching a rule that misbehaves is
-- pending under that rule's reason; one that behaves simply passes; a
-- misbehaving case that matches no rule fails.  Rules marked skip (hangs
-- and crashes) are not run unless TA_RUN_PENDING=1.
local RULES = require "bad_input_known"

local function rule_of(c)
  for _, r in ipairs(RULES) do
    if (r.name == nil or c.name == r.name) and (r.prefix == nil or c.name:sub(1, #r.prefix) == r.prefix)
        and (r.label == nil or c.label:find(r.label, 1, true)) then
      return r
    end
  end
  return nil
end

local SKIP = {}
for _, c in ipairs(CASES) do
  local r = rule_of(c)
  if r and r.skip and not RUN_PENDING then SKIP[c.label] = { skip = true } end
end

-- The cases run once, when the file loads (so that the tests below know
-- which misbehave).
local RESULTS = cases_mod.run_all(CASES, SKIP, RUN_PENDING, BUILD)
local verdict = cases_mod.verdict

-- ---------------------------------------------------------------------
-- the tests: one per signature (and per special case) for the cases that
-- must behave; the misbehaving cases under a known rule, one pending test
-- per signature and rule

local by_name, order = {}, {}
for _, c in ipairs(CASES) do
  if not by_name[c.name] then
    by_name[c.name] = {}
    order[#order + 1] = c.name
  end
  table.insert(by_name[c.name], c)
end

local function check(list)
  local bad = {}
  for _, c in ipairs(list) do
    local v = SKIP[c.label] and "not run (known to hang or crash)" or verdict(c, RESULTS[c.id])
    if v then bad[#bad + 1] = ("  %s\n      -> %s"):format(c.label, v) end
  end
  assert(#bad == 0, ("%d of %d case(s) misbehave:\n%s"):format(#bad, #list, table.concat(bad, "\n")))
end

describe("bad input", function()
  for _, name in ipairs(order) do
    local fine, known = {}, {}
    local reasons = {}
    for _, c in ipairs(by_name[name]) do
      local r = rule_of(c)
      local misbehaves = SKIP[c.label] or verdict(c, RESULTS[c.id]) ~= nil
      if r and misbehaves then
        if not known[r.reason] then
          known[r.reason] = {}
          reasons[#reasons + 1] = r.reason
        end
        table.insert(known[r.reason], c)
      else
        fine[#fine + 1] = c
      end
    end
    if #fine > 0 then
      it(name .. ": wrong arguments raise clean errors, and the state stays usable", function()
        check(fine)
      end)
    end
    for _, reason in ipairs(reasons) do
      local list = known[reason]
      local calls = {}
      for i = 1, math.min(#list, 4) do calls[i] = list[i].label:gsub("^[^:]*: ", "") end
      local title = ("%s: %s%s"):format(name, table.concat(calls, "; "),
        #list > 4 and (" (and %d more)"):format(#list - 4) or "")
      if RUN_PENDING then
        it(title .. " [bug: " .. reason .. "]", function() check(list) end)
      else
        pending(title .. " [bug: " .. reason .. "]", function() check(list) end)
      end
    end
  end

  it("covers every public function and method", function()
    local trio, asyncio, ta = require "trio", require "asyncio", require "trio_asyncio"
    local core = require "trio_asyncio.core"
    local covered = {}
    for _, c in ipairs(CASES) do
      covered[c.name:match("^([^%s{(]+)"):gsub("=$", "")] = true
    end
    local missing = {}
    local function need(qualified)
      if not covered[qualified] then missing[#missing + 1] = qualified end
    end
    local function walk(t, prefix)
      for k, v in pairs(t) do
        if type(k) == "string" and k:sub(1, 1) ~= "_" and type(v) == "function" then need(prefix .. k) end
      end
    end
    walk(trio, "trio.")
    walk(trio.lowlevel, "trio.lowlevel.")
    walk(trio.testing, "trio.testing.")
    walk(asyncio, "asyncio.")
    walk(ta, "trio_asyncio.")
    local methods = {
      ["trio_asyncio.MemorySendChannel"] = "MemorySendChannel:", ["trio_asyncio.MemoryReceiveChannel"] = "MemoryReceiveChannel:",
      ["trio_asyncio.Loop"] = "Loop:", ["trio_asyncio.Handle"] = "Handle:",
      ["trio_asyncio.Future"] = "Future:",
    }
    for mt, prefix in pairs(methods) do walk(core.metatable(mt).__index, prefix) end
    walk(core.metatable("trio_asyncio.Nursery").__methods, "Nursery:")
    walk(core.metatable("trio_asyncio.CancelScope").__methods, "CancelScope:")
    walk(core.metatable("trio_asyncio.MockClock").__methods, "MockClock:")
    walk(core.metatable("trio_asyncio.ParkingLot").__methods, "ParkingLot:")
    local ignore = {
      ["trio.Event:statistics_line"] = true, -- an internal helper of __tostring
      ["trio.testing.it"] = true, -- registers a busted test: trio_test covers its arguments
    }
    -- The networking entry points have their own bad-input spec
    -- (spec/net_faults_spec.lua, every entry point of both flavors): a valid
    -- call there opens sockets and resolves names.
    for _, name in ipairs {
      "Loop:create_connection",
      "Loop:create_datagram_endpoint",
      "Loop:create_server",
      "Loop:create_unix_connection",
      "Loop:create_unix_server",
      "Loop:getaddrinfo",
      "Loop:getnameinfo",
      "Loop:sock_accept",
      "Loop:sock_connect",
      "Loop:sock_recv",
      "Loop:sock_recvfrom",
      "Loop:sock_sendall",
      "Loop:sock_sendto",
      "asyncio.StreamReader",
      "asyncio.StreamReaderProtocol",
      "asyncio.StreamWriter",
      "asyncio.open_connection",
      "asyncio.open_unix_connection",
      "asyncio.start_server",
      "asyncio.start_unix_server",
      "trio.SocketListener",
      "trio.SocketStream",
      "trio.StapledStream",
      "trio.open_tcp_listeners",
      "trio.open_tcp_stream",
      "trio.open_unix_listener",
      "trio.open_unix_socket",
      "trio.serve_listeners",
      "trio.serve_tcp",
      "trio.serve_unix",
      "trio.testing.MemoryReceiveStream",
      "trio.testing.MemorySendStream",
      "trio.testing.check_half_closeable_stream",
      "trio.testing.check_one_way_stream",
      "trio.testing.check_two_way_stream",
      "trio.testing.lockstep_stream_one_way_pair",
      "trio.testing.lockstep_stream_pair",
      "trio.testing.memory_stream_one_way_pair",
      "trio.testing.memory_stream_pair",
      "trio.testing.memory_stream_pump",
      "trio.testing.open_stream_to_socket_listener",
    } do ignore[name] = true end
    -- TLS too (spec/tls_spec.lua, "every argument of every TLS entry point"):
    -- a valid call there makes connections and handshakes.
    for _, name in ipairs {
      "Loop:start_tls", "trio.SSLListener", "trio.SSLStream", "trio.open_ssl_over_tcp_listeners",
      "trio.open_ssl_over_tcp_stream", "trio.serve_ssl_over_tcp",
    } do ignore[name] = true end
    -- Processes, signals and TrioExecutor too (spec/process_spec.lua,
    -- spec/signals_spec.lua, spec/threads_spec.lua): a valid call there
    -- spawns a program, changes how this process handles a signal, or
    -- starts worker threads.
    for _, name in ipairs {
      "Loop:add_signal_handler", "Loop:remove_signal_handler", "Loop:subprocess_exec",
      "Loop:subprocess_shell", "asyncio.create_subprocess_exec", "asyncio.create_subprocess_shell",
      "trio.lowlevel.open_process", "trio.open_signal_receiver", "trio.run_process",
      "trio_asyncio.TrioExecutor",
    } do ignore[name] = true end
    local objs = { Event = trio.Event(), Lock = trio.Lock(), StrictFIFOLock = trio.StrictFIFOLock(),
      Semaphore = trio.Semaphore(1), CapacityLimiter = trio.CapacityLimiter(1), Condition = trio.Condition() }
    for cls, o in pairs(objs) do
      local mt = getmetatable(o)
      local seen = {}
      for _, t in ipairs { mt, getmetatable(mt) and getmetatable(mt).__index or {} } do
        if type(t) == "table" then
          for k, v in pairs(t) do
            if type(k) == "string" and k:sub(1, 1) ~= "_" and type(v) == "function" and not seen[k]
                and k ~= "statistics_line" then
              seen[k] = true
              need("trio." .. cls .. ":" .. k)
            end
          end
        end
      end
    end
    for _, cls in ipairs { "Event", "Lock", "Semaphore", "BoundedSemaphore", "Condition", "Queue", "LifoQueue",
      "PriorityQueue" } do
      local mt = getmetatable(asyncio[cls](cls:find("Sema") and 1 or nil))
      for k, v in pairs(type(mt.__index) == "table" and mt.__index or mt) do
        if type(k) == "string" and k:sub(1, 1) ~= "_" and type(v) == "function" then need("asyncio." .. cls .. ":" .. k) end
      end
    end
    for _, m in ipairs { "get_name", "set_name", "cancel", "cancelling", "uncancel" } do need("Task:" .. m) end
    need("TrioToken:run_sync_soon")
    for _, m in ipairs { "get", "set", "reset" } do need("ContextVar:" .. m) end
    local really = {}
    for _, m in ipairs(missing) do if not ignore[m] then really[#really + 1] = m end end
    table.sort(really)
    assert(#really == 0, "no case calls: " .. table.concat(really, ", "))
  end)
end)
