#!/usr/bin/env bash
# test_shield_rates.sh - shield rates and limits enforced by mw-ins (docs/ins.md)
#
# Each case has its own shimmed server (rates_probe.py server) on its own port; its
# listener's shield is set at run time through Netflow (WRITE|BY_SOCK on the listener id
# read from the bind observation), as mw-guard would:
#   (1) ShieldOutBuffer 0x2016: the server writes 4 MiB in one sendall() to a client
#       that reads nothing.  Without the option the write does not complete in 4 s (the
#       appliance's own buffers, shim to INS kernel, take about 1 MiB: measured, so 1 MiB
#       would not block); with 8 MiB it completes in under 2 s, and a fast reader then
#       still gets it all.
#   (2) ShieldMinOutRate 0x2015 = 4096: a client reading 1 KiB/s is reset within the
#       5 s window plus slack; a fast reader of 32 MiB is not.
#   (3) ShieldSrcMaxConns 0x2017 = 5: the 6th concurrent connection from one address is
#       reset, another address is served, and the count goes down when connections end.
#   (4) ShieldPfxRate 0x201a = 2: 8 connections at once from one /24 pass 2 (3 if a token
#       came back meanwhile: one every 0.5 s); another address of the same /24 right after
#       is refused; another /24 is served.
#   (4b) ShieldSrcRate 0x2018 = 2: 6 at once from one address pass 2 (or 3); another
#       address of the same /24 is served (per source, not per prefix);
#       ShieldPfxMaxConns 0x2019 = 3: with 2 held from one address, 2 more from another
#       address of the /24 pass 1; another /24 is served.
#   (5) ins.shield_out_total = 5 MiB: with two clients behind 8 MiB out buffers, the
#       second's buffered write would pass the bound: the first, a 1 KiB/s reader
#       (measured slower), is reset; the second's write completes.
#   (6) ShieldStallMax 0x201c = 1: two clients that take nothing stall the app's 4 MiB
#       writes; the first stalled is reset once the second stalls, the second is kept
#       (the bound), and a fast reader meanwhile gets its 4 MiB whole.
# The reasons are counted in mw-ins's STATUS= line (a notify socket stands in for systemd).
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
NFP=$(dirname "$0")/nf_probe.py
RP=$(dirname "$0")/rates_probe.py
P_BUF=9471
P_RATE=9472
P_SRC=9473
P_PFX=9474
P_CUT=9475
P_SRATE=9476
P_PMAX=9477
P_STALL=9478
mw_notify_up
# shellcheck disable=SC2034 # read by mw_appliance_up
MW_INS_CONF="shield_out_total = $((5 * 1024 * 1024));"
mw_appliance_up
unset NOTIFY_SOCKET
# More client addresses: one in the same /24, one in another /24 (routed back by the INS).
CLI_IP2=10.231.0.3
CLI_NET2=10.232.0.1
ip -n "$NS_CLI" addr add "$CLI_IP2/24" dev "$(mw_veth c)"
ip -n "$NS_CLI" addr add "$CLI_NET2/24" dev "$(mw_veth c)"
ip -n "$NS_INS" addr add 10.232.0.2/24 dev "$(mw_veth i)"

KEY=$MW_RUNTIME_DIR/store/mw/pvm/netflow
mw_wait_for "[ -s '$KEY' ]" || mw_fail "no Netflow address published at $KEY"
NF=$(cat "$KEY")
OBS=$MW_TMP/watch.obs
field() { sed -n "s/\(^\|.* \)$1=\([^ ]*\).*/\2/p"; }
req() { "$PY" "$NFP" req "$NF" "$@"; } # req NAME FLAGS SOCK VAL0 -> "status=S val0=V val1=0"
expect() { [ "$2" = "$3" ] || mw_fail "$1: got '$2', want '$3'"; }
mw_spawn watch "$PY" "$NFP" obs "$NF" "$OBS" 100000 300
mw_wait_for "grep -q READY '$OBS'" || mw_fail "the Netflow observer did not connect"

