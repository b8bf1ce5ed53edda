# shellcheck shell=bash
# lib.sh - sourced by every integration test: temp dir, process/netns/veth bookkeeping, cleanup
#
#   source "$(dirname "$0")/lib.sh"
#
# Whatever a test starts or creates through these helpers is torn down by the
# EXIT trap, on success, failure, set -e abort, Ctrl-C or ctest's timeout
# (TERM): processes get TERM, then KILL; namespaces and veths are deleted; the
# temp dir is removed. When the test failed, the logs of its processes are
# printed first. A missing prerequisite is a failure, never a silent skip.
set -euo pipefail

MW_TEST_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
MW_SOURCE_DIR=${MW_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
if [ -z "${MW_BUILD_DIR:-}" ]; then
	echo "FAIL [$MW_TEST_NAME]: MW_BUILD_DIR is not set (run through ctest, or export it)" >&2
	exit 1
fi
MW_TMP=$(mktemp -d "/tmp/mw-it-$MW_TEST_NAME.XXXXXX")
# Apps under the shim may drop privileges (nginx workers run as nobody): they
# must reach mw-pvm's sockets in $MW_RUNTIME_DIR.
chmod 0755 "$MW_TMP"
MW_RUNTIME_DIR=$MW_TMP/run
# Interface names are at most 15 bytes: "m" + pid (<= 7 digits) + "-" + up to 6.
MW_PREFIX=m$$

declare -A _mw_pid=()   # name -> pid, for mw_pid and the logs
_mw_spawned=()          # names in start order; stopped in reverse
_mw_netns=()
_mw_veths=()
_mw_failed=0
_mw_fail_msg="(no mw_fail: a command failed or the test was stopped)"

mw_log() { echo "[$MW_TEST_NAME] $*" >&2; }

# mw_fail MSG: the test failed; say why and exit (the trap cleans up).
mw_fail() {
	echo "FAIL [$MW_TEST_NAME]: $*" >&2
	_mw_fail_msg=$*
	_mw_failed=1
	exit 1
}

# mw_require_root / mw_require_cmd CMD...: prerequisites fail loudly, never skip.
mw_require_root() { [ "$(id -u)" = 0 ] || mw_fail "must run as root (namespaces, veths)"; }
# mw_ins_user: the system user confined INS run as (ins.user's default, docs/ins.md
# "Confinement"), created as tools/setup.sh does when missing; prints its name. $MW_TMP
# becomes traversable (o+x, not listable) so that user reaches the config and its socket.
MW_INS_USER=mwcomms-ins
mw_ins_user() {
	id -u "$MW_INS_USER" >/dev/null 2>&1 ||
		useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$MW_INS_USER" >/dev/null 2>&1 ||
		id -u "$MW_INS_USER" >/dev/null 2>&1 || mw_fail "cannot create user $MW_INS_USER"
	chmod o+x "$MW_TMP"
	echo "$MW_INS_USER"
}
mw_require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || mw_fail "required command '$c' is not installed"
	done
}

# mw_bin NAME: path of a built artefact (whether or not it exists yet).
mw_bin() {
	case "$1" in
	mw-pvm) echo "$MW_BUILD_DIR/pvm/mw-pvm" ;;
	mw-ins) echo "$MW_BUILD_DIR/ins/mw-ins" ;;
	mw-balancer) echo "$MW_BUILD_DIR/balancer/mw-balancer" ;;
	mw-guard) echo "$MW_BUILD_DIR/guard/mw-guard" ;;
	libmwshim.so) echo "$MW_BUILD_DIR/shim/libmwshim.so" ;;
	*)
		echo "mw_bin: unknown artefact '$1'" >&2
		return 1
		;;
	esac
}

# mw_need_bin NAME: its path, or fail the test if it was not built.
mw_need_bin() {
	local b
	b=$(mw_bin "$1") || mw_fail "unknown artefact '$1'"
	[ -e "$b" ] || mw_fail "$1 is not built ($b missing)"
	echo "$b"
}

# mw_spawn NAME CMD...: run CMD in the background, output in $MW_TMP/NAME.log.
# CMD runs in a process group of its own (job control on for the fork), so
# stopping it reaches everything it started: nginx's workers, and the command
# itself when CMD is a shell function (shimmed, in_cli) run by a subshell.
# Not for use inside $(...): the record would be lost with the subshell.
mw_spawn() {
	local name=$1
	shift
	[ -z "${_mw_pid[$name]:-}" ] || mw_fail "mw_spawn: '$name' is already running"
	set -m
	"$@" >"$MW_TMP/$name.log" 2>&1 &
	_mw_pid[$name]=$!
	set +m
	_mw_spawned+=("$name")
}

# _mw_group_term PID TICKS: TERM process group PID, wait up to TICKS x 50 ms
# for all of it to go, then KILL what is left.
_mw_group_term() {
	local pid=$1 ticks=$2 i
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < ticks; i++)); do
		pgrep -g "$pid" >/dev/null || break
		sleep 0.05
	done
	kill -KILL -- "-$pid" 2>/dev/null || true
	kill -KILL "$pid" 2>/dev/null || true
}

