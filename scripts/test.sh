#!/usr/bin/env bash
# test.sh [spec files...]: run each spec file in its own busted process
# (Lua 5.4) under a time limit, so a deadlock fails one file instead of
# hanging the suite; print the failures and a final "N passed, N failed".
#   TA_BUILD         build directory holding trio_asyncio/core.so (build)
#   TA_TEST_TIMEOUT  seconds per spec file (300)
#   TA_WRAP          command prefix for the interpreter (valgrind ...)
#   TA_ENV           extra VAR=value words for the environment (LD_PRELOAD=...)
set -u
cd "$(dirname "$0")/.." || exit 2
build=${TA_BUILD:-build}
limit=${TA_TEST_TIMEOUT:-300}
if [ $# -gt 0 ]; then files=("$@"); else files=(spec/*_spec.lua); fi

passed=0
failed=0
for f in "${files[@]}"; do
  # shellcheck disable=SC2086  # TA_ENV and TA_WRAP are word lists on purpose
  out=$(env TA_BUILD="$build" ${TA_ENV:-} timeout "$limit" ${TA_WRAP:-} lua5.4 /usr/bin/busted \
    --helper=spec/spec_helper.lua -m 'lua/?.lua;lua/?/init.lua;spec/?.lua' \
    --cpath "$build/?.so" -o TAP "$f" 2>&1)
  rc=$?
  ok=$(grep -c '^ok ' <<<"$out")
  bad=$(grep -c '^not ok' <<<"$out")
  if [ "$rc" = 124 ]; then
    echo "TIMEOUT: $f did not finish within ${limit}s"
    bad=$((bad + 1))
  elif [ "$rc" != 0 ] && [ "$bad" = 0 ]; then
    echo "CRASH: $f exited with status $rc"
    tail -n 20 <<<"$out"
    bad=$((bad + 1))
  fi
  if [ "$bad" != 0 ]; then
    grep -A 12 '^not ok' <<<"$out" | grep -v '^ok ' | head -n 200
  fi
  printf '%-40s %4d passed %4d failed\n' "$f" "$ok" "$bad"
  passed=$((passed + ok))
  failed=$((failed + bad))
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
