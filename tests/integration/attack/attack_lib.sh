# shellcheck shell=bash
# attack_lib.sh - sourced after ../lib.sh by the attack tests and tests/bench/b9_attacks.sh
#
#   source "$(dirname "$0")/../lib.sh"; source "$(dirname "$0")/attack_lib.sh"
#
# Real attack tools against a real server while a benign client measures what is
# left of the service. One row = one attack in one layout (ATK_SECS + 3 seconds):
#   benign  in namespace cli (10.231.0.1): a small request every 0.2 s, each on a
#           new connection; ok = answered within 3 s (atk_client.py benign)
#   attack  ATK_CONNS connections opened at ATK_RATE/s, from
#           separate  namespace atk, SNAT to one address of its own per row (10.233.ROW.1)
#           shared    namespace cli itself: the benign client's one address (a NAT)
#           spread    namespace atk, SNAT per connection over 100 addresses in 100
#                     different /24s (10.128+I.ROW.1, I = 0..99; nftables numgen):
#                     slowhttptest cannot bind, and one process stays one tool run
#   Each row's attacker addresses are new, so what a defence learnt in one row
#   (blocks, per-source counts) does not decide the next.
# A row passes when ATK_MIN_OK % (99) of its benign requests succeed. mw-guard
# (build/guard/mw-guard) runs when ATK_GUARD=1 and it is built; its action lines
# are collected per row. Env: ATK_SECS (12: the benign client sends for 12 s, the
# attack lasts 3 s more), ATK_CONNS (1000), ATK_RATE (200),
# ATK_GUARD (1), ATK_MIN_OK (99), ATK_ATTACKS / ATK_LAYOUTS (a test's matrix).
ATK_SECS=${ATK_SECS:-12}
ATK_CONNS=${ATK_CONNS:-1000}
ATK_RATE=${ATK_RATE:-200}
ATK_GUARD=${ATK_GUARD:-1}
ATK_MIN_OK=${ATK_MIN_OK:-99}
ATK_DIR=$MW_SOURCE_DIR/tests/integration/attack
ATK_CLIENT=$ATK_DIR/atk_client.py
ATK_NET=10.232.0 # namespace atk <-> namespace ins: .1 attackers, .2 the INS side
ATK_ROW=0
ATK_GUARD_ON=0
ATK_TABLE=$MW_TMP/atk-table
ATK_FAILS=$MW_TMP/atk-fails
: >"$ATK_TABLE"
: >"$ATK_FAILS"

# atk_guard_bin: where mw-guard is built (whether or not it exists).
atk_guard_bin() { echo "$MW_BUILD_DIR/guard/mw-guard"; }

# atk_guard_config LISTENERS...: the guard section for "PORT:PROTO" listeners, or
# nothing when mw-guard will not run (mw-pvm rejects sections it does not know
# of builds that have no guard).
atk_guard_config() {
	[ "$ATK_GUARD" = 1 ] && [ -x "$(atk_guard_bin)" ] || return 0
	local l list=""
	for l in "$@"; do list+="${list:+, }\"$l\""; done
	echo "guard: { netflow = \"$MW_RUNTIME_DIR/netflow-0.sock\";
	control_socket = \"$MW_RUNTIME_DIR/guard.sock\"; mode = \"enforce\"; listeners = [ $list ]; ${ATK_GUARD_EXTRA:-} };"
}

# atk_appliance_up LISTENERS...: mw-pvm + one mw-ins (lib.sh), the attackers'
# namespace, and mw-guard watching the "PORT:PROTO" LISTENERS when it is built.
atk_appliance_up() {
	mw_require_cmd python3 nft slowhttptest
	# The shipped heartbeat timeout (3 s), not lib.sh's 1 s: with 1,000 attack
	# connections on 2 loaded cores, mw-ins was once 1.075 s late and judged dead.
	MW_HEARTBEAT_TIMEOUT_MS=3000 mw_appliance_up "$(atk_guard_config "$@")"
	atk_net_up
	atk_guard_up
}