# server NAME PORT SIZE: a shimmed server; sets LSN to its listener id
server() {
	mw_spawn "$1" shimmed "$PY" "$RP" server "$2" "$3"
	mw_wait_for "ins_listens $2" 15 || mw_fail "$1 does not listen on the INS"
	mw_wait_for "grep -q 'obs=bind .*local=0.0.0.0:$2 ' '$OBS'" || mw_fail "$1: no bind observation"
	LSN=$(grep -m1 "obs=bind .*local=0.0.0.0:$2 " "$OBS" | field sock)
}
# shield SOCK ATTR VALUE: set one shield attribute through Netflow and read it back
shield() {
	expect "set $2=$3 on $1" "$(req "$2" 3 "$1" "$3")" "status=0 val0=0 val1=0"
	expect "read $2 on $1" "$(req "$2" 2 "$1" 0)" "status=0 val0=$3 val1=0"
}
# lport_of LOG: the local port a client logged
lport_of() { mw_wait_for "grep -q lport '$1'" 10 && field lport <"$1" | head -1; }
# conns NAME N SRC HOLD: N connections at once from SRC to $PORT, held HOLD s; waits for
# their outcome and sets R to it ("ok=K reset=R timeout=T")
conns() {
	mw_spawn "$1" in_cli "$PY" "$RP" conns "$INS_IP" "$PORT" "$2" "$3" "$4"
	mw_wait_for "grep -q '^ok=' '$(mw_logfile "$1")'" 20 || mw_fail "$1: no outcome"
	R=$(grep '^ok=' "$(mw_logfile "$1")")
}

# --- (1) out buffer ------------------------------------------------------------------------
server srv-buf "$P_BUF" $((4 * 1024 * 1024))
LBUF=$LSN
mw_spawn buf-off in_cli "$PY" "$NFP" hold "$INS_IP" "$P_BUF" 30
lport=$(lport_of "$(mw_logfile buf-off)") || mw_fail "buf-off did not connect"
sleep 4
! grep -q "lport=$lport " "$(mw_logfile srv-buf)" ||
	mw_fail "without an out buffer the 4 MiB write to a client reading nothing completed: $(cat "$(mw_logfile srv-buf)")"
mw_log "(1) no out buffer: the app's 4 MiB write to a non-reader still blocks after 4 s"
shield "$LBUF" 0x2016 $((8 * 1024 * 1024))
mw_spawn buf-on in_cli "$PY" "$NFP" hold "$INS_IP" "$P_BUF" 30
lport=$(lport_of "$(mw_logfile buf-on)") || mw_fail "buf-on did not connect"
mw_wait_for "grep -q 'wrote lport=$lport ' '$(mw_logfile srv-buf)'" 5 ||
	mw_fail "with an 8 MiB out buffer the 4 MiB write did not complete: $(cat "$(mw_logfile srv-buf)")"
secs=$(grep "wrote lport=$lport " "$(mw_logfile srv-buf)" | field secs)
awk -v t="$secs" 'BEGIN { exit !(t < 2) }' || mw_fail "the buffered write took ${secs}s"
mw_log "(1) out buffer 8 MiB: the app's 4 MiB write completed in ${secs}s"
# Buffered bytes arrive intact and in full at a reader.
out=$(in_cli "$PY" "$RP" drain "$INS_IP" "$P_BUF" $((4 * 1024 * 1024)))
expect "a reader behind the out buffer" "$(echo "$out" | field end)" "done"
mw_stop buf-on
mw_stop buf-off

# --- (2) minimum outbound rate -------------------------------------------------------------
server srv-rate "$P_RATE" $((32 * 1024 * 1024))
LRATE=$LSN
shield "$LRATE" 0x2015 4096
mw_spawn slow in_cli "$PY" "$NFP" trickle "$INS_IP" "$P_RATE" 30
t0=$(date +%s.%N)
lport_of "$(mw_logfile slow)" >/dev/null || mw_fail "the slow reader did not connect"
out=$(in_cli "$PY" "$RP" drain "$INS_IP" "$P_RATE" $((32 * 1024 * 1024)))
expect "a fast reader under MinOutRate 4096" "$(echo "$out" | field end)" "done"
mw_log "(2) fast reader: $out"
mw_wait_for "grep -q '^cut_at' '$(mw_logfile slow)'" 15 ||
	mw_fail "the 1 KiB/s reader was not reset within 15 s: $(tail -3 "$(mw_logfile slow)")"
end=$(grep '^cut_at' "$(mw_logfile slow)" | field end)
cut=$(grep '^cut_at' "$(mw_logfile slow)" | field cut_at)
[ "$end" = close ] || [ "$end" = reset ] || mw_fail "the slow reader saw '$end', not a reset"
after=$(awk -v a="$t0" -v b="$cut" 'BEGIN { printf "%.1f", b - a }')
awk -v t="$after" 'BEGIN { exit !(t >= 4.5 && t <= 10) }' ||
	mw_fail "the slow reader was reset after ${after}s, want the 5 s window (+ slack)"
