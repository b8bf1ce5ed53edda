#!/usr/bin/env bash
# test_e2e_basic.sh - an app under libmwshim.so serves and connects through mw-pvm and mw-ins
#
# Topology (every namespace and veth made here, torn down by lib.sh):
#   root ns: mw-pvm, the apps under LD_PRELOAD (the shim and mw-pvm share abstract names)
#   ns ins:  mw-ins --id 1, veth end 10.231.0.2/24   (the app's TCP stack)
#   ns cli:  curl / nc / an http server, veth end 10.231.0.1/24
# Checks, on content (sha256): (1) a shimmed HTTP server's file fetched from cli;
# a file uploaded to a shimmed `nc -l`, and one downloaded from it (EOF both ways);
# (2) a shimmed curl fetching from a server in cli (outgoing connect through the
# INS) and a refused connect reported as such; (4) the INS killed: mw-pvm
# survives, the app's listener survives; a new INS joins, the listener is
# replayed on it and serves again.
source "$(dirname "$0")/lib.sh"

mw_require_root
mw_require_cmd ip curl nc sha256sum timeout head
PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
PVM=$(mw_need_bin mw-pvm)
INS=$(mw_need_bin mw-ins)
SHIM=$(mw_need_bin libmwshim.so)

CONF=$MW_TMP/mwcomms.conf
mw_write_config "$CONF" "pvm: { control_socket = \"$MW_RUNTIME_DIR/pvm.sock\";
        ins_socket = \"$MW_RUNTIME_DIR/pvm-ins.sock\"; heartbeat_timeout_ms = 1000; };
