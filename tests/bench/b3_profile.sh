#!/usr/bin/env bash
# b3_profile.sh - where B3's bulk MiB goes: per process, per MiB of a 256 MiB download
# through mwcomms (and direct nginx for reference): CPU time and context switches (perf
# stat), system calls and bytes per call (perf trace -s, a separate run: it slows every
# call), and with RECORD=1 the top symbols (perf record -g).
#
# Same topology as b3_bulk.sh (tests/bench/contenders.sh). Each figure is per MiB of
# one download of SIZE_MIB (default 256) over one connection.
# Usage: MW_BUILD_DIR=build SIZE_MIB=256 bash tests/bench/b3_profile.sh
# (RECORD=1 KEEP_PERF=FILE keeps perf.data; DIRECT=0 skips the direct nginx)
SIZE_MIB=${SIZE_MIB:-256}
source "$(dirname "$0")/contenders.sh"
mw_require_cmd perf
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$WWW/big.bin"
mw_spawn nginx-direct in_ins nginx -c "$(nginx_conf direct 8001)"
mw_spawn nginx-mw shimmed nginx -c "$(nginx_conf mw 8003)"
for p in 8001 8003; do
	mw_wait_for "in_cli curl -sf -o /dev/null --max-time 2 http://$INS_IP:$p/" 15 ||
		mw_fail "contender on port $p does not answer"
done
pvm=$(mw_pid pvm) ins=$(mw_pid ins1)
worker_of() { pgrep -P "$(cat "$MW_TMP/nginx-$1/nginx.pid")" | head -1; }
get() { in_cli curl -s -o /dev/null -w '%{speed_download}\n' "http://$INS_IP:$1/big.bin"; }

# profile CONTENDER PORT NAME=PID...: perf stat and perf trace around one download each
profile() {
	local c=$1 port=$2 out=$MW_TMP/prof.$1 np pids="" name pid sp
	shift 2
	for np in "$@"; do pids+="${pids:+,}${np#*=}"; done
	perf stat -e task-clock,context-switches --per-thread -x, -p "$pids" -o "$out.stat" &
	sp=$!
	sleep 0.5
	in_cli perf stat -e task-clock,context-switches -x, -o "$out.curl" \
		curl -s -o /dev/null -w '%{speed_download}\n' "http://$INS_IP:$port/big.bin" >"$out.speed"
	kill -INT "$sp"
	wait "$sp" || true
	echo "b3prof_${c}_mib_s: $(awk '{printf "%.0f", $1 / 1048576}' "$out.speed")"
	awk -F, -v n="$SIZE_MIB" -v who="${c}_curl" '
		$3 ~ /task-clock/ { printf "b3prof_%s_cpu_us_per_mib: %.1f\n", who, $1 * 1000 / n }
		$3 ~ /context-switches/ { printf "b3prof_%s_cswitch_per_mib: %.2f\n", who, $1 / n }' "$out.curl"
	perf trace -s -p "$pids" -o "$out.trace" >/dev/null 2>&1 &
	sp=$!
	sleep 1
	get "$port" >/dev/null
	kill -INT "$sp"
	wait "$sp" || true
	for np in "$@"; do
		name=${np%%=*} pid=${np#*=}
		awk -F, -v p="-$pid" -v n="$SIZE_MIB" -v who="${c}_$name" '
			index($1, p) && $1 ~ p "$" {
				if ($4 ~ /task-clock/) printf "b3prof_%s_cpu_us_per_mib: %.1f\n", who, $2 * 1000 / n
				else if ($4 ~ /context-switches/) printf "b3prof_%s_cswitch_per_mib: %.2f\n", who, $2 / n
			}' "$out.stat"
		awk -v p="($pid)" -v n="$SIZE_MIB" -v who="${c}_$name" '
			/events,/ { on = index($0, p) > 0; next }
			on && $2 ~ /^[0-9]+$/ && $1 !~ /^-/ && $1 != "syscall" {
				tot += $2
				if ($2 / n >= 0.05)
					printf "b3prof_%s_%s_per_mib: %.2f (%.1f us each, traced)\n", who, $1, $2 / n, $6 * 1000
			}
			END { printf "b3prof_%s_syscalls_per_mib: %.2f\n", who, tot / n }' "$out.trace"
	done
}
[ "${DIRECT:-1}" = 0 ] || profile direct 8001 nginx="$(worker_of direct)"
profile mwcomms 8003 nginx="$(worker_of mw)" pvm="$pvm" ins="$ins"
[ "${RECORD:-0}" = 1 ] || exit 0
perf record -F 5000 -g -p "$(worker_of mw),$pvm,$ins" -o "$MW_TMP/perf.data" >/dev/null 2>&1 &
sp=$!
sleep 1
get 8003 >/dev/null
kill -INT "$sp"
wait "$sp" || true
[ -z "${KEEP_PERF:-}" ] || cp "$MW_TMP/perf.data" "$KEEP_PERF" # for perf report -G by hand
perf report -i "$MW_TMP/perf.data" --no-children --sort comm,sym --stdio -g none \
	--percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60 >&2
