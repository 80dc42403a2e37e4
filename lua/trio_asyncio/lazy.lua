--- trio_asyncio.lazy: parts of a module installed on first use.
--
-- trio and asyncio install their I/O faces (sockets, streams, files,
-- processes, signals, threads) only when something looks them up: most of
-- their load time was compiling those modules.  `defer(install, t1, t2,
-- ...)` gives each table a metatable such that the first lookup of a key
-- the table lacks, or the first pairs() over it, runs install() (which
-- adds the names), then answers from the table; afterwards the metatables
-- are gone, so lookups cost what they did before and pairs() sees every
-- name.  A lookup made by install() itself of a name not yet installed
-- finds nil, as it would with the parts installed eagerly in order.
local pairs_next = next
local setmetatable, rawget, ipairs = setmetatable, rawget, ipairs

local M = {}

--- defer(install, ...) -> load: install() runs once, at the first miss
-- or pairs() on one of the tables, or when load() is called.
function M.defer(install, ...)
  local tables = { ... }
  local state = "pending"
  local function load()
    if state ~= "pending" then return end
    state = "loading"
    for _, t in ipairs(tables) do setmetatable(t, nil) end
    install()
    state = "done"
  end
  local mt = {
    __index = function(t, k)
      load()
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
