-- Ported from Trio's src/trio/_core/_tests/test_ki.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Every test runs in a child process (spec/child.lua), because it sends
-- SIGINT to its own process: a run that lost its handler must kill the
-- child, not the test runner.  Trio's ki_self() (os.kill of itself, whose
-- handler has run when it returns) is support_signals.kill("INT"): a
-- `kill` through io.popen, which the caller waits for without ignoring
-- SIGINT.
--
-- The big difference (docs/SEMANTICS.md, "KeyboardInterrupt"): Ctrl-C here
-- always reaches the main task at its next checkpoint (or at once if it is
-- blocked), never the task that was running, and never between
-- checkpoints: Trio's behaviour with restrict_keyboard_interrupt_to_checkpoints=True,
-- with no KI protection to ask for.  So the checks of
-- test_ki_protection_works behave here as Trio's *protected* variants do.
--
-- Dropped (KI protection, which we do not have, or Python internals):
--   test_ki_enabled, test_ki_enabled_after_yield_briefly,
--   test_generator_based_context_manager_throw,
--   test_async_generator_agen_protection, test_native_agen_protection,
--   test_ki_disabled_out_of_context, test_ki_disabled_in_del,
--   test_ki_does_not_leak_across_different_calls_to_inner_functions,
--   test_ki_protection_check_does_not_freeze_locals,
--   test_enable_disable_ki_protection_passes_on_inspect_flags
--   (enable_ki_protection / disable_ki_protection / currently_ki_protected
--   on functions, generators, async generators and __del__: there is no
--   KI protection, as no Lua code is ever interrupted between checkpoints);
--   test_identity_weakref_internals,
--   test_weak_key_identity_dict_remove_callback_keyerror,
--   test_weak_key_identity_dict_remove_callback_selfref_expired (private
--   helpers of Trio's KI-protection bookkeeping);
--   test_ki_with_broken_threads (deletes an entry of Python's private
--   threading._active table).
-- Left out of test_ki_protection_works: the second half of check 10 (the
-- same code without restrict_keyboard_interrupt_to_checkpoints raises
-- before its next line), since that is the only mode here.
local child = require "child"

local F = "test_ki.py: "

-- What every child starts with: trio, ki_self() and has_ki_group(e).
local PRELUDE = [[
local trio = require "trio"
local lowlevel = trio.lowlevel
local signals = require "support_signals"
local function ki_self()
  signals.kill("INT")
  local t0 = os.clock()
  while os.clock() - t0 < 0.03 do end
end
local function ki_group(e)
  return trio.ExceptionGroup:is(e) and #e.exceptions == 1 and trio.KeyboardInterrupt:is(e.exceptions[1])
end
-- pcall(fn, ...) -> ok, whether the error is a KeyboardInterrupt
local function ki_from(fn, ...)
  local ok, err = pcall(fn, ...)
  return ok, trio.KeyboardInterrupt:is(err)
end
local function sorted(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return table.concat(list, ",")
end
]]

local function run(body)
  return child.run(PRELUDE .. body, { timeout = 20 })
end

-- Runs `body` as the main task after a ki_self(); its results must print
-- as `results` (tab-separated).
local function main_after_ki(body, results)
  local r = run('print("run", trio.run(function()\n  ki_self()\n' .. body .. '\nend))\n')
  child.expect_lines(r, { "run\t" .. results })
end

describe("Trio test_ki.py", function()
  teardown(child.cleanup)

  -- Adapted: Python's default handler raises KeyboardInterrupt; outside a
  -- run SIGINT is lua5.4's own handler, which raises "interrupted!" at the
  -- next Lua instruction hook.
  it(F .. "test_ki_self (adapted: lua5.4's 'interrupted!' outside a run)", function()
    local r = run([[
local ok, err = pcall(function()
  ki_self()
  local t0 = os.clock()
  while os.clock() - t0 < 5 do end
end)
print("outside", ok, (tostring(err):match("interrupted!")))
]])
    child.expect_lines(r, { "outside\tfalse\tinterrupted!" })
  end)

  -- Checks 1 and 2, adapted: the task that sends SIGINT is not the one
  -- that gets it (as in Trio's protected check 2): the main task, blocked
  -- at the end of its nursery, gets KeyboardInterrupt (in a group, as it
  -- leaves a nursery), which cancels the other tasks.
  it(F .. "test_ki_protection_works checks 1-2 (adapted: KI goes to the main task, as check 2)", function()
    local r = run([[
local record = {}
local function sleeper(name)
  local ok, e = pcall(function() while true do lowlevel.checkpoint() end end)
  if not ok and trio.Cancelled:is(e) then record[name .. " ok"] = true end
end
local function raiser(name)
  ki_self()
  -- cancelled at this checkpoint or in the wait, but never interrupted
  local ok, e = pcall(function()
    lowlevel.checkpoint()
    lowlevel.wait_task_rescheduled(function() return lowlevel.Abort.SUCCEEDED end)
  end)
  if trio.KeyboardInterrupt:is(e) then record[name .. " raised"] = true end
  if not ok and trio.Cancelled:is(e) then record[name .. " cancel ok"] = true end
end
local ok, err = pcall(trio.run, function()
  trio.open_nursery(function(nursery)
    nursery:start_soon(sleeper, "s1")
    nursery:start_soon(sleeper, "s2")
    nursery:start_soon(raiser, "r1")
  end)
end)
print("run", ok, ki_group(err))
print("record", sorted(record))
]])
    child.expect_lines(r, { "run\tfalse\ttrue", "record\tr1 cancel ok,s1 ok,s2 ok" })
  end)

  -- Adapted from check 2's "__aexit__ blocks, and then receives the KI":
  -- the main task blocked in a long sleep is woken by a SIGINT sent from
  -- elsewhere (a background shell).
  it(F .. "test_ki_protection_works check 2 (adapted: a blocked main task is woken)", function()
    local r = run([[
local pid = signals.PID
local t0 = os.time()
local ok, err = pcall(trio.run, function()
  os.execute(("(sleep 0.2; kill -INT %s) >/dev/null 2>&1 &"):format(pid))
  trio.sleep(15)
end)
print("run", ok, trio.KeyboardInterrupt:is(err), os.time() - t0 < 10)
]])
    child.expect_lines(r, { "run\tfalse\ttrue\ttrue" })
  end)

  it(F .. "test_ki_protection_works check 3 (ported: kill during shutdown still raises)", function()
    local r = run([[
local ok, err = pcall(trio.run, function()
  local token = lowlevel.current_trio_token()
  local function kill_during_shutdown()
    local ok2, e = pcall(token.run_sync_soon, token, kill_during_shutdown)
    if not ok2 then
      assert(trio.RunFinishedError:is(e), tostring(e))
      ki_self()
    end
  end
  token:run_sync_soon(kill_during_shutdown)
end)
print("run", ok, trio.KeyboardInterrupt:is(err))
]])
    child.expect_lines(r, { "run\tfalse\ttrue" })
  end)

  it(F .. "test_ki_protection_works check 4 (ported: KI in before_run, before main starts)", function()
    local r = run([[
local ok, err = pcall(trio.lowlevel.run, {
  fn = function() lowlevel.checkpoint() end,
  instruments = { { before_run = function() ki_self() end } },
})
print("run", ok, trio.KeyboardInterrupt:is(err))
]])
    child.expect_lines(r, { "run\tfalse\ttrue" })
  end)

  -- Adapted: a schedule point (that polls) comes between the signal and
  -- checkpoint_if_cancelled, which itself never polls.
  it(F .. "test_ki_protection_works check 5 (adapted: checkpoint_if_cancelled notices a pending KI)", function()
    main_after_ki([[
  lowlevel.cancel_shielded_checkpoint()
  return ki_from(lowlevel.checkpoint_if_cancelled)]], "false\ttrue")
  end)

  it(F .. "test_ki_protection_works check 6 (ported: not delivered at cancel-shielded checkpoints)", function()
    main_after_ki([[
  lowlevel.cancel_shielded_checkpoint()
  lowlevel.cancel_shielded_checkpoint()
  lowlevel.cancel_shielded_checkpoint()
  return ki_from(lowlevel.checkpoint)]], "false\ttrue")
  end)

  it(F .. "test_ki_protection_works check 7 (ported: an abort that fails keeps the KI for later)", function()
    main_after_ki([[
  local task = lowlevel.current_task()
  local v = lowlevel.wait_task_rescheduled(function()
    lowlevel.reschedule(task, true, 1)
    return lowlevel.Abort.FAILED
  end)
  return v, ki_from(lowlevel.checkpoint)]], "1\tfalse\ttrue")
  end)

  it(F .. "test_ki_protection_works check 8 (ported: KI delivered through a slow abort)", function()
    main_after_ki([[
  local task = lowlevel.current_task()
  local ok, err = pcall(lowlevel.wait_task_rescheduled, function(raise_cancel)
    local raised, e = pcall(raise_cancel)
    lowlevel.reschedule(task, raised, e)
    return lowlevel.Abort.FAILED
  end)
  lowlevel.checkpoint()
  return ok, trio.KeyboardInterrupt:is(err)]], "false\ttrue")
  end)

  it(F .. "test_ki_protection_works check 9 (ported: KI just before the main task exits)", function()
    local r = run([[
local ok, err = pcall(trio.run, function() ki_self() end)
print("run", ok, trio.KeyboardInterrupt:is(err))
]])
    child.expect_lines(r, { "run\tfalse\ttrue" })
  end)

  it(F .. "test_ki_protection_works check 10 (adapted: always restricted to checkpoints)", function()
    local r = run([[
local record = {}
print("run", trio.run(function()
  ki_self()
  -- not interrupted between checkpoints...
  record[#record + 1] = "ok"
  -- ...until the next one
  return ki_from(trio.sleep, 10)
end))
print("record", table.concat(record, ","))
]])
    child.expect_lines(r, { "run\tfalse\ttrue", "record\tok" })
  end)

  it(F .. "test_ki_protection_works check 11 (ported: KI takes priority over a cancelled scope)", function()
    local r = run([[
print("run", trio.run(function()
  local got = {}
  local scope = trio.CancelScope()
  scope:run(function()
    scope:cancel()
    local function outcome()
      local ok, err = pcall(lowlevel.checkpoint)
      if ok then return "none" end
      if trio.KeyboardInterrupt:is(err) then return "ki" end
      if trio.Cancelled:is(err) then return "cancelled" end
      return tostring(err)
    end
    got[#got + 1] = outcome()
    ki_self()
    got[#got + 1] = outcome()
    got[#got + 1] = outcome()
  end)
  return table.concat(got, ",")
end))
]])
    child.expect_lines(r, { "run\tcancelled,ki,cancelled" })
  end)

  -- Adapted: Python's main task calls signal.signal; here a C host
  -- (spec/host/hostile.c) installs its own SIGINT handler from inside the
  -- run; the run leaves it in place when it ends.
  it(F .. "test_ki_is_good_neighbor (adapted: a C host's handler set during the run is kept)", function()
    local r = child.run_host([[
local trio = require 'trio'
trio.run(function()
  print('during', host.sigint_state())
  host.sigint('handler')
  trio.sleep(0)
end)
print('after', host.sigint_state())
host.raise_sigint()
print('raised', host.sigint_state())
]])
    child.expect_lines(r, { "during\tother\t0", "after\thandler\t0", "raised\thandler\t1",
      "sigint_after_close handler" })
  end)

  -- Not a test of test_ki.py, but the other half of being a good
  -- neighbour (Trio restores the SIGINT handler it replaced): the handling
  -- from before the run is back after it, also after a KeyboardInterrupt.
  for _, how in ipairs({ "ignore", "handler" }) do
    it(F .. "the host's SIGINT " .. how .. " from before the run comes back after it", function()
      local r = child.run_host(([[
host.sigint('%s')
local trio = require 'trio'
local ok, err = pcall(trio.run, function()
  print('during', host.sigint_state())
  host.raise_sigint()
  trio.sleep(5)
end)
print('run', ok, trio.KeyboardInterrupt:is(err))
print('after', host.sigint_state())
]]):format(how))
      child.expect_lines(r, { "during\tother\t0", "run\tfalse\ttrue", "after\t" .. how .. "\t0" })
    end)
  end
end)
