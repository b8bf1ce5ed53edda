# shellcheck shell=bash
# balancer_lib.sh - sourced by test_balancer*.sh after lib.sh: mw-pvm, nginx under the shim,
# mw-balancer (netns backend) in front of it, and helpers to drive it with mwctl.
#
# bal_up MIN MAX [EXTRA_BALANCER_KEYS]: starts mw-pvm, nginx (shimmed, port $PORT), then
# mw-balancer with MIN..MAX INS in namespaces mw-$TAG-ins<N> on bridge $BR, front end on
# 127.0.0.1:$PORT, PROXY v2 to the INS.  Sets CONF, MWCTL, BAL_LOG, URL, TAG, BR, PEER.
#
# MW_BALANCER_MODE=kernel (ctest's *_kernel copies): balancer.mode = "kernel" (nftables
# DNAT, no PROXY v2); the front end is $MW_FRONT:$PORT, an address of this host on a veth
# link (the kernel cannot steer a 127/8 source to an INS), which is then also the client's
# own address: PEER, what the app must see as the peer in both modes.

# Per-run port, tag, bridge and subnet: another checkout's run of these tests may overlap.
# (below 32768, where Linux starts handing out ephemeral ports)
PORT=$((20000 + $$ % 12000))
TAG=t$(($$ % 100000))
BR=mwb$(($$ % 100000))
SUBNET_PREFIX=10.$((200 + $$ % 50)).$(($$ % 250))
BAL_MODE=${MW_BALANCER_MODE:-splice}
MW_FRONT=127.0.0.1
# shellcheck disable=SC2034 # for the tests that source this
PEER=127.0.0.1
export MW_FRONT
if [ "$BAL_MODE" = kernel ]; then
	MW_FRONT=172.$((16 + $$ % 16)).$((($$ / 16) % 250)).1
	# shellcheck disable=SC2034 # for the tests that source this
	PEER=$MW_FRONT
fi
# bal_mode_keys: the balancer and ins keys of the mode (PROXY v2 in splice mode only).
bal_mode_keys() {
	if [ "$BAL_MODE" = kernel ]; then
		echo "mode = \"kernel\";"
	else
		echo "mode = \"splice\";"
	fi
}
bal_proxy_keys() {
	[ "$BAL_MODE" = kernel ] && return 0
	echo "proxy_protocol = true; proxy_from = \"$SUBNET_PREFIX.1/32\";"
}
# bal_front_up: kernel mode's front-end address on a veth of its own (removed by lib.sh).
bal_front_up() {
	[ "$BAL_MODE" = kernel ] || return 0
	local link=$MW_PREFIX-fe
	ip link add "$link" type veth peer name "$MW_PREFIX-fp" || mw_fail "cannot add veth $link"
	_mw_veths+=("$link")
	if ! ip addr add "$MW_FRONT/32" dev "$link" || ! ip link set "$link" up ||
		! ip link set "$MW_PREFIX-fp" up; then
		mw_fail "cannot give $link the address $MW_FRONT"
	fi
}

bal_up() {
	local min=$1 max=$2 extra=${3:-}
	mw_require_root
	mw_require_cmd ip nginx curl
	mw_ins_user >/dev/null
	PVM=$(mw_need_bin mw-pvm)
	SHIM=$(mw_need_bin libmwshim.so)
	BAL=$(mw_need_bin mw-balancer)
	MWCTL=$MW_BUILD_DIR/tools/mwctl
	[ -x "$MWCTL" ] || mw_fail "mwctl is not built ($MWCTL)"
	local hard
	hard=$(ulimit -Hn)
	[ "$hard" = unlimited ] || [ "$hard" -gt 65536 ] && hard=65536
	ulimit -n "$hard" || mw_fail "cannot raise the open-file limit to $hard"
	CONF=$MW_TMP/mwcomms.conf
	bal_front_up
	BAL_LOG=$(mw_logfile balancer)
	mw_write_config "$CONF" "pvm: { control_socket = \"$MW_RUNTIME_DIR/pvm.sock\";
	ins_socket = \"$MW_RUNTIME_DIR/pvm-ins.sock\"; heartbeat_timeout_ms = 1000; };
ins: { pvm_socket = \"$MW_RUNTIME_DIR/pvm-ins.sock\"; heartbeat_ms = 200;
	$(bal_proxy_keys) };
balancer: { control_socket = \"$MW_RUNTIME_DIR/balancer.sock\"; backend = \"netns\";
	$(bal_mode_keys) min_ins = $min; max_ins = $max; listen = [ \"$MW_FRONT:$PORT\" ];
	subnet = \"$SUBNET_PREFIX.0/24\"; bridge = \"$BR\"; tag = \"$TAG\";
	connect_timeout_ms = 1000; $extra };"
	mw_spawn pvm "$PVM" -c "$CONF"
	mw_wait_for "[ -S '$MW_RUNTIME_DIR/pvm.sock' ] && [ -S '$MW_RUNTIME_DIR/pvm-ins.sock' ]" ||
		mw_fail "mw-pvm did not create its sockets"

	WWW=$MW_TMP/www
	NGX=$MW_TMP/nginx
	mkdir -p "$WWW" "$NGX"
	echo "<h1>mwcomms balancer test $$</h1>" >"$WWW/index.html"
	cat >"$NGX/nginx.conf" <<NGINX
daemon off;
master_process on;
worker_processes 2;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 4096; }
http {
	log_format peer '\$remote_addr';
	access_log $NGX/access.log peer;
	keepalive_timeout 65;
	client_body_temp_path $NGX/body;
	proxy_temp_path $NGX/proxy;
	fastcgi_temp_path $NGX/fastcgi;
	uwsgi_temp_path $NGX/uwsgi;
	scgi_temp_path $NGX/scgi;
	server {
		listen $PORT;
		root $WWW;
	}
}
NGINX
	# The INS come first: an app's socket() fails (ENETDOWN) while no INS is joined.
	mw_spawn balancer "$BAL" -c "$CONF"
	mw_wait_for "[ \$(grep -c 'INS [0-9]* joined' '$(mw_logfile pvm)') -ge $min ]" 20 ||
		mw_fail "$min INS did not join mw-pvm"
	# A sanitizer build's shim in an unsanitized nginx: ASan must not insist on coming first.
	mw_spawn nginx env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm.sock" \
		nginx -c "$NGX/nginx.conf"
	mw_wait_for "[ -s '$NGX/nginx.pid' ]" 10 || mw_fail "nginx did not start"
	URL=http://$MW_FRONT:$PORT
	bal_wait_ready "$min" 20 || mw_fail "$min INS did not become ready"
}

