#!/usr/bin/env bash
# test_flowd_unit.sh - the installed mw-flowd.service passes systemd-analyze verify, is sandboxed
#
# Installs the build into a temp prefix; "systemd-analyze verify" of
# mw-flowd.service exits 0 and prints nothing; the unit is Type=notify with a
# watchdog, CAP_NET_RAW is its only capability, AF_PACKET is allowed; its
# exposure score stays under a ceiling; mw-flowd --check-config accepts the
# shipped config and rejects a bad flowd key by name; the installed mwmapi.h and
# libmwmapi.so build an outside program that reports a missing mw-flowd as ENOENT.
source "$(dirname "$0")/lib.sh"

mw_require_cmd cmake systemd-analyze cc
FLOWD=$MW_BUILD_DIR/flowd/mw-flowd
[ -x "$FLOWD" ] || mw_fail "mw-flowd is not built ($FLOWD missing)"
prefix=$MW_TMP/prefix
cmake --install "$MW_BUILD_DIR" --prefix "$prefix" >"$MW_TMP/install.log" 2>&1 ||
	mw_fail "cmake --install failed: $(tail -5 "$MW_TMP/install.log")"
unit=$prefix/lib/systemd/system/mw-flowd.service
[ -f "$unit" ] || mw_fail "no $unit installed"
[ -x "$prefix/sbin/mw-flowd" ] || mw_fail "no $prefix/sbin/mw-flowd installed"
grep -qx "ExecStart=$prefix/sbin/mw-flowd" "$unit" || mw_fail "ExecStart: $(grep ExecStart= "$unit")"

rc=0
SYSTEMD_LOG_COLOR=0 timeout 60 systemd-analyze verify --man=no "$unit" >"$MW_TMP/verify.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || mw_fail "systemd-analyze verify exited $rc: $(cat "$MW_TMP/verify.out")"
[ ! -s "$MW_TMP/verify.out" ] || mw_fail "systemd-analyze verify warned: $(cat "$MW_TMP/verify.out")"
for line in Type=notify NotifyAccess=main WatchdogSec=10s NoNewPrivileges=yes ProtectSystem=strict \
	ProtectHome=yes PrivateTmp=yes CapabilityBoundingSet=CAP_NET_RAW \
	"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_PACKET AF_NETLINK" MemoryDenyWriteExecute=yes; do
	grep -qxF "$line" "$unit" || mw_fail "mw-flowd.service: no '$line'"
done
out=$(timeout 60 systemd-analyze security --offline=yes --no-pager "$unit" 2>&1) || true
score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || mw_fail "no exposure level in: $(printf '%s\n' "$out" | tail -3)"
awk -v s="$score" 'BEGIN { exit !(s <= 4.0) }' || mw_fail "mw-flowd.service: exposure $score above 4.0"
mw_log "mw-flowd.service: exposure $score (ceiling 4.0)"

"$prefix/sbin/mw-flowd" --check-config -c "$prefix/etc/mwcomms/mwcomms.conf" >"$MW_TMP/check.out" 2>&1 ||
	mw_fail "shipped config rejected: $(cat "$MW_TMP/check.out")"
printf 'flowd: { inside = [ "10.0.0.0/33" ]; max_streams = 1; };\n' >"$MW_TMP/bad.conf"
rc=0
"$FLOWD" --check-config -c "$MW_TMP/bad.conf" >"$MW_TMP/bad.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || mw_fail "bad flowd config: exit $rc, not 1"
grep -q "flowd.inside" "$MW_TMP/bad.out" || mw_fail "bad CIDR not named: $(cat "$MW_TMP/bad.out")"
grep -q "flowd.max_streams: 1 is out of range" "$MW_TMP/bad.out" ||
	mw_fail "bad max_streams not named: $(cat "$MW_TMP/bad.out")"

cat >"$MW_TMP/client.c" <<'EOC'
#include <errno.h>
#include <stdio.h>
#include <mwmapi.h>
int main(void)
{
	int fd = mapi_create_flow("eth0");

	printf("fd=%d errno=%d msg=%s\n", fd, errno, mapi_last_error());
	return fd < 0 && errno == ENOENT ? 0 : 1;
}
EOC
# A sanitized build's library needs the sanitizer runtime in the program too.
san=()
if ldd "$prefix/lib/libmwmapi.so" | grep -q libasan; then
	san=("-fsanitize=address,undefined")
fi
cc -Wall -Wextra -Werror "${san[@]}" -I"$prefix/include" "$MW_TMP/client.c" -L"$prefix/lib" -lmwmapi \
	-o "$MW_TMP/client" >"$MW_TMP/cc.out" 2>&1 || mw_fail "outside client does not build: $(cat "$MW_TMP/cc.out")"
out=$(LD_LIBRARY_PATH=$prefix/lib MW_MAPI_SOCKET=$MW_TMP/none.sock "$MW_TMP/client") ||
	mw_fail "outside client: $out"
mw_log "outside client: $out"
mw_log "PASS"
