--- The Lua-side state of an asyncio loop, declared in one place.
--
-- The C loop keeps a table per loop (core.loop_attrs); asyncio.lua and
-- trio_asyncio.lua both read and write it.  Every field either module
-- uses is declared below with its meaning; reading or writing any other
-- field raises at once, so a misspelt or undeclared key cannot silently
-- become a second piece of state.
local core = require "trio_asyncio.core"

local FIELDS = {
  -- asyncio.lua: the loop's own settings and run_forever/run_until_complete
  running = "a driver is running the loop (sync loop run, or open_loop)",
  stopping = "stop() was called; the running wait ends after this batch",
  wake = "trio.Event set whenever a running wait should look again",
  debug = "set_debug(true) is on",
  slow_callback_duration = "seconds a callback may take before debug mode reports it",
  exception_handler = "set_exception_handler's handler, or nil",
  default_handler_hook = "called by default_exception_handler first (open_loop: raise it)",
  drive = "how run_until_complete drives a sync loop (trio_asyncio), or nil",
  on_close = "what close() must also do (trio_asyncio's sync loop), or nil",
  abandon = "what gives up a loop whose close() raised (trio_asyncio's sync loop), or nil",
  stop_hook = "what stop() does instead (an open_loop loop: see trio_asyncio), or nil",
  transports = "set of the loop's open transports and servers (closed with the loop), or nil",
  -- trio_asyncio.lua: the loop on the Trio scheduler
  bridged = "an open_loop loop: run_until_complete/run_forever refuse it",
  service = "the shielded nursery where Trio tasks started from asyncio run",
  service_ready = "trio.Event set once that nursery is open (service is set)",
  service_exited = "trio.Event set when that nursery has closed",
  body_scope = "the cancel scope of open_loop's body",
  pending_error = "first error the default exception handler got (open_loop raises it)",
  stopped = "trio.Event set once an open_loop loop has stopped (stop(), wait_stopped())",
  stop_wait = "the Event of the stop() in progress, returned to a second stop()",
  stop_waiters = "set of Events passed to stop(event), set when open_loop ends",
  background = "a sync loop's driver run is alive between run_until_complete calls",
  background_stop = "trio.Event that ends the sync loop's driver run",
  background_error = "how the sync loop's driver run failed, raised by the next call",
}

local strict = {
  __index = function(_, k)
    if FIELDS[k] == nil then error(("loop state has no field '%s'"):format(tostring(k)), 2) end
    return nil
  end,
  __newindex = function(t, k, v)
    if FIELDS[k] == nil then error(("loop state has no field '%s'"):format(tostring(k)), 2) end
    rawset(t, k, v)
  end,
}

return {
  --- new_loop() -> a new loop whose state is strict (every loop is made here).
  new_loop = function()
    local loop = core.loop_new()
    setmetatable(core.loop_attrs(loop), strict)
    return loop
  end,
  --- of(loop) -> the state table of loop (a C function: no cost on hot paths).
  of = core.loop_attrs,
}
