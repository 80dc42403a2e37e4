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

-- The text of debug.traceback("", level):sub(2) (level 1: the caller).
-- trio.lua hands over the C core's (use_traceback(core.traceback):
-- ta_traceback in csrc/engine/engine.c), which names each frame's function
-- as the calling code did, where Lua's own first searches every loaded
-- module for it: with trio loaded that search cost far more than the rest
-- and made every error (each Cancelled of a cancelled scope) slow to make.
-- A worker thread's Lua state, which loads this module without the core
-- (lua/trio/to_thread.lua), keeps Lua's.
local traceback = function(level) return debug.traceback("", level + 1):sub(2) end

--- use_traceback(f): f(level) makes the tracebacks from now on.
function M.use_traceback(f) traceback = f end

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
  if e.traceback == nil then e.traceback = traceback(level or 3) end
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

--- The check of a Lua class's method on its self (obj.method(x) instead
-- of obj:method()), as the C classes make it with luaL_checkudata:
--   if class_of(self) ~= Class then errors.bad_self(self, Class, "Class:method") end
-- class_of is the value's own metatable (debug.getmetatable: one cheap C
-- call, fit for the hot paths such as Queue get/put; a __metatable field
-- does not hide it, as in luaL_checkudata); the raiser runs only on a miss.
M.class_of = debug.getmetatable

