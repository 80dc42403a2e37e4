-- Reliability (issue #10, "Why"): each way a hostile but plain Lua program
-- (or C host) could crash, hang, lose an error or brick the state.  Every
-- test runs its program in a child process with a time limit (spec/child.lua),
-- so a crash or a hang fails that test only.
local child = require "child"

-- Each test names the bug it pinned down (`was`, what the runtime did
-- before the fix): a regression test with its history.
local function bug(name, was, fn)
  assert(type(was) == "string")
  it(name, fn)
end

teardown(child.cleanup)

-- What every child program starts with: the modules, `usable()` (a trivial
-- run still works in this state), and Ctrl-C helpers.
local PRELUDE = [[
local trio, asyncio, ta = require 'trio', require 'asyncio', require 'trio_asyncio'
local function usable()
  local ok, v = pcall(trio.run, function() trio.sleep(0) return 7 end)
  return ok and v == 7
end
local function pid() local f = io.open('/proc/self/stat') local p = f:read('n') f:close() return p end
-- SIGINT to this process after s seconds (os.execute's system() would
-- ignore a SIGINT arriving while it waits, hence the background job)
local function ctrl_c_in(s) os.execute(('(sleep %s; kill -INT %d) &'):format(s, pid())) end
local function busy(s) local t = os.clock() + s while os.clock() < t do end end
local function line(e) return (tostring(e):match('[^\n]*')) end
]]

local function run(code, opts) return child.run(PRELUDE .. code, opts) end

-- ---------------------------------------------------------------------
describe("an async function called where the task cannot yield", function()
  -- The program calls `what` inside `ctx` (a C function calling back into
  -- Lua); the call must raise an error naming the function, the task must
  -- go on normally (its next sleep really sleeps), and the state stay usable.
  local function program(ctx, what, name)
    return ([[
print('run', pcall(trio.run, function()
  local ev = trio.Event()
  local send, recv = trio.open_memory_channel(0)
  trio.open_nursery(function(n)
    n:start_soon(function() for i = 1, 5 do trio.sleep(0) end end)
    n:start_soon(function() pcall(recv.receive, recv) end)
    n:start_soon(function() trio.sleep(0.01) ev:set() end)
    local call = function() %s end
    local ok, err = pcall(function() %s end)
    print('raised', not ok)
    print('names the function', tostring(err):find(%q, 1, true) ~= nil)
    print('says why', tostring(err):find('yield', 1, true) ~= nil or tostring(err):find('suspend', 1, true) ~= nil)
    local t0 = trio.current_time()
    trio.sleep(0.05)
    print('then sleeps for real', trio.current_time() - t0 >= 0.04)
    send:close()
  end)
  return 'finished'
end))
print('usable', usable())
]]):format(what, ctx, name)
  end
  local calls = {
    { "trio.sleep", "trio.sleep(0)" },
    { "MemorySendChannel:send", "send:send(1)" },
    { "MemoryReceiveChannel:receive", "recv:receive()" },
    { "trio.lowlevel.checkpoint", "trio.lowlevel.checkpoint()" },
  }
  local contexts = {
    { "a table.sort comparator", "table.sort({3, 1, 2}, function(a, b) call() return a < b end)" },
    { "a string.gsub callback", "string.gsub('abc', '%w', function(c) call() return c end)" },
    { "a __tostring metamethod", "tostring(setmetatable({}, {__tostring = function() call() return 'x' end}))" },
  }
  -- Lua 5.4 can yield across __index (called from Lua code): there the call
  -- simply works, and the task goes on.
  local yieldable = { "an __index metamethod", "return setmetatable({}, {__index = function() call() end}).x" }
  for _, ctx in ipairs(contexts) do
    for _, c in ipairs(calls) do
      bug(("%s inside %s raises a clear error and leaves the scheduler intact"):format(c[1], ctx[1]),
        "the primitive queues/parks the task before lua_yieldk fails (needs a lua_isyieldable check in ta_async_check)",
        function()
          local r = run(program(ctx[2], c[2], c[1]), { timeout = 10 })
          child.expect_lines(r, { "raised\ttrue", "names the function\ttrue", "says why\ttrue",
            "then sleeps for real\ttrue", "run\ttrue\tfinished", "usable\ttrue" })
        end)
    end
  end
  for _, c in ipairs(calls) do
    -- (a receive there would wait for a send, as anywhere else)
    if c[1] ~= "MemoryReceiveChannel:receive" then
    it(("%s inside %s works (the task may suspend there)"):format(c[1], yieldable[1]), function()
      local r = run(program(yieldable[2], c[2], c[1]), { timeout = 10 })
      child.expect_lines(r, { "raised\tfalse", "then sleeps for real\ttrue", "run\ttrue\tfinished",
        "usable\ttrue" })
    end)
    end
  end

  bug("Event:wait inside a table.sort comparator raises a clear error", "as above: lot park before lua_yieldk fails",
    function()
      local r = run(program(contexts[1][2], "ev:wait()", ""), { timeout = 10 })
      child.expect_lines(r, { "raised\ttrue", "names the function\ttrue", "then sleeps for real\ttrue",
        "run\ttrue\tfinished", "usable\ttrue" })
    end)

  bug("trio.sleep inside a __gc finalizer of a task is refused, and the task's next sleep still sleeps",
    "the failed yield leaves the task queued twice: its next trio.sleep(0.2) returns at once",
    function()
      local r = run([[
warn('@on')
print('run', pcall(trio.run, function()
  setmetatable({}, {__gc = function() trio.sleep(0) end})
  collectgarbage() collectgarbage()
  local t0 = trio.current_time()
  trio.sleep(0.2)
  print('then sleeps for real', trio.current_time() - t0 >= 0.19)
  return 'finished'
end))
print('usable', usable())
]])
      child.expect_lines(r, { "then sleeps for real\ttrue", "run\ttrue\tfinished", "usable\ttrue" })
      -- (Lua's warning shows only string errors: "error object is not a string")
      assert(r.err:find("error in __gc", 1, true), "the finalizer's error is reported" .. child.describe(r))
    end)

  it("trio.sleep inside an instrument is refused with a clear error (the instrument is removed)", function()
    local r = run([[
print('run', pcall(trio.lowlevel.run, {fn = function() trio.sleep(0.01) return 'finished' end,
  instruments = {{before_task_step = function() trio.sleep(0) end}}}))
print('usable', usable())
]])
    child.expect_lines(r, { "run\ttrue\tfinished", "usable\ttrue" })
    assert(r.err:find("trio.sleep: cannot suspend the task here", 1, true), child.describe(r))
    assert(r.err:find("an instrument hook", 1, true), child.describe(r))
  end)

  bug("Future:await inside a table.sort comparator of an asyncio Task raises a clear error",
    "same as the Trio primitives: ta_aio_yield fails after the Task was marked parked",
    function()
      local r = run([[
print('run', pcall(asyncio.run, function()
  local loop = asyncio.get_running_loop()
  local fut = loop:create_future()
  loop:call_later(0.01, function() fut:set_result(1) end)
  local ok, err = pcall(table.sort, {3, 1, 2}, function(a, b) fut:await() return a < b end)
  print('raised', not ok, tostring(err):find('await', 1, true) ~= nil)
  asyncio.sleep(0.02)
  return fut:result()
end))
print('usable', usable())
]])
      child.expect_lines(r, { "raised\ttrue\ttrue", "run\ttrue\t1", "usable\ttrue" })
    end)
end)

-- ---------------------------------------------------------------------
describe("functions that need the task but do not suspend", function()
  it("work where the task cannot yield (a table.sort comparator), as in Trio", function()
    local r = run([[
print('run', pcall(trio.run, function()
  local me = trio.lowlevel.current_task()
  local lot = trio.lowlevel.ParkingLot()
  local seen = {}
  table.sort({3, 1, 2}, function(a, b)
    seen.task = trio.lowlevel.current_task() == me
    seen.deadline = trio.current_effective_deadline() == math.huge
    seen.in_task = trio.lowlevel.in_trio_task()
    if not seen.broke then lot:break_lot() seen.broke = true end
    return a < b
  end)
  print('current_task', seen.task)
  print('current_effective_deadline', seen.deadline)
  print('in_trio_task', seen.in_task)
  print('broken', (pcall(lot.park, lot)))
  return 'finished'
end))
print('usable', usable())
]])
    child.expect_lines(r, { "current_task\ttrue", "current_effective_deadline\ttrue", "in_trio_task\ttrue",
      "broken\tfalse", "run\ttrue\tfinished", "usable\ttrue" })
  end)
end)

describe("wait_task_rescheduled abort callbacks", function()
  local function program(abort_body)
    return ([[
local ok, err = pcall(trio.run, function()
  trio.move_on_after(0.01, function()
    local task = trio.lowlevel.current_task()
    trio.lowlevel.wait_task_rescheduled(function(raise_cancel) %s end)
  end)
  return 'after'
end)
print('run', ok, line(err))
print('internal', trio.TrioInternalError:is(err))
print('usable', usable())
]]):format(abort_body)
  end

  bug("an abort callback that reschedules its own task and answers SUCCEEDED does not step the task twice",
    "reschedule accepts the task while its abort callback runs, then ta_deliver_cancel reschedules it again (segfault)",
    function()
      local r = run(program("trio.lowlevel.reschedule(task, true, 'early') return 'SUCCEEDED'"))
      assert(r.status == "ok", "no crash" .. child.describe(r))
      assert(r.out:find("usable\ttrue", 1, true), child.describe(r))
    end)

  bug("an abort callback that raises ends the run with TrioInternalError instead of hanging",
    "lua_abort treats a raising abort_fn as FAILED: the task waits forever (Trio raises TrioInternalError)",
    function()
      local r = run(program("error('abort failed on purpose')"), { timeout = 5 })
      child.expect_lines(r, { "internal\ttrue", "usable\ttrue" })
      assert(r.out:find("abort failed on purpose", 1, true) or r.err:find("abort failed on purpose", 1, true),
        "the abort callback's error is not lost" .. child.describe(r))
    end)

  bug("an abort callback that returns nothing ends the run with TrioInternalError instead of hanging",
    "lua_abort treats a non-Abort answer as FAILED: the task waits forever (Trio raises TrioInternalError)",
    function()
      local r = run(program("return nil"), { timeout = 5 })
      child.expect_lines(r, { "internal\ttrue", "usable\ttrue" })
    end)

  it("an abort callback answering FAILED and rescheduling later works (control)", function()
    local r = run(program("trio.lowlevel.current_trio_token():run_sync_soon(function() "
      .. "trio.lowlevel.reschedule(task, true, 'late') end) return 'FAILED'"))
    child.expect_lines(r, { "run\ttrue\tafter", "usable\ttrue" })
  end)
end)

-- ---------------------------------------------------------------------
describe("C hosts", function()
  bug("lua_close from inside a running task closes without a double free",
    "engine_gc -> abandon_run steps the run from inside run_batch: the nested run_batch swaps runq/batch "
      .. "again, so E->runq == E->batch and engine_gc frees it twice",
    function()
      local r = child.run_host([[
local trio = require 'trio'
trio.run(function()
  trio.open_nursery(function(n)
    n:start_soon(trio.sleep_forever)
    trio.sleep(0.01)
    host.close_state()
  end)
end)
]])
      assert(r.out:find("closed\n", 1, true) and r.code == 0 and not r.err:find("ERROR", 1, true),
        "lua_close returned cleanly" .. child.describe(r))
    end)

  bug("a posted callback whose error has a failing __tostring does not panic a host-loop guest run",
    "on_async reports the error with an unprotected luaL_tolstring (also ta_loop_exception, protected_step, "
      .. "ta_guest_step): the __tostring error unwinds through uv_run",
    function()
      local r = child.run_host([[
local trio = require 'trio'
print('use_loop', host.use_loop())
trio.lowlevel.start_guest_run(function()
  print('post', host.post_error('badtostring'))
  trio.sleep(0.05)
  return 'survived'
end, {done_callback = function(...) print('done', ...) end})
host.run_loop_after = true
]])
      child.expect_lines(r, { "use_loop\t0", "post\t0", "done\ttrue\tsurvived", "exit ok" })
    end)

  bug("a posted callback whose error has a failing __tostring does not end trio.run or brick the state",
    "the error of luaL_tolstring in on_async escapes uv_run and l_run: E->running stays 1",
    function()
      local r = child.run_host([[
local trio = require 'trio'
print('run', pcall(trio.run, function()
  host.post_error('badtostring')
  trio.sleep(0.05)
  return 'survived'
end))
print('usable', pcall(trio.run, function() trio.sleep(0) return 7 end))
]])
      child.expect_lines(r, { "run\ttrue\tsurvived", "usable\ttrue\t7", "exit ok" })
    end)

  it("a posted callback raising a plain error is reported and the run goes on (control)", function()
    local r = child.run_host([[
local trio = require 'trio'
print('run', pcall(trio.run, function()
  host.post_error('string')
  trio.sleep(0.05)
  return 'survived'
end))
]])
    child.expect_lines(r, { "run\ttrue\tsurvived", "exit ok" })
    assert(r.err:find("posted callback raised on purpose", 1, true), child.describe(r))
  end)

  bug("trio_asyncio_use_loop returns when an asyncio loop has a reader registered",
    "use_loop closes the engine's handles then uv_run(own_loop, DEFAULT), which blocks on the "
      .. "loop's still-active uv_poll_t of add_reader",
    function()
      local r = child.run_host([[
local asyncio = require 'asyncio'
local rfd, wfd = host.pipe()
local loop = asyncio.new_event_loop()
loop:add_reader(rfd, function() end)
print('use_loop returned', host.use_loop() ~= nil)
loop:remove_reader(rfd)
loop:close()
]], { timeout = 5 })
      child.expect_lines(r, { "use_loop returned\ttrue", "exit ok" })
    end)
end)

-- ---------------------------------------------------------------------
describe("threads (the programs make tsan runs under ThreadSanitizer)", function()
  it("8 threads post with call_soon_threadsafe while states open and close on the main thread", function()
    local r = child.run_program("stress_close", "40", { timeout = 60 })
    child.expect_lines(r, { "rounds 40", "accepted_some 1 refused_some 1", "ran_at_most_accepted 1",
      "wrong_thread 0 after_close 0" })
  end)

  it("4 threads each run Trio, asyncio and bridge work in their own lua_State at once", function()
    local r = child.run_program("multi_state", "10", { timeout = 60 })
    child.expect_lines(r, { "rounds_ok 40 of 40", "failures 0" })
  end)
end)

-- ---------------------------------------------------------------------
describe("memory safety of the scheduler's structures", function()
  bug("a task reparked into a ParkingLot that is then collected is not left dangling",
    "ParkingLot:repark(other) links the task into `other` by raw pointer; nothing anchors `other`, so "
      .. "its collection leaves t->wait dangling (heap-use-after-free in ta_lot_remove under ASan)",
    function()
      local r = run([[
print(pcall(trio.run, function()
  local lot = trio.lowlevel.ParkingLot()
  trio.open_nursery(function(n)
    n:start_soon(function() lot:park() end)
    trio.testing.wait_all_tasks_blocked()
    do lot:repark(trio.lowlevel.ParkingLot()) end
    collectgarbage() collectgarbage()
    local filler = {}
    for i = 1, 1000 do filler[i] = trio.lowlevel.ParkingLot() end
    n.cancel_scope:cancel()
  end)
  return 'done'
end))
]])
      -- a plain build shows nothing; under `make sanitize` ASan reports the use after free
      child.expect_lines(r, { "true\tdone" })
    end)

  for _, n in ipairs { 3000, 200000 } do
    bug(("trio.run whose main function returns %d values returns them (or raises cleanly)"):format(n),
      "task_exit moves the results onto the scheduler's stack with lua_xmove without lua_checkstack "
        .. "(heap corruption: glibc abort at 3,000, segfault at 200,000)",
      function()
        local r = run(([[
local t = {}
for i = 1, %d do t[i] = i end
local ok, r = pcall(function() return select('#', trio.run(function() return table.unpack(t) end)) end)
print('clean', ok and r == %d or (not ok and tostring(r):find('too many', 1, true) ~= nil))
print('usable', usable())
]]):format(n, n), { timeout = 30 })
        child.expect_lines(r, { "clean\ttrue", "usable\ttrue" })
      end)
  end

  bug("cancelling a chain of 20,000 nested tasks does not overflow the C stack (256 KB stack)",
    "ta_status_recompute -> ta_deliver_cancel -> wait_abort -> ta_status_cancel -> ta_status_recompute "
      .. "recurses once per nesting level (200,000 levels overflow the default 8 MB stack)",
    function()
      require("support").skip_under_gc_stress(pending) -- 40,000 spawns and resumes: over a minute there
      local r = run([[
local N, depth = 20000, 0
local function level(k)
  if k == 0 then depth = N trio.sleep_forever() end
  trio.open_nursery(function(n) n:start_soon(level, k - 1) end)
end
print('run', pcall(trio.run, function()
  trio.open_nursery(function(n)
    n:start_soon(level, N)
    while depth < N do trio.sleep(0.01) end
    n.cancel_scope:cancel()
  end)
  return 'cancelled all'
end))
]], { timeout = 60, ulimit_stack = 256 })
      child.expect_lines(r, { "run\ttrue\tcancelled all" })
    end)

  bug("a MockClock with an extreme rate does not overflow the wait time (UBSan float-cast-overflow)",
    "io_wait (engine.c:176) converts ceil(timeout * 1000) to uint64_t without clamping (also arm() in "
      .. "embed.c): a rate of 1e-300 makes the timeout ~1e300 s; only a build with "
      .. "-fsanitize=float-cast-overflow shows it (GCC's -fsanitize=undefined leaves it out: add it to SAN_FLAGS)",
    function()
      -- The sleep legitimately lasts ~1e300 real seconds: the child must be
      -- stopped by its time limit, with no sanitizer report.
      local r = run([[
trio.lowlevel.run{fn = function() trio.sleep(1) end, clock = trio.testing.MockClock{rate = 1e-300}}
]], { timeout = 2 })
      assert(r.status == "timeout" and not r.err:find("runtime error", 1, true),
        "no undefined behaviour" .. child.describe(r))
    end)
end)

-- ---------------------------------------------------------------------
describe("the asyncio loop driver", function()
  bug("is never scheduled while it is already scheduled when its wake-up timer fires",
    "fire_timers reschedules the parked driver without clearing lp->driver_parked, so a call_soon (or "
      .. "loop_stop_driver) by a task earlier in the same batch reschedules it again; if the driver "
      .. "exits in between, the stale entry resumes a finished task (segfault)",
    function()
      -- An instrument checks Trio's invariant: task_scheduled never arrives
      -- for a task that is already scheduled.
      local r = run([[
local scheduled, violations = {}, 0
local inst = {
  task_scheduled = function(_, t) if scheduled[t] then violations = violations + 1 end scheduled[t] = true end,
  before_task_step = function(_, t) scheduled[t] = nil end,
}
print('run', pcall(trio.lowlevel.run, {instruments = {inst}, fn = function()
  for round = 1, 20 do
    ta.open_loop(function(loop)
      local D = trio.current_time() + 0.005
      loop:call_at(D, function() end)   -- the driver parks until D...
      trio.sleep_until(D)               -- ...and this task wakes at D, first in the batch
      loop:call_soon(function() end)    -- wakes the driver again
    end)
  end
  return 'done'
end}))
print('violations', violations)
]], { timeout = 20 })
      child.expect_lines(r, { "run\ttrue\tdone", "violations\t0" })
    end)

  bug("asyncio.run whose loop still has timers when the main Task returns never resumes a finished driver",
    "the driver parks until its next timer; that timer fires in the tick where the main Trio task "
      .. "(woken by the done callback) calls loop_stop_driver -> ta_loop_wake, which reschedules the "
      .. "driver again (driver_parked is still 1): the driver exits, then its stale run-queue entry is "
      .. "stepped (lua_resume(NULL): segfault within a few rounds; found by make soak)",
    function()
      local r = run([[
for round = 1, 300 do
  asyncio.run(function()
    local loop = asyncio.get_running_loop()
    for i = 1, 20 do loop:call_later(i * 1e-5, function() end) end
    asyncio.current_task():add_done_callback(function()
      for i = 1, 20 do loop:call_at(loop:time() + i * 1e-6, function() end) end
    end)
  end)
end
print('rounds done')
]], { timeout = 30 })
      child.expect_lines(r, { "rounds done" })
    end)
end)

describe("a task that parks under a cancelled scope", function()
  bug("is told from the scheduler, where its abort callback sees what it parked with",
    "the cancellation was delivered from the task's own thread, inside a protected call (a frame of "
      .. "its own), so aio_as_trio's abort read the wrong stack slot ('asyncio Future expected, got "
      .. "light userdata'), failed, and was retried every tick forever: a busy hang that also starved "
      .. "a shielded sibling's asyncio sleep (fuzz seeds 1091, 1097, 1140)",
    function()
      local r = run([[
trio.run(function()
  ta.open_loop(function()
    local outer = trio.CancelScope()
    outer:run(function()
      outer:cancel()
      trio.open_nursery(function(n)
        n:start_soon(function()
          trio.CancelScope { shield = true }:run(function()
            ta.aio_as_trio(function() asyncio.sleep(0.002) end)()
            print('shielded sleep done')
          end)
        end)
        n:start_soon(function()
          local ok, e = pcall(ta.aio_as_trio(function() print('body ran') end))
          print('cancelled', ok, trio.Cancelled:is(e))
          error(e, 0)
        end)
      end)
    end)
    print('scope done', outer.cancelled_caught)
  end)
end)
print('usable', usable())
]], { timeout = 10 })
      child.expect_lines(r, { "cancelled\tfalse\ttrue", "shielded sleep done", "scope done\ttrue", "usable\ttrue" })
    end)

  bug("keeps what its abort callback rescheduled it with",
    "the abort callback ran on the task's own thread inside a protected call: the value reschedule() "
      .. "pushed for the task went to that call's frame and was dropped (wait_task_rescheduled returned "
      .. "nothing)",
    function()
      local r = run([[
print(trio.run(function()
  local me = trio.lowlevel.current_task()
  local r = table.pack(trio.CancelScope { deadline = -math.huge }:run(function()
    return trio.lowlevel.wait_task_rescheduled(function()
      print('in task', trio.lowlevel.in_trio_task(), trio.lowlevel.current_task() == me)
      trio.lowlevel.reschedule(me, true, 'woken by abort')
      return 'FAILED'
    end)
  end))
  return r.n, r[1]
end))
]], { timeout = 10 })
      child.expect_lines(r, { "in task\ttrue\ttrue", "1\twoken by abort" })
    end)
end)

-- ---------------------------------------------------------------------
describe("Ctrl-C", function()
  it("during trio.run and trio_asyncio.run raises KeyboardInterrupt (control)", function()
    local r = run([[
ctrl_c_in(0.2)
local ok, err = pcall(trio.run, function() trio.sleep(5) end)
print('trio.run', ok, trio.KeyboardInterrupt:is(err))
ctrl_c_in(0.2)
ok, err = pcall(ta.run, function() trio.sleep(5) end)
print('ta.run', ok, trio.KeyboardInterrupt:is(err))
print('usable', usable())
]])
    child.expect_lines(r, { "trio.run\tfalse\ttrue", "ta.run\tfalse\ttrue", "usable\ttrue" })
  end)

  bug("during asyncio.run raises KeyboardInterrupt, not an ExceptionGroup",
    "the driver's nursery in drive() (asyncio.lua) wraps the main task's KeyboardInterrupt in a group",
    function()
      local r = run([[
ctrl_c_in(0.2)
local ok, err = pcall(asyncio.run, function() asyncio.sleep(5) end)
print('asyncio.run', ok, trio.KeyboardInterrupt:is(err), line(err))
print('usable', usable())
]])
      child.expect_lines(r, { "usable\ttrue" })
      assert(r.out:find("asyncio.run\tfalse\ttrue", 1, true), child.describe(r))
    end)

  bug("between two run_until_complete calls of a sync loop is not lost and the next call returns",
    "the paused guest run keeps SIGINT caught; the next step delivers it to a main task parked in a "
      .. "nursery whose children are shielded: the call never returns",
    function()
      local r = run([[
local loop = asyncio.new_event_loop()
print('first', loop:run_until_complete(function() asyncio.sleep(0.01) return 1 end))
ctrl_c_in(0.05) busy(0.3)
local ok, err = pcall(loop.run_until_complete, loop, function() asyncio.sleep(0.2) return 2 end)
print('second', ok, trio.KeyboardInterrupt:is(err))
print('close', pcall(loop.close, loop))
print('usable', usable())
]], { timeout = 8 })
      child.expect_lines(r, { "first\t1", "second\tfalse\ttrue", "close\ttrue", "usable\ttrue" })
    end)

  bug("during open_loop's shutdown is not swallowed: trio_asyncio.run raises KeyboardInterrupt",
    "the main task waits in nurseries whose remaining children are shielded (loop driver, service "
      .. "nursery): the pending KeyboardInterrupt is never delivered and later SIGINTs only set the flag again",
    function()
      local r = run([[
local ok, err = pcall(ta.run, function()
  ta.current_loop():create_task(function()
    pcall(asyncio.sleep, 100)
    asyncio.sleep(1)  -- slow cleanup: the shutdown waits for it
  end)
  trio.sleep(0.05)
  ctrl_c_in(0.2)
  return 'body done'
end)
print('result', ok, trio.KeyboardInterrupt:is(err))
print('usable', usable())
]], { timeout = 8 })
      child.expect_lines(r, { "result\tfalse\ttrue", "usable\ttrue" })
    end)
end)

-- ---------------------------------------------------------------------
describe("asyncio helpers given a Future of another loop", function()
  for _, which in ipairs { "gather", "wait", "shield", "as_completed" } do
    bug(("asyncio.%s raises at once instead of waiting forever"):format(which),
      "the helper adds a done callback to the foreign future and waits for a loop that never runs "
        .. "(asyncio raises ValueError / RuntimeError: attached to a different loop)",
      function()
        local r = run(([[
local other = asyncio.new_event_loop()
local ofut = other:create_future()
local ok, err = pcall(asyncio.run, function()
  local which = %q
  if which == 'gather' then return asyncio.gather(ofut)
  elseif which == 'wait' then return asyncio.wait({ofut})
  elseif which == 'shield' then return asyncio.shield(ofut)
  else for f in asyncio.as_completed({ofut}) do return f end end
end)
print('raised', not ok, line(err):find('loop', 1, true) ~= nil)
other:close()
print('usable', usable())
]]):format(which), { timeout = 5 })
        child.expect_lines(r, { "raised\ttrue\ttrue", "usable\ttrue" })
      end)
  end

  it("wait_for and Future:await raise at once (control)", function()
    local r = run([[
local other = asyncio.new_event_loop()
local ofut = other:create_future()
for _, f in ipairs { function() return asyncio.wait_for(ofut, 10) end, function() return ofut:await() end } do
  local ok, err = pcall(asyncio.run, f)
  print('raised', not ok, line(err):find('different loop', 1, true) ~= nil)
end
other:close()
]], { timeout = 5 })
    assert(select(2, r.out:gsub("raised\ttrue\ttrue", "")) == 2, child.describe(r))
  end)
end)

-- ---------------------------------------------------------------------
describe("errors are never lost or replaced", function()
  bug("a child task failing with error(nil) makes its nursery raise",
    "ta_nursery_add_error appends the error with lua_rawseti at #list + 1: a nil is no entry, "
      .. "so the nursery sees no error and returns normally",
    function()
      local r = run([[
local ok = pcall(trio.run, function()
  trio.open_nursery(function(n) n:start_soon(function() error(nil) end) end)
  return 'nursery returned normally'
end)
print('child', ok)
ok = pcall(trio.run, function()
  trio.open_nursery(function() error(nil) end)
  return 'nursery returned normally'
end)
print('body', ok)
]])
      child.expect_lines(r, { "child\tfalse", "body\tfalse" })
    end)

  -- (errors.is walked getmetatable(e), the __metatable value, with rawget:
  -- the error became "bad argument #1 to 'rawget'")
  it("an error object with a protected metatable (__metatable) passes through a nursery unchanged",
    function()
      local r = run([[
local E = setmetatable({}, {__metatable = 'locked', __tostring = function() return 'the original' end})
local ok, err = pcall(trio.run, function()
  trio.open_nursery(function(n) n:start_soon(function() error(E) end) end)
end)
print('child', ok, err == E or (trio.ExceptionGroup:is(err) and err.exceptions[1] == E))
ok, err = pcall(trio.run, function() trio.open_nursery(function() error(E) end) end)
print('body', ok, err == E or (trio.ExceptionGroup:is(err) and err.exceptions[1] == E))
]])
      child.expect_lines(r, { "child\tfalse\ttrue", "body\tfalse\ttrue" })
    end)

  bug("a trio_as_aio function failing with nil fails its caller with that error, not an internal one",
    "run_trio_body (lua/trio_asyncio.lua) passes the nil to Future:set_exception, which rejects it "
      .. "(\"bad argument #1 to 'set_exception'\")",
    function()
      local r = run([[
local ok, err = pcall(ta.run, function()
  return ta.aio_as_trio(function() return ta.trio_as_aio(function() error(nil) end)() end)()
end)
print('raised', not ok)
print('not internal', not tostring(err):find('set_exception', 1, true))
]])
      child.expect_lines(r, { "raised\ttrue", "not internal\ttrue" })
    end)
end)

-- ---------------------------------------------------------------------
describe("the state stays usable", function()
  bug("after a bad clock given to trio.lowlevel.run or start_guest_run",
    "run_begin sets E->running = 1 before luaL_checkudata(clock) raises; nothing resets it",
    function()
      local r = run([[
local ok, err = pcall(trio.lowlevel.run, {fn = function() end, clock = 'x'})
print('run', ok, line(err):find('clock', 1, true) ~= nil or line(err):find('MockClock', 1, true) ~= nil)
print('usable', usable())
ok, err = pcall(trio.lowlevel.start_guest_run, function() end, {done_callback = print, clock = 'x'})
print('guest', ok)
print('usable', usable())
]])
      child.expect_lines(r, { "run\tfalse\ttrue", "guest\tfalse" })
      assert(not r.out:find("usable\tfalse", 1, true), child.describe(r))
    end)

  bug("after a task makes a foreign yield of a value whose __tostring raises",
    "foreign_yield calls luaL_tolstring unprotected from the scheduler: the error unwinds out of "
      .. "l_run with E->running = 1",
    function()
      -- the original coroutine.yield, saved before trio replaces it
      local r = child.run("local raw_yield = coroutine.yield\n" .. PRELUDE .. [[
local bad = setmetatable({}, {__tostring = function() error('tostring failed on purpose') end})
local ok, err = pcall(trio.run, function() raw_yield(bad) end)
print('run', ok, ta.FlavorError:is(err))
print('usable', usable())
]])
      child.expect_lines(r, { "run\tfalse\ttrue", "usable\ttrue" })
    end)

  -- A sync loop's run stays paused between run_until_complete calls (its
  -- Trio tasks live on, DESIGN 4.3) and the run holds the loop, so only
  -- close() ends it (docs/SEMANTICS.md): until then other runs say so.
  it("while a sync loop is open, other runs say to close it first; after close() they work", function()
    local r = run([[
local loop = asyncio.new_event_loop()
print('sync loop', loop:run_until_complete(function() return 1 end))
local ok, err = pcall(trio.run, function() return 7 end)
print('trio.run', ok, tostring(err):find('loop:close()', 1, true) ~= nil)
ok, err = pcall(asyncio.run, function() return 8 end)
print('asyncio.run', ok, tostring(err):find('loop:close()', 1, true) ~= nil)
loop:close()
print('usable', usable())
print('asyncio.run', pcall(asyncio.run, function() return 8 end))
]])
    child.expect_lines(r, { "sync loop\t1", "trio.run\tfalse\ttrue", "asyncio.run\tfalse\ttrue",
      "usable\ttrue", "asyncio.run\ttrue\t8" })
  end)

  bug("a guest run whose done callback raises: the step that ended the run raises that error",
    "ta_guest_step wrote the error to stderr and dropped it: a sync loop whose done callback failed "
      .. "(not enough memory) took its ended run for a live one and stepped it for ever",
    function()
      local r = run([[
local core = require 'trio_asyncio.core'
core.start_guest_run(function() return 1 end, {n = 0}, nil, 'trio',
  function() error('done failed on purpose', 0) end)
local steps, ok, alive = 0, true, true
while ok and alive and steps < 100 do
  steps = steps + 1
  ok, alive = pcall(core.guest_step, 0)
end
print('step raised', ok, alive)
print('usable', usable())
]])
      child.expect_lines(r, { "step raised\tfalse\tdone failed on purpose", "usable\ttrue" })
      assert(not r.err:find("done callback raised", 1, true), child.describe(r))
    end)

  bug("a sync loop's paused run that is given up ends, shielded Trio tasks included",
    "nothing could end a sync loop's run but close(): asyncio.run whose close() raised (not enough "
      .. "memory) left it open, and an abandoned run never cancelled shielded tasks",
    function()
      local r = run([[
local core = require 'trio_asyncio.core'
local loop = asyncio.new_event_loop()
local started, woke = false, false
print('ran', loop:run_until_complete(function()
  loop:run_trio_task(function()
    local shield = trio.CancelScope { shield = true }
    started = true
    pcall(shield.run, shield, trio.sleep_forever)
    woke = true
  end)
  while not started do asyncio.sleep(0) end
  return 1
end))
print('running', core.is_running())
core.abandon_paused_run()
print('shielded task woke', woke)
print('running', core.is_running())
print('usable', usable())
print('asyncio.run', pcall(asyncio.run, function() return 8 end))
]])
      child.expect_lines(r, { "ran\t1", "running\ttrue\ttrue", "shielded task woke\ttrue",
        "running\tfalse\tfalse", "usable\ttrue", "asyncio.run\ttrue\t8" })
    end)

  bug("a task left behind by a nursery whose exit never waited (not enough memory) ends with the run, "
      .. "even in a shield",
    "once the main task was done only the root was cancelled: a shielded orphan (open_loop's service "
      .. "nursery, its driver) slept for ever and the run never ended",
    function()
      local r = run([[
local core = require 'trio_asyncio.core'
local woke = false
print('run', pcall(trio.run, function()
  local n = core.nursery_open() -- as if its exit had failed: nothing waits for its child
  n:start_soon(function()
    local shield = trio.CancelScope { shield = true }
    pcall(shield.run, shield, trio.sleep_forever)
    woke = true
  end)
  trio.sleep(0.01)
  return 'main'
end))
print('orphan woke', woke)
print('usable', usable())
]], { timeout = 10 })
      child.expect_lines(r, { "run\ttrue\tmain", "orphan woke\ttrue", "usable\ttrue" })
    end)

  it("a system task's child in a shield still outlives the main task's end until it returns (control)",
    function()
      local r = run([[
print('run', pcall(trio.run, function()
  trio.lowlevel.spawn_system_task(function()
    trio.open_nursery(function(n)
      n:start_soon(function()
        local shield = trio.CancelScope { shield = true }
        shield:run(trio.sleep, 0.05)
        print('system task slept through')
      end)
    end)
  end)
  trio.sleep(0.01)
  return 'main'
end))
]], { timeout = 10 })
      child.expect_lines(r, { "system task slept through", "run\ttrue\tmain" })
    end)

  bug("a TrioToken of a finished run refuses callbacks in a later run (RunFinishedError)",
    "current_trio_token returns one table per Lua state, not per run: a stale token queues its "
      .. "callback into the next run",
    function()
      local r = run([[
local token
trio.run(function() token = trio.lowlevel.current_trio_token() end)
trio.run(function()
  local ran = false
  local ok, err = pcall(token.run_sync_soon, token, function() ran = true end)
  print('refused', not ok, trio.RunFinishedError:is(err))
  trio.sleep(0.01)
  print('ran', ran)
end)
]])
      child.expect_lines(r, { "refused\ttrue\ttrue", "ran\tfalse" })
    end)

  bug("nursery:start into a closed nursery raises before running the child",
    "Nursery.start (lua/trio.lua) runs the child in a temporary nursery and only finds the target "
      .. "closed in task_status:started (nursery_reparent)",
    function()
      local r = run([[
trio.run(function()
  local outer, ran = nil, false
  trio.open_nursery(function(n) outer = n end)
  local ok, err = pcall(outer.start, outer, function(task_status) ran = true task_status:started(1) end)
  print('raised', not ok, 'child ran', ran)
end)
]])
      child.expect_lines(r, { "raised\ttrue\tchild ran\tfalse" })
    end)

  it("after an error inside trio.run's argument checks (control)", function()
    local r = run([[
print('flavor', pcall(trio.lowlevel.run, {fn = function() end, flavor = 'bogus'}))
print('usable', usable())
]])
    child.expect_lines(r, { "usable\ttrue" })
  end)
end)

-- ---------------------------------------------------------------------
describe("deep nesting", function()
  it("150 nested cancel scopes and nurseries work (control)", function()
    local r = run([[
local function scopes(k) if k == 0 then return 'bottom' end return trio.CancelScope{}:run(scopes, k - 1) end
local function nurseries(k) if k == 0 then return 'bottom' end
  return trio.open_nursery(function() return nurseries(k - 1) end) end
print('scopes', pcall(trio.run, scopes, 150))
print('nurseries', pcall(trio.run, nurseries, 150))
]])
    child.expect_lines(r, { "scopes\ttrue\tbottom", "nurseries\ttrue\tbottom" })
  end)

  bug("past the limit, scopes and nurseries fail with one short, clear error",
    "a nursery nested 250 deep raises 'C stack overflow' wrapped in ~200 nested ExceptionGroups "
      .. "(a 167 KB message); a scope gives a bare 'C stack overflow'",
    function()
      local r = run([[
local function scopes(k) if k == 0 then return 'bottom' end return trio.CancelScope{}:run(scopes, k - 1) end
local function nurseries(k) if k == 0 then return 'bottom' end
  return trio.open_nursery(function() return nurseries(k - 1) end) end
local _, e1 = pcall(trio.run, scopes, 250)
local _, e2 = pcall(trio.run, nurseries, 250)
print('short', #tostring(e1) < 2000, #tostring(e2) < 2000)
print('not a group', not trio.ExceptionGroup:is(e2))
print('same message', line(e1):gsub('^.-:%d+: ', '') == line(e2):gsub('^.-:%d+: ', ''))
print('usable', usable())
]], { timeout = 20 })
      child.expect_lines(r, { "short\ttrue\ttrue", "not a group\ttrue", "same message\ttrue", "usable\ttrue" })
    end)
end)
