#!/usr/bin/env bash
# test_attack_redis.sh - Redis (512 client slots) behind mwcomms, a non-HTTP server:
# partial RESP commands trickled by 1,000 connections in the three layouts, and an idle
# connection flood (attack_lib.sh); then slow legitimate clients alone. 99 % of benign
# PINGs answered within 3 s.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/attack_lib.sh"
mw_require_cmd redis-server
PORT=6390
atk_appliance_up "$PORT:line"
atk_server redis shimmed redis "$PORT"
atk_matrix redis "$PORT" "${ATK_ATTACKS:-slowline}" "${ATK_LAYOUTS:-shared separate spread}"
[ -n "${ATK_ATTACKS:-}" ] || atk_matrix redis "$PORT" flood separate
# timeout 0 (Redis's default): idle 10 s is within it.
atk_benign_only redis "$PORT" 10
atk_report "Redis behind mwcomms"
