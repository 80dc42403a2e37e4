--- gen.lua SEED: prints a random Lua program (deterministic per seed) that
-- exercises nurseries, cancel scopes, deadlines, channels, sync
-- primitives, Futures, Tasks, the bridge (open_loop, aio_as_trio,
-- trio_as_aio, sync loops), GC mode switches and collections at random
-- points, with the invariants of tests/fuzz/fuzzlib.lua checked as it
-- runs.  Every error a construct raises on purpose is caught by a guard
-- at that construct, so the top level must finish normally.
--
-- Usage: lua5.4 tests/fuzz/gen.lua SEED > prog.lua
local seed = assert(tonumber(arg[1]), "usage: gen.lua SEED")
math.randomseed(seed)

local R = math.random
local function chance(p) return R() < p end
local function pick(t) return t[R(#t)] end

local out = {}
local function emit(ind, fmt, ...)
  out[#out + 1] = ("  "):rep(ind) .. (select("#", ...) > 0 and fmt:format(...) or fmt)
end

local nid = 0
local function id() nid = nid + 1 return nid end

local function delay() return pick { "0", "0", "0.0001", "0.0005", "0.001", "0.002", "0.005" } end
local function gc_kind() return pick { "collect", "step", "step", "generational", "incremental" } end

-- A weighted choice among the entries {weight, fn} whose weight is > 0.
local function weighted(choices)
  local total = 0
  for _, c in ipairs(choices) do total = total + c[1] end
  local x = R() * total
  for _, c in ipairs(choices) do
    x = x - c[1]
    if x <= 0 then return c[2] end
  end
  return choices[#choices][2]
end

local trio_block, aio_block

-- ---------------------------------------------------------------------
-- Trio statements.  ctx.loop: an asyncio loop is open (aio_as_trio works);
-- ctx.loops: how many open_loop may still nest.

local trio_stmts = {}

function trio_stmts.sleep(ind) emit(ind, "trio.sleep(%s)", delay()) end
function trio_stmts.checkpoint(ind) emit(ind, "trio.lowlevel.checkpoint()") end
function trio_stmts.gc(ind) emit(ind, "F.gc(%q)", gc_kind()) end

function trio_stmts.nursery(ind, depth, ctx)
  local n = "n" .. id()
  emit(ind, "trio.open_nursery(function(%s)", n)
  for _ = 1, R(1, 3) do
    emit(ind + 1, "F.spawn(%s, function()", n)
    trio_block(ind + 2, depth - 1, ctx)
    emit(ind + 1, "end)")
  end
  if chance(0.4) then trio_block(ind + 1, depth - 1, ctx) end
  if chance(0.25) then
    emit(ind + 1, "trio.sleep(%s)", delay())
    emit(ind + 1, "%s.cancel_scope:cancel()", n)
  end
  emit(ind, "end)")
end

function trio_stmts.scope(ind, depth, ctx)
  local sc = "sc" .. id()
  if chance(0.5) then
    emit(ind, "trio.move_on_after(%s, function()", delay())
    trio_block(ind + 1, depth - 1, ctx)
    emit(ind, "end)")
    return
  end
  emit(ind, "do")
  emit(ind + 1, "local %s = trio.CancelScope { shield = %s }", sc, tostring(chance(0.3)))
  emit(ind + 1, "%s:run(function()", sc)
  trio_block(ind + 2, depth - 1, ctx)
  if chance(0.5) then emit(ind + 2, "%s:cancel()", sc) trio_block(ind + 2, depth - 1, ctx) end
  emit(ind + 1, "end)")
  emit(ind, "end")
end

function trio_stmts.fail_after(ind, depth, ctx)
  emit(ind, "F.guard('tooslow', trio.fail_after, %s, function()", delay())
  trio_block(ind + 1, depth - 1, ctx)
  emit(ind, "end)")
end

function trio_stmts.raise(ind, depth, ctx)
  local tag = id()
  if chance(0.5) or depth <= 0 then
    emit(ind, "F.guard('fuzz', function()")
    if chance(0.5) then emit(ind + 1, "trio.sleep(%s)", delay()) end
    emit(ind + 1, "F.raise('%d')", tag)
    emit(ind, "end)")
    return
  end
  local n = "n" .. id()
  emit(ind, "F.guard('fuzz', trio.open_nursery, function(%s)", n)
  emit(ind + 1, "F.spawn(%s, function() trio.sleep(%s) F.raise('%d') end)", n, delay(), tag)
  if chance(0.6) then
    emit(ind + 1, "F.spawn(%s, function()", n)
    trio_block(ind + 2, depth - 1, ctx)
    emit(ind + 1, "end)")
  end
  if chance(0.5) then trio_block(ind + 1, depth - 1, ctx) end
  emit(ind, "end)")
end

function trio_stmts.channel(ind)
  local ch, n = "ch" .. id(), "n" .. id()
  local cap = pick { "0", "0", "1", "3", "math.huge" }
  local limit = chance(0.4) and delay() or "10"
  emit(ind, "do")
  emit(ind + 1, "local %s = F.channel(%s)", ch, cap)
  emit(ind + 1, "F.guard('', trio.move_on_after, %s, trio.open_nursery, function(%s)", limit, n)
  emit(ind + 2, "for p = 1, %d do F.spawn(%s, F.producer, %s, %s.send:clone(), p, %d, %s) end",
    R(1, 3), n, ch, ch, R(1, 8), tostring(chance(0.5)))
  emit(ind + 2, "%s.send:close()", ch)
  emit(ind + 2, "for c = 1, %d do F.spawn(%s, F.consumer, %s, %s.recv:clone(), %s) end",
    R(1, 3), n, ch, ch, tostring(chance(0.5)))
  emit(ind + 2, "%s.recv:close()", ch)
  emit(ind + 1, "end)")
  emit(ind + 1, "F.channel_check(%s)", ch)
  emit(ind, "end")
end

function trio_stmts.lock(ind)
  local kind = pick {
    { "trio.Lock()", 1, "Lock" }, { "trio.StrictFIFOLock()", 1, "StrictFIFOLock" },
    { "trio.Semaphore(2)", 2, "Semaphore" }, { "trio.CapacityLimiter(2)", 2, "CapacityLimiter" },
  }
  local lk, sec, n = "lk" .. id(), "sec" .. id(), "n" .. id()
  emit(ind, "do")
  emit(ind + 1, "local %s, %s = %s, F.section(%d)", lk, sec, kind[1], kind[2])
  emit(ind + 1, "F.guard('', trio.move_on_after, %s, trio.open_nursery, function(%s)",
    chance(0.3) and delay() or "10", n)
  emit(ind + 2, "for i = 1, %d do F.spawn(%s, function()", R(2, 4), n)
  emit(ind + 3, "for k = 1, %d do %s:with(function() local _ <close> = F.enter(%s) trio.sleep(%s) end) end",
    R(1, 3), lk, sec, delay())
  emit(ind + 2, "end) end")
  emit(ind + 1, "end)")
  emit(ind + 1, "F.section_check(%s, %s, %q)", sec, lk, kind[3])
  emit(ind, "end")
end

function trio_stmts.event(ind)
  local ev, woke, n, w = "ev" .. id(), "woke" .. id(), "n" .. id(), R(1, 4)
  emit(ind, "do")
  emit(ind + 1, "local %s, %s = trio.Event(), 0", ev, woke)
  emit(ind + 1, "F.guard('', trio.open_nursery, function(%s)", n)
  emit(ind + 2, "for i = 1, %d do F.spawn(%s, function() %s:wait() %s = %s + 1 end) end", w, n, ev, woke, woke)
  emit(ind + 2, "F.spawn(%s, function() trio.sleep(%s) %s:set() end)", n, delay(), ev)
  emit(ind + 1, "end)")
  emit(ind + 1, "if %s ~= %d then F.violation('event: %%d of %d waiters woke', %s) end", woke, w, w, woke)
  emit(ind, "end")
end

function trio_stmts.condition(ind)
  local cv, n = "cv" .. id(), "n" .. id()
  emit(ind, "do")
  emit(ind + 1, "local %s = trio.Condition()", cv)
  emit(ind + 1, "F.guard('', trio.move_on_after, 0.01, trio.open_nursery, function(%s)", n)
  emit(ind + 2, "for i = 1, %d do F.spawn(%s, function() %s:with(%s.wait, %s) end) end", R(1, 3), n, cv, cv, cv)
  emit(ind + 2, "F.spawn(%s, function() trio.sleep(%s) %s:with(%s.notify_all, %s) end)", n, delay(), cv, cv, cv)
  emit(ind + 1, "end)")
  emit(ind + 1, "if %s:locked() then F.violation('Condition: its lock was left held') end", cv)
  emit(ind, "end")
end

function trio_stmts.open_loop(ind, depth, ctx)
  local loop = "loop" .. id()
  emit(ind, "ta.open_loop(function(%s)", loop)
  trio_block(ind + 1, depth - 1, { loop = true, loops = ctx.loops - 1 })
  emit(ind, "end)")
end

function trio_stmts.aio_as_trio(ind, depth, ctx)
  emit(ind, "ta.aio_as_trio(function()")
  aio_block(ind + 1, depth - 1, { bridge = true, loops = ctx.loops })
  emit(ind, "end)()")
end

-- Cancellation storm: tasks in their own scopes, cancelled one by one in a
-- random order while they run.
function trio_stmts.storm(ind, depth, ctx)
  local n, scs, k = "n" .. id(), "scs" .. id(), R(2, 5)
  emit(ind, "do")
  emit(ind + 1, "local %s = {}", scs)
  emit(ind + 1, "trio.open_nursery(function(%s)", n)
  emit(ind + 2, "for i = 1, %d do", k)
  emit(ind + 3, "%s[i] = trio.CancelScope { shield = i == %d }", scs, R(1, 2 * k))
  emit(ind + 3, "F.spawn(%s, function() %s[i]:run(function()", n, scs)
  trio_block(ind + 4, depth - 1, ctx)
  emit(ind + 3, "end) end)")
  emit(ind + 2, "end")
  local order = {}
  for i = 1, k do order[i] = i end
  for i = k, 2, -1 do local j = R(i) order[i], order[j] = order[j], order[i] end
  emit(ind + 2, "for _, i in ipairs { %s } do trio.sleep(%s) %s[i]:cancel() end", table.concat(order, ", "),
    delay(), scs)
  emit(ind + 1, "end)")
  emit(ind, "end")
end

-- With a loop open: callbacks and timers scheduled from Trio code, whose
-- deadlines meet the Trio task's own.
function trio_stmts.loop_callbacks(ind)
  local d = delay()
  emit(ind, "do")
  emit(ind + 1, "local loop, fired = ta.current_loop(), 0")
  emit(ind + 1, "for i = 1, %d do loop:call_later(%s, function() fired = fired + 1 end) end", R(1, 3), d)
  emit(ind + 1, "loop:call_soon(function() fired = fired + 1 end)")
  emit(ind + 1, "trio.sleep(%s)", pick { d, "0", delay() })
  emit(ind + 1, "loop:call_soon(function() fired = fired + 1 end)")
  emit(ind, "end")
end

-- With a loop open: a Trio task started through the loop (run_trio), its
-- future maybe cancelled from here, waited for from Trio.
function trio_stmts.run_trio(ind, depth, ctx)
  local fut = "fut" .. id()
  emit(ind, "do")
  emit(ind + 1, "local %s = ta.current_loop():run_trio(function()", fut)
  trio_block(ind + 2, depth - 1, ctx)
  emit(ind + 1, "end)")
  if chance(0.5) then emit(ind + 1, "trio.sleep(%s)", delay()) end
  if chance(0.5) then emit(ind + 1, "%s:cancel()", fut) end
  emit(ind + 1, "F.wait_future(%s)", fut)
  emit(ind, "end")
end

local function trio_stmt(ind, depth, ctx)
  local deep = depth > 0 and 1 or 0
  weighted {
    { 3, trio_stmts.sleep }, { 1, trio_stmts.checkpoint }, { 1, trio_stmts.gc },
    { 3 * deep, trio_stmts.nursery }, { 2 * deep, trio_stmts.scope }, { 1 * deep, trio_stmts.fail_after },
    { 1, trio_stmts.raise }, { 2, trio_stmts.channel }, { 1, trio_stmts.lock }, { 1, trio_stmts.event },
    { 0.5, trio_stmts.condition },
    { (ctx.loops > 0 and deep or 0) * 1, trio_stmts.open_loop },
    { (ctx.loop and deep or 0) * 3, trio_stmts.aio_as_trio },
    { 1 * deep, trio_stmts.storm },
    { ctx.loop and 1 or 0, trio_stmts.loop_callbacks },
    { (ctx.loop and deep or 0) * 1, trio_stmts.run_trio },
  }(ind, depth, ctx)
end

function trio_block(ind, depth, ctx)
  for _ = 1, R(1, depth >= 3 and 4 or 2) do trio_stmt(ind, depth, ctx) end
end

-- ---------------------------------------------------------------------
-- asyncio statements.  ctx.bridge: the loop runs inside Trio (trio_as_aio
-- works).

local aio_stmts = {}

function aio_stmts.sleep(ind) emit(ind, "asyncio.sleep(%s)", delay()) end
function aio_stmts.gc(ind) emit(ind, "F.gc(%q)", gc_kind()) end

function aio_stmts.gather(ind, depth, ctx)
  emit(ind, "asyncio.gather(")
  local k = R(1, 3)
  for i = 1, k do
    emit(ind + 1, "function()")
    aio_block(ind + 2, depth - 1, ctx)
    emit(ind + 1, "end%s", (i < k or chance(0.3)) and "," or "")
  end
  if out[#out]:sub(-1) == "," then emit(ind + 1, "{ return_exceptions = %s }", tostring(chance(0.5))) end
  emit(ind, ")")
end

function aio_stmts.task(ind, depth, ctx)
  local t = "t" .. id()
  emit(ind, "do")
  emit(ind + 1, "local %s = F.task(function()", t)
  aio_block(ind + 2, depth - 1, ctx)
  emit(ind + 1, "end)")
  if chance(0.6) then emit(ind + 1, "asyncio.sleep(%s)", delay()) end
  if chance(0.5) then emit(ind + 1, "%s:cancel()", t) end
  emit(ind + 1, "F.await_child(%s, '')", t)
  emit(ind, "end")
end

function aio_stmts.wait_for(ind, depth, ctx)
  emit(ind, "F.guard('timeout', asyncio.wait_for, function()")
  aio_block(ind + 1, depth - 1, ctx)
  emit(ind, "end, %s)", delay())
end

function aio_stmts.timeout(ind, depth, ctx)
  emit(ind, "F.guard('timeout', asyncio.timeout, %s, function()", delay())
  aio_block(ind + 1, depth - 1, ctx)
  emit(ind, "end)")
end

function aio_stmts.shield(ind, depth, ctx)
  emit(ind, "asyncio.shield(function()")
  aio_block(ind + 1, depth - 1, ctx)
  emit(ind, "end)")
end

function aio_stmts.future(ind)
  local f = "f" .. id()
  emit(ind, "do")
  emit(ind + 1, "local %s = asyncio.get_running_loop():create_future()", f)
  emit(ind + 1, "asyncio.get_running_loop():call_later(%s, function() if not %s:done() then %s:set_result(1) end end)",
    delay(), f, f)
  emit(ind + 1, "%s:await()", f)
  emit(ind, "end")
end

function aio_stmts.queue(ind)
  local q, got, k = "q" .. id(), "got" .. id(), R(1, 6)
  emit(ind, "do")
  emit(ind + 1, "local %s, %s = asyncio.Queue(%d), {}", q, got, R(0, 2))
  emit(ind + 1, "asyncio.gather(function() for i = 1, %d do %s:put(i) end end,", k, q)
  emit(ind + 2, "function() for i = 1, %d do local v = %s:get()", k, q)
  emit(ind + 3, "if %s[v] then F.violation('queue: %%s received twice', v) end %s[v] = true end end)", got, got)
  emit(ind + 1, "for i = 1, %d do if not %s[i] then F.violation('queue: %%d lost', i) end end", k, got)
  emit(ind, "end")
end

function aio_stmts.lock(ind)
  local kind = pick { { "asyncio.Lock()", 1, "asyncio.Lock" }, { "asyncio.Semaphore(2)", 2, "Semaphore" },
    { "asyncio.BoundedSemaphore(2)", 2, "Semaphore" } }
  local lk, sec = "lk" .. id(), "sec" .. id()
  emit(ind, "do")
  emit(ind + 1, "local %s, %s = %s, F.section(%d)", lk, sec, kind[1], kind[2])
  local fns = {}
  for _ = 1, R(2, 3) do
    fns[#fns + 1] = ("function() for k = 1, %d do %s:with(function() local _ <close> = F.enter(%s) asyncio.sleep(%s) end) end end")
      :format(R(1, 3), lk, sec, delay())
  end
  emit(ind + 1, "asyncio.gather(%s)", table.concat(fns, ",\n" .. ("  "):rep(ind + 2)))
  emit(ind + 1, "F.section_check(%s, %s, %q)", sec, lk, kind[3])
  emit(ind, "end")
end

function aio_stmts.event(ind)
  local ev, w = "ev" .. id(), R(1, 3)
  emit(ind, "do")
  emit(ind + 1, "local %s = asyncio.Event()", ev)
  emit(ind + 1, "local ts = {}")
  emit(ind + 1, "for i = 1, %d do ts[i] = F.task(function() %s:wait() end) end", w, ev)
  emit(ind + 1, "asyncio.sleep(%s)", delay())
  emit(ind + 1, "%s:set()", ev)
  emit(ind + 1, "for _, t in ipairs(ts) do F.await_child(t, '') end")
  emit(ind, "end")
end

function aio_stmts.raise(ind)
  emit(ind, "F.guard('fuzz', function()")
  if chance(0.5) then emit(ind + 1, "asyncio.sleep(%s)", delay()) end
  emit(ind + 1, "F.raise('%d')", id())
  emit(ind, "end)")
end

function aio_stmts.trio_as_aio(ind, depth, ctx)
  emit(ind, "ta.trio_as_aio(function()")
  trio_block(ind + 1, depth - 1, { loop = true, loops = ctx.loops })
  emit(ind, "end)()")
end

-- A Task that swallows its cancellation once and goes on (asyncio allows
-- it), cancelled or not.
function aio_stmts.stubborn(ind, depth, ctx)
  local t = "t" .. id()
  emit(ind, "do")
  emit(ind + 1, "local %s = F.task(function()", t)
  emit(ind + 2, "pcall(asyncio.sleep, %s)", delay())
  aio_block(ind + 2, depth - 1, ctx)
  emit(ind + 1, "end)")
  emit(ind + 1, "asyncio.sleep(%s)", delay())
  if chance(0.7) then emit(ind + 1, "%s:cancel()", t) end
  emit(ind + 1, "F.await_child(%s, '')", t)
  emit(ind, "end")
end

local function aio_stmt(ind, depth, ctx)
  local deep = depth > 0 and 1 or 0
  weighted {
    { 3, aio_stmts.sleep }, { 1, aio_stmts.gc }, { 2 * deep, aio_stmts.gather }, { 2 * deep, aio_stmts.task },
    { 1 * deep, aio_stmts.wait_for }, { 1 * deep, aio_stmts.timeout }, { 0.5 * deep, aio_stmts.shield },
    { 1, aio_stmts.future }, { 1, aio_stmts.queue }, { 1, aio_stmts.lock }, { 1, aio_stmts.event },
    { 1, aio_stmts.raise }, { (ctx.bridge and deep or 0) * 3, aio_stmts.trio_as_aio },
    { 1 * deep, aio_stmts.stubborn },
  }(ind, depth, ctx)
end

function aio_block(ind, depth, ctx)
  for _ = 1, R(1, depth >= 3 and 4 or 2) do aio_stmt(ind, depth, ctx) end
end

-- ---------------------------------------------------------------------
-- the program

local mode = weighted { { 25, "trio" }, { 10, "mock" }, { 25, "ta" }, { 20, "asyncio" }, { 20, "sync" } }
local depth = R(2, 4)
local instrument = mode ~= "asyncio" and mode ~= "sync" and chance(0.3)

emit(0, "-- fuzz program, seed %d, mode %s (generated by tests/fuzz/gen.lua)", seed, mode)
emit(0, "local F = require 'fuzzlib'")
emit(0, "local trio, asyncio, ta = F.trio, F.asyncio, F.ta")
if chance(0.5) then emit(0, "collectgarbage(%q)", pick { "generational", "incremental" }) end
if mode == "sync" then
  emit(0, "F.top('sync', {")
  for _ = 1, R(1, 3) do
    emit(1, "function()")
    aio_block(2, depth, { bridge = true, loops = 1 })
    emit(2, "return F.DONE")
    emit(1, "end,")
  end
  emit(0, "}, { gc_between = %s })", chance(0.5) and ("%q"):format(gc_kind()) or "nil")
elseif mode == "asyncio" then
  emit(0, "F.top('asyncio', function()")
  aio_block(1, depth, { bridge = false, loops = 0 })
  emit(1, "return F.DONE")
  emit(0, "end)")
else
  emit(0, "F.top(%q, function()", mode)
  trio_block(1, depth, { loop = mode == "ta", loops = 2 })
  emit(1, "return F.DONE")
  emit(0, "end, { instrument = %s })", tostring(instrument))
end
emit(0, "F.finish()")

print(table.concat(out, "\n"))