# atk_net_up: namespace atk ($ATK_NET.1), linked to namespace ins ($ATK_NET.2),
# which routes every attacker address (10.0.0.0/8 beyond its own links) back.
atk_net_up() {
	mw_netns_add atk
	NS_ATK=$(mw_netns atk)
	mw_veth_add a b atk
	ip link set "$(mw_veth a)" netns "$NS_INS" || mw_fail "moving $(mw_veth a) into $NS_INS failed"
	ip -n "$NS_INS" addr add "$ATK_NET.2/24" dev "$(mw_veth a)"
	ip -n "$NS_INS" link set "$(mw_veth a)" up
	ip -n "$NS_INS" route add 10.0.0.0/8 via "$ATK_NET.1"
	ip -n "$NS_ATK" addr add "$ATK_NET.1/24" dev "$(mw_veth b)"
	ip -n "$NS_ATK" link set "$(mw_veth b)" up
	ip -n "$NS_ATK" route add default via "$ATK_NET.2"
}

# atk_nat ROW LAYOUT: namespace atk's source addresses for this row.
atk_nat() {
	local row=$1 layout=$2 i to map=""
	case $layout in
	separate) to="10.233.$row.1" ;;
	spread)
		for ((i = 0; i < 100; i++)); do map+="${map:+, }$i : 10.$((128 + i)).$row.1"; done
		to="numgen inc mod 100 map { $map }"
		;;
	*) return 0 ;;
	esac
	ip netns exec "$NS_ATK" nft -f - <<NFT || mw_fail "nft in namespace atk failed"
table ip atk
delete table ip atk
table ip atk {
	chain post {
		type nat hook postrouting priority 100;
		oifname "$(mw_veth b)" ip protocol tcp snat ip to $to
	}
}
NFT
}

# atk_guard_up: start mw-guard and wait for its ready line, or say why not.
atk_guard_up() {
	local g
	g=$(atk_guard_bin)
	if [ "$ATK_GUARD" != 1 ]; then
		mw_log "ATK_GUARD=$ATK_GUARD: running unprotected"
		return 0
	fi
	if [ ! -x "$g" ]; then
		echo "mw-guard not built: running unprotected" >&2
		return 0
	fi
	mw_spawn guard "$g" -c "$CONF"
	mw_wait_for "grep -q 'notice: ready:' '$(mw_logfile guard)'" 15 ||
		mw_fail "mw-guard did not log 'notice: ready:' within 15 s"
	ATK_GUARD_ON=1
}

# atk_www: $WWW with index.html (small), mid.bin (256 KiB) and big.bin (1 MiB).
atk_www() {
	WWW=$MW_TMP/www
	mkdir -p "$WWW"
	echo "<h1>attack test $$</h1>" >"$WWW/index.html"
	head -c 262144 /dev/urandom >"$WWW/mid.bin"
	head -c 1048576 /dev/urandom >"$WWW/big.bin"
	chmod -R a+rX "$WWW"
}

# atk_nginx_conf NAME PORT: nginx with its built-in defaults: one worker of 512
# connections, keepalive_timeout 75, client_header/body_timeout and send_timeout 60 s.
# (Debian's nginx.conf gives each CPU a worker of 768: 1,536 here, more than the
# 1,000 attack connections, so the attacks would test nothing.)
atk_nginx_conf() {
	local d=$MW_TMP/nginx-$1
	mkdir -p "$d"
	cat >"$d/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log error;
events { worker_connections 512; }
http {
	access_log off;
	sendfile on;
	types { application/octet-stream bin; text/html html; }
	client_body_temp_path $d/body;
	proxy_temp_path $d/proxy;
	fastcgi_temp_path $d/fastcgi;
	uwsgi_temp_path $d/uwsgi;
	scgi_temp_path $d/scgi;
	server { listen $2; root $WWW; }
}
NGINX
	echo "$d/nginx.conf"
}

