/* SPDX-License-Identifier: MIT */
/* main.c - mw-pvm entry point: sockets up, readiness, status, clean shutdown */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/daemon.h"
#include "common/log.h"
#include "pvm/pvm.h"

static void pvm_status_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pvm *p = w->data;
	char nf[96];

	(void)loop;
	(void)revents;
	pvm_netflow_status(p, nf, sizeof(nf));
	mw_daemon_status(
		p->d,
		"%u INS, %u socket(s), %u shim connection(s), %llu accepted, "
		"%llu released (app gone), %llu hijack(s), %llu over quota, "
		"%llu connection(s) refused, %llu byte(s) pending for apps, %llu reset over "
		"pvm.pending_total, %s",
		p->nins, p->socks.count, p->nclients, (unsigned long long)p->accepted_total,
		(unsigned long long)p->released_total, (unsigned long long)p->listener_hijacks,
		(unsigned long long)p->quota_refused, (unsigned long long)p->clients_refused,
		(unsigned long long)p->pend_bytes, (unsigned long long)p->pend_resets, nf);
}

static int pvm_tag_init(struct pvm *p)
{
	ssize_t n;

	do {
		n = getrandom(&p->tag, sizeof(p->tag), 0);
	} while (n < 0 && errno == EINTR);
	if (n != sizeof(p->tag))
		return n < 0 ? -errno : -EIO;
	return 0;
}

int main(int argc, char **argv)
{
	static struct mw_daemon d = {
		.name = "mw-pvm",
		.summary = "Relay the protected app's TCP sockets to the INS instances.",
	};
	static struct pvm p = { .ctl_fd = -1, .ins_fd = -1, .hold_fd = -1, .connect_dirfd = -1 };
	char err[256] = "";
	int ret, status = EXIT_FAILURE;

	ret = mw_daemon_init(&d, argc, argv);
	if (ret >= 0)
		return ret;
	p.d = &d;
	p.loop = d.loop;
	p.cfg = &d.cfg.pvm;
	d.ctx = &p;

	ret = pvm_tag_init(&p);
	if (ret) {
		mw_err("cannot draw a random tag: %s", strerror(-ret));
		goto out;
	}
	ret = pvm_table_init(&p.socks, 1024);
	if (ret) {
		mw_err("socket table: %s", strerror(-ret));
		goto out;
	}
	ret = pvm_connect_open(&p, d.cfg.common.runtime_dir);
	if (ret) {
		mw_err("connect: %s/pvm%d-connect, a directory of mw-pvm's alone (0700): %s",
		       d.cfg.common.runtime_dir, d.cfg.pvm.index, strerror(-ret));
		goto out;
	}
	ret = pvm_ins_open(&p, err, sizeof(err));
	if (!ret)
		ret = pvm_xen_open(&p, err, sizeof(err));
	if (!ret)
		ret = pvm_shim_open(&p, err, sizeof(err));
	if (!ret)
		ret = pvm_netflow_open(&p, err, sizeof(err));
	if (!ret)
		pvm_view_open(&p);
	if (ret) {
		mw_err("%s", err);
		goto out_close;
	}
	mw_spin_start(p.loop, &p.spin, d.cfg.pvm.spin_us);
	ev_timer_init(&p.status_timer, pvm_status_cb, 1., 1.);
	p.status_timer.data = &p;
	ev_timer_start(p.loop, &p.status_timer);

	mw_notice("ready: control %s, INS %s, index %d, ring %d, window %d", p.ctl_path, p.ins_path,
		  d.cfg.pvm.index, d.cfg.pvm.ring_size, d.cfg.pvm.socket_window);
	mw_daemon_ready(&d, "waiting for INS; control socket %s", p.ctl_path);

	ev_run(p.loop, 0);

	mw_daemon_stopping(&d);
	status = EXIT_SUCCESS;
	ev_timer_stop(p.loop, &p.status_timer);
	mw_spin_stop(p.loop, &p.spin);
out_close:
	pvm_shim_close(&p);
	pvm_xen_close(&p);
	pvm_ins_close_all(&p);
	pvm_view_close(&p);
	pvm_netflow_close(&p);
	pvm_sock_free_all(&p);
	pvm_table_fini(&p.socks);
	pvm_connect_close(&p);
	pvm_closer_stop(&p); /* last: the steps above hand it fds */
out:
	if (status == EXIT_SUCCESS)
		mw_notice("stopped");
	mw_daemon_fini(&d);
	return status;
}
