-- Ported from trio-asyncio tests/test_sync.py
-- (github.com/python-trio/trio-asyncio, commit 4b0074272edcf892893a955c01b49d664e29b309).
--
-- With trio_asyncio loaded, asyncio.new_event_loop() returns its sync loop
-- (DESIGN 4.3), which run_until_complete drives again and again.
--
-- Left out: nothing.
local asyncio = require "asyncio"
require "trio_asyncio"

local F = "tests/test_sync.py::"

it(F .. "test_explicit_mainloop", function()
  local function foo() return "bar" end
  local function bar() return "baz" end

  local loop = asyncio.new_event_loop()
  local ok, err = pcall(function()
    local res = loop:run_until_complete(foo)
    assert.equal("bar", res)
    res = loop:run_until_complete(bar)
    assert.equal("baz", res)
  end)
  loop:close()
  assert(ok, err)
end)
