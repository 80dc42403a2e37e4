-- The socket functions tell a socket object by its userdata size and a tag
-- only sock.c writes (csrc/io/sock.h ta_tosockbox), not by its metatable:
-- any other value, userdata included, is an argument error naming the
-- socket class; a closed socket is still a socket.
local trio, asyncio = require "trio", require "asyncio"
local core, errors = require "trio_asyncio.core", require "trio.errors"
local errof, assert_has = require("support").errof, require("support").assert_has

local K = core.socket_constants()
local methods = core.metatable("trio_asyncio.socket").__methods

local function others()
  local list = { io.stdout, "x", {}, 1 }
  asyncio.run(function()
    list[#list + 1] = asyncio.StreamReader()
    list[#list + 1] = asyncio.get_running_loop()
  end)
  return list
end

describe("socket object check", function()
  it("a method given anything but a socket raises an argument error", function()
    for _, v in ipairs(others()) do
      assert_has(errof(methods.getsockname, v), "trio_asyncio.socket expected, got")
      assert_has(errof(methods.fileno, v), "trio_asyncio.socket expected, got")
    end
  end)

  it("the stream and wait functions check it too", function()
    for _, v in ipairs(others()) do
      trio.run(function()
        assert_has(errof(core.trio_stream_recv, v, 10), "trio_asyncio.socket expected, got")
        assert_has(errof(core.trio_stream_send, v, "x", {}), "trio_asyncio.socket expected, got")
        assert_has(errof(core.trio_stream_sending, v), "trio_asyncio.socket expected, got")
      end)
    end
  end)

  it("a closed socket is still a socket: OSError EBADF, not an argument error", function()
    local s = core.socket(K.AF_INET, K.SOCK_STREAM)
    s:close()
    trio.run(function()
      local e = errof(s.recv, s, 10)
      assert.is_true(errors.OSError:is(e))
      assert.equal("EBADF", e.code)
    end)
    assert.equal(K.AF_INET, s.family)
  end)
end)
