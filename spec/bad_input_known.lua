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
}
