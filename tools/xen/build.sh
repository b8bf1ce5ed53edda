#!/usr/bin/env bash
# build.sh - the images of the emulated Xen machine, from Debian packages only
#
#   tools/xen/build.sh BUILD_DIR
#
# Writes BUILD_DIR/xen/:
#   xen            the hypervisor ELF (xen-hypervisor-4.17-amd64, gunzipped): QEMU -kernel
#   vmlinuz        Debian's generic kernel (linux-image-amd64), dom0's
#   vmlinux        the same kernel unpacked (ELF), the INS domU's: xl create of an
#                  xz-compressed kernel spends most of its time unpacking it under TCG
#   dom0.cpio.gz   dom0: busybox, the Xen tools and their libraries, xenstored,
#                  xenconsoled, vif-bridge, the mwcomms daemons and the shim, the guest
#                  image (vmlinux, ins.cpio.gz) under /var/lib/mw/xen/; dom0-init.sh is
#                  its /init
#   ins.cpio.gz    the INS domU: busybox, mw-ins and its libraries (guest-init.sh)
# The packages are fetched with apt-get download into BUILD_DIR/xen/debs (once),
# unpacked with dpkg-deb -x into BUILD_DIR/xen/pkgroot (the kernel modules pruned to
# those used) and deleted: nothing is installed on the host. An image is rebuilt only when one of its inputs is newer, so a rerun is quick.
# Needs (tools/setup.sh): busybox-static, cpio, libxen-dev (the Xen tools' libraries),
# iproute2 and bash (copied into dom0 for the hotplug scripts), xz-utils.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/xen/rootfs.sh
. "$here/rootfs.sh"

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd)
out=$build/xen
mkdir -p "$out"

# The packages of the emulated machine (docs/xen.md); the kernel is whatever
# linux-image-amd64 points at.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
[ -n "$kpkg" ] || { echo "build: apt-cache knows no linux-image-amd64 (apt-get update?)" >&2; exit 1; }
pkgs=(xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common xenstore-utils "$kpkg")

# The kernel modules kept from the package (the rest of its 350 MB would only fill the
# build tree): Xen, netfront/netback, the bridge; for the netns backend in dom0
# (tests/xen/test_xen_bench.sh) veth, and inet_diag and tcp_diag (its health checks look
# up the probe's socket in the INS's namespace through NETLINK_SOCK_DIAG).
keepmods=(drivers/xen drivers/net/xen-netback drivers/net/xen-netfront.ko drivers/net/veth.ko
	net/bridge net/802 net/llc net/ipv4/inet_diag.ko net/ipv4/tcp_diag.ko)

