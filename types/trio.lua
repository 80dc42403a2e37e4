---@meta
-- lua-language-server stubs for `require "trio"` (see docs/API.md for the
-- semantics; scripts/check_api.lua checks that these cover every name).
-- Functions marked ---@async may suspend: call them only inside a Trio task.

---@class trio
local trio = {}

---The release, e.g. "0.1.0".
---@type string
trio._VERSION = ""

-- ---------------------------------------------------------------------
-- running and time

---Runs `fn(...)` as the root task of a new run; returns its results or raises its error.
---@param fn async fun(...): ...
---@param ... any
---@return any ...
function trio.run(fn, ...) end

---@async
---@param seconds number
function trio.sleep(seconds) end

---@async
---@param deadline number
function trio.sleep_until(deadline) end

---@async
function trio.sleep_forever() end

---@return number
function trio.current_time() end

---@return number deadline `math.huge` when none applies
function trio.current_effective_deadline() end

-- ---------------------------------------------------------------------
-- nurseries

---@class trio.Nursery
---@field cancel_scope trio.CancelScope
---@field child_tasks trio.lowlevel.Task[]
---@field parent_task trio.lowlevel.Task
local Nursery = {}

---Starts `fn(...)` as a child task.
---@param fn async fun(...)
---@param ... any
function Nursery:start_soon(fn, ...) end

---Starts `fn(..., task_status)` and returns the value it passes to `task_status:started`.
---@async
---@param fn async fun(...)
---@param ... any
---@return any
function Nursery:start(fn, ...) end

---@class trio.TaskStatus
local TaskStatus = {}

---@param value? any
function TaskStatus:started(value) end

---A task status whose `started` does nothing.
---@type trio.TaskStatus
trio.TASK_STATUS_IGNORED = {}

---Runs `fn(nursery)`; waits for every child; errors come out as one trio.ExceptionGroup.
---@async
---@param fn async fun(nursery: trio.Nursery): ...
---@return any ...
function trio.open_nursery(fn) end

-- ---------------------------------------------------------------------
-- cancel scopes

---@class trio.CancelScope
---@field deadline number settable (raises for an unentered scope with a relative deadline)
---@field relative_deadline number settable: from entry (unentered) or from now (entered)
---@field is_relative boolean? nil once entered
---@field shield boolean settable
---@field cancel_called boolean
---@field cancelled_caught boolean
local CancelScope = {}

---Runs `fn(...)` inside the scope; returns its results (nothing if the scope caught its own cancellation).
---@async
---@param fn async fun(...): ...
---@param ... any
---@return any ...
function CancelScope:run(fn, ...) end

---@param reason? string kept for the trio.Cancelled it causes (the first reason wins)
function CancelScope:cancel(reason) end

---@param opts? {deadline?: number, relative_deadline?: number, shield?: boolean}
---@return trio.CancelScope
function trio.CancelScope(opts) end

---@alias trio.TimeoutOptions {shield?: boolean}

---`move_on_after(seconds [, opts] [, fn, ...])`: without `fn`, the scope (unentered, relative deadline).
---@async
---@param seconds number
---@param opts_or_fn? trio.TimeoutOptions|async fun(...): ...
---@param ... any
---@return trio.CancelScope scope
---@return any ...
function trio.move_on_after(seconds, opts_or_fn, ...) end

---`move_on_at(deadline [, opts] [, fn, ...])`: without `fn`, the scope (unentered).
---@async
---@param deadline number
---@param opts_or_fn? trio.TimeoutOptions|async fun(...): ...
---@param ... any
---@return trio.CancelScope scope
---@return any ...
function trio.move_on_at(deadline, opts_or_fn, ...) end

---Raises trio.TooSlowError on timeout; without `fn`, a scope whose run() does.
---@async
---@param seconds number
---@param opts_or_fn? trio.TimeoutOptions|async fun(...): ...
---@param ... any
---@return any ...
function trio.fail_after(seconds, opts_or_fn, ...) end

