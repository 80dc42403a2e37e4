---@meta
-- lua-language-server stubs for `require "trio_asyncio"` (see docs/API.md
-- for the semantics; scripts/check_api.lua checks that these cover every
-- name).  ---@async marks functions that may suspend; the comment says
-- which flavor of task they need.

---@class trio_asyncio
local trio_asyncio = {}

---@type string
trio_asyncio._VERSION = ""

---The base class of every error class of trio, asyncio and trio_asyncio.
---@class trio_asyncio.Error
---@field message string
---@field traceback string the stack where the error was made
---@field cause any the error it wraps, if any
---@overload fun(message_or_fields?: string|table): trio_asyncio.Error
local Error = {}
trio_asyncio.Error = Error

---True if `value` is an error of this class or a subclass (false for strings).
---@param value any
---@return boolean
function Error:is(value) end

---@class trio_asyncio.FlavorError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): trio_asyncio.FlavorError
trio_asyncio.FlavorError = {}
---An OS failure; fields errno (integer), code (string), message, filename (string or nil).
---@class trio_asyncio.OSError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): trio_asyncio.OSError
trio_asyncio.OSError = {}
---@class trio_asyncio.ConnectionError: trio_asyncio.OSError
---@overload fun(message_or_fields?: string|table): trio_asyncio.ConnectionError
trio_asyncio.ConnectionError = {}
---@class trio_asyncio.ConnectionRefusedError: trio_asyncio.ConnectionError
---@overload fun(message_or_fields?: string|table): trio_asyncio.ConnectionRefusedError
trio_asyncio.ConnectionRefusedError = {}
---@class trio_asyncio.ConnectionResetError: trio_asyncio.ConnectionError
---@overload fun(message_or_fields?: string|table): trio_asyncio.ConnectionResetError
trio_asyncio.ConnectionResetError = {}
---@class trio_asyncio.ConnectionAbortedError: trio_asyncio.ConnectionError
---@overload fun(message_or_fields?: string|table): trio_asyncio.ConnectionAbortedError
trio_asyncio.ConnectionAbortedError = {}
---@class trio_asyncio.BrokenPipeError: trio_asyncio.ConnectionError
---@overload fun(message_or_fields?: string|table): trio_asyncio.BrokenPipeError
trio_asyncio.BrokenPipeError = {}
---@class trio_asyncio.FileNotFoundError: trio_asyncio.OSError
---@overload fun(message_or_fields?: string|table): trio_asyncio.FileNotFoundError
trio_asyncio.FileNotFoundError = {}
---@class trio_asyncio.FileExistsError: trio_asyncio.OSError
---@overload fun(message_or_fields?: string|table): trio_asyncio.FileExistsError
trio_asyncio.FileExistsError = {}
---@class trio_asyncio.PermissionError: trio_asyncio.OSError
---@overload fun(message_or_fields?: string|table): trio_asyncio.PermissionError
trio_asyncio.PermissionError = {}
---@class trio_asyncio.IsADirectoryError: trio_asyncio.OSError
---@overload fun(message_or_fields?: string|table): trio_asyncio.IsADirectoryError
trio_asyncio.IsADirectoryError = {}
---@class trio_asyncio.NotADirectoryError: trio_asyncio.OSError
---@overload fun(message_or_fields?: string|table): trio_asyncio.NotADirectoryError
trio_asyncio.NotADirectoryError = {}
---@class trio_asyncio.gaierror: trio_asyncio.OSError
---@overload fun(message_or_fields?: string|table): trio_asyncio.gaierror
trio_asyncio.gaierror = {}

---(Trio) Runs `fn(loop)` with an asyncio loop driven by this Trio run.
---@async
---@param fn async fun(loop: asyncio.Loop): ...
---@return any ...
function trio_asyncio.open_loop(fn) end

---trio.run plus open_loop: `fn(...)` runs Trio-flavored with a loop open.
---@param fn async fun(...): ...
---@param ... any
---@return any ...
function trio_asyncio.run(fn, ...) end

---An asyncio-flavored `f` (or a Future) as a Trio-flavored function.
---@param f (async fun(...): ...)|asyncio.Future
---@return async fun(...): ...
function trio_asyncio.aio_as_trio(f) end

---A Trio-flavored `f` as an asyncio-flavored function.
---@param f async fun(...): ...
---@return async fun(...): ...
function trio_asyncio.trio_as_aio(f) end

---(Trio) Runs `fn(...)` as a Task on the current loop.
---@async
---@param fn async fun(...): ...
---@param ... any
---@return any ...
function trio_asyncio.run_aio_coroutine(fn, ...) end

---(Trio) Waits for an asyncio Future or Task.
---@async
---@param future asyncio.Future
---@return any ...
function trio_asyncio.run_aio_future(future) end
---Starts `fn(...)` as a Trio task in the current loop's nursery; returns a handle with `cancel()`.
---@param fn async fun(...)
---@param ... any
---@return { cancel: fun(self) }
function trio_asyncio.run_trio_task(fn, ...) end

---(Trio) Runs `fn(...)` in a task where both flavors may be called.
---@async
---@param fn async fun(...): ...
---@param ... any
---@return any ...
function trio_asyncio.allow_asyncio(fn, ...) end

---@return asyncio.Loop?
function trio_asyncio.current_loop() end

---@return "trio"|"asyncio"|nil
function trio_asyncio.current_flavor() end

---A sync loop, usable outside any Trio run.
---@return asyncio.Loop
function trio_asyncio.new_event_loop() end

---@param fn async fun(loop: asyncio.Loop, ...): ...
---@param opts {done_callback: fun(ok: boolean, ...), args?: any[], clock?: trio.testing.MockClock, instruments?: table[]}
function trio_asyncio.start_guest_run(fn, opts) end

---@alias trio_asyncio.TaskNode {name: string, flavor: string, kind: string, where: string, children: trio_asyncio.TaskNode[]}

---@return trio_asyncio.TaskNode?
function trio_asyncio.task_tree() end

---@param write? fun(line: string)
function trio_asyncio.dump_tasks(write) end

---@class trio_asyncio.testing
local testing = {}
trio_asyncio.testing = testing

---A function that runs `fn(loop, clock)` as the main asyncio Task of a loop in a fresh Trio run.
---@param fn async fun(loop: asyncio.Loop, clock: trio.testing.MockClock?): ...
---@param opts? trio.testing.Options
---@return fun(): ...
function testing.aio_test(fn, opts) end

---A busted test whose body runs as the main asyncio Task.
---@param name string
---@param fn async fun(loop: asyncio.Loop, clock: trio.testing.MockClock?)
---@param opts? trio.testing.Options
function testing.it(name, fn, opts) end

---An executor for loop:run_in_executor that runs jobs with trio.to_thread.run_sync under a limiter.
---@class trio_asyncio.TrioExecutor
local TrioExecutor = {}
---@param opts? {limiter?: trio.CapacityLimiter, max_workers?: integer}
---@return trio_asyncio.TrioExecutor
function trio_asyncio.TrioExecutor(opts) end
---@async
---@param fn fun(...): ...
---@param ... any
---@return any ...
function TrioExecutor:submit(fn, ...) end
---@param wait? boolean
function TrioExecutor:shutdown(wait) end

---What trio_asyncio_push_work (C hosts) pushes: a request to wait for.
---@class trio_asyncio.IORequest
local IORequest = {}
---Waits for the request in the calling task's flavor; returns its results.
---@async
---@param cancellable? boolean
---@return any ...
function IORequest:wait(cancellable) end

return trio_asyncio
