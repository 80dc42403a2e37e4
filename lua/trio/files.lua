--- Async files for both flavors: trio.open_file, trio.Path and
-- asyncio.open_file, on the file requests of csrc/io/fs.c (libuv's
-- threadpool: the scheduler never blocks on a file).
--
-- One implementation, made twice: the Trio file's methods are
-- Trio-flavored (each a checkpoint that waits as a parked task), the
-- asyncio file's are asyncio-flavored (each waits on a Future).  Reads are
-- buffered for readline/lines only; writes go straight to the file.
local core = require "trio_asyncio.core"
local errors = require "trio.errors"
local class_of, bad_self = errors.class_of, errors.bad_self

local F = core.fs_flags
local fs_read, fs_write, fs_open, fs_close = core.fs_read, core.fs_write, core.fs_open, core.fs_close
local fh_seek, fh_info, fh_close_now = core.fh_seek, core.fh_info, core.fh_close_now

local M = {}

local MODES = {
  r = F.O_RDONLY, ["r+"] = F.O_RDWR,
  w = F.O_WRONLY | F.O_CREAT | F.O_TRUNC, ["w+"] = F.O_RDWR | F.O_CREAT | F.O_TRUNC,
  a = F.O_WRONLY | F.O_CREAT | F.O_APPEND, ["a+"] = F.O_RDWR | F.O_CREAT | F.O_APPEND,
  x = F.O_WRONLY | F.O_CREAT | F.O_EXCL, ["x+"] = F.O_RDWR | F.O_CREAT | F.O_EXCL,
}

--- Open flags of a Python/C mode string ("r", "w+", "rb", "ab+", "x"...);
-- raises an argument error at the caller of the public function.
local function mode_flags(mode, fname)
  if mode == nil then mode = "r" end
  if type(mode) ~= "string" then
    error(("bad argument #2 to '%s' (string expected, got %s)"):format(fname, type(mode)), 3)
  end
  local flags = MODES[(mode:gsub("[bt]", ""))]
  if flags == nil or select(2, mode:gsub("[bt]", "")) > 1 then
    error(("bad argument #2 to '%s' (invalid mode '%s')"):format(fname, mode), 3)
  end
  return flags | F.O_CLOEXEC
end

local function path_string(p, fname, n)
  if type(p) == "string" then return p end
  if type(p) == "table" and rawget(p, "_path") ~= nil then return p._path end
  error(("bad argument #%d to '%s' (path string or trio.Path expected, got %s)"):format(
    n or 1, fname, type(p)), 3)
end

--- A flavor: check(fname) raises unless the caller may wait (Trio also
-- raises a pending cancellation: a file operation is a checkpoint),
-- wait(req) waits for a request, yield() is the flavor's checkpoint.
local trio_flavor = {
  check = function(fname)
    core.check_trio(fname)
    core.checkpoint_if_cancelled()
  end,
  check_only = core.check_trio,
  wait = function(req) return core.io_wait(req) end,
  after_close = core.checkpoint_if_cancelled,
  yield = core.checkpoint,
}

local asyncio_flavor = {
  check = core.check_aio,
  check_only = core.check_aio,
  wait = function(req) return core.io_future(core.running_loop(), req):await() end,
  after_close = function() end,
  yield = function() end,
}

