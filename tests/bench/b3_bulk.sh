#!/usr/bin/env bash
# b3_bulk.sh - B3: one 256 MiB download over one connection, direct vs haproxy vs mwcomms
ROUNDS=${ROUNDS:-3}
source "$(dirname "$0")/contenders.sh"
head -c $((256 * 1024 * 1024)) /dev/urandom >"$WWW/big.bin"
start_contenders
for r in $(seq "$ROUNDS"); do
	for c in direct haproxy mwcomms; do
		in_cli curl -s -o /dev/null -w '%{speed_download}\n' "http://$INS_IP:$(port_of $c)/big.bin" |
			awk '{print $1 / 1048576}' >>"$MW_TMP/b3.$c"
	done
	paste -d' ' "$MW_TMP/b3.mwcomms" "$MW_TMP/b3.direct" | tail -1 | awk '{print $1 / $2}' >>"$MW_TMP/b3.ratio"
done
for c in direct haproxy mwcomms; do echo "b3_mib_s_$c: $(median <"$MW_TMP/b3.$c")"; done
echo "b3_mwcomms_over_direct: $(median <"$MW_TMP/b3.ratio")"
