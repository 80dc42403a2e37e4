--- ignoring_child.lua: runs a Lua script in a child process that starts
-- with a signal ignored (SIG_IGN inherited through exec), for the ported
-- tests that set SIG_IGN before the code under test runs (require
-- "conformance.ignoring_child").  env sets it after `timeout`, which
-- handles some signals itself (SIGCHLD among them).
local M = {}

--- M.run(signal_name, body) -> whether the child exited with 0, and its
-- output (stdout and stderr).  signal_name as env takes it: "CHLD",
-- "USR1".  body runs with this process's package.path and package.cpath.
function M.run(signal_name, body)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(("package.path = %q\npackage.cpath = %q\n"):format(package.path, package.cpath), body)
  f:close()
  local p = assert(io.popen(("timeout 30 env --ignore-signal=%s lua5.4 %s 2>&1"):format(signal_name, path)))
  local out = p:read("a")
  local ok = p:close()
  os.remove(path)
  return ok, out
end

return M
