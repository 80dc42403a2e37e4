-- Ported from Trio's src/trio/_tests/test_path.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Translation: str(path) is tostring(path); `async with await
-- path.open()` is a `<close>` variable; isinstance(x, trio.Path) is a
-- check of the metatable's __name.  Lua has no pathlib, so the pairs of
-- the parametrized tests that mix in pathlib.Path are left out and the
-- sync side of a comparison is the shell's `test`; a string stands in
-- for Python's str.  Each test uses a temp dir of its own (the `path`
-- fixture is <tmp>/test).
--
-- Ported: test_forward_methods_without_rewrap, test_path_nonpath,
-- test_open_file_can_open_path.
-- Adapted: test_instantiate_posix (trio.Path() is a trio.Path for ".";
-- there is no PosixPath class), test_open_is_async_context_manager (a
-- `<close>` variable), test_magic (tostring; bytes() has no counterpart,
-- Lua strings are bytes), test_cmp_magic (== and ~= only, trio.Path
-- pairs only: a Path has no ordering, which raises the usual Lua compare
-- error), test_div_magic (the trio.Path/trio.Path, trio.Path/string and
-- string/trio.Path pairs), test_compare_async_stat_methods (is_dir and
-- is_file of "." against `test -d` and `test -f`),
-- test_invalid_name_not_wrapped (an unknown field is nil, where Python
-- raises AttributeError), test_path_wraps_path (an absolute Path made
-- from the temp dir stands for path.absolute(): Path(p) and
-- p:joinpath(absolute) both give it), test_iterdir (the names are the
-- last component of tostring(entry): a Path has no `name`).
-- Dropped: test_instantiate_windows (Windows); test_hash_magic (Lua has
-- no hashing of values: a table key is its identity); test_repr (Lua has
-- one tostring, which gives str's form, DESIGN.md §4.4);
-- test_async_method_signature and test_wrapping_without_docstrings
-- (Python introspection and private internals: __name__, __qualname__,
-- __doc__, trio._path's wrappers); test_forwarded_properties (`name`),
-- test_async_methods_rewrap (absolute, resolve),
-- test_forward_methods_rewrap (with_name, with_suffix),
-- test_forward_properties_rewrap (parent), test_globmethods (glob,
-- rglob), test_as_uri and test_classmethods (home, cwd): these pathlib
-- methods are not in our API (DESIGN.md §4.4, docs/SEMANTICS.md "Files").
local trio = require "trio"
local H = require "conformance.trio_helpers"

local P = "_tests/test_path.py::"

local tmp = require "conformance.temp_dir"(before_each, after_each)
local dir, path

before_each(function()
  dir = tmp.path
  path = trio.Path(dir .. "/test")
end)

local function class_name(x)
  local mt = getmetatable(x)
  return mt ~= nil and mt.__name or type(x)
end

local function shell_test(flag, p)
  return os.execute(("test %s '%s'"):format(flag, p)) == true
end

describe("Trio test_path.py", function()
  it(P .. "test_instantiate_posix (adapted: trio.Path() is a trio.Path for '.')", function()
    local p = trio.Path()
    assert.equal("trio.Path", class_name(p))
    assert.equal(".", tostring(p))
  end)

  it(P .. "test_open_is_async_context_manager (adapted: a <close> variable)", function()
    local seen
    H.run(function()
      do
        local f <close> = path:open("w")
        assert.equal("trio.AsyncFile", class_name(f))
        assert.is_false(f.closed)
        seen = f
      end
      assert.is_true(seen.closed)
    end)
  end)

  it(P .. "test_magic (adapted: tostring; no bytes())", function()
    local p = trio.Path("test")
    assert.equal("test", tostring(p))
    assert.equal("test.txt", p .. ".txt")
  end)

  it(P .. "test_cmp_magic[trio.Path-trio.Path] (adapted: == and ~= only)", function()
    local a, b = trio.Path(""), trio.Path("")
    assert.is_true(a == b)
    assert.is_false(a ~= b)

    a, b = trio.Path("a"), trio.Path("b")
    assert.is_false(a == b)
    assert.is_true(a ~= b)
    -- no ordering: comparing raises instead of answering wrongly
    H.raises(H.msg("attempt to compare"), function() return a < b end)

    assert.is_false(a == nil)
    assert.is_false(b == nil)
    -- a Path is not equal to its string, as in Python
    assert.is_false(a == "a")
  end)

  it(P .. "test_div_magic (adapted: Path/Path, Path/string, string/Path)", function()
    local pairs_ = {
      { trio.Path("a"), trio.Path("b") },
      { trio.Path("a"), "b" },
      { "a", trio.Path("b") },
    }
    for _, pair in ipairs(pairs_) do
      local result = pair[1] / pair[2]
      assert.equal("trio.Path", class_name(result))
      assert.equal("a/b", tostring(result))
    end
  end)

  for _, method_name in ipairs { "is_dir", "is_file" } do
    it(P .. "test_compare_async_stat_methods[" .. method_name .. "] (adapted: against the shell's test)", function()
      local flag = method_name == "is_dir" and "-d" or "-f"
      local expected = shell_test(flag, ".")
      local got = H.run(function() return trio.Path(".")[method_name](trio.Path(".")) end)
      assert.equal(expected, got)
    end)
  end

  it(P .. "test_invalid_name_not_wrapped (adapted: an unknown field is nil)", function()
    assert.is_nil(path.invalid_fake_attr)
  end)

  it(P .. "test_forward_methods_without_rewrap", function()
    local joined = path:joinpath("totally-unique-path")
    assert.truthy(tostring(joined):find("totally-unique-path", 1, true))
    assert.equal("trio.Path", class_name(joined))
  end)

  for _, meth in ipairs { "Path", "joinpath" } do
    it(P .. "test_path_wraps_path[" .. meth .. "] (adapted: an absolute temp-dir Path stands for absolute())", function()
      local wrapped = trio.Path(dir):joinpath("test")
      assert.equal("/", tostring(wrapped):sub(1, 1))
      local result
      if meth == "Path" then
        result = trio.Path(wrapped)
      else
        result = path:joinpath(wrapped)
      end
      assert.is_true(wrapped == result)
    end)
  end

  it(P .. "test_path_nonpath", function()
    H.raises(H.msg("bad argument #1 to 'Path'"), trio.Path, 1)
  end)

  it(P .. "test_open_file_can_open_path", function()
    H.run(function()
      local f <close> = trio.open_file(path, "w")
      assert.equal(tostring(path), f.name)
    end)
  end)

  it(P .. "test_iterdir (adapted: names from tostring)", function()
    H.run(function()
      local foo, bar = path / "foo", path / "bar.txt"
      path:mkdir()
      foo:mkdir()
      bar:write_bytes("")

      local entries = {}
      for _, entry in ipairs(path:iterdir()) do
        assert.equal("trio.Path", class_name(entry))
        entries[tostring(entry):match("[^/]+$")] = true
      end
      assert.same({ "bar.txt", "foo" }, H.keys(entries))
    end)
  end)
end)