---Raises trio.TooSlowError on timeout; without `fn`, a scope whose run() does.
---@async
---@param deadline number
---@param opts_or_fn? trio.TimeoutOptions|async fun(...): ...
---@param ... any
---@return any ...
function trio.fail_at(deadline, opts_or_fn, ...) end

-- ---------------------------------------------------------------------
-- memory channels

---@class trio.MemorySendChannel
local MemorySendChannel = {}

---@async
---@param value any
function MemorySendChannel:send(value) end

---@param value any
function MemorySendChannel:send_nowait(value) end

---@return trio.MemorySendChannel
function MemorySendChannel:clone() end

function MemorySendChannel:close() end

---@return {current_buffer_used: integer, max_buffer_size: number, open_send_channels: integer, open_receive_channels: integer, tasks_waiting_send: integer, tasks_waiting_receive: integer}
function MemorySendChannel:statistics() end

---@class trio.MemoryReceiveChannel
local MemoryReceiveChannel = {}

---@async
---@return any
function MemoryReceiveChannel:receive() end

---@return any
function MemoryReceiveChannel:receive_nowait() end

---`for v in receive:iter() do ... end` until every sender is closed.
---@return fun(): any
function MemoryReceiveChannel:iter() end

---@return trio.MemoryReceiveChannel
function MemoryReceiveChannel:clone() end

function MemoryReceiveChannel:close() end

---@return table
function MemoryReceiveChannel:statistics() end

---@param max_buffer_size number 0: rendezvous; math.huge: unbounded
---@return trio.MemorySendChannel send
---@return trio.MemoryReceiveChannel receive
function trio.open_memory_channel(max_buffer_size) end

-- ---------------------------------------------------------------------
-- synchronization

---@class trio.Event
local Event = {}
function Event:set() end
---@return boolean
function Event:is_set() end
---@async
function Event:wait() end
---@return {tasks_waiting: integer}
function Event:statistics() end
---@return string
function Event:statistics_line() end

---@return trio.Event
function trio.Event() end

---@class trio.Lock
local Lock = {}
---@async
function Lock:acquire() end
function Lock:acquire_nowait() end
function Lock:release() end
---@return boolean
function Lock:locked() end
---Acquires, runs `fn(...)`, releases on every exit path; returns fn's results.
---@async
---@param fn fun(...): ...
---@param ... any
---@return any ...
function Lock:with(fn, ...) end
---@return {locked: boolean, owner: trio.lowlevel.Task?, tasks_waiting: integer}
function Lock:statistics() end
---@return string
function Lock:statistics_line() end

---@return trio.Lock
function trio.Lock() end

---@class trio.StrictFIFOLock: trio.Lock
local StrictFIFOLock = {}

---@return trio.StrictFIFOLock
function trio.StrictFIFOLock() end

---@class trio.Semaphore
---@field value integer
---@field max_value integer?
local Semaphore = {}
---@async
function Semaphore:acquire() end
function Semaphore:acquire_nowait() end
function Semaphore:release() end
---@return boolean
function Semaphore:locked() end
---@async
---@param fn fun(...): ...
---@param ... any
---@return any ...
function Semaphore:with(fn, ...) end
---@return {tasks_waiting: integer}
function Semaphore:statistics() end
---@return string
function Semaphore:statistics_line() end

---@param initial_value integer
---@param max_value? integer
---@return trio.Semaphore
function trio.Semaphore(initial_value, max_value) end

---@class trio.CapacityLimiter
---@field total_tokens number settable
---@field borrowed_tokens integer
---@field available_tokens number
local CapacityLimiter = {}
---@async
function CapacityLimiter:acquire() end
---@async
---@param borrower any
function CapacityLimiter:acquire_on_behalf_of(borrower) end
function CapacityLimiter:acquire_nowait() end
---@param borrower any
function CapacityLimiter:acquire_on_behalf_of_nowait(borrower) end
function CapacityLimiter:release() end
---@param borrower any
function CapacityLimiter:release_on_behalf_of(borrower) end
---@async
---@param fn fun(...): ...
---@param ... any
---@return any ...
function CapacityLimiter:with(fn, ...) end
---@return {borrowed_tokens: integer, total_tokens: number, tasks_waiting: integer}
function CapacityLimiter:statistics() end
---@return string
function CapacityLimiter:statistics_line() end

