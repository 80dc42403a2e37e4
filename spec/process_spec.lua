-- Child processes: trio.run_process, trio.lowlevel.open_process (Process,
-- pipe streams), asyncio.create_subprocess_exec / _shell (Process,
-- communicate, stream-like pipes), across the bridge; bad input (missing
-- program, bad options) and faults (cancellation: SIGTERM then SIGKILL
-- after the grace period; no zombie left).  loop:subprocess_exec is
-- covered by spec/conformance/trio_asyncio_tests_test_aio_subprocess_spec.lua.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local errors = require "trio.errors"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

local function run(fn, limit)
  return trio.run(function() return trio.fail_after(limit or 10, fn) end)
end

local function aio_run(fn, limit)
  return asyncio.run(function() return asyncio.wait_for(fn, limit or 10) end)
end

-- Whether a process with this pid exists (a zombie counts: it exists).
local function exists(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if f == nil then return false end
  f:close()
  return true
end

describe("trio.run_process", function()
  it("runs an argv list and returns args, returncode and the captured output", function()
    local cmd = { "sh", "-c", "echo out; echo err >&2; exit 0" }
    local r = run(function()
      return trio.run_process(cmd, { capture_stdout = true, capture_stderr = true })
    end)
    assert.equal(cmd, r.args)
    assert.equal(0, r.returncode)
    assert.equal("out\n", r.stdout)
    assert.equal("err\n", r.stderr)
  end)

  it("passes every argv item, numbers as their strings, also past 16 items", function()
    local long = { "printf", "%s|" }
    for i = 1, 40 do long[#long + 1] = "a" .. i end
    local short, many = run(function()
      return trio.run_process({ "printf", "%s|", 7, 2.5, "", "x y" }, { capture_stdout = true }).stdout,
        trio.run_process(long, { capture_stdout = true }).stdout
    end)
    assert.equal("7|2.5||x y|", short)
    assert.equal(table.concat(long, "|", 3) .. "|", many)
  end)

  it("leaves stdout and stderr nil unless captured, and can send them to /dev/null", function()
    local r = run(function()
      return trio.run_process({ "sh", "-c", "echo to-devnull" }, { stdout = "devnull" })
    end)
    assert.is_nil(r.stdout)
    assert.is_nil(r.stderr)
    assert.equal(0, r.returncode)
  end)

  it("feeds stdin and reads stdout at the same time (1 MiB through cat)", function()
    local data = string.rep("0123456789abcdef", 65536)
    local r = run(function() return trio.run_process({ "cat" }, { stdin = data, capture_stdout = true }) end)
    assert.equal(#data, #r.stdout)
    assert.is_true(r.stdout == data)
  end)

  it("gives the child an empty stdin by default", function()
    local r = run(function() return trio.run_process({ "cat" }, { capture_stdout = true }) end)
    assert.equal("", r.stdout)
  end)

  it("runs a command string with shell=true, in cwd, with env replacing the environment", function()
    local r = run(function()
      return trio.run_process("printf '%s|' \"$GREETING\" \"$HOME\"; pwd", {
        shell = true, capture_stdout = true, cwd = "/tmp", env = { GREETING = "hi" } })
    end)
    assert.equal("hi||/tmp\n", r.stdout)
    local env = run(function()
      return trio.run_process({ "/usr/bin/env" }, { capture_stdout = true, env = { ONLY = "this" } })
    end)
    assert.equal("ONLY=this\n", env.stdout)
  end)

  it("raises CalledProcessError for a non-zero code, unless check=false", function()
    local e, r = run(function()
      return errof(trio.run_process, { "sh", "-c", "echo partial; exit 3" }, { capture_stdout = true }),
        trio.run_process({ "sh", "-c", "exit 3" }, { check = false })
    end)
    assert.is_true(trio.CalledProcessError:is(e))
    assert.equal(3, e.returncode)
    assert.same({ "sh", "-c", "echo partial; exit 3" }, e.cmd)
    assert.equal("partial\n", e.stdout)
    assert_has(e.message, "returned non-zero exit status 3")
    assert.equal(3, r.returncode)
  end)

  it("reports a child killed by a signal with a negative returncode", function()
    local e = run(function() return errof(trio.run_process, { "sh", "-c", "kill -TERM $$" }) end)
    assert.equal(-15, e.returncode)
    assert_has(e.message, "died with SIGTERM")
  end)

  it("raises FileNotFoundError naming a missing program or working directory", function()
    local e1, e2 = run(function()
      return errof(trio.run_process, { "no-such-program-for-spec" }),
        errof(trio.run_process, { "true" }, { cwd = "/no/such/dir" })
    end)
    assert.is_true(errors.FileNotFoundError:is(e1))
    assert.equal("no-such-program-for-spec", e1.filename)
    assert_has(e1.message, "spawn no-such-program-for-spec: no such file or directory")
    assert.is_true(errors.FileNotFoundError:is(e2))
    assert_has(e2.message, "/no/such/dir")
  end)

  it("raises argument errors for bad commands and options", function()
    local function e(...) return errof(trio.run_process, ...) end
    assert_has(e("ls -l"), "bad argument #1 to 'run_process' (argv list expected; a command string needs shell=true)")
    assert_has(e({ "ls" }, { shell = true }), "command string expected with shell=true")
    assert_has(e({}), "non-empty argv list expected")
    assert_has(e({ "ls", {} }), "argv item 2 is a table")
    assert_has(e({ "ls" }, { bogus = 1 }), "unknown option 'bogus'")
    assert_has(e({ "ls" }, { stdin = 5 }), "stdin must be a string to feed")
    assert_has(e({ "ls" }, { stdout = "pipe" }), "stdout must be \"inherit\" or \"devnull\"")
    assert_has(e({ "ls" }, { stdout = "devnull", capture_stdout = true }), "cannot both be given")
  end)

  it("on cancellation sends SIGTERM, waits for the child, and lets Cancelled through", function()
    local scope, proc = run(function()
      local p
      local s = trio.move_on_after(0.2, function()
        trio.open_nursery(function(n)
          p = n:start(trio.run_process, { "sleep", "10" })
        end)
      end)
      return s, p
    end)
    assert.is_true(scope.cancelled_caught)
    assert.equal(-15, proc.returncode)
    assert.is_false(exists(proc.pid))
  end)

  it("kills a child that ignores SIGTERM after the 5 s grace period", function()
    local mark = os.tmpname()
    os.remove(mark)
    local proc, grace, real = nil, nil, os.time()
    trio.lowlevel.run {
      clock = trio.testing.MockClock { autojump_threshold = 0 },
      fn = function()
        local scope = trio.CancelScope()
        trio.open_nursery(function(n)
          proc = n:start(function(task_status)
            scope:run(trio.run_process, { "sh", "-c", "trap '' TERM; touch " .. mark .. "; exec sleep 30" },
              task_status)
          end)
          -- the child ignores SIGTERM once the mark exists (no virtual time passes)
          while not support.file_exists(mark) do trio.sleep(0) end
          local t0 = trio.current_time()
          scope:cancel()
          proc:wait()
          grace = trio.current_time() - t0
        end)
      end,
    }
    os.remove(mark)
    assert.equal(-9, proc.returncode)
    assert.is_true(grace >= 5 and grace < 6, "virtual time " .. grace)
    assert.is_true(os.time() - real < 5, "the grace period passed in virtual time")
  end)

  it("uses deliver_cancel when given", function()
    local proc, how = nil, nil
    run(function()
      trio.move_on_after(0.1, function()
        trio.open_nursery(function(n)
          proc = n:start(trio.run_process, { "sleep", "10" }, {
            deliver_cancel = function(p)
              how = "custom"
              p:send_signal("SIGUSR1")
            end })
        end)
      end)
    end)
    assert.equal("custom", how)
    assert.equal(-10, proc.returncode)
  end)

  it("cancels deliver_cancel once the child has exited, and waits for the exit", function()
    local seen = {}
    run(function()
      trio.move_on_after(0.1, function()
        trio.open_nursery(function(n)
          n:start(trio.run_process, { "sleep", "10" }, {
            deliver_cancel = function(p)
              p:terminate()
              local ok, err = pcall(trio.sleep_forever)
              seen.cancelled, seen.returncode = not ok and trio.Cancelled:is(err), p.returncode
              error(err, 0)
            end })
        end)
      end)
    end)
    assert.same({ cancelled = true, returncode = -15 }, seen)
  end)

  it("lets deliver_cancel's error out, the child killed", function()
    local proc
    local e = errof(run, function()
      trio.move_on_after(0.1, function()
        trio.open_nursery(function(n)
          proc = n:start(trio.run_process, { "sleep", "10" }, {
            deliver_cancel = function() error(errors.RuntimeError("no way to stop it")) end })
        end)
      end)
    end)
    -- the test's nursery and run_process's own
    assert.is_true(trio.ExceptionGroup:is(e) and trio.ExceptionGroup:is(e.exceptions[1]), tostring(e))
    assert_has(e.exceptions[1].exceptions[1], "no way to stop it")
    assert.equal(-9, proc.returncode)
  end)

  it("captures stderr with stdout with stderr='stdout'", function()
    local r = run(function()
      return trio.run_process({ "sh", "-c", "echo a; echo b >&2" }, { capture_stdout = true, stderr = "stdout" })
    end)
    assert.equal("a\nb\n", r.stdout)
    assert.is_nil(r.stderr)
  end)

  it("under nursery:start the start value is the Process, with or without options", function()
    local a, b = run(function()
      local p1, p2
      trio.open_nursery(function(n)
        p1 = n:start(trio.run_process, { "true" })
        p2 = n:start(trio.run_process, { "sh", "-c", "exit 0" }, { check = true })
      end)
      return p1, p2
    end)
    assert.is_number(a.pid)
    assert.equal(0, a.returncode)
    assert.equal(0, b.returncode)
  end)

  it("is Trio-flavored", function()
    local e = aio_run(function() return errof(trio.run_process, { "true" }) end)
    assert.is_true(errors.FlavorError:is(e))
  end)
end)

describe("trio.lowlevel.open_process", function()
  it("gives pipe streams by default: send_all, receive_some, EOF as ''", function()
    local got, eof, rc = run(function()
      local p = trio.lowlevel.open_process({ "cat" })
      p.stdin:send_all("hello ")
      p.stdin:send_all("world")
      p.stdin:close()
      local chunks = {}
      while true do
        local s = p.stdout:receive_some(4)
        if s == "" then break end
        assert(#s <= 4)
        chunks[#chunks + 1] = s
      end
      local code = p:wait()
      local again = p.stdout:receive_some()
      p.stdout:close()
      p.stderr:close()
      return table.concat(chunks), again, code
    end)
    assert.equal("hello world", got)
    assert.equal("", eof)
    assert.equal(0, rc)
  end)

  it("poll is nil while it runs; terminate, kill and send_signal give negative codes", function()
    local r = run(function()
      local out = {}
      for _, how in ipairs { "terminate", "kill", "SIGUSR2", 1 } do
        local p = trio.lowlevel.open_process({ "sleep", "10" },
          { stdin = "devnull", stdout = "devnull", stderr = "devnull" })
        local before = p:poll()
        if how == "terminate" then p:terminate()
        elseif how == "kill" then p:kill()
        else p:send_signal(how) end
        local code = p:wait()
        out[#out + 1] = { before, code, p.returncode, p:poll() }
        p:send_signal("SIGTERM") -- after the exit: nothing happens
      end
      return out
    end)
    assert.same({ { nil, -15, -15, -15 }, { nil, -9, -9, -9 }, { nil, -12, -12, -12 }, { nil, -1, -1, -1 } }, r)
  end)

  it("several tasks may wait for the same child", function()
    local codes = run(function()
      local p = trio.lowlevel.open_process({ "sh", "-c", "sleep 0.1; exit 5" },
        { stdin = "devnull", stdout = "devnull", stderr = "devnull" })
      local got = {}
      trio.open_nursery(function(n)
        for i = 1, 3 do n:start_soon(function() got[i] = p:wait() end) end
      end)
      return got
    end)
    assert.same({ 5, 5, 5 }, codes)
  end)

  it("a cancelled receive loses no data; a cancelled wait leaves the child running", function()
    local data, code = run(function()
      local p = trio.lowlevel.open_process({ "sh", "-c", "sleep 0.2; echo late" }, { stdin = "devnull", stderr = "devnull" })
      local s1 = trio.move_on_after(0.05, p.stdout.receive_some, p.stdout)
      local s2 = trio.move_on_after(0.05, p.wait, p)
      assert(s1.cancelled_caught and s2.cancelled_caught and p:poll() == nil)
      local got = p.stdout:receive_some()
      local rc = p:wait()
      p.stdout:close()
      return got, rc
    end)
    assert.equal("late\n", data)
    assert.equal(0, code)
  end)

  it("stream errors: closed, busy, and a child that stopped reading", function()
    local closed, busy, broken, recv_closed = run(function()
      local p = trio.lowlevel.open_process({ "sh", "-c", "exec 0<&-; sleep 0.1" }, { stderr = "devnull" })
      local b
      trio.open_nursery(function(n)
        n:start_soon(function() pcall(p.stdout.receive_some, p.stdout) end)
        trio.testing.wait_all_tasks_blocked()
        b = errof(p.stdout.receive_some, p.stdout)
        p.stdout:close() -- the waiting receive gets ClosedResourceError
      end)
      local rc_closed = errof(p.stdout.receive_some, p.stdout)
      p:wait()
      local bk = errof(function()
        for _ = 1, 100 do p.stdin:send_all(string.rep("x", 65536)) end
      end)
      p.stdin:close()
      return errof(p.stdin.send_all, p.stdin, "x"), b, bk, rc_closed
    end)
    assert.is_true(trio.ClosedResourceError:is(closed))
    assert.is_true(trio.BusyResourceError:is(busy))
    assert.is_true(trio.BrokenResourceError:is(broken), tostring(broken))
    assert.is_true(errors.BrokenPipeError:is(broken.cause))
    assert.is_true(trio.ClosedResourceError:is(recv_closed))
  end)

  it("wait_send_all_might_not_block is a send: busy beside another one, closed under it", function()
    local during_send, two_waits, wait_then_send, closed = run(function()
      local p = trio.lowlevel.open_process({ "cat" }, { stdout = "devnull" })
      local s = p.stdin
      -- the error of running first and second at once (a hang: TooSlowError)
      local function busy_pair(first, second)
        local ok, err = pcall(trio.fail_after, 2, trio.open_nursery, function(n)
          n:start_soon(first)
          n:start_soon(second)
        end)
        assert(not ok, "no error from two sends at once")
        return trio.ExceptionGroup:is(err) and err.exceptions[1] or err
      end
      -- a send_all waiting (cat is stopped, so the pipe stays full)
      p:send_signal("SIGSTOP")
      local e1 = busy_pair(function() s:send_all(string.rep("x", 1024 * 1024)) end, function()
        trio.testing.wait_all_tasks_blocked()
        s:wait_send_all_might_not_block()
      end)
      p:send_signal("SIGCONT")
      local p2 = trio.lowlevel.open_process({ "cat" }, { stdout = "devnull" })
      local s2 = p2.stdin
      local e2 = busy_pair(function() s2:wait_send_all_might_not_block() end,
        function() s2:wait_send_all_might_not_block() end)
      local e3 = busy_pair(function() s2:wait_send_all_might_not_block() end,
        function() s2:send_all("123") end)
      local e4
      trio.open_nursery(function(n)
        n:start_soon(function() e4 = errof(s2.wait_send_all_might_not_block, s2) end)
        n:start_soon(function() s2:close() end)
      end)
      p:kill()
      p:close()
      p2:close()
      return e1, e2, e3, e4
    end)
    for _, e in ipairs { during_send, two_waits, wait_then_send } do
      assert.is_true(trio.BusyResourceError:is(e), tostring(e))
    end
    assert.is_true(trio.ClosedResourceError:is(closed), tostring(closed))
  end)

  it("a pipe stream's fileno() is its fd, -1 once closed (as a socket's)", function()
    local open_fds, closed_fds = run(function()
      local p = trio.lowlevel.open_process({ "cat" }, { stderr = "devnull" })
      local fds = { p.stdin:fileno(), p.stdout:fileno() }
      p.stdin:close()
      p.stdout:close()
      p:wait()
      return fds, { p.stdin:fileno(), p.stdout:fileno() }
    end)
    for _, fd in ipairs(open_fds) do assert.is_true(math.type(fd) == "integer" and fd > 2) end
    assert.same({ -1, -1 }, closed_fds)
  end)

  it("close() of a send stream does not wait for another task's send: that send raises ClosedResourceError", function()
    local send_err, close_took = run(function()
      local p = trio.lowlevel.open_process({ "cat" }, { stdout = "devnull" })
      p:send_signal("SIGSTOP") -- the child stops reading: the send waits
      local err, took
      trio.open_nursery(function(n)
        n:start_soon(function() err = errof(p.stdin.send_all, p.stdin, string.rep("x", 1024 * 1024)) end)
        -- the safety valve: a write to a killed child fails, so a close
        -- waiting for it returns then
        n:start_soon(function() trio.sleep(2) p:kill() end)
        trio.testing.wait_all_tasks_blocked()
        local t0 = trio.current_time()
        p.stdin:close()
        took = trio.current_time() - t0
        n.cancel_scope:cancel()
      end)
      p:kill()
      p:close()
      return err, took
    end)
    assert.is_true(close_took < 1, "close took " .. close_took .. " s")
    assert.is_true(trio.ClosedResourceError:is(send_err), tostring(send_err))
  end)

  it("merges stderr into stdout with stderr='stdout'", function()
    local out = run(function()
      local p = trio.lowlevel.open_process({ "sh", "-c", "echo a; echo b >&2" },
        { stdin = "devnull", stderr = "stdout" })
      assert(p.stderr == nil)
      local chunks = {}
      while true do
        local s = p.stdout:receive_some()
        if s == "" then break end
        chunks[#chunks + 1] = s
      end
      p:wait()
      p.stdout:close()
      return table.concat(chunks)
    end)
    assert.equal("a\nb\n", out)
  end)

  it("stdio is stdin and stdout stapled, when both are pipes", function()
    local got, none = run(function()
      local p = trio.lowlevel.open_process({ "cat" }, { stderr = "inherit" })
      assert(p.stdio.send_stream == p.stdin and p.stdio.receive_stream == p.stdout)
      p.stdio:send_all("hi")
      p.stdio:send_eof()
      local data = p.stdio:receive_some()
      assert.equal("", p.stdio:receive_some())
      p:close()
      local q = trio.lowlevel.open_process({ "true" }, { stdin = "devnull" })
      local stdio = q.stdio
      q:close()
      return data, stdio
    end)
    assert.equal("hi", got)
    assert.is_nil(none)
  end)

  it("reaps a child whose Process was dropped (no zombie)", function()
    local pid = run(function()
      local p = trio.lowlevel.open_process({ "sleep", "0.1" }, { stdin = "devnull", stdout = "devnull", stderr = "devnull" })
      local id = p.pid
      p = nil -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      trio.sleep(0.4)
      return id
    end)
    assert.is_false(exists(pid))
  end)

  it("kills and reaps children still running when the Lua state closes", function()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
      package.path = "lua/?.lua;" .. package.path
      package.cpath = (os.getenv("TA_BUILD") or "build") .. "/?.so;" .. package.cpath
      local trio = require "trio"
      trio.run(function()
        local p = trio.lowlevel.open_process({ "sleep", "30" }, { stdin = "devnull", stdout = "devnull", stderr = "devnull" })
        io.write(p.pid, "\n")
        io.flush()
      end)
      os.exit(0, true)
    ]])
    f:close()
    local p = assert(io.popen("lua5.4 " .. script))
    local pid = p:read("l")
    local ok = p:close()
    os.remove(script)
    assert.is_true(ok)
    assert.is_string(pid)
    assert.is_false(exists(pid))
  end)

  it("raises argument errors for bad options", function()
    local e1, e2, e3 = run(function()
      return errof(trio.lowlevel.open_process, { "true" }, { stdin = "file" }),
        errof(trio.lowlevel.open_process, { "true" }, { stdout = "stdout" }),
        errof(trio.lowlevel.open_process, { "true" }, { env = "x" })
    end)
    assert_has(e1, "stdin must be \"pipe\", \"inherit\", \"devnull\" or an fd")
    assert_has(e2, "stdout must be")
    assert_has(e3, "env must be a table of strings")
  end)
end)

describe("asyncio subprocesses", function()
  local PIPE, STDOUT, DEVNULL = asyncio.subprocess.PIPE, asyncio.subprocess.STDOUT, asyncio.subprocess.DEVNULL

  it("create_subprocess_exec with pipes: communicate feeds stdin and returns stdout, stderr", function()
    local out, err, rc = aio_run(function()
      local p = asyncio.create_subprocess_exec("sh", "-c", "cat; echo problem >&2; exit 2",
        { stdin = PIPE, stdout = PIPE, stderr = PIPE })
      local o, e = p:communicate("fed input")
      return o, e, p.returncode
    end)
    assert.same({ "fed input", "problem\n", 2 }, { out, err, rc })
  end)

  it("create_subprocess_exec passes every argument, numbers as their strings, also past 16", function()
    local args, want = { "printf", "%s|", 1.5 }, { "1.5" }
    for i = 1, 40 do
      args[#args + 1] = i % 2 == 0 and i or ("a" .. i)
      want[#want + 1] = tostring(args[#args])
    end
    args[#args + 1] = { stdout = PIPE }
    local out = aio_run(function()
      return (asyncio.create_subprocess_exec(table.unpack(args)):communicate())
    end)
    assert.equal(table.concat(want, "|") .. "|", out)
  end)

  it("inherits stdio by default: no pipes, communicate returns nil, nil", function()
    local r = aio_run(function()
      local p = asyncio.create_subprocess_exec("true")
      local o, e = p:communicate()
      return { p.stdin == nil, p.stdout == nil, o, e, p.returncode }
    end)
    assert.same({ true, true, nil, nil, 0 }, r)
  end)

  it("DEVNULL and STDOUT", function()
    local out = aio_run(function()
      local p = asyncio.create_subprocess_shell("cat; echo e >&2", { stdin = DEVNULL, stdout = PIPE, stderr = STDOUT })
      local o = p:communicate()
      return o
    end)
    assert.equal("e\n", out)
  end)

  it("reads the pipes like StreamReaders", function()
    local r = aio_run(function()
      local p = asyncio.create_subprocess_shell("printf 'one\\ntwo\\nthree:four'", { stdout = PIPE })
      local out = p.stdout
      local res = { out:readline(), out:readexactly(4), out:readuntil(":"), out:at_eof() }
      local e = errof(out.readexactly, out, 10)
      res[#res + 1] = e.partial
      res[#res + 1] = e.expected
      res[#res + 1] = asyncio.IncompleteReadError:is(e)
      res[#res + 1] = out:at_eof()
      res[#res + 1] = out:read()
      res[#res + 1] = p:wait()
      return res
    end)
    assert.same({ "one\n", "two\n", "three:", false, "four", 10, true, true, "", 0 }, r)
  end)

  it("lines() iterates the output", function()
    local lines = aio_run(function()
      local p = asyncio.create_subprocess_exec("printf", "a\\nb\\n\\nc", { stdout = PIPE })
      local got = {}
      for line in p.stdout:lines() do got[#got + 1] = line end
      p:wait()
      return got
    end)
    assert.same({ "a", "b", "", "c" }, lines)
  end)

  it("writes with drain and write_eof; a child that is gone makes drain raise BrokenPipeError", function()
    local out, broken = aio_run(function()
      local p = asyncio.create_subprocess_exec("cat", { stdin = PIPE, stdout = PIPE })
      p.stdin:write("line 1\n")
      p.stdin:writelines { "line 2\n", "line 3\n" }
      p.stdin:drain()
      p.stdin:write_eof()
      local o = p.stdout:read()
      p:wait()
      local q = asyncio.create_subprocess_exec("true", { stdin = PIPE })
      q:wait()
      q.stdin:write(string.rep("x", 100000))
      local e = errof(q.stdin.drain, q.stdin)
      q.stdin:close()
      return o, e
    end)
    assert.equal("line 1\nline 2\nline 3\n", out)
    assert.is_true(errors.BrokenPipeError:is(broken), tostring(broken))
  end)

  it("terminate, kill and send_signal", function()
    local codes = aio_run(function()
      local got = {}
      for _, how in ipairs { "terminate", "kill", "SIGUSR1" } do
        local p = asyncio.create_subprocess_exec("sleep", "10")
        if how == "terminate" then p:terminate()
        elseif how == "kill" then p:kill()
        else p:send_signal(how) end
        got[#got + 1] = p:wait()
      end
      return got
    end)
    assert.same({ -15, -9, -10 }, codes)
  end)

  it("a cancelled wait raises CancelledError and leaves the child running", function()
    local e, running, code = aio_run(function()
      local p = asyncio.create_subprocess_exec("sleep", "10")
      local err = errof(asyncio.wait_for, function() return p:wait() end, 0.05)
      local alive = p.returncode == nil
      p:kill()
      return err, alive, p:wait()
    end)
    assert.is_true(asyncio.TimeoutError:is(e))
    assert.is_true(running)
    assert.equal(-9, code)
  end)

  it("a cancelled read or communicate loses no data and leaves the pipe usable", function()
    local r = aio_run(function()
      local p = asyncio.create_subprocess_exec("sh", "-c", "sleep 0.3; echo late",
        { stdout = PIPE })
      local e1 = errof(asyncio.wait_for, function() return p.stdout:read() end, 0.05)
      local out1 = p.stdout:read()
      local q = asyncio.create_subprocess_exec("sh", "-c", "cat; sleep 0.3; echo late",
        { stdin = PIPE, stdout = PIPE })
      local e2 = errof(asyncio.wait_for, function() return q:communicate("fed ") end, 0.15)
      local out2 = q.stdout:read()
      return { e1, out1, p:wait(), e2, out2, q:wait() }
    end)
    assert.is_true(asyncio.TimeoutError:is(r[1]), tostring(r[1]))
    assert.equal("late\n", r[2])
    assert.is_true(asyncio.TimeoutError:is(r[4]), tostring(r[4]))
    assert.same({ 0, "fed late\n", 0 }, { r[3], r[5], r[6] })
  end)

  it("a cancelled drain raises CancelledError; the write goes on", function()
    local r = aio_run(function()
      local p = asyncio.create_subprocess_exec("sh", "-c", "sleep 0.3; wc -c", { stdin = PIPE, stdout = PIPE })
      p.stdin:write(string.rep("x", 1024 * 1024)) -- more than the pipe holds
      local e = errof(asyncio.wait_for, function() return p.stdin:drain() end, 0.05)
      p.stdin:drain()
      p.stdin:close()
      return { e, p.stdout:read(), p:wait() }
    end)
    assert.is_true(asyncio.TimeoutError:is(r[1]), tostring(r[1]))
    assert.equal("1048576", r[2]:match("%d+"))
    assert.equal(0, r[3])
  end)

  it("a write that fails closes the stdin writer, as asyncio's pipe transport", function()
    local r = aio_run(function()
      local p = asyncio.create_subprocess_exec("true", { stdin = PIPE })
      p:wait()
      local before = p.stdin:is_closing()
      p.stdin:write(string.rep("x", 100000))
      local e = errof(p.stdin.drain, p.stdin)
      return { before, e, p.stdin:is_closing(), p.stdin:get_extra_info("pipe") }
    end)
    assert.is_false(r[1])
    assert.is_true(errors.BrokenPipeError:is(r[2]), tostring(r[2]))
    assert.is_true(r[3])
    assert.is_nil(r[4])
  end)

  it("loop:subprocess_exec cancelled while it connects kills and reaps the child", function()
    local r = aio_run(function()
      local loop = asyncio.get_running_loop()
      local proto = { lost = loop:create_future() }
      function proto:connection_made(t) self.transport = t end
      function proto:connection_lost() self.lost:set_result(true) end
      local task = loop:create_task(loop.subprocess_exec, loop, function() return proto end, "sleep", "10")
      loop:call_soon(function() task:cancel() end)
      local e = errof(task.await, task)
      local running_after = proto.transport:get_returncode()
      asyncio.wait_for(proto.lost, 5)
      return { e, running_after, proto.transport:get_returncode(), tostring(proto.transport) }
    end)
    assert.is_true(asyncio.CancelledError:is(r[1]), tostring(r[1]))
    assert.equal(-9, r[2]) -- reaped before the CancelledError came out
    assert.equal(-9, r[3])
    assert.matches("^asyncio%.SubprocessTransport pid=%d+ returncode=%-9$", r[4])
  end)

  it("raises FileNotFoundError for a missing program, and argument errors for bad options", function()
    local e1, e2, e3, e4, e5 = aio_run(function()
      return errof(asyncio.create_subprocess_exec, "no-such-program-for-spec"),
        errof(asyncio.create_subprocess_exec, "true", { bufsize = 4096 }),
        errof(asyncio.create_subprocess_shell, { "ls" }),
        errof(asyncio.create_subprocess_exec, "true", { stdout = "pipe" }),
        errof(asyncio.create_subprocess_exec, "true", { limit = 0 })
    end)
    assert.is_true(errors.FileNotFoundError:is(e1))
    assert.equal("no-such-program-for-spec", e1.filename)
    assert_has(e2, "bufsize must be 0")
    assert_has(e3, "bad argument #1 to 'create_subprocess_shell' (command string expected")
    assert_has(e4, "stdout must be asyncio.subprocess.PIPE")
    assert_has(e5, "bad argument to 'create_subprocess_exec' (limit must be a positive integer, got 0)")
  end)

  it("its methods called on something else than a Process raise argument errors, trio's alike", function()
    local r = aio_run(function()
      local p = asyncio.create_subprocess_exec("true")
      local es = { errof(p.kill, nil), errof(p.send_signal, {}, "SIGTERM"), errof(p.wait, "x"), p:wait() }
      return es
    end)
    assert_has(r[1], "bad argument #1 to 'kill' (asyncio.Process expected, got nil)")
    assert_has(r[2], "bad argument #1 to 'send_signal' (asyncio.Process expected, got table)")
    assert_has(r[3], "bad argument #1 to 'wait' (asyncio.Process expected, got string)")
    assert.equal(0, r[4])
    local t = run(function()
      local p = trio.lowlevel.open_process({ "true" })
      local e = errof(p.terminate, io.stdout)
      p:close()
      return e
    end)
    assert_has(t, "bad argument #1 to 'terminate' (trio.Process expected, got FILE*)")
  end)

  it("is asyncio-flavored", function()
    local e = run(function() return errof(asyncio.create_subprocess_exec, "true") end)
    assert.is_true(errors.FlavorError:is(e))
  end)
end)

describe("subprocesses across the bridge", function()
  it("trio.run_process in open_loop, asyncio.create_subprocess_exec through aio_as_trio", function()
    local a, b = ta.run(function()
      local r = trio.run_process({ "echo", "trio" }, { capture_stdout = true })
      local out = ta.aio_as_trio(function()
        local p = asyncio.create_subprocess_exec("echo", "asyncio", { stdout = asyncio.subprocess.PIPE })
        local o = p:communicate()
        return o
      end)()
      return r.stdout, out
    end)
    assert.same({ "trio\n", "asyncio\n" }, { a, b })
  end)

  it("Trio cancellation of aio_as_trio cancels an asyncio wait for a child", function()
    local scope = ta.run(function()
      local p
      local s = trio.move_on_after(0.1, ta.aio_as_trio(function()
        p = asyncio.create_subprocess_exec("sleep", "10")
        return p:wait()
      end))
      ta.aio_as_trio(function()
        p:kill()
        p:wait()
      end)()
      return s
    end)
    assert.is_true(scope.cancelled_caught)
  end)
end)