# atk_apache_conf NAME PORT: Apache httpd, mpm_worker with its Debian defaults:
# 150 request slots (MaxRequestWorkers), KeepAliveTimeout 5, Timeout 300,
# mod_reqtimeout's defaults (header=20-40,MinRate=500 body=20,MinRate=500).
atk_apache_conf() {
	local d=$MW_TMP/apache-$1 m=/usr/lib/apache2/modules
	mkdir -p "$d"
	cat >"$d/apache2.conf" <<APACHE
LoadModule mpm_worker_module $m/mod_mpm_worker.so
LoadModule authz_core_module $m/mod_authz_core.so
LoadModule mime_module $m/mod_mime.so
LoadModule reqtimeout_module $m/mod_reqtimeout.so
ServerName atk
Listen $2
DefaultRuntimeDir $d
PidFile $d/apache2.pid
Mutex file:$d default
ErrorLog $d/error.log
LogLevel error
User www-data
Group www-data
TypesConfig /etc/mime.types
DocumentRoot $WWW
<Directory />
	Require all granted
</Directory>
Timeout 300
KeepAlive On
MaxKeepAliveRequests 100
KeepAliveTimeout 5
StartServers 2
MinSpareThreads 25
MaxSpareThreads 75
ThreadLimit 64
ThreadsPerChild 25
MaxRequestWorkers 150
MaxConnectionsPerChild 0
RequestReadTimeout header=20-40,MinRate=500 body=20,MinRate=500
APACHE
	echo "$d/apache2.conf"
}

# atk_server KIND HOW NAME PORT: start nginx | apache | redis as process NAME,
# HOW = shimmed (behind mwcomms) or in_ins (alone in namespace ins); wait until
# it answers from namespace cli.
atk_server() {
	local kind=$1 how=$2 name=$3 port=$4
	case $kind in
	nginx) mw_spawn "$name" "$how" nginx -c "$(atk_nginx_conf "$name" "$port")" ;;
	apache) mw_spawn "$name" "$how" apache2 -f "$(atk_apache_conf "$name" "$port")" -DFOREGROUND ;;
	redis)
		# maxclients 512: a bounded number of client slots, as memcached's 1,024
		# (Redis's own default, 10,000, is above what this test opens).
		mw_spawn "$name" "$how" redis-server --port "$port" --bind 0.0.0.0 --protected-mode no \
			--save '' --appendonly no --maxclients 512 --dir "$MW_TMP"
		;;
	*) mw_fail "atk_server: unknown server '$kind'" ;;
	esac
	atk_healthy "$(atk_proto "$kind")" "$port" 20 || mw_fail "$kind ($name) does not answer on port $port"
}

# atk_proto KIND: the benign client's protocol for a server kind.
atk_proto() { case $1 in redis) echo resp ;; *) echo http ;; esac; }

# atk_healthy PROTO PORT [TIMEOUT_S=30]: one benign request succeeds (server recovered).
# Bounded by the clock (each try may take 3 s), not by a count of tries.
atk_healthy() {
	local until=$((SECONDS + ${3:-30}))
	while [ "$SECONDS" -lt "$until" ]; do
		in_cli python3 "$ATK_CLIENT" benign "$1" "$INS_IP" "$2" 0.2 | grep -q '^RESULT ok=1 ' && return 0
		sleep 0.2
	done
	mw_log "port $2 did not answer within ${3:-30} s"
	return 1
}

