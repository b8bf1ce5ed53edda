#!/usr/bin/env bash
# test_balancer_confine.sh - every INS mw-balancer spawns is confined, and cannot get out
#
# Two INS (netns backend) behind the front end serve nginx. For each, /proc says: uid and
# gid are ins.user's (all four), every capability set is empty, NoNewPrivs 1, Seccomp 2
# (filter), its own mount namespace, the port sysctl 0 in its network namespace, and its
# bridge port isolated. Then a probe runs in INS 1's context (its network and mount
# namespaces, its uid and gid, no capabilities, no_new_privs: nsenter + setpriv) and tries
# each escape: setns into the host's network namespace through an fd handed to it, connect
# to balancer.sock and pvm.sock, reach INS 2's address, write the keystore, the runtime
# directory or any host path. Each must fail; the same probe as root in the host reaches
# INS 2 and the control sockets, so the failures are the confinement's. Last (splice mode
# only), a balancer with the process backend: its INS is confined the same way (but for
# the network).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/balancer_lib.sh"
mw_require_cmd nsenter setpriv bridge
PY=/usr/bin/python3 # not a per-user shim: the probe runs as ins.user too
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"

bal_up 2 2
ins_uid=$(id -u "$MW_INS_USER")
ins_gid=$(id -g "$MW_INS_USER")
body=$(curl -sS --max-time 10 "$URL/index.html") || mw_fail "no answer through the confined INS"
[ "$body" = "$(cat "$WWW/index.html")" ] || mw_fail "front end answered '$body'"

# sockets_of PID: the sockets among PID's fds 3 and up, sorted
sockets_of() {
	local f
	for f in /proc/"$1"/fd/*; do
		[ "${f##*/}" -ge 3 ] && readlink "$f"
	done | grep '^socket:' | sort -u
}
# status_field PID KEY: the value of KEY: in /proc/PID/status, tabs squeezed to spaces.
status_field() { sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status" | tr -s '\t ' ' '; }

mapfile -t rows < <(ctl ins list | awk 'NR > 1 && $2 == "ready" {print $1, $3, $4, $NF}')
[ "${#rows[@]}" = 2 ] || mw_fail "want 2 ready INS, mwctl lists: $(ctl ins list)"
host_mnt=$(readlink /proc/self/ns/mnt)
for row in "${rows[@]}"; do
	read -r id addr pid ns <<<"$row"
	[ "$(cat "/proc/$pid/comm")" = mw-ins ] || mw_fail "INS $id: pid $pid is not mw-ins"
	[ "$(status_field "$pid" Uid)" = "$ins_uid $ins_uid $ins_uid $ins_uid" ] ||
		mw_fail "INS $id: Uid $(status_field "$pid" Uid), want $ins_uid"
	[ "$(status_field "$pid" Gid)" = "$ins_gid $ins_gid $ins_gid $ins_gid" ] ||
		mw_fail "INS $id: Gid $(status_field "$pid" Gid), want $ins_gid"
	[ -z "$(status_field "$pid" Groups)" ] || mw_fail "INS $id: groups $(status_field "$pid" Groups)"
	for k in CapInh CapPrm CapEff CapBnd CapAmb; do
		[ "$(status_field "$pid" $k)" = 0000000000000000 ] ||
			mw_fail "INS $id: $k $(status_field "$pid" $k)"
	done
	[ "$(status_field "$pid" NoNewPrivs)" = 1 ] || mw_fail "INS $id: NoNewPrivs not set"
	[ "$(status_field "$pid" Seccomp)" = 2 ] ||
		mw_fail "INS $id: Seccomp $(status_field "$pid" Seccomp), want 2 (filter)"
	[ "$(readlink "/proc/$pid/ns/mnt")" != "$host_mnt" ] || mw_fail "INS $id shares our mount namespace"
	[ "$(ip netns exec "$ns" cat /proc/sys/net/ipv4/ip_unprivileged_port_start)" = 0 ] ||
		mw_fail "INS $id: ip_unprivileged_port_start is not 0 in $ns"
	bridge -d link show dev "${TAG}h$id" | grep -q 'isolated on' ||
		mw_fail "INS $id: bridge port ${TAG}h$id is not isolated: $(bridge -d link show dev "${TAG}h$id")"
	# No socket of the balancer's past exec (its nftables netlink socket among them).
	shared=$(comm -12 <(sockets_of "$pid") <(sockets_of "$(mw_pid balancer)"))
	[ -z "$shared" ] || mw_fail "INS $id holds the balancer's sockets: $(echo $shared)"
done
read -r id1 addr1 pid1 ns1 <<<"${rows[0]}"
read -r id2 addr2 pid2 ns2 <<<"${rows[1]}"
# Its runtime directory, as it sees it: the INS socket and nothing else.
seen=$(nsenter -t "$pid1" -m ls -A "$MW_RUNTIME_DIR") || mw_fail "cannot list INS $id1's runtime dir"
[ "$seen" = pvm-ins.sock ] || mw_fail "INS $id1 sees in $MW_RUNTIME_DIR: $(echo $seen)"
mw_log "2 INS: uid $ins_uid, no capabilities, no_new_privs, seccomp filter, own mount view"

# The probe: one line per escape, "name ok" when it got through, "name blocked: why" else.
cat >"$MW_TMP/probe.py" <<'PY'
import ctypes, os, socket, sys
run, port, other, store = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
libc = ctypes.CDLL(None, use_errno=True)
def report(name, fn):
    try:
        fn()
        print(name, "ok")
    except OSError as e:
        print(name, "blocked:", e.strerror or type(e).__name__)
def setns():
    if libc.setns(9, 0x40000000) != 0:  # fd 9: the host's network namespace, CLONE_NEWNET
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
def unix(path):  # whichever type the socket has (pvm.sock is SOCK_SEQPACKET)
    for kind in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET):
        s = socket.socket(socket.AF_UNIX, kind)
        s.settimeout(2)
        try:
            s.connect(path)
            return
        except OSError as e:
            if e.errno != 91 or kind == socket.SOCK_SEQPACKET:  # 91: EPROTOTYPE
                raise
        finally:
            s.close()
