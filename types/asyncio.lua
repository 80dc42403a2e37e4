---@meta
-- lua-language-server stubs for `require "asyncio"` (see docs/API.md for
-- the semantics; scripts/check_api.lua checks that these cover every name).
-- Functions marked ---@async may suspend: call them only inside an asyncio Task.

---@class asyncio
local asyncio = {}

---@type string
asyncio._VERSION = ""

-- ---------------------------------------------------------------------
-- loops

---@class asyncio.Handle
local Handle = {}
function Handle:cancel() end
---@return boolean
function Handle:cancelled() end
---@return number
function Handle:when() end

---@class asyncio.Loop
local Loop = {}

---@param future_or_fn asyncio.Future|async fun(): ...
---@return any ...
function Loop:run_until_complete(future_or_fn) end
function Loop:run_forever() end
function Loop:stop() end

---Runs `fn(...)` on a worker thread (`executor`: nil for the default executor, an
---asyncio.ThreadPoolExecutor or a trio_asyncio.TrioExecutor); a Future of its results.
---@param executor asyncio.ThreadPoolExecutor|trio_asyncio.TrioExecutor|nil
---@param fn fun(...): ...
---@param ... any
---@return asyncio.Future
function Loop:run_in_executor(executor, fn, ...) end

---run_in_executor(nil, ...) uses this executor from now on.
---@param executor asyncio.ThreadPoolExecutor
function Loop:set_default_executor(executor) end

---Calls `callback(...)` from the loop each time the signal arrives.
---@param sig string|integer
---@param callback fun(...)
---@param ... any
function Loop:add_signal_handler(sig, callback, ...) end

---@param sig string|integer
---@return boolean removed
function Loop:remove_signal_handler(sig) end

---Starts a child whose pipes call a SubprocessProtocol.
---@async
---@param protocol_factory fun(): table
---@param program string
---@param ... any arguments, then an optional options table
---@return asyncio.SubprocessTransport transport
---@return table protocol
function Loop:subprocess_exec(protocol_factory, program, ...) end

---@async
---@param protocol_factory fun(): table
---@param cmd string
---@param opts? table
---@return asyncio.SubprocessTransport transport
---@return table protocol
function Loop:subprocess_shell(protocol_factory, cmd, opts) end
function Loop:close() end
---@return boolean
function Loop:is_closed() end
---@return boolean
function Loop:is_running() end
---@return number
function Loop:time() end
---@param cb fun(...)
---@param ... any
---@return asyncio.Handle
function Loop:call_soon(cb, ...) end
---@param delay number
---@param cb fun(...)
---@param ... any
---@return asyncio.Handle
function Loop:call_later(delay, cb, ...) end
---@param when number
---@param cb fun(...)
---@param ... any
---@return asyncio.Handle
function Loop:call_at(when, cb, ...) end
---@param cb fun(...)
---@param ... any
---@return asyncio.Handle
function Loop:call_soon_threadsafe(cb, ...) end
---@return asyncio.Future
function Loop:create_future() end
---@param factory (fun(loop: asyncio.Loop, fn: async fun(...): ..., ...): asyncio.Future)?
function Loop:set_task_factory(factory) end
---@return (fun(loop: asyncio.Loop, fn: async fun(...): ..., ...): asyncio.Future)?
function Loop:get_task_factory() end
---@param fn async fun(...): ...
---@param ... any
---@return asyncio.Task
function Loop:create_task(fn, ...) end
---@param fd integer
---@param cb fun(...)
---@param ... any
function Loop:add_reader(fd, cb, ...) end
---@param fd integer
---@return boolean removed
function Loop:remove_reader(fd) end
---@param fd integer
---@param cb fun(...)
---@param ... any
function Loop:add_writer(fd, cb, ...) end
---@param fd integer
---@return boolean removed
function Loop:remove_writer(fd) end
---@param handler fun(loop: asyncio.Loop, context: table)?
function Loop:set_exception_handler(handler) end
---@return fun(loop: asyncio.Loop, context: table)?
function Loop:get_exception_handler() end
---@param context {message?: string, exception?: any, future?: asyncio.Future, task?: asyncio.Task, handle?: asyncio.Handle, source_traceback?: string}
function Loop:call_exception_handler(context) end
---@param context table
function Loop:default_exception_handler(context) end
---@param enabled boolean
function Loop:set_debug(enabled) end
---@return boolean
function Loop:get_debug() end
---(bridged loops) Starts `fn(...)` as a Trio task; a Future of its results.
---@param fn async fun(...): ...
---@param ... any
---@return asyncio.Future
function Loop:run_trio(fn, ...) end
---(bridged loops) Starts `fn(...)` as a Trio task in the loop's nursery.
---@param fn async fun(...)
---@param ... any
---@return { cancel: fun(self) }
function Loop:run_trio_task(fn, ...) end
---(Trio-flavored, bridged loops) Returns once the loop has stopped.
---@async
function Loop:wait_stopped() end
---(Trio-flavored) Returns once every callback queued before the call has run.
---@async
function Loop:synchronize() end

