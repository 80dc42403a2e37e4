--- asyncio: the asyncio-flavored event loop.  The loop, Futures and Tasks
-- arrive with their own issue; until then this module only carries the
-- error classes so that code can already test for them.
local errors = require "trio.errors"

local asyncio = {}
asyncio.CancelledError = errors.class("asyncio.CancelledError", errors.Error, "cancelled")
asyncio.TimeoutError = errors.class("asyncio.TimeoutError", errors.Error, "timed out")
asyncio.InvalidStateError = errors.class("asyncio.InvalidStateError", errors.Error)
asyncio.IncompleteReadError = errors.class("asyncio.IncompleteReadError", errors.Error)
asyncio.LimitOverrunError = errors.class("asyncio.LimitOverrunError", errors.Error)
asyncio.QueueEmpty = errors.class("asyncio.QueueEmpty", errors.Error)
asyncio.QueueFull = errors.class("asyncio.QueueFull", errors.Error)

return asyncio
