#!/usr/bin/env bash
# run.sh [--seeds N] [--from S] [--timeout SEC] [--jobs J] [--seed S --show]:
# the seeded fuzzer (make fuzz).  Each seed's program (tests/fuzz/gen.lua)
# runs in its own lua5.4 process under a time limit, against the build in
# $TA_BUILD (default build-asan, preloading libasan when that build has
# ASan).  Prints every failing seed with its class (CRASH, HANG, VIOLATION,
# ERROR) and a one-line reproducer; exits 1 if any seed failed.
#
#   --seeds N      how many seeds (default 100)
#   --from S       first seed (default 1)
#   --timeout SEC  per seed (default 20)
#   --jobs J       seeds run at once (default 2)
#   --seed S       run one seed and show its output (with --show, print
#                  the program too)
set -u
export LC_ALL=C
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2

seeds=100 from=1 limit=20 jobs=2 one= show=0
while [ $# -gt 0 ]; do
  case $1 in
    --seeds) seeds=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    --timeout) limit=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --seed) one=$2; shift 2 ;;
    --show) show=1; shift ;;
    *) echo "usage: run.sh [--seeds N] [--from S] [--timeout SEC] [--jobs J] [--seed S [--show]]" >&2; exit 2 ;;
  esac
done

build=${TA_BUILD:-build-asan}
[ -f "$build/trio_asyncio/core.so" ] || { echo "run.sh: $build/trio_asyncio/core.so is missing (make fuzz builds it)" >&2; exit 2; }
lua=$(command -v lua5.4) || { echo "run.sh: lua5.4 not found" >&2; exit 2; }

# An ASan build of the core needs libasan loaded first into the interpreter.
runner=("$lua")
if grep -q "__asan_init" "$build/trio_asyncio/core.so" 2>/dev/null; then
  loader=$(readelf -l "$lua" | sed -n 's/.*interpreter: \(.*\)]$/\1/p')
  runner=("$loader" --preload "$(gcc -print-file-name=libasan.so)" "$lua")
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:exitcode=86${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0"
fi
export LUA_PATH="$root/tests/fuzz/?.lua;$root/lua/?.lua;$root/lua/?/init.lua;;"
export LUA_CPATH="$root/$build/?.so;;"
export LUA_INIT=

tmp=$(mktemp -d /tmp/ta-fuzz-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# run_seed SEED: runs one program; prints "ok SEED" or "FAIL SEED CLASS: reason".
run_seed() {
  local s=$1 prog="$tmp/seed$1.lua" out="$tmp/seed$1.out" rc reason cls
  "$lua" tests/fuzz/gen.lua "$s" >"$prog" || { echo "FAIL $s GENERATOR: gen.lua failed"; return; }
  timeout -k 5 "$limit" "${runner[@]}" "$prog" >"$out" 2>&1
  rc=$?
  if [ $rc = 0 ] && grep -q '^FUZZ OK' "$out"; then echo "ok $s"; return; fi
  reason=$(grep -m1 -E 'VIOLATION|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error|PANIC|lua5.4:|FUZZ FAIL' "$out" \
           | sed 's/^==[0-9]*==//; s/^VIOLATION: //' | cut -c1-220)
  case $rc in
    124|137) cls=HANG; reason="no result within ${limit}s${reason:+; $reason}" ;;
    3) cls=VIOLATION ;;
    86) cls=LEAK ;;
    1) cls=ERROR ;;
    *) if grep -q 'LeakSanitizer' "$out"; then cls=LEAK; else cls="CRASH (exit $rc)"; fi ;;
  esac
  echo "FAIL $s $cls: ${reason:-$(tail -n 1 "$out" | cut -c1-200)}"
}

if [ -n "$one" ]; then
  "$lua" tests/fuzz/gen.lua "$one" >"$tmp/prog.lua"
  [ "$show" = 1 ] && { cat -n "$tmp/prog.lua"; echo "----"; }
  timeout -k 5 "$limit" "${runner[@]}" "$tmp/prog.lua"
  rc=$?
  echo "exit status $rc"
  exit $rc
fi

export -f run_seed
export tmp limit lua
export runner_str="${runner[*]}"
results=$(seq "$from" $((from + seeds - 1)) | xargs -P "$jobs" -I{} bash -c \
  'runner=($runner_str); '"$(declare -f run_seed)"'; run_seed {}')

failed=$(grep '^FAIL' <<<"$results" | sort -k2 -n)
nfail=$(grep -c '^FAIL' <<<"$results")
echo "fuzz: $seeds seeds from $from (timeout ${limit}s, build $build): $((seeds - nfail)) ok, $nfail failed"
if [ "$nfail" -gt 0 ]; then
  while read -r _ s rest; do
    echo "  seed $s $rest"
    echo "    reproduce: bash tests/fuzz/run.sh --seed $s --show    (TA_BUILD=$build)"
  done <<<"$failed"
  exit 1
fi
