#!/usr/bin/env bash
# b4_held.sh - B4: idle connections held through mwcomms, and memory per connection
#
# INS_N INS (default 4), each in its own namespace ins, ins2, ... with its own veth to the
# client namespace cli (10.231.K.0/24 for INS K > 1), all joined to one mw-pvm; nginx under
# libmwshim.so listens once and mw-pvm replicates the listener on every INS.  The client
# opens N connections (default 100,000), round-robin over the INS, and holds them idle.  It
# binds ADDRS source addresses per INS (IP_BIND_ADDRESS_NO_PORT; ~64,000 ports each) so
# the port range is not the limit, and keeps at most WINDOW connects in flight so the
# INS's accept queues do not overflow.
# nginx is sized for 2N connections (worker_connections) and logs at warn level: nginx
# closes idle keep-alive connections once fewer than 1/16 of worker_connections are free
# ("N worker_connections are not enough, reusing connections", a warning); every warning
# or error nginx logged is printed before the figures.
# Reports what was held (client side, INS socket tables, app file descriptors) and the
# memory it cost: RSS and PSS growth (/proc/PID/smaps_rollup) of mw-pvm, each mw-ins and
# the nginx worker divided by the connections, and the kernel's: TCP buffer memory
# (/proc/net/sockstat "mem", pages: 0 for idle sockets), the TCP socket slab and the
# socket inode slab (/proc/slabinfo "TCP", "sock_inode_cache": TCP and AF_UNIX sockets);
# both TCP ends of every connection and both ends of its app <-> mw-pvm AF_UNIX pair
# are in this one kernel.
# Bounded: CONNECT_S for the connects (default 180), HOLD_S held (default 10), then closed.
# Usage: MW_BUILD_DIR=build-rel N=100000 INS_N=4 bash tests/bench/b4_held.sh
N=${N:-100000}
INS_N=${INS_N:-4}
ADDRS=${ADDRS:-4}
WINDOW=${WINDOW:-512}
CONNECT_S=${CONNECT_S:-180}
HOLD_S=${HOLD_S:-10}
# file descriptors mw-pvm, the client and the app need besides one per connection
RESERVE=${RESERVE:-256}
: "${MW_BUILD_DIR:?set MW_BUILD_DIR to the build tree (e.g. build)}"
MW_BUILD_DIR=$(cd "$MW_BUILD_DIR" && pwd)
source "$(dirname "$0")/../integration/lib.sh"
mw_require_cmd nginx python3 prlimit ss
{ [ "$INS_N" -ge 1 ] && [ "$INS_N" -le 200 ]; } || mw_fail "INS_N=$INS_N: 1..200"
NOFILE=$((N + 65536))
[ "$NOFILE" -le "$(cat /proc/sys/fs/nr_open)" ] || NOFILE=$(cat /proc/sys/fs/nr_open)
# Root may raise its hard limit; a container may forbid it (no CAP_SYS_RESOURCE): then
# every process (client, mw-pvm, the app) is held to the hard limit, and so is N: mw-pvm
# and the app hold one descriptor per connection whatever the number of INS.
LIMIT=none
if ! ulimit -Hn "$NOFILE" 2>/dev/null; then
	NOFILE=$(ulimit -Hn)
	if [ "$N" -gt $((NOFILE - RESERVE)) ]; then
		LIMIT="open-file hard limit $NOFILE (cannot be raised here)"
		mw_log "N=$N does not fit the open-file hard limit $NOFILE: N=$((NOFILE - RESERVE))"
		N=$((NOFILE - RESERVE))
	fi
fi
# mw_appliance_up sets the soft limit (capped at 65536) and starts mw-pvm and INS 1;
# mw-ins raises its own to ins.nofile, mw-pvm is raised below.
MW_INS_CONF="nofile = $NOFILE;" mw_appliance_up
ulimit -n "$NOFILE"
pvm_pid=$(mw_pid pvm)
prlimit --pid "$pvm_pid" --nofile="$NOFILE:$NOFILE" || mw_fail "prlimit mw-pvm failed"
# INS K: namespace NS[K], address DST[K]; the client's source addresses SRC_K
NS=("" "$NS_INS") DST=("" "$INS_IP") INS_PIDS=()
for ((k = 2; k <= INS_N; k++)); do
	mw_netns_add "ins$k"
	NS[k]=$(mw_netns "ins$k")
	DST[k]=10.231.$k.2
	mw_veth_add "i$k" "c$k" cli
	ip link set "$(mw_veth "i$k")" netns "${NS[k]}" || mw_fail "moving $(mw_veth "i$k") failed"
	ip -n "${NS[k]}" addr add "${DST[k]}/24" dev "$(mw_veth "i$k")"
	ip -n "${NS[k]}" link set "$(mw_veth "i$k")" up
	ip -n "$NS_CLI" addr add "10.231.$k.1/24" dev "$(mw_veth "c$k")"
	ip -n "$NS_CLI" link set "$(mw_veth "c$k")" up
	mw_spawn "ins$k" ip netns exec "${NS[k]}" "$INS" --id "$k" -c "$CONF"
	mw_wait_for "grep -q 'INS $k joined' '$PVM_LOG'" 15 || mw_fail "INS $k did not join mw-pvm"
