-- Every runnable example in examples/ runs (each at most 30 s) and prints
-- what it promises; examples/*_spec.lua run as specs of the suite.
local support = require "support"
local assert_has = support.assert_has

local function run_example(name)
  local cmd = ("LUA_PATH=%q LUA_CPATH=%q timeout 30 lua5.4 examples/%s 2>&1; echo \"exit=$?\"")
    :format(package.path, package.cpath, name)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local EXPECTED = {
  ["demo.lua"] = {
    "received a-1", "moved on: cancelled_caught = true", "fail_after: TooSlowError",
    "nursery raised trio.ExceptionGroup holding:", "server started on port 8080",
    "asyncio: gather -> one two; wait_for -> TimeoutError", "aio_as_trio(fetch)(21) =\t42",
    "background fetch [asyncio task]", "bridge: done",
  },
  ["nursery_timeouts.lua"] = {
    "all jobs: job1 done, job2 done, job3 done",
    "move_on_after: cancelled_caught =\ttrue\tvalue =\tnil",
    "fail_after: ok =\tfalse\tTooSlowError =\ttrue",
    "nursery raised a group:\ttrue\tholding:\tdisk full\tsibling cancelled:\ttrue",
    "cleanup ran under the shield after the timeout:\ttrue",
  },
  ["producer_consumer.lua"] = {
    "6 items, each once", "second send_nowait: WouldBlock =\ttrue",
    "receive_nowait:\tonly one fits", "receive after close: EndOfChannel =\ttrue",
  },
  ["asyncio_tasks.lua"] = {
    "task:\tfirst download\tdone yet:\tfalse", "awaited:\tFIRST", "gather:\tSLOW\tFAST",
    "gather with return_exceptions:\tbroken\tfine", "wait_for: TimeoutError =\ttrue",
    "queue items handled:\t4", "asyncio example: done",
  },
  ["echo_server.lua"] = {
    "echo server listening on 127.0.0.1 port\ttrue", "client 1 got back: hello from client 1",
    "client 2 got back: hello from client 2", "client 3 got back: hello from client 3", "server stopped",
  },
  ["chat.lua"] = {
    "ann heard: <ann> hi, I am ann | <bob> hi, I am bob | <cat> hi, I am cat",
    "bob heard: <ann> hi, I am ann | <bob> hi, I am bob | <cat> hi, I am cat",
    "cat heard: <ann> hi, I am ann | <bob> hi, I am bob | <cat> hi, I am cat", "chat server stopped",
  },
  ["http_get.lua"] = {
    "GET / ->\t200\ttext/plain\thello over HTTP/1.1", "GET /slow with a 0.2 s timeout -> TooSlowError:\ttrue",
    "three at once:\t3\ttrue", "http_get example: done",
  },
  ["https_get.lua"] = {
    "GET https://localhost/index ->\t200\tTLSv1.3\ttext/plain\thello over HTTPS, you asked for /index",
    "by address (not in the certificate) ->\ttrue",
    "without our CA ->\ttrue\tunable to get local issuer certificate", "https_get example: done",
  },
  ["bridge.lua"] = {
    "aio_as_trio(aio_fetch)(21) =\t42", "trio_as_aio(trio_compute)(41) from an asyncio Task =\t42",
    "Trio timeout cancelled the asyncio Task:\ttrue\ttrue", "wrong flavor:\tfalse\ttrue",
    "side by side:\tasyncio 2, trio 2", "bridge example: done",
  },
}

describe("examples/", function()
  it("has an expectation here for every runnable example", function()
    local p = assert(io.popen("ls examples"))
    for name in p:lines() do
      if name:match("%.lua$") and not name:match("_spec%.lua$") then
        assert.is_not_nil(EXPECTED[name], "examples/" .. name .. " is not run by spec/examples_spec.lua")
      end
    end
    p:close()
  end)

  local names = {}
  for name in pairs(EXPECTED) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    it(name .. " runs and prints what it promises", function()
      local out = run_example(name)
      assert_has(out, "exit=0")
      for _, line in ipairs(EXPECTED[name]) do assert_has(out, line) end
    end)
  end
end)
