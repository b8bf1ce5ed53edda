#!/usr/bin/env bash
# run.sh - boot the emulated Xen machine (images from tools/xen/build.sh) under QEMU
#
#   tools/xen/run.sh BUILD_DIR [OVERLAY] [SECONDS]
#
# Xen and dom0 run under TCG (no KVM needed); the serial console (Xen, then dom0 on
# hvc0) is this script's stdin/stdout. OVERLAY (a .cpio.gz, or a directory packed here)
# is appended to dom0's initramfs (the kernel unpacks concatenated archives): an
# executable /mw/run in it is run by dom0's /init, which then powers the machine off;
# without one dom0 gives a shell. Extra dom0 kernel arguments: $MW_XEN_DOM0_ARGS. The run is
# killed after SECONDS (default 600). Exit status: QEMU's (0 after dom0 powers off),
# 124 on timeout.
set -euo pipefail

[ $# -ge 1 ] && [ $# -le 3 ] || { echo "usage: $0 BUILD_DIR [OVERLAY] [SECONDS]" >&2; exit 2; }
img=$(cd "$1" && pwd)/xen
overlay=${2:-}
secs=${3:-600}
for f in xen vmlinuz dom0.cpio.gz; do
	[ -f "$img/$f" ] || { echo "run: $img/$f missing: run tools/xen/build.sh first" >&2; exit 1; }
done
initrd=$img/dom0.cpio.gz
if [ -n "$overlay" ]; then
	initrd=$(mktemp "${TMPDIR:-/tmp}/mw-xen-initrd.XXXXXX")
	trap 'rm -f "$initrd"' EXIT
	if [ -d "$overlay" ]; then
		cat "$img/dom0.cpio.gz" >"$initrd"
		(cd "$overlay" && find . -mindepth 1 | cpio --quiet -o -H newc -R 0:0 | gzip) >>"$initrd"
	else
		cat "$img/dom0.cpio.gz" "$overlay" >"$initrd"
	fi
fi
# QEMU's -initrd takes "FILE ARGS,FILE": a comma in a path would split it.
case $img$initrd in *,*) echo "run: image paths must not contain ','" >&2; exit 2 ;; esac

# The CPU flags matter (docs/xen.md): qemu64 has no HAP and -cpu max crashes dom0;
# +svm,+npt runs PV and PVH guests. bootscrub=false: Xen would scrub all RAM at boot.
timeout --foreground -k 5 "$secs" qemu-system-x86_64 -accel tcg -cpu qemu64,+svm,+npt \
	-m 1024 -smp 2 -nographic -no-reboot -monitor none -serial stdio -nic none \
	-nodefaults -vga none \
	-kernel "$img/xen" \
	-append "console=com1 com1=115200,8n1 dom0_mem=512M,max:512M dom0_max_vcpus=2 bootscrub=false loglvl=all guest_loglvl=all console_timestamps=boot" \
	-initrd "$img/vmlinuz console=hvc0 earlyprintk=xen loglevel=4 ${MW_XEN_DOM0_ARGS:-},$initrd"