# atk_attack_cmd ATTACK PORT: the attacking command line (slowhttptest, or atk_client.py).
# It lasts ATK_SECS + 3: the benign client's last request, sent at ATK_SECS, has its
# 3 s under attack too (else the end of the attack would answer it).
atk_attack_cmd() {
	local url="http://$INS_IP:$2" s=$((ATK_SECS + 3)) c=$ATK_CONNS r=$ATK_RATE
	case $1 in
	slowh) echo "slowhttptest -H -c $c -r $r -i 10 -x 24 -p 3 -l $s -t GET -u $url/index.html" ;;
	slowb) echo "slowhttptest -B -c $c -r $r -i 10 -x 10 -s 8192 -p 3 -l $s -t POST -u $url/index.html" ;;
	slowr) echo "slowhttptest -X -c $c -r $r -w 512 -y 1024 -n 5 -z 32 -k 3 -p 3 -l $s -u $url/big.bin" ;;
	flood) echo "python3 $ATK_CLIENT flood $INS_IP $2 $c $r $s" ;;
	slowline) echo "python3 $ATK_CLIENT slowline $INS_IP $2 $c $r $s" ;;
	*) mw_fail "atk_attack_cmd: unknown attack '$1'" ;;
	esac
}

# _atk_actions FROM_BYTE: "kind:count ..." of mw-guard's action lines since FROM_BYTE,
# the lines themselves appended to $MW_TMP/atk-row-$ATK_ROW.actions.
_atk_actions() {
	[ "$ATK_GUARD_ON" = 1 ] || {
		echo "-"
		return 0
	}
	local f=$MW_TMP/atk-row-$ATK_ROW.actions
	tail -c "+$(($1 + 1))" "$(mw_logfile guard)" | grep 'notice: action [0-9]*:' >"$f" || true
	[ -s "$f" ] || {
		echo "none"
		return 0
	}
	sed -n 's/.*notice: action [0-9]*: \([a-z_]*\).*/\1/p' "$f" | sort | uniq -c |
		awk '{printf "%s%s:%s", (NR > 1 ? " " : ""), $2, $1}'
}
_atk_guard_offset() { [ "$ATK_GUARD_ON" = 1 ] && stat -c %s "$(mw_logfile guard)" || echo 0; }

# _atk_record SERVER ATTACK LAYOUT RESULT_LINE ACTIONS [WHY]: one table row; a
# failing row also goes to the FAIL list.
_atk_record() {
	local ok total p99 last pct why=${6:-}
	ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$4")
	total=$(sed -n 's/.* total=\([0-9]*\).*/\1/p' <<<"$4")
	p99=$(sed -n 's/.* p99_ms=\([0-9]*\).*/\1/p' <<<"$4")
	last=$(sed -n 's/.* last_fail_s=\([-0-9.]*\).*/\1/p' <<<"$4")
	if [ -z "$ok" ] || [ "${total:-0}" = 0 ]; then
		ok=0 total=0 pct=0 why=${why:-"benign client gave no result"}
	else
		pct=$(awk -v o="$ok" -v t="$total" 'BEGIN {printf "%.1f", 100 * o / t}')
		[ $((ok * 100)) -ge $((ATK_MIN_OK * total)) ] || why=${why:-"$pct % < $ATK_MIN_OK %"}
	fi
	printf '| %-8s | %-10s | %-11s | %5s %% (%s/%s) | %6s | %11s | %s |\n' "$1" "$2" "$3" \
		"$pct" "$ok" "$total" "${p99:--}" "${last:--}" "$5" >>"$ATK_TABLE"
	echo "$1 $2 $3 $pct ${p99:--} ${last:--}" >>"$MW_TMP/atk-data"
	[ -z "$why" ] || echo "FAIL row $ATK_ROW: $1 $2 $3: $why" >>"$ATK_FAILS"
}

# _atk_trim_log NAME: keep the last lines of a tool's log, without its colour codes
# (slowhttptest prints a screen a second; a failing test prints every log).
_atk_trim_log() {
	local f
	f=$(mw_logfile "$1")
	sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$f" | { grep -v '^[[:space:]]*$' || true; } | tail -n 12 >"$f.trim"
	mv "$f.trim" "$f"
}