---@return asyncio.Loop
function asyncio.new_event_loop() end

---@return asyncio.Loop
function asyncio.get_running_loop() end

---@return asyncio.Loop
function asyncio.get_event_loop() end

---@param loop asyncio.Loop?
function asyncio.set_event_loop(loop) end

---@param fn async fun(...): ...
---@param ... any
---@return any ...
function asyncio.run(fn, ...) end

-- ---------------------------------------------------------------------
-- futures and tasks

---@class asyncio.Future
local Future = {}
---@return any ...
function Future:result() end
---@return any
function Future:exception() end
---@return boolean
function Future:done() end
---@return boolean
function Future:cancelled() end
---@param msg? string
---@return boolean
function Future:cancel(msg) end
---@param value any
function Future:set_result(value) end
---@param err any
function Future:set_exception(err) end
---@param cb fun(future: asyncio.Future)
function Future:add_done_callback(cb) end
---@param cb fun(future: asyncio.Future)
---@return integer removed
function Future:remove_done_callback(cb) end
---@return asyncio.Loop
function Future:get_loop() end
---@async
---@return any ...
function Future:await() end

---@param loop? asyncio.Loop
---@return asyncio.Future
function asyncio.Future(loop) end

---@class asyncio.Task: asyncio.Future
local Task = {}
---@return string
function Task:get_name() end
---@param name string
function Task:set_name(name) end
---@param msg? string
---@return boolean
function Task:cancel(msg) end
---@return integer
function Task:cancelling() end
---@return integer
function Task:uncancel() end

---A new Task on the loop given (default: the running loop), whatever its
---task factory: `asyncio.Task([loop,] fn, ...)`.
---@param loop_or_fn asyncio.Loop|async fun(...): ...
---@param ... any
---@return asyncio.Task
function asyncio.Task(loop_or_fn, ...) end

---@param x any
---@return boolean
function asyncio.isfuture(x) end

---@async
---@param future asyncio.Future
---@return any ...
function asyncio.await(future) end

---@param fn async fun(...): ...
---@param ... any
---@return asyncio.Task
function asyncio.create_task(fn, ...) end

---@param x asyncio.Future|async fun(): ...
---@param loop? asyncio.Loop
---@return asyncio.Future
function asyncio.ensure_future(x, loop) end

---@param loop? asyncio.Loop
---@return asyncio.Task?
function asyncio.current_task(loop) end

---@param loop? asyncio.Loop
---@return asyncio.Task[]
function asyncio.all_tasks(loop) end

-- ---------------------------------------------------------------------
-- waiting

---@async
---@param delay number
---@param result? any
---@return any
function asyncio.sleep(delay, result) end

---Futures, Tasks or functions, and optionally `{return_exceptions = true}` last.
---@async
---@param ... asyncio.Future|(async fun(): ...)|{return_exceptions: boolean}
---@return any[] results in argument order (field n)
function asyncio.gather(...) end

---@async
---@param aw asyncio.Future|async fun(): ...
---@param timeout number?
---@return any ...
function asyncio.wait_for(aw, timeout) end

