# shellcheck shell=bash
# nginx_conf.sh - sourced by the benchmarks: the one nginx configuration they compare
# nginx_conf NAME LISTEN [ROOT]: the path of an nginx config with one worker serving
# ROOT (default $WWW) on LISTEN, under $MW_TMP/nginx-NAME.
nginx_conf() {
	local d=$MW_TMP/nginx-$1
	mkdir -p "$d"
	cat >"$d/nginx.conf" <<NGINX
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 16384;
pid $d/nginx.pid;
error_log $d/error.log error;
events { worker_connections 8192; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 1000000;
	client_body_temp_path $d/body;
	proxy_temp_path $d/proxy;
	fastcgi_temp_path $d/fastcgi;
	uwsgi_temp_path $d/uwsgi;
	scgi_temp_path $d/scgi;
	server { listen $2 backlog=4096; root ${3:-$WWW}; }
}
NGINX
	echo "$d/nginx.conf"
}
