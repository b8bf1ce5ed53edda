#!/usr/bin/env bash
# test_xen_balancer.sh - mw-balancer's xl backend for real, under QEMU: in dom0 it
# creates the INS domU through libxl, admits it to the Xen channel, declares it ready
# once its INS joined mw-pvm and the app's listener answers there, serves requests
# through it, sees it die after `xl destroy` and replaces it (tests/xen/dom0_balancer.sh;
# the machine and the checks' plumbing are test_xen_channel.sh's).
MW_XEN_NAME=test_xen_balancer MW_XEN_DOM0=dom0_balancer.sh MW_XEN_WANT=7 \
	exec bash "$(dirname "$0")/test_xen_channel.sh"
