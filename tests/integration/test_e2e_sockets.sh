#!/usr/bin/env bash
# test_e2e_sockets.sh - socket semantics under the shim, case by case, against the kernel's
#
# tests/integration/sock_probe.c asserts one behaviour per case and prints PASS
# or FAIL lines. Each case runs twice: without the shim inside the INS's
# namespace (the reference: the kernel itself, same addresses) and under the
# shim in the root namespace (its TCP stack is the INS's). Both must pass.
# Peers run in the cli namespace. The INS namespace gets IPv6 addresses
# (fd00:231::2, cli fd00:231::1) and a route to 10.231.99.0/24 via cli, which
# does not forward: SYNs there vanish, so a connect times out (ETIMEDOUT,
# bounded by TCP_USER_TIMEOUT). Then: UDP and AF_UNIX untouched even with
# mw-pvm unreachable; fail closed with one stderr line; MW_SHIM_FAILOPEN=1; and
# fail closed again once mw-pvm has stopped.
source "$(dirname "$0")/lib.sh"
mw_appliance_up
PROBE=$MW_BUILD_DIR/tests/integration/sock_probe
[ -x "$PROBE" ] || mw_fail "sock_probe is not built ($PROBE)"

ip -n "$NS_INS" addr add fd00:231::2/64 dev "$(mw_veth i)" nodad
ip -n "$NS_CLI" addr add fd00:231::1/64 dev "$(mw_veth c)" nodad
ip -n "$NS_INS" route add 10.231.99.0/24 via "$CLI_IP"
[ "$(in_cli cat /proc/sys/net/ipv4/ip_forward)" = 0 ] || mw_fail "cli forwards: the drop route would not drop"
export PROBE_PEER_NS=$NS_CLI PROBE_SELF4=$INS_IP PROBE_PEER4=$CLI_IP PROBE_SELF6=fd00:231::2 \
	PROBE_PEER6=fd00:231::1 PROBE_DROP4=10.231.99.1

CASES="connect refused timeout addrinuse accept_nb flags ipv6 reuseport fork exec threads dup shutdown udp_unix"
failed=()
for c in $CASES; do
	PROBE_PORT=21000 in_ins timeout 60 "$PROBE" "$c" >"$MW_TMP/ref-$c.out" 2>&1 ||
		failed+=("reference:$c")
	# The shim goes into the probe only (not timeout): a sanitizer build's shim
	# needs a sanitized program.
	PROBE_PORT=20000 timeout 60 env LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm.sock" \
		"$PROBE" "$c" >"$MW_TMP/shim-$c.out" 2>&1 ||
		failed+=("shim:$c")
	grep -q "^PASS $c$" "$MW_TMP/shim-$c.out" || failed+=("shim:$c(no PASS line)")
	mw_log "$c: reference $(grep -c '^FAIL' "$MW_TMP/ref-$c.out") failure(s), shim $(grep -c '^FAIL' "$MW_TMP/shim-$c.out") failure(s)"
done
if [ ${#failed[@]} -gt 0 ]; then
	for c in $CASES; do
		{ grep -h "^FAIL" "$MW_TMP/ref-$c.out" || true; } | sed "s/^/reference: /" >&2
		{ grep -hv "^PASS" "$MW_TMP/shim-$c.out" || true; } | sed "s/^/shim: /" >&2
	done
	mw_fail "cases failed: ${failed[*]}"
fi

# --- untouched and fail closed/open: mw-pvm unreachable -------------------------
NOWHERE=$MW_TMP/nowhere.sock
env LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$NOWHERE" "$PROBE" udp_unix >"$MW_TMP/udp.out" 2>"$MW_TMP/udp.err" ||
	mw_fail "UDP/AF_UNIX with mw-pvm unreachable: $(cat "$MW_TMP/udp.out" "$MW_TMP/udp.err")"
[ ! -s "$MW_TMP/udp.err" ] || mw_fail "the shim spoke for UDP/AF_UNIX: $(cat "$MW_TMP/udp.err")"

want="mwshim: cannot reach mw-pvm at $NOWHERE: No such file or directory (set MW_SHIM_FAILOPEN=1 to bypass protection)"
env LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$NOWHERE" "$PROBE" failclosed >"$MW_TMP/fc.out" 2>"$MW_TMP/fc.err" ||
	mw_fail "fail closed: $(cat "$MW_TMP/fc.out")"
[ "$(cat "$MW_TMP/fc.err")" = "$want" ] || mw_fail "fail closed stderr: '$(cat "$MW_TMP/fc.err")', want one line '$want'"

env LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$NOWHERE" MW_SHIM_FAILOPEN=1 "$PROBE" failopen \
	>"$MW_TMP/fo.out" 2>"$MW_TMP/fo.err" || mw_fail "fail open: $(cat "$MW_TMP/fo.out" "$MW_TMP/fo.err")"
[ ! -s "$MW_TMP/fo.err" ] || mw_fail "fail open printed: $(cat "$MW_TMP/fo.err")"
mw_log "UDP/AF_UNIX untouched, fail closed and fail open OK"

mw_stop pvm
shimmed "$PROBE" failclosed >"$MW_TMP/fc2.out" 2>"$MW_TMP/fc2.err" ||
	mw_fail "fail closed with mw-pvm stopped: $(cat "$MW_TMP/fc2.out")"
[ "$(grep -c '^mwshim: cannot reach mw-pvm at ' "$MW_TMP/fc2.err")" = 1 ] && [ "$(wc -l <"$MW_TMP/fc2.err")" = 1 ] ||
	mw_fail "fail closed with mw-pvm stopped, stderr: $(cat "$MW_TMP/fc2.err")"
mw_log "fail closed with mw-pvm stopped OK"
