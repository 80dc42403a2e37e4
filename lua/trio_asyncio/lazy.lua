--- trio_asyncio.lazy: parts of a module installed on first use.
--
-- trio and asyncio install their I/O faces (sockets, streams, files,
-- processes, signals, threads) only when something looks them up: most of
-- their load time was compiling those modules, and what a program never
-- uses should not weigh on it (a bigger heap also makes every fork of
-- `uv_spawn` dearer).  `defer({part1, part2, ...}, t1, t2, ...)` gives each
-- table a metatable such that the lookup of a key the table lacks installs
-- the parts not yet installed, in order, until one of them has added the
-- key (the cheap, common parts come first: a program that spawns processes
-- does not compile the TLS code); a key no part adds installs them all and
-- finds nil, and so does the first pairs() over a table, which then sees
-- every name.  Once every part is in, the metatables are gone, so lookups
-- cost what they did before.  A part runs with the parts before it
-- installed and none after it, as when they were installed eagerly in
-- order: a lookup made while a part installs finds nil for a name not yet
-- installed.
local pairs_next = next
local setmetatable, rawget, ipairs, pcall, error = setmetatable, rawget, ipairs, pcall, error

local M = {}

--- defer(parts, ...) -> load: parts is a list of functions, each adding
-- names to the tables; load() installs every part left.
function M.defer(parts, ...)
  local tables = { ... }
  local installed, loading = 0, false
  -- installs the next part; false when every part is in
  local function install_next()
    if installed == #parts then return false end
    installed = installed + 1
    loading = true
    if installed == #parts then
      for _, t in ipairs(tables) do setmetatable(t, nil) end
    end
    local ok, err = pcall(parts[installed]) -- (a part that fails is not tried again)
    loading = false
    if not ok then error(err, 0) end
    return true
  end
  local function load()
    if loading then return end
    while install_next() do end
  end
  local mt = {
    __index = function(t, k)
      if not loading then
        while rawget(t, k) == nil and install_next() do end
      end
      return rawget(t, k)
    end,
    __pairs = function(t)
      load()
      return pairs_next, t, nil
    end,
  }
  for _, t in ipairs(tables) do setmetatable(t, mt) end
  return load
end

return M
