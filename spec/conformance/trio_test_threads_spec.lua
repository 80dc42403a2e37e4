-- Ported from Trio's src/trio/_tests/test_threads.py, its
-- to_thread.run_sync parts (python-trio/trio at
-- 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: abandon_on_cancel is our `cancellable` option; a worker
-- function runs in a Lua state of its own and shares nothing with the
-- caller (docs/SEMANTICS.md "Worker threads"), so the Python tests'
-- shared queues, threading.Event and counters become a FIFO "gate" the
-- workers block on (a worker reads one byte from it; the test writes a
-- byte per worker it lets through) and a log file the workers append
-- "start" and "end" lines to.  A worker's OS thread is told by the thread
-- id in /proc/thread-self/stat.  Each test uses a temp dir of its own.
--
-- Ported: test_run_in_worker_thread_custom_limiter.
-- Adapted: test_run_in_worker_thread (thread ids stand for
-- threading.current_thread(); the error carries the worker's id in its
-- message), test_run_in_worker_thread_cancellation (the gate stands for
-- the queue; the abandoned worker is not waited for: its Lua code is
-- stopped once its blocking read returns, docs/SEMANTICS.md "An abandoned
-- worker", so instead the test checks that its limiter token came back
-- at once), test_run_in_worker_thread_abandoned (in a child process: the
-- run ends with a worker blocked, the worker is let go after it, and the
-- process prints nothing but its own line and exits 0),
-- test_run_in_worker_thread_limiter (every MAX x use_default_limiter
-- case; with cancel=false the callers' scopes are cancelled from the Trio
-- side once their workers run, since a worker cannot reach its caller's
-- scope; with cancel=true the cancellation comes once MAX workers run
-- and MAX callers wait: the running ones are abandoned and the waiting
-- ones never start, and the tokens come back at once, where Trio keeps a
-- token until its abandoned thread finishes), test_run_in_worker_thread_limiter_error
-- (Python's implicit __context__ is the release error's `context`
-- field), test_run_in_worker_thread_fail_to_spawn (the engine's
-- core.thread_submit is replaced, as Trio monkeypatches its thread
-- cache), test_trio_to_thread_run_sync_expected_error (Lua has no async
-- functions: what the worker cannot run is a closure with upvalues, and
-- it is refused with an argument error before anything runs),
-- test_trio_to_thread_run_sync_contextvars (a trio.ContextVar cannot
-- reach the worker, its value can be passed; a global set in the worker
-- does not reach the caller; trio raises inside the worker, where
-- sniffio finds no async library), test_worker_thread_context_not_leaked
-- (the call keeps no reference to the caller's argument table).
-- Dropped, no way back from a worker (docs/SEMANTICS.md "No way back from
-- a worker": a worker cannot call trio.from_thread, hold a TrioToken or a
-- CancelScope): test_do_in_trio_thread, test_do_in_trio_thread_from_trio_thread,
-- test_run_in_trio_thread_ki, test_await_in_trio_thread_while_main_exits,
-- test_trio_to_thread_run_sync_token, test_trio_from_thread_run_sync,
-- test_trio_from_thread_run, test_trio_from_thread_token,
-- test_trio_from_thread_token_kwarg, test_from_thread_no_token,
-- test_trio_from_thread_run_sync_contextvars,
-- test_trio_from_thread_run_contextvars,
-- test_run_fn_as_system_task_caught_badly_typed_token,
-- test_from_thread_inside_trio_thread, test_from_thread_run_during_shutdown,
-- test_from_thread_reuses_task, test_recursive_to_thread,
-- test_from_thread_host_cancelled,
-- test_from_thread_check_cancelled_no_abandon,
-- test_from_thread_check_cancelled_abandon_on_cancel,
-- test_from_thread_check_cancelled_raises_in_foreign_threads,
-- test_reentry_doesnt_deadlock.
-- Dropped, not in our API (DESIGN.md §4.4): test_named_thread,
-- test_named_thread_os and test_has_pthread_setname_np (no thread_name;
-- the workers are the engine's pool threads), test_wait_all_threads_completed
-- and test_wait_all_threads_completed_no_threads (no
-- wait_all_threads_completed / active_thread_count), test_trio_token_weak_referenceable
-- (a TrioToken test, not to_thread's).
-- Dropped, Python-only: test_unsafe_abandon_on_cancel_kwarg (an object
-- whose __bool__ raises: every Lua value has a truth value).
local trio = require "trio"
local core = require "trio_asyncio.core"
local H = require "conformance.trio_helpers"

local run_sync = trio.to_thread.run_sync
local P = "_tests/test_threads.py::"

local dir, gate, log
local gates -- every gate the test opened, closed after it

-- ---------------------------------------------------------------------
-- Worker functions: their only upvalue is _ENV.

-- The calling OS thread's id.
local function thread_id()
  local f = assert(io.open("/proc/thread-self/stat"))
  local id = f:read("l"):match("^(%d+)")
  f:close()
  return tonumber(id)
end

-- Opens the gate, logs "start", waits for one byte, logs "end"; returns
-- the byte (nil: the gate was closed).
local function wait_at_gate(gate_path, log_path)
  local g = assert(io.open(gate_path, "r"))
  g:setvbuf("no") -- read exactly one byte: the others are for other workers
  local l = assert(io.open(log_path, "a"))
  l:setvbuf("no")
  l:write("start\n")
  local byte = g:read(1)
  g:close()
  l:write("end\n")
  l:close()
  return byte
end

-- ---------------------------------------------------------------------
-- The gate: a FIFO the test keeps open for writing, so that a worker's
-- open never blocks and a closed gate ends every read.

local function open_gate(path)
  assert(os.execute("mkfifo " .. path))
  local w = assert(io.open(path, "r+"))
  w:setvbuf("no")
  gates[#gates + 1] = w
  return {
    path = path,
    let_through = function(n) w:write(("x"):rep(n)) end,
  }
end

local function close_gates()
  for _, w in ipairs(gates) do
    w:write(("x"):rep(1000)) -- every worker still reading gets a byte
    w:close()
  end
end

-- Lines of the log that are `what`.
local function count(what)
  local f = io.open(log)
  if not f then return 0 end
  local n = 0
  for line in f:lines() do
    if line == what then n = n + 1 end
  end
  f:close()
  return n
end

-- Waits (bounded by the run's watchdog) until the abandoned workers are
-- done with the gate and the log: the only file of the test dir still
-- open is the test's own end of the gate.  A stopped worker's files are
-- closed as it stops (its state is collected then).
local lfs = require "lfs"
local function wait_workers_closed()
  local function open_in_dir()
    local n = 0
    for fd in lfs.dir("/proc/self/fd") do
      local target = lfs.symlinkattributes("/proc/self/fd/" .. fd, "target")
      if target and target:sub(1, #dir + 1) == dir .. "/" then n = n + 1 end
    end
    return n
  end
  while open_in_dir() > #gates do trio.sleep(0.01) end
end

-- Waits (bounded by the run's watchdog) until n workers logged "start".
local function wait_for_starts(n)
  while count("start") < n do trio.sleep(0.01) end
end

local tmp = require "conformance.temp_dir"(before_each, after_each)

before_each(function()
  dir = tmp.path
  gates = {}
  gate = open_gate(dir .. "/gate")
  log = dir .. "/log"
end)

after_each(close_gates)

describe("Trio test_threads.py (to_thread.run_sync)", function()
  it(P .. "test_run_in_worker_thread (adapted: thread ids)", function()
    H.run(function()
      local trio_thread = thread_id()
      local x, child_thread = run_sync(function(v)
        local f = assert(io.open("/proc/thread-self/stat"))
        local id = tonumber(f:read("l"):match("^(%d+)"))
        f:close()
        return v, id
      end, 1)
      assert.equal(1, x)
      assert.equal("number", type(child_thread))
      assert.are_not.equal(trio_thread, child_thread)

      local e = H.raises(H.msg("worker thread "), run_sync, function()
        local f = assert(io.open("/proc/thread-self/stat"))
        local id = f:read("l"):match("^(%d+)")
        f:close()
        error("worker thread " .. id, 0)
      end)
      local id = tonumber(tostring(e):match("^worker thread (%d+)$"))
      assert.is_number(id)
      assert.are_not.equal(trio_thread, id)
    end)
  end)

  it(P .. "test_run_in_worker_thread_cancellation (adapted: a FIFO gate; the abandoned worker is not waited for)", function()
    H.run(function()
      local record
      local function child(cancellable, its_gate)
        record[#record + 1] = "start"
        local ok, err = pcall(run_sync, { cancellable = cancellable }, wait_at_gate, its_gate.path, log)
        record[#record + 1] = "exit"
        if not ok then error(err, 0) end
      end
      local limiter = trio.to_thread.current_default_thread_limiter()

      -- abandoned when cancelled
      record = {}
      trio.open_nursery(function(nursery)
        nursery:start_soon(child, true, gate)
        trio.testing.wait_all_tasks_blocked()
        assert.same({ "start" }, record)
        wait_for_starts(1)
        nursery.cancel_scope:cancel()
      end)
      assert.same({ "start", "exit" }, record)
      -- the task exited, the worker did not
      assert.equal(0, count("end"))
      -- and its token came back at once (Trio: once the thread finishes)
      assert.equal(0, limiter.borrowed_tokens)
      gate.let_through(1)

      -- this one cannot be cancelled (a gate of its own: the first worker
      -- may still be waking up for its byte)
      local gate2 = open_gate(dir .. "/gate2")
      record = {}
      trio.open_nursery(function(nursery)
        nursery:start_soon(child, false, gate2)
        trio.testing.wait_all_tasks_blocked()
        wait_for_starts(2)
        nursery.cancel_scope:cancel()
        trio.CancelScope { shield = true }:run(function()
          for _ = 1, 10 do trio.lowlevel.checkpoint() end
        end)
        -- it is still running
        assert.same({ "start" }, record)
        gate2.let_through(1)
        -- now it exits
      end)
      assert.same({ "start", "exit" }, record)
      -- the second worker ended (the first may have been stopped first)
      assert.is_true(count("end") >= 1)

      -- cancelled before it enters: the entry is a cancellation point
      record = {}
      local scope = trio.CancelScope()
      scope:run(function()
        scope:cancel()
        child(false, gate2)
      end)
      assert.is_true(scope.cancelled_caught)
      assert.same({ "start", "exit" }, record)
      assert.equal(2, count("start")) -- that worker never ran
      wait_workers_closed() -- the abandoned first worker, let through above
    end)
  end)

  it(P .. "test_run_in_worker_thread_abandoned (adapted: in a child process)", function()
    local out = H.run_script(([[
assert(os.execute("mkfifo " .. %q))
local gate_path, log_path = %q, %q
local function wait_at_gate(g_path, l_path)
  local g = assert(io.open(g_path, "r"))
  g:setvbuf("no")
  local l = assert(io.open(l_path, "a"))
  l:setvbuf("no")
  l:write("start\n")
  local byte = g:read(1)
  l:write("end\n")
  return byte
end
local w = assert(io.open(gate_path, "r+"))
w:setvbuf("no")
H.run(function()
  trio.open_nursery(function(nursery)
    nursery:start_soon(trio.to_thread.run_sync, { cancellable = true }, wait_at_gate, gate_path, log_path)
    repeat
      trio.sleep(0.01)
      local l = io.open(log_path)
      local started = l and l:read("a") or ""
      if l then l:close() end
    until started:find("start", 1, true)
    nursery.cancel_scope:cancel()
  end)
end)
-- the run is over; now the worker gets its byte and finishes
w:write("x")
os.execute("sleep 0.3")
w:close()
print("main done")
]]):format(dir .. "/gate2", dir .. "/gate2", dir .. "/log2"))
    assert.equal("main done\nexit=0\n", out)
  end)

  for _, use_default_limiter in ipairs { false, true } do
    for _, cancel in ipairs { false, true } do
      for _, MAX in ipairs { 3, 5, 10 } do
        local case = ("[%s-%s-%d]"):format(tostring(use_default_limiter), tostring(cancel), MAX)
        it(P .. "test_run_in_worker_thread_limiter" .. case .. " (adapted: see the header)", function()
          H.run(function()
            local COUNT = 2 * MAX
            local c, orig_total_tokens, limiter_arg
            if use_default_limiter then
              c = trio.to_thread.current_default_thread_limiter()
              orig_total_tokens = c.total_tokens
              c.total_tokens = MAX
            else
              c = trio.CapacityLimiter(MAX)
              orig_total_tokens = MAX
              limiter_arg = c
            end
            local finished, scopes = 0, {}
            local ok, err = pcall(trio.open_nursery, function(nursery)
              for i = 1, COUNT do
                nursery:start_soon(function()
                  scopes[i] = trio.CancelScope()
                  scopes[i]:run(run_sync, { cancellable = cancel, limiter = limiter_arg },
                    wait_at_gate, gate.path, log)
                  finished = finished + 1
                end)
                trio.testing.wait_all_tasks_blocked()
              end
              -- the first MAX workers wait at the gate, the other callers
              -- on the limiter
              wait_for_starts(MAX)
              while c:statistics().tasks_waiting ~= MAX do trio.sleep(0.01) end
              assert.equal(MAX, count("start"))
              assert.equal(MAX, c.borrowed_tokens)
              if cancel then
                for _, scope in ipairs(scopes) do scope:cancel() end
                trio.testing.wait_all_tasks_blocked()
                -- every caller is gone and every token back, at once
                assert.equal(COUNT, finished)
                assert.equal(0, c.borrowed_tokens)
                gate.let_through(MAX)
                wait_workers_closed()
              else
                -- the running workers' callers are cancelled: they still
                -- wait for their workers
                for i = 1, MAX do scopes[i]:cancel() end
                trio.testing.wait_all_tasks_blocked()
                assert.equal(0, finished)
                gate.let_through(COUNT)
              end
            end)
            c.total_tokens = orig_total_tokens
            if not ok then error(err, 0) end
            if not cancel then
              -- the log's order: never more than MAX workers between
              -- their start and end
              local running, high_water = 0, 0
              for line in io.lines(log) do
                running = running + (line == "start" and 1 or -1)
                high_water = math.max(high_water, running)
              end
              assert.equal(MAX, high_water)
              assert.equal(COUNT, count("start"))
              assert.equal(0, running)
            else
              assert.equal(MAX, count("start")) -- the waiting callers never started one
            end
            assert.equal(0, c.borrowed_tokens)
          end)
        end)
      end
    end
  end

  it(P .. "test_run_in_worker_thread_custom_limiter", function()
    H.run(function()
      local record = {}
      local custom = {}
      function custom.acquire_on_behalf_of(self, borrower)
        record[#record + 1] = "acquire"
        self._borrower = borrower
      end
      function custom.release_on_behalf_of(self, borrower)
        record[#record + 1] = "release"
        assert(borrower == self._borrower)
      end
      run_sync({ limiter = custom }, function() end)
      assert.same({ "acquire", "release" }, record)
    end)
  end)

  it(P .. "test_run_in_worker_thread_limiter_error (adapted: context is a field)", function()
    H.run(function()
      local record = {}
      local bad = {}
      function bad.acquire_on_behalf_of() record[#record + 1] = "acquire" end
      function bad.release_on_behalf_of()
        record[#record + 1] = "release"
        error(H.ValueError("release on behalf"))
      end

      local e = H.raises(H.ValueError, run_sync, { limiter = bad }, function() end)
      assert.equal("release on behalf", e.message)
      assert.is_nil(e.context)
      assert.same({ "acquire", "release" }, record)

      -- if the function raised too, the limiter's error has it as context
      record = {}
      e = H.raises(H.ValueError, run_sync, { limiter = bad }, function()
        local d = {}
        return d.x.y
      end)
      assert.equal("release on behalf", e.message)
      assert.equal("string", type(e.context))
      assert.truthy(e.context:find("attempt to index", 1, true))
      assert.same({ "acquire", "release" }, record)
    end)
  end)

  it(P .. "test_run_in_worker_thread_fail_to_spawn (adapted: core.thread_submit replaced)", function()
    H.run(function()
      local limiter = trio.to_thread.current_default_thread_limiter()
      assert.equal(0, limiter.borrowed_tokens)
      local e = H.with_replaced(core, "thread_submit", function()
        error(trio.RuntimeError("the engines canna take it captain"))
      end, function()
        return H.raises(trio.RuntimeError, run_sync, function() end)
      end)
      assert.truthy(tostring(e):find("engines", 1, true))
      assert.equal(0, limiter.borrowed_tokens)
    end)
  end)

  it(P .. "test_trio_to_thread_run_sync_expected_error (adapted: a closure with upvalues)", function()
    H.run(function()
      local ran = false
      local function closure() ran = true end
      H.raises(H.msg("bad argument #1 to 'run_sync'"), run_sync, closure)
      H.raises(H.msg("bad argument #1 to 'run_sync'"), run_sync, print)
      assert.is_false(ran)
    end)
  end)

  it(P .. "test_trio_to_thread_run_sync_contextvars (adapted: nothing of the run reaches the worker)", function()
    H.run(function()
      local var = trio.ContextVar("trio_test_contextvar")
      var:set("main")
      -- the variable itself cannot be copied; its value can
      H.raises(H.msg("bad argument"), run_sync, function(v) return v end, var)
      local value, child_thread = run_sync(function(v)
        local f = assert(io.open("/proc/thread-self/stat"))
        local id = tonumber(f:read("l"):match("^(%d+)"))
        f:close()
        return v, id
      end, var:get())
      assert.equal("main", value)
      assert.are_not.equal(thread_id(), child_thread)

      -- what the worker sets stays there; trio finds no run in the worker
      local worker_error, inner = run_sync(function()
        trio_test_global = "worker" -- luacheck: ignore 111
        local t = require "trio"
        local ok, err = pcall(function() return t.current_time() end)
        return not ok and tostring(err), trio_test_global -- luacheck: ignore 113
      end)
      assert.truthy(worker_error:find("trio cannot be used in a worker thread", 1, true))
      assert.equal("worker", inner)
      assert.is_nil(rawget(_G, "trio_test_global"))
      assert.equal("main", var:get())
    end)
  end)

  it(P .. "test_worker_thread_context_not_leaked (adapted: the argument table is not kept)", function()
    H.run(function()
      local refs = setmetatable({}, { __mode = "v" })
      do
        local arg = { "value" }
        refs[1] = arg
        run_sync(function(t) return #t end, arg)
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(refs[1])
    end)
  end)
end)
