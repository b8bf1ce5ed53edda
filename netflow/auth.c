/* SPDX-License-Identifier: MIT */
/* auth.c - Netflow consumer authorisation: the token file and the Auth request */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "netflow/auth.h"
#include "netflow/server.h"

#define LINE_MAX_LEN 256

static bool token_valid(const char *t)
{
	size_t n = strlen(t), i;

	if (n < MW_NF_TOKEN_MIN || n > MW_NF_TOKEN_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (t[i] <= ' ' || t[i] > '~')
			return false;
	return true;
}

/* Open @path for reading; with @strict it must be private to its owner, root or us. */
static FILE *open_private(const char *path, bool strict, char *err, size_t errlen, int *ret)
{
	struct stat st;
	FILE *f;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st)) {
		*ret = -errno;
		snprintf(err, errlen, "netflow: token file %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (strict && (!S_ISREG(st.st_mode) || (st.st_mode & 077) ||
		       (st.st_uid != 0 && st.st_uid != geteuid()))) {
		*ret = -EPERM;
		snprintf(err, errlen,
			 "netflow: token file %s must be a regular file owned by root with mode "
			 "0600 or 0400 (it is %04o, uid %u): refusing to use a token others can "
			 "read",
			 path, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
		close(fd);
		return NULL;
	}
	f = fdopen(fd, "r");
	if (!f) {
		*ret = -errno;
		snprintf(err, errlen, "netflow: token file %s: %s", path, strerror(errno));
		close(fd);
	}
	return f;
}

/* Split "ROLE TOKEN" / "TOKEN"; Return: number of words (0 for blank or comment). */
static int split_line(char *line, char **w1, char **w2)
{
	char *hash = strchr(line, '#'), *save = NULL;

	if (hash)
		*hash = '\0';
	*w1 = strtok_r(line, " \t\r\n", &save);
	*w2 = *w1 ? strtok_r(NULL, " \t\r\n", &save) : NULL;
	if (!*w1)
		return 0;
	if (!*w2)
		return 1;
	return strtok_r(NULL, " \t\r\n", &save) ? 3 : 2;
}

/**
 * mw_nf_tokens_load() - read the server's token file
 * @tk:     filled
 * @path:   the file
 * @err:    one line on failure
 * @errlen: its size
 * Return: 0 or -errno
 */
int mw_nf_tokens_load(struct mw_nf_tokens *tk, const char *path, char *err, size_t errlen)
{
	char line[LINE_MAX_LEN], *w1, *w2;
	int ret = 0, lineno = 0, n;
	FILE *f;

	memset(tk, 0, sizeof(*tk));
	f = open_private(path, true, err, errlen, &ret);
	if (!f)
		return ret;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		n = split_line(line, &w1, &w2);
		if (!n)
			continue;
		if (n != 2 || (strcmp(w1, "observe") && strcmp(w1, "control")) ||
		    !token_valid(w2)) {
			snprintf(err, errlen,
				 "netflow: token file %s:%d: want \"observe TOKEN\" or \"control "
				 "TOKEN\", TOKEN %d..%d printable characters",
				 path, lineno, MW_NF_TOKEN_MIN, MW_NF_TOKEN_MAX);
			ret = -EINVAL;
			goto out;
		}
		if (tk->count == MW_NF_TOKENS_MAX) {
			snprintf(err, errlen, "netflow: token file %s: more than %d tokens", path,
				 MW_NF_TOKENS_MAX);
			ret = -EINVAL;
			goto out;
		}
		tk->t[tk->count].role = w1[0] == 'c' ? MW_NF_ROLE_CONTROL : MW_NF_ROLE_OBSERVE;
		snprintf(tk->t[tk->count].text, sizeof(tk->t[0].text), "%s", w2);
		tk->count++;
	}
	if (!tk->count) {
		snprintf(err, errlen, "netflow: token file %s holds no token", path);
		ret = -EINVAL;
	}
out:
	fclose(f);
	return ret;
}

/**
 * mw_nf_tokens_match() - the entry whose token is @tok
 * @tk:  the loaded tokens
 * @tok: what the consumer sent
 * Return: its index, or -ENOENT
 */
int mw_nf_tokens_match(const struct mw_nf_tokens *tk, const char *tok)
{
	size_t j, len = strnlen(tok, MW_NF_TOKEN_MAX);
	int i, found = -ENOENT;

	for (i = 0; i < tk->count; i++) {
		unsigned diff = 0;

		/* Every byte of every entry is compared: no timing hint. */
		for (j = 0; j <= MW_NF_TOKEN_MAX; j++)
			diff |= (unsigned)(uint8_t)tk->t[i].text[j] ^
				(unsigned)(uint8_t)(j < len ? tok[j] : 0);
		if (!diff && found < 0)
			found = i;
	}
	return found;
}

/**
 * mw_nf_token_read() - a consumer's token: the first token in @path
 * The file must be private to its owner (root or the caller), as the server's.
 * @out:    MW_NF_TOKEN_MAX + 1 bytes
 * @path:   the file
 * @err:    one line on failure
 * @errlen: its size
 * Return: 0 or -errno
 */
