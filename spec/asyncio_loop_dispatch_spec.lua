-- The asyncio loop's dispatch of io wakes (a batch runs the woken waits
-- in the order of their wakes, transports' read paths directly, any
-- other wait through its callback) and Queue:get's stack, which it
-- resets only when it waits again.
local asyncio = require "asyncio"
local net = require "support_net"

local socket = asyncio.socket
local run = net.aio_run

describe("the loop's io wakes", function()
  for _, debug in ipairs { false, true } do
    it("of one batch run in the order of the wakes, stream transports' read paths and a datagram "
        .. "transport's read wait mixed (debug " .. tostring(debug) .. ")", function()
      local log, want, reached = {}, 0, nil
      run(function()
        local loop = asyncio.get_running_loop()
        loop:set_debug(debug)
        local function record(name, d)
          log[#log + 1] = name .. ":" .. d
          if #log == want then reached:set_result(true) end
        end
        local function recorder(name)
          return function()
            return {
              data_received = function(_, d) record(name, d) end,
              datagram_received = function(_, d) record(name, d) end,
            }
          end
        end
        local a, b = socket.socketpair()
        local c, d = socket.socketpair()
        local t1 = loop:create_connection(recorder("s1"), nil, nil, { sock = a })
        local t2 = loop:create_connection(recorder("s2"), nil, nil, { sock = c })
        local u = loop:create_datagram_endpoint(recorder("u"), { local_addr = { "127.0.0.1", 0 } })
        local sender = loop:create_datagram_endpoint(function() return {} end,
          { remote_addr = u:get_extra_info("sockname") })
        asyncio.sleep(0.01) -- all reading
        for round = 1, 3 do -- (no wait between the sends: their wakes come in one batch)
          want, reached = 3 * round, loop:create_future()
          loop:sock_sendall(b, "1")
          sender:sendto("2")
          loop:sock_sendall(d, "3")
          asyncio.wait_for(reached, 5)
        end
        assert.same({ "s1:1", "u:2", "s2:3", "s1:1", "u:2", "s2:3", "s1:1", "u:2", "s2:3" }, log)
        t1:close()
        t2:close()
        u:close()
        sender:close()
        b:close()
        d:close()
      end)
    end)
  end
end)

describe("Queue:get", function()
  it("ignores arguments after self, whether it waits or finds an item", function()
    run(function()
      local q = asyncio.Queue(1)
      local getter = asyncio.create_task(function() return q:get("x", "y", "z") end)
      asyncio.sleep(0)
      q:put("first")
      assert.equal("first", getter:await())
      q:put("second")
      assert.equal("second", q:get(1, 2, 3))
      assert.equal(0, q:qsize())
    end)
  end)

  it("a get woken again and again to find its item taken meanwhile waits on with a bounded stack", function()
    run(function()
      local q = asyncio.Queue()
      local getter = asyncio.create_task(function() return q:get("extra", "args") end)
      asyncio.sleep(0) -- waiting
      for i = 1, 500 do
        q:put_nowait(i) -- wakes the getter...
        assert.equal(i, q:get_nowait()) -- ...whose item goes first
        asyncio.sleep(0) -- the getter looks, finds none and waits again
        assert.is_false(getter:done())
      end
      q:put_nowait("last")
      assert.equal("last", getter:await())
      assert.equal(0, q:qsize())
    end)
  end)
end)
