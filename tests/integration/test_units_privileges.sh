#!/usr/bin/env bash
# test_units_privileges.sh - the daemons do their job with only what their units grant
#
# The units claim mw-pvm needs no capability (only the INS user's group, for its INS
# socket) and mw-ins nothing at all, running as the INS user (units/*.service.in).
# This test takes CapabilityBoundingSet=, User= and SupplementaryGroups= of each
# *installed* unit, runs the installed daemons that way with no_new_privs (setpriv,
# as systemd would), checks what the kernel reports for them, and serves one HTTP
# request end to end through a shimmed server that listens on port 80: the bind
# below 1024 is done by the capability-less mw-ins thanks to its namespace's
# ip_unprivileged_port_start = 0, and fails (EACCES) once that is back at 1024.
# Then mw-balancer runs under its unit's bounding set and spawns a confined INS
# (setuid, bounding set, mount view) that it can also stop (CAP_KILL).
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
bal_bset=$(bounding mw-balancer.service)
[ "$pvm_bset" = -all ] || mw_fail "mw-pvm.service grants capabilities: $pvm_bset"
[ "$ins_bset" = -all ] || mw_fail "mw-ins@.service grants $ins_bset"
ins_user=$(sed -n 's/^User=//p' "$unitdir/mw-ins@.service")
[ "$ins_user" = "$(mw_ins_user)" ] || mw_fail "mw-ins@.service runs as '$ins_user'"
pvm_group=$(sed -n 's/^SupplementaryGroups=//p' "$unitdir/mw-pvm.service")
[ "$pvm_group" = "$ins_user" ] || mw_fail "mw-pvm.service has SupplementaryGroups '$pvm_group'"
ins_uid=$(id -u "$ins_user")
ins_gid=$(id -g "$ins_user")
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
# One setpriv: its groups are set before the exec that applies the bounding set.
mw_spawn pvm setpriv --groups "$(getent group "$pvm_group" | cut -d: -f3)" \
	--bounding-set "$pvm_bset" --inh-caps -all --no-new-privs "$prefix/sbin/mw-pvm" -c "$CONF"
mw_wait_for "grep -q 'ready: control' '$PVM_LOG'" || mw_fail "unprivileged mw-pvm did not start"
grep -q "cannot give\|does not exist" "$PVM_LOG" && mw_fail "mw-pvm kept its INS socket: $(cat "$PVM_LOG")"
[ "$(stat -c %G:%a "$MW_RUNTIME_DIR/pvm-ins.sock")" = "$pvm_group:660" ] ||
	mw_fail "INS socket is $(stat -c %G:%a "$MW_RUNTIME_DIR/pvm-ins.sock"), want $pvm_group:660"
# What mw-balancer does for its INS, and the unit's operator for mw-ins@: low ports
# without CAP_NET_BIND_SERVICE.
ip netns exec "$NS_INS" sysctl -qw net.ipv4.ip_unprivileged_port_start=0
# Its runtime directory is its own (the unit's TemporaryFileSystem=), the rest shared.
INS_RUN=$MW_TMP/ins-run
mkdir -p "$INS_RUN" && chown "$ins_user:" "$INS_RUN"
sed "s|runtime_dir = \"$MW_RUNTIME_DIR\"|runtime_dir = \"$INS_RUN\"|" "$CONF" >"$MW_TMP/ins.conf"
ins_as_unit() { # ID: mw-ins as the unit runs it, in $NS_INS
	mw_spawn "ins$1" ip netns exec "$NS_INS" setpriv --reuid="$ins_uid" --regid="$ins_gid" \
		--clear-groups --bounding-set "$ins_bset" --inh-caps -all --no-new-privs \
		"$prefix/sbin/mw-ins" --id "$1" -c "$MW_TMP/ins.conf"
}
ins_as_unit 1
mw_wait_for "grep -q 'INS 1 joined' '$PVM_LOG'" || mw_fail "INS 1 did not join mw-pvm"