# _atk_wait_calm: with mw-guard on, wait (60 s at most) until every pressure
# shield_set has had its shield_clear (guard.calm_ms after the last pressure).
_atk_wait_calm() {
	[ "$ATK_GUARD_ON" = 1 ] || return 0
	mw_wait_for "[ \$(grep -c 'shield_set .* reason=pressure' '$(mw_logfile guard)') -le \$(grep -c 'shield_clear .* reason=calm' '$(mw_logfile guard)') ]" 60
}

# atk_row SERVER PORT ATTACK LAYOUT: one attack in one layout while the benign
# client runs; the row goes to the table.
atk_row() {
	local server=$1 port=$2 attack=$3 layout=$4 proto ns off res why="" cmd srcs
	proto=$(atk_proto "$server")
	ATK_ROW=$((ATK_ROW + 1))
	atk_nat "$ATK_ROW" "$layout"
	ns=$NS_ATK
	[ "$layout" != shared ] || ns=$NS_CLI
	# The shared row's attacker is the benign client's own address: per-source levers
	# an earlier row switched on would refuse the benign client from its first
	# request, and that earlier row, not this attack, would decide the row.
	if [ "$layout" = shared ]; then
		_atk_wait_calm || why="mw-guard kept its pressure levers on 60 s after the attacks"
	fi
	atk_healthy "$proto" "$port" 30 || why=${why:-"not serving before the attack"}
	off=$(_atk_guard_offset)
	cmd=$(atk_attack_cmd "$attack" "$port")
	mw_log "row $ATK_ROW: $server $attack $layout: $cmd"
	mw_spawn "ben-$ATK_ROW" in_cli python3 "$ATK_CLIENT" benign "$proto" "$INS_IP" "$port" "$ATK_SECS"
	# shellcheck disable=SC2086 # cmd is a command line
	mw_spawn "atk-$ATK_ROW" ip netns exec "$ns" timeout -s INT -k 3 $((ATK_SECS + 5)) $cmd
	# Mid-attack, the INS side's view: how many connections from how many addresses.
	sleep $((ATK_SECS / 2))
	srcs=$(in_ins ss -Htn "sport = :$port" | awk '{split($5, a, ":"); n++; s[a[1]]++} END {print n + 0 " conns from " length(s) " addrs"}')
	wait "$(mw_pid "ben-$ATK_ROW")" || why=${why:-"benign client failed"}
	# the tools stop by themselves after ATK_SECS + 3 (their summary in the log)
	mw_wait_for "! ps -o stat= -p $(mw_pid "atk-$ATK_ROW") | grep -q '^[^Z]'" 5 || true
	mw_stop "atk-$ATK_ROW" 5
	_atk_trim_log "atk-$ATK_ROW"
	res=$(grep '^RESULT' "$(mw_logfile "ben-$ATK_ROW")" || true)
	mw_log "row $ATK_ROW: mid-attack at the INS: $srcs; benign $res"
	_atk_record "$server" "$attack" "$layout" "$res" "$(_atk_actions "$off")" "$why"
}

