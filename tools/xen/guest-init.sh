#!/bin/sh
# guest-init.sh - /init of the INS domU: eth0 from the mw.id / mw.ip / mw.gw kernel
# arguments mw-balancer passes (balancer/xlcfg.c), a XenStore record of what it did,
# then mw-ins; the domain powers off when mw-ins exits, so the balancer sees it die.
#
# XenStore (the domain's own data/ directory, readable from dom0 at
# /local/domain/DOMID/data/mw/): ip = the address configured, ins = "running PID" or
# "exited STATUS", error = why the guest gave up.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "mw-guest: $*"; }
xs() { xenstore-write "data/mw/$1" "$2" 2>/dev/null || say "xenstore-write $1 failed"; }
die() {
	say "$*"
	xs error "$*"
	sync
	poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /run /tmp /var
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
ln -sfn /run /var/run
while read -r m; do
	insmod "/lib/modules/$m.ko" || say "insmod $m failed"
done </lib/modules/order
mount -t xenfs xenfs /proc/xen || say "mount xenfs failed"

id='' ip='' gw=''
for w in $(cat /proc/cmdline); do
	case $w in
	mw.id=*) id=${w#mw.id=} ;;
	mw.ip=*) ip=${w#mw.ip=} ;;
	mw.gw=*) gw=${w#mw.gw=} ;;
	esac
done
[ -n "$id" ] && [ -n "$ip" ] && [ -n "$gw" ] ||
	die "kernel arguments need mw.id, mw.ip and mw.gw (got id='$id' ip='$ip' gw='$gw')"

# xen-netfront finds the vif on XenBus asynchronously after insmod.
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 100 ]; do
	sleep 0.1
	n=$((n + 1))
done
[ -e /sys/class/net/eth0 ] || die "no eth0 after 10 s (no vif in the domain config?)"
ip link set lo up
ip addr add "$ip" dev eth0 || die "ip addr add $ip dev eth0 failed"
ip link set eth0 up || die "ip link set eth0 up failed"
ip route add default via "$gw" || die "ip route add default via $gw failed"
say "INS $id: eth0 $ip gateway $gw"
xs ip "$ip"

mkdir -p /run/mwcomms
# A domain dom0 admitted to the Xen channel (mw-balancer's xl backend, or a test, made
# /mw/ins/DOMID owned by it before it ran) joins mw-pvm there: ins.channel = "xen", and
# its INS id is its domid.  Otherwise mw-ins retries ins.pvm_socket (a path that does not
# exist in the domU) with back-off; it runs, but serves nothing.
set --
domid=$(xenstore-read domid 2>/dev/null)
if [ -n "$domid" ] && xenstore-exists "/mw/ins/$domid" 2>/dev/null; then
	printf 'ins: { channel = "xen"; };\n' >/run/mwcomms.conf
	set -- -c /run/mwcomms.conf
	say "INS $id: joining mw-pvm over the Xen channel as INS $domid"
fi
mw-ins --id "$id" "$@" --log-level info 2>&1 &
pid=$!
sleep 1
kill -0 "$pid" 2>/dev/null && xs ins "running $pid"
wait "$pid"
st=$?
say "mw-ins exited $st"
xs ins "exited $st"
sync
poweroff -f
