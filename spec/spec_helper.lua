-- spec_helper.lua: loaded by busted before every spec file (see .busted and
-- scripts/test.sh).  It puts lua/ and the build on the module paths and,
-- after every test, checks that nothing was left behind: no live task, no
-- libuv handle of ours, no run still active, no new file descriptor.  A leak
-- is reported as an extra "not ok" line, which scripts/test.sh counts as a
-- failure (busted gives helpers no way to fail the test itself).
local build = os.getenv("TA_BUILD") or "build"
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local busted = require "busted"
local ok_core, core = pcall(require, "trio_asyncio.core")
local ok_lfs, lfs = pcall(require, "lfs")

local function count_fds()
  if not ok_lfs then return 0 end
  local n = 0
  local ok = pcall(function()
    for _ in lfs.dir("/proc/self/fd") do n = n + 1 end
  end)
  return ok and n or 0
end

local fds_before

busted.subscribe({ "test", "start" }, function()
  fds_before = count_fds()
  return nil, true
end)

busted.subscribe({ "test", "end" }, function(element)
  local problems = {}
  if ok_core then
    collectgarbage("collect")
    local st = core.debug_state()
    if st.running then problems[#problems + 1] = "a trio run is still active" end
    if st.tasks > 0 then problems[#problems + 1] = st.tasks .. " live task(s)" end
    if st.handles > 0 then problems[#problems + 1] = st.handles .. " libuv handle(s)" end
  end
  local fds = count_fds()
  if fds_before and fds > fds_before then
    problems[#problems + 1] = (fds - fds_before) .. " file descriptor(s)"
  end
  if #problems > 0 then
    io.write(("not ok - left behind by %q: %s\n"):format(element.name or "?", table.concat(problems, ", ")))
  end
  return nil, true
end)
