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
-- A put or get that had to wait is woken by a future of the running loop;
-- it then retries (so a woken getter may find the queue empty again and
-- wait more).  A getter (putter) cancelled after it was woken passes the
-- wake-up to the next one, so no item and no free slot is lost.
--
-- PriorityQueue: get() returns the smallest item first.  An item that is a
-- table without a `__lt` metamethod is ordered by its first element
-- (`{priority, value}`); any other item (numbers, strings, tables with
-- `__lt`) is compared itself with `<`.  Items of equal priority come out in
-- the order they were put (FIFO), so the values are never compared.
-- Priorities that cannot be compared with those in the queue make put
-- (put_nowait) raise an error naming it; the queue stays unchanged.
--
-- The hot path (put/get that need not wait) allocates nothing: items live
-- in a table indexed by a moving head and tail, waiters likewise.
local core = require "trio_asyncio.core"
local sync = require "asyncio.sync"

local pcall, error, type, getmetatable, setmetatable = pcall, error, type, getmetatable, setmetatable
local check_aio = core.check_aio
local future_new, running_loop = core.future_new, core.running_loop
local Future = sync._Future
local fut_await, fut_done, fut_set_result = Future.await, Future.done, Future.set_result
local fut_cancel, fut_cancelled = Future.cancel, Future.cancelled
local errors = require "trio.errors"
local argerror, class_of, bad_self = errors.argerror, errors.class_of, errors.bad_self
local ValueError = sync.ValueError
local new_event = sync.Event

local asyncio_mod
local function aio()
  asyncio_mod = asyncio_mod or require "asyncio"
  return asyncio_mod
end

local M = {}

-- ---------------------------------------------------------------------
-- waiter deques: { h = head index, t = tail index, [h..t] = futures }
local function dq_new() return { h = 1, t = 0 } end

