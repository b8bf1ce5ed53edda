#!/usr/bin/env bash
# test_demo.sh - the README's main command works: mw-demo brings nginx up behind
# mw-balancer and two INS, mw-guard shields its port, mw-console and mw-flowd see the
# traffic (mw-demo --check asserts each), and everything it created is gone after.
source "$(dirname "$0")/lib.sh"
mw_require_root
mw_require_cmd nginx curl
mw_ins_user >/dev/null
out=$("$MW_SOURCE_DIR/tools/mw-demo" --build "$MW_BUILD_DIR" --port 8089 --check 2>&1) ||
	mw_fail "mw-demo --check failed: $out"
grep -q "OK - nginx answered through mw-balancer at http://127.0.0.1:8089/, over 2 INS; mw-guard shields port 8089; mw-console and mw-flowd saw the traffic" <<<"$out" ||
	mw_fail "unexpected mw-demo output: $out"
! ip netns list | grep -q mw-mwdemo-ins || mw_fail "mw-demo left an INS namespace behind: $(ip netns list)"
! ip link show mwdemo0 >/dev/null 2>&1 || mw_fail "mw-demo left its bridge mwdemo0 behind"
[ ! -e /run/mwcomms-demo ] && [ ! -e /run/mwcomms-demo.conf ] || mw_fail "mw-demo left /run/mwcomms-demo* behind"
# Bad arguments: a clear error, nothing started.
for bad in "--port 0" "--port x" "--port" "--build" "--bogus"; do
	# shellcheck disable=SC2086 # the words of $bad are the arguments
	if err=$("$MW_SOURCE_DIR/tools/mw-demo" $bad 2>&1); then mw_fail "mw-demo $bad succeeded"; fi
	grep -q "^mw-demo: " <<<"$err" || mw_fail "mw-demo $bad: no clear error: $err"
done
# One at a time: while another holds the lock, mw-demo refuses and touches nothing.
if err=$(flock /run/mwcomms-demo.lock "$MW_SOURCE_DIR/tools/mw-demo" --build "$MW_BUILD_DIR" --port 8089 --check 2>&1); then
	mw_fail "a second mw-demo ran beside the first"
fi
grep -q "another mw-demo is running" <<<"$err" || mw_fail "second mw-demo: $err"
mw_log "mw-demo --check: $out"
