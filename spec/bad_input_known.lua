--- bad_input_known.lua: the known failures of spec/bad_input_spec.lua, as
-- rules.  A rule matches cases by `name` (the signature's name, exact),
-- `prefix` (of that name) and `label` (a substring of the call as written);
-- first match wins.  Its `reason` is the diagnosis; `skip` marks cases that
-- hang or crash (not run unless TA_RUN_PENDING=1).  A case a rule matches
-- that behaves is not pending: fixing a bug needs no edit here.
return {
  -- ---- need a C fix -------------------------------------------------------
  { name = "trio.lowlevel.run{clock=}",
    reason = "C: run_begin (engine.c) sets E->running = 1 before luaL_checkudata(clock) raises: every later run "
      .. "fails with 'a run is already active'; the argument error also says #3 (the core's position), "
      .. "not 'opts.clock'" },
  { name = "trio.lowlevel.wait_task_rescheduled", label = "(function)", skip = true,
    reason = "C: lua_abort (task.c) takes an abort_fn that returns nothing (or raises) as FAILED, so the "
      .. "cancelled task waits forever (Trio raises TrioInternalError)" },
  { name = "trio_asyncio.run_aio_future of a future of another loop", skip = true,
    reason = "C: trio_wait_abort (future.c) cancels the future and waits for it to finish, which needs its "
      .. "own loop to run: a future of a loop that is not running (or closed) never finishes; "
      .. "run_aio_future should refuse a future of another loop at once" },
  { name = "trio_asyncio.run_aio_future of a future of a closed loop", skip = true,
    reason = "C: as above, for a closed loop" },
  { name = "trio_asyncio.aio_as_trio of a future of another loop", skip = true,
    reason = "C: as above (aio_as_trio(future) waits through core.future_wait)" },

  -- ---- need a fix in lua/ ----------------------------------------------------
  { label = "called on ", prefix = "trio.",
    reason = "lua/trio/sync.lua: the methods of Event, Lock, StrictFIFOLock, Semaphore, CapacityLimiter and "
      .. "Condition do not check self (obj.method(nil) gives 'attempt to index a nil value (local 'self')')" },
  { label = "called on ", prefix = "asyncio.",
    reason = "lua/asyncio/sync.lua, queues.lua: the methods of the asyncio primitives and queues do not "
      .. "check self (obj.method(nil) gives 'attempt to index/compare ...')" },
  { label = "called on ", prefix = "Loop:",
    reason = "lua/asyncio.lua, lua/trio_asyncio.lua: the Loop methods written in Lua do not check self: "
      .. "'bad argument #1 to 'loop_attrs'' or 'attempt to call a nil value (method 'is_closed')'" },
  { label = "called on ", prefix = "ContextVar:",
    reason = "lua/trio.lua: ContextVar:get/set/reset do not check self" },
  { name = "asyncio.PriorityQueue:put_nowait",
    reason = "lua/asyncio/queues.lua: PriorityQueue:put_nowait reports its argument errors as "
      .. "'PriorityQueue:put'" },
}