done
for ((k = 1; k <= INS_N; k++)); do
	pid=$(mw_pid "ins$k") # ip netns exec execs mw-ins: same pid
	[ "$(cat "/proc/$pid/comm")" = mw-ins ] || mw_fail "pid $pid is $(cat "/proc/$pid/comm"), not mw-ins"
	prlimit --pid "$pid" --nofile="$NOFILE:$NOFILE" || mw_fail "prlimit mw-ins $k failed"
	INS_PIDS[k]=$pid
	ip netns exec "${NS[k]}" sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
done
in_cli sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
TARGETS=() # "dst src src ..." per INS
for ((k = 1; k <= INS_N; k++)); do
	net=10.231.$((k == 1 ? 0 : k))
	t=${DST[k]}
	for ((a = 0; a < ADDRS; a++)); do
		ip -n "$NS_CLI" addr add "$net.$((100 + a))/24" dev "$(mw_veth "$([ "$k" = 1 ] && echo c || echo "c$k")")" ||
			mw_fail "address $a of INS $k"
		t+=" $net.$((100 + a))"
	done
	TARGETS+=("$t")
done

WWW=$MW_TMP/www
NGX=$MW_TMP/nginx
mkdir -p "$WWW" "$NGX"
echo "held" >"$WWW/index.html"
# worker_connections 2N: nginx starts closing idle keep-alive connections when fewer than
# 1/16 of them are free; above the open-file limit nginx only warns (the warning is shown).
cat >"$NGX/nginx.conf" <<NGINX
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections $((2 * N)); multi_accept on; }
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
for ((k = 1; k <= INS_N; k++)); do
	mw_wait_for "in_cli curl -sf -o /dev/null --max-time 2 http://${DST[k]}:8004/" 15 ||
		mw_fail "nginx does not answer through INS $k"
done
worker=$(pgrep -P "$(cat "$NGX/nginx.pid")" | head -1)
[ -n "$worker" ] || mw_fail "no nginx worker"

# smaps PID: "RSS PSS" in KiB
smaps() { awk '$1 == "Rss:" {r = $2} $1 == "Pss:" {p = $2} END {print r, p}' "/proc/$1/smaps_rollup"; }
tcp_mem() { awk '$1 == "TCP:" {for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1)}' /proc/net/sockstat; }
# slab NAME: bytes in that kernel slab cache (objects x size), 0 when unreadable
slab() { awk -v n="$1" '$1 == n {print $2 * $4; f = 1} END {if (!f) print 0}' /proc/slabinfo 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }
estab_ins() { ip netns exec "${NS[$1]}" ss -Htn state established "( sport = :8004 )" | wc -l; }
# mem_all T: MEM[T,NAME,rss|pss] (KiB) for pvm, ins1.., app; MEM[T,tcpmem|tcpslab|inodeslab]
declare -A MEM
mem_one() { # T NAME PID
	local r p
	read -r r p <<<"$(smaps "$3")"
	MEM[$1,$2,rss]=$r MEM[$1,$2,pss]=$p
}
mem_all() {
	local k
	mem_one "$1" pvm "$pvm_pid"
	for ((k = 1; k <= INS_N; k++)); do mem_one "$1" "ins$k" "${INS_PIDS[k]}"; done
	mem_one "$1" app "$worker"
	MEM[$1,tcpmem]=$(tcp_mem) MEM[$1,tcpslab]=$(slab TCP) MEM[$1,inodeslab]=$(slab sock_inode_cache)
	MEM[$1,slab]=$(awk '$1 == "Slab:" {print $2}' /proc/meminfo)
}
mem_all 0
f0=$(fds "$worker")

