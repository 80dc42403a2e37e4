-- The Lua-version guard and the version fields: under Lua 5.1/5.2/5.3 or
-- LuaJIT, require "trio" (asyncio, trio_asyncio) says in one sentence that
-- Lua 5.4 is needed, instead of a linker error from the C core.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local support = require "support"
local assert_has = support.assert_has

local function have(cmd)
  return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == true
end

local function run(interp, code)
  local cmd = ("LUA_PATH=%q LUA_CPATH=%q %s -e %q 2>&1"):format(package.path, package.cpath, interp, code)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

describe("require under another Lua", function()
  -- lua5.1 comes with scripts/deps.sh; the others are tried when present.
  local interps = { { "lua5.1", "Lua 5.1" } }
  for _, i in ipairs { { "lua5.2", "Lua 5.2" }, { "lua5.3", "Lua 5.3" }, { "luajit", "LuaJIT" } } do
    if have(i[1]) then interps[#interps + 1] = i end
  end

  for _, i in ipairs(interps) do
    local interp, name = i[1], i[2]
    it(("gives one sentence under %s, before the C core loads"):format(interp), function()
      assert.is_true(have(interp), interp .. " is missing: run scripts/deps.sh")
      for _, mod in ipairs { "trio", "asyncio", "trio_asyncio" } do
        local out = run(interp, ("local ok, e = pcall(require, %q) print(ok) print(e)"):format(mod))
        assert.equal("false", out:match("^(%a+)\n"), out)
        assert_has(out, "trio-asyncio needs Lua 5.4, but this interpreter is " .. name)
        assert_has(out, ": run your script with lua5.4")
        assert.is_nil(out:find("undefined symbol", 1, true), out)
        assert.is_nil(out:find("trio_asyncio.core", 1, true), out)
      end
    end)
  end
end)

describe("_VERSION", function()
  it("is the same release in trio, asyncio and trio_asyncio, and CHANGELOG.md has it", function()
    assert.equal("string", type(trio._VERSION))
    assert.truthy(trio._VERSION:match("^%d+%.%d+%.%d+"), trio._VERSION)
    assert.equal(trio._VERSION, asyncio._VERSION)
    assert.equal(trio._VERSION, ta._VERSION)
    local f = assert(io.open("CHANGELOG.md"))
    local changelog = f:read("a")
    f:close()
    assert_has(changelog, "## " .. trio._VERSION:gsub("%-dev$", "") )
  end)
end)
