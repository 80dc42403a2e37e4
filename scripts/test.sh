#!/usr/bin/env bash
# test.sh [spec files...]: run the busted specs (default: spec/*_spec.lua and
# the ported upstream tests, spec/conformance/*_spec.lua, and the example
# specs, examples/*_spec.lua) and end with one
# line "N passed, N failed"; exit non-zero if a test failed or none ran.
# Pending tests are listed with their reason ("feature missing: ...").
#
# Each file runs in its own busted process under `timeout`, so a deadlock or a
# crash costs one file (reported by name), not the whole suite.  busted's TAP
# output is parsed for the counts and the failure messages.
#
#   TA_BUILD         build directory holding trio_asyncio/core.so (build)
#   TA_INSTALLED     non-empty: test the installed rock (`luarocks test`): the
#                    modules come from LUA_PATH / LUA_CPATH, never lua/ or the
#                    build; specs that need the build tree are skipped
#   TA_TEST_TIMEOUT  seconds allowed per spec file (120)
#   TA_WRAP          command prefix for the interpreter, e.g. "valgrind -q ..."
#   TA_ENV           extra VAR=value words for the environment, e.g. ASAN_OPTIONS=...
#   TA_PRELOAD       libraries to preload into the Lua interpreter, e.g. the
#                    libasan.so that an ASan build of the core needs.  Unlike
#                    LD_PRELOAD it reaches only lua5.4 processes, also those a
#                    spec starts, and not cc, pkg-config..., which ASan would
#                    make abort on their own leaks.
set -u
export LC_ALL=C   # stable glob order and messages

root=$(cd "$(dirname "$0")/.." && pwd)
files=()
for f in "$@"; do   # arguments are relative to the caller's directory
  [ -f "$f" ] || { echo "test.sh: no such spec file: $f" >&2; exit 2; }
  files+=("$(realpath -s --relative-base="$root" "$f")")
