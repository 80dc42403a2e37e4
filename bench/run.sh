#!/usr/bin/env bash
# bench/run.sh: the benchmark workloads of DESIGN.md section 7 on this project,
# optionally side by side with the peers of ../shared/bench/peers.
#
# Each row runs its program REPS times (separate processes) and reports the
# median and min..max of the `RESULT <value> <unit>` line it prints.  W7 rows
# measure memory instead: (max RSS of a run with N=100000 - max RSS of a run
# with N=0) / N, from /usr/bin/time -f %M, MEM_REPS pairs.  The repetitions
# are interleaved: each round runs every selected row once, in a new random
# order, so that drift of the machine (other load, thermal state) spreads
# over all rows instead of biasing a ratio.
#
# usage: bench/run.sh [--compare] [--compare-python] [REGEX]
#   (no option)       our workloads only                      (make bench)
#   --compare         also the peers' Lua programs (cqueues, luv) and the raw
#                     coroutine and C floors, for the workloads we have a
#                     program for, then a table of ratios ours/peer and one
#                     of ours/best floor and ours/best peer   (make bench-compare)
#   --compare-python  also the peers' Python programs (trio, asyncio, uvloop;
#                     trio-asyncio if $TRIO_ASYNCIO_DIR exists), only when
#                     `$PY -c 'import trio'` works; implies --compare
#   REGEX             only rows whose "W system" matches, e.g. 'W1|W2' or cqueues
# env: REPS=5  MEM_REPS=$REPS  TIMEOUT=300 (s per process)  LUA=lua5.4
#      PIN=0: the CPU every single-threaded row runs on (taskset), so that all
#      rows meet the same core: on a shared 2-core VM one core was seen 35%
#      slower than the other for minutes at a time, which random placement
#      turns into spread; PIN= (empty) lets the OS place them.  W8 (child
#      processes) and W9 (worker threads) are never pinned.
#      PY=/usr/bin/python3  BUILD=build  PEERS=../shared/bench/peers (from the
#      repo root)  TRIO_ASYNCIO_DIR=/tmp/peers/trio-asyncio
#
# To add a workload, add one line to ROWS below.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

REPS=${REPS:-5}
MEM_REPS=${MEM_REPS:-$REPS}
MEM_N=100000
TIMEOUT=${TIMEOUT:-300}
LUA=${LUA:-lua5.4}
PY=${PY:-/usr/bin/python3}
PBIN=${PEER_BIN:-/tmp/peers/bin}   # the peers' C floors (setup.sh builds them)
BUILD=${BUILD:-build}
PIN=${PIN-0}
command -v taskset >/dev/null || PIN=""
PEERS=${PEERS:-../shared/bench/peers}
TA=${TRIO_ASYNCIO_DIR:-/tmp/peers/trio-asyncio}
export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$BUILD/?.so;;"

COMPARE=0 PYTHON=0 ONLY=""
for a in "$@"; do
	case $a in
	--compare) COMPARE=1 ;;
	--compare-python) COMPARE=1 PYTHON=1 ;;
	-h | --help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "bench/run.sh: unknown option $a (try --help)" >&2; exit 2 ;;
	*) ONLY=$a ;;
	esac
done

L=$PEERS/lua P=$PEERS/py
TAPY="env PYTHONPATH=$TA:$PEERS/compat $PY" # trio-asyncio >= 0.13 + sniffio shim

