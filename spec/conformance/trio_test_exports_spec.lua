-- Ported from Trio's src/trio/_tests/test_exports.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Adapted: test_core_is_properly_reexported.  Upstream walks dir(trio._core);
-- we have no such module, so the names are Trio's _core exports
-- (src/trio/_core/__init__.py at that commit, POSIX names only), each
-- with the public module Trio re-exports it from.  Each one we provide is
-- found in exactly that module of trio, trio.lowlevel and trio.testing
-- (upstream: in exactly one of them); trio.lowlevel.run is not trio.run
-- but its options-table variant (DESIGN.md 4.1), so trio.run is found
-- once.  The names we do not provide are listed, each with its reason
-- (docs/SEMANTICS.md, "Not provided"), and the test fails when that list
-- goes stale.
-- Dropped, Python tooling: test_static_tool_sees_all_symbols,
-- test_static_tool_sees_class_members (pylint, jedi, mypy, pyright; the
-- names the code exports and docs/API.md agree, scripts/check_api.lua
-- checks that in `make test`), test_pyright_recognizes_init_attributes.
-- Dropped, no subclassing in Lua: test_classes_are_final,
-- test_nopublic_is_final.
local trio = require "trio"

local P = "_tests/test_exports.py::"

local CORE_EXPORTS = {
  trio = {
    "TASK_STATUS_IGNORED", "BrokenResourceError", "BusyResourceError", "Cancelled",
    "CancelScope", "ClosedResourceError", "EndOfChannel", "Nursery", "RunFinishedError",
    "TaskStatus", "TrioInternalError", "WouldBlock", "current_effective_deadline",
    "current_time", "open_nursery", "run",
  },
  ["trio.lowlevel"] = {
    "Abort", "ParkingLot", "ParkingLotStatistics", "RaiseCancelT", "RunStatistics", "RunVar",
    "RunVarToken", "Task", "TrioToken", "UnboundedQueue", "UnboundedQueueStatistics",
    "add_instrument", "add_parking_lot_breaker", "cancel_shielded_checkpoint", "checkpoint",
    "checkpoint_if_cancelled", "current_clock", "current_root_task", "current_statistics",
    "current_task", "current_trio_token", "currently_ki_protected", "disable_ki_protection",
    "enable_ki_protection", "in_trio_run", "in_trio_task", "notify_closing",
    "permanently_detach_coroutine_object", "reattach_detached_coroutine_object",
    "remove_instrument", "remove_parking_lot_breaker", "reschedule", "spawn_system_task",
    "start_guest_run", "start_thread_soon", "temporarily_detach_coroutine_object",
    "wait_readable", "wait_task_rescheduled", "wait_writable",
  },
  ["trio.testing"] = { "MockClock", "wait_all_tasks_blocked" },
}

-- The _core names we do not provide (docs/SEMANTICS.md says why).
local NOT_PROVIDED = {
  -- types whose objects come from functions, or plain tables here
  "Nursery", "TaskStatus", "Task", "TrioToken", "ParkingLotStatistics", "RunStatistics",
  "RaiseCancelT", "UnboundedQueueStatistics",
  -- no KI protection: Ctrl-C arrives at checkpoints only
  "currently_ki_protected", "disable_ki_protection", "enable_ki_protection",
  -- Python coroutine objects
  "permanently_detach_coroutine_object", "reattach_detached_coroutine_object",
  "temporarily_detach_coroutine_object",
  -- not in our API
  "RunVar", "RunVarToken", "UnboundedQueue", "start_thread_soon",
}

describe("Trio test_exports.py", function()
  it(P .. "test_core_is_properly_reexported", function()
    local sources = { trio = trio, ["trio.lowlevel"] = trio.lowlevel, ["trio.testing"] = trio.testing }
    local missing = {}
    for home, names in pairs(CORE_EXPORTS) do
      for _, name in ipairs(names) do
        local value = sources[home][name]
        if value == nil then
          missing[#missing + 1] = name
        else
          local found = {}
          for sname, source in pairs(sources) do
            if source[name] == value then found[#found + 1] = sname end
          end
          assert(#found == 1 and found[1] == home, ("%s is found in %s, expected in %s only")
            :format(name, table.concat(found, ", "), home))
        end
      end
    end
    table.sort(missing)
    local want = { table.unpack(NOT_PROVIDED) }
    table.sort(want)
    assert.same(want, missing)
    assert(trio.lowlevel.run ~= trio.run, "trio.lowlevel.run is the options-table variant")
  end)
end)