---@param total_tokens number an integer or math.huge
---@return trio.CapacityLimiter
function trio.CapacityLimiter(total_tokens) end

---@class trio.Condition
local Condition = {}
---@async
function Condition:acquire() end
function Condition:acquire_nowait() end
function Condition:release() end
---@return boolean
function Condition:locked() end
---@async
function Condition:wait() end
---@param n? integer
function Condition:notify(n) end
function Condition:notify_all() end
---@async
---@param fn fun(...): ...
---@param ... any
---@return any ...
function Condition:with(fn, ...) end
---@return table
function Condition:statistics() end
---@return string
function Condition:statistics_line() end

---@param lock? trio.Lock
---@return trio.Condition
function trio.Condition(lock) end

-- ---------------------------------------------------------------------
-- context variables

---@class trio.ContextVar
---@field name string
local ContextVar = {}

---@param default? any
---@return any
function ContextVar:get(default) end

---@param value any
---@return table token
function ContextVar:set(value) end

---@param token table
function ContextVar:reset(token) end

---@param name string
---@param default? any
---@return trio.ContextVar
function trio.ContextVar(name, default) end

-- ---------------------------------------------------------------------
-- errors (classes: call one to make an error; Class:is(e) tests)

-- A raised trio.Cancelled has the fields source ("explicit", "deadline",
-- "nursery", "KeyboardInterrupt", "shutdown" or "unknown"), and reason and
-- source_task (the tostring of the task it came from) when known.
---@class trio.Cancelled: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): trio.Cancelled
trio.Cancelled = {}
---@class trio.TooSlowError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): trio.TooSlowError
trio.TooSlowError = {}
---@class trio.ClosedResourceError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): trio.ClosedResourceError
trio.ClosedResourceError = {}
---@class trio.BrokenResourceError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): trio.BrokenResourceError
trio.BrokenResourceError = {}
---@class trio.BusyResourceError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): trio.BusyResourceError
trio.BusyResourceError = {}
---@class trio.EndOfChannel: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): trio.EndOfChannel
trio.EndOfChannel = {}
---@class trio.WouldBlock: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): trio.WouldBlock
trio.WouldBlock = {}
---@class trio.RunFinishedError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): trio.RunFinishedError
trio.RunFinishedError = {}
---@class trio.TrioInternalError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): trio.TrioInternalError
trio.TrioInternalError = {}
---@class trio.KeyboardInterrupt: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): trio.KeyboardInterrupt
trio.KeyboardInterrupt = {}
---@class trio.RuntimeError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): trio.RuntimeError
trio.RuntimeError = {}
---@class trio.LookupError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): trio.LookupError
trio.LookupError = {}
---The same class as trio_asyncio.OSError.
---@type trio_asyncio.OSError
trio.OSError = nil

---The errors of a nursery.
---@class trio.ExceptionGroup: trio_asyncio.Error
---@field exceptions any[] the original error values
---@field tracebacks string[] one traceback each
---@overload fun(message: string, exceptions: any[], tracebacks?: string[]): trio.ExceptionGroup
local ExceptionGroup = {}
trio.ExceptionGroup = ExceptionGroup

---@alias trio.ErrorCondition trio_asyncio.Error|trio_asyncio.Error[]|fun(e: any): boolean

---@param condition trio.ErrorCondition
---@return trio.ExceptionGroup? match
---@return trio.ExceptionGroup? rest
function ExceptionGroup:split(condition) end

---@param condition trio.ErrorCondition
---@return trio.ExceptionGroup?
function ExceptionGroup:subgroup(condition) end

---@param condition trio.ErrorCondition
---@return boolean
function ExceptionGroup:contains(condition) end

-- ---------------------------------------------------------------------
-- trio.lowlevel