# The rows, in display order.  Fields: group | W | system | needs | how | command
#   group: ours, floor (raw Lua, no library), lua (Lua peer), py (Python peer);
#          only "ours" runs without --compare, "py" needs --compare-python
#   needs: space-separated lua:MODULE py:MODULE path:FILE, or - (the program
#          file itself is always checked); a row whose needs are missing is
#          skipped with a note
#   how:   run (median of RESULT) or mem (bytes/task; the command gets N appended),
#          memN (the same with N given, bytes/connection)
ROWS=(
	"floor|F0|raw Lua 5.4 resume/yield|lua:luv|run|$LUA $L/floor_coroutines.lua"

	"ours|W1|trio|-|run|$LUA bench/w1_spawn.lua"
	"ours|W1|asyncio|-|run|$LUA bench/w1_spawn_asyncio.lua plain"
	"ours|W6b|W1 asyncio on open_loop|-|run|$LUA bench/w1_spawn_asyncio.lua bridged"
	"lua|W1|cqueues|lua:cqueues|run|$LUA $L/w1_spawn_cqueues.lua"
	"floor|W1|raw Lua coroutines (floor)|lua:luv|run|$LUA $L/w1_spawn_rawco.lua"
	"py|W1|python trio|py:trio|run|$PY $P/w1_spawn.py trio"
	"py|W1|python asyncio|-|run|$PY $P/w1_spawn.py asyncio"
	"py|W1|python uvloop|py:uvloop|run|$PY $P/w1_spawn.py uvloop"
	"py|W1|python trio-asyncio loop|py:trio path:$TA/trio_asyncio|run|$TAPY $P/w1_spawn.py trio_asyncio"

	"ours|W2|trio|-|run|$LUA bench/w2_pingpong.lua"
	"ours|W2|asyncio|-|run|$LUA bench/w2_pingpong_asyncio.lua"
	"lua|W2|cqueues|lua:cqueues|run|$LUA $L/w2_pingpong_cqueues.lua"
	"floor|W2|raw coroutine ping-pong (floor)|lua:luv|run|$LUA bench/w2_pingpong_rawco.lua"
	"floor|W2|raw coroutine ping-pong, Trio's four switches (floor)|lua:luv|run|$LUA bench/w2_pingpong_rawco.lua 200000 checkpoints"
	"py|W2|python trio|py:trio|run|$PY $P/w2_pingpong.py trio"
	"py|W2|python asyncio|-|run|$PY $P/w2_pingpong.py asyncio"
	"py|W2|python uvloop|py:uvloop|run|$PY $P/w2_pingpong.py uvloop"
	"py|W2|python trio-asyncio loop|py:trio path:$TA/trio_asyncio|run|$TAPY $P/w2_pingpong.py trio_asyncio"
	"ours|W2|trio, poll every batch|-|run|env TA_POLL_INTERVAL_US=0 $LUA bench/w2_pingpong.lua"
	"ours|W2|asyncio, poll every batch|-|run|env TA_POLL_INTERVAL_US=0 $LUA bench/w2_pingpong_asyncio.lua"

	"ours|W2k|trio, 1,000 pairs|-|run|$LUA bench/w2_pairs.lua trio 1000"
	"ours|W2k|asyncio, 1,000 pairs|-|run|$LUA bench/w2_pairs.lua asyncio 1000"
	"lua|W2k|cqueues, 1,000 pairs|lua:cqueues|run|$LUA bench/w2_pairs_cqueues.lua 1000"
	"ours|W2t|trio, 10,000 pairs|-|run|$LUA bench/w2_pairs.lua trio 10000"
	"ours|W2t|asyncio, 10,000 pairs|-|run|$LUA bench/w2_pairs.lua asyncio 10000"
	"lua|W2t|cqueues, 10,000 pairs|lua:cqueues|run|$LUA bench/w2_pairs_cqueues.lua 10000"
	"ours|W2h|trio, 100,000 pairs|-|run|$LUA bench/w2_pairs.lua trio 100000"
	"ours|W2h|asyncio, 100,000 pairs|-|run|$LUA bench/w2_pairs.lua asyncio 100000"
	"lua|W2h|cqueues, 100,000 pairs|lua:cqueues|run|$LUA bench/w2_pairs_cqueues.lua 100000"

	"ours|W3|asyncio|-|run|$LUA bench/w3_callbacks.lua plain"
	"ours|W6b|W3 on open_loop|-|run|$LUA bench/w3_callbacks.lua bridged"
	"ours|W3|asyncio, poll every batch|-|run|env TA_POLL_INTERVAL_US=0 $LUA bench/w3_callbacks.lua plain"
	"floor|W3|raw libuv C idle (floor)|path:$BUILD/peers/w3_uv|run|$BUILD/peers/w3_uv idle"
	"lua|W3|luv timer(0) (chained)|lua:luv|run|$LUA $L/w3_callbacks_luv.lua timer"
	"lua|W3|luv idle (chained)|lua:luv|run|$LUA $L/w3_callbacks_luv.lua idle"
	"py|W3|python asyncio|-|run|$PY $P/w3_callbacks.py asyncio"
	"py|W3|python uvloop|py:uvloop|run|$PY $P/w3_callbacks.py uvloop"

	"ours|W4|trio|-|run|$LUA bench/w4_timers.lua"
	"floor|W4|raw libuv C (floor)|path:$BUILD/peers/w4_uv|run|$BUILD/peers/w4_uv"
	"floor|W4|raw Lua coroutines (floor)|lua:luv|run|$LUA bench/w4_timers_rawco.lua"
	"lua|W4|cqueues|lua:cqueues|run|$LUA $L/w4_timers_cqueues.lua"
	"lua|W4|luv (whole ms)|lua:luv|run|$LUA $L/w4_timers_luv.lua"
	"py|W4|python trio|py:trio|run|$PY $P/w4_timers.py trio"
	"py|W4|python asyncio|-|run|$PY $P/w4_timers.py asyncio"
	"py|W4|python uvloop|py:uvloop|run|$PY $P/w4_timers.py uvloop"
	"py|W4|python trio-asyncio loop|py:trio path:$TA/trio_asyncio|run|$TAPY $P/w4_timers.py trio_asyncio"
	"ours|W4M|trio, 1M timers|-|run|$LUA bench/w4_timers.lua 1000000"
	"floor|W4M|raw libuv C, 1M timers (floor)|path:$BUILD/peers/w4_uv|run|$BUILD/peers/w4_uv 1000000"
	"floor|W4M|raw Lua coroutines, 1M (floor)|lua:luv|run|$LUA bench/w4_timers_rawco.lua 1000000"
	"lua|W4M|cqueues, 1M timers|lua:cqueues|run|$LUA $L/w4_timers_cqueues.lua 1000000"
	# W4M again with glibc's malloc asking for transparent huge pages (glibc
	# 2.35+; the kernel's THP mode "madvise"): at 1M sleeping tasks (1.2 GB)
	# a VM's 4 KB page faults were most of W4M's time (ARCHITECTURE.md,
	# "Timers"); here every row gets the same setting
	"ours|W4H|trio, 1M timers|-|run|env GLIBC_TUNABLES=glibc.malloc.hugetlb=1 $LUA bench/w4_timers.lua 1000000"
	"floor|W4H|raw libuv C, 1M timers (floor)|path:$BUILD/peers/w4_uv|run|env GLIBC_TUNABLES=glibc.malloc.hugetlb=1 $BUILD/peers/w4_uv 1000000"
	"floor|W4H|raw Lua coroutines, 1M (floor)|lua:luv|run|env GLIBC_TUNABLES=glibc.malloc.hugetlb=1 $LUA bench/w4_timers_rawco.lua 1000000"
	"lua|W4H|cqueues, 1M timers|lua:cqueues|run|env GLIBC_TUNABLES=glibc.malloc.hugetlb=1 $LUA $L/w4_timers_cqueues.lua 1000000"

	"ours|W5|trio streams|-|run|$LUA bench/w5_echo.lua trio"
	"ours|W5|asyncio streams|-|run|$LUA bench/w5_echo.lua asyncio streams"
	"ours|W5|asyncio protocols|-|run|$LUA bench/w5_echo.lua asyncio protocols"
	"ours|W5|asyncio streams on open_loop|-|run|$LUA bench/w5_echo.lua bridged streams"
	"ours|W5|asyncio protocols on open_loop|-|run|$LUA bench/w5_echo.lua bridged protocols"
	"floor|W5|raw libuv C (floor)|path:$PBIN/w5_uv|run|$PBIN/w5_uv"
	"lua|W5|luv (callbacks)|lua:luv|run|$LUA $L/w5_echo_luv.lua"
	"lua|W5|cqueues sockets|lua:cqueues|run|$LUA $L/w5_echo_cqueues.lua"
	"py|W5|python trio streams|py:trio|run|$PY $P/w5_echo.py trio"
	"py|W5|python asyncio streams|-|run|$PY $P/w5_echo.py asyncio streams"
	"py|W5|python asyncio protocols|-|run|$PY $P/w5_echo.py asyncio protocols"
	"py|W5|python uvloop streams|py:uvloop|run|$PY $P/w5_echo.py uvloop streams"
	"py|W5|python uvloop protocols|py:uvloop|run|$PY $P/w5_echo.py uvloop protocols"
	"py|W5|python trio-asyncio streams|py:trio path:$TA/trio_asyncio|run|$TAPY $P/w5_echo.py trio_asyncio streams"
	"ours|W5m|trio, 9k idle connections|-|mem9000|$LUA bench/w5_idle_memory.lua trio"
	"ours|W5m|asyncio, 9k idle connections|-|mem9000|$LUA bench/w5_idle_memory.lua asyncio"
	"py|W5m|python uvloop, 9k idle connections|py:uvloop|mem9000|$PY bench/w5_idle_memory.py uvloop"

	"ours|W10|trio SSLStream|-|run|$LUA bench/w10_tls.lua trio"
	"ours|W10|asyncio streams ssl=|-|run|$LUA bench/w10_tls.lua asyncio"
	"ours|W10|asyncio ssl= on open_loop|-|run|$LUA bench/w10_tls.lua bridged"
	"py|W10|python trio SSLStream|py:trio|run|$PY $P/w10_tls.py trio"
	"py|W10|python asyncio ssl=|-|run|$PY $P/w10_tls.py asyncio"
	"py|W10|python uvloop ssl=|py:uvloop|run|$PY $P/w10_tls.py uvloop"
	"ours|W10h|trio SSLStream|-|run|$LUA bench/w10_tls.lua trio 500 1"
	"ours|W10h|asyncio streams ssl=|-|run|$LUA bench/w10_tls.lua asyncio 500 1"
	"py|W10h|python trio SSLStream|py:trio|run|$PY $P/w10_tls.py trio 500 1"
	"py|W10h|python asyncio ssl=|-|run|$PY $P/w10_tls.py asyncio 500 1"
	"py|W10h|python uvloop ssl=|py:uvloop|run|$PY $P/w10_tls.py uvloop 500 1"

	"ours|W6|aio_as_trio|-|run|$LUA bench/w6_cross.lua aio_as_trio"
	"ours|W6|trio_as_aio|-|run|$LUA bench/w6_cross.lua trio_as_aio"
	"py|W6|python trio-asyncio aio_as_trio|py:trio path:$TA/trio_asyncio|run|$TAPY $P/w6_cross.py aio_as_trio"
	"py|W6|python trio-asyncio trio_as_aio|py:trio path:$TA/trio_asyncio|run|$TAPY $P/w6_cross.py trio_as_aio"

	"ours|W11|asyncio, 100k callbacks queued|-|run|$LUA bench/w11_io_latency.lua asyncio"
	"ours|W11|trio, 100k tasks runnable|-|run|$LUA bench/w11_io_latency.lua trio"

	"ours|W12|trio nested nurseries|-|run|$LUA bench/w12_nesting.lua trio"
	"ours|W12|asyncio nested Tasks|-|run|$LUA bench/w12_nesting.lua asyncio"

	"ours|W8|trio run_process|-|run|$LUA bench/w8_processes.lua trio"
	"ours|W8|asyncio subprocess|-|run|$LUA bench/w8_processes.lua asyncio"
	"floor|W8|raw libuv C (floor)|path:$BUILD/peers/w8_uv|run|$BUILD/peers/w8_uv"
	"py|W8|python trio|py:trio|run|$PY $P/w8_processes.py trio"
	"py|W8|python asyncio|-|run|$PY $P/w8_processes.py asyncio"
	"py|W8|python uvloop|py:uvloop|run|$PY $P/w8_processes.py uvloop"
	"py|W8|python trio-asyncio loop|py:trio path:$TA/trio_asyncio|run|$TAPY $P/w8_processes.py trio_asyncio"

	"ours|W9|trio to_thread|-|run|$LUA bench/w9_to_thread.lua trio"
	"ours|W9|asyncio to_thread|-|run|$LUA bench/w9_to_thread.lua asyncio"
	"py|W9|python trio|py:trio|run|$PY $P/w9_to_thread.py trio"
	"py|W9|python asyncio|-|run|$PY $P/w9_to_thread.py asyncio"
	"py|W9|python uvloop|py:uvloop|run|$PY $P/w9_to_thread.py uvloop"
	"py|W9|python trio-asyncio loop|py:trio path:$TA/trio_asyncio|run|$TAPY $P/w9_to_thread.py trio_asyncio"

	"ours|W7|trio|-|mem|$LUA bench/w7_memory.lua trio"
	"ours|W7|asyncio|-|mem|$LUA bench/w7_memory.lua asyncio"
	"lua|W7|cqueues|lua:cqueues|mem|$LUA $L/w7_memory_cqueues.lua"
	"lua|W7|luv timers (no tasks)|lua:luv|mem|$LUA $L/w7_memory_luv.lua"
	"floor|W7|raw Lua coroutines (floor)|-|mem|$LUA $L/w7_memory_rawco.lua"
	"py|W7|python trio|py:trio|mem|$PY $P/w7_memory.py trio"
	"py|W7|python asyncio|-|mem|$PY $P/w7_memory.py asyncio"
	"py|W7|python uvloop|py:uvloop|mem|$PY $P/w7_memory.py uvloop"
)