int mw_nf_token_read(char *out, const char *path, char *err, size_t errlen)
{
	char line[LINE_MAX_LEN], *w1, *w2, *tok;
	int ret = -EINVAL, n;
	FILE *f;

	f = open_private(path, true, err, errlen, &ret);
	if (!f)
		return ret;
	ret = -EINVAL;
	while (fgets(line, sizeof(line), f)) {
		n = split_line(line, &w1, &w2);
		if (!n)
			continue;
		tok = n == 1 ? w1 : w2;
		if (n <= 2 && token_valid(tok)) {
			snprintf(out, MW_NF_TOKEN_MAX + 1, "%s", tok);
			ret = 0;
		}
		break;
	}
	if (ret)
		snprintf(err, errlen, "netflow: token file %s: no valid token on its first line",
			 path);
	fclose(f);
	return ret;
}

/**
 * mw_nf_request_set_auth() - fill @req as the Auth request for @token
 * @req:   the request (its id is kept)
 * @token: at most MW_NF_TOKEN_MAX characters
 */
void mw_nf_request_set_auth(struct mw_nf_request *req, const char *token)
{
	size_t n = strnlen(token, MW_NF_TOKEN_MAX);
	uint32_t id = req->id;

	memset(req, 0, sizeof(*req));
	req->id = id;
	req->flags = MW_NF_FLAG_WRITE;
	req->name = MW_NF_ATTR_AUTH;
	memcpy(req->val, token, n < sizeof(req->val) ? n : sizeof(req->val));
	if (n > sizeof(req->val))
		memcpy(req->addr.addr, token + sizeof(req->val), n - sizeof(req->val));
}

/**
 * mw_nf_request_get_auth() - the token an Auth request carries
 * @req: a decoded request
 * @out: MW_NF_TOKEN_MAX + 1 bytes
 * Return: 0 or -EINVAL
 */
int mw_nf_request_get_auth(const struct mw_nf_request *req, char *out)
{
	if (req->name != MW_NF_ATTR_AUTH || req->flags != MW_NF_FLAG_WRITE || req->addr.af)
		return -EINVAL;
	memcpy(out, req->val, sizeof(req->val));
	memcpy(out + sizeof(req->val), req->addr.addr, sizeof(req->addr.addr));
	out[MW_NF_TOKEN_MAX] = '\0';
	return token_valid(out) ? 0 : -EINVAL;
}

/**
 * mw_nf_role_name() - a role in words
 * @role: the role
 * Return: "observe", "control" or "none"
 */
const char *mw_nf_role_name(enum mw_nf_role role)
{
	return role == MW_NF_ROLE_CONTROL   ? "control"
	       : role == MW_NF_ROLE_OBSERVE ? "observe"
					    : "none";
}

static int group_gid(const char *name, long *gid, char *err, size_t errlen)
{
	struct group gr, *res = NULL;
	char buf[4096];

	*gid = -1;
	if (!name[0])
		return 0;
	if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) || !res) {
		snprintf(err, errlen, "netflow: unknown group \"%s\"", name);
		return -ENOENT;
	}
	*gid = (long)res->gr_gid;
	return 0;
}

/**
 * mw_nf_access_config() - the access and bound settings of a server from pvm.netflow_*
 * @sc:     filled (groups, tokens, limits)
 * @tk:     the token table, loaded when @listen is not empty
 * @pc:     the pvm section
 * @listen: the TCP listen address the server will use ("" = none)
 * @err:    one line on failure
 * @errlen: its size
 * Return: 0 or -errno
 */
int mw_nf_access_config(struct mw_nf_server_config *sc, struct mw_nf_tokens *tk,
			const struct mw_pvm_config *pc, const char *listen, char *err,
			size_t errlen)
{
	int ret;

	memset(tk, 0, sizeof(*tk));
	ret = group_gid(pc->netflow_group, &sc->observe_gid, err, errlen);
	if (!ret)
		ret = group_gid(pc->netflow_control_group, &sc->control_gid, err, errlen);
	if (ret)
		return ret;
	if (listen[0] && !pc->netflow_token_file[0]) {
		snprintf(err, errlen,
			 "netflow: TCP listen %s needs pvm.netflow_token_file (TCP consumers must "
			 "authenticate)",
			 listen);
		return -EINVAL;
	}
	if (listen[0]) {
		ret = mw_nf_tokens_load(tk, pc->netflow_token_file, err, errlen);
		if (ret)
			return ret;
	}
	sc->tokens = tk;
	sc->allow = pc->netflow_allow;
	sc->queue = pc->netflow_queue;
	sc->stall_ms = pc->netflow_stall_ms;
	sc->min_rate = pc->netflow_min_rate;
	sc->mem_total = (size_t)pc->netflow_memory;
	sc->max_per_user = pc->netflow_max_per_user;
	return 0;
}
