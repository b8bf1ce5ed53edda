/* SPDX-License-Identifier: MIT */
/* confine.c - what a spawned mw-ins may see and hold: own mount view, ins.user, no capabilities */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "balancer/backend.h"

/*
 * Theory of operation
 *
 * bal_confine_prepare() runs once at init: ins.user (default "mwcomms-ins")
 * is looked up; when it is set and the balancer runs as root, every INS is
 * confined, and a missing user is a start-up error (tools/setup.sh creates
 * it).  ins.user = "" or a balancer without root (process backend, for
 * development) leaves mw-ins with the balancer's own identity.
 *
 * bal_confine_child() runs in the forked child, still root, after the
 * backend has put it in its network namespace and just before exec:
 *
 *   1. its own mount namespace (private propagation), so nothing below
 *      reaches the host's mounts;
 *   2. it waits (bounded) for mw-pvm's INS socket, ins.pvm_socket, and holds
 *      it by an O_PATH descriptor;
 *   3. every mount becomes read-only and nosuid (mount_setattr, recursive);
 *   4. a small sticky tmpfs (1777: it is private) covers the socket's directory (the
 *      runtime directory by default): the only file in it is that socket,
 *      bind-mounted back from the descriptor, so pvm.sock, balancer.sock and
 *      the keystore below it are gone from this view; common.runtime_dir,
 *      common.keystore_root and the directories of both control sockets get
 *      a tmpfs of their own when they lie elsewhere (an empty, read-only one
 *      for the last three);
 *   5. the bounding set is emptied, the supplementary groups dropped, the
 *      uid/gid become ins.user's (the kernel then clears the permitted,
 *      effective and ambient sets) and no_new_privs is set.
 *
 * mw-ins then adds its own seccomp allow-list (ins/ins_sandbox.c) before its
 * loop starts.  Bridge-port isolation is the netns backend's.
 */

#define SOCKET_WAIT_MS 30000
#define SOCKET_POLL_MS 50
/* Ours (root's, no CAP_DAC_OVERRIDE needed), sticky and open to the INS user. */
#define TMPFS_OPTS     "mode=1777,size=64k,nr_inodes=64"
#define CAP_LAST_GUESS 63

int bal_confine_prepare(struct bal_backend *b, char *err, size_t errlen)
{
	const char *user = b->cfg->ins.user;
	struct passwd *pw;

	b->confine = false;
	if (!user[0] || geteuid() != 0)
		return 0;
	errno = 0;
	pw = getpwnam(user);
	if (!pw) {
		snprintf(err, errlen,
			 "ins.user %s: no such user (tools/setup.sh creates it; \"\" runs "
			 "every INS unconfined as root)",
			 user);
		return errno ? -errno : -ENOENT;
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errlen, "ins.user %s is root: name an unprivileged user", user);
		return -EINVAL;
	}
	b->ins_uid = pw->pw_uid;
	b->ins_gid = pw->pw_gid;
	b->confine = true;
	return 0;
}

/* dirname() into @buf, without touching @path. */
static void dir_of(const char *path, char *buf, size_t len)
{
	char *slash;

	snprintf(buf, len, "%s", path);
	slash = strrchr(buf, '/');
	if (slash == buf)
		buf[1] = '\0';
	else if (slash)
		*slash = '\0';
}

/* Is @path @dir itself or below it? */
static bool is_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

static int wait_socket(const char *path, char *err, size_t errlen)
{
	const struct timespec step = { .tv_sec = 0, .tv_nsec = SOCKET_POLL_MS * 1000000L };
	struct stat st;
	int waited;

	for (waited = 0; waited <= SOCKET_WAIT_MS; waited += SOCKET_POLL_MS) {
		if (!stat(path, &st) && S_ISSOCK(st.st_mode))
			return 0;
		nanosleep(&step, NULL);
	}
	snprintf(err, errlen, "mw-pvm's INS socket %s did not appear within %d s", path,
		 SOCKET_WAIT_MS / 1000);
	return -ETIMEDOUT;
}

static int mount_tmpfs(const struct bal_backend *b, const char *dir, bool ro, char *err,
		       size_t errlen)
{
	unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | (ro ? MS_RDONLY : 0);

	if (mount("mw-ins", dir, "tmpfs", flags, TMPFS_OPTS)) {
		snprintf(err, errlen, "tmpfs on %s: %s", dir, strerror(errno));
		return -errno;
	}
	return 0;
}

