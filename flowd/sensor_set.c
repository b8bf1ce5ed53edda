/* SPDX-License-Identifier: MIT */
/* sensor_set.c - live sensors by name or pattern; link events open and close them */
#include <errno.h>
#include <fnmatch.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "flowd/sensor_set.h"

/*
 * Theory of operation: a flowd.interfaces entry without *, ? or [ is an
 * interface that must exist at start (mw-flowd fails otherwise); one with
 * them is a pattern (fnmatch(3)): every interface matching it is opened at
 * start, and, through a NETLINK_ROUTE socket subscribed to link events, when it
 * appears later (an INS's veth).  The link-event socket is open in every case:
 * its RTM_DELLINK is what closes a sensor whose interface goes away (named or
 * matched), because the packet socket alone cannot tell: a deletion first takes
 * the link down (ENETDOWN, the interface still there), and the unregistration
 * that follows reports nothing more on a socket already unhooked.  Each sensor
 * holds one of 32 slots, whose number is its bit in MAPI scopes; a flow created
 * before an interface appeared does not see it.  A closed sensor's slot is freed.
 */

#define NL_BUF 16384

static bool is_pattern(const char *name)
{
	return strpbrk(name, "*?[") != NULL;
}

static int sensor_slot(const struct fl_sensor_set *s, const char *name)
{
	int i;

	for (i = 0; i < FL_SENSOR_SLOTS; i++)
		if (s->names[i][0] && !strcmp(s->names[i], name))
			return i;
	return -1;
}

static void sensor_close(struct fl_sensor_set *s, int i, const char *why)
{
	fl_live_poll(&s->live[i], s->engine);
	fl_live_stats(&s->live[i]);
	s->retired_drops += s->live[i].drops;
	ev_io_stop(s->loop, &s->io[i]);
	fl_live_close(&s->live[i]);
	mw_notice("sensor %s: %s; closed", s->names[i], why);
	s->names[i][0] = '\0';
	s->nactive--;
	if (s->gone)
		s->gone(s->gone_ctx, i);
}

/*
 * A wake-up with no block ready is an error on the socket.  ENETDOWN comes
 * both when the link goes down (the socket receives again when it comes back
 * up) and when the interface is removed: a sensor whose interface is already
 * gone is closed here, otherwise the link event (RTM_DELLINK) closes it.
 */
static void sensor_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fl_sensor_set *s = w->data;
	int i = (int)(w - s->io), err;

	(void)loop;
	(void)revents;
	if (fl_live_poll(&s->live[i], s->engine))
		return;
	err = fl_live_error(&s->live[i]);
	if (!err)
		return;
	if (if_nametoindex(s->names[i]) == s->live[i].ifindex)
		mw_info("sensor %s: %s (link down); still watched", s->names[i], strerror(err));
	else
		sensor_close(s, i, "interface removed");
}

static int sensor_open(struct fl_sensor_set *s, const char *name, char *err, size_t errlen)
{
	int i, ret;

	for (i = 0; i < FL_SENSOR_SLOTS && s->names[i][0]; i++)
		;
	if (i == FL_SENSOR_SLOTS) {
		snprintf(err, errlen, "%s: all %d sensor slots in use", name, FL_SENSOR_SLOTS);
		return -ENOSPC;
	}
	ret = fl_live_open(&s->live[i], name, s->cfg->filter, (size_t)s->cfg->ring_block_size,
			   (unsigned int)s->cfg->ring_blocks, err, errlen);
	if (ret)
		return ret;
	s->live[i].index = i;
	snprintf(s->names[i], sizeof(s->names[i]), "%s", name);
	ev_io_init(&s->io[i], sensor_io_cb, s->live[i].fd, EV_READ);
	s->io[i].data = s;
	ev_io_start(s->loop, &s->io[i]);
	s->nactive++;
	return 0;
}

static bool matches_pattern(const struct fl_sensor_set *s, const char *name)
{
	int i;

	for (i = 0; i < s->cfg->interfaces_count; i++)
		if (is_pattern(s->cfg->interfaces[i]) && !fnmatch(s->cfg->interfaces[i], name, 0))
			return true;
	return false;
}

static void sensor_appeared(struct fl_sensor_set *s, const char *name)
{
	char err[256];

	if (sensor_slot(s, name) >= 0 || !matches_pattern(s, name))
		return;
	if (sensor_open(s, name, err, sizeof(err)))
		mw_err("sensor %s: %s", name, err);
	else
		mw_notice("sensor %s: picked up", name);
}

/* Close every sensor whose interface is gone (or is another one by now). */
static void sensors_recheck(struct fl_sensor_set *s)
{
	int i;

	for (i = 0; i < FL_SENSOR_SLOTS; i++)
		if (s->names[i][0] && if_nametoindex(s->names[i]) != s->live[i].ifindex)
			sensor_close(s, i, "interface removed");
}

