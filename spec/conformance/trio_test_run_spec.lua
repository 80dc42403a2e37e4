-- Ported from Trio's src/trio/_core/_tests/test_run.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: `with CancelScope() as s:` is s:run(fn); `async with
-- open_nursery() as n:` is trio.open_nursery(fn); pytest.raises is
-- H.raises, pytest.RaisesGroup is H.raises_group / H.group; Python's builtin
-- exceptions are small error classes of trio_helpers (H.KeyError, ...);
-- outcome.Value(v) / outcome.Error(e) given to reschedule are
-- reschedule(task, true, v) / reschedule(task, false, e); the mock_clock and
-- autojump_clock fixtures are H.mock_clock() / H.mock_clock(0); Trio's
-- TrioInternalError.__cause__, double- or triple-wrapped in the groups of
-- Trio's internal nurseries, is here the error itself (docs/SEMANTICS.md).
-- Lines dropped from ported tests (no counterpart): calling run() with a
-- missing argument or a non-async function (any Lua function can be a
-- task), currently_ki_protected(), name= arguments of start_soon (a task is
-- named by its function, or by assigning task.name), functools.partial,
-- task.context, the private _schedule_points counter (H.assert_checkpoints
-- and an instrument count scheduling instead), __context__ checks.
-- Left out (Python-only machinery or constructs Lua cannot express):
--   test_nursery_warn_use_async_with (`with` instead of `async with`);
--   test_cancel_scope_misnesting_1/_2/_3, test_nursery_misnest,
--   test_nursery_nested_child_misnest, test_asyncexitstack_nursery_misnest,
--   test_asyncexitstack_nursery_misnest_cleanup (they enter and exit scopes
--   and nurseries by hand through __enter__/__aexit__ and ExitStack; ours are
--   entered only by scope:run(fn) / open_nursery(fn), so misnesting cannot be
--   written);
--   test_error_in_run_loop (monkeypatches a private task attribute);
--   test_exc_info, test_exc_info_after_throw_suppressed,
--   test_exception_chaining_after_throw, test_exc_info_after_throw_to_inner_suppressed,
--   test_exception_chaining_after_throw_to_inner,
--   test_nursery_exception_chaining_doesnt_make_context_loops (sys.exc_info
--   and implicit __context__ chaining; Lua errors have neither);
--   test_TrioToken_run_sync_soon_late_crash (needs an async generator
--   finalizer running after the system nursery closed);
--   test_nursery_stop_async_iteration (async iterators, StopAsyncIteration);
--   test_Nursery_init, test_Nursery_private_init, test_Nursery_subclass,
--   test_CancelScope_subclass (Python constructors, private _closed,
--   subclassing);
--   test_permanently_detach_coroutine_object,
--   test_detach_and_reattach_coroutine_object,
--   test_detached_coroutine_cancellation (drive the task's coroutine object
--   by hand with coro.send/throw);
--   test_simple_cancel_scope_usage_doesnt_create_cyclic_garbage,
--   test_cancel_scope_exit_doesnt_create_cyclic_garbage,
--   test_nursery_cancel_doesnt_create_cyclic_garbage,
--   test_locals_destroyed_promptly_on_cancel,
--   test_ki_protection_doesnt_leave_cyclic_garbage (refcounting / gc.garbage
--   checks);
--   test_context_run_tb_frames (mocks a private helper);
--   the parametrizations of test_setting_strict_exception_groups,
--   test_nursery_collapse and test_trio_run_strict_before_started with a
--   strictness of False (we have strict exception groups only, Trio's
--   default; non-strict nurseries are deprecated there).
-- The "issue #11" block at the end holds specs for the failures the
-- project's issue #11 lists for Trio that no upstream test of this file
-- pins down.
local trio = require "trio"
local asyncio = require "asyncio"
local H = require "conformance.trio_helpers"

local lowlevel = trio.lowlevel
local wait_all_tasks_blocked = trio.testing.wait_all_tasks_blocked
local current_task = lowlevel.current_task
local sleep_forever = H.sleep_forever
local KeyError, ValueError = H.KeyError, H.ValueError
local P = "_core/_tests/test_run.py::"

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

describe("Trio test_run.py", function()
  it(P .. "test_basic", function()
    local function trivial(x) return x end
    assert.equal(8, H.run(trivial, 8))
    H.raises(H.msg("bad argument #1 to 'run'"), trio.run, 42)
    local function trivial2(x)
      lowlevel.checkpoint()
      return x
    end
    assert.equal(1, H.run(trivial2, 1))
  end)

  it(P .. "test_initial_task_error", function()
    local exc
    local e = H.raises(ValueError, H.run, function(x)
      exc = ValueError(tostring(x))
      error(exc)
    end, 17)
    assert.equal(exc, e)
    assert.equal("17", e.message)
  end)

  it(P .. "test_run_nesting", function()
    local e = H.raises(H.any, H.run, function()
      return trio.run(function() end)
    end)
    assert.truthy(tostring(e):find("runs cannot nest", 1, true), tostring(e))
  end)

  it(P .. "test_nursery_main_block_error_basic", function()
    H.run(function()
      local exc = ValueError("whoops")
      H.raises_group(function()
        trio.open_nursery(function() error(exc) end)
      end, function(e) return e == exc end)
    end)
  end)

  it(P .. "test_child_crash_basic", function()
    H.run(function()
      local my_exc = ValueError("uh oh")
      H.raises_group(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(function() error(my_exc) end)
        end)
      end, function(e) return e == my_exc end)
    end)
  end)

  it(P .. "test_basic_interleave", function()
    local record = {}
    H.run(function()
      local function looper(whoami)
        for i = 0, 2 do
          record[#record + 1] = whoami .. i
          lowlevel.checkpoint()
        end
      end
      trio.open_nursery(function(nursery)
        nursery:start_soon(looper, "a")
        nursery:start_soon(looper, "b")
      end)
    end)
    H.check_sequence_matches(record, { H.set { "a0", "b0" }, H.set { "a1", "b1" }, H.set { "a2", "b2" } })
  end)

  it(P .. "test_task_crash_propagation", function()
    local looper_record = {}
    local function looper()
      local ok, e = pcall(function()
        while true do lowlevel.checkpoint() end
      end)
      assert(not ok)
      if not trio.Cancelled:is(e) then error(e, 0) end
      looper_record[#looper_record + 1] = "cancelled"
    end
    local function crasher() error(ValueError("argh")) end
    H.raises_group(function()
      H.run(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(looper)
          nursery:start_soon(crasher)
        end)
      end)
    end, function(e) return ValueError:is(e) and e.message == "argh" end)
    assert.same({ "cancelled" }, looper_record)
  end)

  it(P .. "test_main_and_task_both_crash", function()
    -- main and a task both crash: both come out in the group
    H.raises_group(function()
      H.run(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(function() error(ValueError()) end)
          error(KeyError())
        end)
      end)
    end, ValueError, KeyError)
  end)

  it(P .. "test_two_child_crashes", function()
    H.raises_group(function()
      H.run(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(function() error(KeyError()) end)
          nursery:start_soon(function() error(ValueError()) end)
        end)
      end)
    end, ValueError, KeyError)
  end)

  it(P .. "test_child_crash_wakes_parent", function()
    H.run(function()
      H.raises_group(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(function() error(ValueError("this is a crash")) end)
          sleep_forever()
        end)
      end, function(e) return ValueError:is(e) and e.message == "this is a crash" end)
    end)
  end)

  it(P .. "test_reschedule", function()
    H.run(function()
      local t1, t2
      local function child1()
        t1 = current_task()
        local x = sleep_forever()
        assert.equal(0, x)
        lowlevel.reschedule(t2, false, ValueError("error message"))
      end
      local function child2()
        t2 = current_task()
        lowlevel.reschedule(t1, true, 0)
        H.raises(function(e) return ValueError:is(e) and e.message == "error message" end, sleep_forever)
      end
      trio.open_nursery(function(nursery)
        nursery:start_soon(child1)
        -- let t1 run and fall asleep
        lowlevel.checkpoint()
        nursery:start_soon(child2)
      end)
    end)
  end)

  it(P .. "test_current_time", function()
    H.run(function()
      local t1 = trio.current_time()
      local t2 = t1
      for _ = 1, 1e7 do
        t2 = trio.current_time()
        if t2 ~= t1 then break end
      end
      assert.is_true(t1 < t2)
    end)
  end)

  it(P .. "test_current_time_with_mock_clock", function()
    local mock_clock = H.mock_clock()
    H.run({ clock = mock_clock }, function()
      local start = mock_clock:current_time()
      assert.equal(trio.current_time(), mock_clock:current_time())
      assert.equal(trio.current_time(), mock_clock:current_time())
      mock_clock:jump(3.15)
      assert.equal(start + 3.15, mock_clock:current_time())
      assert.equal(start + 3.15, trio.current_time())
    end)
  end)

  it(P .. "test_current_clock", function()
    local mock_clock = H.mock_clock()
    H.run({ clock = mock_clock }, function()
      assert.equal(mock_clock, lowlevel.current_clock())
    end)
  end)

  it(P .. "test_current_task", function()
    H.run(function()
      local parent_task = current_task()
      trio.open_nursery(function(nursery)
        nursery:start_soon(function()
          assert.equal(parent_task, current_task().parent_nursery.parent_task)
        end)
      end)
    end)
  end)

  it(P .. "test_root_task", function()
    H.run(function()
      local root = lowlevel.current_root_task()
      assert.is_not_nil(root)
      assert.is_nil(root.parent_nursery)
      assert.is_nil(root.eventual_parent_nursery)
    end)
  end)

  it(P .. "test_out_of_context", function()
    H.raises(H.any, lowlevel.current_task)
    H.raises(H.any, trio.current_time)
  end)

  it(P .. "test_current_statistics", function()
    local mock_clock = H.mock_clock()
    H.run({ clock = mock_clock }, function()
      wait_all_tasks_blocked()
      local function child() pcall(sleep_forever) end
      local stats = lowlevel.current_statistics()
      assert.equal(0, stats.run_sync_soon_queue_size)
      local living = stats.tasks_living
      trio.open_nursery(function(nursery)
        nursery:start_soon(child)
        wait_all_tasks_blocked()
        local token = lowlevel.current_trio_token()
        token:run_sync_soon(function() end)
        token:run_sync_soon(function() end, { idempotent = true })
        stats = lowlevel.current_statistics()
        assert.equal(living + 1, stats.tasks_living)
        assert.equal(0, stats.tasks_runnable)
        assert.equal(2, stats.run_sync_soon_queue_size)
        nursery.cancel_scope:cancel()
        stats = lowlevel.current_statistics()
        assert.equal(1, stats.tasks_runnable)
      end)
      lowlevel.checkpoint()
      lowlevel.checkpoint()
      trio.CancelScope { deadline = trio.current_time() + 5 }:run(function()
        assert.equal(5, lowlevel.current_statistics().seconds_to_next_deadline)
      end)
      -- upstream: inf, no deadline left; here the watchdog's sleep of H.run
      -- is the one left
      assert.equal(H.MOCK_WATCHDOG - trio.current_time(), lowlevel.current_statistics().seconds_to_next_deadline)
    end)
  end)

  -- (the worker-thread line cannot run as ported: a worker gets copies of
  -- plain values, and a CancelScope is none; docs/SEMANTICS.md)
  pending(P .. "test_cancel_scope_repr [feature missing: passing a CancelScope to a worker thread (a "
    .. "worker gets copies of plain values, not the CancelScope)]", function()
    local mock_clock = H.mock_clock()
    H.run({ clock = mock_clock }, function()
      local scope = trio.CancelScope()
      assert.truthy(tostring(scope):find("unbound", 1, true))
      scope:run(function()
        assert.truthy(tostring(scope):find("active", 1, true))
        scope.deadline = trio.current_time() - 1
        assert.truthy(tostring(scope):find("deadline is 1.00 seconds ago", 1, true))
        scope.deadline = trio.current_time() + 10
        assert.truthy(tostring(scope):find("deadline is 10.00 seconds from now", 1, true))
        -- outside async context the current time is unknown
        assert.falsy(trio.to_thread.run_sync(tostring, scope):find("deadline", 1, true))
        scope:cancel()
        assert.truthy(tostring(scope):find("cancelled", 1, true))
      end)
      assert.truthy(tostring(scope):find("exited", 1, true))
    end)
  end)

  it(P .. "test_cancel_scope_validation", function()
    H.run(function()
      H.raises(H.msg("Cannot specify both a deadline and a relative deadline"),
        trio.CancelScope, { deadline = 7, relative_deadline = 3 })
      H.raises(H.msg("deadline must not be NaN"), trio.CancelScope, { deadline = 0 / 0 })
      H.raises(H.msg("relative deadline must not be NaN"), trio.CancelScope, { relative_deadline = 0 / 0 })
      H.raises(H.msg("timeout must be non-negative"), trio.CancelScope, { relative_deadline = -3 })
      local scope = trio.CancelScope()
      H.raises(H.msg("deadline must not be NaN"), function() scope.deadline = 0 / 0 end)
      H.raises(H.msg("relative deadline must not be NaN"), function() scope.relative_deadline = 0 / 0 end)
      H.raises(H.msg("relative deadline must be non-negative"), function() scope.relative_deadline = -3 end)
      scope.relative_deadline = 5
      assert.equal(5, scope.relative_deadline)
    end)
  end)

  it(P .. "test_cancel_points", function()
    H.run(function()
      local scope = trio.CancelScope()
      scope:run(function()
        lowlevel.checkpoint_if_cancelled()
        scope:cancel()
        H.raises(trio.Cancelled, lowlevel.checkpoint_if_cancelled)
      end)
    end)
    H.run(function()
      local scope = trio.CancelScope()
      scope:run(function()
        lowlevel.checkpoint()
        scope:cancel()
        H.raises(trio.Cancelled, lowlevel.checkpoint)
      end)
    end)
    H.run(function()
      local scope = trio.CancelScope()
      scope:run(function()
        scope:cancel()
        H.raises(trio.Cancelled, sleep_forever)
      end)
    end)
    H.run(function()
      local scope = trio.CancelScope()
      scope:run(function()
        scope:cancel()
        lowlevel.cancel_shielded_checkpoint()
        lowlevel.cancel_shielded_checkpoint()
        H.raises(trio.Cancelled, lowlevel.checkpoint)
      end)
    end)
  end)

  it(P .. "test_cancel_edge_cases", function()
    H.run(function()
      local scope = trio.CancelScope()
      scope:run(function()
        -- two cancels in a row: idempotent
        scope:cancel()
        scope:cancel()
        lowlevel.checkpoint()
      end)
      assert.is_true(scope.cancel_called)
      assert.is_true(scope.cancelled_caught)

      scope = trio.CancelScope()
      scope:run(function()
        -- level-triggered
        scope:cancel()
        H.raises(trio.Cancelled, sleep_forever)
        H.raises(trio.Cancelled, sleep_forever)
      end)
    end)
  end)

  it(P .. "test_cancel_scope_exceptiongroup_filtering", function()
    H.run(function()
      local function crasher() error(KeyError()) end
      -- outside the outer scope every Cancelled was absorbed: the KeyError
      -- is left, in a group
      H.raises_group(function()
        local outer = trio.CancelScope()
        outer:run(function()
          -- the outer scope was cancelled before the nursery block exited,
          -- so every cancellation inside goes on towards it
          local e = H.raises_group(function()
            trio.open_nursery(function(nursery)
              -- two children cancelled by the nursery's scope
              nursery:start_soon(sleep_forever)
              nursery:start_soon(sleep_forever)
              nursery.cancel_scope:cancel()
              trio.CancelScope { shield = true }:run(wait_all_tasks_blocked)
              -- one child cancelled by the outer scope
              nursery:start_soon(sleep_forever)
              outer:cancel()
              -- and one that raises something else
              nursery:start_soon(crasher)
            end)
          end, trio.Cancelled, trio.Cancelled, trio.Cancelled, KeyError)
          -- let the scope deal with it
          error(e, 0)
        end)
      end, KeyError)
    end)
  end)

  it(P .. "test_precancelled_task", function()
    -- a task spawned into a cancelled nursery starts, and is cancelled at
    -- its first blocking call
    local record = {}
    H.run(function()
      trio.open_nursery(function(nursery)
        nursery.cancel_scope:cancel()
        nursery:start_soon(function()
          record[#record + 1] = "started"
          sleep_forever()
        end)
      end)
    end)
    assert.same({ "started" }, record)
  end)

  it(P .. "test_cancel_shielding", function()
    H.run(function()
      local outer, inner = trio.CancelScope(), trio.CancelScope()
      outer:run(function()
        inner:run(function()
          lowlevel.checkpoint()
          outer:cancel()
          H.raises(trio.Cancelled, lowlevel.checkpoint)

          assert.is_false(inner.shield)
          H.raises(H.any, function() inner.shield = "hello" end)
          assert.is_false(inner.shield)

          inner.shield = true
          assert.is_true(inner.shield)
          -- the shield protects us from outer
          lowlevel.checkpoint()

          local innerest = trio.CancelScope()
          innerest:run(function()
            innerest:cancel()
            -- but not from a scope inside inner
            H.raises(trio.Cancelled, lowlevel.checkpoint)
          end)
          lowlevel.checkpoint()

          inner.shield = false
          -- the shield can be lowered again
          H.raises(trio.Cancelled, lowlevel.checkpoint)

          inner.shield = true
          lowlevel.checkpoint()
          -- the shield doesn't protect us from inner itself
          inner:cancel()
          -- this raises, and inner absorbs it
          lowlevel.checkpoint()
        end)
        assert.is_true(inner.cancelled_caught)
      end)
    end)
  end)

  it(P .. "test_cancel_inheritance", function()
    -- cancellation reaches every descendant at once
    local record = {}
    H.run(function()
      local function leaf(ident)
        local ok, e = pcall(sleep_forever)
        if not ok and trio.Cancelled:is(e) then record[ident] = true end
      end
      local function worker(ident)
        trio.open_nursery(function(nursery)
          nursery:start_soon(leaf, ident .. "-l1")
          nursery:start_soon(leaf, ident .. "-l2")
        end)
      end
      trio.open_nursery(function(nursery)
        nursery:start_soon(worker, "w1")
        nursery:start_soon(worker, "w2")
        nursery.cancel_scope:cancel()
      end)
    end)
    assert.same(set_of { "w1-l1", "w1-l2", "w2-l1", "w2-l2" }, record)
  end)

  it(P .. "test_cancel_shield_abort", function()
    H.run(function()
      local outer = trio.CancelScope()
      outer:run(function()
        trio.open_nursery(function(nursery)
          outer:cancel()
          nursery.cancel_scope.shield = true
          -- outer is cancelled, but the shield lets the child go to sleep
          local record = {}
          nursery:start_soon(function()
            record[#record + 1] = "sleeping"
            local ok, e = pcall(sleep_forever)
            if not ok and trio.Cancelled:is(e) then record[#record + 1] = "cancelled" end
          end)
          wait_all_tasks_blocked()
          assert.same({ "sleeping" }, record)
          -- lowering the shield aborts the sleep
          nursery.cancel_scope.shield = false
          -- see it happen before the nursery's exit could cancel it
          trio.CancelScope { shield = true }:run(function()
            wait_all_tasks_blocked()
            assert.same({ "sleeping", "cancelled" }, record)
          end)
        end)
      end)
    end)
  end)

  it(P .. "test_basic_timeout", function()
    local mock_clock = H.mock_clock()
    H.run({ clock = mock_clock }, function()
      local start = trio.current_time()
      local scope = trio.CancelScope()
      scope:run(function()
        assert.equal(math.huge, scope.deadline)
        scope.deadline = start + 1
        assert.equal(start + 1, scope.deadline)
      end)
      assert.is_false(scope.cancel_called)
      mock_clock:jump(2)
      lowlevel.checkpoint()
      lowlevel.checkpoint()
      lowlevel.checkpoint()
      assert.is_false(scope.cancel_called)

      start = trio.current_time()
      scope = trio.CancelScope { deadline = start + 1 }
      scope:run(function()
        mock_clock:jump(2)
        sleep_forever()
      end)
      -- the scope swallowed the Cancelled, but we can see it here
      assert.is_true(scope.cancel_called)
      assert.is_true(scope.cancelled_caught)

      -- changing the deadline
      start = trio.current_time()
      scope = trio.CancelScope()
      scope:run(function()
        lowlevel.checkpoint()
        scope.deadline = start + 10
        lowlevel.checkpoint()
        mock_clock:jump(5)
        lowlevel.checkpoint()
        scope.deadline = start + 1
        H.raises(trio.Cancelled, lowlevel.checkpoint)
        H.raises(trio.Cancelled, lowlevel.checkpoint)
      end)
    end)
  end)

  it(P .. "test_cancel_scope_nesting", function()
    H.run(function()
      -- two nested scopes triggering at once: the outer one wins
      local scope1, scope2, scope3 = trio.CancelScope(), trio.CancelScope(), trio.CancelScope()
      scope1:run(function()
        scope2:run(function()
          scope3:run(function()
            scope3:cancel()
            scope2:cancel()
            sleep_forever()
          end)
        end)
      end)
      assert.is_true(scope3.cancel_called)
      assert.is_false(scope3.cancelled_caught)
      assert.is_true(scope2.cancel_called)
      assert.is_true(scope2.cancelled_caught)
      assert.is_false(scope1.cancel_called)
      assert.is_false(scope1.cancelled_caught)

      -- shielding
      scope1, scope2 = trio.CancelScope(), trio.CancelScope()
      scope1:run(function()
        scope2:run(function()
          scope1:cancel()
          H.raises(trio.Cancelled, lowlevel.checkpoint)
          H.raises(trio.Cancelled, lowlevel.checkpoint)
          scope2.shield = true
          lowlevel.checkpoint()
          scope2:cancel()
          H.raises(trio.Cancelled, lowlevel.checkpoint)
        end)
      end)

      -- a pending cancellation of a scope that is exited is not delivered
      local scope = trio.CancelScope()
      scope:run(function()
        scope:cancel()
        lowlevel.cancel_shielded_checkpoint()
      end)
      lowlevel.checkpoint()
      assert.is_false(scope.cancelled_caught)
    end)
  end)

  it(P .. "test_unshield_while_cancel_propagating", function()
    H.run(function()
      local outer, inner = trio.CancelScope(), trio.CancelScope()
      outer:run(function()
        inner:run(function()
          outer:cancel()
          local ok, e = pcall(lowlevel.checkpoint)
          inner.shield = true
          if not ok then error(e, 0) end
        end)
      end)
      assert.is_true(outer.cancelled_caught)
      assert.is_false(inner.cancelled_caught)
    end)
  end)

  it(P .. "test_cancel_unbound", function()
    H.run(function()
      local function sleep_until_cancelled(scope)
        scope:run(trio.fail_after, 1, sleep_forever)
      end

      -- cancel before entry
      local scope = trio.CancelScope()
      scope:cancel()
      trio.open_nursery(function(nursery) nursery:start_soon(sleep_until_cancelled, scope) end)

      -- cancel after entry
      scope = trio.CancelScope()
      trio.open_nursery(function(nursery)
        nursery:start_soon(sleep_until_cancelled, scope)
        wait_all_tasks_blocked()
        scope:cancel()
      end)

      -- shield before entry
      scope = trio.CancelScope()
      scope.shield = true
      local outer = trio.CancelScope()
      outer:run(function()
        scope:run(function()
          outer:cancel()
          lowlevel.checkpoint()
          scope.shield = false
          H.raises(trio.Cancelled, lowlevel.checkpoint)
        end)
      end)

      -- can't reuse
      scope = trio.CancelScope()
      scope:run(lowlevel.checkpoint)
      scope:cancel()
      lowlevel.checkpoint()
      assert.is_true(scope.cancel_called)
      assert.is_false(scope.cancelled_caught)
      H.raises(H.msg("may only be entered once"), scope.run, scope, function() end)

      -- can't reenter
      scope = trio.CancelScope()
      scope:run(function()
        H.raises(H.msg("may only be entered once"), scope.run, scope, function() end)
      end)

      -- can't enter from several tasks at once
      scope = trio.CancelScope()
      trio.open_nursery(function(nursery)
        nursery:start_soon(function() scope:run(sleep_forever) end)
        wait_all_tasks_blocked()
        H.raises(H.msg("may only be entered once"), scope.run, scope, function() end)
        nursery.cancel_scope:cancel()
      end)

      -- not entered yet: cancel_called is true once the deadline has
      -- passed, even if cancel() was not called
      scope = trio.CancelScope { deadline = trio.current_time() + 1 }
      assert.is_false(scope.cancel_called)
      scope.deadline = scope.deadline - 1
      assert.is_true(scope.cancel_called)
      scope.deadline = scope.deadline + 1
      assert.is_true(scope.cancel_called) -- never uncancelled
    end)
  end)

  it(P .. "test_timekeeping", function()
    -- a real clock for once; TARGET 0.5 s instead of 1 s, same tolerance
    local TARGET = 0.5
    H.run(function()
      local accuracy
      for _ = 1, 4 do
        local real_start = trio.current_time()
        local scope = trio.CancelScope()
        scope:run(function()
          scope.deadline = trio.current_time() + TARGET
          sleep_forever()
        end)
        accuracy = (trio.current_time() - real_start) / TARGET
        if accuracy >= 1.0 and accuracy < 2 then break end
      end
      assert(accuracy >= 1.0 and accuracy < 2, "accuracy " .. accuracy)
    end)
  end)

  it(P .. "test_failed_abort", function()
    local record = {}
    H.run(function()
      local stubborn_task, stubborn_scope
      local function stubborn_sleeper()
        stubborn_task = current_task()
        local scope = trio.CancelScope()
        scope:run(function()
          stubborn_scope = scope
          record[#record + 1] = "sleep"
          local x = lowlevel.wait_task_rescheduled(function() return lowlevel.Abort.FAILED end)
          assert.equal(1, x)
          record[#record + 1] = "woke"
          local ok, e = pcall(lowlevel.checkpoint_if_cancelled)
          if not ok and trio.Cancelled:is(e) then record[#record + 1] = "cancelled" end
        end)
      end
      trio.open_nursery(function(nursery)
        nursery:start_soon(stubborn_sleeper)
        wait_all_tasks_blocked()
        assert.same({ "sleep" }, record)
        stubborn_scope:cancel()
        wait_all_tasks_blocked()
        -- the cancel didn't wake it
        assert.same({ "sleep" }, record)
        -- wake it by hand
        lowlevel.reschedule(stubborn_task, true, 1)
      end)
    end)
    assert.same({ "sleep", "woke", "cancelled" }, record)
  end)

  it(P .. "test_broken_abort", function()
    H.raises(trio.TrioInternalError, H.run, function()
      lowlevel.checkpoint()
      lowlevel.checkpoint()
      local scope = trio.CancelScope()
      scope:run(function()
        scope:cancel()
        -- nil is not a legal answer
        lowlevel.wait_task_rescheduled(function() return nil end)
      end)
    end)
  end)

  it(P .. "test_spawn_system_task", function()
    local record = {}
    H.run(function()
      lowlevel.spawn_system_task(function(x)
        record[#record + 1] = "x=" .. x
        lowlevel.checkpoint()
      end, 1)
      wait_all_tasks_blocked()
    end)
    assert.same({ "x=1" }, record)
  end)

  it(P .. "test_system_task_crash", function()
    local e = H.raises(trio.TrioInternalError, H.run, function()
      lowlevel.spawn_system_task(function() error(KeyError()) end)
      sleep_forever()
    end)
    assert.is_true(KeyError:is(e.cause))
  end)

  it(P .. "test_system_task_crash_ExceptionGroup", function()
    local e = H.raises(trio.TrioInternalError, H.run, function()
      lowlevel.spawn_system_task(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(function() error(KeyError()) end)
          nursery:start_soon(function() error(ValueError()) end)
        end)
      end)
      sleep_forever()
    end)
    -- TrioInternalError itself is not wrapped; its cause is the task's error
    H.assert_group(e.cause, KeyError, ValueError)
  end)

  it(P .. "test_system_task_crash_plus_Cancelled", function()
    -- a system task crashing with a group of Cancelled and ValueError
    local e = H.raises(trio.TrioInternalError, H.run, function()
      lowlevel.spawn_system_task(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(function()
            local ok, err = pcall(sleep_forever)
            if not ok and trio.Cancelled:is(err) then error(ValueError()) end
          end)
          nursery:start_soon(sleep_forever)
        end)
      end)
      -- then we exit, which cancels the system tasks
    end)
    H.assert_group(e.cause, ValueError)
  end)

  it(P .. "test_system_task_crash_KeyboardInterrupt", function()
    local e = H.raises(trio.TrioInternalError, H.run, function()
      lowlevel.spawn_system_task(function() error(trio.KeyboardInterrupt()) end)
      sleep_forever()
    end)
    assert.is_true(trio.KeyboardInterrupt:is(e.cause))
  end)

  it(P .. "test_yield_briefly_checks_for_timeout", function()
    local mock_clock = H.mock_clock()
    H.run({ clock = mock_clock }, function()
      trio.CancelScope { deadline = trio.current_time() + 5 }:run(function()
        lowlevel.checkpoint()
        mock_clock:jump(10)
        H.raises(trio.Cancelled, lowlevel.checkpoint)
      end)
    end)
  end)

  it(P .. "test_TrioToken_identity", function()
    local function get_and_check_token()
      local token = lowlevel.current_trio_token()
      -- the same object within a run
      assert.equal(token, lowlevel.current_trio_token())
      return token
    end
    local t1 = H.run(get_and_check_token)
    local t2 = H.run(get_and_check_token)
    assert.is_false(rawequal(t1, t2))
    assert.are_not.equal(t1, t2)
  end)

  it(P .. "test_TrioToken_run_sync_soon_basic", function()
    H.run(function()
      local record = {}
      local token = lowlevel.current_trio_token()
      token:run_sync_soon(function(x) record[#record + 1] = "cb" .. x end, 1)
      assert.same({}, record)
      wait_all_tasks_blocked()
      assert.same({ "cb1" }, record)
    end)
  end)

  it(P .. "test_TrioToken_run_sync_soon_too_late", function()
    local token = H.run(function() return lowlevel.current_trio_token() end)
    H.raises(trio.RunFinishedError, token.run_sync_soon, token, function() end)
  end)

  it(P .. "test_TrioToken_run_sync_soon_idempotent", function()
    H.run(function()
      local record = {}
      local function cb(x) record[#record + 1] = x end
      local token = lowlevel.current_trio_token()
      token:run_sync_soon(cb, 1)
      token:run_sync_soon(cb, 1, { idempotent = true })
      token:run_sync_soon(cb, 1, { idempotent = true })
      token:run_sync_soon(cb, 1, { idempotent = true })
      token:run_sync_soon(cb, 2, { idempotent = true })
      token:run_sync_soon(cb, 2, { idempotent = true })
      wait_all_tasks_blocked()
      assert.equal(3, #record)
      assert.same({ 1, 1, 2 }, H.sorted(record))
      -- FIFO
      record = {}
      for _ = 1, 3 do
        for i = 0, 99 do token:run_sync_soon(cb, i, { idempotent = true }) end
      end
      wait_all_tasks_blocked()
      assert.same(H.range(0, 99), record)
    end)
  end)

  it(P .. "test_TrioToken_run_sync_soon_idempotent_requeue", function()
    local record = {}
    local function redo(token)
      record[#record + 1] = true
      pcall(token.run_sync_soon, token, redo, token, { idempotent = true })
    end
    H.run(function()
      local token = lowlevel.current_trio_token()
      token:run_sync_soon(redo, token, { idempotent = true })
      lowlevel.checkpoint()
      lowlevel.checkpoint()
      lowlevel.checkpoint()
    end)
    assert.is_true(#record >= 2)
  end)

  it(P .. "test_TrioToken_run_sync_soon_after_main_crash", function()
    local record = {}
    H.raises(function(e) return ValueError:is(e) and e.message == "error text" end, H.run, function()
      local token = lowlevel.current_trio_token()
      -- queued before main exits: runs before the run ends
      token:run_sync_soon(function() record[#record + 1] = "sync-cb" end)
      error(ValueError("error text"))
    end)
    assert.same({ "sync-cb" }, record)
  end)

  it(P .. "test_TrioToken_run_sync_soon_crashes", function()
    local record = {}
    local e = H.raises(trio.TrioInternalError, H.run, function()
      local token = lowlevel.current_trio_token()
      token:run_sync_soon(function() error(KeyError("nope")) end)
      -- a crashing callback doesn't stop the next ones
      token:run_sync_soon(function() record["2nd run_sync_soon ran"] = true end)
      local ok, err = pcall(sleep_forever)
      if not ok and trio.Cancelled:is(err) then record["cancelled!"] = true end
    end)
    assert.is_true(KeyError:is(e.cause))
    assert.same({ ["2nd run_sync_soon ran"] = true, ["cancelled!"] = true }, record)
  end)

  it(P .. "test_TrioToken_run_sync_soon_FIFO", function()
    H.run(function()
      local N, record = 100, {}
      local token = lowlevel.current_trio_token()
      for i = 0, N - 1 do
        token:run_sync_soon(function(j) record[#record + 1] = j end, i)
      end
      wait_all_tasks_blocked()
      assert.same(H.range(0, N - 1), record)
    end)
  end)

  it(P .. "test_TrioToken_run_sync_soon_starvation_resistance", function()
    -- callbacks queueing callbacks cannot starve the tasks
    local token
    local record = {}
    local function naughty_cb(i)
      local ok, e = pcall(token.run_sync_soon, token, naughty_cb, i + 1)
      if not ok then
        assert(trio.RunFinishedError:is(e), tostring(e))
        record[#record + 1] = { "run finished", i }
      end
    end
    H.run(function()
      token = lowlevel.current_trio_token()
      token:run_sync_soon(naughty_cb, 0)
      record[#record + 1] = { "starting", 0 }
      for _ = 1, 20 do lowlevel.checkpoint() end
    end)
    assert.equal(2, #record)
    assert.same({ "starting", 0 }, record[1])
    assert.equal("run finished", record[2][1])
    assert.is_true(record[2][2] >= 19)
  end)

  pending(P .. "test_TrioToken_run_sync_soon_threaded_stress_test [feature missing: trio.from_thread "
    .. "(a worker thread gets copies of plain values, not the TrioToken)]", function()
    local cb_counter = 0
    H.run(function()
      local token = lowlevel.current_trio_token()
      local thread = trio.to_thread.start(function()
        while pcall(token.run_sync_soon, token, function() cb_counter = cb_counter + 1 end) do end
      end)
      for _ = 1, 10 do
        local start_value = cb_counter
        while cb_counter == start_value do trio.sleep(0.01) end
      end
      assert(thread)
    end)
  end)

  it(P .. "test_TrioToken_run_sync_soon_massive_queue", function()
    H.run(function()
      local COUNT = 1000
      local token = lowlevel.current_trio_token()
      local counter = 0
      local function cb(i)
        -- also FIFO
        assert.equal(counter, i)
        counter = counter + 1
      end
      for i = 0, COUNT - 1 do token:run_sync_soon(cb, i) end
      wait_all_tasks_blocked()
      assert.equal(COUNT, counter)
    end)
  end)

  it(P .. "test_slow_abort_basic", function()
    H.run(function()
      local scope = trio.CancelScope()
      scope:run(function()
        scope:cancel()
        local task = current_task()
        local token = lowlevel.current_trio_token()
        local function slow_abort(raise_cancel)
          local ok, e = pcall(raise_cancel)
          token:run_sync_soon(lowlevel.reschedule, task, ok, e)
          return lowlevel.Abort.FAILED
        end
        H.raises(trio.Cancelled, lowlevel.wait_task_rescheduled, slow_abort)
      end)
    end)
  end)

  it(P .. "test_slow_abort_edge_cases", function()
    local record = {}
    H.run(function()
      local function slow_aborter()
        local task = current_task()
        local token = lowlevel.current_trio_token()
        local function slow_abort(raise_cancel)
          record[#record + 1] = "abort-called"
          local ok, e = pcall(raise_cancel)
          token:run_sync_soon(lowlevel.reschedule, task, ok, e)
          return lowlevel.Abort.FAILED
        end
        record[#record + 1] = "sleeping"
        H.raises(trio.Cancelled, lowlevel.wait_task_rescheduled, slow_abort)
        record[#record + 1] = "cancelled"
        -- blocking again is fine: we are shielded now
        lowlevel.checkpoint()
        record[#record + 1] = "done"
      end
      local outer1, outer2 = trio.CancelScope(), trio.CancelScope()
      outer1:run(function()
        outer2:run(function()
          trio.open_nursery(function(nursery)
            -- a task blocked in an operation that cannot be aborted at once
            nursery:start_soon(slow_aborter)
            wait_all_tasks_blocked()
            assert.same({ "sleeping" }, record)
            -- cancelling it runs the abort function
            outer1:cancel()
            assert.same({ "sleeping", "abort-called" }, record)
            -- a second cancel doesn't run it again
            outer2:cancel()
            assert.same({ "sleeping", "abort-called" }, record)
            -- and before the abort finishes, the task gets shielded
            nursery.cancel_scope.shield = true
          end)
        end)
      end)
      -- the cancellation was delivered, even though it was shielded
      assert.same({ "sleeping", "abort-called", "cancelled", "done" }, record)
    end)
  end)

  it(P .. "test_task_tree_introspection", function()
    local tasks, nurseries = {}, {}
    H.run(function()
      local child2
      local function child1(task_status)
        local me = current_task()
        tasks.child1 = me
        assert.equal(tasks.parent, me.parent_nursery.parent_task)
        assert.are_not.equal(nurseries.parent, me.parent_nursery)
        assert.equal(nurseries.parent, me.eventual_parent_nursery)
        task_status:started()
        assert.equal(nurseries.parent, me.parent_nursery)
        assert.is_nil(me.eventual_parent_nursery)
        -- let start() return and close its own nursery first
        wait_all_tasks_blocked()
        trio.open_nursery(function(nursery)
          nurseries.child1 = nursery
          nursery:start_soon(child2)
        end)
      end
      function child2()
        tasks.child2 = current_task()
        assert.same({ nurseries.parent }, tasks.parent.child_nurseries)
        assert.same({ tasks.child1 }, nurseries.parent.child_tasks)
        assert.same({ nurseries.child1 }, tasks.child1.child_nurseries)
        assert.same({ tasks.child2 }, nurseries.child1.child_tasks)
        assert.same({}, tasks.child2.child_nurseries)
      end
      local function parent()
        tasks.parent = current_task()
        assert.same({}, tasks.parent.child_nurseries)
        trio.open_nursery(function(nursery1)
          trio.open_nursery(function(nursery2)
            assert.same({ nursery1, nursery2 }, tasks.parent.child_nurseries)
          end)
        end)
        assert.same({}, tasks.parent.child_nurseries)
        trio.open_nursery(function(nursery)
          nurseries.parent = nursery
          nursery:start(child1)
        end)
        -- upward links survive the exit of tasks and nurseries
        assert.equal(tasks.parent, nurseries.parent.parent_task)
        assert.equal(nurseries.parent, tasks.child1.parent_nursery)
        assert.equal(tasks.child1, nurseries.child1.parent_task)
        assert.equal(nurseries.child1, tasks.child2.parent_nursery)
        -- following the chain ends with nil, not an error
        local nursery = current_task().parent_nursery
        while nursery ~= nil do nursery = nursery.parent_task.parent_nursery end
      end
      trio.open_nursery(function(nursery) nursery:start_soon(parent) end)
    end)
    -- no start is pending: nobody has an eventual_parent_nursery
    for _, task in pairs(tasks) do assert.is_nil(task.eventual_parent_nursery) end
  end)

  it(P .. "test_nursery_closure", function()
    H.run(function()
      local function child2() end
      local nursery
      trio.open_nursery(function(n)
        nursery = n
        -- tasks may still be added while the nursery waits at its end, as
        -- long as some are running
        n:start_soon(function() n:start_soon(child2) end)
      end)
      -- once it is left, the nursery is closed
      H.raises(H.msg("closed"), nursery.start_soon, nursery, child2)
    end)
  end)

  it(P .. "test_spawn_name", function()
    local function func1(expected)
      local name = current_task().name
      assert(name:find(expected, 1, true), ("%q not in %q"):format(expected, name))
    end
    local line = debug.getinfo(func1, "S").linedefined
    local where = "trio_test_run_spec.lua:" .. line
    H.run(function()
      trio.open_nursery(function(nursery)
        nursery:start_soon(func1, where)
        -- an explicit name (start_soon returns no task: named from inside)
        nursery:start_soon(function()
          current_task().name = "func3"
          func1("func3")
        end)
      end)
      local t = lowlevel.spawn_system_task(func1, where)
      assert.truthy(t.name:find(where, 1, true))
      local t2 = lowlevel.spawn_system_task(function()
        lowlevel.checkpoint()
        func1("func3")
      end)
      t2.name = "func3"
      wait_all_tasks_blocked()
    end)
  end)

  it(P .. "test_current_effective_deadline", function()
    H.run({ clock = H.mock_clock() }, function()
      assert.equal(math.huge, trio.current_effective_deadline())
      local scope1, scope2 = trio.CancelScope { deadline = 5 }, trio.CancelScope { deadline = 10 }
      scope1:run(function()
        scope2:run(function()
          assert.equal(5, trio.current_effective_deadline())
          scope2.deadline = 3
          assert.equal(3, trio.current_effective_deadline())
          scope2.deadline = 10
          assert.equal(5, trio.current_effective_deadline())
          scope2.shield = true
          assert.equal(10, trio.current_effective_deadline())
          scope2.shield = false
          assert.equal(5, trio.current_effective_deadline())
          scope1:cancel()
          assert.equal(-math.huge, trio.current_effective_deadline())
          scope2.shield = true
          assert.equal(10, trio.current_effective_deadline())
        end)
        assert.equal(-math.huge, trio.current_effective_deadline())
      end)
      assert.equal(math.huge, trio.current_effective_deadline())
    end)
  end)

  it(P .. "test_nice_error_on_bad_calls_to_run_or_spawn", function()
    -- Lua's counterparts of "a coroutine object instead of an async
    -- function": a coroutine, and a value that is not callable
    local co = coroutine.create(function() end)
    H.raises(H.msg("function expected"), trio.run, co)
    H.raises(H.msg("function expected"), trio.run, 0)
    -- start_soon raises inside the nursery, so the error comes in a group
    for _, bad in ipairs { co, 0 } do
      H.raises_group(function()
        H.run(function()
          trio.open_nursery(function(nursery) nursery:start_soon(bad) end)
        end)
      end, H.msg("function expected"))
    end
  end)

  it(P .. "test_calling_asyncio_function_gives_nice_error", function()
    local line
    local function child_xyzzy()
      local loop = asyncio.new_event_loop()
      local fut = loop:create_future()
      line = debug.getinfo(1, "l").currentline + 1
      local ok, e = pcall(fut.await, fut)
      loop:close()
      if not ok then error(e, 0) end
    end
    local e = H.raises(H.any, H.run, function() child_xyzzy() end)
    local s = tostring(e)
    assert.truthy(s:find("asyncio", 1, true), s)
    -- the message points at the foreign await
    assert.truthy(s:find("trio_test_run_spec.lua:" .. line, 1, true), s)
  end)

  it(P .. "test_asyncio_function_inside_nursery_does_not_explode", function()
    H.raises_group(function()
      H.run(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(sleep_forever)
          local loop = asyncio.new_event_loop()
          local fut = loop:create_future()
          local ok, e = pcall(fut.await, fut)
          loop:close()
          if not ok then error(e, 0) end
        end)
      end)
    end, H.msg("asyncio"))
  end)

  it(P .. "test_trivial_yields", function()
    H.run(function()
      H.assert_checkpoints(lowlevel.checkpoint)
      H.assert_checkpoints(function()
        lowlevel.checkpoint_if_cancelled()
        lowlevel.cancel_shielded_checkpoint()
      end)

      -- opening and closing a nursery schedules, but doesn't check for
      -- cancellation (unless something inside does)
      local cs = trio.CancelScope()
      H.assert_checkpoints(function()
        cs:run(function()
          cs:cancel()
          trio.open_nursery(function() end)
        end)
      end)
      assert.is_false(cs.cancelled_caught)

      cs = trio.CancelScope()
      H.assert_checkpoints(function()
        cs:run(function()
          cs:cancel()
          trio.open_nursery(function(nursery) nursery:start_soon(function() end) end)
        end)
      end)
      assert.is_false(cs.cancelled_caught)

      local cancel_scope = trio.CancelScope()
      cancel_scope:run(function()
        cancel_scope:cancel()
        H.raises_group(function()
          trio.open_nursery(function() error(KeyError()) end)
        end, KeyError)
      end)
    end)
  end)

  it(P .. "test_nursery_start", function()
    H.run({ clock = H.mock_clock(0) }, function()
      local function sleep_then_start(seconds, task_status)
        assert.equal("string", type(tostring(task_status)))
        trio.sleep(seconds)
        task_status:started(seconds)
        trio.sleep(seconds)
      end

      -- start waits for started(), returns its value, and the nursery then
      -- waits for the task to exit
      for _, seconds in ipairs { 1, 2 } do
        local t0
        trio.open_nursery(function(nursery)
          assert.equal(0, count(nursery.child_tasks))
          t0 = trio.current_time()
          assert.equal(seconds, nursery:start(sleep_then_start, seconds))
          assert.equal(seconds, trio.current_time() - t0)
          assert.equal(1, count(nursery.child_tasks))
        end)
        assert.equal(2 * seconds, trio.current_time() - t0)
      end

      -- TASK_STATUS_IGNORED lets the function be called directly
      local t0 = trio.current_time()
      sleep_then_start(3, trio.TASK_STATUS_IGNORED)
      assert.equal(2 * 3, trio.current_time() - t0)

      -- calling started twice
      trio.open_nursery(function(nursery)
        nursery:start(function(task_status)
          task_status:started()
          H.raises(trio.RuntimeError, task_status.started, task_status)
        end)
      end)

      -- the task crashes before started(): the error comes out of start()
      trio.open_nursery(function(nursery)
        H.raises(KeyError, nursery.start, nursery, function() error(KeyError("oops")) end)
      end)

      -- the task exits cleanly before started(): RuntimeError
      trio.open_nursery(function(nursery)
        local e = H.raises(trio.RuntimeError, nursery.start, nursery, function() end)
        assert.truthy(tostring(e):find("exited without calling", 1, true))
      end)

      -- start() cancelled: started() does nothing, the task goes on under
      -- start(), its value is ignored and start() raises Cancelled
      local function just_started(task_status)
        task_status:started("hi")
        lowlevel.checkpoint()
      end
      trio.open_nursery(function(nursery)
        local cs = trio.CancelScope()
        cs:run(function()
          cs:cancel()
          H.raises(trio.Cancelled, nursery.start, nursery, just_started)
        end)
      end)

      -- but a task that exits without a checkpoint completed: no Cancelled
      trio.open_nursery(function(nursery)
        local cs = trio.CancelScope()
        cs:run(function()
          cs:cancel()
          nursery:start(function(task_status) task_status:started(nil) end)
        end)
        assert.is_false(cs.cancelled_caught)
      end)

      -- and since started() did nothing, an error after it still comes out
      -- of start()
      trio.open_nursery(function(nursery)
        local cs = trio.CancelScope()
        cs:run(function()
          cs:cancel()
          H.raises(KeyError, nursery.start, nursery, function(task_status)
            task_status:started()
            error(KeyError("whoopsiedaisy"))
          end)
        end)
      end)

      -- starting in a closed nursery raises at once
      local closed_nursery
      trio.open_nursery(function(n) closed_nursery = n end)
      t0 = trio.current_time()
      H.raises(trio.RuntimeError, closed_nursery.start, closed_nursery, sleep_then_start, 7)
      assert.equal(math.floor(t0), math.floor(trio.current_time()))
    end)
  end)

  it(P .. "test_task_nursery_stack", function()
    H.run(function()
      local task = current_task()
      assert.same({}, task.child_nurseries)
      trio.open_nursery(function(nursery1)
        assert.same({ nursery1 }, task.child_nurseries)
        H.raises_group(function()
          trio.open_nursery(function(nursery2)
            assert.same({ nursery1, nursery2 }, task.child_nurseries)
            error(KeyError())
          end)
        end, KeyError)
        assert.same({ nursery1 }, task.child_nurseries)
      end)
      assert.same({}, task.child_nurseries)
    end)
  end)

  it(P .. "test_nursery_start_with_cancelled_nursery", function()
    H.run(function()
      -- task_status gives us a nursery to spawn into
      local function setup_nursery(task_status)
        trio.open_nursery(function(nursery)
          task_status:started(nursery)
          sleep_forever()
        end)
      end
      -- calls started() while its children sleep: moving sleeping tasks
      -- into a cancelled scope must abort their sleep
      local function sleeping_children(fn, task_status)
        trio.open_nursery(function(nursery)
          nursery:start_soon(sleep_forever)
          nursery:start_soon(sleep_forever)
          wait_all_tasks_blocked()
          fn()
          task_status:started()
        end)
      end

      -- cancelling the setup nursery just before started()
      trio.open_nursery(function(nursery)
        local target_nursery = nursery:start(setup_nursery)
        target_nursery:start(sleeping_children, function() target_nursery.cancel_scope:cancel() end)
      end)

      -- and just after started()
      trio.open_nursery(function(nursery)
        local target_nursery = nursery:start(setup_nursery)
        target_nursery:start(sleeping_children, function() end)
        target_nursery.cancel_scope:cancel()
      end)
    end)
  end)

  it(P .. "test_nursery_start_keeps_nursery_open", function()
    H.run({ clock = H.mock_clock(0) }, function()
      local function sleep_a_bit(task_status)
        trio.sleep(2)
        task_status:started()
        trio.sleep(3)
      end
      trio.open_nursery(function(nursery1)
        local t0 = trio.current_time()
        trio.open_nursery(function(nursery2)
          -- a start call running in the background
          nursery1:start_soon(nursery2.start, nursery2, sleep_a_bit)
          trio.sleep(1)
          -- and another one
          nursery1:start_soon(nursery2.start, nursery2, sleep_a_bit)
          -- then leave this nursery: no task is in it yet, only the pending
          -- starts keep it open
        end)
        assert.equal(6, trio.current_time() - t0)
      end)

      -- also when the awaited task crashes and never enters the nursery
      local function sleep_then_crash()
        trio.sleep(7)
        error(KeyError())
      end
      local function start_sleep_then_crash(nursery)
        H.raises(KeyError, nursery.start, nursery, sleep_then_crash)
      end
      trio.open_nursery(function(nursery1)
        local t0 = trio.current_time()
        trio.open_nursery(function(nursery2)
          nursery1:start_soon(start_sleep_then_crash, nursery2)
          wait_all_tasks_blocked()
        end)
        assert.equal(7, trio.current_time() - t0)
      end)
    end)
  end)

  it(P .. "test_nursery_explicit_exception", function()
    H.run(function()
      H.raises_group(function()
        trio.open_nursery(function() error(KeyError()) end)
      end, KeyError)
    end)
  end)

  it(P .. "test_nursery_stop_iteration", function()
    -- StopIteration is an ordinary error class here
    H.run(function()
      H.raises_group(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(function() error(ValueError()) end)
          error(H.StopIteration())
        end)
      end, H.StopIteration, ValueError)
    end)
  end)

  it(P .. "test_traceback_frame_removal", function()
    local function my_child_task() error(KeyError()) end
    local where = "trio_test_run_spec.lua:" .. debug.getinfo(my_child_task, "S").linedefined
    H.run(function()
      H.raises_group(function()
        trio.open_nursery(function(nursery) nursery:start_soon(my_child_task) end)
      end, function(e)
        -- the first frame of the traceback is the child task, not runtime
        -- internals
        local first = e.traceback:match("\n%s*([^\n]+)")
        return KeyError:is(e) and first ~= nil and first:find(where, 1, true) ~= nil
      end)
    end)
  end)

  it(P .. "test_contextvar_support", function()
    local var = trio.ContextVar("test")
    local token = var:set("before")
    assert.equal("before", var:get())
    H.run(function()
      assert.equal("before", var:get())
      var:set("after")
      assert.equal("after", var:get())
    end)
    assert.equal("before", var:get())
    var:reset(token)
  end)

  it(P .. "test_contextvar_multitask", function()
    H.run(function()
      local var = trio.ContextVar("test", "hmmm")
      trio.open_nursery(function(n)
        n:start_soon(function()
          assert.equal("hmmm", var:get())
          var:set("hmmmm")
          assert.equal("hmmmm", var:get())
        end)
        wait_all_tasks_blocked()
        assert.equal("hmmm", var:get())
        var:set("hmmmm")
        n:start_soon(function() assert.equal("hmmmm", var:get()) end)
        wait_all_tasks_blocked()
      end)
    end)
  end)

  it(P .. "test_system_task_contexts", function()
    local cvar = trio.ContextVar("qwilfish")
    local token = cvar:set("water")
    local ok, e = pcall(H.run, function()
      trio.open_nursery(function(nursery)
        cvar:set("poison")
        nursery:start_soon(function() assert.equal("poison", cvar:get()) end)
        -- system tasks start from the context the run started in
        lowlevel.spawn_system_task(function() assert.equal("water", cvar:get()) end)
        wait_all_tasks_blocked()
      end)
    end)
    cvar:reset(token)
    if not ok then error(e, 0) end
  end)

  it(P .. "test_sniffio_integration", function()
    -- sniffio.current_async_library() is trio.lowlevel.current_flavor()
    -- here: nil outside a run, "trio" in every task of a Trio run (new
    -- tasks do not inherit another library's setting)
    assert.is_nil(lowlevel.current_flavor())
    local seen = {}
    local function check_inside_trio() seen[#seen + 1] = lowlevel.current_flavor() end
    H.run(check_inside_trio)
    assert.is_nil(lowlevel.current_flavor())
    H.run(function()
      lowlevel.spawn_system_task(check_inside_trio)
      trio.open_nursery(function(nursery) nursery:start_soon(check_inside_trio) end)
    end)
    assert.same({ "trio", "trio", "trio" }, seen)
  end)

  it(P .. "test_Task_custom_sleep_data", function()
    H.run(function()
      local task = current_task()
      assert.is_nil(task.custom_sleep_data)
      task.custom_sleep_data = 1
      assert.equal(1, task.custom_sleep_data)
      lowlevel.checkpoint()
      assert.is_nil(task.custom_sleep_data)
    end)
  end)

  it(P .. "test_async_function_implemented_in_C", function()
    -- a task whose function is a C function (the counterpart of an async
    -- function implemented in C): as the main task and as a child
    assert.equal(0, select("#", H.run(lowlevel.checkpoint)))
    H.run(function()
      trio.open_nursery(function(nursery)
        nursery:start_soon(lowlevel.checkpoint)
        nursery:start_soon(trio.sleep, 0)
      end)
    end)
  end)

  -- Upstream nests 5000 scopes.  Here each scope:run is a pcall level, and
  -- Lua 5.4 allows about 200 nested C calls: the depth is bounded (see
  -- docs/SEMANTICS.md).  What we check: nesting as deep as the bound
  -- allows works and the outermost cancel reaches the innermost, and going
  -- past it fails with a clean error, not a crash.
  it(P .. "test_very_deep_cancel_scope_nesting (bounded by the C-call limit, SEMANTICS.md)", function()
    local DEPTH = 150
    H.run(function()
      local outermost = trio.CancelScope()
      local reached = 0
      outermost:run(function()
        local function nest(n)
          if n == 0 then
            outermost:cancel()
            H.raises(trio.Cancelled, lowlevel.checkpoint)
            reached = DEPTH
            return
          end
          trio.CancelScope():run(nest, n - 1)
        end
        nest(DEPTH)
      end)
      assert.equal(DEPTH, reached)
      assert.is_false(outermost.cancelled_caught)
    end)
    local e = H.raises(H.any, H.run, function()
      local function nest(n)
        if n == 0 then return end
        trio.CancelScope():run(nest, n - 1)
      end
      nest(5000)
    end)
    assert.truthy(tostring(e):find("nested too deep", 1, true), tostring(e))
  end)

  it(P .. "test_cancel_scope_deadline_duplicates", function()
    -- many deadline changes of one scope (duplicate entries in Trio's
    -- deadline heap)
    H.run(function()
      local now = trio.current_time()
      trio.CancelScope():run(function()
        local cscope = trio.CancelScope()
        cscope:run(function()
          for _ = 1, 2000 do
            cscope.deadline = now + 9998
            cscope.deadline = now + 9999
          end
          trio.sleep(0.01)
        end)
        assert.is_false(cscope.cancel_called)
      end)
    end)
  end)

  -- test_setting_strict_exception_groups[multiple-open_nursery_strict-run_strict]:
  -- only the strict parametrizations (True or None, our only mode).
  for _, multiple in ipairs { true, false } do
    for _, nursery_strict in ipairs { "True", "None" } do
      for _, run_strict in ipairs { "True", "None" } do
        local id = ("[%s-%s-%s]"):format(multiple and "True" or "False", nursery_strict, run_strict)
        it(P .. "test_setting_strict_exception_groups" .. id, function()
          local matcher = function(e) return trio.RuntimeError:is(e) and e.message == "test error" end
          local function main()
            trio.open_nursery(function(nursery)
              nursery:start_soon(function() error(trio.RuntimeError("test error")) end)
              if multiple then
                nursery:start_soon(function() error(trio.RuntimeError("test error")) end)
              end
            end)
          end
          if multiple then
            H.raises_group(function() H.run(main) end, matcher, matcher)
          else
            H.raises_group(function() H.run(main) end, matcher)
          end
        end)
      end
    end
  end

  for _, strict in ipairs { "True", "None" } do
    it(P .. "test_nursery_collapse[" .. strict .. "]", function()
      -- a single error from a nested nursery, once its Cancelled are
      -- stripped, stays wrapped (strict)
      H.run(function()
        local function raise_error() error(trio.RuntimeError("test error")) end
        H.raises_group(function()
          trio.open_nursery(function(nursery)
            nursery:start_soon(sleep_forever)
            nursery:start_soon(raise_error)
            trio.open_nursery(function(nursery2)
              nursery2:start_soon(sleep_forever)
              nursery2:start_soon(raise_error)
              nursery.cancel_scope:cancel()
            end)
          end)
        end, trio.RuntimeError, H.group(trio.RuntimeError))
      end)
    end)
  end

  it(P .. "test_cancel_scope_no_cancellederror", function()
    -- a group without Cancelled does not set cancelled_caught
    H.run(function()
      local scope = trio.CancelScope()
      H.raises_group(function()
        scope:run(function()
          scope:cancel()
          error(trio.ExceptionGroup("test", { trio.RuntimeError(), trio.RuntimeError() }))
        end)
      end, { message = "test" }, trio.RuntimeError, trio.RuntimeError)
      assert.is_false(scope.cancelled_caught)
    end)
  end)

  -- test_trio_run_strict_before_started
  -- [raise_custom_exc_grp-raise_after_started-start_raiser_strict-run_strict]:
  -- the strict parametrizations (run_strict True, start_raiser_strict True
  -- or None).
  for _, custom in ipairs { false, true } do
    for _, after in ipairs { false, true } do
      for _, start_strict in ipairs { "True", "None" } do
        local id = ("[%s-%s-%s-True]"):format(tostring(custom):gsub("^%l", string.upper),
          (tostring(after):gsub("^%l", string.upper)), start_strict)
        it(P .. "test_trio_run_strict_before_started" .. id, function()
          local raiser_exc
          if custom then
            raiser_exc = trio.ExceptionGroup("my group", { ValueError() })
          else
            raiser_exc = ValueError()
          end
          local function raiser(task_status)
            if after then task_status:started() end
            error(raiser_exc, 0)
          end
          local function start_raiser()
            local ok, exc_group = pcall(trio.open_nursery, function(nursery)
              nursery:start(raiser)
            end)
            if ok then return end
            if trio.ExceptionGroup:is(exc_group) and start_strict == "True" then
              -- the nursery was strict by choice: it may replace the group
              error(trio.ExceptionGroup("start_raiser nursery custom message", exc_group.exceptions), 0)
            end
            error(exc_group, 0)
          end
          local e = H.raises(H.any, H.run, start_raiser)
          -- start_raiser's nursery was strict
          assert.is_true(trio.ExceptionGroup:is(e))
          if start_strict == "True" then
            assert.equal("start_raiser nursery custom message", e.message)
          end
          assert.equal(1, #e.exceptions)
          local should_be_raiser_exc = e.exceptions[1]
          if not custom then
            assert.equal(raiser_exc, should_be_raiser_exc)
          else
            assert.is_true(trio.ExceptionGroup:is(should_be_raiser_exc))
            assert.equal(raiser_exc.message, should_be_raiser_exc.message)
            assert.same(raiser_exc.exceptions, should_be_raiser_exc.exceptions)
          end
        end)
      end
    end
  end

  it(P .. "test_start_exception_preserves_cause_and_context", function()
    -- an error raised before started() keeps its cause (Lua errors have no
    -- implicit context)
    H.run(function()
      local function task()
        error(ValueError { message = "foo", cause = trio.RuntimeError("bar") })
      end
      H.raises_group(function()
        trio.open_nursery(function(nursery) nursery:start(task) end)
      end, function(e)
        return ValueError:is(e) and trio.RuntimeError:is(e.cause) and e.cause.message == "bar"
      end)
    end)
  end)

  it(P .. "test_internal_error_old_nursery_multiple_tasks", function()
    H.run(function()
      local function error_func() error(ValueError()) end
      local function spawn_tasks_in_old_nursery()
        local old_nursery = current_task().parent_nursery
        assert.is_not_nil(old_nursery)
        old_nursery:start_soon(error_func)
        old_nursery:start_soon(error_func)
      end
      trio.open_nursery(function(nursery)
        local e = H.raises(trio.TrioInternalError, nursery.start, nursery, spawn_tasks_in_old_nursery)
        H.assert_group(e.cause, ValueError, ValueError)
      end)
    end)
  end)

  it(P .. "test_trio_context_detection", function()
    assert.is_false(lowlevel.in_trio_run())
    assert.is_false(lowlevel.in_trio_task())
    H.run(function()
      assert.is_true(lowlevel.in_trio_run())
      assert.is_true(lowlevel.in_trio_task())
      -- a worker thread runs in a Lua state of its own, with no run in it:
      -- there trio refuses to be used at all (docs/SEMANTICS.md)
      local ok, err = trio.to_thread.run_sync(function()
        return pcall(function() return require("trio").lowlevel.in_trio_run() end)
      end)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("worker thread", 1, true))
      trio.CancelScope { deadline = trio.current_time() - 1 }:run(function()
        lowlevel.wait_task_rescheduled(function()
          assert.is_true(lowlevel.in_trio_run())
          assert.is_true(lowlevel.in_trio_task())
          return lowlevel.Abort.SUCCEEDED
        end)
      end)
    end)
  end)
end)

-- The failures issue #11 lists for Trio that the tests above do not pin
-- down by themselves.
describe("Trio issue #11", function()
  it("a scope that strips Cancelled from a group holding other errors sets cancelled_caught", function()
    H.run(function()
      local scope = trio.CancelScope()
      H.raises_group(function()
        scope:run(function()
          trio.open_nursery(function(nursery)
            nursery:start_soon(sleep_forever)
            nursery:start_soon(function()
              wait_all_tasks_blocked()
              scope:cancel()
              error(KeyError())
            end)
            sleep_forever()
          end)
        end)
      end, KeyError)
      assert.is_true(scope.cancelled_caught)
    end)
  end)

  it("an unentered scope whose deadline was moved into the past reports cancel_called", function()
    H.run(function()
      local scope = trio.CancelScope()
      assert.is_false(scope.cancel_called)
      scope.deadline = trio.current_time() - 1
      assert.is_true(scope.cancel_called)
      -- and entering it cancels the body at once
      scope:run(lowlevel.checkpoint)
      assert.is_true(scope.cancelled_caught)
    end)
  end)

  it("raise_cancel from an abort function run by another task's cancel() raises trio.Cancelled", function()
    local got = H.run(function()
      local got
      trio.open_nursery(function(nursery)
        nursery:start_soon(function()
          lowlevel.wait_task_rescheduled(function(raise_cancel)
            local _, e = pcall(raise_cancel)
            got = e
            return lowlevel.Abort.SUCCEEDED
          end)
        end)
        wait_all_tasks_blocked()
        nursery.cancel_scope:cancel()
      end)
      return got
    end)
    assert.is_true(trio.Cancelled:is(got), tostring(got))
  end)

  it("run_sync_soon callbacks queued as the main task exits run in that run, not the next", function()
    local record = {}
    H.run(function()
      lowlevel.current_trio_token():run_sync_soon(function() record[#record + 1] = "first run" end)
    end)
    assert.same({ "first run" }, record)
    H.run(function() end)
    assert.same({ "first run" }, record)
  end)

  it("Ctrl-C while the main task waits at the end of a nursery raises KeyboardInterrupt", function()
    local out = H.run_script([[
local ok, e = pcall(trio.run, function()
  trio.open_nursery(function(n)
    n:start_soon(function()
      -- keeps the nursery open; ignores its cancellation once
      local ok2 = pcall(trio.sleep, 5)
      if not ok2 then trio.CancelScope{shield = true}:run(trio.sleep, 0.2) end
    end)
    trio.sleep(0.05)
    interrupt()
  end)
end)
local function has_ki(x)
  if trio.KeyboardInterrupt:is(x) then return true end
  if trio.ExceptionGroup:is(x) then
    for _, s in ipairs(x.exceptions) do if has_ki(s) then return true end end
  end
  return false
end
print("ok=" .. tostring(ok), "ki=" .. tostring(has_ki(e)))
]])
    assert.truthy(out:find("ok=false", 1, true), out)
    assert.truthy(out:find("ki=true", 1, true), out)
    assert.truthy(out:find("exit=0", 1, true), out)
  end)

  -- Trio itself wraps KeyboardInterrupt in an ExceptionGroup when it comes
  -- out of a nursery (test_ki.py, "raises inside a nursery, so the
  -- KeyboardInterrupt is wrapped in an ExceptionGroup"); without a nursery
  -- it comes out bare.
  it("Ctrl-C with a nursery open: a group holding KeyboardInterrupt, as in Trio; bare without one", function()
    local out = H.run_script([[
local ok, e = pcall(trio.run, function()
  trio.open_nursery(function(n)
    n:start_soon(trio.sleep, 5)
    interrupt()
    trio.sleep(5)
  end)
end)
print("nursery", ok, trio.ExceptionGroup:is(e), #(e.exceptions or {}),
  trio.KeyboardInterrupt:is(e.exceptions and e.exceptions[1]))
ok, e = pcall(trio.run, function()
  interrupt()
  trio.sleep(5)
end)
print("bare", ok, trio.KeyboardInterrupt:is(e))
]])
    assert.truthy(out:find("nursery\tfalse\ttrue\t1\ttrue", 1, true), out)
    assert.truthy(out:find("bare\tfalse\ttrue", 1, true), out)
    assert.truthy(out:find("exit=0", 1, true), out)
  end)
end)

-- Found while porting (not in the issue's list).
describe("Trio, found while porting", function()
  it("a run refused for a bad clock option leaves no run behind", function()
    H.raises(H.msg("MockClock"), trio.lowlevel.run, { fn = function() end, clock = {} })
    H.raises(H.msg("MockClock"), trio.lowlevel.start_guest_run, function() end,
      { clock = {}, done_callback = function() end })
    assert.equal("next", trio.run(function() return "next" end))
  end)

  it("the token of a finished run refuses run_sync_soon during a later run", function()
    local token = H.run(function() return lowlevel.current_trio_token() end)
    local ran = false
    H.run(function()
      H.raises(trio.RunFinishedError, token.run_sync_soon, token, function() ran = true end)
      wait_all_tasks_blocked()
    end)
    assert.is_false(ran)
  end)
end)
