#!/usr/bin/env bash
# test_e2e_bulk.sh - 256 MiB each way through the INS, checked by sha256 (the Netflow seed's nc example)
source "$(dirname "$0")/lib.sh"
mw_require_cmd nc sha256sum
# The ring's bulk path, byte-checked (the data pipe's: test_e2e_backpressure and the rest).
# shellcheck disable=SC2034 # read by mw_appliance_up
MW_PVM_CONF="data_pipe = false;"
mw_appliance_up
SIZE=$((256 * 1024 * 1024))
head -c $SIZE /dev/urandom >"$MW_TMP/up"
head -c $SIZE /dev/urandom >"$MW_TMP/down"
sha() { sha256sum "$1" | cut -d' ' -f1; }

# Upload: client in cli -> shimmed nc -l.
mw_spawn ncup shimmed timeout 120 sh -c "exec nc -l 9100 >'$MW_TMP/up.got' </dev/null"
mw_wait_for "ins_listens 9100" 10 || mw_fail "nc -l 9100 does not listen on the INS"
in_cli timeout 120 nc -N "$INS_IP" 9100 <"$MW_TMP/up" || mw_fail "upload failed"
mw_wait_for "! kill -0 $(mw_pid ncup) 2>/dev/null" 30 || mw_fail "shimmed nc -l did not see EOF"
[ "$(sha "$MW_TMP/up.got")" = "$(sha "$MW_TMP/up")" ] || mw_fail "256 MiB upload differs"
rm -f "$MW_TMP/up" "$MW_TMP/up.got"

# Download: shimmed nc -l sends to the client.
mw_spawn ncdown shimmed timeout 120 sh -c "exec nc -N -l 9101 <'$MW_TMP/down' >/dev/null"
mw_wait_for "ins_listens 9101" 10 || mw_fail "nc -l 9101 does not listen on the INS"
in_cli timeout 120 nc -d "$INS_IP" 9101 >"$MW_TMP/down.got" || mw_fail "download failed"
[ "$(sha "$MW_TMP/down.got")" = "$(sha "$MW_TMP/down")" ] || mw_fail "256 MiB download differs"
mw_log "256 MiB each way OK"
