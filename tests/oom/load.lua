-- oom scenario: loading the modules (the engine is created on the way) and
-- a first run.
trio, asyncio, ta = require 'trio', require 'asyncio', require 'trio_asyncio'
assert(trio.run(function() trio.sleep(0) return 1 end) == 1)