NOTES=()
note() { NOTES+=("$*"); }
median() { awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
num() { awk '{ if ($1 >= 100 || $1 <= -100) printf "%.0f\n", $1; else printf "%.4g\n", $1 }'; }
row() { printf '| %-3s | %-32s | %12s | %-14s | %-21s | %s |\n' "$1" "$2" "$3" "$4" "$5" "$6"; }

# have NEEDS: are the modules and files a row needs here?  (cached per token)
declare -A HAVE=()
have() {
	local t ok
	for t in $1; do
		[[ $t == - ]] && continue
		if [[ -z ${HAVE[$t]:-} ]]; then
			case $t in
			lua:*) $LUA -e "require '${t#lua:}'" >/dev/null 2>&1 && ok=1 || ok=0 ;;
			py:*) $PY -c "import ${t#py:}" >/dev/null 2>&1 && ok=1 || ok=0 ;;
			path:*) [[ -e ${t#path:} ]] && ok=1 || ok=0 ;;
			esac
			HAVE[$t]=$ok
		fi
		[[ ${HAVE[$t]} == 1 ]] || { MISSING=$t; return 1; }
	done
}

# script CMD...: the first argument that names a .lua/.py file (the program).
script() { local a; for a in "$@"; do [[ $a == *.lua || $a == *.py ]] && { echo "$a"; return; }; done; }

declare -A VALUE=() UNIT=()  # "W|system" -> median, unit (for the ratio table)

# Per selected row (by its index in ROWS): the values measured so far, the
# unit, how its command is shown, and whether it failed.
declare -A VALS=() RUNIT=() SHOWN=() FAILED=()

# shown CMD...: how a command is shown (without the pinning).
shown() { local c="$*"; echo "\`${c#"taskset -c $PIN "}\`"; }

# bench_once I CMD...: one run of row I's CMD, which prints "RESULT value unit".
bench_once() {
	local i=$1 out
	shift
	if ! out=$(timeout "$TIMEOUT" "$@" 2>&1 | grep '^RESULT'); then
		FAILED[$i]=1 SHOWN[$i]=$(shown "$@")
		return 0
	fi
	VALS[$i]+=" $(awk '{print $2}' <<<"$out")"
	RUNIT[$i]=$(cut -d' ' -f3- <<<"$out") SHOWN[$i]=$(shown "$@")
}

# mem_once I CMD...: bytes per task = (maxRSS(CMD N) - maxRSS(CMD 0)) / N
# (N is MEM_N, or the number after "mem" in the row's how: mem10000).
mem_once() {
	local i=$1 f base full MEM_N=${MEM_COUNT:-$MEM_N}
	shift
	f=$(mktemp)
	if ! timeout "$TIMEOUT" /usr/bin/time -f %M -o "$f" "$@" 0 >/dev/null 2>&1 ||
		! base=$(tail -1 "$f") ||
		! timeout "$TIMEOUT" /usr/bin/time -f %M -o "$f" "$@" "$MEM_N" >/dev/null 2>&1; then
		FAILED[$i]=1 SHOWN[$i]="$(shown "$@" N)"
		rm -f "$f"
		return 0
	fi
	full=$(tail -1 "$f")
	rm -f "$f"
	VALS[$i]+=" $((((full - base) * 1024) / MEM_N))"
	RUNIT[$i]="bytes/${MEM_UNIT:-task}" SHOWN[$i]="$(shown "$@" N) (base ${base} KiB)"
}

# run_once I: one repetition of row I.
run_once() {
	local w sys how cmd argv
	IFS='|' read -r _ w sys _ how cmd <<<"${ROWS[$1]}"
	read -ra argv <<<"$cmd"
	[[ -n $PIN && $w != W8 && $w != W9 ]] && argv=(taskset -c "$PIN" "${argv[@]}")
	case $how in
	mem) mem_once "$1" "${argv[@]}" ;;
	mem*) MEM_COUNT=${how#mem} MEM_UNIT=connection mem_once "$1" "${argv[@]}" ;;
	*) bench_once "$1" "${argv[@]}" ;;
	esac
}