def tcp():
    socket.create_connection((other, port), timeout=2).close()
def write(path):
    with open(path, "w") as f:
        f.write("x")
report("setns", setns)
report("balancer.sock", lambda: unix(run + "/balancer.sock"))
report("pvm.sock", lambda: unix(run + "/pvm.sock"))
report("other-ins", tcp)
report("keystore", lambda: write(store + "/escape"))
report("runtime-dir", lambda: write(run + "/escape"))
report("tmp", lambda: write("/tmp/mw-confine-escape-%d" % os.getpid()))
PY
chmod 0644 "$MW_TMP/probe.py"
probe_args=("$MW_RUNTIME_DIR" "$PORT" "$addr2" "$MW_RUNTIME_DIR/store")
mkdir -p "$MW_RUNTIME_DIR/store"

# As root in the host first: everything reachable, so a "blocked" below is the confinement.
out=$("$PY" "$MW_TMP/probe.py" "${probe_args[@]}" 9</proc/self/ns/net 2>&1)
for name in setns balancer.sock pvm.sock other-ins keystore runtime-dir; do
	grep -qx "$name ok" <<<"$out" || mw_fail "control probe as root: $name failed: $out"
done
rm -f "$MW_RUNTIME_DIR/escape" "$MW_RUNTIME_DIR/store/escape" /tmp/mw-confine-escape-*

# In INS 1's context.
out=$(nsenter -t "$pid1" -n -m setpriv --reuid="$ins_uid" --regid="$ins_gid" --clear-groups \
	--bounding-set=-all --inh-caps=-all --no-new-privs \
	"$PY" "$MW_TMP/probe.py" "${probe_args[@]}" 9</proc/self/ns/net 2>&1) || true
