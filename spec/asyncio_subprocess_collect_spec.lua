-- asyncio subprocesses across garbage collections: the Futures of the I/O
-- requests that carry a subprocess on (its exit, a pipe's close, queued
-- writes) are held until done, since a Future of an I/O request that
-- nobody holds is collected with its request, which abandons it.  Before,
-- a full collection at the wrong time lost process_exited and
-- connection_lost (a hang), or a queued write (the next write raised
-- BrokenResourceError).
local asyncio = require "asyncio"

local function full_gc()
  collectgarbage("collect")
  collectgarbage("collect")
end

describe("asyncio subprocesses across collections", function()
  it("loop:subprocess_exec: the protocol hears the data, the exit and connection_lost", function()
    local log = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local got, done, log = asyncio.Event(), loop:create_future(), {}
      local proto = {
        pipe_data_received = function(_, fd, d)
          log[#log + 1] = "data " .. fd .. " " .. d
          got:set()
        end,
        pipe_connection_lost = function(_, fd) log[#log + 1] = "lost " .. fd end,
        process_exited = function() log[#log + 1] = "exited" end,
        connection_lost = function()
          log[#log + 1] = "connection_lost"
          done:set_result(true)
        end,
      }
      local transp = loop:subprocess_exec(function() return proto end, "cat")
      full_gc()
      transp:get_pipe_transport(0):write("hello")
      full_gc()
      asyncio.wait_for(function() got:wait() end, 5)
      transp:close()
      full_gc()
      if not pcall(asyncio.wait_for, done, 5) then log[#log + 1] = "timed out" end
      return log
    end)
    assert.equal("data 1 hello", log[1])
    assert.equal("connection_lost", log[#log])
    table.sort(log)
    assert.same({ "connection_lost", "data 1 hello", "exited", "lost 0", "lost 1", "lost 2" }, log)
  end)

  it("a PipeStreamWriter's queued writes all reach the child, with collections between them", function()
    local n = asyncio.run(function()
      local p = asyncio.create_subprocess_exec("cat",
        { stdin = asyncio.subprocess.PIPE, stdout = asyncio.subprocess.PIPE })
      for i = 1, 26 do
        p.stdin:write(string.rep(string.char(96 + i), 100000))
        full_gc()
      end
      p.stdin:write_eof()
      full_gc()
      local out = asyncio.wait_for(function() return p.stdout:read() end, 10)
      assert.equal(0, asyncio.wait_for(function() return p:wait() end, 5))
      return #out
    end)
    assert.equal(26 * 100000, n)
  end)

  it("a subprocess transport's stdin writes all reach the child, with collections between them", function()
    local n = asyncio.run(function()
      local loop = asyncio.get_running_loop()
      local done, total = loop:create_future(), 0
      local proto = {
        pipe_data_received = function(_, _, d) total = total + #d end,
        connection_lost = function() done:set_result(true) end,
      }
      local transp = loop:subprocess_exec(function() return proto end, "cat")
      local stdin = transp:get_pipe_transport(0)
      for i = 1, 26 do
        stdin:write(string.rep(string.char(96 + i), 100000))
        full_gc()
      end
      stdin:write_eof()
      asyncio.wait_for(done, 10)
      return total
    end)
    assert.equal(26 * 100000, n)
  end)
end)