# What the kernel says they hold (ip netns exec and setpriv exec in place).
pvm_pid=$(mw_pid pvm)
ins_pid=$(mw_pid ins1)
[ "$(cat "/proc/$pvm_pid/comm")" = mw-pvm ] || mw_fail "pid $pvm_pid is not mw-pvm"
[ "$(cat "/proc/$ins_pid/comm")" = mw-ins ] || mw_fail "pid $ins_pid is not mw-ins"
[ "$(cap_eff "$pvm_pid")" = 0000000000000000 ] || mw_fail "mw-pvm holds CapEff $(cap_eff "$pvm_pid")"
[ "$(cap_eff "$ins_pid")" = 0000000000000000 ] || mw_fail "mw-ins holds CapEff $(cap_eff "$ins_pid")"
grep -q "^Uid:\s*$ins_uid\s" "/proc/$ins_pid/status" || mw_fail "mw-ins does not run as $ins_user"
grep -q '^NoNewPrivs:\s*1' "/proc/$ins_pid/status" || mw_fail "mw-ins runs without no_new_privs"
grep -q '^Seccomp:\s*2' "/proc/$ins_pid/status" || mw_fail "mw-ins runs without its seccomp filter"

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

# With the namespace's default port sysctl the same bind fails: that is what grants it.
mw_stop ins1
[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "mw-ins exited $MW_EXIT_STATUS on SIGTERM"
# New sockets must land on INS 2, so INS 1 must be gone from mw-pvm first.
mw_wait_for "grep -q 'INS 1: channel ended' '$PVM_LOG'" || mw_fail "mw-pvm did not reap INS 1"
ip netns exec "$NS_INS" sysctl -qw net.ipv4.ip_unprivileged_port_start=1024
ins_as_unit 2
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
[ "$out" = "errno 13" ] || mw_fail "bind to 81 with ip_unprivileged_port_start 1024: '$out', want EACCES"
mw_log "mw-pvm with no capability, mw-ins as $ins_user with none: port 80 served"

# mw-balancer under its unit's bounding set: it spawns a confined INS and stops it.
mw_stop ins2
TAG=u$(($$ % 100000))
BR=mwu$(($$ % 100000))
cat >>"$CONF" <<CONF
balancer: { control_socket = "$MW_RUNTIME_DIR/balancer.sock"; backend = "netns";
	min_ins = 1; max_ins = 1; subnet = "10.$((200 + $$ % 50)).$((($$ + 7) % 250)).0/24";
	bridge = "$BR"; tag = "$TAG"; };
CONF
BAL_LOG=$(mw_logfile balancer)
mw_spawn balancer unpriv "$bal_bset" "$prefix/sbin/mw-balancer" -c "$CONF"
mw_wait_for "[ \$(grep -c 'INS [0-9]* joined' '$PVM_LOG') -ge 3 ]" 20 ||
	mw_fail "the balancer's INS did not join mw-pvm: $(tail -5 "$BAL_LOG")"
bal_ins=$(ip netns pids "mw-$TAG-ins1" 2>/dev/null | head -1)
[ -n "$bal_ins" ] || mw_fail "no process in mw-$TAG-ins1: $(tail -5 "$BAL_LOG")"
grep -q "^Uid:\s*$ins_uid\s" "/proc/$bal_ins/status" || mw_fail "the balancer's INS is not $ins_user"
for k in CapPrm CapEff CapBnd CapAmb; do
	[ "$(sed -n "s/^$k:\t//p" "/proc/$bal_ins/status")" = 0000000000000000 ] ||
		mw_fail "the balancer's INS has $k $(sed -n "s/^$k:\t//p" "/proc/$bal_ins/status")"
done
# SIGTERM to mw-balancer alone, as systemd's KillMode=mixed does first: mw_stop's signal to
# the whole process group would also reach the INS (it keeps the balancer's group), which
# then exited on its own before the balancer could stop it (a flake: "died ... replacing it").
kill -TERM "$(mw_pid balancer)"
mw_wait_for "! kill -0 $(mw_pid balancer) 2>/dev/null" 10 || mw_fail "mw-balancer did not exit on SIGTERM"
mw_stop balancer
[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "mw-balancer exited $MW_EXIT_STATUS on SIGTERM"
grep -q "INS 1 stopped" "$BAL_LOG" || mw_fail "mw-balancer did not stop its INS: $(tail -5 "$BAL_LOG")"
[ ! -d "/proc/$bal_ins" ] || mw_fail "the balancer's INS (pid $bal_ins) outlived it"
mw_log "mw-balancer with $bal_bset: spawned INS as $ins_user with no capability, and stopped it"