# atk_benign_only SERVER PORT KEEPALIVE_IDLE_S: slow but legitimate clients and
# the benign client, no attack: 20 clients sending a 400-byte request over 4 s,
# 10 downloading 256 KiB at 50 KiB/s, 20 idle keep-alive connections (a request,
# KEEPALIVE_IDLE_S idle, a request): none may fail, mw-guard closes and blocks nothing.
atk_benign_only() {
	local server=$1 port=$2 idle=$3 proto off res why="" n secs=12 r
	proto=$(atk_proto "$server")
	ATK_ROW=$((ATK_ROW + 1))
	atk_healthy "$proto" "$port" 30 || why="not serving before the run"
	# A benign-only run is one without pressure: the levers an earlier row's attack
	# switched on (per-source rates among them) are off again first (guard.calm_ms).
	_atk_wait_calm || why="mw-guard kept its pressure levers on 60 s after the attacks"
	off=$(_atk_guard_offset)
	mw_log "row $ATK_ROW: $server benign-only with slow legitimate clients"
	mw_spawn "ben-$ATK_ROW" in_cli python3 "$ATK_CLIENT" benign "$proto" "$INS_IP" "$port" "$secs"
	mw_spawn "sreq-$ATK_ROW" in_cli python3 "$ATK_CLIENT" slowreq "$proto" "$INS_IP" "$port" 20
	mw_spawn "sdl-$ATK_ROW" in_cli python3 "$ATK_CLIENT" slowdl "$proto" "$INS_IP" "$port" 10 262144 51200 /mid.bin
	mw_spawn "ka-$ATK_ROW" in_cli python3 "$ATK_CLIENT" keepalive "$proto" "$INS_IP" "$port" 20 "$idle"
	for n in ben sreq sdl ka; do
		wait "$(mw_pid "$n-$ATK_ROW")" || why=${why:-"$n client exited with an error"}
	done
	for n in sreq sdl ka; do
		r=$(grep '^RESULT' "$(mw_logfile "$n-$ATK_ROW")" || true)
		[[ $r =~ ok=([0-9]+)\ total=([0-9]+) ]] && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] ||
			why=${why:-"slow legitimate clients ($n): ${r:-no result}"}
	done
	res=$(grep '^RESULT' "$(mw_logfile "ben-$ATK_ROW")" || true)
	local acts
	acts=$(_atk_actions "$off")
	case " $acts" in *" close:"* | *" block:"*) why=${why:-"mw-guard acted on benign traffic: $acts"} ;; esac
	_atk_record "$server" slow-legit benign-only "$res" "$acts" "$why"
}

# atk_report TITLE [nofail]: print the table and the FAIL rows; fail the test if
# any, unless nofail (the benchmark reports, it does not judge).
atk_report() {
	local n
	for n in pvm ins1 guard; do
		[ -z "${_mw_pid[$n]:-}" ] || kill -0 "${_mw_pid[$n]}" 2>/dev/null ||
			echo "FAIL: $n is no longer running" >>"$ATK_FAILS"
	done
	{
		echo
		echo "== $1 (ATK_SECS=$ATK_SECS: benign for ${ATK_SECS} s, attack for $((ATK_SECS + 3)) s, $ATK_CONNS connections at $ATK_RATE/s, mw-guard $([ "$ATK_GUARD_ON" = 1 ] && echo on || echo off)) =="
		echo "| server   | attack     | layout      | benign ok | p99 ms | last fail s | mw-guard actions |"
		echo "|----------|------------|-------------|-----------|--------|-------------|------------------|"
		cat "$ATK_TABLE"
		local f
		for f in "$MW_TMP"/atk-row-*.actions; do
			[ -s "$f" ] || continue
			echo "-- mw-guard, row $(basename "$f" .actions | sed 's/atk-row-//'), first actions:"
			head -n 5 "$f"
		done
		if [ -s "$ATK_FAILS" ]; then
			echo
			cat "$ATK_FAILS"
		fi
	} | tee "$MW_TMP/atk-report" >&2
	if [ "${2:-}" != nofail ] && [ -s "$ATK_FAILS" ]; then
		# the table again after the logs the failure prints, as the last of them
		mw_spawn report cat "$MW_TMP/atk-report"
		wait "$(mw_pid report)" || true
	fi
	[ "${2:-}" = nofail ] || [ ! -s "$ATK_FAILS" ] || mw_fail "$(wc -l <"$ATK_FAILS") of $ATK_ROW rows below $ATK_MIN_OK % benign success (table above)"
}

# atk_matrix SERVER PORT ATTACKS LAYOUTS: every attack in every layout.
atk_matrix() {
	local a l
	for l in $4; do
		for a in $3; do
			atk_row "$1" "$2" "$a" "$l"
		done
	done
}
