#!/usr/bin/env bash
# test_attack_pool_slowread.sh - the short ctest variant of test_attack_pool.sh: slow
# read (slowhttptest -X, 1 MiB responses, 3 pipelined) against Apache mpm_worker (150
# threads that block in write()) in the three layouts, then the slow legitimate clients
# alone (about 80 s). The whole matrix (slow headers, slow body, flood too: about 5 min)
# is run by hand: bash tests/integration/attack/test_attack_pool.sh
ATK_ATTACKS=${ATK_ATTACKS:-slowr} exec bash "$(dirname "$0")/test_attack_pool.sh"
