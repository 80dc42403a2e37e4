-- README.md: its links resolve inside the repository, the quick start is two
-- commands, `make env` lets a script run from anywhere, and the static-link
-- line for C hosts works against an installed copy.
local support = require "support"
local assert_has = support.assert_has

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

local function exists(path)
  return os.execute(("test -e %q"):format(path)) == true
end

-- GitHub-style heading anchors of a markdown file.
local function anchors(path)
  local set = {}
  for heading in read(path):gmatch("\n#+ ([^\n]+)") do
    local slug = heading:lower():gsub("[^%w%s_-]", ""):gsub("%s", "-")
    set[slug] = true
  end
  return set
end

describe("README.md", function()
  for _, doc in ipairs { "README.md", "docs/API.md", "examples/host/README.md" } do
    it(doc .. ": every link resolves to a file of the repository (and its anchor)", function()
      local dir = doc:match("^(.*)/") or "."
      local n = 0
      for target in read(doc):gmatch("%]%(([^)%s]+)%)") do
        n = n + 1
        assert.is_nil(target:match("^%a+:"), doc .. " links outside the repository: " .. target)
        local file, anchor = target:match("^([^#]*)#?(.*)$")
        local path = file == "" and doc or (dir .. "/" .. file)
        assert.is_nil(path:match("^%.%./") or path:match("/%.%./%.%./"), doc .. " leaves the repository: " .. target)
        assert.is_true(exists(path), doc .. " links to a missing " .. path)
        if anchor ~= "" then
          assert.is_true(anchors(path)[anchor] == true, doc .. " links to a missing anchor " .. target)
        end
      end
      if doc == "README.md" then assert.is_true(n >= 10, "only " .. n .. " links") end
    end)
  end

  it("starts with a two-command quick start: the demo and the tests", function()
    local quick = read("README.md"):match("## Quick start[^\n]*\n(.-)\n## ")
    local cmds = {}
    for cmd in quick:gmatch("\n    (make [%w-]+)") do cmds[#cmds + 1] = cmd end
    assert.same({ "make demo", "make test" }, cmds)
    assert_has(quick, "N passed, N failed")
  end)

  if not os.getenv("TA_INSTALLED") then
    it("make env lets lua5.4 run a script from another directory", function()
      -- the build under test (build-asan under make sanitize)
      local build = os.getenv("TA_BUILD") or "build"
      local out = sh([[eval "$(make -s env BUILD=]] .. build
        .. [[)" && cd /tmp && lua5.4 -e 'print(require("trio").run(function() return "ran" end))']])
      assert_has(out, "ran\nexit=0")
    end)
  end

  if not os.getenv("TA_INSTALLED") and (os.getenv("TA_BUILD") or "build") == "build" then
    it("the static-link line builds a host that needs no library of ours at run time", function()
      local readme = read("README.md")
      local line = readme:match("# static library[^\n]*\n(    cc .-%-o host)\n")
      assert.is_not_nil(line, "no static-link line in the README")
      line = line:gsub("\\\n", " "):gsub("host%.c", "examples/host/host_mainloop.c"):gsub("%-o host$", "-o $tmp/host")
      local out = sh(("tmp=$(mktemp -d) && make -s install PREFIX=$tmp >/dev/null && "
        .. "export PKG_CONFIG_PATH=$tmp/lib/pkgconfig && %s && ldd $tmp/host | grep -c trio_asyncio; "
        .. "timeout 30 $tmp/host | tail -n 1; rm -rf $tmp"):format(line))
      assert_has(out, "0\n[host] 60 frames, Lua run finished\nexit=0")
    end)
  end
end)
