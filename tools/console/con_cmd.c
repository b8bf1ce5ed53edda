/* SPDX-License-Identifier: MIT */
/* con_cmd.c - mw-console's non-interactive side: finding the server, one-shot requests, --json */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/keystore.h"
#include "netflow/client.h"
#include "tools/console/console.h"

/* The configuration the daemons would read: -c, $MW_CONFIG, the built-in path if present. */
const char *mwcon_config_path(const struct mwcon_opts *o)
{
	const char *env = getenv("MW_CONFIG");

	if (o->config)
		return o->config;
	if (env && *env)
		return env;
	if (access(MW_DEFAULT_CONFIG, F_OK) == 0)
		return MW_DEFAULT_CONFIG;
	return NULL;
}

/**
 * mwcon_connect() - connect to the Netflow server
 * @o: --server, or the keystore given by -k / the configuration
 * @c: the client
 * @err: one line on failure
 * @errlen: its size
 * Return: 0 or -errno
 */
/* A TCP server wants the Auth request first (netflow/auth.h); AF_UNIX needs none. */
static int con_auth(const struct mwcon_opts *o, struct mw_nf_client *c, const char *where,
		    char *err, size_t errlen)
{
	char token[MW_NF_TOKEN_MAX + 1];
	enum mw_nf_role role;
	int ret;

	if (!o->token_file || where[0] == '/')
		return 0;
	ret = mw_nf_token_read(token, o->token_file, err, errlen);
	if (ret)
		return ret;
	ret = mw_nf_client_auth(c, token, o->timeout_ms, &role);
	explicit_bzero(token, sizeof(token));
	if (ret)
		snprintf(err, errlen, "%s refused the token of %s", where, o->token_file);
	return ret;
}

/*
 * The keystore is root's (mode 0700): a member of the Netflow group finds the
 * server at the default AF_UNIX path of the configuration instead.
 */
static int con_connect_default(const struct mwcon_opts *o, const struct mw_config *cfg,
			       struct mw_nf_client **c, char *where, size_t wlen, char *err,
			       size_t errlen)
{
	if (o->key)
		snprintf(where, wlen, "%s/balancer-%s-netflow.sock", cfg->common.runtime_dir,
			 cfg->balancer.tag);
	else if (cfg->pvm.netflow_unix[0])
		snprintf(where, wlen, "%s", cfg->pvm.netflow_unix);
	else
		snprintf(where, wlen, "%s/netflow-%d.sock", cfg->common.runtime_dir,
			 cfg->pvm.index);
	return mw_nf_client_connect(c, where, o->timeout_ms, err, errlen);
}

