-- Ported from Trio's src/trio/_tests/test_highlevel_open_unix_stream.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: tempfile.mktemp() is a name from os.tmpname() whose file is
-- removed again.  The server side, a blocking stdlib socket in Trio's
-- test, is a trio.socket socket, whose accept/send/recv are Trio-flavored
-- calls here.  Python's TypeError for a bad argument is a "bad argument"
-- error.  aclose() and the `with` blocks are close() / <close> variables.
--
-- Ported: test_open_with_bad_filename_type, test_open_bad_socket,
-- test_open_unix_socket (the path as a trio.Path and as a string).
-- Adapted: test_close_on_error (close_on_error is a private helper; what it
-- is for is checked instead: an open_unix_socket whose connect fails
-- leaves no descriptor open).
-- Dropped: test_error_on_no_unix (for platforms without Unix sockets).
local trio = require "trio"
local errors = require "trio.errors"
local H = require "conformance.trio_helpers"
local net = require "support_net"

local tsocket = trio.socket

-- A path in the temp directory where no file is.
local function mktemp()
  local name = os.tmpname()
  os.remove(name)
  return name
end

describe("test_highlevel_open_unix_stream.py", function()
  it("test_close_on_error", function()
    H.run(function()
      local before = net.nfds()
      for _ = 1, 3 do
        H.raises(errors.FileNotFoundError, trio.open_unix_socket, mktemp())
      end
      assert.equal(before, net.nfds())
    end)
  end)

  for _, filename in ipairs { 4, 4.5 } do
    it(("test_open_with_bad_filename_type[%s]"):format(filename), function()
      H.run(function()
        H.raises(H.msg("bad argument #1 to 'open_unix_socket' (path string or trio.Path expected, got number)"),
          trio.open_unix_socket, filename)
      end)
    end)
  end

  it("test_open_bad_socket", function()
    local name = mktemp()
    H.run(function()
      local e = H.raises(errors.FileNotFoundError, trio.open_unix_socket, name)
      assert.equal(name, e.filename)
    end)
  end)

  it("test_open_unix_socket", function()
    for _, name_type in ipairs { trio.Path, tostring } do
      local name = mktemp()
      H.run(function()
        local serv_sock <close> = tsocket.socket(tsocket.AF_UNIX, tsocket.SOCK_STREAM)
        serv_sock:bind(name)
        local ok, err = pcall(function()
          serv_sock:listen(1)
          -- the function under test
          local unix_socket <close> = trio.open_unix_socket(name_type(name))
          local client <close> = trio.fail_after(5, serv_sock.accept, serv_sock)
          unix_socket:send_all("test")
          assert.equal("test", trio.fail_after(5, client.recv, client, 2048))
          client:send("response")
          assert.equal("response", trio.fail_after(5, unix_socket.receive_some, unix_socket, 2048))
        end)
        os.remove(name)
        if not ok then error(err, 0) end
      end)
    end
  end)
end)
