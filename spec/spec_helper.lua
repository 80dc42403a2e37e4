-- spec_helper.lua: loaded by busted before the spec files (see .busted and
-- scripts/test.sh).  It puts lua/ and the build on the module paths, then
-- checks after every test that the test left nothing behind: no live task,
-- no libuv handle of ours, no run still active, no new file descriptor.
--
-- The check is a suite-level after_each hook: busted runs it after the
-- spec's own after_each and `finally` blocks, so cleanup done there counts.
-- busted has already reported the test itself by then, so a leak shows up
-- as an extra failure ("suite leak check") whose message names the test.

-- The core comes from the build under test only: drop the default "./?.so",
-- which would find a stray trio_asyncio/core.so (luarocks builds one in the
-- source tree) when $TA_BUILD has none.
local build = os.getenv("TA_BUILD") or "build"
if os.getenv("TA_INSTALLED") then
  -- `luarocks test` (TA_INSTALLED=1): the modules come from the installed
  -- rock, found through LUA_PATH / LUA_CPATH as `luarocks path` sets them,
  -- never from this checkout's lua/ or build/.
  local cwd = os.getenv("PWD") or "."
  local function installed_only(path)
    local keep = {}
    for entry in path:gmatch("[^;]+") do
      if entry:sub(1, 1) == "/" and entry:sub(1, #cwd + 5) ~= cwd .. "/lua/"
          and entry:sub(1, #cwd + 6) ~= cwd .. "/build" then
        keep[#keep + 1] = entry
      end
    end
    return table.concat(keep, ";")
  end
  package.path = "spec/?.lua;" .. installed_only(package.path)
  package.cpath = installed_only(package.cpath)
  assert(package.searchpath("trio", package.path) and package.searchpath("trio_asyncio.core", package.cpath),
    "TA_INSTALLED: trio is not installed where LUA_PATH and LUA_CPATH point (eval \"$(luarocks path)\" first)")
else
  package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
  package.cpath = build .. "/?.so;" .. package.cpath:gsub("%./%?%.so;?", "")
end

-- TA_GC=incremental runs the suite in the GC mode a C host gets from
-- luaL_newstate (the lua5.4 binary switches to generational).
if os.getenv("TA_GC") == "incremental" then collectgarbage("incremental") end

local busted = require "busted"
local lfs = require "lfs"   -- a dependency of busted itself

-- The core may not have debug_state yet (or may not be built): then only
-- file descriptors are checked.
local ok_core, core = pcall(require, "trio_asyncio.core")
local debug_state = ok_core and type(core) == "table" and core.debug_state

local function count_fds()
  local n = 0
  for _ in lfs.dir("/proc/self/fd") do n = n + 1 end
  return n
end

-- "outer describe inner test", as busted prints it.
local function full_name(element)
  local names = { element.name }
  local parent = busted.parent(element)
  while parent and parent.descriptor ~= "file" and parent.name do
    table.insert(names, 1, parent.name)
    parent = busted.parent(parent)
  end
  return table.concat(names, " ")
end

local current_test, fds_before

busted.subscribe({ "test", "start" }, function(element)
  current_test = element
  return nil, true   -- let the other subscribers (the output handler) run
end)

-- Suite-level hooks: before_each runs before the spec's own, after_each after.
busted.before_each(function()
  fds_before = count_fds()
end)

busted.after_each("leak check", function()
  -- What is only reachable from garbage is not a leak: the runtime closes
  -- collected handles.  Two cycles, so objects with finalizers are freed too.
  collectgarbage("collect")
  collectgarbage("collect")
  local problems = {}
  if debug_state then
    local st = debug_state()
    if st.running then problems[#problems + 1] = "a run is still active" end
    if st.tasks > 0 then problems[#problems + 1] = st.tasks .. " live task(s)" end
    if st.handles > 0 then problems[#problems + 1] = st.handles .. " open libuv handle(s)" end
  end
  local fds = count_fds()
  if fds_before and fds > fds_before then
    problems[#problems + 1] = ("%d file descriptor(s) left open (%d before, %d after)")
      :format(fds - fds_before, fds_before, fds)
  end
  if #problems > 0 then
    local name = current_test and full_name(current_test) or "?"
    error(("leak check after '%s': %s"):format(name, table.concat(problems, ", ")), 0)
  end
end)
