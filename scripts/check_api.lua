-- check_api.lua [--list]: docs/API.md and the lua-language-server stubs in
-- types/ against what the code exports (run by `make check-api`, which
-- `make test` runs first; exits non-zero on any difference).
--
-- What counts as exported, found at run time:
--  * every field of trio, asyncio and trio_asyncio whose name does not
--    start with "_" (and _VERSION), descending into plain tables
--    (trio.lowlevel, trio.testing, trio.lowlevel.Abort, trio_asyncio.testing);
--  * the methods of each object type in TYPES below, read from live
--    objects' metatables (for a type that extends another, only what it
--    adds or overrides), and their public fields that are plain table keys;
--  * the functions declared in csrc/include/trio_asyncio.h.
-- A documented name is the leading dotted name of each code span in the
-- first cell of a table row of docs/API.md (`trio.sleep(seconds)` ->
-- trio.sleep; `trio.Nursery:start_soon(fn, ...)` -> trio.Nursery:start_soon).
-- Fields computed by a C __index (trio.CancelScope.deadline, ...) cannot be
-- listed; a documented one is checked on a live object instead.
--
-- Run with LUA_PATH/LUA_CPATH on lua/ and the build (the Makefile does).
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local errors = require "trio.errors"

local LIST = arg[1] == "--list"

