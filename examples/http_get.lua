-- http_get.lua: a small asyncio-flavored HTTP/1.1 client, used from Trio
-- code through trio_asyncio.aio_as_trio, with a timeout.
--   lua5.4 examples/http_get.lua                     a demo against a local server
--   lua5.4 examples/http_get.lua http://host:port/   GET that URL (plain HTTP only)
-- The client is asyncio code (open_connection, StreamReader) as a library
-- written for asyncio would be; the Trio side calls it through the bridge,
-- and Trio's fail_after cancels it (the asyncio Task sees CancelledError).
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"

-- ---------------------------------------------------------------------
-- the asyncio-flavored client library

local http = {}

--- http.get(url) -> status, headers, body (asyncio-flavored)
function http.get(url)
  local host, port, path = url:match("^http://([^/:]+):?(%d*)(/?.*)$")
  assert(host, "only http://host[:port]/path URLs: " .. url)
  port = tonumber(port) or 80
  if path == "" then path = "/" end
  local reader, writer = asyncio.open_connection(host, port)
  local ok, status, headers, body = pcall(function()
    writer:write(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: trio-asyncio-lua\r\n\r\n")
      :format(path, host))
    writer:drain()
    local code = assert(reader:readline():match("^HTTP/1%.[01] (%d+)"), "not an HTTP response")
    local hdrs = {}
    for line in reader:lines() do
      line = line:gsub("\r$", "")
      if line == "" then break end
      local k, v = line:match("^([^:]+):%s*(.*)$")
      if k then hdrs[k:lower()] = v end
    end
    local data
    if hdrs["transfer-encoding"] == "chunked" then
      local parts = {}
      while true do
        local size = tonumber(reader:readline():match("^%x+"), 16)
        if size == 0 then break end
        parts[#parts + 1] = reader:readexactly(size)
        reader:readline()
      end
      data = table.concat(parts)
    elseif hdrs["content-length"] then
      data = reader:readexactly(tonumber(hdrs["content-length"]))
    else
      data = reader:read() -- until the server closes
    end
    return tonumber(code), hdrs, data
  end)
  writer:close()
  if not ok then error(status, 0) end
  return status, headers, body
end

-- ---------------------------------------------------------------------
-- Trio code using it

local get = ta.aio_as_trio(http.get) -- a Trio-flavored function now

local url = arg and arg[1]

ta.run(function()
  if url then
    local status, headers, body = trio.fail_after(10, get, url)
    print("status", status, "content-type", headers["content-type"])
    io.write(body)
    return
  end
  trio.open_nursery(function(nursery)
    -- a local server (Trio) with a fast page and a page that never answers
    local listeners = nursery:start(trio.serve_tcp, function(stream)
      local request = ""
      repeat request = request .. stream:receive_some() until request:find("\r\n\r\n", 1, true)
      if request:match("^GET /slow ") then trio.sleep_forever() end
      local body = "hello over HTTP/1.1\n"
      stream:send_all(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s")
        :format(#body, body))
    end, 0, { host = "127.0.0.1" })
    local base = ("http://127.0.0.1:%d"):format(listeners[1].socket:getsockname()[2])

    local status, headers, body = trio.fail_after(5, get, base .. "/")
    print("GET / ->", status, headers["content-type"], (body:gsub("\n$", "")))

    local ok, err = pcall(trio.fail_after, 0.2, get, base .. "/slow")
    print("GET /slow with a 0.2 s timeout -> TooSlowError:", not ok and trio.TooSlowError:is(err))

    -- several requests at once, each an asyncio Task under the Trio nursery
    local results = {}
    trio.open_nursery(function(n)
      for i = 1, 3 do
        n:start_soon(function() results[i] = select(3, get(base .. "/page" .. i)) end)
      end
    end)
    print("three at once:", #results, results[1] == results[3])
    nursery.cancel_scope:cancel()
  end)
  print("http_get example: done")
end)
