#!/usr/bin/env bash
# b4_held.sh - B4: idle connections held through mwcomms, and memory per connection
#
# One INS appliance (tests/integration/lib.sh mw_appliance_up): a client in namespace cli
# opens N connections (default 100,000) to nginx under libmwshim.so, whose listener is in
# mw-ins in namespace ins, and holds them idle.  The client binds ADDRS source addresses
# (IP_BIND_ADDRESS_NO_PORT; 4 x ~64,000 ports) so the port range is not the limit, and keeps
# at most WINDOW connects in flight so the INS's accept queue does not overflow.
# Reports what was held (client side, INS socket table, app file descriptors) and the
# memory it cost: RSS growth of mw-pvm, mw-ins and nginx divided by the connections, and
# the kernel's TCP buffer memory (/proc/net/sockstat "mem", pages: 0 for idle sockets)
# and TCP socket slab (/proc/slabinfo "TCP"); both ends of every connection are in this one
# kernel, so those are the cost of two sockets.
# Bounded: CONNECT_S for the connects (default 180), HOLD_S held (default 10), then closed.
# Usage: MW_BUILD_DIR=build-rel N=100000 bash tests/bench/b4_held.sh
N=${N:-100000}
ADDRS=${ADDRS:-4}
WINDOW=${WINDOW:-512}
CONNECT_S=${CONNECT_S:-180}
HOLD_S=${HOLD_S:-10}
: "${MW_BUILD_DIR:?set MW_BUILD_DIR to the build tree (e.g. build)}"
MW_BUILD_DIR=$(cd "$MW_BUILD_DIR" && pwd)
source "$(dirname "$0")/../integration/lib.sh"
mw_require_cmd nginx python3 prlimit ss
NOFILE=$((N + 65536))
[ "$NOFILE" -le "$(cat /proc/sys/fs/nr_open)" ] || NOFILE=$(cat /proc/sys/fs/nr_open)
# Root may raise its hard limit; a container may forbid it (no CAP_SYS_RESOURCE): then
# every process (client, mw-ins, the app) is held to the hard limit, and so is N.
LIMIT=none
if ! ulimit -Hn "$NOFILE" 2>/dev/null; then
	NOFILE=$(ulimit -Hn)
	if [ "$N" -gt $((NOFILE - 2048)) ]; then
		LIMIT="open-file hard limit $NOFILE (cannot be raised here)"
		mw_log "N=$N does not fit the open-file hard limit $NOFILE: N=$((NOFILE - 2048))"
		N=$((NOFILE - 2048))
	fi
fi
# mw_appliance_up sets the soft limit (capped at 65536) and starts mw-pvm and mw-ins;
# mw-ins raises its own to ins.nofile, mw-pvm is raised below.
MW_INS_CONF="nofile = $NOFILE;" mw_appliance_up
ulimit -n "$NOFILE"
prlimit --pid "$(mw_pid pvm)" --nofile="$NOFILE:$NOFILE" || mw_fail "prlimit mw-pvm failed"
ins_pid=$(mw_pid ins1) # ip netns exec execs mw-ins: same pid
[ "$(cat "/proc/$ins_pid/comm")" = mw-ins ] || mw_fail "pid $ins_pid is $(cat "/proc/$ins_pid/comm"), not mw-ins"
prlimit --pid "$ins_pid" --nofile="$NOFILE:$NOFILE" || mw_fail "prlimit mw-ins failed"
in_ins sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
in_cli sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
SRCS=()
for ((a = 0; a < ADDRS; a++)); do
	ip -n "$NS_CLI" addr add "10.231.0.$((100 + a))/24" dev "$(mw_veth c)" || mw_fail "address $a"
	SRCS+=("10.231.0.$((100 + a))")
done

WWW=$MW_TMP/www
NGX=$MW_TMP/nginx
mkdir -p "$WWW" "$NGX"
echo "held" >"$WWW/index.html"
cat >"$NGX/nginx.conf" <<NGINX
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $NGX/nginx.pid;
error_log $NGX/error.log error;
events { worker_connections $((N + 1024)); multi_accept on; }
http {
	access_log off;
	client_header_timeout 3600s;
	client_body_temp_path $NGX/body;
	proxy_temp_path $NGX/proxy;
	fastcgi_temp_path $NGX/fastcgi;
	uwsgi_temp_path $NGX/uwsgi;
	scgi_temp_path $NGX/scgi;
	server { listen 8004 backlog=65535; root $WWW; }
}
NGINX
mw_spawn nginx shimmed nginx -c "$NGX/nginx.conf"
mw_wait_for "in_cli curl -sf -o /dev/null --max-time 2 http://$INS_IP:8004/" 15 || mw_fail "nginx does not answer"
worker=$(pgrep -P "$(cat "$NGX/nginx.pid")" | head -1)
[ -n "$worker" ] || mw_fail "no nginx worker"

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; } # KiB
tcp_mem() { awk '$1 == "TCP:" {for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1)}' /proc/net/sockstat; }
# bytes in the kernel's TCP socket slab (struct tcp_sock, both ends), when readable
tcp_slab() { awk '$1 == "TCP" {print $2 * $4; f = 1} END {if (!f) print 0}' /proc/slabinfo 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }
estab_ins() { in_ins ss -Htn state established "( sport = :8004 )" | wc -l; }
pvm_pid=$(mw_pid pvm)
r0_pvm=$(rss "$pvm_pid") r0_ins=$(rss "$ins_pid") r0_app=$(rss "$worker") m0=$(tcp_mem) s0=$(tcp_slab) f0=$(fds "$worker")