fetch() {
	local stamp=$out/pkgroot.stamp want
	want="${pkgs[*]} modules: ${keepmods[*]}"
	[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
	echo "build: fetching ${pkgs[*]}"
	rm -rf "$out/debs" "$out/pkgroot"
	mkdir -p "$out/debs" "$out/pkgroot"
	# A stale package list names versions the mirror no longer has: update once, retry.
	if ! (cd "$out/debs" && apt-get download -q "${pkgs[@]}") >"$out/debs.log" 2>&1; then
		apt-get update -q >>"$out/debs.log" 2>&1 || true
		(cd "$out/debs" && apt-get download -q "${pkgs[@]}") >>"$out/debs.log" 2>&1 ||
			{ cat "$out/debs.log" >&2; echo "build: apt-get download failed" >&2; exit 1; }
	fi
	local d n=0
	for d in "$out"/debs/*.deb; do
		dpkg-deb -x "$d" "$out/pkgroot"
		n=$((n + 1))
	done
	[ "$n" -eq ${#pkgs[@]} ] || { echo "build: got $n of ${#pkgs[@]} packages" >&2; exit 1; }
	local k keep
	for k in "$out"/pkgroot/lib/modules/*/kernel; do
		mkdir "$k.keep"
		for keep in "${keepmods[@]}"; do
			mkdir -p "$k.keep/$(dirname "$keep")"
			mv "$k/$keep" "$k.keep/$keep"
		done
		rm -rf "$k"
		mv "$k.keep" "$k"
	done
	rm -rf "$out/debs"
	echo "$want" >"$stamp"
}

# stale OUT INPUT...: true when OUT is missing or older than any INPUT.
stale() {
	local o=$1 i
	shift
	[ -e "$o" ] || return 0
	for i in "$@"; do
		[ "$i" -nt "$o" ] && return 0
	done
	return 1
}

fetch
pr=$out/pkgroot
kver=$(basename "$(ls -d "$pr"/lib/modules/*/ | head -n 1)")
modroot=$pr/lib/modules/$kver
xenbin=$pr/usr/lib/xen-4.17/bin

if stale "$out/xen" "$pr/boot/xen-4.17-amd64.gz"; then
	gunzip -c "$pr/boot/xen-4.17-amd64.gz" >"$out/xen.tmp" && mv "$out/xen.tmp" "$out/xen"
fi
stale "$out/vmlinuz" "$pr/boot/vmlinuz-$kver" && cp "$pr/boot/vmlinuz-$kver" "$out/vmlinuz"
if stale "$out/vmlinux" "$out/vmlinuz"; then
	# The bzImage payload is one xz stream (Debian: CONFIG_KERNEL_XZ) after the set-up code.
	off=$(LC_ALL=C grep -m 1 -aboP '\xfd7zXZ\x00' "$out/vmlinuz" | cut -d: -f1)
	[ -n "$off" ] || { echo "build: no xz payload in $out/vmlinuz" >&2; exit 1; }
	# (xz stops at the end of its stream: tail's SIGPIPE must not fail the build)
	xz -dc --single-stream <(tail -c +$((off + 1)) "$out/vmlinuz") >"$out/vmlinux.tmp"
	[ "$(head -c 4 "$out/vmlinux.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] ||
		{ echo "build: the payload of $out/vmlinuz is not an ELF" >&2; exit 1; }
	mv "$out/vmlinux.tmp" "$out/vmlinux"
fi

mwbins=("$build/ins/mw-ins" "$build/pvm/mw-pvm" "$build/balancer/mw-balancer"
	"$build/shim/libmwshim.so")
for f in "${mwbins[@]}"; do
	[ -x "$f" ] || { echo "build: $f missing: build mwcomms first" >&2; exit 1; }
done

# --- the INS domU ---------------------------------------------------------------------
if stale "$out/ins.cpio.gz" "$out/pkgroot.stamp" "$here/guest-init.sh" "$here/rootfs.sh" \
	"$here/build.sh" "$build/ins/mw-ins"; then
	echo "build: ins.cpio.gz"
	t=$out/ins.tree
	rm -rf "$t"
	mkdir -p "$t"/{proc,sys,dev,run,tmp,etc}
	rootfs_busybox "$t"
	rootfs_bin "$t" "$build/ins/mw-ins" /usr/local/sbin/mw-ins
	for b in xenstore-read xenstore-write xenstore-exists xenstore-list xenstore-rm \
		xenstore-watch; do
		rootfs_bin "$t" "$pr/usr/bin/$b" "/usr/bin/$b"
	done
	# netfront for eth0; the device modules the Xen channel of mw-ins will use.
	rootfs_modules "$t" "$modroot" xen-netfront xen-evtchn xen-gntdev xen-gntalloc \
		xen-privcmd xenfs
	install -m 0755 "$here/guest-init.sh" "$t/init"
	rootfs_cpio "$t" "$out/ins.cpio.gz"
	rm -rf "$t"
fi

# --- dom0 -------------------------------------------------------------------------------
if stale "$out/dom0.cpio.gz" "$out/ins.cpio.gz" "$out/vmlinux" "$here/dom0-init.sh" \
	"$here/rootfs.sh" "$here/build.sh" "${mwbins[@]}" "$build/tools/mwctl"; then
	echo "build: dom0.cpio.gz"
	t=$out/dom0.tree
	rm -rf "$t"
	mkdir -p "$t"/{proc,sys,dev,run,tmp,root,etc/xen,var/lib/mw/xen}
	rootfs_busybox "$t"
	# Full bash and iproute2 for /etc/xen/scripts/vif-bridge (bash, "ip link set master").
	rootfs_bin "$t" /bin/bash /bin/bash
	rm -f "$t/sbin/ip" "$t/bin/ip"
	rootfs_bin "$t" "$(command -v ip)" /sbin/ip
	rootfs_bin "$t" "$(command -v flock)" /usr/bin/flock # locking.sh; not in busybox
	ROOTFS_LIBPATH=$pr/usr/lib/x86_64-linux-gnu
	for b in xl xenstored xenconsoled xen-init-dom0 xenconsole libxl-save-helper; do
		rootfs_bin "$t" "$xenbin/$b" "/usr/lib/xen-4.17/bin/$b"
	done
	for b in "$pr"/usr/bin/xenstore-*; do
		[ -L "$b" ] || rootfs_bin "$t" "$b" "/usr/bin/$(basename "$b")"
	done
	ROOTFS_LIBPATH=
	# pthread_cancel in the Xen tools dlopens libgcc_s: ldd does not list it.
	g=$(readlink -f /lib/x86_64-linux-gnu/libgcc_s.so.1)
	install -D -m 0644 "$g" "$t/lib/x86_64-linux-gnu/libgcc_s.so.1"
	cp -a "$pr/etc/xen/scripts" "$t/etc/xen/"
	[ -e "$pr/etc/xen/xl.conf" ] && cp "$pr/etc/xen/xl.conf" "$t/etc/xen/"
	rootfs_modules "$t" "$modroot" xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs \
		xen-netback llc stp bridge veth inet_diag tcp_diag
	rootfs_bin "$t" "$build/ins/mw-ins" /usr/local/sbin/mw-ins
	rootfs_bin "$t" "$build/pvm/mw-pvm" /usr/local/sbin/mw-pvm
	rootfs_bin "$t" "$build/balancer/mw-balancer" /usr/local/sbin/mw-balancer
	rootfs_bin "$t" "$build/shim/libmwshim.so" /usr/local/lib/libmwshim.so
	[ -x "$build/tools/mwctl" ] && rootfs_bin "$t" "$build/tools/mwctl" /usr/local/sbin/mwctl
	# The app under the shim must be dynamically linked (LD_PRELOAD): busybox httpd is
	# static, so the host's nginx is the demo app; busybox wget and nc are the clients.
	if command -v nginx >/dev/null; then
		rootfs_bin "$t" "$(command -v nginx)" /usr/sbin/nginx
		mkdir -p "$t/var/log/nginx" "$t/var/lib/nginx"
	fi
	# nobody for nginx's workers; mwcomms-ins for mw-pvm's ins.user (docs/ins.md).
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
		'mwcomms-ins:x:999:999:mwcomms INS:/nonexistent:/bin/false' \
		'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$t/etc/passwd"
	printf '%s\n' 'root:x:0:' 'mwcomms-ins:x:999:' 'nogroup:x:65534:' >"$t/etc/group"
	cp "$out/vmlinux" "$t/var/lib/mw/xen/vmlinux"
	cp "$out/ins.cpio.gz" "$t/var/lib/mw/xen/ins.cpio.gz"
	install -m 0755 "$here/dom0-init.sh" "$t/init"
	rootfs_cpio "$t" "$out/dom0.cpio.gz"
	rm -rf "$t"
fi
ls -l "$out/xen" "$out/vmlinuz" "$out/dom0.cpio.gz" "$out/ins.cpio.gz" | awk '{ print "build:", $5, $NF }'
