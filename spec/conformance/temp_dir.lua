--- temp_dir.lua: a fresh temp dir for each test of a spec:
--   local tmp = require "conformance.temp_dir"(before_each, after_each)
-- (busted's hooks live in the spec's environment, not in _G) gives a
-- table whose field `path` is the current test's dir; the dir is removed
-- with its contents after the test.
return function(before_each, after_each)
  local current = {}
  before_each(function()
    current.path = os.tmpname()
    os.remove(current.path)
    assert(os.execute("mkdir -p " .. current.path))
  end)
  after_each(function()
    assert(os.execute("rm -rf " .. current.path))
  end)
  return current
end
