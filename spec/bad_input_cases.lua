--- bad_input_cases.lua: the table of spec/bad_input_spec.lua (shared with
-- its worker, spec/bad_input_worker.lua, which runs the cases).
--
-- Every public function of trio, asyncio and trio_asyncio, and every
-- method of their objects, has one signature below: where it is called
-- (ctx), the call as Lua source (A1..An are the arguments, O the object),
-- and the kind of each argument (for the valid value the other arguments
-- keep while one is replaced).  Each argument in turn gets every value of
-- VALUES; a method also gets a wrong `self`.  Extra cases call methods on
-- closed objects and objects of another loop or of a finished run.
--
-- A case passes when the call returns, raises a "bad argument" error naming
-- the function, or raises a clean error (an error object, or a message
-- naming the function); it fails on an internal error ("attempt to index",
-- a "bad argument" naming another function...), a crash, a hang, or a
-- state where a trivial trio.run no longer works.
local M = {}

-- ---------------------------------------------------------------------
-- the values every argument gets (constructors: a fresh value each time)

local function event_obj() return require("trio").Event() end

M.VALUES = {
  { "nil", function() return nil end },
  { "false", function() return false end },
  { "true", function() return true end },
  { "0", function() return 0 end },
  { "-1", function() return -1 end },
  { "0.5", function() return 0.5 end },
  { "NaN", function() return 0 / 0 end },
  { "inf", function() return math.huge end },
  { "-inf", function() return -math.huge end },
  { "maxinteger", function() return math.maxinteger end },
  { "mininteger", function() return math.mininteger end },
  { "1e308", function() return 1e308 end },
  { "'x'", function() return "x" end },
  { "'10'", function() return "10" end },
  { "{}", function() return {} end },
  { "function", function() return function() end end },
  { "coroutine", function() return coroutine.create(function() end) end },
  { "io.stdout", function() return io.stdout end },
  { "a trio.Event", event_obj },
  { "a table with a failing __tostring",
    function() return setmetatable({}, { __tostring = function() error("__tostring failed") end }) end },
  { "a table with a protected metatable", function() return setmetatable({}, { __metatable = "locked" }) end },
}

-- valid values by argument kind (for the arguments not being replaced)
M.VALID = {
  num = function() return 0.001 end,
  int = function() return 1 end,
  fn = function() return function() end end,
  afn = function() return function() end end,  -- an async function of the right flavor
  str = function() return "x" end,
  tbl = function() return {} end,
  any = function() return 1 end,
  none = function() return nil end,
}

-- ---------------------------------------------------------------------
-- signatures: { name, ctx, call, kinds [, object] }
--
-- ctx: plain (top level, no run), trio (in a Trio task), nursery (O is an
-- open nursery of the task), aio (in an asyncio Task of asyncio.run),
-- bridge (in a Trio task with a loop open: trio_asyncio.run), baio (in an
-- asyncio Task of that loop).
-- object: the factory of O (see the worker), when the call is a method.

