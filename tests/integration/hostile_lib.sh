# shellcheck shell=bash
# hostile_lib.sh - sourced after lib.sh by the tests that play a hostile INS
# (test_e2e_hostile.sh, test_e2e_ins_bounds.sh, test_guard_forged.sh, test_guard_fill.sh)
#
#   MW_PVM_CONF="..."; hostile_up ["extra configuration sections"]
#
# starts the appliance (mw-pvm and the honest INS 1, lib.sh), opens mw-pvm's INS
# socket to group nogroup so that hostile_ins can join as nobody, and serves
# "served through the honest INS" (from $WWW) by a shimmed HTTP server on port 8080.

mw_require_cmd curl setpriv python3 timeout
HOSTILE=$MW_BUILD_DIR/tests/integration/hostile_ins
[ -x "$HOSTILE" ] || mw_fail "hostile_ins is not built ($HOSTILE)"
ENDED_1="INS 1: channel ended"
WWW=$MW_TMP/www

as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
pvm_alive() { kill -0 "$(mw_pid pvm)" 2>/dev/null || mw_fail "mw-pvm died: $1"; }

# guard_idle_clients PHASE: the client holds 12 idle connections to $PORT through
# INS 1, past the accept filter of mw-guard's baseline shield (lifted through mw-pvm's
# Netflow socket, as test_guard.sh does: it would hold them away from the app).
# Needs GLOG (mw-guard's log), PY, NFP (nf_probe.py) and GP (guard_probe.py).
guard_idle_clients() {
	local lsock r
	lsock=$(grep -m1 "action [0-9]*: shield_set [^ ]*:$PORT reason=baseline" "$GLOG" | sed 's/.*,sock=\([0-9]*\).*/\1/')
	[ -n "$lsock" ] || mw_fail "$1: no baseline shield logged"
	r=$("$PY" "$NFP" req "$(cat "$MW_RUNTIME_DIR/store/mw/pvm/netflow")" 0x2011 3 "$lsock" 0)
	case "$r" in status=0\ *) ;; *) mw_fail "$1: lifting the filter failed: $r" ;; esac
	mw_spawn idle in_cli "$PY" "$GP" idle "$INS_IP" "$PORT" 12 60
	mw_wait_for "grep -q '^open 12' '$(mw_logfile idle)'" 20 || mw_fail "$1: clients did not connect"
}

hostile_up() {
	mw_appliance_up "$@"
	chgrp nogroup "$MW_RUNTIME_DIR/pvm-ins.sock" || mw_fail "chgrp of pvm-ins.sock failed"
	mkdir -p "$WWW"
	echo "served through the honest INS" >"$WWW/index.html"
	mw_spawn http shimmed python3 -m http.server 8080 --bind 0.0.0.0 --directory "$WWW"
	mw_wait_for "in_cli curl -sf -o /dev/null --max-time 2 http://$INS_IP:8080/" 15 ||
		mw_fail "the shimmed HTTP server is not reachable"
}