---@async
---@param aws (asyncio.Future|async fun(): ...)[]
---@param opts? {timeout?: number, return_when?: "FIRST_COMPLETED"|"FIRST_EXCEPTION"|"ALL_COMPLETED"}
---@return asyncio.Future[] done
---@return asyncio.Future[] pending
function asyncio.wait(aws, opts) end

asyncio.FIRST_COMPLETED = "FIRST_COMPLETED"
asyncio.FIRST_EXCEPTION = "FIRST_EXCEPTION"
asyncio.ALL_COMPLETED = "ALL_COMPLETED"

---@param aws (asyncio.Future|async fun(): ...)[]
---@param opts? {timeout?: number}
---@return async fun(): asyncio.Future?
function asyncio.as_completed(aws, opts) end

---@async
---@param aw asyncio.Future|async fun(): ...
---@return any ...
function asyncio.shield(aw) end

---@async
---@param delay number?
---@param fn async fun(...): ...
---@param ... any
---@return any ...
function asyncio.timeout(delay, fn, ...) end

---@async
---@param when number? a time of the loop's clock (`loop:time()`)
---@param fn async fun(...): ...
---@param ... any
---@return any ...
function asyncio.timeout_at(when, fn, ...) end

-- ---------------------------------------------------------------------
-- synchronization and queues

---@class asyncio.Event
local Event = {}
---@async
function Event:wait() end
function Event:set() end
function Event:clear() end
---@return boolean
function Event:is_set() end

---@return asyncio.Event
function asyncio.Event() end

---@class asyncio.Lock
local Lock = {}
---@async
function Lock:acquire() end
function Lock:release() end
---@return boolean
function Lock:locked() end
---@async
---@param fn fun(...): ...
---@param ... any
---@return any ...
function Lock:with(fn, ...) end

---@return asyncio.Lock
function asyncio.Lock() end

---@class asyncio.Semaphore
local Semaphore = {}
---@async
function Semaphore:acquire() end
function Semaphore:release() end
---@return boolean
function Semaphore:locked() end
---@async
---@param fn fun(...): ...
---@param ... any
---@return any ...
function Semaphore:with(fn, ...) end

---@param value? integer
---@return asyncio.Semaphore
function asyncio.Semaphore(value) end

---@class asyncio.BoundedSemaphore: asyncio.Semaphore
local BoundedSemaphore = {}
---Raises asyncio.ValueError when released more than acquired.
function BoundedSemaphore:release() end

---@param value? integer
---@return asyncio.BoundedSemaphore
function asyncio.BoundedSemaphore(value) end

---@class asyncio.Condition
local Condition = {}
---@async
function Condition:acquire() end
function Condition:release() end
---@return boolean
function Condition:locked() end
---@async
function Condition:wait() end
---@async
---@param predicate fun(): any
---@return any
function Condition:wait_for(predicate) end
---@param n? integer
function Condition:notify(n) end
function Condition:notify_all() end
---@async
---@param fn fun(...): ...
---@param ... any
---@return any ...
function Condition:with(fn, ...) end

---@param lock? asyncio.Lock
---@return asyncio.Condition
function asyncio.Condition(lock) end

---@class asyncio.Barrier
---@field parties integer
---@field n_waiting integer
---@field broken boolean
local Barrier = {}
---@async
---@return integer index
function Barrier:wait() end
---@async
---@param fn fun(index: integer, ...): ...
---@param ... any
---@return any ...
function Barrier:with(fn, ...) end
---@async
function Barrier:reset() end
---@async
function Barrier:abort() end

---@param parties integer
---@return asyncio.Barrier
function asyncio.Barrier(parties) end

---@class asyncio.Queue
---@field maxsize number
local Queue = {}
---@async
---@param item any
function Queue:put(item) end
---@async
---@return any
function Queue:get() end
---@param item any
function Queue:put_nowait(item) end
---@return any
function Queue:get_nowait() end
function Queue:task_done() end
---@async
function Queue:join() end
---@return integer
function Queue:qsize() end
---@return boolean
function Queue:empty() end
---@return boolean
function Queue:full() end
---@param immediate? boolean
function Queue:shutdown(immediate) end

