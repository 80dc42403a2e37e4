-- Ported from Trio's src/trio/_core/_tests/test_parking_lot.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: `async with open_nursery() as n` is trio.open_nursery(fn),
-- `with CancelScope() as s` is s:run(fn), len(lot) is #lot and bool(lot) is
-- #lot > 0.
-- Left out: nothing.
local trio = require "trio"
local H = require "conformance.trio_helpers"

local wait_all_tasks_blocked = trio.testing.wait_all_tasks_blocked
local ParkingLot = trio.lowlevel.ParkingLot
local P = "_core/_tests/test_parking_lot.py::"

-- what test_parking_lot.py calls cancellable_waiter
local function cancellable_waiter(name, lot, scopes, record)
  local scope = trio.CancelScope()
  scope:run(function()
    scopes[name] = scope
    record[#record + 1] = "sleep " .. name
    local ok, e = pcall(lot.park, lot)
    if ok then
      record[#record + 1] = "wake " .. name
    elseif trio.Cancelled:is(e) then
      record[#record + 1] = "cancelled " .. name
    else
      error(e, 0)
    end
  end)
end

local function dummy_task(task_status)
  task_status:started(trio.lowlevel.current_task())
  trio.sleep_forever()
end

describe("Trio test_parking_lot.py", function()
  it(P .. "test_parking_lot_basic", function()
    H.run(function()
      local record = {}
      local function waiter(i, lot)
        record[#record + 1] = "sleep " .. i
        lot:park()
        record[#record + 1] = "wake " .. i
      end
      local lot
      trio.open_nursery(function(nursery)
        lot = ParkingLot()
        assert.is_true(#lot == 0)
        assert.equal(0, #lot)
        assert.equal(0, lot:statistics().tasks_waiting)
        for i = 0, 2 do nursery:start_soon(waiter, i, lot) end
        wait_all_tasks_blocked()
        assert.equal(3, #record)
        assert.is_true(#lot > 0)
        assert.equal(3, #lot)
        assert.equal(3, lot:statistics().tasks_waiting)
        lot:unpark_all()
        assert.equal(0, lot:statistics().tasks_waiting)
        wait_all_tasks_blocked()
        assert.equal(6, #record)
      end)
      H.check_sequence_matches(record, {
        H.set { "sleep 0", "sleep 1", "sleep 2" }, H.set { "wake 0", "wake 1", "wake 2" } })

      trio.open_nursery(function(nursery)
        record = {}
        for i = 0, 2 do
          nursery:start_soon(waiter, i, lot)
          wait_all_tasks_blocked()
        end
        assert.equal(3, #record)
        for _ = 1, 3 do
          lot:unpark()
          wait_all_tasks_blocked()
        end
        -- one by one, wake-ups are strict FIFO
        assert.same({ "sleep 0", "sleep 1", "sleep 2", "wake 0", "wake 1", "wake 2" }, record)
      end)

      -- unparking with nobody parked is legal and does nothing
      lot:unpark()
      lot:unpark(1)
      lot:unpark(100)

      trio.open_nursery(function(nursery)
        record = {}
        for i = 0, 2 do
          nursery:start_soon(waiter, i, lot)
          wait_all_tasks_blocked()
        end
        lot:unpark(2)
        wait_all_tasks_blocked()
        H.check_sequence_matches(record, { "sleep 0", "sleep 1", "sleep 2", H.set { "wake 0", "wake 1" } })
        lot:unpark_all()
      end)

      local e = H.raises(H.any, lot.unpark, lot, 1.5)
      assert.truthy(tostring(e):find("integer", 1, true))
    end)
  end)

  it(P .. "test_parking_lot_cancel", function()
    local record, scopes = {}, {}
    H.run(function()
      trio.open_nursery(function(nursery)
        local lot = ParkingLot()
        for i = 1, 3 do
          nursery:start_soon(cancellable_waiter, i, lot, scopes, record)
          wait_all_tasks_blocked()
        end
        assert.equal(3, #record)
        scopes[2]:cancel()
        wait_all_tasks_blocked()
        assert.equal(4, #record)
        lot:unpark_all()
        wait_all_tasks_blocked()
        assert.equal(6, #record)
      end)
    end)
    H.check_sequence_matches(record, { "sleep 1", "sleep 2", "sleep 3", "cancelled 2", H.set { "wake 1", "wake 3" } })
  end)

  it(P .. "test_parking_lot_repark", function()
    H.run(function()
      local record, scopes = {}, {}
      local lot1, lot2 = ParkingLot(), ParkingLot()
      H.raises(H.any, lot1.repark, lot1, {})
      trio.open_nursery(function(nursery)
        for i = 1, 3 do
          nursery:start_soon(cancellable_waiter, i, lot1, scopes, record)
          wait_all_tasks_blocked()
        end
        assert.equal(3, #record)
        assert.equal(3, #lot1)
        lot1:repark(lot2)
        assert.equal(2, #lot1)
        assert.equal(1, #lot2)
        lot2:unpark_all()
        wait_all_tasks_blocked()
        assert.same({ "sleep 1", "sleep 2", "sleep 3", "wake 1" }, record)

        lot1:repark_all(lot2)
        assert.equal(0, #lot1)
        assert.equal(2, #lot2)

        scopes[2]:cancel()
        wait_all_tasks_blocked()
        assert.equal(1, #lot2)
        assert.same({ "sleep 1", "sleep 2", "sleep 3", "wake 1", "cancelled 2" }, record)

        lot2:unpark_all()
        wait_all_tasks_blocked()
        assert.same({ "sleep 1", "sleep 2", "sleep 3", "wake 1", "cancelled 2", "wake 3" }, record)
      end)
    end)
  end)

  it(P .. "test_parking_lot_repark_with_count", function()
    H.run(function()
      local record, scopes = {}, {}
      local lot1, lot2 = ParkingLot(), ParkingLot()
      trio.open_nursery(function(nursery)
        for i = 1, 3 do
          nursery:start_soon(cancellable_waiter, i, lot1, scopes, record)
          wait_all_tasks_blocked()
        end
        assert.equal(3, #record)
        assert.equal(3, #lot1)
        assert.equal(0, #lot2)
        lot1:repark(lot2, 2)
        assert.equal(1, #lot1)
        assert.equal(2, #lot2)
        while #lot2 > 0 do
          lot2:unpark()
          wait_all_tasks_blocked()
        end
        assert.same({ "sleep 1", "sleep 2", "sleep 3", "wake 1", "wake 2" }, record)
        lot1:unpark_all()
      end)
    end)
  end)

  -- Parking-lot breakers.  The bodies use the API Trio has:
  -- lot:break_lot([task]), lot.broken_by, and
  -- trio.lowlevel.add_parking_lot_breaker / remove_parking_lot_breaker.

  it(P .. "test_parking_lot_breaker_basic", function()
    H.run(function()
      local lot = ParkingLot()
      local task = trio.lowlevel.current_task()
      lot:break_lot()
      assert.same({ task }, lot.broken_by)
      lot:break_lot()
      assert.same({ task, task }, lot.broken_by)
      local e = H.raises(trio.BrokenResourceError, lot.park, lot)
      assert.truthy(e.message:find("^Attempted to park in parking lot broken by"))
    end)
  end)

  it(P .. "test_parking_lot_break_parking_tasks", function()
    H.run(function()
      local function bad_parker(lot, scope)
        trio.lowlevel.add_parking_lot_breaker(trio.lowlevel.current_task(), lot)
        scope:run(trio.sleep_forever)
      end
      local lot, cs = ParkingLot(), trio.CancelScope()
      H.raises_group(function()
        trio.open_nursery(function(nursery)
          nursery:start_soon(bad_parker, lot, cs)
          wait_all_tasks_blocked()
          nursery:start_soon(lot.park, lot)
          wait_all_tasks_blocked()
          cs:cancel()
        end)
      end, function(e) return trio.BrokenResourceError:is(e) and e.message:find("^Parking lot broken by") end)
    end)
  end)

  it(P .. "test_parking_lot_breaker_registration", function()
    H.run(function()
      local lot = ParkingLot()
      local task = trio.lowlevel.current_task()
      local msg = "Attempted to remove task as breaker for a lot it is not registered for"
      local e = H.raises(trio.RuntimeError, trio.lowlevel.remove_parking_lot_breaker, task, lot)
      assert.truthy(e.message:find(msg, 1, true))
      trio.lowlevel.add_parking_lot_breaker(task, lot)
      trio.lowlevel.add_parking_lot_breaker(task, lot)
      trio.lowlevel.remove_parking_lot_breaker(task, lot)
      trio.lowlevel.remove_parking_lot_breaker(task, lot)
      e = H.raises(trio.RuntimeError, trio.lowlevel.remove_parking_lot_breaker, task, lot)
      assert.truthy(e.message:find(msg, 1, true))

      lot:break_lot()
      local child_task
      trio.open_nursery(function(nursery)
        child_task = nursery:start(dummy_task)
        trio.lowlevel.add_parking_lot_breaker(child_task, lot)
        nursery.cancel_scope:cancel()
      end)
      assert.same({ task, child_task }, lot.broken_by)

      lot = ParkingLot()
      lot:break_lot(child_task)
      assert.same({ child_task }, lot.broken_by)
    end)
  end)

  it(P .. "test_parking_lot_breaker_rebreak", function()
    H.run(function()
      local lot = ParkingLot()
      local task = trio.lowlevel.current_task()
      lot:break_lot()
      local child_task
      trio.open_nursery(function(nursery)
        child_task = nursery:start(dummy_task)
        lot:break_lot(child_task)
        nursery.cancel_scope:cancel()
      end)
      assert.same({ task, child_task }, lot.broken_by)
    end)
  end)

  it(P .. "test_parking_lot_multiple_breakers_exit", function()
    H.run(function()
      local lot = ParkingLot()
      local t1, t2, t3
      trio.open_nursery(function(nursery)
        t1 = nursery:start(dummy_task)
        t2 = nursery:start(dummy_task)
        t3 = nursery:start(dummy_task)
        trio.lowlevel.add_parking_lot_breaker(t1, lot)
        trio.lowlevel.add_parking_lot_breaker(t2, lot)
        trio.lowlevel.add_parking_lot_breaker(t3, lot)
        nursery.cancel_scope:cancel()
      end)
      local got = {}
      for _, t in ipairs(lot.broken_by) do got[t] = true end
      assert.same({ [t1] = true, [t2] = true, [t3] = true }, got)
    end)
  end)

  it(P .. "test_parking_lot_breaker_register_exited_task", function()
    H.run(function()
      local lot = ParkingLot()
      local child_task
      trio.open_nursery(function(nursery)
        child_task = nursery:start(dummy_task)
        nursery.cancel_scope:cancel()
      end)
      local e = H.raises(trio.BrokenResourceError, trio.lowlevel.add_parking_lot_breaker, child_task, lot)
      assert.equal("Attempted to add already exited task as lot breaker.", e.message)
    end)
  end)

  it(P .. "test_parking_lot_break_itself", function()
    H.run(function()
      local function return_me_and_park(lot, task_status)
        task_status:started(trio.lowlevel.current_task())
        lot:park()
      end
      local lot = ParkingLot()
      H.raises_group(function()
        trio.open_nursery(function(nursery)
          local child_task = nursery:start(return_me_and_park, lot)
          lot:break_lot(child_task)
        end)
      end, function(e) return trio.BrokenResourceError:is(e) and e.message:find("^Parking lot broken by") end)
    end)
  end)
end)

