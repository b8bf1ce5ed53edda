#!/usr/bin/env bash
# test_e2e_nginx.sh - unmodified nginx under libmwshim.so, served through mw-ins
#
# nginx (master + 2 workers, sendfile on, keep-alive) listens through the INS;
# clients in their own namespace fetch static files byte for byte, reuse one
# keep-alive connection, then make 1,000 requests with curl and a bounded wrk run.
source "$(dirname "$0")/lib.sh"
mw_require_cmd nginx curl wrk sha256sum
mw_appliance_up

WWW=$MW_TMP/www
NGX=$MW_TMP/nginx
mkdir -p "$WWW" "$NGX"
echo "<h1>mwcomms nginx test $$</h1>" >"$WWW/index.html"
head -c 1048576 /dev/urandom >"$WWW/one.bin"
head -c 20000000 /dev/urandom >"$WWW/big.bin"
cat >"$NGX/nginx.conf" <<NGINX
daemon off;
master_process on;
worker_processes 2;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_timeout 65;
	keepalive_requests 100000;
	client_body_temp_path $NGX/body;
	proxy_temp_path $NGX/proxy;
	fastcgi_temp_path $NGX/fastcgi;
	uwsgi_temp_path $NGX/uwsgi;
	scgi_temp_path $NGX/scgi;
	server {
		listen 8080;
		root $WWW;
	}
}
NGINX
mw_spawn nginx shimmed nginx -c "$NGX/nginx.conf"
mw_wait_for "ins_listens 8080" 10 || mw_fail "nginx does not listen on the INS"
URL=http://$INS_IP:8080
# The workers drop to nobody and accept on the root master's listener: the fd,
# not the uid, is what mw-pvm checks.
users=$(ps -o user= --ppid "$(cat "$NGX/nginx.pid")" | sort -u | tr '\n' ' ')
[ "$users" = "nobody " ] || mw_fail "nginx workers run as '$users', want nobody"

# Static files, byte for byte.
for f in index.html one.bin big.bin; do
	in_cli curl -sf --max-time 30 -o "$MW_TMP/got.$f" "$URL/$f" || mw_fail "GET /$f failed"
	cmp -s "$MW_TMP/got.$f" "$WWW/$f" || mw_fail "GET /$f: body differs"
done
code=$(in_cli curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$URL/missing") || true
[ "$code" = 404 ] || mw_fail "GET /missing: status $code, want 404"
mw_log "static files OK"

# Keep-alive: 20 requests, one connection, every body right.
cfg=$MW_TMP/keepalive.curl
: >"$cfg"
for i in $(seq 20); do
	printf 'url = "%s/one.bin"\noutput = "%s/ka.%d"\n' "$URL" "$MW_TMP" "$i" >>"$cfg"
done
conns=$(in_cli curl -sf --max-time 60 -K "$cfg" -w '%{num_connects}\n' | awk '{s += $1} END {print s}')
[ "$conns" = 1 ] || mw_fail "keep-alive: $conns connections for 20 requests, want 1"
for i in $(seq 20); do
	cmp -s "$MW_TMP/ka.$i" "$WWW/one.bin" || mw_fail "keep-alive response $i differs"
done
mw_log "keep-alive OK"

# 1,000 requests with curl (8 clients x 125, keep-alive within each).
pids=()
for c in $(seq 8); do
	cfg=$MW_TMP/many.$c.curl
	: >"$cfg"
	for i in $(seq 125); do printf 'url = "%s/index.html"\noutput = "/dev/null"\n' "$URL"; done >>"$cfg"
	in_cli curl -s --max-time 120 -K "$cfg" -w '%{http_code}\n' >"$MW_TMP/many.$c.codes" &
	pids+=($!)
done
wait "${pids[@]}" # not a bare wait: the daemons are children too
ok=$(cat "$MW_TMP"/many.*.codes | grep -c '^200$' || true)
[ "$ok" = 1000 ] || mw_fail "1,000 curl requests: $ok answered 200"
mw_log "1,000 curl requests OK"

# wrk: bounded 3 s run, no socket errors, no non-2xx, at least 1,000 requests.
in_cli wrk -t 2 -c 32 -d 3s --timeout 5s "$URL/index.html" >"$MW_TMP/wrk.out" 2>&1 ||
	mw_fail "wrk failed: $(cat "$MW_TMP/wrk.out")"
reqs=$(awk '/requests in/ {print $1}' "$MW_TMP/wrk.out")
! grep -q -e 'Socket errors' -e 'Non-2xx' "$MW_TMP/wrk.out" || mw_fail "wrk saw errors: $(cat "$MW_TMP/wrk.out")"
[ "${reqs:-0}" -ge 1000 ] || mw_fail "wrk made only ${reqs:-0} requests in 3 s"
mw_log "wrk: $reqs requests, no errors"

kill -0 "$(mw_pid pvm)" || mw_fail "mw-pvm died"
kill -0 "$(mw_pid nginx)" || mw_fail "nginx died"
