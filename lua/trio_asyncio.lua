--- trio_asyncio: the bridge between the Trio and asyncio flavors.  The loop
-- and the wrappers arrive with the bridge issue; the flavor machinery
-- (FlavorError, current_flavor) is already part of the core.
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
require "trio"

local M = {}

M.FlavorError = errors.FlavorError

--- "trio", "asyncio" or nil for the running task (what sniffio answers).
M.current_flavor = core.current_flavor

return M