-- ---------------------------------------------------------------------
-- docs/API.md and types/ are read first: the fields they name on objects
-- are probed while those objects are alive.
local problems = {}
local function problem(fmt, ...) problems[#problems + 1] = fmt:format(...) end

local documented = {}
local n_line = 0
for line in io.lines("docs/API.md") do
  n_line = n_line + 1
  local first = line:match("^|%s*(.-)%s*|")
  if first and not first:match("^%-%-%-") then
    for span in first:gmatch("`([^`]+)`") do
      local name = span:match("^([%a_][%w_]*[%w_%.:]*)")
      if name then
        name = name:gsub("[.:]$", "")
        documented[name] = documented[name] or n_line
      end
    end
  end
end

-- types/*.lua: ---@meta stubs for lua-language-server.  A stub names
-- `---@class X` followed by `local Alias = {}`, then `---@field f` lines
-- (fields of X), `function Alias.f(...)`, `function Alias:m(...)`,
-- `Alias.f = ...`; names are resolved through the aliases.
local stubbed = {}
local p = assert(io.popen("ls types/*.lua 2>/dev/null"))
local stub_files = {}
for f in p:lines() do stub_files[#stub_files + 1] = f end
p:close()
if #stub_files == 0 then problem("types/ has no stubs") end
for _, file in ipairs(stub_files) do
  local text = assert(io.open(file)):read("a")
  if not text:match("^%-%-%-@meta") then problem("%s does not start with ---@meta", file) end
  local alias, current = {}, nil
  local function resolve(n)
    local head, rest = n:match("^([%w_]+)(.*)$")
    if alias[head] then return alias[head] .. rest end
    return n
  end
  for line in text:gmatch("[^\n]*") do
    local cls = line:match("^%-%-%-@class%s+([%w_%.]+)")
    if cls then current = cls end
    local field = line:match("^%-%-%-@field%s+([%w_]+)")
    if field and current then stubbed[current .. "." .. field] = file end
    local a, rhs = line:match("^local%s+([%w_]+)%s*=%s*(.*)$")
    if a and current and rhs:match("^{") then
      alias[a] = current
      current = nil
    end
    local fname = line:match("^function%s+([%w_%.:]+)%s*%(")
    if fname then stubbed[resolve(fname)] = file end
    local assigned = line:match("^([%w_][%w_%.]*)%s*=[^=]")
    if assigned and not line:match("^local%s") then stubbed[resolve(assigned)] = file end
  end
end

-- Fields named on objects, by type: probed on live objects below (C types
-- answer nil for an unknown key; the objects are made so that the fields
-- they have are not nil).
local field_ok = {}
local function probe(tname, obj)
  for _, names in ipairs { documented, stubbed } do
    for name in pairs(names) do
      local t, field = name:match("^(.+)%.([%w_]+)$")
      if t == tname then
        local ok, v = pcall(function() return obj[field] end)
        field_ok[name] = field_ok[name] or (ok and v ~= nil)
      end
    end
  end
end
local function probe_all(objs)
  for tname, obj in pairs(objs) do probe(tname, obj) end
end

-- ---------------------------------------------------------------------
-- Live objects of every type, made in a run of each flavor.
local objects = {}

trio.run(function()
  local o = objects
  o["trio.Event"] = trio.Event()
  o["trio.Lock"] = trio.Lock()
  o["trio.StrictFIFOLock"] = trio.StrictFIFOLock()
  o["trio.Semaphore"] = trio.Semaphore(1, 2)
  o["trio.CapacityLimiter"] = trio.CapacityLimiter(1)
  o["trio.Condition"] = trio.Condition()
  o["trio.ContextVar"] = trio.ContextVar("x")
  o["trio.CancelScope"] = trio.CancelScope()
  o["trio.lowlevel.ParkingLot"] = trio.lowlevel.ParkingLot()
  o["trio.testing.MockClock"] = trio.testing.MockClock()
  o["trio.lowlevel.TrioToken"] = trio.lowlevel.current_trio_token()
  o["trio.lowlevel.SystemClock"] = trio.lowlevel.current_clock()
  o["trio.MemorySendChannel"], o["trio.MemoryReceiveChannel"] = trio.open_memory_channel(0)
  o["trio.AsyncFile"] = trio.open_file("README.md")
  o["trio.Path"] = trio.Path("README.md")
  trio.open_signal_receiver({ "SIGUSR1" }, function(r) o["trio.SignalReceiver"] = r end)
  o["trio.Process"] = trio.lowlevel.open_process({ "true" })
  o["trio.PipeSendStream"], o["trio.PipeReceiveStream"] = o["trio.Process"].stdin, o["trio.Process"].stdout
  o["trio.Process"]:wait()
  trio.open_nursery(function(n)
    o["trio.Nursery"] = n
    n:start(function(task_status)
      o["trio.TaskStatus"] = task_status
      o["trio.lowlevel.Task"] = trio.lowlevel.current_task() -- a child: parent_nursery is set
      o["trio.lowlevel.Task"].custom_sleep_data = true -- (nil unless set)
      task_status:started()
      probe_all(o)
    end)
  end)
  o["trio.MemorySendChannel"]:close()
  o["trio.MemoryReceiveChannel"]:close()
  -- networking
  local a, b = trio.socket.socketpair()
  o["trio.socket.socket"] = a
  o["trio.SocketStream"] = trio.SocketStream(b)
  local lsock = trio.socket.socket()
  lsock:bind { "127.0.0.1", 0 }
  lsock:listen()
  o["trio.SocketListener"] = trio.SocketListener(lsock)
  o["trio.StapledStream"] = trio.testing.memory_stream_pair()
  o["trio.testing.MemorySendStream"] = trio.testing.MemorySendStream()
  o["trio.testing.MemoryReceiveStream"] = trio.testing.MemoryReceiveStream()
  -- TLS (a context with no certificate is enough to make the objects)
  local ssl = require "trio_asyncio.ssl"
  o["trio_asyncio.ssl.SSLContext"] = ssl.SSLContext("server")
  o["trio.SSLStream"] = trio.SSLStream(trio.testing.memory_stream_pair(), o["trio_asyncio.ssl.SSLContext"],
    { server_side = true, server_hostname = "x" })
  o["trio.SSLListener"] = trio.SSLListener(o["trio.SocketListener"], o["trio_asyncio.ssl.SSLContext"])
  o["trio_asyncio.ssl.SSLObject"] = ssl._object(o["trio.SSLStream"]._tls, o["trio_asyncio.ssl.SSLContext"], true, "x")
  probe_all(o)
  a:close()
  o["trio.SocketStream"]:close()
  o["trio.SocketListener"]:close()
  o["trio.AsyncFile"]:close()
  o["trio.Process"]:close()
end)

do
  local loop = asyncio.new_event_loop()
  loop:run_until_complete(function()
    local o = objects
    o["asyncio.Loop"] = loop
    o["asyncio.Handle"] = loop:call_soon(function() end)
    o["asyncio.Future"] = loop:create_future()
    o["asyncio.Task"] = asyncio.current_task()
    o["asyncio.Event"] = asyncio.Event()
    o["asyncio.Lock"] = asyncio.Lock()
    o["asyncio.Semaphore"] = asyncio.Semaphore()
    o["asyncio.BoundedSemaphore"] = asyncio.BoundedSemaphore()
    o["asyncio.Condition"] = asyncio.Condition()
    o["asyncio.Barrier"] = asyncio.Barrier(1)
    o["asyncio.Queue"] = asyncio.Queue()
    o["asyncio.LifoQueue"] = asyncio.LifoQueue()
    o["asyncio.PriorityQueue"] = asyncio.PriorityQueue()
    -- networking
    local srv = asyncio.start_server(function() end, "127.0.0.1", 0)
    o["asyncio.Server"] = srv
    local reader, writer = asyncio.open_connection("127.0.0.1", srv.sockets[1]:getsockname()[2])
    o["asyncio.StreamReader"], o["asyncio.StreamWriter"] = reader, writer
    o["asyncio.StreamReaderProtocol"] = writer._protocol
    o["asyncio.Transport"] = writer.transport
    o["asyncio.SSLTransport"] = setmetatable({}, { __index = asyncio._SSLTransport })
    o["asyncio.DatagramTransport"] = loop:create_datagram_endpoint(function() return {} end,
      { local_addr = { "127.0.0.1", 0 } })
    probe_all(o)
    writer:close()
    srv:close()
    o["asyncio.DatagramTransport"]:close()
    o["asyncio.AsyncFile"] = asyncio.open_file("README.md")
    local PIPE = asyncio.subprocess.PIPE
    o["asyncio.Process"] = asyncio.create_subprocess_exec("true", { stdin = PIPE, stdout = PIPE,
      stderr = PIPE })
    o["asyncio.PipeStreamWriter"], o["asyncio.PipeStreamReader"] = o["asyncio.Process"].stdin,
      o["asyncio.Process"].stdout
    o["asyncio.Process"]:wait()
    o["asyncio.SubprocessTransport"] = loop:subprocess_exec(function() return {} end, "true")
    o["asyncio.PipeTransport"] = o["asyncio.SubprocessTransport"]:get_pipe_transport(0)
    probe_all(o)
    o["asyncio.Process"]:communicate()
    o["asyncio.SubprocessTransport"]:close()
    o["asyncio.AsyncFile"]:close()
    o["asyncio.Future"]:cancel()
  end)
  loop:close()
end
objects["trio_asyncio.Error"] = trio.TooSlowError { message = "x", cause = "y" }
objects["trio_asyncio.TrioExecutor"] = ta.TrioExecutor()
objects["asyncio.ThreadPoolExecutor"] = asyncio.ThreadPoolExecutor(1)
objects["asyncio.ThreadPoolExecutor"]:shutdown()
objects["asyncio.ConcurrentFuture"] = asyncio.ConcurrentFuture()
objects["trio_asyncio.IORequest"] = require("trio_asyncio.core").thread_job("check", 1, function() end)
objects["trio.ExceptionGroup"] = trio.ExceptionGroup("x", {})
probe("trio_asyncio.Error", objects["trio_asyncio.Error"])
probe("trio.ExceptionGroup", objects["trio.ExceptionGroup"])

-- Types, the type they extend, and the methods they override: the rest
-- of what they share with the parent (by name) is documented there.
local TYPES = {
  ["trio.Nursery"] = {}, ["trio.CancelScope"] = {}, ["trio.MemorySendChannel"] = {},
  ["trio.MemoryReceiveChannel"] = {}, ["trio.lowlevel.Task"] = {}, ["trio.TaskStatus"] = {},
  ["trio.lowlevel.TrioToken"] = {}, ["trio.lowlevel.SystemClock"] = {}, ["trio.lowlevel.ParkingLot"] = {}, ["trio.testing.MockClock"] = {},
  ["trio.Event"] = {}, ["trio.Lock"] = {}, ["trio.StrictFIFOLock"] = { parent = "trio.Lock" },
  ["trio.Semaphore"] = {}, ["trio.CapacityLimiter"] = {}, ["trio.Condition"] = {},
  ["trio.ContextVar"] = {},
  ["trio.socket.socket"] = {}, ["trio.SocketStream"] = {}, ["trio.SocketListener"] = {},
  ["trio.StapledStream"] = {}, ["trio.testing.MemorySendStream"] = {},
  ["trio.testing.MemoryReceiveStream"] = {},
  ["trio.ContextVar"] = {}, ["trio.AsyncFile"] = {}, ["trio.Path"] = {},
  ["trio.SignalReceiver"] = {}, ["trio.Process"] = {}, ["trio.PipeSendStream"] = {},
  ["trio.PipeReceiveStream"] = {}, ["asyncio.Process"] = {}, ["asyncio.PipeStreamReader"] = {},
  ["asyncio.PipeStreamWriter"] = {}, ["asyncio.SubprocessTransport"] = {}, ["asyncio.PipeTransport"] = {},
  ["trio_asyncio.TrioExecutor"] = {}, ["trio_asyncio.IORequest"] = {},
  ["asyncio.ThreadPoolExecutor"] = {}, ["asyncio.ConcurrentFuture"] = {},
  ["asyncio.AsyncFile"] = {},
  ["asyncio.Loop"] = {}, ["asyncio.Handle"] = {}, ["asyncio.Future"] = {},
  ["asyncio.Task"] = { parent = "asyncio.Future", overrides = { cancel = true } },
  ["asyncio.Event"] = {}, ["asyncio.Lock"] = {}, ["asyncio.Semaphore"] = {},
  ["asyncio.BoundedSemaphore"] = { parent = "asyncio.Semaphore", overrides = { release = true } },
  ["asyncio.Condition"] = {}, ["asyncio.Barrier"] = {},
  ["asyncio.Server"] = {}, ["asyncio.StreamReader"] = {}, ["asyncio.StreamWriter"] = {},
  ["asyncio.StreamReaderProtocol"] = {}, ["asyncio.Transport"] = {}, ["asyncio.DatagramTransport"] = {},
  ["asyncio.Queue"] = {}, ["asyncio.LifoQueue"] = { parent = "asyncio.Queue" },
  ["trio.SSLStream"] = {}, ["trio.SSLListener"] = {}, ["trio_asyncio.ssl.SSLContext"] = {},
  ["trio_asyncio.ssl.SSLObject"] = {}, ["asyncio.SSLTransport"] = { parent = "asyncio.Transport" },
  ["asyncio.PriorityQueue"] = { parent = "asyncio.Queue" },
  -- every error object; and what ExceptionGroup adds
  ["trio_asyncio.Error"] = {}, ["trio.ExceptionGroup"] = { parent = "trio_asyncio.Error" },
}

-- The method table of a live object: C types keep it in __methods, or
-- __index (a table, or a C function whose first upvalue is the table).
local function method_table(obj)
  local mt = getmetatable(obj)
  if type(mt) ~= "table" then return {} end
  if type(rawget(mt, "__methods")) == "table" then return mt.__methods end
  local idx = rawget(mt, "__index")
  if type(idx) == "table" then return idx end
  if type(idx) == "function" and debug.getinfo(idx, "S").what == "C" then
    local _, up = debug.getupvalue(idx, 1)
    if type(up) == "table" then return up end
    return mt -- Lua classes whose __index computes properties keep methods in the class
  end
  return mt
end

-- name -> function for the methods reachable from obj (its class chain).
local function methods_of(obj)
  local out, seen = {}, {}
  local t = method_table(obj)
  while type(t) == "table" and not seen[t] do
    seen[t] = true
    for k, v in pairs(t) do
      if type(k) == "string" and type(v) == "function" and not k:match("^_") and out[k] == nil then
        out[k] = v
      end
    end
    local mt = getmetatable(t)
    t = mt and rawget(mt, "__index")
  end
  return out
end

local exported = {}   -- name -> kind
local function export(name, kind) exported[name] = kind end

-- modules
local function walk(prefix, t, seen)
  seen = seen or {}
  seen[t] = true
  for k, v in pairs(t) do
    if type(k) == "string" and (not k:match("^_") or k == "_VERSION") then
      local name = prefix .. "." .. k
      export(name, type(v))
      if type(v) == "table" and getmetatable(v) == nil and not seen[v] and not errors.is_error(v)
          and rawget(v, "is") == nil then
        walk(name, v, seen)
      end
    end
  end
end
walk("trio", trio)
walk("asyncio", asyncio)
walk("trio_asyncio", ta)

-- types
for tname, info in pairs(TYPES) do
  local obj = assert(objects[tname], "no live object for " .. tname)
  local methods = methods_of(obj)
  local inherited = info.parent and methods_of(objects[info.parent]) or {}
  if tname == "trio.ExceptionGroup" or tname == "trio_asyncio.Error" then
    methods.new = nil -- the constructor behind Class(...)
  end
  local overrides = info.overrides or {}
  for k in pairs(methods) do
    if inherited[k] == nil or overrides[k] then export(tname .. ":" .. k, "method") end
  end
  if type(obj) == "table" then
    local parent_obj = info.parent and objects[info.parent]
    for k in pairs(obj) do
      if type(k) == "string" and not k:match("^_") and type(obj[k]) ~= "function"
          and not (parent_obj and type(parent_obj) == "table" and rawget(parent_obj, k) ~= nil) then
        export(tname .. "." .. k, "field")
      end
    end
  end
end

-- the C header
-- (declarations start in column 0; comments are dropped first)
local header = assert(io.open("csrc/include/trio_asyncio.h")):read("a")
header = header:gsub("/%*.-%*/", ""):gsub("//[^\n]*", "")
for line in header:gmatch("[^\n]+") do
  local name = line:match("^%a[%w_ %*]*[%s%*]([%a_][%w_]*)%s*%(")
  if name then export(name, "C function") end
end

if LIST then
  local names = {}
  for n, k in pairs(exported) do names[#names + 1] = ("%-50s %s"):format(n, k) end
  table.sort(names)
  print(table.concat(names, "\n"))
  os.exit(0)
end

-- ---------------------------------------------------------------------
-- The comparison.
for name, kind in pairs(exported) do
  if not documented[name] then problem("docs/API.md does not document %s (%s)", name, kind) end
  if kind ~= "C function" and not stubbed[name] then
    problem("types/ has no stub for %s (%s)", name, kind)
  end
end
local function known(name)
  return exported[name] or TYPES[name] or field_ok[name]
end
for name, line in pairs(documented) do
  if not known(name) then problem("docs/API.md:%d documents %s, which the code does not export", line, name) end
end
for name, file in pairs(stubbed) do
  -- the module tables and their sub-tables are classes of the stubs
  local module = name == "trio" or name == "asyncio" or name == "trio_asyncio"
  if not (known(name) or module) then problem("%s stubs %s, which the code does not export", file, name) end
end

table.sort(problems)
if #problems > 0 then
  io.stderr:write("check_api: ", #problems, " problem(s):\n  ", table.concat(problems, "\n  "), "\n")
  os.exit(1)
end
local n = 0
for _ in pairs(exported) do n = n + 1 end
print(("check_api: docs/API.md and types/ cover all %d exported names, and name nothing else"):format(n))