/* The interface name of one RTM_NEWLINK / RTM_DELLINK message, or NULL. */
static const char *link_name(const struct nlmsghdr *h)
{
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	const struct rtattr *a = IFLA_RTA(ifi);
	int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*ifi));

	for (; len > 0 && RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == IFLA_IFNAME && RTA_PAYLOAD(a) > 0 &&
		    RTA_PAYLOAD(a) <= IFNAMSIZ && memchr(RTA_DATA(a), '\0', RTA_PAYLOAD(a)))
			return RTA_DATA(a);
	}
	return NULL;
}

static void netlink_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fl_sensor_set *s = w->data;
	char buf[NL_BUF] __attribute__((aligned(NLMSG_ALIGNTO)));
	const struct nlmsghdr *h;
	ssize_t n;

	(void)loop;
	(void)revents;
	n = recv(s->nl_fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0) {
		/* ENOBUFS: events were lost (a removal among them?); the next still arrive. */
		if (errno == ENOBUFS)
			sensors_recheck(s);
		else if (errno != EAGAIN && errno != EINTR)
			mw_warn("link events: %s", strerror(errno));
		return;
	}
	for (h = (const struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
		const char *name;
		int i;

		if ((h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK) ||
		    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
			continue;
		name = link_name(h);
		if (!name)
			continue;
		if (h->nlmsg_type == RTM_NEWLINK) {
			/* A removal is announced by a NEWLINK (down) first: skip the gone. */
			if (if_nametoindex(name))
				sensor_appeared(s, name);
		} else {
			i = sensor_slot(s, name);
			if (i >= 0)
				sensor_close(s, i, "interface removed");
		}
	}
}

static int netlink_open(struct fl_sensor_set *s, char *err, size_t errlen)
{
	struct sockaddr_nl snl = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
	struct if_nameindex *all, *it;

	s->nl_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
	if (s->nl_fd < 0 || bind(s->nl_fd, (struct sockaddr *)&snl, sizeof(snl))) {
		snprintf(err, errlen, "link events (netlink): %s", strerror(errno));
		return -errno;
	}
	ev_io_init(&s->nl_io, netlink_cb, s->nl_fd, EV_READ);
	s->nl_io.data = s;
	ev_io_start(s->loop, &s->nl_io);
	/* Subscribed first, listed second: an interface cannot slip between the two
	 * (nor can a named one go away unseen between its opening and now). */
	sensors_recheck(s);
	all = if_nameindex();
	for (it = all; it && it->if_name; it++)
		sensor_appeared(s, it->if_name);
	if (all)
		if_freenameindex(all);
	return 0;
}

/**
 * fl_sensors_open() - open every configured interface and start watching link events
 * @s:      filled
 * @loop:   event loop
 * @e:      the engine every sensor feeds
 * @cfg:    flowd section (interfaces, filter, ring sizes)
 * @err:    one line on failure
 * @errlen: its size
 *
 * Return: 0, or -errno when a named interface cannot be opened or link events
 * cannot be watched
 */
int fl_sensors_open(struct fl_sensor_set *s, struct ev_loop *loop, struct fl_engine *e,
		    const struct mw_flowd_config *cfg, char *err, size_t errlen)
{
	int i, ret;

	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->engine = e;
	s->cfg = cfg;
	s->nl_fd = -1;
	for (i = 0; i < cfg->interfaces_count; i++) {
		if (is_pattern(cfg->interfaces[i]))
			continue;
		ret = sensor_open(s, cfg->interfaces[i], err, errlen);
		if (ret)
			return ret;
	}
	return netlink_open(s, err, errlen);
}

/**
 * fl_sensors_drain() - feed every block the kernel has handed over
 * @s: sensors
 */
void fl_sensors_drain(struct fl_sensor_set *s)
{
	int i;

	for (i = 0; i < FL_SENSOR_SLOTS; i++)
		if (s->names[i][0])
			fl_live_poll(&s->live[i], s->engine);
}

/**
 * fl_sensors_drops() - frames the kernel dropped on every sensor, open or closed, since start
 * @s: sensors
 *
 * Return: the count
 */
uint64_t fl_sensors_drops(struct fl_sensor_set *s)
{
	uint64_t drops = s->retired_drops;
	int i;

	for (i = 0; i < FL_SENSOR_SLOTS; i++) {
		if (!s->names[i][0])
			continue;
		fl_live_stats(&s->live[i]);
		drops += s->live[i].drops;
	}
	return drops;
}

/**
 * fl_sensors_close() - close every sensor and the link-event socket
 * @s: sensors, opened (successfully or not)
 */
void fl_sensors_close(struct fl_sensor_set *s)
{
	int i;

	for (i = 0; i < FL_SENSOR_SLOTS; i++) {
		if (!s->names[i][0])
			continue;
		ev_io_stop(s->loop, &s->io[i]);
		fl_live_close(&s->live[i]);
		s->names[i][0] = '\0';
	}
	s->nactive = 0;
	if (s->nl_fd >= 0) {
		ev_io_stop(s->loop, &s->nl_io);
		close(s->nl_fd);
	}
	s->nl_fd = -1;
}