local function make_file_class(prefix, flavor)
  local check, wait = flavor.check, flavor.wait
  local File = { __name = prefix .. ".AsyncFile" }
  local methods = {}
  File.__index = methods

  local function new(fh, name, mode)
    return setmetatable({ _fh = fh, _rbuf = "", name = name, mode = mode, closed = false }, File)
  end

  --- file:read([n]) -> up to n bytes (everything to EOF when n is nil);
  -- "" at EOF.
  function methods.read(self, n)
    if class_of(self) ~= File then bad_self(self, File, "read") end
    if n ~= nil and (math.type(n) ~= "integer" or n < 0) then
      error(("bad argument #1 to 'read' (non-negative integer expected, got %s)"):format(
        math.type(n) or type(n)), 2)
    end
    check(prefix .. ".AsyncFile:read")
    -- served from the buffer: still a checkpoint, taken before the data
    if n ~= nil and #self._rbuf >= n then flavor.yield() end
    local buf = self._rbuf
    if n == nil then
      self._rbuf = ""
      return buf .. wait(fs_read(self._fh, -1))
    end
    if #buf >= n then
      self._rbuf = buf:sub(n + 1)
      return buf:sub(1, n)
    end
    self._rbuf = ""
    return buf .. wait(fs_read(self._fh, n - #buf))
  end

  -- the next line; a checkpoint (taken before the data) even when the
  -- buffer holds it already
  local function readline(self)
    if self._rbuf:find("\n", 1, true) then flavor.yield() end
    local buf = self._rbuf
    while true do
      local i = buf:find("\n", 1, true)
      if i then
        self._rbuf = buf:sub(i + 1)
        return buf:sub(1, i)
      end
      local chunk = wait(fs_read(self._fh, 8192, true))
      if chunk == "" then
        self._rbuf = ""
        return buf
      end
      buf = buf .. chunk
      self._rbuf = buf
    end
  end

  --- file:readline() -> the next line with its "\n" ("" at EOF).
  function methods.readline(self)
    if class_of(self) ~= File then bad_self(self, File, "readline") end
    check(prefix .. ".AsyncFile:readline")
    return readline(self)
  end

  --- for line in file:lines() do ... end: lines without their "\n".
  function methods.lines(self)
    if class_of(self) ~= File then bad_self(self, File, "lines") end
    return function()
      check(prefix .. ".AsyncFile:lines")
      local line = readline(self)
      if line == "" then return nil end
      if line:sub(-1) == "\n" then line = line:sub(1, -2) end
      return line
    end
  end

  --- file:write(data) -> the number of bytes written (all of them).
  function methods.write(self, data)
    if class_of(self) ~= File then bad_self(self, File, "write") end
    if type(data) == "number" then data = tostring(data) end
    if type(data) ~= "string" then
      error(("bad argument #1 to 'write' (string expected, got %s)"):format(type(data)), 2)
    end
    check(prefix .. ".AsyncFile:write")
    if self._rbuf ~= "" then -- the kernel's position is past what was read
      pcall(fh_seek, self._fh, "cur", -#self._rbuf)
      self._rbuf = ""
    end
    return wait(fs_write(self._fh, data))
  end

  --- file:seek([whence="cur" [, offset=0]]) -> the new position.
  function methods.seek(self, whence, offset)
    if class_of(self) ~= File then bad_self(self, File, "seek") end
    if whence ~= nil and whence ~= "set" and whence ~= "cur" and whence ~= "end" then
      error(("bad argument #1 to 'seek' (invalid option '%s')"):format(tostring(whence)), 2)
    end
    if offset ~= nil and math.type(offset) ~= "integer" then
      error(("bad argument #2 to 'seek' (integer expected, got %s)"):format(type(offset)), 2)
    end
    flavor.check_only(prefix .. ".AsyncFile:seek")
    whence, offset = whence or "cur", offset or 0
    if whence == "cur" then offset = offset - #self._rbuf end
    self._rbuf = ""
    return fh_seek(self._fh, whence, offset)
  end

  --- file:flush(): writes are not buffered; a checkpoint.
  function methods.flush(self)
    if class_of(self) ~= File then bad_self(self, File, "flush") end
    check(prefix .. ".AsyncFile:flush")
    flavor.yield()
  end

  --- file:close(): closes it (again: nothing); a read pending in another
  -- task raises ClosedResourceError there.
  function methods.close(self)
    if class_of(self) ~= File then bad_self(self, File, "close") end
    flavor.check_only(prefix .. ".AsyncFile:close")
    self.closed = true
    self._rbuf = ""
    local req = fs_close(self._fh)
    if req ~= nil then wait(req) end
    flavor.after_close()
  end

  --- file:fileno() -> the file descriptor.
  function methods.fileno(self)
    if class_of(self) ~= File then bad_self(self, File, "fileno") end
    local fd = fh_info(self._fh)
    if fd == nil then error(errors.ClosedResourceError("fileno: the file is closed"), 2) end
    return fd
  end

  -- a to-be-closed variable closes it at once (close(2) does not block)
  function File.__close(self)
    self.closed = true
    fh_close_now(self._fh)
  end

  function File.__tostring(self)
    return ("%s %s (%s)"):format(File.__name, self.name, self.closed and "closed" or self.mode)
  end

  --- open_file(path [, mode="r"]) -> a file of this flavor.
  local function open_file(path, mode)
    local fname = "open_file"
    local p = path_string(path, fname)
    local flags = mode_flags(mode, fname)
    check(prefix .. ".open_file")
    return new(wait(fs_open(p, flags)), p, mode or "r")
  end

  return File, open_file
end

M.TrioFile, M.trio_open_file = make_file_class("trio", trio_flavor)
M.AsyncioFile, M.asyncio_open_file = make_file_class("asyncio", asyncio_flavor)

-- ---------------------------------------------------------------------
-- trio.Path
local Path = { __name = "trio.Path" }
local pmethods = {}
Path.__index = pmethods
local trio_check, trio_wait = trio_flavor.check, trio_flavor.wait

local function join(base, part)
  if part:sub(1, 1) == "/" or base == "" or base == "." then return part end
  if base:sub(-1) == "/" then return base .. part end
  return base .. "/" .. part
end

local function new_path(s) return setmetatable({ _path = s }, Path) end

--- trio.Path(...) -> a path; several parts are joined.
function M.Path(...)
  local s = ""
  for i = 1, select("#", ...) do
    s = join(s, path_string((select(i, ...)), "Path", i))
  end
  return new_path(s == "" and "." or s)
end

local function checkpath(p, fname)
  if getmetatable(p) ~= Path then
    error(("bad argument #1 to '%s' (trio.Path expected, got %s)"):format(fname, type(p)), 3)
  end
end

function Path.__tostring(p) return p._path end
function Path.__eq(a, b) return a._path == b._path end
function Path.__concat(a, b) return tostring(a) .. tostring(b) end
function Path.__div(a, b)
  return new_path(join(path_string(a, "/", 1), path_string(b, "/", 2)))
end

--- p:joinpath(...) -> a new Path.
function pmethods.joinpath(p, ...)
  checkpath(p, "joinpath")
  local s = p._path
  for i = 1, select("#", ...) do s = join(s, path_string((select(i, ...)), "joinpath", i)) end
  return new_path(s)
end

function pmethods.open(p, mode)
  checkpath(p, "open")
  local flags = mode_flags(mode, "open")
  trio_check("trio.Path:open")
  return setmetatable({ _fh = trio_wait(fs_open(p._path, flags)), _rbuf = "", name = p._path,
    mode = mode or "r", closed = false }, M.TrioFile)
end

local function whole(p, fname, mode, fn)
  local flags = mode_flags(mode, fname)
  trio_check("trio.Path:" .. fname)
  local f = setmetatable({ _fh = trio_wait(fs_open(p._path, flags)), _rbuf = "", name = p._path,
    mode = mode, closed = false }, M.TrioFile)
  local ok, r = pcall(fn, f)
  f:close()
  if not ok then error(r, 0) end
  return r
end

local function read_all(f) return f:read() end

function pmethods.read_text(p)
  checkpath(p, "read_text")
  return whole(p, "read_text", "r", read_all)
end

function pmethods.read_bytes(p)
  checkpath(p, "read_bytes")
  return whole(p, "read_bytes", "rb", read_all)
end

local function writer(fname)
  return function(p, data)
    checkpath(p, fname)
    if type(data) ~= "string" then
      error(("bad argument #1 to '%s' (string expected, got %s)"):format(fname, type(data)), 2)
    end
    return whole(p, fname, "w", function(f) return f:write(data) end)
  end
end
pmethods.write_text = writer("write_text")
pmethods.write_bytes = writer("write_bytes")

function pmethods.stat(p)
  checkpath(p, "stat")
  trio_check("trio.Path:stat")
  return trio_wait(core.fs_stat(p._path))
end

local S_IFMT, S_IFREG, S_IFDIR = 0xF000, 0x8000, 0x4000

-- stat, or nil when the path (or a directory on it) does not exist
local function stat_or_nil(p, fname)
  trio_check("trio.Path:" .. fname)
  local ok, st = pcall(trio_wait, core.fs_stat(p._path))
  if ok then return st end
  if errors.FileNotFoundError:is(st) or errors.NotADirectoryError:is(st) then return nil end
  error(st, 0)
end

function pmethods.exists(p)
  checkpath(p, "exists")
  return stat_or_nil(p, "exists") ~= nil
end

function pmethods.is_file(p)
  checkpath(p, "is_file")
  local st = stat_or_nil(p, "is_file")
  return st ~= nil and st.st_mode & S_IFMT == S_IFREG
end

function pmethods.is_dir(p)
  checkpath(p, "is_dir")
  local st = stat_or_nil(p, "is_dir")
  return st ~= nil and st.st_mode & S_IFMT == S_IFDIR
end

local function mkdir(path, mode, parents, exist_ok)
  local ok, err = pcall(trio_wait, core.fs_mkdir(path, mode))
  if ok then return end
  if parents and errors.FileNotFoundError:is(err) then
    local parent = path:match("^(.*)/[^/]*$")
    if parent ~= nil and parent ~= "" and parent ~= path then
      mkdir(parent, mode, true, true)
      return mkdir(path, mode, false, exist_ok)
    end
  end
  if exist_ok and errors.FileExistsError:is(err) then
    local isdir, st = pcall(trio_wait, core.fs_stat(path))
    if isdir and st.st_mode & S_IFMT == S_IFDIR then return end
  end
  error(err, 0)
end

--- p:mkdir{parents=false, exist_ok=false, mode=0777}
function pmethods.mkdir(p, opts)
  checkpath(p, "mkdir")
  opts = errors.check_opts(opts, 1, "mkdir", { parents = true, exist_ok = true, mode = true })
  trio_check("trio.Path:mkdir")
  mkdir(p._path:gsub("/+$", ""), opts.mode or 511, opts.parents, opts.exist_ok)
end

--- p:rmdir(): removes an empty directory.
function pmethods.rmdir(p)
  checkpath(p, "rmdir")
  trio_check("trio.Path:rmdir")
  trio_wait(core.fs_rmdir(p._path))
end

--- p:unlink{missing_ok=false}
function pmethods.unlink(p, opts)
  checkpath(p, "unlink")
  opts = errors.check_opts(opts, 1, "unlink", { missing_ok = true })
  trio_check("trio.Path:unlink")
  local ok, err = pcall(trio_wait, core.fs_unlink(p._path))
  if not ok and not (opts.missing_ok and errors.FileNotFoundError:is(err)) then error(err, 0) end
end

--- p:rename(target) -> the Path of target.
function pmethods.rename(p, target)
  checkpath(p, "rename")
  local t = path_string(target, "rename", 1)
  trio_check("trio.Path:rename")
  trio_wait(core.fs_rename(p._path, t))
  return new_path(t)
end

--- p:iterdir() -> list of the Paths in the directory, sorted by name.
function pmethods.iterdir(p)
  checkpath(p, "iterdir")
  trio_check("trio.Path:iterdir")
  local names = trio_wait(core.fs_scandir(p._path))
  table.sort(names)
  for i, name in ipairs(names) do names[i] = new_path(join(p._path, name)) end
  return names
end

M.PathClass = Path
return M
