/* SPDX-License-Identifier: MIT */
/* ins_sandbox.c - mw-ins's seccomp allow-list (libseccomp), no_new_privs, not dumpable */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xen/xen.h> /* domid_t, which <xen/sys/evtchn.h> needs */
#include <xen/sys/evtchn.h>

#include "ins/ins_sandbox.h"

/*
 * Theory of operation
 *
 * Whoever starts mw-ins (mw-balancer, the mw-ins@ unit, a test) has already
 * placed it; this is what mw-ins does for itself, last thing before its loop:
 *
 * - no_new_privs (execve can never gain privilege; required for seccomp);
 * - not dumpable: INS share one uid (ins.user), and a non-dumpable process's
 *   /proc/PID files are root's, so one INS cannot read another's memory, fds
 *   or environment through /proc even if it got past the filter;
 * - the allow-list below: what the loop really calls (read from strace of the
 *   integration tests: the relay, the channel to mw-pvm, libev, glibc's
 *   malloc and time).  Some calls are allowed only with harmless arguments:
 *   socket() for AF_UNIX/INET/INET6 only, mmap()/mprotect() never with
 *   PROT_EXEC, openat() read-only (the congestion-control list in /proc),
 *   kill()/tgkill() to ourselves only, prlimit64() to read.  Not on it, among
 *   others: execve, fork/clone, ptrace, setns, unshare, mount, bpf, keyctl,
 *   io_uring, process_vm_*, open for writing, unlink, chmod, setuid, prctl.
 *
 * A call off the list does not run: the kernel raises SIGSYS (SCMP_ACT_TRAP),
 * our handler writes one line naming the call's number to stderr and the
 * process dies of SIGSYS, which its launcher logs.  A compromised INS that
 * catches SIGSYS itself gains nothing: the call was still not executed.
 *
 * Sanitizer builds (ASan/UBSan, build-asan) need more at run time: their
 * report and leak check stop the world with a cloned tracer thread (clone,
 * ptrace, wait4, prctl, getdents64 of /proc/self/task, sigaltstack, ...)
 * and try to start a symbolizer.  Those are added only when compiled with
 * -fsanitize=address; execve stays forbidden there too (EPERM, so a report
 * still completes, unsymbolized).
 */

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_ASAN 1
#endif
#endif

/* Allowed with any argument. */
static const int plain[] = {
	/* data path and channel */
	SCMP_SYS(read),
	SCMP_SYS(write),
	SCMP_SYS(readv),
	SCMP_SYS(writev),
	SCMP_SYS(pread64),
	SCMP_SYS(close),
	SCMP_SYS(accept4),
	SCMP_SYS(accept),
	SCMP_SYS(bind),
	SCMP_SYS(listen),
	SCMP_SYS(connect),
	SCMP_SYS(shutdown),
	SCMP_SYS(sendto),
	SCMP_SYS(recvfrom),
	SCMP_SYS(sendmsg),
	SCMP_SYS(recvmsg),
	SCMP_SYS(getsockname),
	SCMP_SYS(getpeername),
	SCMP_SYS(setsockopt),
	SCMP_SYS(getsockopt),
	SCMP_SYS(fcntl),
	SCMP_SYS(readlink),
	SCMP_SYS(readlinkat),
	SCMP_SYS(fstat),
	SCMP_SYS(newfstatat),
	SCMP_SYS(statx),
	SCMP_SYS(lseek),
	SCMP_SYS(poll),
	SCMP_SYS(ppoll),
	/* libev */
	SCMP_SYS(epoll_create1),
	SCMP_SYS(epoll_ctl),
	SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait),
	SCMP_SYS(epoll_pwait2),
	SCMP_SYS(eventfd2),
	SCMP_SYS(signalfd4),
	SCMP_SYS(timerfd_create),
	SCMP_SYS(timerfd_settime),
	SCMP_SYS(timerfd_gettime),
	/* memory, time, signals, identity, exit */
	SCMP_SYS(munmap),
	SCMP_SYS(mremap),
	SCMP_SYS(madvise),
	SCMP_SYS(brk),
	SCMP_SYS(futex),
	SCMP_SYS(clock_gettime),
	SCMP_SYS(clock_getres),
	SCMP_SYS(gettimeofday),
	SCMP_SYS(nanosleep),
	SCMP_SYS(clock_nanosleep),
	SCMP_SYS(sched_yield),
	SCMP_SYS(rt_sigaction),
	SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(rt_sigreturn),
	SCMP_SYS(sigaltstack),
	SCMP_SYS(restart_syscall),
	SCMP_SYS(getpid),
	SCMP_SYS(gettid),
	SCMP_SYS(getuid),
	SCMP_SYS(geteuid),
	SCMP_SYS(getgid),
	SCMP_SYS(getegid),
	SCMP_SYS(uname),
	SCMP_SYS(getrandom),
	SCMP_SYS(exit),
	SCMP_SYS(exit_group),
};

#ifdef SANDBOX_ASAN
/*
 * What the sanitizer runtime calls on a report or at exit (leak check).  On
 * x86_64 it uses the legacy calls (open, getdents, stat...): a leak check's
 * tracer that met one died of SIGSYS unseen (it blocks every signal), and the
 * exiting daemon waited for it forever.
 */
