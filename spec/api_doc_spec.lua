-- docs/API.md: every example runs (each at most 30 s, in its own process)
-- and the C example compiles against the static library and runs.
-- scripts/check_api.lua (make check-api) checks the names.
local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  return out
end

local doc = read("docs/API.md")
local blocks = {}
local pos = 1
while true do
  local s, e, lang, body = doc:find("\n```(%a*)\n(.-)\n```", pos)
  if not s then break end
  local line = select(2, doc:sub(1, s):gsub("\n", "")) + 2
  blocks[#blocks + 1] = { lang = lang, body = body, line = line }
  pos = e + 1
end

describe("docs/API.md examples", function()
  it("has an example for each group", function()
    local n = 0
    for _, b in ipairs(blocks) do if b.lang == "lua" then n = n + 1 end end
    assert.is_true(n >= 14, "only " .. n .. " Lua examples")
  end)

  for _, b in ipairs(blocks) do
    if b.lang == "lua" then
      it(("the example at line %d runs"):format(b.line), function()
        local path = os.tmpname()
        local f = assert(io.open(path, "w"))
        f:write(b.body, "\n")
        f:close()
        local out = sh(("LUA_PATH=%q LUA_CPATH=%q timeout 30 lua5.4 %s"):format(package.path, package.cpath, path))
        os.remove(path)
        assert.is_truthy(out:find("exit=0\n$"), out)
      end)
    end
  end

  if not os.getenv("TA_INSTALLED") then
    it("the C example compiles against the static library and runs", function()
      local c
      for _, b in ipairs(blocks) do if b.lang == "c" then c = b.body end end
      assert.is_not_nil(c)
      local build = os.getenv("TA_BUILD") or "build"
      local dir = sh("mktemp -d"):match("^(%S+)")
      local f = assert(io.open(dir .. "/host.c", "w"))
      f:write(c, "\n")
      f:close()
      local san = read(build .. "/libtrio_asyncio.a"):find("__asan_", 1, true) and "-fsanitize=address,undefined" or ""
      local out = sh(("cc -std=gnu11 -Wall -Werror -Icsrc/include $(pkg-config --cflags lua5.4 libuv) %s %s/host.c "
        .. "%s/libtrio_asyncio.a $(pkg-config --libs lua5.4 libuv openssl) -lm -lpthread -o %s/host && timeout 30 %s/host")
        :format(san, dir, build, dir, dir))
      os.execute("rm -rf " .. dir)
      assert.is_truthy(out:find("guest run ended:\ttrue\tdone", 1, true), out)
      assert.is_truthy(out:find("exit=0\n$"), out)
    end)
  end
end)