--- Wake the first waiter that is not done (CPython's _wakeup_next).
local function wakeup_next(d)
  local h, t = d.h, d.t
  while h <= t do
    local fut = d[h]
    d[h] = nil
    h = h + 1
    if not fut_done(fut) then
      if h > t then d.h, d.t = 1, 0 else d.h = h end
      fut_set_result(fut, true)
      return
    end
  end
  d.h, d.t = 1, 0
end

local function dq_remove(d, fut)
  local h, t = d.h, d.t
  for i = h, t do
    if d[i] == fut then
      for j = i, t - 1 do d[j] = d[j + 1] end
      d[t] = nil
      t = t - 1
      if h > t then d.h, d.t = 1, 0 else d.t = t end
      return true
    end
  end
  return false
end

local function dq_len(d) return d.t - d.h + 1 end

-- storage strategies.  The queue keeps its size in self._n; do_put and
-- do_get add/remove one item, count it and wake the next getter/putter
-- (do_put(self, item, fname): fname names the put in argument errors).

-- the wake-ups after a put and after a get
local function after_put(self)
  self._unfinished = self._unfinished + 1
  self._finished._value = false -- Event:clear()
  local g = self._getters
  if g.t >= g.h then wakeup_next(g) end
end

-- FIFO (inlined: the hot path of Queue): items[h .. h+n-1]
local function fifo_init(self) self._items, self._h = {}, 1 end

local function fifo_do_put(self, item)
  local n = self._n
  self._items[self._h + n] = item
  self._n = n + 1
  self._unfinished = self._unfinished + 1
  self._finished._value = false -- Event:clear()
  local g = self._getters
  if g.t >= g.h then wakeup_next(g) end
end

local function fifo_do_get(self)
  local items, h, n = self._items, self._h, self._n
  local item = items[h]
  items[h] = nil
  if n == 1 then self._h = 1 else self._h = h + 1 end
  self._n = n - 1
  local p = self._putters
  if p.t >= p.h then wakeup_next(p) end
  return item
end

--- do_put, do_get over put_item(self, item, fname) / get_item(self) -> item
local function generic_ops(put_item, get_item)
  local function do_put(self, item, fname)
    put_item(self, item, fname)
    self._n = self._n + 1
    after_put(self)
  end
  local function do_get(self)
    local item = get_item(self)
    self._n = self._n - 1
    local p = self._putters
    if p.t >= p.h then wakeup_next(p) end
    return item
  end
  return do_put, do_get
end

-- LIFO: items[1 .. n]
local function lifo_init(self) self._items = {} end
local function lifo_put(self, item)
  self._items[self._n + 1] = item
end
local function lifo_get(self)
  local items, n = self._items, self._n
  local item = items[n]
  items[n] = nil
  return item
end

-- priority: a binary heap in three parallel arrays (item, key, insertion
-- number), so that ties come out FIFO and nothing is allocated per item.
local function prio_init(self)
  self._items, self._keys, self._seqs, self._seq = {}, {}, {}, 0
end

local function key_of(item, fname)
  if type(item) == "table" then
    local mt = getmetatable(item)
    if not (type(mt) == "table" and mt.__lt) then
      local k = item[1]
      if k == nil then
        error(("bad argument #1 to '%s' (table item without a priority: item[1] is nil)"):format(fname), 5)
      end
      return k
    end
  elseif item == nil then
    error(("bad argument #1 to '%s' (item expected, got nil)"):format(fname), 5)
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

local function prio_put(self, item, fname)
  local key = key_of(item, fname)
  local seq = self._seq + 1
  local items, keys, seqs = self._items, self._keys, self._seqs
  local pos = self._n + 1
  local ok, p = pcall(sift_up_pos, keys, seqs, pos, key, seq)
  if not ok then
    error(fname .. ": cannot order this item's priority against the queued ones: " .. tostring(p), 4)
  end
  self._seq = seq
  local c = pos
  while c > p do
    local parent = c // 2
    items[c], keys[c], seqs[c] = items[parent], keys[parent], seqs[parent]
    c = parent
  end
  items[p], keys[p], seqs[p] = item, key, seq
end

local function prio_get(self)
  local items, keys, seqs = self._items, self._keys, self._seqs
  local n = self._n
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

-- ---------------------------------------------------------------------
-- the queue class, built over a storage strategy
local function QueueFull() return aio().QueueFull end
local function QueueEmpty() return aio().QueueEmpty end

--- asyncio.QueueShutDown: put or get on a queue that was shut down.
local QueueShutDown = errors.class("asyncio.QueueShutDown", errors.Error)
M.QueueShutDown = QueueShutDown

--- Wakes every waiter of a deque (they re-check the queue).
local function wake_all(d)
  for i = d.h, d.t do
    local fut = d[i]
    d[i] = nil
    if not fut_done(fut) then fut_set_result(fut, true) end
  end
  d.h, d.t = 1, 0
end

local function make_class(name, init, do_put, do_get)
  local Q = { __name = "asyncio." .. name }
  Q.__index = Q
  local fput, fget = name .. ":put", name .. ":get"
  local fput_nowait, fget_nowait = name .. ":put_nowait", name .. ":get_nowait"
  local fjoin = name .. ":join"

  local function new(maxsize)
    if maxsize == nil then
      maxsize = 0
    elseif type(maxsize) ~= "number" or maxsize ~= maxsize then
      argerror(1, name, "number expected for maxsize, got " .. type(maxsize))
    end
    local self = setmetatable({
      maxsize = maxsize, _n = 0, _shutdown = false,
      _getters = dq_new(), _putters = dq_new(),
      _unfinished = 0, _finished = new_event(),
    }, Q)
    self._finished:set()
    init(self)
    return self
  end

  function Q:qsize()
    if class_of(self) ~= Q then bad_self(self, Q, name .. ":qsize") end
    return self._n
  end

  function Q:empty()
    if class_of(self) ~= Q then bad_self(self, Q, name .. ":empty") end
    return self._n == 0
  end

  function Q:full()
    if class_of(self) ~= Q then bad_self(self, Q, name .. ":full") end
    local maxsize = self.maxsize
    return maxsize > 0 and self._n >= maxsize
  end

  --- put_nowait(item): raises asyncio.QueueFull when full.
  function Q:put_nowait(item)
    if class_of(self) ~= Q then bad_self(self, Q, fput_nowait) end
    if self._shutdown then error(QueueShutDown(fput_nowait .. ": the queue is shut down"), 2) end
    local maxsize = self.maxsize
    if maxsize > 0 and self._n >= maxsize then
      error(QueueFull()(fput_nowait .. ": the queue is full"), 2)
    end
    do_put(self, item, fput_nowait)
  end

  --- get_nowait() -> item: raises asyncio.QueueEmpty when empty.
  function Q:get_nowait()
    if class_of(self) ~= Q then bad_self(self, Q, fget_nowait) end
    if self._n == 0 then
      if self._shutdown then error(QueueShutDown(fget_nowait .. ": the queue is shut down"), 2) end
      error(QueueEmpty()(fget_nowait .. ": the queue is empty"), 2)
    end
    return do_get(self)
  end

  --- put(item): wait for a free slot, then put the item.
  function Q:put(item)
    if class_of(self) ~= Q then bad_self(self, Q, fput) end
    check_aio(fput)
    local maxsize = self.maxsize
    while maxsize > 0 and self._n >= maxsize do
      if self._shutdown then error(QueueShutDown(fput .. ": the queue is shut down"), 2) end
      local putter = future_new(running_loop() or aio().get_running_loop())
      local d = self._putters
      local t = d.t + 1
      d.t = t
      d[t] = putter
      local ok, err = pcall(fut_await, putter)
      if not ok then
        fut_cancel(putter) -- in case it is not done yet
        dq_remove(self._putters, putter)
        if not self:full() and not fut_cancelled(putter) then
          -- we were woken for a free slot we will not use: pass it on
          wakeup_next(self._putters)
        end
        error(err, 0)
      end
      maxsize = self.maxsize
    end
    if self._shutdown then error(QueueShutDown(fput .. ": the queue is shut down"), 2) end
    do_put(self, item, fput)
  end

  --- get() -> item: wait for an item, then remove and return it.
  function Q:get()
    if class_of(self) ~= Q then bad_self(self, Q, fget) end
    check_aio(fget)
    while self._n == 0 do
      if self._shutdown then error(QueueShutDown(fget .. ": the queue is shut down"), 2) end
      local getter = future_new(running_loop() or aio().get_running_loop())
      local d = self._getters
      local t = d.t + 1
      d.t = t
      d[t] = getter
      local ok, err = pcall(fut_await, getter)
      if not ok then
        fut_cancel(getter) -- in case it is not done yet
        dq_remove(self._getters, getter)
        if self._n > 0 and not fut_cancelled(getter) then
          -- we were woken for an item we will not take: pass it on
          wakeup_next(self._getters)
        end
        error(err, 0)
      end
    end
    return do_get(self)
  end

  --- task_done(): one item taken earlier has been processed.
  function Q:task_done()
    if class_of(self) ~= Q then bad_self(self, Q, name .. ":task_done") end
    if self._unfinished <= 0 then
      error(ValueError(name .. ":task_done: task_done() called too many times"), 2)
    end
    self._unfinished = self._unfinished - 1
    if self._unfinished == 0 then self._finished:set() end
  end

  --- shutdown([immediate]): from now on put() and put_nowait() raise
  -- asyncio.QueueShutDown, and so do get() and get_nowait() once the queue
  -- is empty; every task blocked in put() or get() wakes up (to raise, or
  -- to take an item still there).  With `immediate`, the items left are
  -- dropped, each counting as done (which may end join()), so gets raise
  -- at once.
  function Q:shutdown(immediate)
    if class_of(self) ~= Q then bad_self(self, Q, name .. ":shutdown") end
    self._shutdown = true
    if immediate then
      while self._n > 0 do
        do_get(self)
        if self._unfinished > 0 then self._unfinished = self._unfinished - 1 end
      end
      if self._unfinished == 0 then self._finished:set() end
    end
    wake_all(self._getters)
    wake_all(self._putters)
  end

  --- join(): wait until every item put has been marked done.
  function Q:join()
    if class_of(self) ~= Q then bad_self(self, Q, fjoin) end
    check_aio(fjoin)
    if self._unfinished > 0 then self._finished:wait() end
  end

  function Q:__tostring()
    return ("%s (maxsize:%s, qsize:%d, getters:%d, putters:%d, unfinished:%d%s)"):format(
      name, tostring(self.maxsize), self._n, dq_len(self._getters), dq_len(self._putters),
      self._unfinished, self._shutdown and ", shutdown" or "")
  end

  return Q, new
end

local _, new_queue = make_class("Queue", fifo_init, fifo_do_put, fifo_do_get)
local _, new_lifo = make_class("LifoQueue", lifo_init, generic_ops(lifo_put, lifo_get))
local _, new_prio = make_class("PriorityQueue", prio_init, generic_ops(prio_put, prio_get))

M.Queue, M.LifoQueue, M.PriorityQueue = new_queue, new_lifo, new_prio

return M
