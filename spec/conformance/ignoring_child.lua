--- ignoring_child.lua: runs a Lua script in a child process that starts
-- with a signal ignored (SIG_IGN inherited through exec), for the ported
-- tests that set SIG_IGN before the code under test runs (require
-- "conformance.ignoring_child").  env sets it after `timeout`, which
-- handles some signals itself (SIGCHLD among them).
local M = {}

-- The command that starts lua5.4.  Under scripts/test.sh's TA_PRELOAD it
-- is a shell script (exec LOADER --preload LIB LUA "$@"), and a shell
-- sets SIGCHLD back to the default: the words of its exec line instead.
local function lua_command()
  local p = assert(io.popen("command -v lua5.4"))
  local path = p:read("l")
  p:close()
  local f = assert(io.open(path, "rb"))
  local text = f:read(256) or ""
  f:close()
  return text:sub(1, 2) == "#!" and text:match("\nexec (.-) \"%$@\"") or path
end

--- M.run(signal_name, body) -> whether the child exited with 0, and its
-- output (stdout and stderr).  signal_name as env takes it: "CHLD",
-- "USR1".  body runs with this process's package.path and package.cpath.
function M.run(signal_name, body)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(("package.path = %q\npackage.cpath = %q\n"):format(package.path, package.cpath), body)
  f:close()
  local p = assert(io.popen(("timeout 30 env --ignore-signal=%s %s %s 2>&1"):format(
    signal_name, lua_command(), path)))
  local out = p:read("a")
  local ok = p:close()
  os.remove(path)
  return ok, out
end

return M
