/* SPDX-License-Identifier: MIT */
/* netns_ehash.h - INS namespaces with a TCP hash table of their own (netns_ehash.c) */
#ifndef MW_BALANCER_NETNS_EHASH_H
#define MW_BALANCER_NETNS_EHASH_H

#include <sys/types.h>

struct bal_ehash {
	int parent;	      /* the namespace INS namespaces are made from, or -1: the host's table */
	char tw_buckets[16];  /* the host's tcp_max_tw_buckets, for each INS ("" = unknown) */
	char syn_backlog[16]; /* the host's tcp_max_syn_backlog */
};

/*
 * Prepare @e so that INS namespaces get @entries TCP hash buckets of their
 * own (0: none, e->parent = -1, they share the host's).  Called in the host's
 * namespace @host_netns, and returns there.  Return: 0 or -errno (e.g. -ENOENT:
 * a kernel before 6.1), e->parent = -1 then.
 */
int bal_ehash_open(struct bal_ehash *e, int entries, int host_netns);
void bal_ehash_close(struct bal_ehash *e);

/* clone(@fn, @stack, CLONE_NEWNET | SIGCHLD, @arg) from the parent namespace of @e. */
pid_t bal_ehash_clone(const struct bal_ehash *e, int host_netns, int (*fn)(void *), void *stack,
		      void *arg);

/* In the new namespace: the host's TIME_WAIT and SYN backlog limits.  Return: 0 or -errno. */
int bal_ehash_child_limits(const struct bal_ehash *e);

#endif
