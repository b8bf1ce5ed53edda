#!/usr/bin/env bash
# rootfs.sh - helpers that fill an initramfs tree: binaries with their libraries,
# busybox, kernel modules, and the cpio.gz writer (sourced by tools/xen/build.sh)

# rootfs_bin TREE SRC [DEST]: copy the ELF SRC to TREE/DEST (default: the same path)
# with every shared library ldd names, at the path ldd gives, loader included.
rootfs_bin() {
	local tree=$1 src=$2 dest=${3:-$2} lib
	install -D -m 0755 "$src" "$tree$dest"
	# ldd prints "name => /path (addr)" or "/path (addr)" (the loader); vdso has no path.
	# LD_LIBRARY_PATH lets the unpacked Xen tools find their own libraries too.
	for lib in $(LD_LIBRARY_PATH=${ROOTFS_LIBPATH:-} ldd "$src" 2>/dev/null |
		awk '/=> \// { print $3 } /^\t\// { print $1 }'); do
		[ -e "$tree$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$tree$lib"
	done
}

# rootfs_busybox TREE: busybox-static as /bin/busybox and every applet it has as a link
# in /bin or /sbin (never overwriting a real binary copied before or after).
rootfs_busybox() {
	local tree=$1 applet
	install -D -m 0755 /bin/busybox "$tree/bin/busybox"
	mkdir -p "$tree/sbin" "$tree/usr/bin" "$tree/usr/sbin"
	for applet in $(/bin/busybox --list-full); do
		[ -e "$tree/$applet" ] || [ -L "$tree/$applet" ] && continue
		mkdir -p "$tree/$(dirname "$applet")"
		ln -s /bin/busybox "$tree/$applet"
	done
}

# rootfs_modules TREE MODROOT NAME...: copy the named modules (file names without .ko,
# found under MODROOT/kernel) into TREE/lib/modules/, in the order given (the init
# scripts insmod them in that order: dependencies first).
rootfs_modules() {
	local tree=$1 modroot=$2 name f
	shift 2
	mkdir -p "$tree/lib/modules"
	for name in "$@"; do
		f=$(find "$modroot/kernel" -name "$name.ko" | head -n 1)
		[ -n "$f" ] || { echo "rootfs: module $name not in $modroot" >&2; return 1; }
		install -m 0644 "$f" "$tree/lib/modules/$name.ko"
		echo "$name" >>"$tree/lib/modules/order"
	done
}

# rootfs_cpio TREE OUT: the tree as a newc cpio, gzip-compressed, owned by root.
rootfs_cpio() {
	local tree=$1 out=$2
	(cd "$tree" && find . -mindepth 1 | LC_ALL=C sort |
		cpio --quiet -o -H newc -R 0:0) | gzip -1 >"$out.tmp"
	mv "$out.tmp" "$out"
}
