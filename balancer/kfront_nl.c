/* SPDX-License-Identifier: MIT */
/* kfront_nl.c - the kernel front end's two netlink requests: connections per INS, conntrack delete
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "balancer/kfront.h"

int bal_kf_count_conns(int fd, const uint16_t *ports, int nports, struct in_addr skip,
		       unsigned *half_open)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	char buf[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
	int count = 0;

	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.r.sdiag_family = AF_INET;
	req.r.sdiag_protocol = IPPROTO_TCP;
	/*
	 * Not done: open, or closed by the INS's side with data perhaps still
	 * unacknowledged (FIN_WAIT1, CLOSING, LAST_ACK).  FIN_WAIT2 (all it
	 * sent is acknowledged), TIME_WAIT and CLOSE are done.  Half-open ones
	 * (SYN_RECV, request sockets) are counted apart, for drain only: a client
	 * that sends SYNs and drops the answers holds one for a minute per SYN, and
	 * would move the weights, per_ins_max_conns and autoscale at a few SYNs a
	 * second; but a client still in its handshake (or one an app's
	 * TCP_DEFER_ACCEPT keeps there) must not lose its INS to a drain at once
	 * (ins.c waits 5 s at most for them).
	 */
	req.r.idiag_states = (1U << TCP_ESTABLISHED) | (1U << TCP_SYN_RECV) |
			     (1U << TCP_CLOSE_WAIT) | (1U << TCP_FIN_WAIT1) | (1U << TCP_CLOSING) |
			     (1U << TCP_LAST_ACK);
	*half_open = 0;
	if (send(fd, &req, sizeof(req), 0) < 0)
		return -errno;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		const struct nlmsghdr *h;

		if (n < 0 && errno == EAGAIN) {
			if (poll(&pfd, 1, 50) <= 0)
				return -ETIMEDOUT;
			continue;
		}
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		for (h = (const struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			const struct inet_diag_msg *m = NLMSG_DATA(h);

			if (h->nlmsg_type == NLMSG_DONE)
				return count;
			if (h->nlmsg_type == NLMSG_ERROR)
				return -EIO;
			if (m->id.idiag_dst[0] == skip.s_addr)
				continue;
			for (int k = 0; k < nports; k++)
				if (ntohs(m->id.idiag_sport) == ports[k]) {
					if (m->idiag_state == TCP_SYN_RECV) /* requests too */
						(*half_open)++;
					else
						count++;
					break;
				}
		}
	}
}

int bal_kf_ct_forget(uint32_t mark)
{
	struct {
		struct nlmsghdr nlh;
		struct nfgenmsg nfg;
		struct nlattr mark_a;
		uint32_t mark;
		struct nlattr mask_a;
		uint32_t mask;
	} req;
	struct {
		struct nlmsghdr nlh;
		struct nlmsgerr err;
	} ans;
	int fd, ret = 0;
	ssize_t n;

	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
	req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	req.nfg.nfgen_family = AF_INET;
	req.nfg.version = NFNETLINK_V0;
	req.mark_a.nla_len = NLA_HDRLEN + 4;
	req.mark_a.nla_type = CTA_MARK;
	req.mark = htonl(mark);
	req.mask_a.nla_len = NLA_HDRLEN + 4;
	req.mask_a.nla_type = CTA_MARK_MASK;
	req.mask = htonl(0xffffffffU);
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (fd < 0)
		return -errno;
	if (send(fd, &req, sizeof(req), 0) < 0) {
		ret = -errno;
	} else {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (poll(&pfd, 1, 200) <= 0)
			ret = -ETIMEDOUT;
		else if ((n = recv(fd, &ans, sizeof(ans), 0)) < (ssize_t)sizeof(ans))
			ret = n < 0 ? -errno : -EIO;
		else if (ans.nlh.nlmsg_type == NLMSG_ERROR)
			ret = ans.err.error;
	}
	close(fd);
	return ret;
}