static const int asan_extra[] = {
	SCMP_SYS(open),	     SCMP_SYS(getdents),       SCMP_SYS(stat),
	SCMP_SYS(lstat),     SCMP_SYS(pipe),	       SCMP_SYS(fork),
	SCMP_SYS(clone),     SCMP_SYS(ptrace),	       SCMP_SYS(wait4),
	SCMP_SYS(prctl),     SCMP_SYS(getdents64),     SCMP_SYS(sched_getaffinity),
	SCMP_SYS(kill),	     SCMP_SYS(tgkill),	       SCMP_SYS(getppid),
	SCMP_SYS(ioctl),     SCMP_SYS(pipe2),	       SCMP_SYS(dup2),
	SCMP_SYS(dup3),	     SCMP_SYS(getcwd),	       SCMP_SYS(getrusage),
	SCMP_SYS(statfs),    SCMP_SYS(fstatfs),	       SCMP_SYS(prlimit64),
	SCMP_SYS(mprotect),  SCMP_SYS(mmap),	       SCMP_SYS(openat),
	SCMP_SYS(msync),     SCMP_SYS(mincore),	       SCMP_SYS(setrlimit),
	SCMP_SYS(getrlimit), SCMP_SYS(sched_getparam), SCMP_SYS(sched_getscheduler),
	SCMP_SYS(unlink),    SCMP_SYS(close_range),    SCMP_SYS(process_vm_readv),
	SCMP_SYS(access),    SCMP_SYS(faccessat),      SCMP_SYS(faccessat2),
};
#endif

/* "mw-ins: error: seccomp: system call NNN is not ..." without stdio, then SIGSYS. */
static void sigsys_handler(int sig, siginfo_t *si, void *uctx)
{
	static const char head[] = "mw-ins: error: seccomp: system call ";
	static const char tail[] = " is not on the allow-list; dying of SIGSYS\n";
	char line[sizeof(head) + sizeof(tail) + 16], num[16];
	int n = si->si_syscall, len = 0;
	size_t at = sizeof(head) - 1;

	if (n < 0)
		n = 0;
	do {
		num[len++] = (char)('0' + n % 10);
		n /= 10;
	} while (n && len < (int)sizeof(num));
	memcpy(line, head, at);
	while (len)
		line[at++] = num[--len];
	memcpy(line + at, tail, sizeof(tail) - 1);
	at += sizeof(tail) - 1;
	while (write(STDERR_FILENO, line, at) < 0 && errno == EINTR)
		;
	signal(SIGSYS, SIG_DFL);
	raise(SIGSYS);
}

static int add_rules(scmp_filter_ctx ctx, bool xen, int *count)
{
	const pid_t self = getpid();
	const scmp_datum_t wr = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND;
	size_t i;
	int ret = 0;

#define ALLOW(nr, n, ...)                                                                      \
	do {                                                                                   \
		if (!ret)                                                                      \
			ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, (nr), (n), ##__VA_ARGS__); \
		*count += !ret;                                                                \
	} while (0)

	for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		ALLOW(plain[i], 0);
	ALLOW(SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0));
	/* DATA_PIPE: the channel's data pipe into TCP, never waiting for the pipe. */
	ALLOW(SCMP_SYS(splice), 1, SCMP_A5(SCMP_CMP_MASKED_EQ, SPLICE_F_NONBLOCK, SPLICE_F_NONBLOCK));
	ALLOW(SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET, 0));
	ALLOW(SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET6, 0));
#ifdef SANDBOX_ASAN
	for (i = 0; i < sizeof(asan_extra) / sizeof(asan_extra[0]); i++)
		ALLOW(asan_extra[i], 0);
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(execve), 0);
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(vfork), 0);
#else
	ALLOW(SCMP_SYS(mmap), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	ALLOW(SCMP_SYS(mprotect), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	ALLOW(SCMP_SYS(openat), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, wr, 0));
	ALLOW(SCMP_SYS(kill), 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self, 0));
	ALLOW(SCMP_SYS(tgkill), 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self, 0));
	ALLOW(SCMP_SYS(prlimit64), 1, SCMP_A2(SCMP_CMP_EQ, 0, 0));
	/* ins_linger.c: how much of a closed connection the client has not acknowledged. */
	ALLOW(SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, SIOCOUTQ, 0));
#endif
	/* ins.channel xen: kicking mw-pvm is an event-channel notify, nothing more. */
	if (xen)
		ALLOW(SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, IOCTL_EVTCHN_NOTIFY, 0));
#undef ALLOW
	(void)wr;
	(void)self;
	return ret;
}

int ins_sandbox_enter(bool seccomp, bool xen, char *err, size_t errlen)
{
	struct sigaction sa = { .sa_sigaction = sigsys_handler,
				.sa_flags = SA_SIGINFO | SA_NODEFER };
	scmp_filter_ctx ctx = NULL;
	int ret, count = 0;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) {
		ret = -errno;
		snprintf(err, errlen, "no_new_privs / not dumpable: %s", strerror(errno));
		goto out;
	}
	ret = 0;
	if (!seccomp)
		goto out;
	if (sigaction(SIGSYS, &sa, NULL)) {
		ret = -errno;
		snprintf(err, errlen, "SIGSYS handler: %s", strerror(errno));
		goto out;
	}
	ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx) {
		ret = -ENOMEM;
		snprintf(err, errlen, "seccomp_init failed");
		goto out;
	}
	ret = add_rules(ctx, xen, &count);
	if (ret) {
		snprintf(err, errlen, "seccomp rule: %s", strerror(-ret));
		goto out;
	}
	ret = seccomp_load(ctx);
	if (ret) {
		snprintf(err, errlen, "loading the seccomp filter: %s", strerror(-ret));
		goto out;
	}
	ret = count;
out:
	if (ctx)
		seccomp_release(ctx);
	return ret;
}