# The client: non-blocking connects, WINDOW in flight, then hold; $MW_TMP/held.1 gets
# "connected failed seconds", held.2 "still_open" after HOLD_S (a peer close is seen as EOF).
# Connection i goes to INS i mod INS_N, from that INS's source addresses in turn.
in_cli python3 - 8004 "$N" "$WINDOW" "$CONNECT_S" "$MW_TMP/held" "$NOFILE" "${TARGETS[@]}" <<'PY' &
import errno, os, resource, select, socket, sys, time
port, n, window, budget, flag, nofile = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], int(sys.argv[6])
targets = [t.split() for t in sys.argv[7:]]   # [dst, src, src, ...] per INS
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
        t = targets[i % len(targets)]
        s.bind((t[1 + (i // len(targets)) % (len(t) - 1)], 0))
        i += 1
        rc = s.connect_ex((t[0], port))
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
pvm_fds=$(fds "$pvm_pid")
ins_fds="" ins_estab=0 ESTAB=()
for ((k = 1; k <= INS_N; k++)); do
	ins_fds+="${ins_fds:+ }$(fds "${INS_PIDS[k]}")"
	ESTAB[k]=$(estab_ins "$k")
	ins_estab=$((ins_estab + ESTAB[k]))
done
mem_all 1
sleep "$HOLD_S"
touch "$MW_TMP/held.go"
wait "$cli_pid" || true
still=$(cat "$MW_TMP/held.2" 2>/dev/null || echo 0)
per() { [ "$connected" -gt 0 ] && echo $(($1 * 1024 / connected)) || echo 0; } # KiB delta -> B/conn
# growth NAME rss|pss: KiB between the two samples
growth() { echo $((MEM[1,$1,$2] - MEM[0,$1,$2])); }

# nginx's warnings and errors: a "reusing connections" line means it closed held ones
if grep -E '\[(warn|error|crit|alert|emerg)\]' "$NGX/error.log" >"$MW_TMP/ngx.warn"; then
	mw_log "nginx logged $(wc -l <"$MW_TMP/ngx.warn") warning/error lines; the first ones:"
	sort "$MW_TMP/ngx.warn" | sed 's/^[0-9/ :]*//' | uniq -c | sort -rn | head -5 >&2
fi
echo "b4_target: $N"
echo "b4_ins: $INS_N"
echo "b4_limited_by: ${LIMIT// /_}"
echo "b4_connected: $connected"
echo "b4_failed: $failed"
echo "b4_connect_s: $connect_s"
echo "b4_ins_established: $ins_estab"
echo "b4_app_fds: $app_fds"
echo "b4_fds_pvm: $pvm_fds"
echo "b4_fds_ins: ${ins_fds// /,}"
echo "b4_still_open_after_${HOLD_S}s: $still"
echo "b4_nginx_reusing_connections_lines: $(grep -c 'reusing connections' "$MW_TMP/ngx.warn" || true)"
echo "b4_nginx_warn_or_error_lines: $(wc -l <"$MW_TMP/ngx.warn")"
ins_rss=0 ins_pss=0
for name in pvm $(for ((k = 1; k <= INS_N; k++)); do echo "ins$k"; done) app; do
	for m in rss pss; do
		echo "b4_${m}_kib_${name}_before_after: ${MEM[0,$name,$m]} ${MEM[1,$name,$m]}"
		echo "b4_${m}_bytes_per_conn_${name}: $(per "$(growth "$name" "$m")")"
	done
	case $name in
	ins*)
		k=${name#ins}
		if [ "${ESTAB[k]}" -gt 0 ]; then
			echo "b4_rss_bytes_per_own_conn_$name: $(($(growth "$name" rss) * 1024 / ESTAB[k]))"
		fi
		ins_rss=$((ins_rss + $(growth "$name" rss))) ins_pss=$((ins_pss + $(growth "$name" pss)))
		;;
	esac
done
echo "b4_rss_bytes_per_conn_all_ins: $(per "$ins_rss")"
echo "b4_pss_bytes_per_conn_all_ins: $(per "$ins_pss")"
echo "b4_rss_bytes_per_conn_mw_daemons: $(per $(($(growth pvm rss) + ins_rss)))"
echo "b4_pss_bytes_per_conn_mw_daemons: $(per $(($(growth pvm pss) + ins_pss)))"
echo "b4_kernel_tcp_buffer_bytes_per_conn_both_ends: $(per $(((MEM[1,tcpmem] - MEM[0,tcpmem]) * 4)))"
per_b() { [ "$connected" -gt 0 ] && echo $((($1) / connected)) || echo 0; }
echo "b4_kernel_tcp_sock_slab_bytes_per_conn_both_ends: $(per_b "MEM[1,tcpslab] - MEM[0,tcpslab]")"
echo "b4_kernel_sock_inode_slab_bytes_per_conn_4_sockets: $(per_b "MEM[1,inodeslab] - MEM[0,inodeslab]")"
# every slab of the host (sockets, files, dentries, epoll items...): noisy on a shared machine
echo "b4_kernel_slab_total_bytes_per_conn: $(per $((MEM[1,slab] - MEM[0,slab])))"
