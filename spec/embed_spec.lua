-- The C embedding API (csrc/include/trio_asyncio.h): compiles the host
-- programs of spec/host/ against $TA_BUILD/libtrio_asyncio.a (default
-- build/) into a temp dir, runs them and asserts on their output.
-- Extra compiler / linker flags: $TA_CFLAGS / $TA_LDFLAGS (the sanitizer run
-- passes -fsanitize=address,undefined; when they are unset and the library
-- was built with ASan, that flag is added automatically).

local BUILD = os.getenv("TA_BUILD") or "build"
local LIB = BUILD .. "/libtrio_asyncio.a"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

local function trim(s) return (s:gsub("%s+$", "")) end

local function flags()
  local cflags, ldflags = os.getenv("TA_CFLAGS"), os.getenv("TA_LDFLAGS")
  if cflags == nil and ldflags == nil then
    local f = io.open(LIB, "rb")
    local blob = f and f:read("a") or ""
    if f then f:close() end
    if blob:find("__asan_", 1, true) then
      cflags, ldflags = "-g -fsanitize=address,undefined", "-fsanitize=address,undefined"
    end
  end
  local pc = trim(sh("pkg-config --cflags lua5.4 libuv"))
  local libs = trim(sh("pkg-config --libs lua5.4 libuv openssl"))
  return ("-std=gnu11 -Wall -Wextra -Werror -Icsrc/include -Ispec/host %s %s"):format(pc, cflags or ""),
         ("%s -lm -lpthread %s"):format(libs, ldflags or "")
end

local tmpdir, CFLAGS, LDFLAGS
local compiled = {}

-- Compiles spec/host/NAME.c (or examples/host/NAME.c) once; returns the
-- program's path.
local function program(name)
  if compiled[name] then return compiled[name] end
  local src = ("spec/host/%s.c"):format(name)
  if not io.open(src) then src = ("examples/host/%s.c"):format(name) end
  assert(io.open(LIB, "rb"), LIB .. " is missing: run make first"):close()
  if tmpdir == nil then
    tmpdir = trim(sh("mktemp -d /tmp/ta-embed-XXXXXX"))
    CFLAGS, LDFLAGS = flags()
  end
  local exe = tmpdir .. "/" .. name
  local out, code = sh(("cc %s %s %s %s -o %s"):format(CFLAGS, src, LIB, LDFLAGS, exe))
  assert(code == 0, ("compiling %s failed:\n%s"):format(src, out))
  compiled[name] = exe
  return exe
end

-- Runs a program (at most 60 s); returns stdout (a string), its lines as
-- a set, stderr and the exit code.
local function run(name, args, env)
  local exe = program(name)
  local errfile = tmpdir .. "/" .. name .. ".err"
  local cmd = ("cd %s && %s timeout -k 5 60 %s %s 2>%s"):format(tmpdir, env or "", exe, args or "", errfile)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok, _, code = p:close()
  local f = io.open(errfile, "rb")
  local err = f and f:read("a") or ""
  if f then f:close() end
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[l] = true end
  return out, lines, err, ok and 0 or code
end

-- Asserts that a program ran cleanly and printed every expected line.
local function expect(name, args, wanted, env)
  local out, lines, err, code = run(name, args, env)
  local ctx = ("\n--- %s %s: exit %s\nstdout:\n%s\nstderr:\n%s"):format(name, args or "", code, out, err)
  assert(code == 0, "the program failed" .. ctx)
  assert(not out:find("FAIL", 1, true), "a check failed" .. ctx)
  for _, l in ipairs(wanted) do
    assert(lines[l], ("missing line %q"):format(l) .. ctx)
  end
  return out, lines, err, ctx
end

teardown(function()
  if tmpdir then os.execute("rm -rf " .. tmpdir) end
end)