---@class trio.lowlevel
local lowlevel = {}
trio.lowlevel = lowlevel

---A task of either flavor.
---@class trio.lowlevel.Task
---@field name string settable
---@field flavor "trio"|"asyncio"|"allow_asyncio"
---@field parent_nursery trio.Nursery?
---@field child_nurseries trio.Nursery[]
---@field id integer
---@field done boolean
---@field custom_sleep_data any settable; cleared when the task is made runnable
local Task = {}

---@class trio.lowlevel.TrioToken
local TrioToken = {}

---A last argument that is exactly `{idempotent = <boolean>}` is the options.
---@param fn fun(...)
---@param ... any
function TrioToken:run_sync_soon(fn, ...) end

---@class trio.lowlevel.ParkingLot
---@field broken_by trio.lowlevel.Task[] the tasks that broke it
local ParkingLot = {}
---@async
---@return any
function ParkingLot:park() end
---@param count? integer
---@return trio.lowlevel.Task[]
function ParkingLot:unpark(count) end
---@return trio.lowlevel.Task[]
function ParkingLot:unpark_all() end
---Breaks the lot on behalf of `task` (default: the current task): waiters and later parks get BrokenResourceError.
---@param task? trio.lowlevel.Task
function ParkingLot:break_lot(task) end
---@param new_lot trio.lowlevel.ParkingLot
---@param count? integer
function ParkingLot:repark(new_lot, count) end
---@param new_lot trio.lowlevel.ParkingLot
function ParkingLot:repark_all(new_lot) end
---@return {tasks_waiting: integer}
function ParkingLot:statistics() end

---@return trio.lowlevel.ParkingLot
function lowlevel.ParkingLot() end
---When `task` exits, it breaks `lot`.
---@param task trio.lowlevel.Task
---@param lot trio.lowlevel.ParkingLot
function lowlevel.add_parking_lot_breaker(task, lot) end
---Removes one registration of `task` as a breaker of `lot`.
---@param task trio.lowlevel.Task
---@param lot trio.lowlevel.ParkingLot
function lowlevel.remove_parking_lot_breaker(task, lot) end

---A clock for a run: a MockClock, or an object with Trio's Clock methods.
---@alias trio.lowlevel.AnyClock trio.testing.MockClock|{start_clock: fun(self), current_time: fun(self): number, deadline_to_sleep_time: fun(self, deadline: number): number}

---@param opts {fn: async fun(...): ..., args?: any[], clock?: trio.lowlevel.AnyClock, instruments?: table[]}
---@return any ...
function lowlevel.run(opts) end

---@param fn async fun(...): ...
---@param opts {done_callback: fun(ok: boolean, ...), args?: any[], clock?: trio.lowlevel.AnyClock, instruments?: table[]}
function lowlevel.start_guest_run(fn, opts) end

---@return trio.lowlevel.Task?
function lowlevel.current_task() end

---@return trio.lowlevel.Task?
function lowlevel.current_root_task() end

---@return "trio"|"asyncio"|nil
function lowlevel.current_flavor() end
---The clock of a run without one; the methods of Trio's Clock interface.
---@class trio.lowlevel.SystemClock
local SystemClock = {}
function SystemClock:start_clock() end
---@return number
function SystemClock:current_time() end
---@param deadline number
---@return number real_seconds
function SystemClock:deadline_to_sleep_time(deadline) end

---The run's clock: the one it was given, else the system clock.
---@return trio.lowlevel.AnyClock|trio.lowlevel.SystemClock
function lowlevel.current_clock() end

---@return {tasks_living: integer, tasks_runnable: integer, seconds_to_next_deadline: number, run_sync_soon_queue_size: integer, io_statistics: {tasks_waiting_read: integer, tasks_waiting_write: integer, backend: string}}
function lowlevel.current_statistics() end

