-- Ported from Trio's src/trio/_core/_tests/test_instrumentation.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: an instrument is a plain table with hook methods (Trio's
-- Instrument subclasses); _core.run(main, instruments=[...]) is
-- H.run({instruments = {...}}, main); Trio's TaskRecorder is recorder()
-- below, its records are strings "event name" where name is the task's
-- label in the test (so tutil.check_sequence_matches compares them with ==);
-- caplog is a stand-in for io.stderr, where a disabled instrument is
-- reported.  The recorder's after_task_step accepts current_task() being
-- nil after the step that ended the task (Trio: still the task; see
-- docs/SEMANTICS.md, "Instruments").
-- Left out: nothing; every test of the file is here.
local trio = require "trio"
local H = require "conformance.trio_helpers"

local lowlevel = trio.lowlevel
local current_task = lowlevel.current_task
local ValueError = H.ValueError
local P = "_core/_tests/test_instrumentation.py::"

-- Trio's TaskRecorder: records the scheduling events of the run (checking
-- that step hooks run in the stepped task); filter(labels) keeps the run
-- events and those of the tasks labelled in `labels` (task -> name).
local function recorder()
  local r = { record = {} }
  local function add(event, task) r.record[#r.record + 1] = { event, task } end
  function r.before_run() add("before_run") end
  function r.task_scheduled(_, task) add("schedule", task) end
  function r.before_task_step(_, task)
    assert.equal(current_task(), task)
    add("before", task)
  end
  function r.after_task_step(_, task)
    -- (after a task's last step, current_task() is nil: docs/SEMANTICS.md)
    local current = current_task()
    assert.is_true(current == task or (current == nil and task.done))
    add("after", task)
  end
  function r.after_run() add("after_run") end
  function r.filter(labels)
    local out = {}
    for _, item in ipairs(r.record) do
      local event, task = item[1], item[2]
      if task == nil then out[#out + 1] = event
      elseif labels[task] then out[#out + 1] = event .. " " .. labels[task] end
    end
    return out
  end
  return r
end

-- Runs fn with io.stderr replaced by a buffer; returns what was written.
local function capture_stderr(fn)
  local written = {}
  local fake = { write = function(self, ...)
    for _, s in ipairs { ... } do written[#written + 1] = tostring(s) end
    return self
  end }
  H.with_replaced(io, "stderr", fake, fn)
  return table.concat(written)
end

describe("Trio test_instrumentation.py", function()
  it(P .. "test_instruments (adapted: the recorder's after_task_step check; "
    .. "remove_instrument's error is a message, there being no KeyError)", function()
    local r1, r2, r3 = recorder(), recorder(), recorder()
    local task
    local function task_fn()
      task = current_task()
      for _ = 1, 4 do lowlevel.checkpoint() end
      -- swap r2 for r3 while the run goes on
      lowlevel.remove_instrument(r2)
      H.raises(H.msg("instrument not found"), lowlevel.remove_instrument, r2)
      lowlevel.add_instrument(r3)
      lowlevel.add_instrument(r3) -- adding twice is adding once
      lowlevel.checkpoint()
    end
    H.run({ instruments = { r1, r2 } }, function()
      trio.open_nursery(function(nursery) nursery:start_soon(task_fn) end)
    end)
    -- five checkpoints, six steps; a checkpoint reschedules the task before
    -- its after_task_step
    local expected = { "before_run", "schedule t" }
    for _ = 1, 5 do
      for _, e in ipairs { "before t", "schedule t", "after t" } do expected[#expected + 1] = e end
    end
    for _, e in ipairs { "before t", "after t", "after_run" } do expected[#expected + 1] = e end
    assert.is_not_nil(task)
    local both = { table.unpack(r2.record) }
    for _, item in ipairs(r3.record) do both[#both + 1] = item end
    assert.same(r1.record, both)
    assert.same(expected, r1.filter { [task] = "t" })
  end)

  it(P .. "test_instruments_interleave (adapted: the recorder's after_task_step check)", function()
    local labels = {}
    local function two_step(name)
      labels[current_task()] = name
      lowlevel.checkpoint()
    end
    local r = recorder()
    H.run({ instruments = { r } }, function()
      trio.open_nursery(function(nursery)
        nursery:start_soon(two_step, "t1")
        nursery:start_soon(two_step, "t2")
      end)
    end)
    H.check_sequence_matches(r.filter(labels), {
      "before_run", "schedule t1", "schedule t2",
      H.set { "before t1", "schedule t1", "after t1", "before t2", "schedule t2", "after t2" },
      H.set { "before t1", "after t1", "before t2", "after t2" },
      "after_run",
    })
  end)

  it(P .. "test_null_instrument (ported)", function()
    local called = false
    local null = { something_unrelated = function() called = true end }
    H.run({ instruments = { null } }, function() lowlevel.checkpoint() end)
    assert.is_false(called)
  end)

  it(P .. "test_instrument_before_after_run (ported)", function()
    local record = {}
    local inst = {
      before_run = function() record[#record + 1] = "before_run" end,
      after_run = function() record[#record + 1] = "after_run" end,
    }
    H.run({ instruments = { inst } }, function() end)
    assert.same({ "before_run", "after_run" }, record)
  end)

  it(P .. "test_instrument_task_spawn_exit (ported)", function()
    local spawned, exited = {}, {}
    local inst = {
      task_spawned = function(_, task) spawned[task] = true end,
      task_exited = function(_, task) exited[task] = true end,
    }
    local main_task = H.run({ instruments = { inst } }, function() return current_task() end)
    assert.is_true(spawned[main_task])
    assert.is_true(exited[main_task])
  end)

  -- It also crashes before the first task is spawned.
  it(P .. "test_instruments_crash (adapted: the report goes to stderr, not to logging; "
    .. "the recorder's after_task_step check)", function()
    local record = {}
    local broken = {
      task_scheduled = function()
        record[#record + 1] = "scheduled"
        error(ValueError("oops"))
      end,
    }
    local r = recorder()
    local main_task
    local report = capture_stderr(function()
      main_task = H.run({ instruments = { r, broken } }, function()
        record[#record + 1] = "main ran"
        return current_task()
      end)
    end)
    assert.same({ "scheduled", "main ran" }, record)
    -- the recorder went on after the broken instrument was removed
    local seen = {}
    for _, item in ipairs(r.record) do
      if item[2] == main_task or item[2] == nil then seen[item[1]] = true end
    end
    assert.is_true(seen.after)
    assert.is_true(seen.after_run)
    assert.truthy(report:find("raised in task_scheduled and was removed", 1, true), report)
    assert.truthy(report:find("oops", 1, true), report)
    assert.equal(1, select(2, report:gsub("was removed", "")), report)
  end)

  it(P .. "test_instruments_monkeypatch (ported)", function()
    local instrument = {}
    H.run({ instruments = { instrument } }, function()
      local me = current_task()
      local steps = 0
      -- a hook set after the instrument was added is not called yet
      instrument.before_task_step = function(_, task) if task == me then steps = steps + 1 end end
      lowlevel.checkpoint()
      lowlevel.checkpoint()
      assert.equal(0, steps)
      -- removing and adding it again picks the hook up
      lowlevel.remove_instrument(instrument)
      lowlevel.add_instrument(instrument)
      lowlevel.checkpoint()
      lowlevel.checkpoint()
      assert.equal(2, steps)
      lowlevel.remove_instrument(instrument)
      lowlevel.checkpoint()
      lowlevel.checkpoint()
      assert.equal(2, steps)
    end)
  end)

  it(P .. "test_instrument_that_raises_on_getattr (adapted: a raising __index; "
    .. "not adding it shows as no task_exited call)", function()
    local exited = false
    local evil = setmetatable({
      task_exited = function() exited = true end,
    }, {
      __index = function(_, key)
        if key == "after_run" then error(ValueError("oops")) end
      end,
    })
    local report = capture_stderr(function()
      H.run(function()
        local e = H.raises(ValueError, lowlevel.add_instrument, evil)
        assert.equal("oops", e.message)
        -- not half added: removing it finds nothing
        H.raises(H.msg("instrument not found"), lowlevel.remove_instrument, evil)
      end)
    end)
    assert.is_false(exited)
    assert.equal("", report)
  end)

  it(P .. "test_instrument_call_trio_context (adapted: a short sleep, as the I/O-wait hooks "
    .. "are called only for a wait that blocks, docs/SEMANTICS.md)", function()
    -- hook -> {in a run, in a task (nil: either)}
    local hooks = {
      after_io_wait = { true, false },
      before_io_wait = { true, false },
      before_run = { true, false },
      after_run = { true, false },
      before_task_step = { true, true },
      after_task_step = { true, true },
      task_exited = { true, true },
      task_scheduled = { true, nil },
      task_spawned = { true, nil },
    }
    local called = {}
    local inst = {}
    for hook, want in pairs(hooks) do
      inst[hook] = function()
        assert(lowlevel.in_trio_run() == want[1], "failed in " .. hook)
        if want[2] ~= nil then assert(lowlevel.in_trio_task() == want[2], "failed in " .. hook) end
        called[hook] = true
      end
    end
    local report = capture_stderr(function()
      H.run({ instruments = { inst } }, function()
        lowlevel.checkpoint()
        trio.open_nursery(function(nursery) nursery:start_soon(lowlevel.checkpoint) end)
        -- long enough to be still ahead when the scheduler waits, even
        -- under valgrind: a deadline already passed makes no blocking wait
        trio.sleep(0.05)
      end)
    end)
    assert.equal("", report) -- no hook failed (a failing one is removed and reported)
    assert.same(H.keys(hooks), H.keys(called))
  end)
end)
