#!/usr/bin/env bash
# b3_bulk.sh - B3: 256 MiB downloads over one connection, direct vs haproxy vs mwcomms
# ROUNDS alternating rounds; in each, every contender serves REPEAT downloads (default 1)
# over one keep-alive connection and the round's figure is their mean: a single 256 MiB
# download lasts about 0.1 s, and REPEAT=8 smooths what one scheduling hiccup does to it.
ROUNDS=${ROUNDS:-3}
REPEAT=${REPEAT:-1}
source "$(dirname "$0")/contenders.sh"
head -c $((256 * 1024 * 1024)) /dev/urandom >"$WWW/big.bin"
start_contenders
for r in $(seq "$ROUNDS"); do
	for c in direct haproxy mwcomms; do
		u="http://$INS_IP:$(port_of $c)/big.bin"
		args=()
		for _ in $(seq "$REPEAT"); do args+=(-o /dev/null "$u"); done
		in_cli curl -s -w '%{speed_download}\n' "${args[@]}" |
			awk '{s += $1} END {print s / NR / 1048576}' >>"$MW_TMP/b3.$c"
	done
	paste -d' ' "$MW_TMP/b3.mwcomms" "$MW_TMP/b3.direct" | tail -1 | awk '{print $1 / $2}' >>"$MW_TMP/b3.ratio"
done
for c in direct haproxy mwcomms; do echo "b3_mib_s_$c: $(median <"$MW_TMP/b3.$c")"; done
echo "b3_ratios: $(tr '\n' ' ' <"$MW_TMP/b3.ratio")"
echo "b3_mwcomms_over_direct: $(median <"$MW_TMP/b3.ratio")"