int mwcon_connect(const struct mwcon_opts *o, struct mw_nf_client **c, char *err, size_t errlen)
{
	struct mw_config_errors *errs = NULL;
	struct mw_config *cfg = NULL;
	struct mw_keystore *ks = NULL;
	const char *backend = "local", *root = MWCON_DEFAULT_ROOT, *path;
	char kerr[256], where[MW_PATH_MAX + 64] = "";
	int ret;

	*c = NULL;
	if (o->server) {
		ret = mw_nf_client_connect(c, o->server, o->timeout_ms, err, errlen);
		if (!ret)
			ret = con_auth(o, *c, o->server, err, errlen);
		goto out;
	}
	cfg = calloc(1, sizeof(*cfg));
	errs = calloc(1, sizeof(*errs));
	if (!cfg || !errs) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	mw_config_defaults(cfg);
	if (o->ks_root) {
		root = o->ks_root;
	} else if ((path = mwcon_config_path(o))) {
		ret = mw_config_load(cfg, path, errs);
		if (ret < 0) {
			snprintf(err, errlen, "%s",
				 errs->count ? errs->msg[0] : "invalid configuration");
			goto out;
		}
		backend = cfg->common.keystore;
		root = cfg->common.keystore_root;
	}
	if (!o->ks_root && !strcmp(backend, "local") && access(root, R_OK | X_OK) &&
	    errno == EACCES) {
		ret = con_connect_default(o, cfg, c, where, sizeof(where), err, errlen);
		goto out;
	}
	/* Opening a local root creates it: a console must not leave directories behind. */
	if (!strcmp(backend, "local") && access(root, F_OK)) {
		ret = -ENOENT;
		snprintf(err, errlen,
			 "keystore root %s does not exist (is mw-pvm running? try -k DIR or "
			 "--server IP:PORT)",
			 root);
		goto out;
	}
	ret = mw_keystore_open(&ks, backend, root, kerr, sizeof(kerr));
	if (ret < 0) {
		snprintf(err, errlen, "%s", kerr);
		goto out;
	}
	ret = mw_keystore_read(ks, o->key ? o->key : MW_NF_KEY_PVM, where, sizeof(where));
	if (ret < 0) {
		snprintf(err, errlen, "netflow: keystore %s: %s", o->key ? o->key : MW_NF_KEY_PVM,
			 ret == -ENOENT ? "not published" : strerror(-ret));
		if (ret == -ENOENT && !strcmp(backend, "local"))
			snprintf(err + strlen(err), errlen - strlen(err),
				 " under %s (is mw-pvm running? try -k DIR or --server IP:PORT)",
				 root);
		goto out;
	}
	ret = mw_nf_client_connect(c, where, o->timeout_ms, err, errlen);
out:
	if (!ret && *c && !o->server && where[0] != '/')
		ret = con_auth(o, *c, where, err, errlen);
	if (ret) {
		mw_nf_client_close(*c);
		*c = NULL;
	}
	mw_keystore_close(ks);
	free(errs);
	free(cfg);
	return ret;
}

/* A negative status in words: what it means for this command, else strerror(). */
static const char *status_words(const struct mwcon_opts *o, int status)
{
	if (status == -EPERM && o->cmd != MWCON_CMD_GET)
		return "Operation not permitted (an observe consumer may not write; the control "
		       "group or a control token may)";
	if (status == -EBADF && o->cmd != MWCON_CMD_CONGCTL)
		return "Bad file descriptor (no such socket)";
	if (status == -ENOENT && o->cmd == MWCON_CMD_CONGCTL)
		return "No such file or directory (the INS kernel has no such algorithm)";
	if (status == -ETIMEDOUT)
		return "Connection timed out (the PVM of that socket did not answer)";
	if (status == -ESRCH)
		return "No such process (the socket's owner has exited)";
	if (status == -ENOSPC && (o->cmd == MWCON_CMD_BLOCK))
		return "No space left on device (pvm.netflow_block_max addresses blocked)";
	return strerror(-status);
}

/* "close 123", "block 10.1.2.3", "get 5 SndBuf": names the failed command in errors. */
static void say_failure(const struct mwcon_opts *o, const char *what)
{
	if (o->cmd == MWCON_CMD_GET || o->cmd == MWCON_CMD_SET)
		fprintf(stderr, "%s: %s %s %s: %s\n", MWCON_NAME, o->cmd_word, o->cmd_arg,
			mw_nf_attr_name(o->attr), what);
	else
		fprintf(stderr, "%s: %s %s: %s\n", MWCON_NAME, o->cmd_word,
			o->cmd_arg ? o->cmd_arg : "", what);
}

