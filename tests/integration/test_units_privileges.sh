#!/usr/bin/env bash
# test_units_privileges.sh - the daemons do their job with only the capabilities their units grant
#
# The units claim mw-pvm needs no capability and mw-ins only CAP_NET_BIND_SERVICE
# and CAP_NET_ADMIN (units/*.service.in). This test takes the
# CapabilityBoundingSet= of each *installed* unit, runs the installed daemons
# under exactly that bounding set with no_new_privs (setpriv, as systemd would),
# checks the capabilities the kernel reports for them, and serves one HTTP
# request end to end through a shimmed server that listens on port 80 (a bind
# below 1024, done by mw-ins in its namespace). Then an mw-ins without
# CAP_NET_BIND_SERVICE is shown to fail that bind, so the grant is needed.
source "$(dirname "$0")/lib.sh"

mw_require_root
mw_require_cmd cmake setpriv ip curl
PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
SHIM=$(mw_need_bin libmwshim.so)
mw_need_bin mw-pvm >/dev/null
mw_need_bin mw-ins >/dev/null

prefix=$MW_TMP/prefix
cmake --install "$MW_BUILD_DIR" --prefix "$prefix" >"$MW_TMP/install.log" 2>&1 ||
	mw_fail "cmake --install failed: $(tail -5 "$MW_TMP/install.log")"
unitdir=$prefix/lib/systemd/system

# bounding UNIT: the unit's CapabilityBoundingSet= as a setpriv --bounding-set value.
bounding() {
	local line caps c out=-all
	line=$(grep '^CapabilityBoundingSet=' "$unitdir/$1") || mw_fail "$1: no CapabilityBoundingSet="
	caps=${line#CapabilityBoundingSet=}
	for c in $caps; do
		c=${c#CAP_}
		out+=",+${c,,}"
	done
	echo "$out"
}
# cap_eff PID: its effective capability mask, as /proc shows it (hex).
cap_eff() { sed -n 's/^CapEff:\t//p' "/proc/$1/status"; }

pvm_bset=$(bounding mw-pvm.service)
ins_bset=$(bounding mw-ins@.service)
[ "$pvm_bset" = -all ] || mw_fail "mw-pvm.service grants capabilities: $pvm_bset"
[ "$ins_bset" = -all,+net_bind_service,+net_admin ] || mw_fail "mw-ins@.service grants $ins_bset"
unpriv() { # BSET CMD...: CMD with that bounding set, nothing inheritable, no_new_privs
	local bset=$1
	shift
	exec setpriv --bounding-set "$bset" --inh-caps -all --no-new-privs "$@"
}

CONF=$MW_TMP/mwcomms.conf
mw_write_config "$CONF" "pvm: { control_socket = \"$MW_RUNTIME_DIR/pvm.sock\";
	ins_socket = \"$MW_RUNTIME_DIR/pvm-ins.sock\"; heartbeat_timeout_ms = 1000; };
ins: { pvm_socket = \"$MW_RUNTIME_DIR/pvm-ins.sock\"; heartbeat_ms = 200; };"
INS_IP=10.232.0.2
CLI_IP=10.232.0.1
mw_netns_add ins
mw_netns_add cli
NS_INS=$(mw_netns ins)
NS_CLI=$(mw_netns cli)
mw_veth_add i c cli
ip link set "$(mw_veth i)" netns "$NS_INS" || mw_fail "moving $(mw_veth i) into $NS_INS failed"
ip -n "$NS_INS" addr add "$INS_IP/24" dev "$(mw_veth i)"
ip -n "$NS_INS" link set "$(mw_veth i)" up
ip -n "$NS_CLI" addr add "$CLI_IP/24" dev "$(mw_veth c)"
ip -n "$NS_CLI" link set "$(mw_veth c)" up

PVM_LOG=$(mw_logfile pvm)
mw_spawn pvm unpriv "$pvm_bset" "$prefix/sbin/mw-pvm" -c "$CONF"
mw_wait_for "grep -q 'ready: control' '$PVM_LOG'" || mw_fail "unprivileged mw-pvm did not start"
mw_spawn ins1 ip netns exec "$NS_INS" setpriv --bounding-set "$ins_bset" --inh-caps -all \
	--no-new-privs "$prefix/sbin/mw-ins" --id 1 -c "$CONF"
mw_wait_for "grep -q 'INS 1 joined' '$PVM_LOG'" || mw_fail "INS 1 did not join mw-pvm"

# What the kernel says they hold (ip netns exec and setpriv exec in place).
pvm_pid=$(mw_pid pvm)
ins_pid=$(mw_pid ins1)
[ "$(cat "/proc/$pvm_pid/comm")" = mw-pvm ] || mw_fail "pid $pvm_pid is not mw-pvm"
[ "$(cat "/proc/$ins_pid/comm")" = mw-ins ] || mw_fail "pid $ins_pid is not mw-ins"
[ "$(cap_eff "$pvm_pid")" = 0000000000000000 ] || mw_fail "mw-pvm holds CapEff $(cap_eff "$pvm_pid")"
# CAP_NET_BIND_SERVICE = bit 10, CAP_NET_ADMIN = bit 12.
[ "$(cap_eff "$ins_pid")" = 0000000000001400 ] || mw_fail "mw-ins holds CapEff $(cap_eff "$ins_pid")"
grep -q '^NoNewPrivs:\s*1' "/proc/$ins_pid/status" || mw_fail "mw-ins runs without no_new_privs"

# One request through the whole path, on a port below 1024.
WWW=$MW_TMP/www
mkdir -p "$WWW"
echo "served through an unprivileged mw-pvm and mw-ins, pid $$" >"$WWW/index.txt"
mw_spawn http env LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm.sock" \
	"$PY" -m http.server 80 --bind 0.0.0.0 --directory "$WWW"
mw_wait_for "ip netns exec '$NS_INS' ss -Hltn 'sport = :80' | grep -q LISTEN" ||
	mw_fail "mw-ins does not listen on port 80"
body=$(ip netns exec "$NS_CLI" curl -sS --max-time 10 "http://$INS_IP/index.txt") ||
	mw_fail "curl through the appliance failed"
[ "$body" = "$(cat "$WWW/index.txt")" ] || mw_fail "curl got '$body'"
mw_stop http

# Without CAP_NET_BIND_SERVICE the same bind fails: the grant is not decoration.
mw_stop ins1
[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "mw-ins exited $MW_EXIT_STATUS on SIGTERM"
# New sockets must land on INS 2, so INS 1 must be gone from mw-pvm first.
mw_wait_for "grep -q 'INS 1: channel ended' '$PVM_LOG'" || mw_fail "mw-pvm did not reap INS 1"
mw_spawn ins2 ip netns exec "$NS_INS" setpriv --bounding-set -all,+net_admin --inh-caps -all \
	--no-new-privs "$prefix/sbin/mw-ins" --id 2 -c "$CONF"
mw_wait_for "grep -q 'INS 2 joined' '$PVM_LOG'" || mw_fail "INS 2 did not join mw-pvm"
out=$(env LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm.sock" timeout 20 "$PY" -c '
import socket
s = socket.socket()
try:
    s.bind(("0.0.0.0", 81))
    print("bound")
except OSError as e:
    print("errno", e.errno)
' 2>&1) || mw_fail "the bind probe failed: $out"
[ "$out" = "errno 13" ] || mw_fail "bind to 81 without CAP_NET_BIND_SERVICE in mw-ins: '$out', want EACCES"

mw_log "mw-pvm with no capability, mw-ins with NET_BIND_SERVICE+NET_ADMIN: port 80 served"
