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
# Also: 400 failed non-blocking connects (refused, and black-holed then closed
# at once) leave no descriptor behind in mw-pvm or mw-ins (issue 10 item 6);
# an app that shut its side and exited while the peer stays silent leaves an
# orphaned FIN_WAIT2 in the INS that is gone after ins.fin_timeout_ms.
source "$(dirname "$0")/lib.sh"
MW_INS_CONF="fin_timeout_ms = 2000;" mw_appliance_up
PROBE=$MW_BUILD_DIR/tests/integration/sock_probe
[ -x "$PROBE" ] || mw_fail "sock_probe is not built ($PROBE)"

ip -n "$NS_INS" addr add fd00:231::2/64 dev "$(mw_veth i)" nodad
ip -n "$NS_CLI" addr add fd00:231::1/64 dev "$(mw_veth c)" nodad
ip -n "$NS_INS" route add 10.231.99.0/24 via "$CLI_IP"
[ "$(in_cli cat /proc/sys/net/ipv4/ip_forward)" = 0 ] || mw_fail "cli forwards: the drop route would not drop"
export PROBE_PEER_NS=$NS_CLI PROBE_SELF4=$INS_IP PROBE_PEER4=$CLI_IP PROBE_SELF6=fd00:231::2 \
	PROBE_PEER6=fd00:231::1 PROBE_DROP4=10.231.99.1

CASES="connect refused timeout nbconnect connect_wait reset addrinuse accept_nb flags ipv6 reuseport fork exec threads dup shutdown udp_unix"
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

# --- failed connects free everything ---------------------------------------------
nfds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }
PVM_FDS=$(nfds "$(mw_pid pvm)")
INS_FDS=$(nfds "$(mw_pid ins1)")
PROBE_PORT=20000 timeout 60 env LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm.sock" \
	"$PROBE" churn >"$MW_TMP/churn.out" 2>&1 || mw_fail "churn: $(cat "$MW_TMP/churn.out")"
mw_wait_for "[ \$(nfds $(mw_pid pvm)) -le $PVM_FDS ] && [ \$(nfds $(mw_pid ins1)) -le $INS_FDS ]" 20 ||
	mw_fail "400 failed connects left fds: mw-pvm $PVM_FDS -> $(nfds "$(mw_pid pvm)"), mw-ins $INS_FDS -> $(nfds "$(mw_pid ins1)")"
mw_log "400 failed connects: mw-pvm $PVM_FDS fds, mw-ins $INS_FDS fds, as before"

# --- an orphaned half-closed connection is freed after fin_timeout_ms ------------
PROBE_PORT=20000 timeout 60 env LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm.sock" \
	"$PROBE" orphan >"$MW_TMP/orphan.out" 2>&1 || mw_fail "orphan: $(cat "$MW_TMP/orphan.out")"
OPORT=$(sed -n 's/^orphan local \([0-9]*\) peer.*/\1/p' "$MW_TMP/orphan.out")
OPEER=$(sed -n 's/^orphan local .* peer \([0-9]*\)/\1/p' "$MW_TMP/orphan.out")
[ -n "$OPORT" ] && [ -n "$OPEER" ] || mw_fail "orphan: $(cat "$MW_TMP/orphan.out")"
orphan_ins() { in_ins ss -Htn "sport = :$OPORT" | grep -q .; }
T0=$(date +%s%N)
mw_wait_for "! orphan_ins" 15 || mw_fail "the orphaned connection (port $OPORT) is still in the INS: $(in_ins ss -Htn "sport = :$OPORT")"
T1=$(date +%s%N)
in_cli ss -Htn "dport = :$OPORT" | grep -q . || mw_fail "the silent peer's end of $OPORT is gone: nothing was orphaned"
kill "$OPEER" 2>/dev/null || true
[ $(( (T1 - T0) / 1000000 )) -ge 1000 ] || mw_fail "the orphan went after $(( (T1 - T0) / 1000000 )) ms: no FIN_WAIT2 at all?"
mw_log "orphaned FIN_WAIT2 freed $(( (T1 - T0) / 1000000 )) ms after the app exited (fin_timeout_ms 2000)"

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
