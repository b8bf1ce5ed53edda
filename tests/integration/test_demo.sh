#!/usr/bin/env bash
# test_demo.sh - the README's main command works: mw-demo brings nginx up behind an INS
source "$(dirname "$0")/lib.sh"
mw_require_root
mw_require_cmd nginx curl
out=$("$MW_SOURCE_DIR/tools/mw-demo" --build "$MW_BUILD_DIR" --port 8089 --check 2>&1) ||
	mw_fail "mw-demo --check failed: $out"
echo "$out" | grep -q "OK - nginx answered through mw-ins at .*; mw-guard shields port 8089" || mw_fail "unexpected mw-demo output: $out"
! ip netns list | grep -q mwdemo-ins || mw_fail "mw-demo left its namespace behind"
