/* SPDX-License-Identifier: MIT */
/* auth.h - Netflow consumer authorisation: roles, the token file, the Auth request (an extension)
 */
#ifndef MW_NF_AUTH_H
#define MW_NF_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "netflow/codec.h"

/*
 * Roles: an observe consumer receives observations and may read attributes;
 * a control consumer may also close, block, set and signal.
 */
enum mw_nf_role {
	MW_NF_ROLE_NONE = 0, /* not authorised (yet) */
	MW_NF_ROLE_OBSERVE = 1,
	MW_NF_ROLE_CONTROL = 2,
};

/*
 * The Auth request (an mwcomms extension, docs/netflow.md "Access control"): a
 * well-framed REQUEST with name MW_NF_ATTR_AUTH and flags WRITE carrying the
 * token, NUL-padded, in val (bytes 0..15) and in the 16 address bytes of ident
 * (16..31; ident af 0).  A TCP consumer sends it first; the answer is status 0,
 * val0 = the role.  A wrong token gets no answer: the connection is closed.
 */
#define MW_NF_TOKEN_MIN	 16
#define MW_NF_TOKEN_MAX	 32
#define MW_NF_TOKENS_MAX 16

struct mw_nf_tokens {
	int count;
	struct {
		enum mw_nf_role role;
		char text[MW_NF_TOKEN_MAX + 1];
	} t[MW_NF_TOKENS_MAX];
};

/**
 * mw_nf_tokens_load() - read the server's token file
 * @path: lines "observe TOKEN" or "control TOKEN"; '#' starts a comment
 * @err:  one line on failure
 *
 * The file must be a regular file owned by root (or by the caller's uid) that
 * neither group nor others can read or write: a token readable by other users
 * would hand them the role.
 * Return: 0, -EPERM for such a file, -EINVAL for a bad line, other -errno
 */
int mw_nf_tokens_load(struct mw_nf_tokens *tk, const char *path, char *err, size_t errlen);

/**
 * mw_nf_tokens_match() - the entry whose token is @tok (compared in constant time)
 * Return: its index, or -ENOENT
 */
int mw_nf_tokens_match(const struct mw_nf_tokens *tk, const char *tok);

/**
 * mw_nf_token_read() - a consumer's token: the first token in @path
 * @path: lines "TOKEN" or "ROLE TOKEN"; '#' starts a comment; private to its
 *        owner (root or the caller), as the server's file
 * @out:  MW_NF_TOKEN_MAX + 1 bytes
 * Return: 0, -EINVAL if the file holds no valid token, other -errno
 */
int mw_nf_token_read(char *out, const char *path, char *err, size_t errlen);

/* Fill @req as the Auth request for @token (id untouched). */
void mw_nf_request_set_auth(struct mw_nf_request *req, const char *token);

/**
 * mw_nf_request_get_auth() - the token an Auth request carries
 * @out: MW_NF_TOKEN_MAX + 1 bytes, NUL-terminated
 * Return: 0, or -EINVAL if it is not an Auth request with a valid token
 */
int mw_nf_request_get_auth(const struct mw_nf_request *req, char *out);

struct mw_pvm_config;
struct mw_nf_server_config;

/**
 * mw_nf_access_config() - the access and bound settings of a server from pvm.netflow_*
 * @sc:  its groups, token table (@tk, loaded if pvm.netflow_token_file is set
 *       and @listen is not empty), limits; listen/unix_path are left to the caller
 * Return: 0, or -errno with @err (unknown group, bad token file)
 */
int mw_nf_access_config(struct mw_nf_server_config *sc, struct mw_nf_tokens *tk,
			const struct mw_pvm_config *pc, const char *listen, char *err,
			size_t errlen);

/* "observe", "control", "none" */
const char *mw_nf_role_name(enum mw_nf_role role);

#endif /* MW_NF_AUTH_H */