--- Raises "bad argument #1 to 'fname' (Class expected, got <type>)" at the
-- caller of the method that calls this; <type> is the value's __name when
-- its metatable has one (as Lua's own messages say), else its type.
function M.bad_self(self, cls, fname)
  local mt = M.class_of(self)
  local got = type(mt) == "table" and rawget(mt, "__name")
  if type(got) ~= "string" then got = type(self) end
  error(("bad argument #1 to '%s' (%s expected, got %s)"):format(fname, rawget(cls, "__name"), got), 3)
end

--- An options table (argument #n of fname) whose keys are all in `known`;
-- nil gives {}.
function M.check_opts(opts, n, fname, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" then M.argerror(n, fname, "options table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not known[k] then M.argerror(n, fname, "unknown option '" .. tostring(k) .. "'") end
  end
  return opts
end

--- The max_bytes argument of a stream's receive: nil gives `default`, else
-- an integer >= 1 (argument #1 of fname).
function M.check_max_bytes(max_bytes, fname, default)
  if max_bytes == nil then return default end
  if math.type(max_bytes) ~= "integer" then
    M.argerror(1, fname, "max_bytes: integer expected, got " .. (math.type(max_bytes) or type(max_bytes)))
  end
  if max_bytes < 1 then M.argerror(1, fname, "max_bytes must be >= 1") end
  return max_bytes
end

--- A Unix-domain socket path (argument #n of fname): a non-empty string
-- or a trio.Path (as Trio and asyncio take os.PathLike); returns the
-- string.  (No trio.Path exists before trio.files loads.)
function M.unix_path(path, n, fname)
  local files = package.loaded["trio.files"]
  if files ~= nil and getmetatable(path) == files.PathClass then path = tostring(path) end
  if type(path) ~= "string" or path == "" then
    M.argerror(n, fname, "path string or trio.Path expected, got " .. (path == "" and "empty string" or type(path)))
  end
  return path
end

--- True for any error object made by this module.
function M.is_error(e)
  return type(e) == "table" and type(getmetatable(e)) == "table"
    and rawget(getmetatable(e), "is") == is
end

M.Error = M.class("trio_asyncio.Error")

-- Trio
M.Cancelled = M.class("trio.Cancelled", M.Error, "cancelled due to unknown")
-- as in Trio: where a cancellation came from ("explicit", "deadline", "nursery",
-- "KeyboardInterrupt", "shutdown", "unknown"); the core sets reason and
-- source_task too when it knows them
M.Cancelled.source = "unknown"
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

-- OS errors, as in Python: fields errno (POSIX number), code ("ECONNREFUSED"),
-- message (what was being done, with the address or path) and filename
-- where a path is involved.  trio.OSError and asyncio.OSError are OSError.
M.OSError = M.class("trio_asyncio.OSError", M.Error)
M.ConnectionError = M.class("trio_asyncio.ConnectionError", M.OSError)
M.ConnectionRefusedError = M.class("trio_asyncio.ConnectionRefusedError", M.ConnectionError)
M.ConnectionResetError = M.class("trio_asyncio.ConnectionResetError", M.ConnectionError)
M.ConnectionAbortedError = M.class("trio_asyncio.ConnectionAbortedError", M.ConnectionError)
M.BrokenPipeError = M.class("trio_asyncio.BrokenPipeError", M.ConnectionError)
M.FileNotFoundError = M.class("trio_asyncio.FileNotFoundError", M.OSError)
M.FileExistsError = M.class("trio_asyncio.FileExistsError", M.OSError)
M.PermissionError = M.class("trio_asyncio.PermissionError", M.OSError)
M.IsADirectoryError = M.class("trio_asyncio.IsADirectoryError", M.OSError)
M.NotADirectoryError = M.class("trio_asyncio.NotADirectoryError", M.OSError)
M.gaierror = M.class("trio_asyncio.gaierror", M.OSError)
-- TLS (trio_asyncio.ssl): OSErrors as in Python, with fields reason
-- ("CERTIFICATE_VERIFY_FAILED") and library ("SSL"); a certificate that
-- failed verification adds verify_code and verify_message.
M.SSLError = M.class("trio_asyncio.ssl.SSLError", M.OSError)
M.SSLCertVerificationError = M.class("trio_asyncio.ssl.SSLCertVerificationError", M.SSLError)
--- The names of the OS error classes (trio_asyncio exports them all).
M.OS_ERRORS = { "OSError", "ConnectionError", "ConnectionRefusedError",
  "ConnectionResetError", "ConnectionAbortedError", "BrokenPipeError", "FileNotFoundError",
  "FileExistsError", "PermissionError", "IsADirectoryError", "NotADirectoryError", "gaierror" }

--- The KeyboardInterrupt in err, itself or inside (nested) groups, or nil:
-- runs that wrap it in their own nurseries' groups raise it bare.
function M.interrupt_in(err)
  if M.KeyboardInterrupt:is(err) then return err end
  if M.ExceptionGroup:is(err) then
    for _, e in ipairs(err.exceptions) do
      local ki = M.interrupt_in(e)
      if ki then return ki end
    end
  end
  return nil
end

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

-- ExceptionGroup:split / :subgroup / :contains, with Python's semantics:
-- the condition is tried on the group itself first, then on each leaf;
-- nested groups keep their shape (message, cause, traceback); an empty
-- result is nil.

-- A condition is a class (any table with an `is` method), a list of
-- classes, or a predicate function called with each error.
local function matcher(cond, fname)
  if type(cond) == "table" and type(cond.is) == "function" then
    return function(e) return cond:is(e) == true end
  end
  if type(cond) == "table" and getmetatable(cond) == nil and #cond > 0 then
    for i, c in ipairs(cond) do
      if type(c) ~= "table" or type(c.is) ~= "function" then
        error(("bad argument #1 to '%s' (item %d of the list is not an error class)"):format(fname, i), 3)
      end
    end
    return function(e)
      for _, c in ipairs(cond) do if c:is(e) then return true end end
      return false
    end
  end
  if M.is_callable(cond) then return cond end
  error(("bad argument #1 to '%s' (error class, list of classes or function expected, got %s)")
    :format(fname, type(cond)), 3)
end

local function push(list, tbs, e, tb)
  local n = #list + 1
  list[n], tbs[n] = e, tb
end

-- A group like eg (same class, message, cause, traceback) holding excs.
local function derive(eg, excs, tbs)
  return setmetatable({
    message = eg.message, cause = eg.cause, traceback = eg.traceback,
    exceptions = excs, tracebacks = tbs,
  }, getmetatable(eg))
end

local function subgroup(eg, match)
  if match(eg) then return eg end
  local excs, tbs, modified = {}, {}, false
  for i, e in ipairs(eg.exceptions) do
    local keep = e
    if is(M.ExceptionGroup, e) then
      keep = subgroup(e, match)
      if keep ~= e then modified = true end
    elseif not match(e) then
      keep = nil
    end
    if keep == nil then
      modified = true
    else
      push(excs, tbs, keep, eg.tracebacks[i])
    end
  end
  if not modified then return eg end
  if #excs == 0 then return nil end
  return derive(eg, excs, tbs)
end

-- split(err, match, whole) -> the parts of err (a group or a lone error)
-- that match and the others, nil when empty.  A group that is all in one
-- part is derived anew (Python's split), or with `whole` is err itself.
local function split(err, match, whole)
  if match(err) then return err, nil end
  if not is(M.ExceptionGroup, err) then return nil, err end
  local m, mtb, r, rtb = {}, {}, {}, {}
  for i, e in ipairs(err.exceptions) do
    local tb = err.tracebacks[i]
    local sm, sr = split(e, match, whole)
    if sm ~= nil then push(m, mtb, sm, tb) end
    if sr ~= nil then push(r, rtb, sr, tb) end
  end
  if whole and #r == 0 then return err, nil end
  if whole and #m == 0 then return nil, err end
  return (#m > 0 and derive(err, m, mtb) or nil), (#r > 0 and derive(err, r, rtb) or nil)
end

--- eg:subgroup(condition) -> a group with only the errors that match
-- (nested groups kept in shape), eg itself if all match, nil if none does.
function M.ExceptionGroup.subgroup(eg, condition)
  return subgroup(eg, matcher(condition, "subgroup"))
end

--- eg:split(condition) -> match, rest: two groups shaped like eg, either
-- nil when empty.
function M.ExceptionGroup.split(eg, condition)
  return split(eg, matcher(condition, "split"))
end

--- errors.split(err, pred) -> match, rest: err (any error value, a group
-- or not) split as eg:split does by the predicate pred, except that a part
-- holding all of err is err itself, unchanged (the bridge re-raises it).
function M.split(err, pred)
  return split(err, pred, true)
end

--- eg:contains(condition) -> true if the group, a nested group or any
-- error in it matches.
local function contains(eg, match)
  if match(eg) then return true end
  for _, e in ipairs(eg.exceptions) do
    if is(M.ExceptionGroup, e) then
      if contains(e, match) then return true end
    elseif match(e) then
      return true
    end
  end
  return false
end

function M.ExceptionGroup.contains(eg, condition)
  return contains(eg, matcher(condition, "contains"))
end

--- The C core builds its errors through this.
function M.factory(short, message)
  local cls = classes[short] or M.RuntimeError
  local e = construct(cls, message, 3)
  return e
end

return M