for name in setns balancer.sock pvm.sock other-ins keystore tmp; do
	grep -q "^$name blocked: " <<<"$out" || mw_fail "from INS $id1: $name not blocked: $out"
done
# Its runtime directory is a private tmpfs: what it writes there stays there.
[ ! -e "$MW_RUNTIME_DIR/escape" ] && [ ! -e "$MW_RUNTIME_DIR/store/escape" ] ||
	mw_fail "the probe's write reached the host"
mw_log "from INS $id1: $(tr '\n' ';' <<<"$out")"

# INS 2 is still reached from the host (the bridge), and INS 1 still serves.
"$PY" -c "import socket; socket.create_connection(('$addr2', $PORT), timeout=5).close()" ||
	mw_fail "the host cannot reach INS 2 at $addr2:$PORT"
"$PY" -c "import socket; socket.create_connection(('$addr1', $PORT), timeout=5).close()" ||
	mw_fail "the host cannot reach INS 1 at $addr1:$PORT"
mw_log "confined INS: every escape blocked, the host reaches both"

# The process backend (no network namespace) confines its INS the same way when root.
# It has no kernel mode (splice only): the splice run of this script checks it.
if [ "$BAL_MODE" = kernel ]; then
	mw_log "kernel mode: the process backend's part is the splice run's"
	exit 0
fi
mw_stop nginx
mw_stop balancer
sed -e 's/backend = "netns";/backend = "process";/' -e 's/mode = "kernel";/mode = "splice";/' -e 's/listen = \[[^]]*\];//' \
	-e "s|balancer.sock|balancer-proc.sock|" "$CONF" >"$MW_TMP/process.conf"
joined=$(grep -c 'INS [0-9]* joined' "$(mw_logfile pvm)")
mw_spawn balproc "$BAL" -c "$MW_TMP/process.conf"
mw_wait_for "[ \$(grep -c 'INS [0-9]* joined' '$(mw_logfile pvm)') -gt $joined ]" 20 ||
	mw_fail "the process backend's INS did not join: $(tail -5 "$(mw_logfile balproc)")"
pid=$(pgrep -P "$(mw_pid balproc)" -x mw-ins | head -1)
[ -n "$pid" ] || mw_fail "the process backend's mw-ins is not running"
[ "$(status_field "$pid" Uid)" = "$ins_uid $ins_uid $ins_uid $ins_uid" ] ||
	mw_fail "process backend INS: Uid $(status_field "$pid" Uid)"
for k in CapPrm CapEff CapBnd CapAmb; do
	[ "$(status_field "$pid" $k)" = 0000000000000000 ] || mw_fail "process backend INS: $k $(status_field "$pid" $k)"
done
[ "$(status_field "$pid" Seccomp)" = 2 ] || mw_fail "process backend INS: no seccomp filter"
[ "$(nsenter -t "$pid" -m ls -A "$MW_RUNTIME_DIR")" = pvm-ins.sock ] ||
	mw_fail "process backend INS sees $(nsenter -t "$pid" -m ls -A "$MW_RUNTIME_DIR")"
mw_log "process backend: its INS is confined too (uid $ins_uid, no capabilities, seccomp, mount view)"

# A confined INS does not outlive its balancer: setresuid() clears the parent-death
# signal, so confinement sets it again.  kill -9 of the balancer ends its INS.
kill -9 "$(mw_pid balproc)"
mw_wait_for "! kill -0 $pid 2>/dev/null" 5 ||
	mw_fail "the process backend's INS (pid $pid) outlived mw-balancer killed with SIGKILL"
mw_log "kill -9 of mw-balancer: its confined INS ended too"
# A killed balancer leaves its PROXY v2 fence (the next one with its tag replaces it):
# it is this test's, so it goes with the test.
nft delete table inet "mwbal_${TAG}_fence" 2>/dev/null || true