/* Build the request of a one-shot command. */
static void command_request(const struct mwcon_opts *o, struct mw_nf_request *req)
{
	memset(req, 0, sizeof(*req));
	switch (o->cmd) {
	case MWCON_CMD_CLOSE:
		req->flags = MW_NF_FLAG_WRITE | MW_NF_FLAG_BY_SOCK;
		req->name = MW_NF_ATTR_IS_OPEN;
		req->sockfd = o->sock;
		break;
	case MWCON_CMD_BLOCK:
	case MWCON_CMD_UNBLOCK:
		req->flags = MW_NF_FLAG_WRITE;
		req->name = MW_NF_ATTR_ADDR_BLOCK;
		mw_nf_val_set(req, 0, o->cmd == MWCON_CMD_BLOCK);
		mw_nf_request_set_block_text(req, o->addr); /* checked by the parser */
		break;
	case MWCON_CMD_GET:
	case MWCON_CMD_SET:
		req->flags = MW_NF_FLAG_BY_SOCK | (o->cmd == MWCON_CMD_SET ? MW_NF_FLAG_WRITE : 0);
		req->name = o->attr;
		req->sockfd = o->sock;
		if (o->cmd == MWCON_CMD_SET) {
			mw_nf_val_set(req, 0, o->val[0]);
			mw_nf_val_set(req, 1, o->val[1]);
		}
		break;
	case MWCON_CMD_CONGCTL:
		req->flags = MW_NF_FLAG_WRITE;
		req->name = MW_NF_ATTR_GLOBAL_CONGCTL;
		if (o->val_text) {
			memcpy(req->val, o->text, sizeof(req->val));
		} else {
			mw_nf_val_set(req, 0, o->val[0]);
		}
		break;
	default:
		break;
	}
}

/* --json: monitoring on, then every observation as one flushed line. */
static int run_json(const struct mwcon_opts *o, struct mw_nf_client *c)
{
	struct mw_nf_request req = { .name = MW_NF_ATTR_MONITOR_ON };
	struct mw_nf_response rsp;
	struct mw_nf_msg m;
	uint64_t seen = 0;
	char line[512];
	int ret;

	ret = mw_nf_client_request(c, &req, o->timeout_ms, &rsp);
	if (ret < 0) {
		fprintf(stderr, "%s: MonitorOn: %s\n", MWCON_NAME, strerror(-ret));
		return 1;
	}
	if (rsp.status < 0) {
		fprintf(stderr, "%s: MonitorOn: %s\n", MWCON_NAME, strerror(-rsp.status));
		return 1;
	}
	while (!o->count || seen < o->count) {
		ret = mw_nf_client_recv(c, &m, 1000);
		if (ret == -ETIMEDOUT)
			continue;
		if (ret == -ECONNRESET)
			return 0; /* the server went away: the stream simply ends */
		if (ret < 0) {
			fprintf(stderr, "%s: netflow stream: %s\n", MWCON_NAME, strerror(-ret));
			return 1;
		}
		if (m.sig != MW_NF_SIG_INFO)
			continue;
		if (mwcon_json_info(&m.u.info, line, sizeof(line)) < 0)
			continue; /* cannot happen: the longest line is far below 512 */
		if (puts(line) < 0 || fflush(stdout)) {
			fprintf(stderr, "%s: stdout: %s\n", MWCON_NAME, strerror(errno));
			return 1;
		}
		seen++;
	}
	return 0;
}

/**
 * mwcon_run_command() - run a one-shot command or --json
 * @o: the command
 * @c: connected client
 * Return: the exit status (0, or 1 with one line on stderr)
 */
int mwcon_run_command(const struct mwcon_opts *o, struct mw_nf_client *c)
{
	struct mw_nf_request req;
	struct mw_nf_response rsp;
	char val[128];
	int ret;

	if (o->cmd == MWCON_CMD_JSON)
		return run_json(o, c);
	command_request(o, &req);
	ret = mw_nf_client_request(c, &req, o->timeout_ms, &rsp);
	if (ret == -EPIPE || ret == -ECONNRESET) {
		/* An unauthorised consumer is closed unanswered (docs/netflow.md, Access control).
		 */
		snprintf(val, sizeof(val),
			 "the server closed the connection without answering (not root nor a "
			 "member of its Netflow groups, or no valid token?)");
		say_failure(o, val);
		return 1;
	}
	if (ret < 0) {
		snprintf(val, sizeof(val), "no response: %s", strerror(-ret));
		say_failure(o, val);
		return 1;
	}
	if (rsp.status < 0) {
		say_failure(o, status_words(o, rsp.status));
		return 1;
	}
	if (o->cmd == MWCON_CMD_GET) {
		mwcon_value_format(o->attr, rsp.val0, rsp.val1, val, sizeof(val));
		printf("%s\n", val);
	}
	return fflush(stdout) ? 1 : 0;
}
