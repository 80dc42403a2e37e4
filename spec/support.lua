--- support.lua: small helpers shared by the specs (require "support").
local M = {}

--- Calls fn(...), which must fail; returns its error.
function M.errof(fn, ...)
  local ok, e = pcall(fn, ...)
  assert(not ok, "expected an error, but the call succeeded")
  return e
end

--- Asserts that tostring(s) contains sub (plain text).
function M.assert_has(s, sub)
  s = tostring(s)
  assert(s:find(sub, 1, true), ("expected %q to contain %q"):format(s, sub))
end

return M