# ctl ARGS...: mwctl against the test's balancer.
ctl() { "$MWCTL" -s "$MW_RUNTIME_DIR/balancer.sock" "$@"; }

# bal_ready_count: INS in state ready.
bal_ready_count() { ctl ins list | awk '$2 == "ready"' | wc -l; }
# bal_wait_ready N [TIMEOUT]: exactly N INS ready and none starting; kernel mode: every
# ready one has passed a health check too, i.e. is in steering (docs/balancer.md: the
# kernel cannot retry a refused connect, so an INS joins after its first passed check),
# else a load started at once meets an empty "steer" and is refused.
bal_wait_ready() {
	local steering=true
	[ "$BAL_MODE" = kernel ] && steering="! ctl ins list | awk '\$2 == \"ready\" && \$8 != \"ok\"' | grep -q ."
	mw_wait_for "[ \$(bal_ready_count) = $1 ] && ! ctl ins list | awk '\$2 == \"starting\"' | grep -q . && $steering" "${2:-20}"
}

# load N PAR OUT: N requests, PAR curl processes, one connection per request
# ("Connection: close"); every status code appended to OUT, one a line.
load() {
	local n=$1 par=$2 out=$3 c i cfg pids=()
	for ((c = 0; c < par; c++)); do
		cfg=$out.$c.curl
		# header is a global option in a curl config: once, not per url
		echo 'header = "Connection: close"' >"$cfg"
		for ((i = 0; i < n / par; i++)); do
			printf 'url = "%s/index.html"\noutput = "/dev/null"\n' "$URL"
		done >>"$cfg"
		# curl's error for each failed request to OUT.err (a failing test shows it)
		curl -s --max-time 120 --connect-timeout 5 -K "$cfg" \
			-w '%{http_code}\n%{stderr}%{http_code} %{errormsg}\n' >"$out.$c" 2>"$out.$c.err" &
		pids+=($!)
	done
	wait "${pids[@]}" || true
	for ((c = 0; c < par; c++)); do
		cat "$out.$c" >>"$out" && rm -f "$out.$c"
		{ grep -v '^200 ' "$out.$c.err" || true; } >>"$out.err"
		rm -f "$out.$c.err"
	done
	rm -f "$out".*.curl
}

# bal_ins_total ID: the connections sent to INS ID so far.  Kernel mode: the packet
# counter of its chain ins_ID, read from the kernel (a nat chain sees a connection's
# first packet only); the balancer's "total" polls that counter each tick, before it
# counts connections, so it can lag one behind a connection it already counts.
bal_ins_total() {
	if [ "$BAL_MODE" = kernel ]; then
		nft list chain ip "mwbal_$TAG" "ins_$1" | awk '$1 == "counter" {print $3; exit}'
	else
		ctl ins list | awk -v v="$1" '$1 == v {print $6}'
	fi
}

# ins_totals: "id total" per INS, from mwctl --json.
ins_field() { ctl ins list | awk -v col="$1" 'NR > 1 {print $1, $col}'; }

# bal_hold FLAG: in the background ($! is its pid), one keep-alive connection to the
# front end: a request at once (FLAG.1 = ok|bad), a second on it once FLAG.go exists
# (FLAG.2 = ok|bad): a drain must let it live.
bal_hold() {
	python3 - "$PORT" "$1" <<'PY' &
import os, socket, sys, time
port, flag = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection((os.environ["MW_FRONT"], port), timeout=20)
req = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"
s.sendall(req); r1 = s.recv(65536)
open(flag + ".1", "w").write("ok" if b"200 OK" in r1 else "bad")
for _ in range(400):
    if os.path.exists(flag + ".go"): break
    time.sleep(0.05)
s.sendall(req); r2 = s.recv(65536)
open(flag + ".2", "w").write("ok" if b"200 OK" in r2 else "bad")
s.close()
PY
}
