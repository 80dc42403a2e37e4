-- Ported from trio-asyncio tests/aiotest/test_thread.py
-- (github.com/python-trio/trio-asyncio, commit 4b0074272edcf892893a955c01b49d664e29b309).
--
-- Translation: loop:run_in_executor(nil, fn) runs fn in a worker thread
-- (DESIGN 4.4: fn's only upvalue is _ENV, it runs in a worker lua_State and
-- its results are copied back), so `work` returns what upstream stores in a
-- shared dict.  threading.get_ident() is the address of the running Lua
-- thread (a worker's lua_State is not the caller's).  `loop.run_aio_future`
-- and `loop.run_aio_coroutine` are the trio_asyncio functions of the same
-- names on the current loop.
--
-- Left out:
-- * test_policy: what asyncio.get_event_loop() answers in a worker thread
--   is the event loop policy's business (Python-only machinery).
-- * test_run_in_thread: it shares one loop object between two OS threads
--   (a Trio run in a thread, call_soon_threadsafe from the main one); Lua
--   states share no objects across threads (worker values are copied), so
--   the scenario has no Lua form.  Its C-host form,
--   trio_asyncio_call_soon_threadsafe, is covered by spec/embed_spec.lua.
local ta = require "trio_asyncio"
local H = require "conformance.trio_asyncio_helpers"

local F = "tests/aiotest/test_thread.py::"

local function get_ident() return tostring((coroutine.running())) end

it(F .. "test_ident", function()
  H.with_loop(function(loop)
    local function work() return tostring((coroutine.running())) end
    local fut = loop:run_in_executor(nil, work)
    local work_ident = ta.run_aio_coroutine(fut)
    -- work() ran in another thread
    assert.is_not_nil(work_ident)
    assert.are_not.equal(get_ident(), work_ident)
  end)
end)

it(F .. "test_run_twice", function()
  H.with_loop(function(loop)
    local result = {}
    local function work() return "run" end

    local fut = loop:run_in_executor(nil, work)
    result[#result + 1] = ta.run_aio_future(fut)
    assert.same({ "run" }, result)

    -- run_in_executor() can be called twice
    fut = loop:run_in_executor(nil, work)
    result[#result + 1] = ta.run_aio_future(fut)
    assert.same({ "run", "run" }, result)
  end)
end)
