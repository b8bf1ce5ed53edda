#!/bin/sh
# dom0-init.sh - /init of the emulated machine's dom0: Xen drivers, xenstored,
# xenconsoled, the guest bridge, then /mw/run (a test appended as a second cpio) or a
# shell on the console; powers the machine off when that returns.
#
# Kernel arguments read: mw.bridge=NAME (default mwbr0, balancer.bridge) and
# mw.bridge_ip=ADDR/PREFIX (default 10.77.0.1/24: host 1 of balancer.subnet).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/xen-4.17/bin
export HOME=/root

say() { echo "mw-dom0: $*"; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run /tmp /var
mount -t devpts devpts /dev/pts # xenconsoled makes guest ttys here
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
ln -sfn /run /var/run
mkdir -p /var/run/xen /var/run/xenstored /var/log/xen/console /var/lib/xen /var/lock \
	/run/mwcomms
ip link set lo up

while read -r m; do
	insmod "/lib/modules/$m.ko" || say "insmod $m failed"
done </lib/modules/order
mount -t xenfs xenfs /proc/xen || say "mount xenfs failed"

bridge=mwbr0
bridge_ip=10.77.0.1/24
for w in $(cat /proc/cmdline); do
	case $w in
	mw.bridge=*) bridge=${w#mw.bridge=} ;;
	mw.bridge_ip=*) bridge_ip=${w#mw.bridge_ip=} ;;
	esac
done

xenstored --pid-file=/var/run/xenstored.pid || say "xenstored failed"
xen-init-dom0 >/dev/null || say "xen-init-dom0 failed"
# Guest consoles are logged to /var/log/xen/console/guest-NAME.log for the tests.
xenconsoled --pid-file=/var/run/xenconsoled.pid --log=guest \
	--log-dir=/var/log/xen/console || say "xenconsoled failed"

# The bridge the vif-bridge hotplug script puts guest vifs into; dom0 is its gateway.
if ! { ip link add name "$bridge" type bridge stp_state 0 forward_delay 0 &&
	ip addr add "$bridge_ip" dev "$bridge" && ip link set "$bridge" up; }; then
	say "bridge $bridge failed"
fi

read -r up _ </proc/uptime
say "ready after ${up}s (bridge $bridge $bridge_ip)"
if [ -x /mw/run ]; then
	/mw/run
	say "/mw/run exited $?"
else
	say "no /mw/run: shell on the console; 'poweroff -f' stops the machine"
	setsid sh -c 'exec sh </dev/hvc0 >/dev/hvc0 2>&1'
fi
sync
poweroff -f
