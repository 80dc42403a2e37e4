--- Error classes shared by trio, asyncio and trio_asyncio.
--
-- An error is a table whose metatable is its class.  Fields: `message`,
-- `traceback` (the stack where it was created), `cause` (an error it wraps).
-- `tostring(e)` gives "qualified.Name: message" and the traceback.
-- `Class:is(e)` is true for instances of Class and its subclasses, false
-- for anything else (strings included).
local M = {}

local classes = {}   -- short name -> class, for the C core's error factory

local function is(cls, e)
  if type(e) ~= "table" then return false end
  local c = getmetatable(e)
  -- a protected metatable (__metatable) shows a value that is no class
  while type(c) == "table" do
    if c == cls then return true end
    c = rawget(c, "__parent")
  end
  return false
end

local function error_tostring(e)
  local s = getmetatable(e).__name .. ": " .. tostring(e.message)
  if e.cause ~= nil then s = s .. "\ncaused by: " .. tostring(e.cause) end
  if e.traceback then s = s .. "\n" .. e.traceback end
  return s
end

--- Creates an instance: `Class("message")` or `Class{message=, cause=, ...}`.
local function construct(cls, arg, level)
  local e
  if type(arg) == "table" and getmetatable(arg) == nil then
    e = arg
  else
    e = { message = arg }
  end
  if e.message == nil then e.message = rawget(cls, "__default_message") or "" end
  e.message = tostring(e.message)
  if e.traceback == nil then e.traceback = debug.traceback("", level or 3):sub(2) end
  return setmetatable(e, cls)
end

--- Defines a class.  `name` is qualified ("trio.Cancelled"); the part after
-- the last dot is how the C core asks for it.
function M.class(name, parent, default_message)
  local cls = {
    __name = name,
    __parent = parent,
    __tostring = error_tostring,
    __default_message = default_message,
    is = is,
    new = function(c, arg)
      local e = construct(c, arg, 4)
      return e
    end,
  }
  cls.__index = cls
  setmetatable(cls, {
    __index = parent,
    __call = function(c, ...)
      local e = c.new(c, ...) -- not a tail call: the traceback starts at the caller
      return e
    end,
    __tostring = function() return "class " .. name end,
  })
  classes[name:match("[^.]+$")] = cls
  return cls
end

--- Argument checks shared by the Lua face.
function M.is_callable(f)
  local mt = getmetatable(f)
  return type(f) == "function" or (type(mt) == "table" and mt.__call ~= nil)
end

--- Raises "bad argument #n to 'fname' (msg)" at the caller of the public
-- function that calls this.
function M.argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

--- True for any error object made by this module.
function M.is_error(e)
  return type(e) == "table" and type(getmetatable(e)) == "table"
    and rawget(getmetatable(e), "is") == is
end

M.Error = M.class("trio_asyncio.Error")

-- Trio
M.Cancelled = M.class("trio.Cancelled", M.Error, "cancelled")
M.TooSlowError = M.class("trio.TooSlowError", M.Error, "deadline exceeded")
M.ClosedResourceError = M.class("trio.ClosedResourceError", M.Error)
M.BrokenResourceError = M.class("trio.BrokenResourceError", M.Error)
M.BusyResourceError = M.class("trio.BusyResourceError", M.Error)
M.EndOfChannel = M.class("trio.EndOfChannel", M.Error, "end of channel")
M.WouldBlock = M.class("trio.WouldBlock", M.Error, "operation would block")
M.RunFinishedError = M.class("trio.RunFinishedError", M.Error)
M.TrioInternalError = M.class("trio.TrioInternalError", M.Error)
M.KeyboardInterrupt = M.class("trio.KeyboardInterrupt", M.Error, "interrupted")
M.RuntimeError = M.class("trio.RuntimeError", M.Error)
M.ExceptionGroup = M.class("trio.ExceptionGroup", M.Error)
M.FlavorError = M.class("trio_asyncio.FlavorError", M.Error)

--- ExceptionGroup(message, exceptions [, tracebacks]): `exceptions` holds
-- the original error values, `tracebacks` one traceback string each.
function M.group(message, exceptions, tracebacks)
  local e = construct(M.ExceptionGroup, {
    message = message,
    exceptions = exceptions or {},
    tracebacks = tracebacks or {},
  }, 4)
  return e
end

function M.ExceptionGroup.new(_, message, exceptions, tracebacks)
  if type(message) == "table" and getmetatable(message) == nil then
    message.exceptions = message.exceptions or {}
    message.tracebacks = message.tracebacks or {}
    local e = construct(M.ExceptionGroup, message, 4)
    return e
  end
  local e = construct(M.ExceptionGroup, {
    message = message, exceptions = exceptions or {}, tracebacks = tracebacks or {},
  }, 4)
  return e
end

function M.ExceptionGroup.__tostring(e)
  local parts = { ("trio.ExceptionGroup: %s (%d sub-error%s)"):format(
    e.message, #e.exceptions, #e.exceptions == 1 and "" or "s") }
  for i, sub in ipairs(e.exceptions) do
    parts[#parts + 1] = ("  [%d] %s"):format(i, tostring(sub):gsub("\n", "\n      "))
    local tb = e.tracebacks[i]
    if tb and not M.is_error(sub) then
      parts[#parts + 1] = "      " .. tb:gsub("\n", "\n      ")
    end
  end
  return table.concat(parts, "\n")
end

--- The C core builds its errors through this.
function M.factory(short, message)
  local cls = classes[short] or M.RuntimeError
  local e = construct(cls, message, 3)
  return e
end

return M
