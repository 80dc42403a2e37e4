#!/usr/bin/env bash
# run.sh DIR: runs the C host test programs of spec/host/ built with
# ThreadSanitizer in DIR (make tsan builds them in build-tsan/host-tests),
# each with the arguments the suite gives it, plus the stress tests
# stress_close (8 threads posting while states open and close) and
# multi_state (4 threads, one lua_State each).  Prints each program's
# status, then every distinct race once (its first report); exits 1 if a
# race was reported or a program failed.
#
#   TSAN_ROUNDS   rounds of stress_close (default 100) and multi_state (20)
set -u
export LC_ALL=C
dir=$(cd "${1:?usage: run.sh DIR}" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${TSAN_ROUNDS:-100}
tmp=$(mktemp -d /tmp/ta-tsan-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# program and arguments, one run per line (as spec/embed_spec.lua runs them)
runs=(
  "threads loop" "threads step"
  "close loop trio" "close loop ta" "close step trio" "close step ta"
  "use_loop" "step" "guest"
  "sigint_threads ignore ABAB" "sigint_threads handler ABBA"
  "stress_close $rounds" "multi_state $((rounds / 5 > 0 ? rounds / 5 : 1))"
  "preload trio asyncio trio_asyncio trio.errors trio.sync asyncio.sync asyncio.queues"
)

export TSAN_OPTIONS="halt_on_error=0:exitcode=66:report_signal_unsafe=0${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
failed=0 races=0
for r in "${runs[@]}"; do
  read -r prog args <<<"$r"
  exe="$dir/$prog"
  [ -x "$exe" ] || { echo "tsan: $exe is missing (make tsan builds it)"; failed=$((failed + 1)); continue; }
  log="$tmp/$(tr ' ' '_' <<<"$r").log"
  # shellcheck disable=SC2086  # args is a word list
  (cd "$tmp" && LUA_PATH='/nonexistent/?.lua' LUA_CPATH='/nonexistent/?.so' LUA_INIT= \
     timeout -k 5 300 "$exe" $args >"$log.out" 2>"$log")
  rc=$?
  # Some kernels map memory where TSan cannot work with ASLR on: retry
  # without address randomization.
  if grep -q "unexpected memory mapping\|FATAL: ThreadSanitizer" "$log"; then
    (cd "$tmp" && LUA_PATH='/nonexistent/?.lua' LUA_CPATH='/nonexistent/?.so' LUA_INIT= \
       timeout -k 5 300 setarch "$(uname -m)" -R "$exe" $args >"$log.out" 2>"$log")
    rc=$?
  fi
  n=$(grep -c "WARNING: ThreadSanitizer" "$log")
  status=ok
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then status="TIMEOUT"
  elif grep -q "^FAIL" "$log.out"; then status="FAILED CHECK: $(grep -m1 '^FAIL' "$log.out")"
  elif [ "$rc" != 0 ] && [ "$rc" != 66 ]; then status="exit $rc"
  fi
  printf '%-45s %-10s %d race report(s)\n' "$r" "$status" "$n"
  [ "$status" != ok ] && failed=$((failed + 1))
  races=$((races + n))
done

if [ "$races" -gt 0 ]; then
  echo
  echo "Distinct races (by the pair of locations), first report of each:"
  cat "$tmp"/*.log | awk '
    /^WARNING: ThreadSanitizer/ { inrep = 1; rep = $0 "\n"; locs = ""; nloc = 0; next }
    inrep && /^SUMMARY:/ { rep = rep $0 "\n"; if (!(locs in seen)) { seen[locs] = 1; printf "%s\n", rep } inrep = 0; next }
    inrep {
      rep = rep $0 "\n"
      if ($0 ~ /^    #0 /) { sub(/ \(.*/, "", $0); sub(/^    #0 [^ ]+ /, "", $0); locs = locs " | " $0 }
    }' | grep -vE '^    #([4-9]|[1-9][0-9]+) '
fi
echo "tsan: ${#runs[@]} runs, $failed failed, $races race report(s)"
[ "$failed" = 0 ] && [ "$races" = 0 ]
