/* SPDX-License-Identifier: MIT */
/* mw-console.c - the Netflow mitigation console: interactive table or one-shot commands */
#include <stdio.h>
#include <unistd.h>

#include "netflow/client.h"
#include "tools/console/console.h"

int main(int argc, char **argv)
{
	struct mw_nf_client *c = NULL;
	struct mwcon_opts o;
	char err[512];
	int status = 1;

	if (mwcon_parse_args(&o, argc, argv, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", MWCON_NAME, err);
		return 1;
	}
	if (o.help) {
		mwcon_usage();
		return 0;
	}
	if (o.version) {
		printf("%s mwcomms %s\n", MWCON_NAME, MW_VERSION);
		return 0;
	}
	/* Without a command, a terminal gets the console and a pipe gets a hint. */
	if (o.cmd == MWCON_CMD_INTERACTIVE && !o.interactive_forced && !isatty(STDOUT_FILENO)) {
		fprintf(stderr,
			"%s: stdout is not a terminal: use --json, a command, or -i (try --help)\n",
			MWCON_NAME);
		return 1;
	}
	if (o.cmd == MWCON_CMD_GUARD)
		return mwcon_run_guard(&o);
	if (mwcon_connect(&o, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", MWCON_NAME, err);
		return 1;
	}
	if (o.cmd == MWCON_CMD_INTERACTIVE)
		status = mwcon_run_tty(&o, c);
	else
		status = mwcon_run_command(&o, c);
	mw_nf_client_close(c);
	return status;
}
