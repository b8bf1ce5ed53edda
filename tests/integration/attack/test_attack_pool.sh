#!/usr/bin/env bash
# test_attack_pool.sh - a worker-pool web server (Apache httpd, mpm_worker, 150 request
# slots) behind mwcomms under slowhttptest's slow headers, slow body and slow read and a
# connection flood, in the three layouts (attack_lib.sh); then slow legitimate clients
# alone. Every row must keep 99 % of the benign requests answered within 3 s.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/attack_lib.sh"
mw_require_cmd apache2
PORT=8081
atk_appliance_up "$PORT:http"
atk_www
atk_server apache shimmed apache "$PORT"
atk_matrix apache "$PORT" "${ATK_ATTACKS:-slowh slowb slowr flood}" "${ATK_LAYOUTS:-shared separate spread}"
# KeepAliveTimeout 5: idle 3 s is within it.
atk_benign_only apache "$PORT" 3
atk_report "worker pool (apache2 mpm_worker, MaxRequestWorkers 150) behind mwcomms"