mw_wait_for "grep -q 'failed lport=' '$(mw_logfile srv-rate)'" 10 ||
	mw_fail "the app's write to the reset reader did not fail"
mw_log "(2) 1 KiB/s reader reset after ${after}s ($end); app: $(grep failed "$(mw_logfile srv-rate)")"

# --- (3) concurrent connections per source ------------------------------------------------
PORT=$P_SRC
server srv-src "$P_SRC" 0
LSRC=$LSN
shield "$LSRC" 0x2017 5
conns src-a 6 "$CLI_IP" 30
expect "6 from $CLI_IP with SrcMaxConns 5" "$R" "ok=5 reset=1 timeout=0"
conns src-b 2 "$CLI_IP2" 1
expect "2 from $CLI_IP2 meanwhile" "$R" "ok=2 reset=0 timeout=0"
conns src-c 1 "$CLI_IP" 0
expect "1 more from $CLI_IP while it holds 5" "$R" "ok=0 reset=1 timeout=0"
mw_stop src-a
# The server closes its side when the client does; then the INS forgets them. Wait
# until the INS's sockets are gone in every state (CLOSE_WAIT, LAST_ACK too): the
# counts go with the INS's socket, after the app's close.
mw_wait_for "[ \$(in_ins ss -Htn '( sport = :$P_SRC )' | wc -l) = 0 ]" 10 ||
	mw_fail "the source's connections did not end"
sleep 0.5
conns src-d 5 "$CLI_IP" 0
expect "5 from $CLI_IP after the others ended" "$R" "ok=5 reset=0 timeout=0"
mw_log "(3) SrcMaxConns 5: the 6th reset, another address served, counts released"

# --- (4) new connections per second per prefix --------------------------------------------
PORT=$P_PFX
server srv-pfx "$P_PFX" 0
LPFX=$LSN
shield "$LPFX" 0x201a 2
# One probe opens both groups back to back: the second must come within the
# bucket's refill time whatever the machine's load.
conns pfx-ab 8,3 "$CLI_IP,$CLI_IP2" 0
mw_wait_for "[ \$(grep -c '^ok=' '$(mw_logfile pfx-ab)') = 2 ]" 20 || mw_fail "pfx-ab: no second outcome"
r1=$(grep '^ok=' "$(mw_logfile pfx-ab)" | sed -n 1p)
r2=$(grep '^ok=' "$(mw_logfile pfx-ab)" | sed -n 2p)
ok1=$(echo "$r1" | field ok)
if [ "$ok1" -lt 2 ] || [ "$ok1" -gt 3 ]; then
	mw_fail "8 at once from one /24 with PfxRate 2: $r1"
fi
[ "$(echo "$r2" | field reset)" -ge 2 ] || mw_fail "the same /24 right after, another address: $r2"
conns pfx-c 2 "$CLI_NET2" 0
expect "2 from another /24" "$R" "ok=2 reset=0 timeout=0"
pfx_resets=$(($(echo "$r1" | field reset) + $(echo "$r2" | field reset)))
mw_log "(4) PfxRate 2: $r1 then $r2 from one /24; another /24 served"

# --- (4b) new connections per source, concurrent connections per prefix ------------------
PORT=$P_SRATE
server srv-srate "$P_SRATE" 0
shield "$LSN" 0x2018 2
conns srate-a 6 "$CLI_IP" 0
ok1=$(echo "$R" | field ok)
if [ "$ok1" -lt 2 ] || [ "$ok1" -gt 3 ]; then
	mw_fail "6 at once from one address with SrcRate 2: $R"
fi
srate_resets=$(echo "$R" | field reset)
conns srate-b 2 "$CLI_IP2" 0
expect "2 from another address of the /24 with SrcRate 2" "$R" "ok=2 reset=0 timeout=0"
PORT=$P_PMAX
server srv-pmax "$P_PMAX" 0
shield "$LSN" 0x2019 3
conns pmax-a 2 "$CLI_IP" 20
expect "2 from $CLI_IP with PfxMaxConns 3" "$R" "ok=2 reset=0 timeout=0"
conns pmax-b 2 "$CLI_IP2" 0
expect "2 from $CLI_IP2 of the same /24 meanwhile" "$R" "ok=1 reset=1 timeout=0"
conns pmax-c 2 "$CLI_NET2" 0
expect "2 from another /24" "$R" "ok=2 reset=0 timeout=0"
mw_stop pmax-a
mw_log "(4b) SrcRate 2: $ok1 of 6 from one address, another served; PfxMaxConns 3: the 4th of a /24 reset"