---@param maxsize? number
---@return asyncio.Queue
function asyncio.Queue(maxsize) end

---@class asyncio.LifoQueue: asyncio.Queue
local LifoQueue = {}

---@param maxsize? number
---@return asyncio.LifoQueue
function asyncio.LifoQueue(maxsize) end

---@class asyncio.PriorityQueue: asyncio.Queue
local PriorityQueue = {}

---@param maxsize? number
---@return asyncio.PriorityQueue
function asyncio.PriorityQueue(maxsize) end

-- ---------------------------------------------------------------------
-- errors

---@class asyncio.CancelledError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): asyncio.CancelledError
asyncio.CancelledError = {}
---@class asyncio.TimeoutError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): asyncio.TimeoutError
asyncio.TimeoutError = {}
---@class asyncio.InvalidStateError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): asyncio.InvalidStateError
asyncio.InvalidStateError = {}
---@class asyncio.IncompleteReadError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): asyncio.IncompleteReadError
asyncio.IncompleteReadError = {}
---@class asyncio.LimitOverrunError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): asyncio.LimitOverrunError
asyncio.LimitOverrunError = {}
---@class asyncio.QueueEmpty: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): asyncio.QueueEmpty
asyncio.QueueEmpty = {}
---@class asyncio.QueueFull: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): asyncio.QueueFull
asyncio.QueueFull = {}
---The same class as trio_asyncio.OSError.
---@type trio_asyncio.OSError
asyncio.OSError = nil
---@class asyncio.ValueError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): asyncio.ValueError
asyncio.ValueError = {}
---The same class as trio.RuntimeError.
---@type trio.RuntimeError
asyncio.RuntimeError = {}
---@class asyncio.QueueShutDown: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): asyncio.QueueShutDown
asyncio.QueueShutDown = {}
---@class asyncio.BrokenBarrierError: trio.RuntimeError
---@overload fun(message_or_fields?: string|table): asyncio.BrokenBarrierError
asyncio.BrokenBarrierError = {}

---Runs `fn(...)` on a worker OS thread and returns its results.
---@async
---@param fn fun(...): ...
---@param ... any
---@return any ...
function asyncio.to_thread(fn, ...) end

---Python's concurrent.futures.Future: what ThreadPoolExecutor:submit returns.
---@class asyncio.ConcurrentFuture
local ConcurrentFuture = {}
---@return asyncio.ConcurrentFuture
function asyncio.ConcurrentFuture() end
---The results; raises the future's error, CancelledError, or TimeoutError after `timeout` seconds.
---@param timeout? number
---@return any ...
function ConcurrentFuture:result(timeout) end
---@param timeout? number
---@return any
function ConcurrentFuture:exception(timeout) end
---@return boolean
function ConcurrentFuture:done() end
---@return boolean
function ConcurrentFuture:cancelled() end
---@return boolean
function ConcurrentFuture:running() end
---@return boolean
function ConcurrentFuture:cancel() end
---@param fn fun(future: asyncio.ConcurrentFuture)
function ConcurrentFuture:add_done_callback(fn) end
---@param ... any
function ConcurrentFuture:set_result(...) end
---@param err any
function ConcurrentFuture:set_exception(err) end

---Runs jobs on the engine's worker threads, at most `max_workers` at once.
---@class asyncio.ThreadPoolExecutor
local ThreadPoolExecutor = {}
---@param max_workers? integer
---@return asyncio.ThreadPoolExecutor
function asyncio.ThreadPoolExecutor(max_workers) end
---@param fn fun(...): ...
---@param ... any
---@return asyncio.ConcurrentFuture
function ThreadPoolExecutor:submit(fn, ...) end
---@param wait? boolean
---@param cancel_futures? boolean
function ThreadPoolExecutor:shutdown(wait, cancel_futures) end

---An asyncio Future following a ConcurrentFuture (an asyncio Future is returned as it is).
---@param future asyncio.ConcurrentFuture|asyncio.Future
---@param loop? asyncio.Loop
---@return asyncio.Future
function asyncio.wrap_future(future, loop) end

