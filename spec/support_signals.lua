--- support_signals.lua: what the signal specs share (require
-- "support_signals"): sending a signal to this process, and reading
-- whether it catches a signal now, so that a spec can check that the
-- previous handling comes back.
local M = {}

do
  local stat <close> = assert(io.open("/proc/self/stat"))
  M.PID = stat:read("l"):match("^(%d+)")
end

--- M.kill(name): kill(1) of this process with signal `name` ("USR1",
-- "INT"); the handler has run when it returns.  (io.popen, not
-- os.execute: system() ignores SIGINT while it waits.)
function M.kill(name)
  local p = assert(io.popen(("kill -%s %s"):format(name, M.PID)))
  p:read("a")
  assert(p:close())
end

--- M.caught(n): whether the process catches signal n now (SigCgt of
-- /proc/self/status).
function M.caught(n)
  for line in io.lines("/proc/self/status") do
    local mask = line:match("^SigCgt:%s*(%x+)")
    if mask then return (tonumber(mask:sub(-8), 16) >> (n - 1)) & 1 == 1 end
  end
  error("no SigCgt line")
end

-- Under valgrind (make valgrind) the tool catches every signal itself, so
-- SigCgt says "caught" for all of them: the checks of the process's own
-- handling are skipped there (nothing of ours catches SIGUSR1 at load).
local SIGCGT_OURS = not M.caught(10)

--- M.check_caught(n, expected): asserts whether signal n is caught now
-- (nothing under valgrind).
function M.check_caught(n, expected)
  if SIGCGT_OURS and M.caught(n) ~= expected then
    error(("caught(%d) is %s, expected %s"):format(n, tostring(not expected), tostring(expected)), 2)
  end
end

return M
