--- asyncio queues: Queue (FIFO), LifoQueue, PriorityQueue, with the
-- semantics of CPython's asyncio/queues.py.
--
--   q = asyncio.Queue(maxsize)   -- maxsize <= 0 (the default): unbounded
--   q:put(item) / q:get()        -- async: wait while full / empty
--   q:put_nowait(item) / q:get_nowait()  -- raise asyncio.QueueFull / QueueEmpty
--   q:qsize(), q:empty(), q:full(), q.maxsize
--   q:task_done(), q:join()      -- join waits until every item put was
--                                -- marked done (task_done past that raises
--                                -- asyncio.ValueError)
--   q:shutdown([immediate])      -- puts raise asyncio.QueueShutDown, and gets
--                                -- too once the queue is empty (at once with
--                                -- `immediate`, which drops the items)
--
-- A put or get that had to wait is woken (an asyncio Task parked in the
-- queue, a Trio task in allow_asyncio mode through a future of the running
-- loop); it then retries (so a woken getter may find the queue empty again and
-- wait more).  A getter (putter) cancelled after it was woken passes the
-- wake-up to the next one, so no item and no free slot is lost.
--
-- PriorityQueue: get() returns the smallest item first.  An item that is a
-- table without a `__lt` metamethod is ordered by its first element
-- (`{priority, value}`); any other item (numbers, strings, tables with
-- `__lt`) is compared itself with `<`.  Items of equal priority come out in
-- the order they were put (FIFO), so the values are never compared.
-- Priorities that cannot be compared with those in the queue make put
-- raise an error naming PriorityQueue:put; the queue stays unchanged.
--
-- The queues are C objects (csrc/asyncio/queue.c); the PriorityQueue's
-- heap is kept here, called from C.
local core = require "trio_asyncio.core"
local sync = require "asyncio.sync"
local errors = require "trio.errors"

local pcall, error, type, getmetatable = pcall, error, type, getmetatable
local queue_new = core.queue_new

local M = {}

--- asyncio.QueueEmpty, asyncio.QueueFull: get_nowait on an empty queue,
-- put_nowait on a full one.
M.QueueEmpty = errors.class("asyncio.QueueEmpty", errors.Error)
M.QueueFull = errors.class("asyncio.QueueFull", errors.Error)
--- asyncio.QueueShutDown: put or get on a queue that was shut down.
M.QueueShutDown = errors.class("asyncio.QueueShutDown", errors.Error)

-- ---------------------------------------------------------------------
-- priority: a binary heap in three parallel arrays (item, key, insertion
-- number), so that ties come out FIFO and nothing is allocated per item.
local function prio_new()
  return { items = {}, keys = {}, seqs = {}, seq = 0 }
end

local function key_of(item, fname)
  if type(item) == "table" then
    local mt = getmetatable(item)
    if not (type(mt) == "table" and mt.__lt) then
      local k = item[1]
      if k == nil then
        error(("bad argument #1 to '%s' (table item without a priority: item[1] is nil)"):format(fname), 4)
      end
      return k
    end
  elseif item == nil then
    error(("bad argument #1 to '%s' (item expected, got nil)"):format(fname), 4)
  end
  return item
end

--- Where an entry (key, seq) added at slot `pos` settles (comparisons only).
local function sift_up_pos(keys, seqs, pos, key, seq)
  while pos > 1 do
    local parent = pos // 2
    local pk = keys[parent]
    if key < pk or (not (pk < key) and seq < seqs[parent]) then
      pos = parent
    else
      break
    end
  end
  return pos
end

--- prio_put(heap, n, item, fname): adds item to the heap of n entries
-- (raises, changing nothing and naming the method fname, for an item
-- without a usable priority).
local function prio_put(heap, n, item, fname)
  local key = key_of(item, fname)
  local seq = heap.seq + 1
  local items, keys, seqs = heap.items, heap.keys, heap.seqs
  local pos = n + 1
  local ok, p = pcall(sift_up_pos, keys, seqs, pos, key, seq)
  if not ok then
    error(fname .. ": cannot order this item's priority against the queued ones: "
      .. tostring(p), 3)
  end
  heap.seq = seq
  local c = pos
  while c > p do
    local parent = c // 2
    items[c], keys[c], seqs[c] = items[parent], keys[parent], seqs[parent]
    c = parent
  end
  items[p], keys[p], seqs[p] = item, key, seq
end

--- prio_get(heap, n) -> the first of the n entries, removed.
local function prio_get(heap, n)
  local items, keys, seqs = heap.items, heap.keys, heap.seqs
  local top = items[1]
  local xi, xk, xs = items[n], keys[n], seqs[n]
  n = n - 1
  -- find where the last entry settles, comparing only (nothing moves if a
  -- comparison raises)
  local i = 1
  while true do
    local l = i + i
    if l > n then break end
    local c = l
    if l < n then
      local lk, rk = keys[l], keys[l + 1]
      if rk < lk or (not (lk < rk) and seqs[l + 1] < seqs[l]) then c = l + 1 end
    end
    local ck = keys[c]
    if ck < xk or (not (xk < ck) and seqs[c] < xs) then i = c else break end
  end
  items[n + 1], keys[n + 1], seqs[n + 1] = nil, nil, nil
  if n > 0 then
    -- move the path root .. i up one level (the path is i's ancestors)
    local depth = 0
    while (i >> depth) > 1 do depth = depth + 1 end
    for k = depth - 1, 0, -1 do
      local child, parent = i >> k, i >> (k + 1)
      items[parent], keys[parent], seqs[parent] = items[child], keys[child], seqs[child]
    end
    items[i], keys[i], seqs[i] = xi, xk, xs
  end
  return top
end

core.queue_setup { prio_new, prio_put, prio_get, sync.Event,
  function() return require("asyncio").get_running_loop() end }

-- the kinds of core.queue_new
function M.Queue(maxsize) return queue_new(0, maxsize) end
function M.LifoQueue(maxsize) return queue_new(1, maxsize) end
function M.PriorityQueue(maxsize) return queue_new(2, maxsize) end

return M