# --- (5) the INS-wide bound: the slowest reader goes first -------------------------------
server srv-cut "$P_CUT" $((4 * 1024 * 1024))
shield "$LSN" 0x2016 $((8 * 1024 * 1024))
mw_spawn cut-slow in_cli "$PY" "$NFP" trickle "$INS_IP" "$P_CUT" 30
lport=$(lport_of "$(mw_logfile cut-slow)") || mw_fail "cut-slow did not connect"
mw_wait_for "grep -q 'wrote lport=$lport ' '$(mw_logfile srv-cut)'" 5 ||
	mw_fail "the first buffered write did not complete"
sleep 1.5 # measured: about 1 KiB/s
! grep -q '^cut_at' "$(mw_logfile cut-slow)" || mw_fail "the slow reader was cut before the bound was reached"
mw_spawn cut-new in_cli "$PY" "$NFP" hold "$INS_IP" "$P_CUT" 30
lport2=$(lport_of "$(mw_logfile cut-new)") || mw_fail "cut-new did not connect"
mw_wait_for "grep -q 'wrote lport=$lport2 ' '$(mw_logfile srv-cut)'" 5 ||
	mw_fail "the second buffered write did not complete: $(cat "$(mw_logfile srv-cut)")"
mw_wait_for "grep -q '^cut_at' '$(mw_logfile cut-slow)'" 5 ||
	mw_fail "the slow reader was not cut when the bound was reached"
end=$(grep '^cut_at' "$(mw_logfile cut-slow)" | field end)
[ "$end" = close ] || [ "$end" = reset ] || mw_fail "the cut reader saw '$end', not a reset"
mw_log "(5) shield_out_total reached: the 1 KiB/s reader was reset ($end), the new write completed"

# --- (6) stalled writers: beyond the bound, the longest stalled goes ------------------------
server srv-stall "$P_STALL" $((4 * 1024 * 1024))
shield "$LSN" 0x201c 1
mw_spawn stall-a in_cli "$PY" "$NFP" stuck "$INS_IP" "$P_STALL" 30
lport=$(lport_of "$(mw_logfile stall-a)") || mw_fail "stall-a did not connect"
sleep 1
! grep -q '^cut_at' "$(mw_logfile stall-a)" || mw_fail "one stalled writer (the bound) was reset"
mw_spawn stall-b in_cli "$PY" "$NFP" stuck "$INS_IP" "$P_STALL" 30
lport2=$(lport_of "$(mw_logfile stall-b)") || mw_fail "stall-b did not connect"
out=$(in_cli "$PY" "$RP" drain "$INS_IP" "$P_STALL" $((4 * 1024 * 1024)))
expect "a fast reader among stalled writers" "$(echo "$out" | field end)" "done"
mw_wait_for "grep -q '^cut_at' '$(mw_logfile stall-a)'" 5 ||
	mw_fail "the first stalled client was not reset when a second one stalled"
expect "the first stalled client" "$(grep '^cut_at' "$(mw_logfile stall-a)" | field end)" "close"
mw_wait_for "grep -q 'failed lport=$lport ' '$(mw_logfile srv-stall)'" 5 ||
	mw_fail "the app's write to the reset client did not fail: $(cat "$(mw_logfile srv-stall)")"
sleep 1
! grep -q '^cut_at' "$(mw_logfile stall-b)" || mw_fail "the second stalled client (within the bound) was reset"
! grep -q "lport=$lport2 " "$(mw_logfile srv-stall)" || mw_fail "the write to the kept stalled client ended"
mw_stop stall-b
mw_log "(6) StallMax 1: the first stalled client reset, the second kept, a fast reader served"

# --- counters -------------------------------------------------------------------------------
want="limits: 2 src conns, $srate_resets src rate, 1 pfx conns, $pfx_resets pfx rate, 0 untracked; 1 slow readers, 1 cut for buffer, [0-9]* slow senders, 1 stalled writers"
mw_wait_for "grep -q 'STATUS=ins 1: .*$want' '$(mw_logfile notify)'" 10 ||
	mw_fail "mw-ins's STATUS= line never said '$want': $(grep 'ins 1' "$(mw_logfile notify)" | tail -1)"
mw_log "counters: $want"
kill -0 "$(mw_pid ins1)" || mw_fail "mw-ins died"
kill -0 "$(mw_pid pvm)" || mw_fail "mw-pvm died"