---@class asyncio.AsyncFile
---@field name string
---@field mode string
---@field closed boolean
local AsyncFile = {}
---@async
---@param n? integer
---@return string
function AsyncFile:read(n) end
---@async
---@return string
function AsyncFile:readline() end
---@return fun(): string?
function AsyncFile:lines() end
---@async
---@param data string|number
---@return integer
function AsyncFile:write(data) end
---@param whence? "set"|"cur"|"end"
---@param offset? integer
---@return integer
function AsyncFile:seek(whence, offset) end
---@async
function AsyncFile:flush() end
---@async
function AsyncFile:close() end
---@return integer
function AsyncFile:fileno() end

---Opens a file whose methods are asyncio-flavored (beyond Python).
---@async
---@param path string|trio.Path
---@param mode? string
---@return asyncio.AsyncFile
function asyncio.open_file(path, mode) end

---@class asyncio.subprocess
---@field PIPE integer
---@field STDOUT integer
---@field DEVNULL integer
asyncio.subprocess = {}

---@class asyncio.PipeStreamReader
local PipeStreamReader = {}
---@async
---@param n? integer
---@return string
function PipeStreamReader:read(n) end
---@async
---@return string
function PipeStreamReader:readline() end
---@async
---@param n integer
---@return string
function PipeStreamReader:readexactly(n) end
---@async
---@param separator? string
---@return string
function PipeStreamReader:readuntil(separator) end
---@return boolean
function PipeStreamReader:at_eof() end
---@return fun(): string?
function PipeStreamReader:lines() end

---@class asyncio.PipeStreamWriter
---@field transport asyncio.PipeStreamWriter
local PipeStreamWriter = {}
---@param data string
function PipeStreamWriter:write(data) end
---@param list string[]
function PipeStreamWriter:writelines(list) end
---@async
function PipeStreamWriter:drain() end
function PipeStreamWriter:write_eof() end
---@return boolean
function PipeStreamWriter:can_write_eof() end
function PipeStreamWriter:close() end
---@return boolean
function PipeStreamWriter:is_closing() end
---@async
function PipeStreamWriter:wait_closed() end
---@param name string
---@param default? any
function PipeStreamWriter:get_extra_info(name, default) end

---@class asyncio.Process
---@field pid integer
---@field returncode integer?
---@field stdin asyncio.PipeStreamWriter?
---@field stdout asyncio.PipeStreamReader?
---@field stderr asyncio.PipeStreamReader?
local Process = {}
---@async
---@return integer
function Process:wait() end
---@async
---@param input? string
---@return string? stdout
---@return string? stderr
function Process:communicate(input) end
---@param sig string|integer
function Process:send_signal(sig) end
function Process:terminate() end
function Process:kill() end

---@async
---@param program string
---@param ... any arguments, then an optional options table
---@return asyncio.Process
function asyncio.create_subprocess_exec(program, ...) end

---@async
---@param cmd string
---@param opts? table
---@return asyncio.Process
function asyncio.create_subprocess_shell(cmd, opts) end

---@class asyncio.PipeTransport
local PipeTransport = {}
---@param data string
function PipeTransport:write(data) end
function PipeTransport:write_eof() end
---@return boolean
function PipeTransport:can_write_eof() end
function PipeTransport:close() end
---@return boolean
function PipeTransport:is_closing() end
---@param name string
---@param default? any
function PipeTransport:get_extra_info(name, default) end

---@class asyncio.SubprocessTransport
local SubprocessTransport = {}
---@return integer
function SubprocessTransport:get_pid() end
---@return integer?
function SubprocessTransport:get_returncode() end
---@param fd integer
---@return asyncio.PipeTransport?
function SubprocessTransport:get_pipe_transport(fd) end
---@param sig string|integer
function SubprocessTransport:send_signal(sig) end
function SubprocessTransport:terminate() end
function SubprocessTransport:kill() end
function SubprocessTransport:close() end
---@return boolean
function SubprocessTransport:is_closing() end
---@return table
function SubprocessTransport:get_protocol() end
---@param protocol table
function SubprocessTransport:set_protocol(protocol) end
---@param name string
---@param default? any
function SubprocessTransport:get_extra_info(name, default) end

return asyncio
