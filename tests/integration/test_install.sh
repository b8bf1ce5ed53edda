#!/usr/bin/env bash
# test_install.sh - "cmake --install" puts every artefact where docs/development.md says, and it runs
#
# Installs the build under test into a temp prefix and checks: the three daemons
# (executable), libmwshim.so, the configuration (the shipped file, byte for
# byte) and the three units, with nothing else missing from the install
# manifest; the installed daemons answer --version with the project's version
# and accept the installed configuration with --check-config, given with -c and
# through the MW_CONFIG the unit sets; the units name the installed binaries
# and config (no hard-coded /usr/local); a DESTDIR install keeps DESTDIR out of
# the unit files.
source "$(dirname "$0")/lib.sh"

mw_require_cmd cmake readelf
for b in mw-pvm mw-ins mw-balancer mw-guard libmwshim.so; do
	mw_need_bin "$b" >/dev/null
done

prefix=$MW_TMP/prefix
cmake --install "$MW_BUILD_DIR" --prefix "$prefix" >"$MW_TMP/install.log" 2>&1 ||
	mw_fail "cmake --install failed: $(tail -5 "$MW_TMP/install.log")"

# cmake writes the manifest into the tree it was configured in (build/ for the
# symlinked build-mix/ of tools/setup.sh test), named by the cache.
manifest=$(sed -n 's/^CMAKE_CACHEFILE_DIR:INTERNAL=//p' "$MW_BUILD_DIR/CMakeCache.txt")/install_manifest.txt

version=$(sed -n 's/^project(mwcomms VERSION \([0-9.]*\).*/\1/p' "$MW_SOURCE_DIR/CMakeLists.txt")
[ -n "$version" ] || mw_fail "cannot read the project version from CMakeLists.txt"
conf=$prefix/etc/mwcomms/mwcomms.conf
unitdir=$prefix/lib/systemd/system

# Every documented artefact, at its documented place.
for d in mw-pvm mw-ins mw-balancer mw-guard; do
	[ -x "$prefix/sbin/$d" ] || mw_fail "$prefix/sbin/$d missing or not executable"
done
[ -f "$prefix/lib/libmwshim.so" ] || mw_fail "$prefix/lib/libmwshim.so missing"
readelf -h "$prefix/lib/libmwshim.so" | grep -q 'Type:.*DYN' ||
	mw_fail "libmwshim.so is not a shared object"
cmp -s "$MW_SOURCE_DIR/conf/mwcomms.conf" "$conf" || mw_fail "$conf differs from conf/mwcomms.conf"
for u in mw-pvm.service mw-balancer.service mw-ins@.service mw-guard.service; do
	[ -f "$unitdir/$u" ] || mw_fail "$unitdir/$u missing"
	grep -qxF "$unitdir/$u" "$manifest" ||
		mw_fail "$u is not in install_manifest.txt (cmake cannot uninstall it)"
done
[ -f "$prefix/share/doc/mwcomms/architecture.md" ] || mw_fail "docs not installed"

# The command-line tools are installed in bin and answer --version.
for t in mwctl mw-console; do
	[ -x "$prefix/bin/$t" ] || mw_fail "$prefix/bin/$t missing or not executable"
	out=$(timeout 20 "$prefix/bin/$t" --version 2>&1) || mw_fail "$t --version failed: $out"
	[ "$out" = "$t mwcomms $version" ] || mw_fail "$t --version said '$out', want '$t mwcomms $version'"
done

# The installed binaries run: --version, and --check-config on the installed conf.
for d in mw-pvm mw-ins mw-balancer mw-guard; do
	out=$(env -u MW_CONFIG timeout 20 "$prefix/sbin/$d" --version 2>&1) ||
		mw_fail "$d --version failed: $out"
	[ "$out" = "$d mwcomms $version" ] || mw_fail "$d --version said '$out', want '$d mwcomms $version'"
	out=$(env -u MW_CONFIG timeout 20 "$prefix/sbin/$d" --check-config -c "$conf" 2>&1) ||
		mw_fail "$d --check-config -c $conf failed: $out"
	[ "$out" = "$d: configuration $conf is valid" ] || mw_fail "$d --check-config said '$out'"
done

# The units start what was installed, with the installed config.
for pair in mw-pvm.service:mw-pvm mw-balancer.service:mw-balancer mw-ins@.service:mw-ins mw-guard.service:mw-guard; do
	u=$unitdir/${pair%%:*}
	d=${pair##*:}
	grep -q '/usr/local' "$u" && mw_fail "$u hard-codes /usr/local: $(grep -n /usr/local "$u")"
	exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$u")
	[ "$exec_start" = "$prefix/sbin/$d" ] || mw_fail "$u: ExecStart runs '$exec_start'"
	env_conf=$(sed -n 's/^Environment=MW_CONFIG=//p' "$u")
	[ "$env_conf" = "$conf" ] || mw_fail "$u: MW_CONFIG is '$env_conf', want $conf"
	# Through MW_CONFIG, as systemd would run ExecStartPre.
	out=$(MW_CONFIG=$env_conf timeout 20 "$exec_start" --check-config 2>&1) ||
		mw_fail "$d --check-config with the unit's MW_CONFIG failed: $out"
	[ "$out" = "$d: configuration $conf is valid" ] || mw_fail "$d said '$out'"
done

# The shim loads into an unrelated program and stays out of its way (not with
# sanitizers: their runtime must come first in the process).
if ! grep -q '^MW_SANITIZE:BOOL=ON' "$MW_BUILD_DIR/CMakeCache.txt"; then
	out=$(LD_PRELOAD=$prefix/lib/libmwshim.so timeout 20 sh -c 'echo shimmed' 2>&1) ||
		mw_fail "a shell with the installed shim preloaded failed: $out"
	[ "$out" = shimmed ] || mw_fail "the preloaded shim printed: $out"
fi

# DESTDIR (packaging): files under DESTDIR, paths in the units without it.
dest=$MW_TMP/dest
DESTDIR=$dest cmake --install "$MW_BUILD_DIR" --prefix /opt/mwc >"$MW_TMP/destdir.log" 2>&1 ||
	mw_fail "DESTDIR install failed: $(tail -5 "$MW_TMP/destdir.log")"
u=$dest/opt/mwc/lib/systemd/system/mw-pvm.service
[ -x "$dest/opt/mwc/sbin/mw-pvm" ] || mw_fail "DESTDIR install: no $dest/opt/mwc/sbin/mw-pvm"
grep -qx 'ExecStart=/opt/mwc/sbin/mw-pvm' "$u" || mw_fail "DESTDIR unit: $(grep ExecStart= "$u")"
grep -qx 'Environment=MW_CONFIG=/opt/mwc/etc/mwcomms/mwcomms.conf' "$u" ||
	mw_fail "DESTDIR unit: $(grep MW_CONFIG "$u")"

mw_log "installed and ran: 3 daemons, libmwshim.so, conf, 3 units, docs (prefix and DESTDIR)"
