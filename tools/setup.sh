#!/usr/bin/env bash
# setup.sh - install mwcomms' dependencies (apt only), build, then run the demo or the tests
#
#   tools/setup.sh demo   install, build, start the appliance protecting a demo app
#   tools/setup.sh test   install, build (plain, ASan+UBSan, libFuzzer), run every test
#   tools/setup.sh build  install and build only
#   tools/setup.sh lint   install, then clang-tidy + cppcheck over the tree (tools/lint.sh)
#
# tools/setup.sh test also runs lint (clang-tidy + cppcheck) and fails on any finding;
# MW_LINT=0 leaves it out. It also runs every integration test with the daemons built
# with ASan+UBSan (build-mix/, docs/development.md).
#
# Idempotent: installs only missing packages and rebuilds incrementally.
set -euo pipefail

mode=${1:-demo}
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)

packages=(build-essential cmake pkg-config clang libclang-rt-14-dev
	libev-dev libconfig-dev libsystemd-dev libxen-dev libcmocka-dev libseccomp-dev
	nginx curl netcat-openbsd redis-server redis-tools wrk haproxy iproute2
	python3 tmux procps psmisc systemd clang-tidy cppcheck libpcap-dev tcpdump tshark nfdump
	slowhttptest apache2 nftables libnftables-dev linux-perf qemu-system-x86 busybox-static
	cpio xz-utils conntrack)

install_packages() {
	local missing=()
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "setup: installing ${missing[*]}"
	# Package scripts must not start services (nginx, redis, haproxy) on this host:
	# the tests start their own instances.
	local policy=/usr/sbin/policy-rc.d created=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
	fi
	apt-get update -q
	# wireshark-common asks whether non-root users may capture (setuid dumpcap): no,
	# the tests run tshark as root on files; preseeded so no frontend ever asks.
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	[ "$created" = 1 ] && rm -f "$policy"
	return 0
}

# The unprivileged user every confined mw-ins runs as (ins.user, docs/ins.md "Confinement").
ensure_ins_user() {
	id -u mwcomms-ins >/dev/null 2>&1 && return 0
	echo "setup: creating system user mwcomms-ins"
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin mwcomms-ins
}

build() { # build DIR [cmake args...]
	local dir=$1
	shift
	cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
	cmake --build "$dir" -j "$jobs"
}

install_packages
ensure_ins_user
case "$mode" in
build)
	build "$root/build"
	;;
demo)
	build "$root/build"
	exec "$root/tools/mw-demo" --build "$root/build"
	;;
test)
	# Each phase says how long it took (the suite must stay within 25 min on 2 cores).
	phase() { echo "== [$((SECONDS / 60))m$((SECONDS % 60))s] $*"; }
	SECONDS=0
	build "$root/build"
	build "$root/build-asan" -DMW_SANITIZE=ON
	CC=clang build "$root/build-fuzz" -DMW_FUZZ=ON -DMW_SANITIZE=ON
	status=0
	phase "ASan+UBSan: unit and fuzz tests"
	ctest --test-dir "$root/build-asan" -L 'unit|fuzz' -j "$jobs" --output-on-failure || status=1
	phase "libFuzzer (clang, ASan+UBSan): fuzz targets"
	ctest --test-dir "$root/build-fuzz" -L fuzz -j "$jobs" --output-on-failure || status=1
	# Label xen: Xen under QEMU (docs/xen.md); only xen_ci (the end-to-end test, one
	# QEMU boot, 2-2.5 min with the image build) runs here, alone: QEMU takes both
	# cores. The other xen tests and label byhand are run by hand. Label
	# asan_daemons (every tests/integration/test_*.sh) runs once, below.
	phase "plain build: unit, fuzz, kernel-mode balancer and attack tests (not labels xen, byhand, asan_daemons)"
	ctest --test-dir "$root/build" -j "$jobs" -LE 'xen|byhand|asan_daemons' --output-on-failure || status=1
	phase "Xen under QEMU: mw-balancer's xl backend end to end (label xen_ci)"
	ctest --test-dir "$root/build" -L xen_ci --output-on-failure || status=1
	# The daemons built with ASan+UBSan (same -O2 as build/) under every integration
	# test; the shim and the apps stay plain (an ASan shim loads only into ASan
	# programs). lib.sh fails a test on any sanitizer report in a log.
	phase "ASan+UBSan daemons: integration tests"
	rm -rf "$root/build-mix" && mkdir "$root/build-mix" && cp -as "$root/build/." "$root/build-mix/"
	for f in pvm/mw-pvm ins/mw-ins balancer/mw-balancer guard/mw-guard flowd/mw-flowd; do
		rm "$root/build-mix/$f" && cp "$root/build-asan/$f" "$root/build-mix/$f"
	done
	# Lint runs beside these tests, at the lowest priority: they mostly wait on their
	# daemons and clients, and lint takes the idle CPU (about 4 min of it alone).
	lint_pid=
	if [ "${MW_LINT:-1}" = 1 ]; then
		nice -n 19 "$root/tools/lint.sh" -b "$root/build" >"$root/build-mix/lint.out" 2>&1 &
		lint_pid=$!
	fi
	for t in "$root"/tests/integration/test_*.sh; do
		t0=$SECONDS
		MW_BUILD_DIR="$root/build-mix" MW_SOURCE_DIR="$root" timeout 600 bash "$t" \
			>"$root/build-mix/$(basename "$t" .sh).log" 2>&1 &&
			echo "ok $(basename "$t") $((SECONDS - t0)) s" && continue
		echo "FAIL (ASan daemons): $(basename "$t") - log: build-mix/$(basename "$t" .sh).log"
		tail -n 40 "$root/build-mix/$(basename "$t" .sh).log"
		status=1
	done
	if [ -n "$lint_pid" ]; then
		phase "lint (clang-tidy, cppcheck), run beside the ASan tests"
		wait "$lint_pid" || status=1
		cat "$root/build-mix/lint.out"
	fi
	phase "done, status $status"
	exit $status
	;;
lint)
	build "$root/build"
	exec "$root/tools/lint.sh" -b "$root/build"
	;;
*)
	echo "usage: $0 demo|test|build|lint" >&2
	exit 2
	;;
esac