# reps_of I: how many repetitions row I gets (MEM_REPS for memory rows).
reps_of() {
	local how
	IFS='|' read -r _ _ _ _ how _ <<<"${ROWS[$1]}"
	[[ $how == mem* ]] && echo "$MEM_REPS" || echo "$REPS"
}

# record W SYSTEM UNIT CMD VALUES...: print the row, keep the median.
record() {
	local w=$1 sys=$2 unit=$3 cmd=$4 sorted med
	shift 4
	sorted=$(printf '%s\n' "$@" | sort -g)
	med=$(median <<<"$sorted")
	VALUE["$w|$sys"]=$med UNIT["$w|$sys"]=$unit
	row "$w" "$sys" "$(num <<<"$med")" "$unit" \
		"$(head -1 <<<"$sorted" | num)..$(tail -1 <<<"$sorted" | num)" "$cmd"
}

# ---------------------------------------------------------------------------
if [[ ! -f $BUILD/trio_asyncio/core.so ]]; then
	echo "bench/run.sh: $BUILD/trio_asyncio/core.so is missing: run make first" >&2
	exit 1
fi
[[ -x /usr/bin/time ]] || note "W7 rows need /usr/bin/time (apt-get install time)"
if ((COMPARE)) && [[ ! -d $PEERS ]]; then
	note "peers not found at $PEERS (set PEERS=): peer rows skipped"
	COMPARE=0 PYTHON=0
