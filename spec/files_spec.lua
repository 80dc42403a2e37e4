-- Files: trio.open_file, trio.Path and asyncio.open_file on libuv's file
-- requests.  Read/readline/lines/seek semantics (Python's), OS errors with
-- filename, closing (also while a read is pending, as a <close> variable
-- and by the GC), flavors, cancellation, and that files are not starved
-- by busy worker threads.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local errors = require "trio.errors"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

local dir

local function sh(cmd) assert(os.execute(cmd)) end

before_each(function()
  dir = os.tmpname()
  os.remove(dir)
  sh("mkdir -p " .. dir)
end)

after_each(function()
  sh("rm -rf " .. dir)
end)

local function write_plain(name, data)
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(data)
  f:close()
  return dir .. "/" .. name
end

local function read_plain(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- trio.run with a time limit
local function run(fn, ...)
  local args = table.pack(...)
  return trio.run(function() return trio.fail_after(10, fn, table.unpack(args, 1, args.n)) end)
end

describe("trio.open_file", function()
  it("writes and reads back, with read() to EOF and '' at EOF", function()
    local path = dir .. "/a.txt"
    local n, all, again, zero = run(function()
      local f = trio.open_file(path, "w")
      local written = f:write("hello\nworld\n")
      f:close()
      f = trio.open_file(path)
      local a, b = f:read(), f:read()
      local c = f:read(0)
      f:close()
      return written, a, b, c
    end)
    assert.equal(12, n)
    assert.equal("hello\nworld\n", all)
    assert.equal("", again)
    assert.equal("", zero)
    assert.equal("hello\nworld\n", read_plain(path))
  end)

  it("read(n) returns n bytes unless EOF comes first", function()
    local path = write_plain("n.txt", "0123456789")
    local r = run(function()
      local f = trio.open_file(path, "rb")
      local out = { f:read(3), f:read(4), f:read(10), f:read(1) }
      f:close()
      return out
    end)
    assert.same({ "012", "3456", "789", "" }, r)
  end)

  it("readline keeps the end of line; lines() strips it; both end at EOF", function()
    local path = write_plain("l.txt", "one\n\nthree\nlast")
    local first, rest = run(function()
      local f = trio.open_file(path)
      local l1 = f:readline()
      local got = {}
      for line in f:lines() do got[#got + 1] = line end
      local tail = { f:readline(), f:read() }
      f:close()
      return l1, { got, tail }
    end)
    assert.equal("one\n", first)
    assert.same({ { "", "three", "last" }, { "", "" } }, rest)
  end)

  it("reads lines longer than its chunk and a large file whole", function()
    local long = string.rep("x", 20000)
    local big = string.rep("0123456789abcdef", 65536) -- 1 MiB
    local p1 = write_plain("long.txt", long .. "\nend\n")
    local p2 = write_plain("big.bin", big)
    local line, rest, whole = run(function()
      local f = trio.open_file(p1)
      local a, b = f:readline(), f:readline()
      f:close()
      f = trio.open_file(p2, "rb")
      local all = f:read()
      f:close()
      return a, b, all
    end)
    assert.equal(long .. "\n", line)
    assert.equal("end\n", rest)
    assert.equal(#big, #whole)
    assert.is_true(whole == big)
  end)

  it("seek returns the position, counting what readline buffered", function()
    local path = write_plain("s.txt", "abc\ndef\nghi\n")
    local r = run(function()
      local f = trio.open_file(path, "r+")
      local out = {}
      out[1] = f:readline()
      out[2] = f:seek()                -- after "abc\n", although more was read ahead
      out[3] = f:seek("set", 8)
      out[4] = f:read(3)
      out[5] = f:seek("end")
      out[6] = f:seek("cur", -4)
      out[7] = f:read()
      f:seek("set", 0)
      f:readline()
      f:write("DEF")                   -- at the logical position, not the read-ahead one
      f:close()
      return out
    end)
    assert.same({ "abc\n", 4, 8, "ghi", 12, 8, "ghi\n" }, r)
    assert.equal("abc\nDEF\nghi\n", read_plain(path))
  end)

  it("opens with Python's modes: w truncates, a appends, x refuses an existing file, b is ignored", function()
    local path = write_plain("m.txt", "old content")
    local e = run(function()
      local f = trio.open_file(path, "w")
      f:write("new")
      f:close()
      f = trio.open_file(path, "ab")
      f:write("+more")
      f:seek("set", 0)
      f:write("!") -- append mode: always at the end
      f:close()
      return errof(trio.open_file, path, "x")
    end)
    assert.equal("new+more!", read_plain(path))
    assert.is_true(errors.FileExistsError:is(e))
    assert.equal(path, e.filename)
  end)

  it("raises the OSError subclass with errno, code and filename", function()
    local missing = dir .. "/nope/x.txt"
    local notdir = write_plain("f", "") .. "/x"
    local e1, e2, e3 = run(function()
      return errof(trio.open_file, missing), errof(trio.open_file, notdir),
        errof(trio.open_file, dir, "w")
    end)
    assert.is_true(errors.FileNotFoundError:is(e1))
    assert.is_true(errors.OSError:is(e1))
    assert.same({ 2, "ENOENT", missing }, { e1.errno, e1.code, e1.filename })
    assert_has(e1.message, "open " .. missing .. ": no such file or directory")
    assert.is_true(errors.NotADirectoryError:is(e2))
    assert.is_true(errors.IsADirectoryError:is(e3))
    assert.equal(dir, e3.filename)
  end)

  it("raises argument errors for a bad path or mode at the caller", function()
    local e1, e2, e3, e4 = run(function()
      local f = trio.open_file(write_plain("x", "x"))
      local r = { errof(trio.open_file, 42), errof(trio.open_file, "x", "rw"),
        errof(f.read, f, -1), errof(f.write, f, {}) }
      f:close()
      return table.unpack(r)
    end)
    assert_has(e1, "bad argument #1 to 'open_file' (path string or trio.Path expected, got number)")
    assert_has(e2, "bad argument #2 to 'open_file' (invalid mode 'rw')")
    assert_has(e3, "bad argument #1 to 'read' (non-negative integer expected")
    assert_has(e4, "bad argument #1 to 'write' (string expected, got table)")
  end)

  it("a closed file raises ClosedResourceError; closing again does nothing", function()
    local path = write_plain("c.txt", "data")
    local e1, e2, closed = run(function()
      local f = trio.open_file(path)
      f:close()
      f:close()
      return errof(f.read, f), errof(f.write, f, "x"), f.closed
    end)
    assert.is_true(trio.ClosedResourceError:is(e1))
    assert.is_true(trio.ClosedResourceError:is(e2))
    assert.is_true(closed)
  end)

  it("a file closed while a read is pending: the reader gets ClosedResourceError, the fd is closed after it", function()
    local path = write_plain("big", string.rep("z", 4 * 1024 * 1024))
    local log = {}
    run(function()
      local f = trio.open_file(path, "rb")
      trio.open_nursery(function(n)
        n:start_soon(function()
          local ok, e = pcall(f.read, f)
          log[#log + 1] = ok and ("read " .. #e) or e
        end)
        n:start_soon(function()
          f:close()
          log[#log + 1] = "closed"
        end)
      end)
    end)
    assert.equal(2, #log)
    local err = log[1] == "closed" and log[2] or log[1]
    assert.is_true(trio.ClosedResourceError:is(err), tostring(err))
    assert_has(err, "the file was closed while the read was pending")
    -- the suite's leak check verifies that the fd is closed
  end)

  it("is closed as a <close> variable and when collected", function()
    local path = write_plain("t.txt", "x")
    local fd1, fd2 = run(function()
      local fd
      do
        local f <close> = trio.open_file(path)
        fd = f:fileno()
      end
      local g = trio.open_file(path)
      local fdg = g:fileno()
      g = nil -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      return fd, fdg
    end)
    assert.is_number(fd1)
    assert.is_number(fd2)
    -- both fds were closed: the leak check after this test counts them
  end)

  it("checks the cancellation first: a cancelled caller writes nothing", function()
    local path = dir .. "/w.txt"
    local caught = run(function()
      local f = trio.open_file(path, "w")
      local s = trio.CancelScope()
      s:cancel()
      s:run(f.write, f, "must not be written")
      f:close()
      return s.cancelled_caught
    end)
    assert.is_true(caught)
    assert.equal("", read_plain(path))
  end)

  it("read and readline served from the buffer are checkpoints, and a cancellation there keeps the data", function()
    local path = write_plain("lines.txt", "ab\ncd\nef\n")
    local got = run(function()
      local out = {}
      local f = trio.open_file(path)
      out[#out + 1] = f:readline() -- the rest stays in the buffer
      trio.open_nursery(function(nursery)
        nursery:start_soon(function() out[#out + 1] = "other task" end)
        local line = f:readline() -- (out's length is read after the call)
        out[#out + 1] = line
      end)
      trio.open_nursery(function(nursery)
        nursery:start_soon(function() out[#out + 1] = "other task" end)
        local byte = f:read(1)
        out[#out + 1] = byte
      end)
      -- cancelled while it yields: Cancelled, and nothing is consumed
      local scope = trio.CancelScope()
      trio.open_nursery(function(nursery)
        nursery:start_soon(function() scope:cancel() end)
        scope:run(f.readline, f)
      end)
      out[#out + 1] = scope.cancelled_caught
      out[#out + 1] = f:read()
      f:close()
      return out
    end)
    assert.same({ "ab\n", "other task", "cd\n", "other task", "e", true, "f\n" }, got)
  end)

  it("is Trio-flavored: from asyncio FlavorError, and nothing is written", function()
    local path = dir .. "/fl.txt"
    local f = run(trio.open_file, path, "w")
    local e1, e2 = asyncio.run(function()
      return errof(f.write, f, "nope"), errof(trio.open_file, path)
    end)
    run(f.close, f)
    assert.is_true(errors.FlavorError:is(e1))
    assert_has(e1, "trio.AsyncFile:write")
    assert.is_true(errors.FlavorError:is(e2))
    assert.equal("", read_plain(path))
  end)

  it("is not starved by worker threads that block", function()
    local path = write_plain("q.txt", "quick")
    local data, elapsed = run(function()
      local got, took
      trio.open_nursery(function(n)
        for _ = 1, 10 do -- more than libuv's 4 threadpool threads
          n:start_soon(trio.to_thread.run_sync, function() os.execute("sleep 0.5") end)
        end
        trio.sleep(0.05)
        local t0 = trio.current_time()
        local f = trio.open_file(path)
        got = f:read()
        f:close()
        took = trio.current_time() - t0
      end)
      return got, took
    end)
    assert.equal("quick", data)
    assert.is_true(elapsed < 0.3, "the file read waited " .. elapsed .. " s behind worker threads")
  end)

  it("does not block the scheduler while a big file is written", function()
    local path = dir .. "/bw.bin"
    local ticks = run(function()
      local count, done = 0, false
      trio.open_nursery(function(n)
        n:start_soon(function()
          while not done do
            count = count + 1
            trio.sleep(0)
          end
        end)
        local f = trio.open_file(path, "wb")
        f:write(string.rep("y", 16 * 1024 * 1024))
        f:close()
        done = true
      end)
      return count
    end)
    assert.is_true(ticks >= 2, "the other task ran " .. ticks .. " times")
    assert.equal(16 * 1024 * 1024, #read_plain(path))
  end)
end)

describe("trio.Path", function()
  it("joins with / and joinpath, prints as its string, compares by value", function()
    local p = trio.Path("/usr", "lib")
    assert.equal("/usr/lib", tostring(p))
    assert.equal("/usr/lib/lua/5.4", tostring(p / "lua" / "5.4"))
    assert.equal("/usr/lib/x/y", tostring(p:joinpath("x", trio.Path("y"))))
    assert.equal("/etc", tostring(p / "/etc"))
    assert.equal("a/b", tostring("a" / trio.Path("b")))
    assert.equal(".", tostring(trio.Path()))
    assert.is_true(trio.Path("a/b") == trio.Path("a") / "b")
    assert.equal("path: a", "path: " .. trio.Path("a"))
    assert_has(errof(trio.Path, 1), "bad argument #1 to 'Path' (path string or trio.Path expected, got number)")
  end)

  it("reads and writes text and bytes", function()
    local r = run(function()
      local p = trio.Path(dir) / "t.bin"
      local n = p:write_bytes("a\0b\255")
      local b = p:read_bytes()
      local m = p:write_text("text\n")
      return { n, b, m, p:read_text() }
    end)
    assert.same({ 4, "a\0b\255", 5, "text\n" }, r)
  end)

  it("stat returns Python's field names", function()
    local path = write_plain("st.txt", "12345")
    local st = run(function() return trio.Path(path):stat() end)
    assert.equal(5, st.st_size)
    assert.equal(0x8000, st.st_mode & 0xF000)
    assert.equal("float", math.type(st.st_mtime))
    assert.equal("integer", math.type(st.st_mtime_ns))
    assert.is_true(math.abs(st.st_mtime - os.time()) < 60)
    for _, k in ipairs { "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_atime", "st_ctime" } do
      assert.is_number(st[k], k)
    end
  end)

  it("exists, is_file and is_dir, false for what is missing", function()
    local path = write_plain("e.txt", "")
    local r = run(function()
      local f, d, m = trio.Path(path), trio.Path(dir), trio.Path(dir) / "missing" / "x"
      return { f:exists(), f:is_file(), f:is_dir(), d:exists(), d:is_file(), d:is_dir(),
        m:exists(), m:is_file(), m:is_dir(), (f / "below"):exists() }
    end)
    assert.same({ true, true, false, true, false, true, false, false, false, false }, r)
  end)

  it("mkdir with parents and exist_ok, unlink with missing_ok, rename, rmdir, iterdir", function()
    local r = run(function()
      local base = trio.Path(dir)
      local deep = base / "a" / "b" / "c"
      local e1 = errof(deep.mkdir, deep)
      deep:mkdir { parents = true }
      local e2 = errof(deep.mkdir, deep)
      deep:mkdir { exist_ok = true }
      ;(base / "a" / "z.txt"):write_text("z")
      ;(base / "a" / "m.txt"):write_text("m")
      local listing = {}
      for i, p in ipairs((base / "a"):iterdir()) do listing[i] = tostring(p) end
      local moved = (base / "a" / "z.txt"):rename(base / "a" / "y.txt")
      local e3 = errof((base / "nothing").unlink, base / "nothing")
      ;(base / "nothing"):unlink { missing_ok = true }
      moved:unlink()
      deep:rmdir()
      return { e1, e2, e3, listing, tostring(moved), moved:exists(), deep:exists(),
        getmetatable((base / "a"):iterdir()[1]) == getmetatable(base) }
    end)
    assert.is_true(errors.FileNotFoundError:is(r[1]))
    assert.is_true(errors.FileExistsError:is(r[2]))
    assert.is_true(errors.FileNotFoundError:is(r[3]))
    assert.equal(dir .. "/nothing", r[3].filename)
    assert.same({ dir .. "/a/b", dir .. "/a/m.txt", dir .. "/a/z.txt" }, r[4])
    assert.equal(dir .. "/a/y.txt", r[5])
    assert.same({ false, false, true }, { r[6], r[7], r[8] })
  end)

  it("mkdir with exist_ok still refuses an existing file", function()
    local path = write_plain("file", "")
    local e = run(function()
      local p = trio.Path(path)
      return errof(p.mkdir, p, { exist_ok = true })
    end)
    assert.is_true(errors.FileExistsError:is(e))
  end)

  it("mkdir and unlink refuse a misspelt option and options that are not a table", function()
    local r = run(function()
      local p = trio.Path(dir) / "never"
      return { errof(p.mkdir, p, { parent = true }), errof(p.unlink, p, "missing_ok"), p:exists() }
    end)
    assert.matches("bad argument #1 to 'mkdir' (unknown option 'parent')", r[1], 1, true)
    assert.matches("bad argument #1 to 'unlink' (options table expected, got string)", r[2], 1, true)
    assert.is_false(r[3])
  end)

  it("open returns a Trio file", function()
    local path = write_plain("o.txt", "opened")
    local s = run(function()
      local f = trio.Path(path):open("r")
      local r = f:read()
      f:close()
      return r
    end)
    assert.equal("opened", s)
  end)

  it("its methods are Trio-flavored", function()
    local e = asyncio.run(function() return errof(trio.Path(dir).exists, trio.Path(dir)) end)
    assert.is_true(errors.FlavorError:is(e))
    assert_has(e, "trio.Path:exists")
  end)
end)

describe("asyncio.open_file", function()
  it("reads, writes, seeks and iterates lines with asyncio-flavored methods", function()
    local path = dir .. "/aio.txt"
    local r = asyncio.run(function()
      return asyncio.wait_for(function()
        local f = asyncio.open_file(path, "w+")
        local n = f:write("alpha\nbeta\n")
        f:seek("set", 0)
        local first = f:readline()
        local rest = {}
        for line in f:lines() do rest[#rest + 1] = line end
        f:seek("set", 0)
        local all = f:read()
        f:close()
        return { n, first, rest, all }
      end, 5)
    end)
    assert.same({ 11, "alpha\n", { "beta" }, "alpha\nbeta\n" }, r)
  end)

  it("raises OSError subclasses and FlavorError from Trio", function()
    local e = asyncio.run(function() return errof(asyncio.open_file, dir .. "/none") end)
    assert.is_true(errors.FileNotFoundError:is(e))
    local path = write_plain("x.txt", "x")
    local f = asyncio.run(asyncio.open_file, path)
    local e2 = trio.run(function() return errof(f.read, f) end)
    assert.is_true(errors.FlavorError:is(e2))
    assert_has(e2, "asyncio.AsyncFile:read")
    asyncio.run(f.close, f)
  end)

  it("a cancelled read leaves the loop running and the file usable", function()
    local path = write_plain("c.txt", "content")
    local r = asyncio.run(function()
      local f = asyncio.open_file(path)
      local t = asyncio.create_task(f.read, f, 3)
      t:cancel()
      local ok = pcall(t.await, t)
      local rest = f:read()
      f:close()
      return { ok, rest }
    end)
    assert.is_false(r[1])
    assert.is_string(r[2])
  end)
end)

describe("files across the bridge", function()
  it("trio.open_file in an open_loop block and asyncio.open_file through aio_as_trio", function()
    local path = write_plain("b.txt", "bridged")
    local a, b = ta.run(function()
      local f = trio.open_file(path)
      local x = f:read()
      f:close()
      local y = ta.aio_as_trio(function()
        local g = asyncio.open_file(path)
        local s = g:read(3)
        g:close()
        return s
      end)()
      return x, y
    end)
    assert.same({ "bridged", "bri" }, { a, b })
  end)
end)