done
cd "$root" || exit 2
if [ ${#files[@]} -eq 0 ]; then
  shopt -s nullglob
  files=(spec/*_spec.lua spec/conformance/*_spec.lua examples/*_spec.lua)
  shopt -u nullglob
fi

build=${TA_BUILD:-build}
paths=(--cpath="$build/?.so")
[ -n "${TA_INSTALLED:-}" ] && paths=()
build_only=" spec/embed_spec.lua "   # C hosts linked to build/libtrio_asyncio.a
limit=${TA_TEST_TIMEOUT:-120}
lua=$(command -v lua5.4) || { echo "test.sh: lua5.4 not found (run scripts/deps.sh)" >&2; exit 2; }

# TA_PRELOAD: a `lua5.4` first on PATH that starts the real one through the
# dynamic loader's --preload option (glibc 2.33+), so the libraries are
# loaded into that process only and the environment stays clean.
# lsan.supp holds the leaks that are not ours (the loader's).
if [ -n "${TA_PRELOAD:-}" ]; then
  shim=$(mktemp -d)
  trap 'rm -rf "$shim"' EXIT
  loader=$(readelf -l "$lua" | sed -n 's/.*interpreter: \(.*\)]$/\1/p')
  printf '#!/bin/sh\nexec %q --preload %q %q "$@"\n' "$loader" "$TA_PRELOAD" "$lua" >"$shim/lua5.4"
  chmod +x "$shim/lua5.4"
  export PATH="$shim:$PATH"
  export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
fi

# Reads busted's TAP output (started with -v, so every test announces itself
# as "# file @ line: name" before it runs).  Prints each failure with its
# message, then a last line "COUNTS passed failed skipped plan_seen last_test".
summarize() {
  awk '
    /^# .* @ [0-9]+: / { sub(/^# /, ""); last = $0; done = 0; showing = 0; next }
    /^ok [0-9]+ - # SKIP/ { skipped++; done = 1; showing = 0
                            reason = $0; sub(/^ok [0-9]+ - # SKIP /, "", reason)
                            name = last; sub(/^[^@]* @ [0-9]+: /, "", name)
                            if (index(reason, name) > 0) print "  pending: " reason
                            else print "  pending: " last " -- " reason
                            next }
    /^ok [0-9]+ /        { passed++;  done = 1; showing = 0; next }
    /^not ok [0-9]+ /    { failed++;  done = 1; showing = 1; shown = 0
                           print "  " $0; next }
    /^1\.\.[0-9]+$/      { plan = 1; showing = 0; next }
    showing && /^#/ && shown < 20 { print "      " $0; shown++ }
    END { printf "COUNTS %d %d %d %d %s\n", passed, failed, skipped, plan,
                 (done || last == "") ? "-" : last }
  '
}

total_passed=0 total_failed=0 total_skipped=0
for f in "${files[@]}"; do
  if [ -n "${TA_INSTALLED:-}" ] && [[ $build_only == *" $f "* ]]; then
    printf '%-40s    skipped: needs the build tree, not the installed rock\n' "$f"
    continue
  fi
  # busted 2.1.1's TAP output crashes on a spec that does not compile, losing
  # the message: check the syntax first.
  if ! err=$(luac5.4 -p "$f" 2>&1); then
    printf '%-40s    0 passed    1 failed\n  SYNTAX: %s\n' "$f" "$err"
    total_failed=$((total_failed + 1))
    continue
  fi
  # --ignore-lua: .busted names lua5.4 so that a plain `busted` re-executes
  # itself under 5.4; we already are 5.4, and a re-exec would escape TA_WRAP.
  # shellcheck disable=SC2086  # TA_ENV and TA_WRAP are word lists on purpose
  out=$(timeout -k 10 "$limit" env TA_BUILD="$build" ${TA_ENV:-} \
          ${TA_WRAP:-} lua5.4 /usr/bin/busted --ignore-lua \
          ${paths[@]+"${paths[@]}"} --helper=spec/spec_helper.lua -o TAP -v "$f" 2>&1)
  rc=$?
  report=$(summarize <<<"$out")
  read -r _ passed failed skipped plan last <<<"$(tail -n 1 <<<"$report")"
  failures=$(sed '$d' <<<"$report")

  # busted itself exits 0 or 1; anything else, or no closing "1..N" plan,
  # means the process died: a timeout, a crash, a sanitizer or valgrind error.
  problem=
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    problem="TIMEOUT: $f did not finish within ${limit}s"
    [ "$last" != - ] && problem+=" (stuck in: $last)"
  elif [ "$rc" -gt 1 ]; then
    problem="DIED: $f exited with status $rc (a crash, or a sanitizer or valgrind error)"
    [ "$last" != - ] && problem+=" during: $last"
  elif [ "$plan" = 0 ] || { [ "$rc" = 1 ] && [ "$failed" = 0 ]; }; then
    problem="ERROR: busted stopped before the end of $f (exit status $rc)"
    [ "$last" != - ] && problem+=" during: $last"
  fi

  printf '%-40s %4d passed %4d failed' "$f" "$passed" "$failed"
  [ "$skipped" -gt 0 ] && printf ' %4d skipped' "$skipped"
  echo
  [ -n "$failures" ] && echo "$failures"
  if [ -n "$problem" ]; then
    echo "  $problem"
    # What the process said outside the TAP stream (errors, sanitizer
    # reports): the tail is where the reason is.
    grep -Ev '^(ok |not ok |# |1\.\.)' <<<"$out" | tail -n 60 | sed 's/^/    /'
    failed=$((failed + 1))
  fi
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  total_skipped=$((total_skipped + skipped))
done

if [ "$total_skipped" -gt 0 ]; then
  echo "$total_passed passed, $total_failed failed, $total_skipped skipped"
else
  echo "$total_passed passed, $total_failed failed"
fi
[ "$total_failed" = 0 ] && [ "$total_passed" -gt 0 ]