fi
# The C floors of ../shared/bench/peers/c, built into $BUILD/peers.
for prog in w3_uv w4_uv w8_uv; do
	if ((COMPARE)) && [[ -f $PEERS/c/$prog.c && ! -x $BUILD/peers/$prog ]]; then
		mkdir -p "$BUILD/peers"
		cc -O2 -o "$BUILD/peers/$prog" "$PEERS/c/$prog.c" -luv 2>/dev/null ||
			note "C floor: $PEERS/c/$prog.c did not build"
	fi
done
if ((PYTHON)) && ! $PY -c 'import trio' >/dev/null 2>&1; then
	note "$PY cannot import trio (apt-get install python3-trio python3-uvloop): Python rows skipped"
	PYTHON=0
fi

echo "# trio-asyncio for Lua benchmarks, $(date -u '+%F %H:%M')Z, $(nproc) cores, REPS=$REPS (median, min..max)${PIN:+, pinned to CPU $PIN (not W8, W9)}"
echo "#   $(git describe --always --dirty 2>/dev/null || echo 'no git'), $($LUA -v 2>&1)," \
	"libuv $(pkg-config --modversion libuv 2>/dev/null || echo '?')," \
	"$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p')"
row W system median unit "min..max" command
row --- --- --- --- --- ---
# Peers run only for the workloads we have a program for (and F0, the floor).
declare -A OURS_W=([F0]=1)
for r in "${ROWS[@]}"; do
	IFS='|' read -r group w _ _ _ cmd <<<"$r"
	read -ra argv <<<"$cmd"
	[[ $group == ours && -f $(script "${argv[@]}") ]] && OURS_W[$w]=1
