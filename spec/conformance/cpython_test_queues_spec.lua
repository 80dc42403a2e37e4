-- Ported from CPython Lib/test/test_asyncio/test_queues.py
-- (python/cpython at commit 15b059106490e2765d2d54527aa2d998cdaab831).
--
-- Each test is named "test_queues.py::<Class>.<test>"; the join and
-- shutdown mixins run for Queue, LifoQueue and PriorityQueue, as upstream.
-- asyncio.TaskGroup has no counterpart: where a test uses it only to run
-- tasks to completion, the tasks are created and then awaited with gather.
-- Python's len(q._getters) / len(q._putters) is read from tostring(q),
-- which shows "getters:N" and "putters:N".
--
-- Left out:
--   QueueBasicTests.test_repr, test_str   repr()/str() format of the Python object
--   QueueBasicTests.test_generic_alias     Python typing (Queue[int])
--   QueueGetTests.test_get_with_putters    appends a future to the private q._putters
--   *JoinTests.test_format, *ShutdownTests.test_format
--                                          the private q._format()
local asyncio = require "asyncio"
local H = require "conformance.cpython_helpers"

local CancelledError, TimeoutError = H.CancelledError, H.TimeoutError
local assert_raises = H.assert_raises
local pending = H.pending(pending, it)

describe("test_queues.py", function()
  local T = "test_queues.py::QueueBasicTests."

  it(T .. "test_empty", function()
    H.run(function()
      local q = asyncio.Queue()
      assert.is_true(q:empty())
      q:put(1)
      assert.is_false(q:empty())
      assert.equal(1, q:get())
      assert.is_true(q:empty())
    end)
  end)

  it(T .. "test_full", function()
    H.run(function()
      local q = asyncio.Queue()
      assert.is_false(q:full())
      q = asyncio.Queue(1)
      q:put(1)
      assert.is_true(q:full())
    end)
  end)

  it(T .. "test_order", function()
    H.run(function()
      local q = asyncio.Queue()
      for _, i in ipairs { 1, 3, 2 } do q:put(i) end
      local items = {}
      for i = 1, 3 do items[i] = q:get() end
      assert.same({ 1, 3, 2 }, items)
    end)
  end)

  it(T .. "test_maxsize", function()
    H.run(function()
      local q = asyncio.Queue(2)
      assert.equal(2, q.maxsize)
      local have_been_put = {}
      local function putter()
        for i = 0, 2 do
          q:put(i)
          have_been_put[#have_been_put + 1] = i
        end
        return true
      end
      local t = asyncio.create_task(putter)
      for _ = 1, 2 do asyncio.sleep(0) end
      -- the putter is blocked after putting two items
      assert.same({ 0, 1 }, have_been_put)
      assert.equal(0, q:get())
      -- let the putter resume and put the last item
      asyncio.sleep(0)
      assert.same({ 0, 1, 2 }, have_been_put)
      assert.equal(1, q:get())
      assert.equal(2, q:get())
      assert.is_true(t:done())
      assert.is_true(t:result())
    end)
  end)

  T = "test_queues.py::QueueGetTests."

  it(T .. "test_blocking_get", function()
    H.run(function()
      local q = asyncio.Queue()
      q:put_nowait(1)
      assert.equal(1, q:get())
    end)
  end)

  it(T .. "test_blocking_get_wait", function()
    H.run(function()
      local loop = asyncio.get_running_loop()
      local q = asyncio.Queue()
      local started = asyncio.Event()
      local finished = false
      local function queue_get()
        started:set()
        local res = q:get()
        finished = true
        return res
      end
      local queue_get_task = asyncio.create_task(queue_get)
      started:wait()
      assert.is_false(finished)
      loop:call_later(0.01, q.put_nowait, q, 1)
      local res = queue_get_task:await()
      assert.is_true(finished)
      assert.equal(1, res)
    end)
  end)

  it(T .. "test_nonblocking_get", function()
    local q = asyncio.Queue()
    q:put_nowait(1)
    assert.equal(1, q:get_nowait())
  end)

  it(T .. "test_nonblocking_get_exception", function()
    local q = asyncio.Queue()
    assert_raises(asyncio.QueueEmpty, q.get_nowait, q)
  end)

  it(T .. "test_get_cancelled_race", function()
    H.run(function()
      local q = asyncio.Queue()
      local t1 = asyncio.create_task(q.get, q)
      local t2 = asyncio.create_task(q.get, q)
      asyncio.sleep(0)
      t1:cancel()
      asyncio.sleep(0)
      assert.is_true(t1:done())
      q:put("a")
      asyncio.sleep(0)
      assert.equal("a", t2:await())
    end)
  end)

  it(T .. "test_get_with_waiting_putters", function()
    H.run(function()
      local q = asyncio.Queue(1)
      asyncio.create_task(q.put, q, "a")
      asyncio.create_task(q.put, q, "b")
      assert.equal("a", q:get())
      assert.equal("b", q:get())
    end)
  end)

  it(T .. "test_why_are_getters_waiting", function()
    H.run(function()
      local function consumer(queue, num_expected)
        for _ = 1, num_expected do queue:get() end
      end
      local function producer(queue, num_items)
        for i = 0, num_items - 1 do queue:put(i) end
      end
      local producer_num_items = 5
      local q = asyncio.Queue(1)
      asyncio.gather(asyncio.create_task(producer, q, producer_num_items),
        asyncio.create_task(consumer, q, producer_num_items))
    end)
  end)

  it(T .. "test_cancelled_getters_not_being_held_in_self_getters", function()
    H.run(function()
      local queue = asyncio.Queue(5)
      assert_raises(TimeoutError, asyncio.wait_for, function() return queue:get() end, 0.1)
      assert.equal(0, H.count(queue, "getters"))
    end)
  end)

  T = "test_queues.py::QueuePutTests."

  it(T .. "test_blocking_put", function()
    H.run(function()
      local q = asyncio.Queue()
      -- no maxsize: does not block
      q:put(1)
      assert.equal(1, q:get())
    end)
  end)

  it(T .. "test_blocking_put_wait", function()
    H.run(function()
      local q = asyncio.Queue(1)
      local started = asyncio.Event()
      local finished = false
      local function queue_put()
        started:set()
        q:put(1)
        q:put(2)
        finished = true
      end
      local loop = asyncio.get_running_loop()
      loop:call_later(0.01, q.get_nowait, q)
      local queue_put_task = asyncio.create_task(queue_put)
      started:wait()
      assert.is_false(finished)
      queue_put_task:await()
      assert.is_true(finished)
    end)
  end)

  it(T .. "test_nonblocking_put", function()
    local q = asyncio.Queue()
    q:put_nowait(1)
    assert.equal(1, q:get_nowait())
  end)

  it(T .. "test_get_cancel_drop_one_pending_reader", function()
    H.run(function()
      local q = asyncio.Queue()
      local reader = asyncio.create_task(q.get, q)
      asyncio.sleep(0)
      q:put_nowait(1)
      q:put_nowait(2)
      reader:cancel()
      H.except_cancelled(reader.await, function()
        -- try again
        reader = asyncio.create_task(q.get, q)
        reader:await()
      end, reader)
      local result = reader:result()
      -- 2 would mean that 1 got dropped
      assert.equal(1, result)
    end)
  end)

  it(T .. "test_get_cancel_drop_many_pending_readers", function()
    H.run(function()
      local q = asyncio.Queue()
      local reader1 = asyncio.create_task(q.get, q)
      local reader2 = asyncio.create_task(q.get, q)
      local reader3 = asyncio.create_task(q.get, q)
      asyncio.sleep(0)
      q:put_nowait(1)
      q:put_nowait(2)
      reader1:cancel()
      assert_raises(CancelledError, reader1.await, reader1)
      reader3:await()
      reader2:await() -- the task group's exit
      -- the order in which concurrent readers get their item is undefined
      local got = { [reader2:result()] = true, [reader3:result()] = true }
      assert.same({ [1] = true, [2] = true }, got)
    end)
  end)

  it(T .. "test_put_cancel_drop", function()
    H.run(function()
      local q = asyncio.Queue(1)
      q:put_nowait(1)
      -- putting a second item has to wait (qsize 1)
      local writer = asyncio.create_task(q.put, q, 2)
      asyncio.sleep(0)
      local value1 = q:get_nowait()
      assert.equal(1, value1)
      writer:cancel()
      H.except_cancelled(writer.await, function()
        -- try again
        writer = asyncio.create_task(q.put, q, 2)
        writer:await()
      end, writer)
      local value2 = q:get_nowait()
      assert.equal(2, value2)
      assert.equal(0, q:qsize())
    end)
  end)

  it(T .. "test_nonblocking_put_exception", function()
    local q = asyncio.Queue(1)
    q:put_nowait(1)
    assert_raises(asyncio.QueueFull, q.put_nowait, q, 2)
  end)

  it(T .. "test_float_maxsize", function()
    H.run(function()
      local q = asyncio.Queue(1.3)
      q:put_nowait(1)
      q:put_nowait(2)
      assert.is_true(q:full())
      assert_raises(asyncio.QueueFull, q.put_nowait, q, 3)

      q = asyncio.Queue(1.3)
      q:put(1)
      q:put(2)
      assert.is_true(q:full())
    end)
  end)

  it(T .. "test_put_cancelled", function()
    H.run(function()
      local q = asyncio.Queue()
      local function queue_put()
        q:put(1)
        return true
      end
      local t = asyncio.create_task(queue_put)
      assert.equal(1, q:get())
      assert.is_true(t:done())
      assert.is_true(t:result())
    end)
  end)

  it(T .. "test_put_cancelled_race", function()
    H.run(function()
      local q = asyncio.Queue(1)
      local put_a = asyncio.create_task(q.put, q, "a")
      local put_b = asyncio.create_task(q.put, q, "b")
      local put_c = asyncio.create_task(q.put, q, "X")
      asyncio.sleep(0)
      assert.is_true(put_a:done())
      assert.is_false(put_b:done())
      put_c:cancel()
      asyncio.sleep(0)
      assert.is_true(put_c:done())
      assert.equal("a", q:get_nowait())
      asyncio.sleep(0)
      assert.equal("b", q:get_nowait())
      put_b:await()
    end)
  end)

  it(T .. "test_put_with_waiting_getters", function()
    H.run(function()
      local q = asyncio.Queue()
      local t = asyncio.create_task(q.get, q)
      asyncio.sleep(0)
      q:put("a")
      assert.equal("a", t:await())
    end)
  end)

  it(T .. "test_why_are_putters_waiting", function()
    H.run(function()
      local queue = asyncio.Queue(2)
      local function putter(item) queue:put(item) end
      local function getter()
        asyncio.sleep(0)
        local num = queue:qsize()
        for _ = 1, num do queue:get_nowait() end
      end
      asyncio.gather(asyncio.create_task(getter), asyncio.create_task(putter, 0),
        asyncio.create_task(putter, 1), asyncio.create_task(putter, 2),
        asyncio.create_task(putter, 3))
    end)
  end)

  it(T .. "test_cancelled_puts_not_being_held_in_self_putters", function()
    H.run(function()
      -- a full queue
      local queue = asyncio.Queue(1)
      queue:put_nowait(1)
      -- a task waiting for room to put an item
      local put_task = asyncio.create_task(queue.put, queue, 1)
      asyncio.sleep(0)
      -- the cancelled putter leaves the putters
      assert.equal(1, H.count(queue, "putters"))
      put_task:cancel()
      assert_raises(CancelledError, put_task.await, put_task)
      assert.equal(0, H.count(queue, "putters"))
    end)
  end)

  it(T .. "test_cancelled_put_silence_value_error_exception", function()
    H.run(function()
      -- a full queue
      local queue = asyncio.Queue(1)
      queue:put_nowait(1)
      -- a task waiting for room to put an item
      local put_task = asyncio.create_task(queue.put, queue, 1)
      asyncio.sleep(0)
      -- get_nowait() wakes the putter (its future leaves the putters) ...
      queue:get_nowait()
      -- ... and cancelling it then must not fail on removing it again
      put_task:cancel()
      assert_raises(CancelledError, put_task.await, put_task)
    end)
  end)

  it("test_queues.py::LifoQueueTests.test_order", function()
    H.run(function()
      local q = asyncio.LifoQueue()
      for _, i in ipairs { 1, 3, 2 } do q:put(i) end
      local items = {}
      for i = 1, 3 do items[i] = q:get() end
      assert.same({ 2, 3, 1 }, items)
    end)
  end)

  it("test_queues.py::PriorityQueueTests.test_order", function()
    H.run(function()
      local q = asyncio.PriorityQueue()
      for _, i in ipairs { 1, 3, 2 } do q:put(i) end
      local items = {}
      for i = 1, 3 do items[i] = q:get() end
      assert.same({ 1, 2, 3 }, items)
    end)
  end)

  for _, kind in ipairs { "Queue", "LifoQueue", "PriorityQueue" } do
    local q_class = asyncio[kind]
    T = "test_queues.py::" .. kind .. "JoinTests."

    it(T .. "test_task_done_underflow", function()
      local q = q_class()
      assert_raises(H.ValueError, q.task_done, q)
    end)

    it(T .. "test_task_done", function()
      H.run(function()
        local q = q_class()
        for i = 0, 99 do q:put_nowait(i) end
        local accumulator = 0
        -- two workers take items and call task_done after each; join()
        -- returns once every item was processed
        local running = true
        local function worker()
          while running do
            local item = q:get()
            accumulator = accumulator + item
            q:task_done()
          end
        end
        local tasks = { asyncio.create_task(worker), asyncio.create_task(worker) }
        q:join()
        assert.equal(4950, accumulator)
        -- let the workers end
        running = false
        for _ = 1, #tasks do q:put_nowait(0) end
        asyncio.gather(tasks[1], tasks[2]) -- the task group's exit
      end)
    end)

    it(T .. "test_join_empty_queue", function()
      H.run(function()
        local q = q_class()
        -- join() on an empty queue returns at once (twice, for insurance)
        q:join()
        q:join()
      end)
    end)
  end

  for _, kind in ipairs { "Queue", "LifoQueue", "PriorityQueue" } do
    local q_class = asyncio[kind]
    local QueueShutDown = asyncio.QueueShutDown
    T = "test_queues.py::" .. kind .. "ShutdownTests."

    it(T .. "test_shutdown_empty", function()
      H.run(function()
        -- an empty queue, with a get() task
        local q = q_class()
        local loop = asyncio.get_running_loop()
        local get_task = loop:create_task(q.get, q)
        asyncio.sleep(0) -- the get task waits before the shutdown
        q:shutdown(false) -- unfinished tasks: 0 -> 0
        assert.equal(0, q:qsize())
        -- join() returns
        q:join()
        -- the get() task ended with ShutDown
        asyncio.sleep(0)
        assert.is_true(get_task:done())
        assert_raises(QueueShutDown, get_task.await, get_task)
        -- put() and get() raise ShutDown
        assert_raises(QueueShutDown, q.put, q, "data")
        assert_raises(QueueShutDown, q.put_nowait, q, "data")
        assert_raises(QueueShutDown, q.get, q)
        assert_raises(QueueShutDown, q.get_nowait, q)
      end)
    end)

    it(T .. "test_shutdown_nonempty", function()
      H.run(function()
        -- a full queue of one item, with join() and put() tasks
        local q = q_class(1)
        local loop = asyncio.get_running_loop()
        q:put_nowait("data")
        local join_task = loop:create_task(q.join, q)
        local put_task = loop:create_task(q.put, q, "data2")
        -- the put() task waits
        asyncio.sleep(0)
        assert.is_false(put_task:done())
        q:shutdown(false) -- unfinished tasks: 1 -> 1
        assert.equal(1, q:qsize())
        -- the put() task ended with ShutDown
        asyncio.sleep(0)
        assert.is_true(put_task:done())
        assert_raises(QueueShutDown, put_task.await, put_task)
        -- get() still returns the queued item
        assert.equal("data", q:get())
        -- join() still waits
        asyncio.sleep(0)
        assert.is_false(join_task:done())
        -- put() and get() raise ShutDown
        assert_raises(QueueShutDown, q.put, q, "data")
        assert_raises(QueueShutDown, q.put_nowait, q, "data")
        assert_raises(QueueShutDown, q.get, q)
        assert_raises(QueueShutDown, q.get_nowait, q)
        -- one unfinished task left: then join() returns
        q:task_done()
        asyncio.sleep(0)
        assert.is_true(join_task:done())
        join_task:await()
        assert_raises(H.ValueError, q.task_done, q)
      end)
    end)

    it(T .. "test_shutdown_immediate", function()
      H.run(function()
        -- a queue of one item, with a join() task
        local q = q_class()
        local loop = asyncio.get_running_loop()
        q:put_nowait("data")
        local join_task = loop:create_task(q.join, q)
        q:shutdown(true) -- unfinished tasks: 1 -> 0
        assert.equal(0, q:qsize())
        -- the join() task returned
        asyncio.sleep(0)
        assert.is_true(join_task:done())
        join_task:await()
        -- put() and get() raise ShutDown
        assert_raises(QueueShutDown, q.put, q, "data")
        assert_raises(QueueShutDown, q.put_nowait, q, "data")
        assert_raises(QueueShutDown, q.get, q)
        assert_raises(QueueShutDown, q.get_nowait, q)
        -- no unfinished tasks
        assert_raises(H.ValueError, q.task_done, q)
      end)
    end)

    it(T .. "test_shutdown_immediate_with_unfinished", function()
      H.run(function()
        -- a queue of two items (one taken), with a join() task
        local q = q_class()
        local loop = asyncio.get_running_loop()
        q:put_nowait("data")
        q:put_nowait("data")
        local join_task = loop:create_task(q.join, q)
        assert.equal("data", q:get())
        q:shutdown(true) -- unfinished tasks: 2 -> 1
        assert.equal(0, q:qsize())
        -- the join() task still waits
        asyncio.sleep(0)
        assert.is_false(join_task:done())
        -- put() and get() raise ShutDown
        assert_raises(QueueShutDown, q.put, q, "data")
        assert_raises(QueueShutDown, q.put_nowait, q, "data")
        assert_raises(QueueShutDown, q.get, q)
        assert_raises(QueueShutDown, q.get_nowait, q)
        -- one unfinished task
        q:task_done()
        assert_raises(H.ValueError, q.task_done, q)
        -- then join() returns
        asyncio.sleep(0)
        assert.is_true(join_task:done())
        join_task:await()
      end)
    end)
  end
end)