describe("trio_asyncio_preload", function()
  it("makes every module require-able with no Lua file on disk", function()
    local mods = {}
    for path in io.popen("find lua -name '*.lua' | sort"):lines() do
      mods[#mods + 1] = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
    end
    local wanted = { "without_preload not_found", "require trio_asyncio.core ok",
      "trio_run\t42", "asyncio_run\taio", "bridge_run\tbridged", "source\t@lua/trio.lua", "closed" }
    for _, m in ipairs(mods) do wanted[#wanted + 1] = "require " .. m .. " ok" end
    expect("preload", table.concat(mods, " "), wanted,
           "LUA_PATH='/nonexistent/?.lua' LUA_CPATH='/nonexistent/?.so' LUA_INIT=")
  end)
end)

describe("trio_asyncio_use_loop", function()
  it("runs guest tasks on the host's loop alongside the host's timer, then lets uv_loop_close succeed", function()
    local _, lines = expect("use_loop", nil, {
      "use_loop 0", "use_loop_again 0", "use_loop_other 1", "idle_uv_run 0",
      "start_returned steps\t0",          -- start_guest_run returns at once
      "done\ttrue\tfinished\t3", "uv_run_returned 0", "run_done 1", "lua_steps 30",
      "elapsed_ok 1", "done2\ttrue\t2", "second_run_done 1",
      "done3\ttrue\tidle", "cushion_run_done 1 in_time 1",
      "done4\ttrue\tmain", "system_task_run_done 1",
      "handles_left 0", "loop_close 0",
    })
    assert.truthy(lines["use_loop_null -22"])
    local out = run("use_loop")
    local seen = tonumber(out:match("distinct_ticks_seen (%d+)"))
    local during = tonumber(out:match("ticks_during_run (%d+)"))
    assert.is_true(seen >= 3, "the host timer fired between the tasks' steps")
    assert.is_true(during >= 5, "the host timer kept firing during the run")
  end)
end)

describe("trio_asyncio_step / backend_fd / backend_timeout", function()
  it("drives a guest run from a hand-written main loop", function()
    expect("step", nil, {
      "step_no_run 0", "step_no_run_fast 1", "timeout_idle -1", "backend_fd_valid 1",
      "timeout_ready 0", "step_first 1", "timeout_sleeping_ok 1",
      "step_zero 1 fast 1", "step_bounded 1 in_bounds 1",
      "done\ttrue\tslept", "run_ended 1", "not_early 1 not_late 1",
      "step_after 0", "timeout_after -1",
      "done_neg\ttrue", "step_negative_waited 1", "neg_run_ended 1",
      "closed",
    })
  end)

  it("wakes a host polling the backend fd when a thread posts a call", function()
    expect("step", nil, { "post_rc 0", "done_poll\ttrue\ttrue", "poll_woke_by_fd 1", "poll_fast 1" })
  end)
end)

describe("trio_asyncio_push_work", function()
  it("runs C work on a worker thread, waited for by tasks of both flavors", function()
    expect("work", nil, {
      "null_state -22", "trio\t42\tfrom C", "trio_error\tthe C work failed", "parallel\ttrue",
      "asyncio\t3\tfrom C", "cancelled\ttrue", "freed\t2", "loop_thread_violations 0", "closed",
    })
  end)
end)

describe("trio_asyncio_call_soon_threadsafe", function()
  for _, mode in ipairs { "loop", "step" } do
    it("runs 8 threads x 10,000 posts exactly once each (" .. mode .. " mode)", function()
      require("support").skip_under_gc_stress(pending)
      local _, _, err = expect("threads", mode, {
        "before_run 1", "null_fn 1", "raising_post 0", "done\ttrue\ttrue",
        "failed_posts 0", "ran 80000 of 80000", "missing 0 duplicated 0",
        "order_violations 0", "wrong_thread 0 wrong_state 0", "in_time 1",
        "after_run 1", "after_close 1", "loop_close 0",
      })
      assert.truthy(err:find("raised on purpose by a posted callback", 1, true))
    end)
  end
end)

describe("guest runs started from Lua", function()
  it("return at once and report results and errors to done_callback", function()
    local _, _, err = expect("guest", nil, {
      "fn_ran_before_return\tfalse",
      "results\t4\ttrue|x|nil|y",
      "error\t2\tfalse|boom",
      "group\tfalse\ttrue\tchild failed",
      "bad_fn\tbad argument #1 to 'start_guest_run' (function expected, got number)",
      "bad_opts\tbad argument #2 to 'start_guest_run' (table expected, got nil)",
      "bad_done\tstart_guest_run: opts.done_callback must be a function, got nil (it receives "
        .. "true, results... or false, error when the run ends)",
      "first\t2\ttrue|first",
      "after_raise\t2\ttrue|again",
      "loop_close 0",
    })
    assert.truthy(err:find("callback raised on purpose", 1, true))
  end)

  it("refuse a second concurrent run with a clear error", function()
    local out = expect("guest", nil, {
      "second_refused\tfalse\tstart_guest_run: a run is already active in this Lua state (one run at a time)",
      "second_ta_refused\tfalse\tstart_guest_run: a run is already active in this Lua state (one run at a time)",
      "nested\t3\ttrue|false|start_guest_run: a run is already active in this Lua state (one run at a time)",
    })
    assert.truthy(out:find("trio_run_refused\tfalse\t[^\n]*a run is already active in this Lua state"))
    -- the refused runs' callbacks were never called
    assert.falsy(out:find("\nsecond\t", 1, true))
    assert.falsy(out:find("second_ta\t", 1, true))
  end)

  it("trio_asyncio.start_guest_run opens an asyncio loop around fn", function()
    local out = expect("guest", nil, {
      "ta_results\t4\ttrue|true|arg+later|aio",
      "ta_error\t2\tfalse|aio boom",
    })
    assert.truthy(out:find("ta_bad_fn\tbad argument #1 to 'start_guest_run'", 1, true))
  end)
end)

describe("lua_close during a live guest run", function()
  for _, mode in ipairs { "loop", "step" } do
    for _, flavor in ipairs { "trio", "ta" } do
      it(("cancels the tasks and runs their cleanup (%s mode, %s)"):format(mode, flavor), function()
        local out = expect("close", mode .. " " .. flavor, {
          "started 1", "closing",
          "cleanup A pcall false true",     -- pcall around a wait sees Cancelled
          "cleanup B close",                -- <close> inside a pcall'd function
          "cleanup D nested",               -- a nested nursery's child
          "cleanup E channel",              -- a channel receive
          "cleanup F second_wait false",    -- waiting again fails at once
          "closed", "poster_refused 1", "post_after_close 1", "loop_close 0",
        })
        -- the cleanup ran inside lua_close, and the done callback did not run
        local closing, closed = out:find("closing\n", 1, true), out:find("closed\n", 1, true)
        assert.is_true(closing < out:find("cleanup A", 1, true) and out:find("cleanup A", 1, true) < closed)
        assert.falsy(out:find("done_callback", 1, true))
      end)
    end
  end
end)

describe("examples/host", function()
  it("host_uv: a host libuv loop with a timer, a guest run and a host thread", function()
    local out = expect("host_uv", nil, {
      "[lua]  start_guest_run returned at once",
      "[lua]  worker step 4",
      "[lua]  woken up: hello from a host thread",
      "[lua]  run finished:\ttrue\tall tasks done",
      "[host] post after the run: ECANCELED",
      "[host] uv_loop_close: 0",
    })
    assert.truthy(out:find("[host] timer tick 3", 1, true))
  end)

  it("host_mainloop: a 60 fps main loop stepping a trio_asyncio guest run", function()
    expect("host_mainloop", nil, {
      "[lua]  asyncio says hi",
      "[lua]  guest run finished:\ttrue\t50",
      "[host] 60 frames, Lua run finished",
    })
  end)
end)