done
SELECTED=()
for i in "${!ROWS[@]}"; do
	IFS='|' read -r group w sys needs how cmd <<<"${ROWS[$i]}"
	[[ -z $ONLY || "$w $sys" =~ $ONLY ]] || continue
	case $group in
	ours) ;;
	py) ((PYTHON)) && [[ -n ${OURS_W[$w]:-} ]] || continue ;;
	*) ((COMPARE)) && [[ -n ${OURS_W[$w]:-} ]] || continue ;;
	esac
	read -ra argv <<<"$cmd"
	prog=$(script "${argv[@]}")
	if [[ -n $prog && ! -f $prog ]]; then
		note "$w $sys skipped: $prog not found"
		continue
	fi
	if ! have "$needs"; then
		note "$w $sys skipped: ${MISSING/:/ } not available"
		continue
	fi
	SELECTED+=("$i")
done
# Interleaved rounds: every row once per round, in a new random order.
ROUNDS=$((REPS > MEM_REPS ? REPS : MEM_REPS))
for ((round = 1; round <= ROUNDS; round++)); do
	for i in $(printf '%s\n' "${SELECTED[@]}" | shuf); do
		[[ -z ${FAILED[$i]:-} ]] || continue
		(($(wc -w <<<"${VALS[$i]:-}") < $(reps_of "$i"))) || continue
		run_once "$i"
	done