---True where current_trio_token() works (inside a run).
---@return boolean
function lowlevel.in_trio_run() end
---True where current_task() works (in a Trio-flavored task of the run).
---@return boolean
function lowlevel.in_trio_task() end
---The live tasks of the run as a tree: {name=, flavor=, kind=, where=, task=, children=}; nil outside a run.
---@return table?
function lowlevel.task_tree() end
---Prints the task tree, one task a line.
---@param write? fun(s: string)
---@param tree? table
function lowlevel.dump_tasks(write, tree) end

---@async
function lowlevel.checkpoint() end

---@async
function lowlevel.checkpoint_if_cancelled() end

---@async
function lowlevel.cancel_shielded_checkpoint() end

---@async
---@param abort_fn fun(raise_cancel: fun()): "SUCCEEDED"|"FAILED"
---@return any
function lowlevel.wait_task_rescheduled(abort_fn) end

lowlevel.Abort = { SUCCEEDED = "SUCCEEDED", FAILED = "FAILED" }
lowlevel.Abort.SUCCEEDED = "SUCCEEDED"
lowlevel.Abort.FAILED = "FAILED"

---@param task trio.lowlevel.Task
---@param ok boolean
---@param value any
function lowlevel.reschedule(task, ok, value) end

---@param fn async fun(...)
---@param ... any
---@return trio.lowlevel.Task
function lowlevel.spawn_system_task(fn, ...) end

---@return trio.lowlevel.TrioToken
function lowlevel.current_trio_token() end

---@async
---@param fd integer
function lowlevel.wait_readable(fd) end

---@async
---@param fd integer
function lowlevel.wait_writable(fd) end

---@param fd integer
function lowlevel.notify_closing(fd) end

---@param instrument table
function lowlevel.add_instrument(instrument) end

---@param instrument table
function lowlevel.remove_instrument(instrument) end

-- ---------------------------------------------------------------------
-- trio.testing

---@class trio.testing
local testing = {}
trio.testing = testing

---@class trio.testing.MockClock
---@field rate number settable
---@field autojump_threshold number settable
local MockClock = {}

---@return number
function MockClock:current_time() end

---@param seconds number
function MockClock:jump(seconds) end
function MockClock:start_clock() end
---@param deadline number
---@return number real_seconds
function MockClock:deadline_to_sleep_time(deadline) end

---@param opts? {rate?: number, autojump_threshold?: number}
---@return trio.testing.MockClock
function testing.MockClock(opts) end

---@async
---@param cushion? number real seconds every other task must have been blocked (default 0)
function testing.wait_all_tasks_blocked(cushion) end

---@alias trio.testing.Options {autojump?: boolean|number, clock?: trio.testing.MockClock, timeout?: number, instruments?: table[], leak_check?: boolean}

---A function that runs `fn(clock)` in a fresh Trio run.
---@param fn async fun(clock: trio.testing.MockClock?): ...
---@param opts? trio.testing.Options
---@return fun(): ...
function testing.trio_test(fn, opts) end

---A busted test whose body runs in a fresh Trio run.
---@param name string
---@param fn async fun(clock: trio.testing.MockClock?)
---@param opts? trio.testing.Options
function testing.it(name, fn, opts) end

-- ---------------------------------------------------------------------
-- worker threads

---@class trio.to_thread
local to_thread = {}
trio.to_thread = to_thread

---Runs `fn(...)` on a worker OS thread in a Lua state of its own; arguments, results and errors are copied.
---@async
---@param opts_or_fn {cancellable?: boolean, limiter?: trio.CapacityLimiter}|fun(...): ...
---@param ... any `fn` (when opts are given), then its arguments
---@return any ...
function to_thread.run_sync(opts_or_fn, ...) end

---The run's default limiter, a CapacityLimiter(40).
---@return trio.CapacityLimiter
function to_thread.current_default_thread_limiter() end

-- ---------------------------------------------------------------------
-- files

---@class trio.AsyncFile
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

---@async
---@param path string|trio.Path
---@param mode? string
---@return trio.AsyncFile
function trio.open_file(path, mode) end

