#!/usr/bin/env bash
# test_attack_nginx.sh - nginx (its built-in defaults: 1 worker x 512 connections) behind
# mwcomms under slowhttptest's slow headers, slow body and slow read (attack_lib.sh);
# then slow legitimate clients alone. 99 % of benign requests answered within 3 s.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/attack_lib.sh"
mw_require_cmd nginx
PORT=8080
atk_appliance_up "$PORT:http"
atk_www
atk_server nginx shimmed nginx "$PORT"
atk_matrix nginx "$PORT" "${ATK_ATTACKS:-slowh slowb slowr}" "${ATK_LAYOUTS:-separate}"
# keepalive_timeout 75 (nginx's default): idle 10 s is within it.
atk_benign_only nginx "$PORT" 10
atk_report "nginx behind mwcomms"