done
for i in "${SELECTED[@]}"; do
	IFS='|' read -r _ w sys _ <<<"${ROWS[$i]}"
	if [[ -n ${FAILED[$i]:-} ]]; then
		row "$w" "$sys" FAILED - - "${SHOWN[$i]}"
		note "$w $sys failed: rerun ${SHOWN[$i]} to see why"
	else
		# shellcheck disable=SC2086 # the values are words
		record "$w" "$sys" "${RUNIT[$i]}" "${SHOWN[$i]}" ${VALS[$i]}
	fi
done

# Ratios: every one of our rows against every other measured row of its W.
if ((COMPARE)); then
	echo
	echo "Ratios ours/peer, per workload: for rates (/s) higher is better (> 1: ours faster);"
	echo "for W4 overhead (s), W7 bytes/task and W11 latency (ms) lower is better (< 1: ours better)."
	echo
	printf '| %-3s | %-30s | %-32s | %15s | %-13s |\n' W ours peer "ours/peer" "better when"
	printf '| %-3s | %-30s | %-32s | %15s | %-13s |\n' --- --- --- --- ---
	for r in "${ROWS[@]}"; do
		IFS='|' read -r group w sys _ <<<"$r"
		[[ $group == ours && -n ${VALUE["$w|$sys"]:-} ]] || continue
		ours=${VALUE["$w|$sys"]} unit=${UNIT["$w|$sys"]}
		[[ $unit == */s ]] && better="higher" || better="lower"
		for p in "${ROWS[@]}"; do
			IFS='|' read -r pgroup pw psys _ <<<"$p"
			[[ $pgroup != ours && $pw == "$w" && -n ${VALUE["$pw|$psys"]:-} ]] || continue
			ratio=$(awk -v a="$ours" -v b="${VALUE["$pw|$psys"]}" \
				'BEGIN { if (a <= 0 || b <= 0) print "n/a (value <= 0)"; else printf "%.3g\n", a / b }')
			printf '| %-3s | %-30s | %-32s | %15s | %-13s |\n' "$w" "$sys" "$psys" "$ratio" "$better"
		done
	done

	# Summary: each of our rows against the best floor (raw Lua or C, no
	# library) and the best peer (Lua or Python library) of its W.
	echo
	echo "Against the floor and the best peer (best: highest rate, lowest time or bytes):"
	echo
	printf '| %-3s | %-30s | %-32s | %8s | %-32s | %8s |\n' W ours floor "ours/fl" "best peer" "ours/bp"
	printf '| %-3s | %-30s | %-32s | %8s | %-32s | %8s |\n' --- --- --- --- --- ---
	for r in "${ROWS[@]}"; do
		IFS='|' read -r group w sys _ <<<"$r"
		[[ $group == ours && -n ${VALUE["$w|$sys"]:-} ]] || continue
		ours=${VALUE["$w|$sys"]}
		[[ ${UNIT["$w|$sys"]} == */s ]] && sign=1 || sign=-1
		cols=()
		for kind in floor peer; do
			best="" bestv=""
			for p in "${ROWS[@]}"; do
				IFS='|' read -r pgroup pw psys _ <<<"$p"
				[[ $pw == "$w" && -n ${VALUE["$pw|$psys"]:-} ]] || continue
				case $kind/$pgroup in floor/floor | peer/lua | peer/py) ;; *) continue ;; esac
				v=${VALUE["$pw|$psys"]}
				if [[ -z $best ]] || awk -v a="$v" -v b="$bestv" -v s="$sign" 'BEGIN { exit !(s * a > s * b) }'; then
					best=$psys bestv=$v
				fi
			done
			if [[ -z $best ]]; then
				cols+=("-" "-")
			else
				cols+=("$best" "$(awk -v a="$ours" -v b="$bestv" \
					'BEGIN { if (a <= 0 || b <= 0) print "n/a"; else printf "%.3g\n", a / b }')")
			fi
		done
		[[ ${cols[0]} == - && ${cols[2]} == - ]] && continue # nothing to compare with
		printf '| %-3s | %-30s | %-32s | %8s | %-32s | %8s |\n' "$w" "$sys" "${cols[@]}"
	done
fi

if ((${#NOTES[@]})); then
	echo
	printf -- '- %s\n' "${NOTES[@]}"
fi
exit 0