---@class trio.Path
local Path = {}
---@param ... string|trio.Path
---@return trio.Path
function trio.Path(...) end
---@param ... string|trio.Path
---@return trio.Path
function Path:joinpath(...) end
---@async
---@param mode? string
---@return trio.AsyncFile
function Path:open(mode) end
---@async
---@return string
function Path:read_text() end
---@async
---@return string
function Path:read_bytes() end
---@async
---@param s string
---@return integer
function Path:write_text(s) end
---@async
---@param s string
---@return integer
function Path:write_bytes(s) end
---@async
---@return boolean
function Path:exists() end
---@async
---@return boolean
function Path:is_file() end
---@async
---@return boolean
function Path:is_dir() end
---@async
---@return table stat st_mode, st_size, st_mtime, ... (Python's names)
function Path:stat() end
---@async
---@param opts? {parents?: boolean, exist_ok?: boolean, mode?: integer}
function Path:mkdir(opts) end
---@async
function Path:rmdir() end
---@async
---@param opts? {missing_ok?: boolean}
function Path:unlink(opts) end
---@async
---@param target string|trio.Path
---@return trio.Path
function Path:rename(target) end
---@async
---@return trio.Path[]
function Path:iterdir() end

-- ---------------------------------------------------------------------
-- signals

---@class trio.SignalReceiver
local SignalReceiver = {}
---@return fun(): string?
function SignalReceiver:iter() end
---@return integer
function SignalReceiver:pending() end

---@async
---@param signals (string|integer)[]
---@param fn async fun(receiver: trio.SignalReceiver): ...
---@return any ...
function trio.open_signal_receiver(signals, fn) end

-- ---------------------------------------------------------------------
-- processes

---Fields: returncode, cmd, stdout, stderr (the captured output or nil).
---@class trio.CalledProcessError: trio_asyncio.Error
---@overload fun(message_or_fields?: string|table): trio.CalledProcessError
trio.CalledProcessError = {}

---@class trio.PipeSendStream
local PipeSendStream = {}
---@async
---@param data string
function PipeSendStream:send_all(data) end
---@async
function PipeSendStream:wait_send_all_might_not_block() end
---@async
function PipeSendStream:close() end
---@return integer
function PipeSendStream:fileno() end

---@class trio.PipeReceiveStream
local PipeReceiveStream = {}
---@async
---@param max_bytes? integer
---@return string
function PipeReceiveStream:receive_some(max_bytes) end
---@async
function PipeReceiveStream:close() end
---@return integer
function PipeReceiveStream:fileno() end

---@class trio.Process
---@field args string[]|string
---@field pid integer
---@field returncode integer? nil while it runs; minus the signal that killed it
---@field stdin trio.PipeSendStream?
---@field stdout trio.PipeReceiveStream?
---@field stderr trio.PipeReceiveStream?
---@field stdio trio.StapledStream? stdin and stdout stapled, when both are pipes
local Process = {}
---@async
---@return integer returncode
function Process:wait() end
---@return integer?
function Process:poll() end
---@param sig string|integer
function Process:send_signal(sig) end
function Process:terminate() end
function Process:kill() end
---@async
function Process:close() end

---@alias trio.RunProcessOptions {stdin?: string, capture_stdout?: boolean, capture_stderr?: boolean, stdout?: "inherit"|"devnull", stderr?: "inherit"|"devnull"|"stdout", check?: boolean, cwd?: string, env?: table<string, string>, shell?: boolean, start_new_session?: boolean, deliver_cancel?: async fun(p: trio.Process)}

---Runs a child to its end.
---@async
---@param cmd string[]|string
---@param opts? trio.RunProcessOptions
---@return {args: string[]|string, returncode: integer, stdout: string?, stderr: string?}
function trio.run_process(cmd, opts) end

---@async
---@param cmd string[]|string
---@param opts? {stdin?: string|integer, stdout?: string|integer, stderr?: string|integer, cwd?: string, env?: table<string, string>, shell?: boolean, start_new_session?: boolean}
---@return trio.Process
function lowlevel.open_process(cmd, opts) end

return trio