/* Steps 2-4: the mount view. */
static int mount_view(const struct bal_backend *b, char *err, size_t errlen)
{
	const struct mw_config *c = b->cfg;
	const char *sock = c->ins.pvm_socket;
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID };
	char sockdir[MW_PATH_MAX], hide[3][MW_PATH_MAX], fdpath[64];
	int sfd = -1, fd, ret, k;

	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		ret = -errno;
		snprintf(err, errlen, "own mount namespace: %s", strerror(errno));
		goto out;
	}
	ret = wait_socket(sock, err, errlen);
	if (ret)
		goto out;
	sfd = open(sock, O_PATH | O_CLOEXEC);
	if (sfd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", sock, strerror(errno));
		goto out;
	}
	if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof(ro))) {
		ret = -errno;
		snprintf(err, errlen, "read-only mounts: %s", strerror(errno));
		goto out;
	}
	dir_of(sock, sockdir, sizeof(sockdir));
	ret = mount_tmpfs(b, sockdir, false, err, errlen);
	if (ret)
		goto out;
	fd = open(sock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || close(fd)) {
		ret = -errno;
		snprintf(err, errlen, "placeholder %s: %s", sock, strerror(errno));
		goto out;
	}
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", sfd);
	if (mount(fdpath, sock, NULL, MS_BIND, NULL)) {
		ret = -errno;
		snprintf(err, errlen, "bind %s: %s", sock, strerror(errno));
		goto out;
	}
	/* mw-ins writes a probe file in its runtime directory: give it one of its own. */
	if (!is_under(c->common.runtime_dir, sockdir) && !access(c->common.runtime_dir, F_OK)) {
		ret = mount_tmpfs(b, c->common.runtime_dir, false, err, errlen);
		if (ret)
			goto out;
	}
	/* What it must not reach, if it lies outside both: hidden under an empty tmpfs. */
	snprintf(hide[0], sizeof(hide[0]), "%s", c->common.keystore_root);
	dir_of(c->pvm.control_socket, hide[1], sizeof(hide[1]));
	dir_of(c->balancer.control_socket, hide[2], sizeof(hide[2]));
	for (k = 0; k < 3; k++) {
		if (is_under(hide[k], sockdir) || is_under(hide[k], c->common.runtime_dir) ||
		    is_under(sockdir, hide[k]) || access(hide[k], F_OK))
			continue; /* covered already, or an ancestor we cannot hide, or absent */
		ret = mount_tmpfs(b, hide[k], true, err, errlen);
		if (ret)
			goto out;
	}
	ret = chdir("/") ? -errno : 0;
	if (ret)
		snprintf(err, errlen, "chdir /: %s", strerror(-ret));
out:
	if (sfd >= 0)
		close(sfd);
	return ret;
}

/* Step 5: ins.user, nothing in any capability set, no_new_privs. */
static int drop_privileges(const struct bal_backend *b, char *err, size_t errlen)
{
	int cap, ret = 0;

	for (cap = 0; cap <= CAP_LAST_GUESS; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) && errno != EINVAL) {
			ret = -errno;
			snprintf(err, errlen, "dropping capability %d from the bounding set: %s",
				 cap, strerror(errno));
			goto out;
		}
	if (setgroups(0, NULL) || setresgid(b->ins_gid, b->ins_gid, b->ins_gid) ||
	    setresuid(b->ins_uid, b->ins_uid, b->ins_uid)) {
		ret = -errno;
		snprintf(err, errlen, "becoming uid %u gid %u: %s", (unsigned)b->ins_uid,
			 (unsigned)b->ins_gid, strerror(errno));
		goto out;
	}
	/*
	 * Changing credentials cleared the parent-death signal backend.c set:
	 * without it an INS outlives a balancer killed with SIGKILL (still joined
	 * to mw-pvm, until the next start sweeps its namespace).
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0)) {
		ret = -errno;
		snprintf(err, errlen, "parent-death signal: %s", strerror(errno));
		goto out;
	}
	if (getppid() == 1) {
		ret = -ESRCH;
		snprintf(err, errlen, "mw-balancer died while this INS started");
		goto out;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
		ret = -errno;
		snprintf(err, errlen, "no_new_privs: %s", strerror(errno));
		goto out;
	}
	/* Paranoia: root must really be gone (setresuid would have failed otherwise). */
	if (!setuid(0)) {
		ret = -EPERM;
		snprintf(err, errlen, "could become root again after dropping it");
	}
out:
	return ret;
}

int bal_confine_child(const struct bal_backend *b, char *err, size_t errlen)
{
	int ret;

	ret = mount_view(b, err, errlen);
	if (!ret)
		ret = drop_privileges(b, err, errlen);
	return ret;
}
