--- trio_asyncio.version: the release of trio-asyncio, and the Lua-version
-- guard that trio, asyncio and trio_asyncio run before they load the C core.
--
-- This file must stay plain Lua 5.1 (no goto, no <close>, no integer
-- division): it is what a Lua 5.1/5.2/5.3 or LuaJIT interpreter reads
-- before it would fail on the C module with a linker error.
local VERSION = "0.1.0-dev"

if _VERSION ~= "Lua 5.4" then
  local this = _VERSION
  local jit = rawget(_G, "jit")
  if type(jit) == "table" and jit.version then this = jit.version .. " (" .. _VERSION .. ")" end
  error("trio-asyncio needs Lua 5.4, but this interpreter is " .. this
    .. ": run your script with lua5.4 (and install the rock with luarocks --lua-version 5.4)", 0)
end

return { _VERSION = VERSION }