local S = {}
local function sig(name, ctx, call, kinds, object)
  S[#S + 1] = { name = name, ctx = ctx, call = call, kinds = kinds or {}, object = object }
end

-- trio
sig("trio.run", "plain", "trio.run(A1, A2)", { "fn", "any" })
sig("trio.sleep", "trio", "trio.sleep(A1)", { "num" })
sig("trio.sleep_until", "trio", "trio.sleep_until(A1)", { "num" })
sig("trio.sleep_forever", "trio", "trio.sleep_forever(A1)", { "none" })
sig("trio.current_time", "trio", "trio.current_time(A1)", { "none" })
sig("trio.current_effective_deadline", "trio", "trio.current_effective_deadline(A1)", { "none" })
sig("trio.open_nursery", "trio", "trio.open_nursery(A1)", { "fn" })
sig("trio.CancelScope", "trio", "trio.CancelScope(A1)", { "tbl" })
sig("trio.CancelScope{deadline=}", "trio", "trio.CancelScope { deadline = A1 }", { "num" })
sig("trio.CancelScope{shield=}", "trio", "trio.CancelScope { shield = A1 }", { "any" })
sig("trio.move_on_after", "trio", "trio.move_on_after(A1, A2)", { "num", "afn" })
sig("trio.move_on_at", "trio", "trio.move_on_at(A1, A2)", { "num", "afn" })
sig("trio.fail_after", "trio", "trio.fail_after(A1, A2)", { "num", "afn" })
sig("trio.fail_at", "trio", "trio.fail_at(A1, A2)", { "num", "afn" })
sig("trio.open_memory_channel", "plain", "trio.open_memory_channel(A1)", { "int" })
sig("trio.Event", "plain", "trio.Event(A1)", { "none" })
sig("trio.Lock", "plain", "trio.Lock(A1)", { "none" })
sig("trio.StrictFIFOLock", "plain", "trio.StrictFIFOLock(A1)", { "none" })
sig("trio.Semaphore", "plain", "trio.Semaphore(A1, A2)", { "int", "none" })
sig("trio.CapacityLimiter", "plain", "trio.CapacityLimiter(A1)", { "int" })
sig("trio.Condition", "plain", "trio.Condition(A1)", { "none" })
sig("trio.ContextVar", "plain", "trio.ContextVar(A1, A2)", { "str", "none" })
-- trio.lowlevel
sig("trio.lowlevel.run", "plain", "trio.lowlevel.run(A1)", { "tbl" })
sig("trio.lowlevel.run{fn=}", "plain", "trio.lowlevel.run { fn = A1 }", { "fn" })
sig("trio.lowlevel.run{args=}", "plain", "trio.lowlevel.run { fn = function() end, args = A1 }", { "tbl" })
sig("trio.lowlevel.run{clock=}", "plain", "trio.lowlevel.run { fn = function() end, clock = A1 }", { "none" })
sig("trio.lowlevel.run{instruments=}", "plain", "trio.lowlevel.run { fn = function() end, instruments = A1 }",
  { "tbl" })
sig("trio.lowlevel.run{flavor=}", "plain", "trio.lowlevel.run { fn = function() end, flavor = A1 }", { "none" })
sig("trio.lowlevel.start_guest_run", "plain", "trio.lowlevel.start_guest_run(A1, A2)", { "fn", "tbl" })
sig("trio.lowlevel.start_guest_run{done_callback=}", "plain",
  "trio.lowlevel.start_guest_run(function() end, { done_callback = A1 }); "
    .. "local core = require('trio_asyncio.core'); for _ = 1, 10 do if not core.guest_step(0) then break end end",
  { "fn" })
sig("trio.lowlevel.current_task", "trio", "trio.lowlevel.current_task(A1)", { "none" })
sig("trio.lowlevel.current_root_task", "trio", "trio.lowlevel.current_root_task(A1)", { "none" })
sig("trio.lowlevel.checkpoint", "trio", "trio.lowlevel.checkpoint(A1)", { "none" })
sig("trio.lowlevel.checkpoint_if_cancelled", "trio", "trio.lowlevel.checkpoint_if_cancelled(A1)", { "none" })
sig("trio.lowlevel.cancel_shielded_checkpoint", "trio", "trio.lowlevel.cancel_shielded_checkpoint(A1)", { "none" })
sig("trio.lowlevel.wait_task_rescheduled", "trio", "trio.lowlevel.wait_task_rescheduled(A1)", { "fn" })
sig("trio.lowlevel.reschedule", "trio", "trio.lowlevel.reschedule(A1, A2, A3)", { "none", "any", "any" })
sig("trio.lowlevel.spawn_system_task", "trio", "trio.lowlevel.spawn_system_task(A1)", { "fn" })
sig("trio.lowlevel.ParkingLot", "plain", "trio.lowlevel.ParkingLot(A1)", { "none" })
sig("trio.lowlevel.wait_readable", "trio", "trio.lowlevel.wait_readable(A1)", { "int" })
sig("trio.lowlevel.wait_writable", "trio", "trio.lowlevel.wait_writable(A1)", { "int" })
sig("trio.lowlevel.notify_closing", "trio", "trio.lowlevel.notify_closing(A1)", { "int" })
sig("trio.lowlevel.current_trio_token", "trio", "trio.lowlevel.current_trio_token(A1)", { "none" })
sig("trio.lowlevel.add_instrument", "trio", "trio.lowlevel.add_instrument(A1)", { "tbl" })
sig("trio.lowlevel.remove_instrument", "trio", "trio.lowlevel.remove_instrument(A1)", { "tbl" })
sig("trio.lowlevel.current_flavor", "trio", "trio.lowlevel.current_flavor(A1)", { "none" })
sig("trio.testing.MockClock", "plain", "trio.testing.MockClock(A1)", { "tbl" })
sig("trio.testing.MockClock{rate=}", "plain", "trio.testing.MockClock { rate = A1 }", { "num" })
sig("trio.testing.MockClock{autojump_threshold=}", "plain", "trio.testing.MockClock { autojump_threshold = A1 }",
  { "num" })
sig("trio.testing.wait_all_tasks_blocked", "trio", "trio.testing.wait_all_tasks_blocked(A1)", { "num" })
sig("trio.testing.trio_test", "plain", "trio.testing.trio_test(A1, A2)", { "fn", "tbl" })
sig("trio.lowlevel.task_tree", "trio", "trio.lowlevel.task_tree(A1)", { "none" })
sig("trio.lowlevel.current_clock", "trio", "trio.lowlevel.current_clock(A1)", { "none" })
sig("trio.open_file", "trio", "trio.open_file(A1, A2)", { "str", "str" })
sig("trio.Path", "plain", "trio.Path(A1)", { "str" })
sig("trio.lowlevel.current_statistics", "trio", "trio.lowlevel.current_statistics(A1)", { "none" })
sig("trio.lowlevel.in_trio_run", "plain", "trio.lowlevel.in_trio_run(A1)", { "none" })
sig("trio.lowlevel.in_trio_task", "plain", "trio.lowlevel.in_trio_task(A1)", { "none" })
sig("trio.lowlevel.dump_tasks", "trio", "trio.lowlevel.dump_tasks(A1, A2)", { "fn", "none" })
sig("trio.lowlevel.add_parking_lot_breaker", "trio",
  "trio.lowlevel.add_parking_lot_breaker(A1, A2)", { "none", "none" })
sig("trio.lowlevel.remove_parking_lot_breaker", "trio",
  "trio.lowlevel.remove_parking_lot_breaker(A1, A2)", { "none", "none" })
-- Trio objects
sig("Nursery:start_soon", "nursery", "O:start_soon(A1)", { "fn" }, "nursery")
sig("Nursery:start", "nursery", "O:start(A1)", { "fn" }, "nursery")
sig("CancelScope:run", "trio", "O:run(A1)", { "afn" }, "scope")
sig("CancelScope:cancel", "trio", "O:cancel(A1)", { "none" }, "scope")
sig("CancelScope.deadline=", "trio", "O.deadline = A1", { "num" }, "scope")
sig("CancelScope.shield=", "trio", "O.shield = A1", { "any" }, "scope")
sig("MemorySendChannel:send", "trio", "O:send(A1)", { "any" }, "send")
sig("MemorySendChannel:send_nowait", "trio", "O:send_nowait(A1)", { "any" }, "send")
sig("MemorySendChannel:clone", "trio", "O:clone(A1)", { "none" }, "send")
sig("MemorySendChannel:close", "trio", "O:close(A1)", { "none" }, "send")
sig("MemorySendChannel:statistics", "trio", "O:statistics(A1)", { "none" }, "send")
sig("MemoryReceiveChannel:receive", "trio", "O:receive(A1)", { "none" }, "recv")
sig("MemoryReceiveChannel:receive_nowait", "trio", "O:receive_nowait(A1)", { "none" }, "recv")
sig("MemoryReceiveChannel:clone", "trio", "O:clone(A1)", { "none" }, "recv")
sig("MemoryReceiveChannel:close", "trio", "O:close(A1)", { "none" }, "recv")
sig("MemoryReceiveChannel:statistics", "trio", "O:statistics(A1)", { "none" }, "recv")
sig("MemoryReceiveChannel:iter", "trio", "for v in O:iter(A1) do end", { "none" }, "recv")
sig("ParkingLot:park", "trio", "O:park(A1)", { "none" }, "lot")
sig("ParkingLot:unpark", "trio", "O:unpark(A1)", { "int" }, "lot")
sig("ParkingLot:unpark_all", "trio", "O:unpark_all(A1)", { "none" }, "lot")
sig("ParkingLot:repark", "trio", "O:repark(A1, A2)", { "none", "int" }, "lot")
sig("ParkingLot:repark_all", "trio", "O:repark_all(A1)", { "none" }, "lot")
sig("ParkingLot:statistics", "trio", "O:statistics(A1)", { "none" }, "lot")
sig("ParkingLot:break_lot", "trio", "O:break_lot(A1)", { "none" }, "lot")
sig("MockClock:jump", "plain", "O:jump(A1)", { "num" }, "clock")
sig("MockClock:start_clock", "plain", "O:start_clock(A1)", { "none" }, "clock")
sig("MockClock:deadline_to_sleep_time", "plain", "O:deadline_to_sleep_time(A1)", { "num" }, "clock")
sig("MockClock:current_time", "plain", "O:current_time(A1)", { "none" }, "clock")
sig("MockClock.rate=", "plain", "O.rate = A1", { "num" }, "clock")
sig("MockClock.autojump_threshold=", "plain", "O.autojump_threshold = A1", { "num" }, "clock")
sig("Task.name=", "trio", "O.name = A1", { "str" }, "task")
sig("TrioToken:run_sync_soon", "trio", "O:run_sync_soon(A1)", { "fn" }, "token")
sig("ContextVar:get", "trio", "O:get(A1)", { "none" }, "cvar")
sig("ContextVar:set", "trio", "O:set(A1)", { "any" }, "cvar")
sig("ContextVar:reset", "trio", "O:reset(A1)", { "tbl" }, "cvar")
for _, c in ipairs { "Event", "Lock", "StrictFIFOLock", "Semaphore", "CapacityLimiter", "Condition" } do
  local o = "t" .. c
  if c == "Event" then
    sig("trio.Event:set", "trio", "O:set(A1)", { "none" }, o)
    sig("trio.Event:is_set", "trio", "O:is_set(A1)", { "none" }, o)
    sig("trio.Event:wait", "trio", "O:wait(A1)", { "none" }, o)
    sig("trio.Event:statistics", "trio", "O:statistics(A1)", { "none" }, o)
  else
    sig("trio." .. c .. ":acquire", "trio", "O:acquire(A1)", { "none" }, o)
    sig("trio." .. c .. ":acquire_nowait", "trio", "O:acquire_nowait(A1)", { "none" }, o)
    sig("trio." .. c .. ":release", "trio", "O:release(A1)", { "none" }, o)
    sig("trio." .. c .. ":statistics", "trio", "O:statistics(A1)", { "none" }, o)
    sig("trio." .. c .. ":with", "trio", "O:with(A1)", { "afn" }, o)
    if c ~= "CapacityLimiter" then sig("trio." .. c .. ":locked", "trio", "O:locked(A1)", { "none" }, o) end
  end
end
sig("trio.CapacityLimiter:acquire_on_behalf_of", "trio", "O:acquire_on_behalf_of(A1)", { "any" }, "tCapacityLimiter")
sig("trio.CapacityLimiter:acquire_on_behalf_of_nowait", "trio", "O:acquire_on_behalf_of_nowait(A1)", { "any" },
  "tCapacityLimiter")
sig("trio.CapacityLimiter:release_on_behalf_of", "trio", "O:release_on_behalf_of(A1)", { "any" }, "tCapacityLimiter")
sig("trio.CapacityLimiter.total_tokens=", "trio", "O.total_tokens = A1", { "int" }, "tCapacityLimiter")
sig("trio.Condition:wait", "trio", "O:wait(A1)", { "none" }, "tCondition")
sig("trio.Condition:notify", "trio", "O:notify(A1)", { "int" }, "tCondition")
sig("trio.Condition:notify_all", "trio", "O:notify_all(A1)", { "none" }, "tCondition")
-- error classes (constructors and :is)
sig("trio.TooSlowError(...)", "plain", "trio.TooSlowError(A1)", { "str" })
sig("trio.ExceptionGroup(...)", "plain", "trio.ExceptionGroup(A1, A2)", { "str", "tbl" })
sig("trio.Cancelled:is", "plain", "trio.Cancelled:is(A1)", { "any" })
sig("asyncio.CancelledError:is", "plain", "asyncio.CancelledError:is(A1)", { "any" })

-- asyncio
sig("asyncio.run", "plain", "asyncio.run(A1)", { "afn" })
sig("asyncio.new_event_loop", "plain", "asyncio.new_event_loop(A1):close()", { "none" })
sig("asyncio.get_event_loop", "plain", "asyncio.get_event_loop(A1)", { "none" })
sig("asyncio.set_event_loop", "plain", "asyncio.set_event_loop(A1)", { "none" })
sig("asyncio.get_running_loop", "aio", "asyncio.get_running_loop(A1)", { "none" })
sig("asyncio.Future", "aio", "asyncio.Future(A1)", { "none" })
sig("asyncio.isfuture", "plain", "asyncio.isfuture(A1)", { "any" })
sig("asyncio.current_task", "aio", "asyncio.current_task(A1)", { "none" })
sig("asyncio.all_tasks", "aio", "asyncio.all_tasks(A1)", { "none" })
sig("asyncio.create_task", "aio", "asyncio.create_task(A1)", { "fn" })
sig("asyncio.ensure_future", "aio", "asyncio.ensure_future(A1, A2)", { "fn", "none" })
sig("asyncio.await", "aio", "asyncio.await(A1)", { "none" })
sig("asyncio.sleep", "aio", "asyncio.sleep(A1, A2)", { "num", "any" })
sig("asyncio.gather", "aio", "asyncio.gather(A1, A2)", { "fn", "fn" })
sig("asyncio.wait_for", "aio", "asyncio.wait_for(A1, A2)", { "afn", "num" })
sig("asyncio.wait", "aio", "asyncio.wait(A1, A2)", { "tbl", "tbl" })
sig("asyncio.as_completed", "aio", "for f in asyncio.as_completed(A1) do end", { "tbl" })
sig("asyncio.shield", "aio", "asyncio.shield(A1)", { "afn" })
sig("asyncio.timeout", "aio", "asyncio.timeout(A1, A2)", { "num", "afn" })
sig("asyncio.Event", "aio", "asyncio.Event(A1)", { "none" })
sig("asyncio.Lock", "aio", "asyncio.Lock(A1)", { "none" })
sig("asyncio.Semaphore", "aio", "asyncio.Semaphore(A1)", { "int" })
sig("asyncio.BoundedSemaphore", "aio", "asyncio.BoundedSemaphore(A1)", { "int" })
sig("asyncio.Condition", "aio", "asyncio.Condition(A1)", { "none" })
for _, q in ipairs { "Queue", "LifoQueue", "PriorityQueue" } do
  sig("asyncio." .. q, "aio", "asyncio." .. q .. "(A1)", { "int" })
  sig("asyncio." .. q .. ":put", "aio", "O:put(A1)", { "any" }, q)
  sig("asyncio." .. q .. ":put_nowait", "aio", "O:put_nowait(A1)", { "any" }, q)
  sig("asyncio." .. q .. ":get", "aio", "O:get(A1)", { "none" }, q)
  sig("asyncio." .. q .. ":get_nowait", "aio", "O:get_nowait(A1)", { "none" }, q)
  sig("asyncio." .. q .. ":qsize", "aio", "O:qsize(A1)", { "none" }, q)
  sig("asyncio." .. q .. ":empty", "aio", "O:empty(A1)", { "none" }, q)
  sig("asyncio." .. q .. ":full", "aio", "O:full(A1)", { "none" }, q)
  sig("asyncio." .. q .. ":task_done", "aio", "O:task_done(A1)", { "none" }, q)
  sig("asyncio." .. q .. ":join", "aio", "O:join(A1)", { "none" }, q)
  sig("asyncio." .. q .. ":shutdown", "aio", "O:shutdown(A1)", { "any" }, q)
end
sig("asyncio.timeout_at", "aio", "asyncio.timeout_at(A1, A2)", { "num", "afn" })
sig("asyncio.open_file", "aio", "asyncio.open_file(A1, A2)", { "str", "str" })
sig("asyncio.to_thread", "aio", "asyncio.to_thread(A1)", { "fn" })
sig("asyncio.ThreadPoolExecutor", "plain", "asyncio.ThreadPoolExecutor(A1):shutdown()", { "int" })
sig("asyncio.ThreadPoolExecutor:shutdown", "plain", "O:shutdown(A1, A2)", { "any", "none" }, "executor")
sig("asyncio.ConcurrentFuture", "plain", "asyncio.ConcurrentFuture(A1)", { "none" })
for _, m in ipairs { { "result", "num" }, { "exception", "num" }, { "done", "none" }, { "cancelled", "none" },
  { "running", "none" }, { "cancel", "none" }, { "add_done_callback", "fn" }, { "set_result", "any" },
  { "set_exception", "any" } } do
  sig("asyncio.ConcurrentFuture:" .. m[1], "plain", "O:" .. m[1] .. "(A1)", { m[2] }, "cfuture")
end
sig("asyncio.wrap_future", "aio", "asyncio.wrap_future(A1)", { "none" })
sig("asyncio.wrap_future(cf, loop)", "plain", "asyncio.wrap_future(asyncio.ConcurrentFuture(), A1)", { "none" })
sig("asyncio.Barrier", "aio", "asyncio.Barrier(A1)", { "int" })
sig("asyncio.Task", "aio", "asyncio.Task(A1)", { "fn" })
sig("asyncio.Event:set", "aio", "O:set(A1)", { "none" }, "aEvent")
sig("asyncio.Event:clear", "aio", "O:clear(A1)", { "none" }, "aEvent")
sig("asyncio.Event:is_set", "aio", "O:is_set(A1)", { "none" }, "aEvent")
sig("asyncio.Event:wait", "aio", "O:wait(A1)", { "none" }, "aEvent")
for _, c in ipairs { "Lock", "Semaphore", "BoundedSemaphore", "Condition" } do
  sig("asyncio." .. c .. ":acquire", "aio", "O:acquire(A1)", { "none" }, "a" .. c)
  sig("asyncio." .. c .. ":release", "aio", "O:release(A1)", { "none" }, "a" .. c)
  sig("asyncio." .. c .. ":locked", "aio", "O:locked(A1)", { "none" }, "a" .. c)
  sig("asyncio." .. c .. ":with", "aio", "O:with(A1)", { "afn" }, "a" .. c)
end
sig("asyncio.Condition:wait", "aio", "O:wait(A1)", { "none" }, "aCondition")
sig("asyncio.Condition:wait_for", "aio", "O:wait_for(A1)", { "fn" }, "aCondition")
sig("asyncio.Condition:notify", "aio", "O:notify(A1)", { "int" }, "aCondition")
sig("asyncio.Condition:notify_all", "aio", "O:notify_all(A1)", { "none" }, "aCondition")
-- the loop
sig("Loop:call_soon", "aio", "O:call_soon(A1)", { "fn" }, "loop")
sig("Loop:set_task_factory", "aio", "O:set_task_factory(A1); O:set_task_factory(nil)", { "none" }, "loop")
sig("Loop:get_task_factory", "aio", "O:get_task_factory(A1)", { "none" }, "loop")
sig("Loop:run_in_executor", "aio", "O:run_in_executor(nil, A1)", { "fn" }, "loop")
sig("Loop:set_default_executor", "aio", "O:set_default_executor(A1)", { "none" }, "loop")
sig("Loop:call_soon_threadsafe", "aio", "O:call_soon_threadsafe(A1)", { "fn" }, "loop")
sig("Loop:call_later", "aio", "O:call_later(A1, A2)", { "num", "fn" }, "loop")
sig("Loop:call_at", "aio", "O:call_at(A1, A2)", { "num", "fn" }, "loop")
sig("Loop:time", "aio", "O:time(A1)", { "none" }, "loop")
sig("Loop:create_future", "aio", "O:create_future(A1)", { "none" }, "loop")
sig("Loop:create_task", "aio", "O:create_task(A1)", { "fn" }, "loop")
sig("Loop:run_until_complete", "plain", "O:run_until_complete(A1)", { "afn" }, "syncloop")
sig("Loop:run_forever", "plain", "O:call_soon(O.stop, O); O:run_forever(A1)", { "none" }, "syncloop")
sig("Loop:stop", "aio", "O:stop(A1)", { "none" }, "loop")
sig("Loop:close", "plain", "O:close(A1)", { "none" }, "syncloop")
sig("Loop:is_running", "aio", "O:is_running(A1)", { "none" }, "loop")
sig("Loop:is_closed", "aio", "O:is_closed(A1)", { "none" }, "loop")
sig("Loop:add_reader", "aio", "O:add_reader(A1, A2); O:remove_reader(A1)", { "int", "fn" }, "loop")
sig("Loop:add_writer", "aio", "O:add_writer(A1, A2); O:remove_writer(A1)", { "int", "fn" }, "loop")
sig("Loop:remove_reader", "aio", "O:remove_reader(A1)", { "int" }, "loop")
sig("Loop:remove_writer", "aio", "O:remove_writer(A1)", { "int" }, "loop")
sig("Loop:set_exception_handler", "aio", "O:set_exception_handler(A1)", { "none" }, "loop")
sig("Loop:get_exception_handler", "aio", "O:get_exception_handler(A1)", { "none" }, "loop")
sig("Loop:call_exception_handler", "aio", "O:call_exception_handler(A1)", { "tbl" }, "loop")
sig("Loop:default_exception_handler", "aio", "O:default_exception_handler(A1)", { "tbl" }, "loop")
sig("Loop:set_debug", "aio", "O:set_debug(A1)", { "any" }, "loop")
sig("Loop:get_debug", "aio", "O:get_debug(A1)", { "none" }, "loop")
sig("Loop:run_trio", "baio", "O:run_trio(A1)", { "fn" }, "loop")
sig("Loop:run_trio_task", "baio", "O:run_trio_task(A1)", { "fn" }, "loop")
sig("Loop:wait_stopped", "bridge", "O:wait_stopped(A1)", { "none" }, "loop")
sig("trio_asyncio.run_trio_task", "baio", "trio_asyncio.run_trio_task(A1)", { "fn" })
sig("Loop:synchronize", "bridge", "O:synchronize(A1)", { "none" }, "loop")
-- Futures, Tasks, handles
local fut_methods = {
  { "result", "none" }, { "exception", "none" }, { "done", "none" }, { "cancelled", "none" }, { "cancel", "none" },
  { "set_result", "any" }, { "set_exception", "any" }, { "add_done_callback", "fn" },
  { "remove_done_callback", "fn" }, { "get_loop", "none" }, { "await", "none" },
}
for _, m in ipairs(fut_methods) do
  sig("Future:" .. m[1], "aio", "O:" .. m[1] .. "(A1)", { m[2] }, "future")
end
for _, m in ipairs { { "get_name", "none" }, { "set_name", "any" }, { "cancel", "none" }, { "cancelling", "none" },
  { "uncancel", "none" }, { "result", "none" }, { "add_done_callback", "fn" }, { "await", "none" } } do
  sig("Task:" .. m[1], "aio", "O:" .. m[1] .. "(A1)", { m[2] }, "aiotask")
end
sig("Handle:cancel", "aio", "O:cancel(A1)", { "none" }, "handle")
sig("Handle:cancelled", "aio", "O:cancelled(A1)", { "none" }, "handle")
sig("Handle:when", "aio", "O:when(A1)", { "none" }, "handle")

-- trio_asyncio
sig("trio_asyncio.run", "plain", "trio_asyncio.run(A1)", { "afn" })
sig("trio_asyncio.open_loop", "trio", "trio_asyncio.open_loop(A1)", { "afn" })
sig("trio_asyncio.aio_as_trio", "bridge", "trio_asyncio.aio_as_trio(A1)()", { "fn" })
sig("trio_asyncio.trio_as_aio", "baio", "trio_asyncio.trio_as_aio(A1)()", { "fn" })
sig("trio_asyncio.run_aio_future", "bridge", "trio_asyncio.run_aio_future(A1)", { "none" })
sig("trio_asyncio.run_aio_coroutine", "bridge", "trio_asyncio.run_aio_coroutine(A1)", { "fn" })
sig("trio_asyncio.allow_asyncio", "bridge", "trio_asyncio.allow_asyncio(A1)", { "fn" })
sig("trio_asyncio.current_loop", "bridge", "trio_asyncio.current_loop(A1)", { "none" })
sig("trio_asyncio.current_flavor", "bridge", "trio_asyncio.current_flavor(A1)", { "none" })
sig("trio_asyncio.new_event_loop", "plain", "trio_asyncio.new_event_loop(A1):close()", { "none" })
sig("trio_asyncio.start_guest_run", "plain", "trio_asyncio.start_guest_run(A1, A2)", { "fn", "tbl" })
sig("trio_asyncio.task_tree", "bridge", "trio_asyncio.task_tree(A1)", { "none" })
sig("trio_asyncio.dump_tasks", "bridge", "trio_asyncio.dump_tasks(A1)", { "none" })

M.SIGNATURES = S

-- ---------------------------------------------------------------------
-- the special cases: closed objects, objects of another loop or of a
-- finished run, used where a live one is expected.  { name, ctx, call, object }

M.SPECIAL = {
  { "MemorySendChannel:send on a closed channel", "trio", "O:send(1)", "closed_send" },
  { "MemorySendChannel:send_nowait on a closed channel", "trio", "O:send_nowait(1)", "closed_send" },
  { "MemorySendChannel:clone on a closed channel", "trio", "O:clone()", "closed_send" },
  { "MemoryReceiveChannel:receive on a closed channel", "trio", "O:receive()", "closed_recv" },
  { "MemoryReceiveChannel:receive_nowait on a closed channel", "trio", "O:receive_nowait()", "closed_recv" },
  { "MemoryReceiveChannel:iter on a closed channel", "trio", "for v in O:iter() do end", "closed_recv" },
  { "Nursery:start_soon on a nursery of a finished run", "trio", "O:start_soon(function() end)", "dead_nursery" },
  { "Nursery:start on a nursery of a finished run", "trio", "O:start(function(ts) ts:started() end)",
    "dead_nursery" },
  { "Nursery:start_soon on a closed nursery (same run)", "trio", "O:start_soon(function() end)", "closed_nursery" },
  { "Nursery:start on a closed nursery (same run)", "trio", "O:start(function(ts) ts:started() end)",
    "closed_nursery" },
  { "CancelScope:run on a scope of a finished run", "trio", "O:run(function() end)", "dead_scope" },
  { "CancelScope:cancel on a scope of a finished run", "trio", "O:cancel()", "dead_scope" },
  { "CancelScope.deadline= on a scope of a finished run", "trio", "O.deadline = 1", "dead_scope" },
  { "CancelScope:run entered twice", "trio", "O:run(function() O:run(function() end) end)", "scope" },
  { "trio.lowlevel.reschedule of a task of a finished run", "trio", "trio.lowlevel.reschedule(O)", "dead_task" },
  { "trio.lowlevel.reschedule of a running task", "trio", "trio.lowlevel.reschedule(O)", "task" },
  { "TrioToken:run_sync_soon of a finished run", "trio", "O:run_sync_soon(function() end)", "dead_token" },
  { "ParkingLot:park of a lot from a finished run", "trio", "trio.move_on_after(0.001, O.park, O)", "dead_lot" },
  { "trio.Event:wait of an event from a finished run", "trio", "trio.move_on_after(0.001, O.wait, O)",
    "dead_event" },
  { "trio.Lock:release by a task that does not hold it", "trio", "O:release()", "tLock" },
  { "ContextVar:reset with a used token", "trio", "local t = O:set(1) O:reset(t) O:reset(t)", "cvar" },
  { "Loop:call_soon on a closed loop", "plain", "O:call_soon(function() end)", "closed_loop" },
  { "Loop:call_later on a closed loop", "plain", "O:call_later(1, function() end)", "closed_loop" },
  { "Loop:create_task on a closed loop", "plain", "O:create_task(function() end)", "closed_loop" },
  { "Loop:create_future on a closed loop", "plain", "O:create_future()", "closed_loop" },
  { "Loop:run_until_complete on a closed loop", "plain", "O:run_until_complete(function() end)", "closed_loop" },
  { "Loop:add_reader on a closed loop", "plain", "O:add_reader(0, function() end)", "closed_loop" },
  { "Loop:close twice", "plain", "O:close()", "closed_loop" },
  { "Loop:run_until_complete inside a running trio run", "trio", "O:run_until_complete(function() end)",
    "syncloop" },
  { "Loop:run_until_complete on an open_loop loop", "bridge", "O:run_until_complete(function() end)", "loop" },
  { "Loop:close of a running loop", "aio", "O:close()", "loop" },
  { "Future:await of a future of another loop", "aio", "O:await()", "other_future" },
  { "asyncio.wait_for of a future of another loop", "aio", "asyncio.wait_for(O, 0.01)", "other_future" },
  { "asyncio.gather of a future of another loop", "aio", "asyncio.gather(O)", "other_future" },
  { "asyncio.wait of a future of another loop", "aio", "asyncio.wait({O})", "other_future" },
  { "asyncio.shield of a future of another loop", "aio", "asyncio.shield(O)", "other_future" },
  { "asyncio.as_completed of a future of another loop", "aio", "for f in asyncio.as_completed({O}) do end",
    "other_future" },
  { "asyncio.ensure_future of a future of another loop", "aio", "asyncio.ensure_future(O)", "other_future" },
  { "Future:set_result on a done future", "aio", "O:set_result(2)", "done_future" },
  { "Future:set_exception on a done future", "aio", "O:set_exception('e')", "done_future" },
  { "Future:result of a pending future", "aio", "O:result()", "future" },
  { "Future:await of a future of a closed loop", "aio", "O:await()", "closed_future" },
  { "Task:await of itself", "aio", "asyncio.current_task():await()", "future" },
  { "Handle:cancel of a handle of a closed loop", "plain", "O:cancel()", "closed_handle" },
  { "asyncio.Lock:release of an unlocked lock", "aio", "O:release()", "aLock" },
  { "asyncio.BoundedSemaphore:release beyond its bound", "aio", "O:release()", "aBoundedSemaphore" },
  { "asyncio.Queue:task_done too many times", "aio", "O:task_done()", "Queue" },
  { "asyncio.Event:wait of an event of another loop", "aio", "asyncio.wait_for(function() O:wait() end, 0.01)",
    "other_event" },
  { "trio_asyncio.run_aio_future of a future of another loop", "bridge", "trio.move_on_after(0.01, "
    .. "trio_asyncio.run_aio_future, O)", "other_future" },
  { "trio_asyncio.run_aio_future of a future of a closed loop", "bridge", "trio.move_on_after(0.01, "
    .. "trio_asyncio.run_aio_future, O)", "closed_future" },
  { "trio_asyncio.aio_as_trio of a future of another loop", "bridge", "trio.move_on_after(0.01, "
    .. "trio_asyncio.aio_as_trio(O))", "other_future" },
}

-- ---------------------------------------------------------------------
-- the cases

--- cases() -> the list of cases: { id = n, name = signature name, label =
-- "the call as written", ctx =, code = Lua source using O, A1..An, S,
-- object =, args = {constructors}, self = constructor|nil }
function M.cases()
  local list = {}
  local function add(c)
    c.id = #list + 1
    list[#list + 1] = c
  end
  for _, s in ipairs(S) do
    local code = s.call
    for i, _ in ipairs(s.kinds) do
      for _, v in ipairs(M.VALUES) do
        local args = {}
        for j, k in ipairs(s.kinds) do args[j] = j == i and v[2] or M.VALID[k] end
        local label = code:gsub("A(%d)", function(j)
          j = tonumber(j)
          if j == i then return v[1] end
          return s.kinds[j] == "none" and "nil" or ("<valid " .. s.kinds[j] .. ">")
        end)
        add { name = s.name, label = s.name .. ": " .. label, ctx = s.ctx, code = code, object = s.object,
              args = args, nargs = #s.kinds }
      end
    end
    -- a wrong self for methods: the call of the signature's method in its
    -- code (O:m(...), which may follow a set-up call) made as O.m(S, ...)
    local meth = s.name:match(":([%w_]+)$")
    local at = meth and code:find("O:" .. meth .. "(", 1, true)
    if at then
      local args_at = at + #meth + 3 -- just after the "("
      local scode = code:sub(1, at - 1) .. "O." .. meth .. "(S"
        .. (code:sub(args_at, args_at) == ")" and "" or ", ") .. code:sub(args_at)
      local bad_self = { { "nil", function() return nil end }, { "'x'", function() return "x" end },
        { "{}", function() return {} end }, { "a trio.Event", event_obj }, { "io.stdout", function() return io.stdout end } }
      for _, v in ipairs(bad_self) do
        local args = {}
        for j, k in ipairs(s.kinds) do args[j] = M.VALID[k] end
        add { name = s.name, label = ("%s called on %s"):format(s.name, v[1]), ctx = s.ctx, code = scode,
              object = s.object, args = args, nargs = #s.kinds, self = v[2] }
      end
    end
  end
  for _, sp in ipairs(M.SPECIAL) do
    add { name = sp[1], label = sp[1], ctx = sp[2], code = sp[3], object = sp[4], args = {}, nargs = 0,
          special = true }
  end
  return list
end

-- ---------------------------------------------------------------------
-- running the worker

local results -- [id] = { status = "ok"|"err"|"crash"|"hang"|"bricked", what =, msg = }

--- run_all(cases, known, run_pending, build) -> results by case id: runs
-- the worker over every case (once; later calls return the same table).
function M.run_all(CASES, KNOWN, RUN_PENDING, BUILD)
  if results then return results end
  results = {}
  local skip = {}
  if not RUN_PENDING then
    for _, c in ipairs(CASES) do
      local k = KNOWN[c.label]
      if k and k.skip then skip[#skip + 1] = c.id end
    end
  end
  -- a worker starts no new case after `budget` seconds; `limit` bounds
  -- one case (a case running when the timeout kills the worker hangs)
  local from, budget, limit = 1, 3, 13
  local tmp = os.tmpname()
  -- the worker runs in a temp dir of its own: cases such as
  -- trio.Path("x"):touch() really create files
  local root = assert(io.popen("pwd")):read("l")
  local build = BUILD:sub(1, 1) == "/" and BUILD or root .. "/" .. BUILD
  local dir = assert(io.popen("mktemp -d")):read("l")
  while from <= #CASES do
    local cmd = ("cd '%s' && LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;%s/spec/?.lua;;' LUA_CPATH='%s/?.so;;' "
      .. "LUA_INIT= TA_BAD_INPUT_SKIP='%s' timeout -k 2 %d lua5.4 %s/spec/bad_input_worker.lua %d %d %d 2>%s"):format(
      dir, root, root, root, build, table.concat(skip, ","), limit, root, from, #CASES, budget, tmp)
    local p = assert(io.popen(cmd))
    local started, last_done = nil, from - 1
    local done = false
    for line in p:lines() do
      local tag, id, rest = line:match("^(%u) (%d+) ?(.*)$")
      id = tonumber(id)
      if line == "DONE" then
        done = true
      elseif tag == "S" then
        started = id
      elseif tag == "R" then
        local st, w, msg = rest:match("^(%a+) ?(%S*) ?(.*)$")
        results[id] = { status = st, what = w, msg = msg }
      elseif tag == "U" then
        last_done = id
        started = nil
        if rest:match("^BRICKED") then
          results[id] = results[id] or {}
          results[id].status = "bricked"
          results[id].msg = (results[id].msg or "") .. " / afterwards: " .. rest:gsub("^BRICKED ?", "")
        end
      end
    end
    local ok, _, code = p:close()
    code = ok and 0 or code
    if done then break end
    local f = io.open(tmp)
    local err = f and f:read("a") or ""
    if f then f:close() end
    if started then -- the worker died or hung during this case
      local r = results[started] or {}
      r.status = (code == 124 or code == 137) and "hang" or "crash"
      r.msg = ("%s(exit %s) %s"):format(r.msg and (r.msg .. " then ") or "", tostring(code),
        (err:match("[^\n]*ERROR[^\n]*") or err:match("[^\n]*$") or ""):sub(1, 200))
      results[started] = r
      from = started + 1
    else
      assert(last_done >= from, "the bad input worker ran no case: " .. err)
      from = last_done + 1
    end
  end
  os.remove(tmp)
  os.execute(("rm -rf '%s'"):format(dir))
  return results
end

-- ---------------------------------------------------------------------
-- the verdict on one case

local INTERNAL = {
  "attempt to ", "C stack overflow", "table index is", "number has no integer representation",
  "invalid key to 'next'", "stack overflow", "error in error handling", "(an error value whose tostring raises)",
}

-- The function's short name: "trio.sleep" -> "sleep", "Loop:call_later" ->
-- "call_later", "CancelScope.deadline=" -> "deadline".
local function short_name(name)
  local base = name:match("^([^%s{(]+)") or name
  return base:match("([%w_]+)=?$") or base
end

--- verdict(case, result) -> nil when the case behaved, else a one-line account.
function M.verdict(c, r)
  if r == nil then return "no result (the worker never ran it)" end
  if r.status == "crash" or r.status == "hang" or r.status == "bricked" then
    return ("%s: %s"):format(r.status:upper(), r.msg or "")
  end
  if r.status == "ok" then return nil end
  local msg, w = r.msg or "", r.what
  if w == "nil" then return "raised nil" end
  local short = short_name(c.name)
  local named = msg:match("bad argument #%d+ to '([^']*)'")
  if named then
    if named == short or named:sub(-#short - 1) == "." .. short or named:sub(-#short - 1) == ":" .. short then
      return nil
    end
    -- a field assignment (O.deadline = x) goes through __newindex, which
    -- Lua's own messages call 'newindex'
    if named == "newindex" and c.name:sub(-1) == "=" then return nil end
    if c.special then return nil end
    return ("argument error naming '%s' instead of '%s': %s"):format(named, short, msg)
  end
  for _, pat in ipairs(INTERNAL) do
    if msg:find(pat, 1, true) then return "internal error: " .. msg end
  end
  if w ~= "string" then return nil end -- an error object of the runtime's classes
  if msg:find(short, 1, true) then return nil end
  if c.special then return nil end -- a clean error about the object's state
  -- the error of the caller's own value (its __tostring raised)
  if msg:find("__tostring failed", 1, true) then return nil end
  return "error that does not name the function: " .. msg
end


-- lua5.4 spec/bad_input_cases.lua --report [build]: runs every case (the
-- known ones too) and prints each misbehaving one with its verdict.
if arg and arg[0] and arg[0]:find("bad_input_cases", 1, true) and arg[1] == "--report" then
  local all = M.cases()
  local res = M.run_all(all, {}, true, arg[2] or "build")
  for _, c in ipairs(all) do
    local v = M.verdict(c, res[c.id])
    if v then print(("%d\t%s\t%s"):format(c.id, c.label, v)) end
  end
end

return M