# The client: non-blocking connects, WINDOW in flight, then hold; $MW_TMP/held.1 gets
# "connected failed seconds", held.2 "still_open" after HOLD_S (a peer close is seen as EOF).
in_cli python3 - "$INS_IP" 8004 "$N" "$WINDOW" "$CONNECT_S" "$MW_TMP/held" "$NOFILE" "${SRCS[@]}" <<'PY' &
import errno, os, resource, select, socket, sys, time
dst, port, n, window, budget, flag, nofile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6], int(sys.argv[7])
srcs = sys.argv[8:]
resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
IP_BIND_ADDRESS_NO_PORT = 24
ep = select.epoll()
pending, held = {}, []
i = failed = 0
t0 = time.time()
while (i < n or pending) and time.time() - t0 < budget:
    while i < n and len(pending) < window:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((srcs[i % len(srcs)], 0))
        i += 1
        rc = s.connect_ex((dst, port))
        if rc not in (0, errno.EINPROGRESS):
            failed += 1
            s.close()
            continue
        ep.register(s.fileno(), select.EPOLLOUT)
        pending[s.fileno()] = s
    for fd, ev in ep.poll(0.2):
        s = pending.pop(fd)
        ep.unregister(fd)
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            failed += 1
            s.close()
        else:
            held.append(s)
failed += len(pending) + (n - i)   # not connected within the budget
for s in pending.values():
    s.close()
open(flag + ".1.tmp", "w").write("%d %d %.1f\n" % (len(held), failed, time.time() - t0))
os.rename(flag + ".1.tmp", flag + ".1")
for _ in range(36000):                  # until told, at most 1 h
    if os.path.exists(flag + ".go"):
        break
    time.sleep(0.1)
# still open: not readable (no EOF, no error) right now
for s in held:
    ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
closed = set()
for fd, ev in ep.poll(1.0, len(held) + 1):
    closed.add(fd)
still = len(held) - len(closed)
for s in held:
    s.close()
open(flag + ".2", "w").write("%d\n" % still)
PY
cli_pid=$!
mw_wait_for "[ -s '$MW_TMP/held.1' ]" $((CONNECT_S + 30)) || mw_fail "client did not finish connecting"
read -r connected failed connect_s <"$MW_TMP/held.1"
# Settle: every connection handed through to the app (INS accept queue empty, the app's fd
# count no longer growing), at most 60 s.
prev=-1
for ((k = 0; k < 60; k++)); do
	f=$(fds "$worker")
	[ "$f" = "$prev" ] && break
	prev=$f
	sleep 1
done
app_fds=$(($(fds "$worker") - f0))
pvm_fds=$(fds "$pvm_pid") ins_fds=$(fds "$ins_pid")
ins_estab=$(estab_ins)
r1_pvm=$(rss "$pvm_pid") r1_ins=$(rss "$ins_pid") r1_app=$(rss "$worker") m1=$(tcp_mem) s1=$(tcp_slab)
sleep "$HOLD_S"
touch "$MW_TMP/held.go"
wait "$cli_pid" || true
still=$(cat "$MW_TMP/held.2" 2>/dev/null || echo 0)
per() { [ "$connected" -gt 0 ] && echo $(($1 * 1024 / connected)) || echo 0; } # KiB delta -> B/conn

echo "b4_target: $N"
echo "b4_limited_by: ${LIMIT// /_}"
echo "b4_connected: $connected"
echo "b4_failed: $failed"
echo "b4_connect_s: $connect_s"
echo "b4_ins_established: $ins_estab"
echo "b4_app_fds: $app_fds"
echo "b4_fds_pvm: $pvm_fds"
echo "b4_fds_ins: $ins_fds"
echo "b4_still_open_after_${HOLD_S}s: $still"
echo "b4_rss_growth_kib_pvm: $((r1_pvm - r0_pvm))"
echo "b4_rss_growth_kib_ins: $((r1_ins - r0_ins))"
echo "b4_rss_growth_kib_app: $((r1_app - r0_app))"
echo "b4_bytes_per_conn_pvm: $(per $((r1_pvm - r0_pvm)))"
echo "b4_bytes_per_conn_ins: $(per $((r1_ins - r0_ins)))"
echo "b4_bytes_per_conn_mw_daemons: $(per $((r1_pvm - r0_pvm + r1_ins - r0_ins)))"
echo "b4_bytes_per_conn_app: $(per $((r1_app - r0_app)))"
echo "b4_kernel_tcp_buffer_bytes_per_conn_both_ends: $(per $(((m1 - m0) * 4)))"
echo "b4_kernel_tcp_sock_slab_bytes_per_conn_both_ends: $([ "$connected" -gt 0 ] && echo $(((s1 - s0) / connected)) || echo 0)"
