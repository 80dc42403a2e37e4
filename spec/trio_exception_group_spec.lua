-- ExceptionGroup:split, :subgroup and :contains: Python's semantics for
-- split and subgroup (the condition is tried on the group first, nested
-- groups keep their shape, an empty part is nil), plus contains.
local trio = require "trio"
local support = require "support"
local errof, assert_has = support.errof, support.assert_has

local EG, TooSlow, Closed = trio.ExceptionGroup, trio.TooSlowError, trio.ClosedResourceError

-- outer: [TooSlow "a", inner: [Closed "b", TooSlow "c"], "plain"]
local function sample()
  local a, b, c = TooSlow("a"), Closed("b"), TooSlow("c")
  local inner = EG("inner", { b, c }, { "tb-b", "tb-c" })
  inner.cause = "why"
  local outer = EG("outer", { a, inner, "plain" }, { "tb-a", "tb-inner", "tb-plain" })
  return outer, a, b, c, inner
end

describe("ExceptionGroup:split", function()
  it("splits by class, keeping nested groups in shape with their messages and tracebacks", function()
    local eg, a, b, c = sample()
    local match, rest = eg:split(TooSlow)
    assert.is_true(EG:is(match))
    assert.equal("outer", match.message)
    assert.equal(2, #match.exceptions)
    assert.equal(a, match.exceptions[1])
    assert.same({ "tb-a", "tb-inner" }, match.tracebacks)
    local sub = match.exceptions[2]
    assert.is_true(EG:is(sub))
    assert.equal("inner", sub.message)
    assert.equal("why", sub.cause)
    assert.same({ c }, sub.exceptions)
    assert.same({ "tb-c" }, sub.tracebacks)

    assert.equal("outer", rest.message)
    assert.equal(2, #rest.exceptions)
    assert.same({ b }, rest.exceptions[1].exceptions)
    assert.equal("inner", rest.exceptions[1].message)
    assert.equal("plain", rest.exceptions[2])
    assert.same({ "tb-inner", "tb-plain" }, rest.tracebacks)
    -- the original is untouched
    assert.equal(3, #eg.exceptions)
    assert.equal(2, #eg.exceptions[2].exceptions)
  end)

  it("gives nil for an empty part; the rest is a new group with every error", function()
    local eg = sample()
    local match, rest = eg:split(trio.WouldBlock)
    assert.is_nil(match)
    assert.are_not.equal(eg, rest)
    assert.equal(3, #rest.exceptions)
    assert.equal(2, #rest.exceptions[2].exceptions)

    match, rest = eg:split(function() return true end)
    assert.equal(eg, match)
    assert.is_nil(rest)
  end)

  it("tries the condition on the group itself first", function()
    local eg = sample()
    local match, rest = eg:split(EG)
    assert.equal(eg, match)
    assert.is_nil(rest)
    local inner_only = function(e) return EG:is(e) and e.message == "inner" end
    match, rest = eg:split(inner_only)
    assert.same({ eg.exceptions[2] }, match.exceptions)   -- the nested group itself, not a copy
    assert.equal(2, #rest.exceptions)
  end)

  it("accepts a list of classes and a predicate that sees plain strings", function()
    local eg = sample()
    local match, rest = eg:split({ Closed, TooSlow })
    assert.equal(2, #match.exceptions)
    assert.same({ "plain" }, rest.exceptions)
    match, rest = eg:split(function(e) return type(e) == "string" end)
    assert.same({ "plain" }, match.exceptions)
    assert.equal(2, #rest.exceptions)
  end)

  it("refuses a condition that is neither a class, a list of classes nor a function", function()
    local eg = sample()
    assert_has(errof(eg.split, eg, 42),
      "bad argument #1 to 'split' (error class, list of classes or function expected, got number)")
    assert_has(errof(eg.subgroup, eg, { "x" }), "bad argument #1 to 'subgroup' (item 1 of the list is not an error class)")
  end)
end)

describe("ExceptionGroup:subgroup", function()
  it("keeps only the matching errors, nested groups in shape", function()
    local eg, _, b = sample()
    local sub = eg:subgroup(Closed)
    assert.equal("outer", sub.message)
    assert.equal(1, #sub.exceptions)
    assert.equal("inner", sub.exceptions[1].message)
    assert.same({ b }, sub.exceptions[1].exceptions)
    assert.same({ "tb-inner" }, sub.tracebacks)
    assert.same({ "tb-b" }, sub.exceptions[1].tracebacks)
  end)

  it("returns the group itself when everything matches, nil when nothing does", function()
    local eg = sample()
    local any = function() return true end
    assert.equal(eg, eg:subgroup(any))
    assert.equal(eg, eg:subgroup(EG))
    assert.is_nil(eg:subgroup(trio.EndOfChannel))
    local two = EG("two", { TooSlow("x"), TooSlow("y") })
    assert.equal(two, two:subgroup(TooSlow))
  end)
end)

describe("ExceptionGroup:contains", function()
  it("finds an error class or a predicate match anywhere in the tree", function()
    local eg = sample()
    assert.is_true(eg:contains(Closed))             -- only inside the nested group
    assert.is_true(eg:contains(function(e) return e == "plain" end))
    assert.is_true(eg:contains(EG))
    assert.is_false(eg:contains(trio.BusyResourceError))
    assert.is_false(EG("empty", {}):contains(TooSlow))
  end)

  it("picks one error class out of a real nursery's group", function()
    local ok, err = pcall(trio.run, function()
      trio.fail_after(5, trio.open_nursery, function(n)
        n:start_soon(function() error(Closed("closed here")) end)
        n:start_soon(function() error("plain failure", 0) end)
      end)
    end)
    assert.is_false(ok)
    assert.is_true(err:contains(Closed))
    local match, rest = err:split(Closed)
    assert.equal(1, #match.exceptions)
    assert.equal("closed here", match.exceptions[1].message)
    assert.same({ "plain failure" }, rest.exceptions)
    assert.equal(1, #rest.tracebacks)
    assert_has(rest.tracebacks[1], "trio_exception_group_spec.lua")
  end)
end)

describe("errors.split (the bridge's split of any error by a predicate)", function()
  local errors = require "trio.errors"
  local function is_slow(e) return TooSlow:is(e) end

  it("takes a lone error wholly into one part", function()
    local e = TooSlow("x")
    assert.same({ e }, { errors.split(e, is_slow) })
    local m, r = errors.split("plain", is_slow)
    assert.is_nil(m)
    assert.equal("plain", r)
  end)

  it("gives a group whose errors all fall in one part as itself, unchanged", function()
    local eg = sample()
    local m, r = errors.split(eg, function() return false end)
    assert.is_nil(m)
    assert.equal(eg, r)
    local all = EG("all", { TooSlow("a"), EG("in", { TooSlow("b") }) })
    m, r = errors.split(all, is_slow)
    assert.equal(all, m)
    assert.is_nil(r)
  end)

  it("splits a mixed group as eg:split does, a nested group wholly matching kept as itself", function()
    local eg, a, b, c, inner = sample()
    local only_c = EG("only c", { c })
    local outer = EG("outer", { a, inner, only_c }, { "tb-a", "tb-inner", "tb-c" })
    local m, r = errors.split(outer, is_slow)
    assert.equal("outer", m.message)
    assert.equal(a, m.exceptions[1])
    assert.same({ c }, m.exceptions[2].exceptions)
    assert.equal("why", m.exceptions[2].cause)
    assert.equal(only_c, m.exceptions[3])
    assert.same({ "tb-a", "tb-inner", "tb-c" }, m.tracebacks)
    assert.same({ b }, r.exceptions[1].exceptions)
    assert.equal(1, #r.exceptions)
    assert.equal(3, #eg.exceptions) -- the sample is untouched
  end)
end)
