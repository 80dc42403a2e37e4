--- child.lua: run Lua code or a C host program in a child process with a
-- time limit, for specs of behaviour that may crash or hang (a crash must
-- fail one test, not kill the spec file).  require "child".
--
-- The child is `lua5.4` as found on PATH (under `make sanitize` that is
-- the shim of scripts/test.sh that preloads libasan), with the module paths
-- of the build under test ($TA_BUILD, default build/).
local M = {}

local BUILD = os.getenv("TA_BUILD") or "build"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

local function trim(s) return (s:gsub("%s+$", "")) end

local tmpdir
local function tmp()
  if tmpdir == nil then
    tmpdir = trim(sh("mktemp -d /tmp/ta-child-XXXXXX"))
  end
  return tmpdir
end

--- Removes the temporary files (call from a teardown).
function M.cleanup()
  if tmpdir then os.execute("rm -rf " .. tmpdir) end
  tmpdir = nil
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local counter = 0

--- Classifies how a child ended: "ok" (exit 0), "error" (exit 1: a Lua
-- error), "timeout", "crash" (a signal or a sanitizer report), or
-- "exit N".
local function classify(code, out, err)
  if code == 124 or code == 137 then return "timeout" end
  if (err .. out):find("ERROR: AddressSanitizer", 1, true) or (err .. out):find("runtime error:", 1, true)
      or (err .. out):find("ThreadSanitizer", 1, true) or (err .. out):find("PANIC: unprotected error", 1, true) then
    return "crash"
  end
  if code == 0 then return "ok" end
  if code == 1 then return "error" end
  if code > 128 or code == 134 or code == 139 then return "crash" end
  return "exit " .. tostring(code)
end

--- run(code [, opts]) -> result table {status=, code=, out=, err=}: runs
-- the Lua chunk `code` in a fresh lua5.4 (stdout and stderr captured
-- apart).  opts.timeout (seconds, default 10), opts.ulimit_stack (KB),
-- opts.args (string appended to the command line), opts.stdin (a shell
-- command whose output feeds the child's stdin).
function M.run(code, opts)
  opts = opts or {}
  counter = counter + 1
  local dir = tmp()
  local file = ("%s/chunk%d.lua"):format(dir, counter)
  local f = assert(io.open(file, "wb"))
  f:write(code)
  f:close()
  local errfile = file .. ".err"
  local cmd = ("LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;;' LUA_CPATH='%s/?.so;;' "
    .. "LUA_INIT= timeout -k 2 %d lua5.4 %s %s 2>%s"):format(BUILD, opts.timeout or 10, file,
      opts.args or "", errfile)
  if opts.ulimit_stack then cmd = ("ulimit -s %d; %s"):format(opts.ulimit_stack, cmd) end
  if opts.stdin then cmd = ("%s | (%s)"):format(opts.stdin, cmd) end
  local p = assert(io.popen("(" .. cmd .. ")"))
  local out = p:read("a")
  local ok, _, status = p:close()
  local exit = ok and 0 or status
  local err = slurp(errfile)
  return { status = classify(exit, out, err), code = exit, out = out, err = err }
end

--- A readable account of a child's run, for assertion messages.
function M.describe(r)
  return ("\n--- child: %s (exit %s)\nstdout:\n%s\nstderr:\n%s"):format(r.status, tostring(r.code),
    r.out, r.err:sub(1, 4000))
end

--- Asserts the child exited 0 and printed every line of `lines` (exact
-- lines); returns the result.
function M.expect_lines(r, lines)
  assert(r.status == "ok", "the child did not finish cleanly" .. M.describe(r))
  local seen = {}
  for l in r.out:gmatch("[^\n]+") do seen[l] = true end
  for _, l in ipairs(lines) do
    assert(seen[l], ("missing line %q"):format(l) .. M.describe(r))
  end
  return r
end

-- ---------------------------------------------------------------------
-- C host programs (spec/host/NAME.c), linked with $TA_BUILD/libtrio_asyncio.a
-- (with ASan when the library was built with it), as spec/embed_spec.lua
-- does.

local compiled = {}

local function host_flags()
  local lib = BUILD .. "/libtrio_asyncio.a"
  local cflags, ldflags = os.getenv("TA_CFLAGS"), os.getenv("TA_LDFLAGS")
  if cflags == nil and ldflags == nil then
    local blob = slurp(lib)
    if blob:find("__asan_", 1, true) then
      cflags, ldflags = "-g -fsanitize=address,undefined", "-fsanitize=address,undefined"
    end
  end
  local pc = trim(sh("pkg-config --cflags lua5.4 libuv"))
  local libs = trim(sh("pkg-config --libs lua5.4 libuv openssl"))
  return ("-std=gnu11 -Wall -Wextra -Werror -Icsrc/include -Ispec/host %s %s"):format(pc, cflags or ""),
         ("%s -lm -lpthread %s"):format(libs, ldflags or ""), lib
end

--- Compiles spec/host/NAME.c once; returns the program's path.
function M.host_program(name)
  if compiled[name] then return compiled[name] end
  local cflags, ldflags, lib = host_flags()
  assert(io.open(lib, "rb"), lib .. " is missing: run make first"):close()
  local exe = tmp() .. "/" .. name
  local out, code = sh(("cc %s spec/host/%s.c %s %s -o %s"):format(cflags, name, lib, ldflags, exe))
  assert(code == 0, ("compiling spec/host/%s.c failed:\n%s"):format(name, out))
  compiled[name] = exe
  return exe
end

--- run_program(name, args [, opts]): runs spec/host/NAME.c (compiled once)
-- with the argument string; same result shape as run().
function M.run_program(name, args, opts)
  opts = opts or {}
  local exe = M.host_program(name)
  counter = counter + 1
  local errfile = ("%s/prog%d.err"):format(tmp(), counter)
  local p = assert(io.popen(("timeout -k 2 %d %s %s 2>%s"):format(opts.timeout or 60, exe, args or "", errfile)))
  local out = p:read("a")
  local ok, _, code = p:close()
  code = ok and 0 or code
  local err = slurp(errfile)
  return { status = classify(code, out, err), code = code, out = out, err = err }
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- run_host(chunk [, opts]): runs spec/host/hostile.c with the Lua chunk
-- (its `host` table offers what only a C host can do); same result shape
-- as run().  opts.timeout (seconds, default 10).
function M.run_host(chunk, opts)
  opts = opts or {}
  local exe = M.host_program("hostile")
  counter = counter + 1
  local errfile = ("%s/host%d.err"):format(tmp(), counter)
  local cmd = ("timeout -k 2 %d %s %s %d 2>%s"):format((opts.timeout or 10) + 2, exe,
    shell_quote(chunk), opts.timeout or 10, errfile)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok, _, code = p:close()
  code = ok and 0 or code
  local err = slurp(errfile)
  local r = { code = code, out = out, err = err }
  r.status = classify(code, out, err)
  if r.status == "ok" and not out:find("exit ok", 1, true) then r.status = "exit without 'exit ok'" end
  return r
end

return M