# mw_pid NAME: pid of a spawned process.
mw_pid() { echo "${_mw_pid[$1]:?mw_pid: no process named $1}"; }

# mw_logfile NAME: where its stdout and stderr go.
mw_logfile() { echo "$MW_TMP/$1.log"; }

# mw_stop NAME [TIMEOUT_S]: TERM, wait (bounded), KILL if needed; the exit
# status is left in MW_EXIT_STATUS (not printed: $(...) would lose the bookkeeping).
mw_stop() {
	local name=$1 timeout=${2:-5} pid status=0
	pid=${_mw_pid[$name]:?mw_stop: no process named $name}
	_mw_group_term "$pid" $((timeout * 20))
	wait "$pid" 2>/dev/null || status=$?
	unset "_mw_pid[$name]"
	MW_EXIT_STATUS=$status
}

# mw_netns NAME: full name of a test namespace; mw_netns_add NAME creates it.
mw_netns() { echo "$MW_PREFIX-$1"; }
mw_netns_add() {
	local ns
	ns=$(mw_netns "$1")
	ip netns add "$ns" || mw_fail "ip netns add $ns failed"
	_mw_netns+=("$ns")
	ip -n "$ns" link set lo up
}

# mw_veth NAME: full interface name; mw_veth_add NAME PEER [PEER_NETNS]
# creates the pair NAME/PEER and moves PEER into the test namespace PEER_NETNS.
mw_veth() {
	local n="$MW_PREFIX-$1"
	[ ${#n} -le 15 ] || mw_fail "interface name '$n' is longer than 15 bytes"
	echo "$n"
}
mw_veth_add() {
	local a b
	a=$(mw_veth "$1")
	b=$(mw_veth "$2")
	ip link add "$a" type veth peer name "$b" || mw_fail "ip link add $a/$b failed"
	_mw_veths+=("$a")
	if [ -n "${3:-}" ]; then
		ip link set "$b" netns "$(mw_netns "$3")" || mw_fail "moving $b into $3 failed"
	fi
}

# mw_wait_for 'CMD' [TIMEOUT_S=10]: poll CMD (eval'd) every 50 ms until it
# succeeds; return 1 with a message when the time is up.
mw_wait_for() {
	local cmd=$1 timeout=${2:-10} i
	for ((i = 0; i < timeout * 20; i++)); do
		if eval "$cmd" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.05
	done
	mw_log "timed out after ${timeout}s waiting for: $cmd"
	return 1
}

# mw_write_config FILE [TEXT]: a config whose paths are all under $MW_TMP,
# followed by TEXT (more sections or keys; libconfig rejects duplicates).
mw_write_config() {
	mkdir -p "$MW_RUNTIME_DIR"
	cat >"$1" <<EOF
common: { runtime_dir = "$MW_RUNTIME_DIR"; keystore_root = "$MW_RUNTIME_DIR/store"; };
${2:-}
EOF
}

# mw_notify_up: a notify socket standing in for systemd ($MW_TMP/notify.sock, rates_probe.py
# notify; each datagram in the log of "notify"), exported as NOTIFY_SOCKET for the daemons
# started next (unset it after them).
mw_notify_up() {
	local sock=$MW_TMP/notify.sock
	mw_spawn notify python3 "$(dirname "${BASH_SOURCE[0]}")/rates_probe.py" notify "$sock"
	mw_wait_for "grep -q ready '$(mw_logfile notify)'" || mw_fail "the notify socket is not ready"
	export NOTIFY_SOCKET=$sock
}

# mw_appliance_up [EXTRA_CONFIG]: the one-INS appliance every data-path test uses.
# EXTRA_CONFIG adds sections; MW_PVM_CONF / MW_INS_CONF add keys to the pvm / ins sections;
# MW_INS_ID is the INS's id (default 1).
#   root ns: mw-pvm, and the apps run with `shimmed CMD...` (they share abstract names)
#   ns ins:  mw-ins --id 1, veth end $INS_IP (10.231.0.2/24): the app's TCP stack
#   ns cli:  clients, run with `in_cli CMD...`, veth end $CLI_IP (10.231.0.1/24)
# Sets CONF, PVM, INS, SHIM, NS_INS, NS_CLI, INS_IP, CLI_IP, PVM_LOG.
mw_appliance_up() {
	mw_require_root
	mw_require_cmd ip
	PVM=$(mw_need_bin mw-pvm)
	INS=$(mw_need_bin mw-ins)
	SHIM=$(mw_need_bin libmwshim.so)
	CONF=$MW_TMP/mwcomms.conf
	# Room for thousands of connections in every process started from here on:
	# the soft open-file limit goes up to the hard one (at most 65536); a
	# container may forbid raising the hard limit itself.
	local hard
	hard=$(ulimit -Hn)
	[ "$hard" = unlimited ] || [ "$hard" -gt 65536 ] && hard=65536
	ulimit -n "$hard" || mw_fail "cannot raise the open-file limit to $hard"
	[ "$(ulimit -n)" -ge 8192 ] ||
		mw_fail "the open-file hard limit is $(ulimit -Hn); the data-path tests need 8192"
	INS_IP=10.231.0.2
	CLI_IP=10.231.0.1
	mw_write_config "$CONF" "pvm: { control_socket = \"$MW_RUNTIME_DIR/pvm.sock\";
	ins_socket = \"$MW_RUNTIME_DIR/pvm-ins.sock\"; heartbeat_timeout_ms = ${MW_HEARTBEAT_TIMEOUT_MS:-1000};
	spin_us = ${MW_SPIN_US:-0}; ${MW_PVM_CONF:-} };
ins: { pvm_socket = \"$MW_RUNTIME_DIR/pvm-ins.sock\"; heartbeat_ms = 200; spin_us = ${MW_SPIN_US:-0};
	${MW_INS_CONF:-} };
${1:-}"
	PVM_LOG=$(mw_logfile pvm)
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
	mw_spawn pvm "$PVM" -c "$CONF"
	mw_wait_for "[ -S '$MW_RUNTIME_DIR/pvm.sock' ] && [ -S '$MW_RUNTIME_DIR/pvm-ins.sock' ]" ||
		mw_fail "mw-pvm did not create its sockets"
	mw_spawn ins1 ip netns exec "$NS_INS" "$INS" --id "${MW_INS_ID:-1}" -c "$CONF"
	mw_wait_for "grep -q 'INS ${MW_INS_ID:-1} joined' '$PVM_LOG'" ||
		mw_fail "INS ${MW_INS_ID:-1} did not join mw-pvm"
}
in_cli() { ip netns exec "$NS_CLI" "$@"; }
in_ins() { ip netns exec "$NS_INS" "$@"; }
shimmed() { env LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm.sock" "$@"; }
# ins_listens PORT: the INS has a listening socket on PORT (readiness without a connection).
ins_listens() { ip netns exec "$NS_INS" ss -Hltn "sport = :$1" | grep -q LISTEN; }

# mw_group_add NAME: a system group for this run (per-pid NAME), deleted at exit.
_mw_groups=()
mw_group_add() {
	groupadd -r "$1" || mw_fail "groupadd $1 failed"
	_mw_groups+=("$1")
}

# mw_undo CMD: run CMD (eval'd) at exit, after the processes stopped, last first:
# host state a test changed that no namespace or veth takes with it.
_mw_undo=()
mw_undo() { _mw_undo+=("$1"); }

_mw_cleanup() {
	local rc=$1 i n name pid ns v g
	trap - EXIT INT TERM
	set +e
	[ "$rc" = 0 ] || _mw_failed=1

	# Apps first, daemons last (reverse order of start), each group entirely.
	for ((i = ${#_mw_spawned[@]} - 1; i >= 0; i--)); do
		name=${_mw_spawned[i]}
		pid=${_mw_pid[$name]:-}
		[ -n "$pid" ] || continue
		_mw_group_term "$pid" 60
		wait "$pid" 2>/dev/null
	done
	# A sanitizer build's report in any log fails the test, whatever it asserted.
	for name in "${_mw_spawned[@]}"; do
		if grep -qE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' \
			"$(mw_logfile "$name")" 2>/dev/null; then
			echo "[$MW_TEST_NAME] sanitizer report in the log of $name" >&2
			[ "$_mw_failed" = 1 ] || _mw_fail_msg="sanitizer report in the log of $name"
			_mw_failed=1
			[ "$rc" != 0 ] || rc=1
		fi
	done
	for ((i = ${#_mw_undo[@]} - 1; i >= 0; i--)); do
		eval "${_mw_undo[i]}" 2>/dev/null
	done
	for v in "${_mw_veths[@]}"; do
		ip link del "$v" 2>/dev/null
	done
	for ns in "${_mw_netns[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	for g in "${_mw_groups[@]}"; do
		groupdel "$g" 2>/dev/null
	done

	if [ "$_mw_failed" = 1 ]; then
		for name in "${_mw_spawned[@]}"; do
			echo "----- log of $name ($(mw_logfile "$name")) -----" >&2
			tail -n 200 "$(mw_logfile "$name")" >&2 2>/dev/null
		done
		# The logs above can bury the reason: say it again, shortened, last.
		echo "FAIL [$MW_TEST_NAME] (exit $rc): ${_mw_fail_msg:0:600}" >&2
	else
		echo "PASS [$MW_TEST_NAME]" >&2
	fi
	if [ "${MW_KEEP_TMP:-0}" = 1 ]; then
		echo "kept $MW_TMP" >&2
	else
		rm -rf "$MW_TMP"
	fi
	exit "$rc"
}
trap '_mw_cleanup $?' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
