-- trio_asyncio.task_tree() and dump_tasks(): the live tasks of both flavors
-- as one tree, asyncio tasks under the loop that runs them.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"

-- Every node of the tree, depth first, each with its parent.
local function nodes(tree)
  local out = {}
  local function walk(node, parent, depth)
    out[#out + 1] = { node = node, parent = parent, depth = depth }
    for _, child in ipairs(node.children) do walk(child, node, depth + 1) end
  end
  walk(tree, nil, 0)
  return out
end

local function find(tree, name)
  for _, entry in ipairs(nodes(tree)) do
    if entry.node.name == name then return entry.node, entry.parent, entry.depth end
  end
end

local function line() return debug.getinfo(2, "l").currentline end

-- Runs body(loop) inside ta.run with a nursery `n` whose tasks are
-- cancelled when body returns.
local function scenario(body)
  return ta.run(function()
    local r
    trio.open_nursery(function(n)
      r = table.pack(body(ta.current_loop(), n))
      n.cancel_scope:cancel()
    end)
    return table.unpack(r, 1, r.n)
  end)
end

describe("task_tree", function()
  it("is nil outside a run", function()
    local t = ta.task_tree()
    assert.is_nil(t)
  end)

  it("every node has name, flavor, kind, where and children", function()
    local tree = scenario(function() return ta.task_tree() end)
    assert.is_table(tree)
    for _, entry in ipairs(nodes(tree)) do
      local node = entry.node
      assert.is_string(node.name)
      assert.is_true(node.flavor == "trio" or node.flavor == "asyncio" or node.flavor == "both", tostring(node.flavor))
      assert.is_string(node.kind)
      assert.is_string(node.where)
      assert.is_table(node.children)
    end
    assert.equal("trio", tree.flavor)
  end)

  it("shows asyncio tasks under their loop, with flavor asyncio and where they wait", function()
    local tree, wait_line, loop_name = scenario(function(loop)
      local l
      local t = loop:create_task(function()
        l = line() + 1
        asyncio.sleep(10)
      end)
      t:set_name("fetcher")
      trio.sleep(0.002)
      return ta.task_tree(), l, tostring(loop)
    end)
    local node, parent = find(tree, "fetcher")
    assert.is_not_nil(node, "fetcher not in the tree")
    assert.equal("asyncio", node.flavor)
    assert.equal("task", node.kind)
    assert.equal("loop", parent.kind)
    assert.equal("asyncio", parent.flavor)
    assert.equal(loop_name, parent.name)
    assert.matches("bridge_introspection_spec%.lua:" .. wait_line, node.where)
  end)

  it("shows Trio tasks with flavor trio and where they wait", function()
    local tree, wait_line = scenario(function(_loop, n)
      local l
      n:start_soon(function()
        trio.lowlevel.current_task().name = "worker"
        l = line() + 1
        trio.sleep(10)
      end)
      trio.sleep(0.002)
      return ta.task_tree(), l
    end)
    local node = find(tree, "worker")
    assert.is_not_nil(node, "worker not in the tree")
    assert.equal("trio", node.flavor)
    assert.matches("bridge_introspection_spec%.lua:" .. wait_line, node.where)
  end)

  it("shows Trio tasks started from asyncio code", function()
    local tree = scenario(function(loop)
      ta.aio_as_trio(function()
        loop:run_trio_task(function()
          trio.lowlevel.current_task().name = "started from asyncio"
          trio.sleep_forever()
        end)
      end)()
      trio.sleep(0.002)
      return ta.task_tree()
    end)
    local node = find(tree, "started from asyncio")
    assert.is_not_nil(node)
    assert.equal("trio", node.flavor)
  end)

  it("shows both flavors of a trio -> asyncio -> trio chain in one tree", function()
    local tree = scenario(function(_loop, n)
      local ev = trio.Event()
      n:start_soon(function()
        trio.lowlevel.current_task().name = "caller"
        ta.aio_as_trio(function()
          asyncio.current_task():set_name("middle")
          ta.trio_as_aio(function()
            trio.lowlevel.current_task().name = "innermost"
            ev:set()
            trio.sleep_forever()
          end)()
        end)()
      end)
      ev:wait()
      trio.sleep(0.002)
      return ta.task_tree()
    end)
    local caller, middle, innermost = find(tree, "caller"), find(tree, "middle"), find(tree, "innermost")
    assert.is_not_nil(caller)
    assert.is_not_nil(middle)
    assert.is_not_nil(innermost)
    assert.equal("trio", caller.flavor)
    assert.equal("asyncio", middle.flavor)
    assert.equal("trio", innermost.flavor)
  end)

  it("two loops give two loop nodes, each with its own tasks", function()
    local tree, names = scenario(function(outer)
      local names = { tostring(outer) }
      outer:create_task(function() asyncio.sleep(10) end):set_name("outer task")
      ta.open_loop(function(inner)
        names[2] = tostring(inner)
        inner:create_task(function() asyncio.sleep(10) end):set_name("inner task")
        trio.sleep(0.002)
        names.tree = ta.task_tree()
      end)
      return names.tree, names
    end)
    local outer_loop = find(tree, names[1])
    local inner_loop = find(tree, names[2])
    assert.is_not_nil(outer_loop)
    assert.is_not_nil(inner_loop)
    local _, p1 = find(tree, "outer task")
    local _, p2 = find(tree, "inner task")
    assert.equal(outer_loop, p1)
    assert.equal(inner_loop, p2)
  end)

  it("finished tasks are not in the tree", function()
    local tree = scenario(function(loop)
      local t = loop:create_task(function() return 1 end)
      t:set_name("finished")
      ta.run_aio_future(t)
      return ta.task_tree()
    end)
    assert.is_nil(find(tree, "finished"))
  end)
end)

describe("dump_tasks", function()
  it("writes one line per task through write, indented by depth", function()
    local lines, tree = {}, nil
    scenario(function(loop, n)
      loop:create_task(function() asyncio.sleep(10) end):set_name("dumped aio")
      n:start_soon(function()
        trio.lowlevel.current_task().name = "dumped trio"
        trio.sleep(10)
      end)
      trio.sleep(0.002)
      ta.dump_tasks(function(s) lines[#lines + 1] = s end)
      tree = ta.task_tree()
    end)
    local text = table.concat(lines)
    local split = {}
    for l in text:gmatch("([^\n]*)\n") do split[#split + 1] = l end
    assert.is_true(#split >= 4)
    assert.equal(#nodes(tree), #split)
    local aio_line, trio_line
    for _, l in ipairs(split) do
      if l:find("dumped aio", 1, true) then aio_line = l end
      if l:find("dumped trio", 1, true) then trio_line = l end
    end
    assert.is_not_nil(aio_line)
    assert.is_not_nil(trio_line)
    assert.truthy(aio_line:find("asyncio", 1, true))
    assert.truthy(trio_line:find("trio", 1, true))
    -- the asyncio task sits under its loop, deeper than the Trio child
    local indent = function(l) return #l:match("^ *") end
    assert.is_true(indent(aio_line) > indent(trio_line))
    assert.equal(0, indent(split[1]))
  end)

  it("writes a line saying there is no run outside a run", function()
    local lines = {}
    ta.dump_tasks(function(s) lines[#lines + 1] = s end)
    assert.equal(1, #lines)
    assert.truthy(lines[1]:find("no trio run", 1, true))
  end)
end)
