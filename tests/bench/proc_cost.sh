# shellcheck shell=bash
# proc_cost.sh - sourced by the benchmarks: CPU time and context switches of groups of
# processes over a run, per request.
#
# cost_snap GROUP=PID[,PID...] ...: one line per group, "GROUP cpu_ns vol nonvol", summed
#   over every thread of every PID (/proc/PID/task/*/schedstat and status); a last line
#   "all cpu_ns 0 0" is the host's busy time (every CPU, /proc/stat, all but idle/iowait).
# cost_diff BEFORE AFTER N: per group, "GROUP us_per_N vol_per_N nonvol_per_N".
cost_snap() {
	local g name pids p t ns v nv
	for g in "$@"; do
		name=${g%%=*}
		pids=${g#*=}
		ns=0 v=0 nv=0
		for p in ${pids//,/ }; do
			for t in /proc/"$p"/task/*; do
				[ -r "$t/schedstat" ] || continue
				read -r a _ <"$t/schedstat" 2>/dev/null || continue
				ns=$((ns + a))
				while read -r k val; do
					case $k in
					voluntary_ctxt_switches:) v=$((v + val)) ;;
					nonvoluntary_ctxt_switches:) nv=$((nv + val)) ;;
					esac
				done <"$t/status"
			done
		done
		echo "$name $ns $v $nv"
	done
	awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" {
		printf "all %.0f 0 0\n", ($2 + $3 + $4 + $7 + $8 + $9) * 1e9 / hz }' /proc/stat
}
cost_diff() {
	awk -v n="$3" 'NR == FNR {ns[$1] = $2; v[$1] = $3; nv[$1] = $4; next}
		($1 in ns) && n > 0 {printf "%s %.2f %.3f %.3f\n", $1, ($2 - ns[$1]) / 1e3 / n,
			($3 - v[$1]) / n, ($4 - nv[$1]) / n}' "$1" "$2"
}
