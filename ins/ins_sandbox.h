/* SPDX-License-Identifier: MIT */
/* ins_sandbox.h - mw-ins's own last step of confinement: no_new_privs, not dumpable, seccomp */
#ifndef INS_SANDBOX_H
#define INS_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

/**
 * ins_sandbox_enter() - set no_new_privs, clear dumpable, load the seccomp allow-list
 * @seccomp: load the allow-list (ins.seccomp)
 * @xen:     the channel is Xen's: also allow the event-channel notify ioctl
 * @err:     one line on failure
 * @errlen:  its size
 *
 * Called once, after start-up (config read, runtime directory probed) and
 * before the event loop; nothing after it may need a call off the list.
 *
 * Return: the number of system calls allowed (0 without @seccomp), or -errno
 */
int ins_sandbox_enter(bool seccomp, bool xen, char *err, size_t errlen);

#endif /* INS_SANDBOX_H */
