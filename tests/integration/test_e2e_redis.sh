#!/usr/bin/env bash
# test_e2e_redis.sh - redis-server under libmwshim.so, driven by redis-benchmark through mw-ins
source "$(dirname "$0")/lib.sh"
mw_require_cmd redis-server redis-cli redis-benchmark
mw_appliance_up

mw_spawn redis shimmed redis-server --port 6390 --bind 0.0.0.0 --protected-mode no \
	--save '' --appendonly no --dir "$MW_TMP"
mw_wait_for "ins_listens 6390" 10 || mw_fail "redis does not listen on the INS"

# Content round trip.
val=$(head -c 3000 /dev/urandom | base64 -w0)
[ "$(in_cli redis-cli -h "$INS_IP" -p 6390 set k "$val")" = OK ] || mw_fail "SET failed"
[ "$(in_cli redis-cli -h "$INS_IP" -p 6390 get k)" = "$val" ] || mw_fail "GET returned another value"

# Thousands of requests, 50 clients, pipelined and not; zero errors.
in_cli timeout 120 redis-benchmark -h "$INS_IP" -p 6390 -n 20000 -c 50 -t set,get,incr,lpush \
	--csv >"$MW_TMP/bench.csv" 2>"$MW_TMP/bench.err" || mw_fail "redis-benchmark failed: $(cat "$MW_TMP/bench.err")"
in_cli timeout 120 redis-benchmark -h "$INS_IP" -p 6390 -n 20000 -c 20 -P 16 -t set,get \
	--csv >>"$MW_TMP/bench.csv" 2>>"$MW_TMP/bench.err" || mw_fail "pipelined redis-benchmark failed"
! grep -qi error "$MW_TMP/bench.err" || mw_fail "redis-benchmark reported errors: $(cat "$MW_TMP/bench.err")"
[ "$(grep -c '^"' "$MW_TMP/bench.csv")" -ge 6 ] || mw_fail "redis-benchmark results missing: $(cat "$MW_TMP/bench.csv")"
n=$(in_cli redis-cli -h "$INS_IP" -p 6390 get counter:__rand_int__)
[ -n "$n" ] && [ "$n" -ge 20000 ] || mw_fail "INCR count $n, want >= 20000 (requests lost)"
mw_log "redis-benchmark: $(tr '\n' ' ' <"$MW_TMP/bench.csv")"
