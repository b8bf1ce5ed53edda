#!/usr/bin/env bash
# test_e2e_proxy2.sh - ins.proxy_protocol: a PROXY v2 header names the client the app sees
#
# Topology: lib.sh's appliance (mw-pvm and the shimmed app in the root ns,
# mw-ins in ns ins at 10.231.0.2, clients in ns cli at 10.231.0.1, plus
# 10.231.0.3 which is not in ins.proxy_from). The clients play mw-balancer:
# they write a hand-built header (tests/integration/proxy2_probe.py) and data.
# Checks:
#   (1) option on: the app's getpeername()/getsockname() are the header's
#       source/destination (TCP4 on an IPv4 listener; TCP6 and TCP4, as
#       ::ffff:a.b.c.d, on an IPv6 one; TLVs and a header arriving byte by
#       byte), LOCAL keeps the real client, and the data after the header (same
#       segment) arrives byte-exact;
#   (2) garbage instead of a header, nothing at all, a partial header, a
#       valid header from an untrusted sender, and an IPv6 client for an IPv4
#       listener are closed, each counted in the
#       INS log, and the app never accepts any of them;
#   (3) option off (a new INS replays the listener): a plain client is seen as
#       itself and a PROXY header is just data, as before.
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
PROBE=$MW_SOURCE_DIR/tests/integration/proxy2_probe.py
PORT=8300

MW_INS_CONF='proxy_protocol = true; proxy_from = "10.231.0.1/32";'
mw_appliance_up
ip -n "$NS_CLI" addr add 10.231.0.3/24 dev "$(mw_veth c)"
INS_LOG=$(mw_logfile ins1)
APP_LOG=$(mw_logfile app)
mw_wait_for "grep -q 'PROXY v2 header required from 10.231.0.1/32' '$INS_LOG'" ||
	mw_fail "mw-ins did not start with the PROXY protocol on"

mw_spawn app shimmed "$PY" "$PROBE" app $PORT
mw_wait_for "ins_listens $PORT && ins_listens $((PORT + 1))" 10 ||
	mw_fail "the shimmed app does not listen on the INS"

accepts() { grep -c '^accepted ' "$APP_LOG" || true; }
probe() { in_cli "$PY" "$PROBE" "$@" || mw_fail "proxy2_probe $*: failed (output above)"; }

# --- (1) headers accepted --------------------------------------------------------
probe send "$INS_IP" $PORT proxy4
probe send "$INS_IP" $((PORT + 1)) proxy6
probe send "$INS_IP" $((PORT + 1)) proxy4on6
probe send "$INS_IP" $PORT tlv
probe send "$INS_IP" $PORT local
[ "$(accepts)" = 5 ] || mw_fail "the app accepted $(accepts) connections, want 5"
grep -q '^accepted 192.0.2.7:4242$' "$APP_LOG" || mw_fail "the app did not log the proxied client"
mw_log "PROXY TCP4/TCP6/TLV/LOCAL: app sees the header's addresses, data byte-exact"

# --- (2) refused before the app hears of them -----------------------------------
probe refused "$INS_IP" $PORT garbage
probe refused "$INS_IP" $PORT silent
probe refused "$INS_IP" $PORT partial
probe refused "$INS_IP" $PORT proxy4 10.231.0.3
probe refused "$INS_IP" $PORT proxy6
# A good connection afterwards: had the INS reported any refused one, the app
# would have accepted it before this one.
probe send "$INS_IP" $PORT proxy4
[ "$(accepts)" = 6 ] || mw_fail "the app accepted $(accepts) connections, want 6 (refused ones leaked)"
# Only the LOCAL connection may show the real client; 10.231.0.3 never got through.
[ "$(grep -c '^accepted 10\.231\.0\.' "$APP_LOG")" = 1 ] ||
	mw_fail "the app saw real client addresses beyond the LOCAL connection"
grep -q 'closed: no valid PROXY v2 header' "$INS_LOG" || mw_fail "garbage not logged by mw-ins"
grep -q 'closed: no PROXY header within 2 s' "$INS_LOG" || mw_fail "deadline not logged by mw-ins"
grep -q '10.231.0.3:[0-9]* closed: not in ins.proxy_from' "$INS_LOG" ||
	mw_fail "untrusted sender not logged by mw-ins"
grep -q 'closed: PROXY header names IPv6 for an IPv4 listener' "$INS_LOG" ||
	mw_fail "IPv6 client for an IPv4 listener not logged by mw-ins"
kill -0 "$(mw_pid ins1)" || mw_fail "mw-ins died"
mw_log "garbage, silence, partial header, untrusted sender, IPv6 on IPv4: closed, app never saw them"

# --- (3) option off: unchanged ----------------------------------------------------
mw_stop ins1 2
mw_wait_for "grep -q 'INS 1: channel ended' '$PVM_LOG'" 10 || mw_fail "mw-pvm did not notice INS 1 end"
sed -i 's/proxy_protocol = true;/proxy_protocol = false;/' "$CONF"
grep -q 'proxy_protocol = false;' "$CONF" || mw_fail "could not turn the option off in $CONF"
mw_spawn ins2 ip netns exec "$NS_INS" "$INS" --id 2 -c "$CONF"
mw_wait_for "grep -q 'INS 2 joined' '$PVM_LOG'" 15 || mw_fail "INS 2 did not join"
mw_wait_for "ins_listens $PORT" 10 || mw_fail "the app's listener was not replayed on INS 2"
probe send "$INS_IP" $PORT plain
probe send "$INS_IP" $PORT rawhdr
grep -q "^accepted $CLI_IP:" "$APP_LOG" || mw_fail "option off: the app did not see the real client"
grep -q 'PROXY v2 header required' "$(mw_logfile ins2)" && mw_fail "INS 2 still requires the header"
mw_log "option off: real client addresses, header bytes are plain data"