ins: { pvm_socket = \"$MW_RUNTIME_DIR/pvm-ins.sock\"; heartbeat_ms = 200; };"
PVM_LOG=$(mw_logfile pvm)

mw_netns_add ins
mw_netns_add cli
NS_INS=$(mw_netns ins)
NS_CLI=$(mw_netns cli)
mw_veth_add i c cli
ip link set "$(mw_veth i)" netns "$NS_INS" || mw_fail "moving $(mw_veth i) into $NS_INS failed"
ip -n "$NS_INS" addr add 10.231.0.2/24 dev "$(mw_veth i)"
ip -n "$NS_INS" link set "$(mw_veth i)" up
ip -n "$NS_CLI" addr add 10.231.0.1/24 dev "$(mw_veth c)"
ip -n "$NS_CLI" link set "$(mw_veth c)" up
in_cli() { ip netns exec "$NS_CLI" "$@"; }
shimmed() { env LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm.sock" "$@"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

mw_spawn pvm "$PVM" -c "$CONF" --log-level debug
mw_wait_for "[ -S '$MW_RUNTIME_DIR/pvm.sock' ] && [ -S '$MW_RUNTIME_DIR/pvm-ins.sock' ]" ||
	mw_fail "mw-pvm did not create its sockets"
mw_spawn ins1 ip netns exec "$NS_INS" "$INS" --id 1 -c "$CONF"
mw_wait_for "grep -q 'INS 1 joined' '$PVM_LOG'" || mw_fail "INS 1 did not join mw-pvm"

# --- (1) listener: HTTP download ------------------------------------------------
WWW=$MW_TMP/www
mkdir -p "$WWW"
head -c 3000000 /dev/urandom >"$WWW/file"
mw_spawn http shimmed "$PY" -m http.server 8080 --bind 0.0.0.0 --directory "$WWW"
mw_wait_for "in_cli curl -sf -o /dev/null --max-time 2 http://10.231.0.2:8080/file" 15 ||
	mw_fail "the shimmed HTTP server is not reachable from the client namespace"
in_cli curl -sf --max-time 20 -o "$MW_TMP/got" http://10.231.0.2:8080/file ||
	mw_fail "curl download failed"
[ "$(sha "$MW_TMP/got")" = "$(sha "$WWW/file")" ] || mw_fail "downloaded file differs"
# Several in a row: sockets are reused correctly and none leak into failures.
for i in 1 2 3 4 5; do
	in_cli curl -sf --max-time 10 -o "$MW_TMP/got$i" http://10.231.0.2:8080/file ||
		mw_fail "download $i failed"
	cmp -s "$MW_TMP/got$i" "$WWW/file" || mw_fail "download $i differs"
done
mw_log "listener path: HTTP downloads OK"

# --- (1) listener: nc upload (client -> app) and download (app -> client) --------
# Readiness without using up a connection: the INS listens once the app listened.
ins_listens() { ip netns exec "$NS_INS" ss -Hltn "sport = :$1" | grep -q LISTEN; }
mw_require_cmd ss cmp

head -c 2000000 /dev/urandom >"$MW_TMP/up"
mw_spawn ncup shimmed timeout 30 sh -c "exec nc -l 9000 >'$MW_TMP/up.got' </dev/null"
mw_wait_for "ins_listens 9000" 10 || mw_fail "shimmed nc -l 9000 does not listen on the INS"
in_cli timeout 30 nc -N 10.231.0.2 9000 <"$MW_TMP/up" || mw_fail "nc upload failed"
mw_wait_for "! kill -0 $(mw_pid ncup) 2>/dev/null" 15 || mw_fail "shimmed nc -l did not see EOF"
cmp -s "$MW_TMP/up.got" "$MW_TMP/up" || mw_fail "uploaded file differs"
mw_log "listener path: upload with EOF OK"

head -c 2000000 /dev/urandom >"$MW_TMP/down"
mw_spawn ncdown shimmed timeout 30 sh -c "exec nc -N -l 9001 <'$MW_TMP/down' >/dev/null"
mw_wait_for "ins_listens 9001" 10 || mw_fail "shimmed nc -l 9001 does not listen on the INS"
in_cli timeout 30 nc -d 10.231.0.2 9001 >"$MW_TMP/down.got" || mw_fail "nc download failed"
cmp -s "$MW_TMP/down.got" "$MW_TMP/down" || mw_fail "downloaded (nc) file differs"
mw_wait_for "! kill -0 $(mw_pid ncdown) 2>/dev/null" 15 || mw_fail "shimmed nc -N -l did not exit"
mw_log "listener path: download with EOF OK"

# --- (2) connect path: shimmed curl to a server in cli ---------------------------
CWWW=$MW_TMP/cwww
mkdir -p "$CWWW"
head -c 1500000 /dev/urandom >"$CWWW/cfile"
mw_spawn clihttp ip netns exec "$NS_CLI" "$PY" -m http.server 8081 --bind 10.231.0.1 \
	--directory "$CWWW"
mw_wait_for "in_cli curl -sf -o /dev/null --max-time 2 http://10.231.0.1:8081/cfile" 15 ||
	mw_fail "the client-side HTTP server did not start"
shimmed curl -sf --max-time 20 -o "$MW_TMP/cgot" http://10.231.0.1:8081/cfile ||
	mw_fail "shimmed curl (outgoing connect through the INS) failed"
cmp -s "$MW_TMP/cgot" "$CWWW/cfile" || mw_fail "file fetched through the INS differs"
rc=0
shimmed curl -s --max-time 10 -o /dev/null http://10.231.0.1:8099/ || rc=$?
[ "$rc" = 7 ] || mw_fail "connect to a closed port: curl exit $rc, want 7 (connection refused)"
mw_log "connect path: fetch and refused connect OK"

# --- (4) INS death: mw-pvm survives, the listener survives and is replayed -------
mw_stop ins1 2
mw_wait_for "grep -q 'INS 1: channel ended' '$PVM_LOG'" 10 || mw_fail "mw-pvm did not notice INS 1 died"
kill -0 "$(mw_pid pvm)" || mw_fail "mw-pvm died with its INS"
mw_spawn ins2 ip netns exec "$NS_INS" "$INS" --id 2 -c "$CONF"
mw_wait_for "grep -q 'INS 2 joined' '$PVM_LOG'" 15 || mw_fail "INS 2 did not join"
mw_wait_for "ins_listens 8080" 10 || mw_fail "the app's listener was not replayed on INS 2"
in_cli curl -sf --max-time 20 -o "$MW_TMP/got2" http://10.231.0.2:8080/file ||
	mw_fail "download through the replayed listener failed"
cmp -s "$MW_TMP/got2" "$WWW/file" || mw_fail "download through the replayed listener differs"
mw_log "INS death and replay OK"

mw_stop pvm 5
[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "mw-pvm exit status $MW_EXIT_STATUS after SIGTERM"
[ ! -e "$MW_RUNTIME_DIR/pvm.sock" ] || mw_fail "mw-pvm left its control socket behind"
