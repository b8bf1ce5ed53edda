/* SPDX-License-Identifier: MIT */
/* con_args.c - mw-console command line: options, commands, attribute names and values */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "netflow/client.h"
#include "tools/console/console.h"

enum {
	OPT_SERVER = 256,
	OPT_KEY,
	OPT_JSON,
	OPT_COUNT,
	OPT_TIMEOUT,
	OPT_TOKEN_FILE,
	OPT_SORT,
	OPT_FILTER,
	OPT_GUARD,
};

/* Names get/set accept besides the wire names; the wire names come from the codec. */
static const struct {
	const char *alias;
	uint16_t attr;
} attr_aliases[] = {
	{ "open", MW_NF_ATTR_IS_OPEN },
	{ "owner", MW_NF_ATTR_OWNER_RUNNING },
	{ "congctl", MW_NF_ATTR_GLOBAL_CONGCTL },
	{ "congestion", MW_NF_ATTR_GLOBAL_CONGCTL },
	{ "delack", MW_NF_ATTR_GLOBAL_DELACK_TICKS },
};

/* Every attribute get/set may name (not MonitorOn/Off, AddrBlock: own commands). */
static const uint16_t attr_settable[] = {
	MW_NF_ATTR_NONBLOCK,	  MW_NF_ATTR_REUSEADDR,		 MW_NF_ATTR_REUSEPORT,
	MW_NF_ATTR_KEEPALIVE,	  MW_NF_ATTR_DEFER_ACCEPT,	 MW_NF_ATTR_NODELAY,
	MW_NF_ATTR_IS_OPEN,	  MW_NF_ATTR_OWNER_RUNNING,	 MW_NF_ATTR_SNDBUF,
	MW_NF_ATTR_RCVBUF,	  MW_NF_ATTR_SNDTIMEO,		 MW_NF_ATTR_RCVTIMEO,
	MW_NF_ATTR_SNDLOWAT,	  MW_NF_ATTR_RCVLOWAT,		 MW_NF_ATTR_ERROR,
	MW_NF_ATTR_GLOBAL_CONGCTL, MW_NF_ATTR_GLOBAL_DELACK_TICKS,
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/**
 * mwcon_usage() - print --help
 */
void mwcon_usage(void)
{
	printf("Usage: %s [OPTION]...                 interactive console (stdout a terminal)\n"
	       "       %s --json [--count N]          observations as JSON lines\n"
	       "       %s close ID                    mitigation close of socket ID\n"
	       "       %s block ADDR | unblock ADDR   AddrBlock an IPv4 address on every INS\n"
	       "       %s get ID NAME                 print a socket attribute\n"
	       "       %s set ID NAME VALUE           set a socket attribute\n"
	       "       %s congctl NAME                INS-wide congestion control\n"
	       "       %s guard                       mw-guard's recent actions\n"
	       "The Netflow consumer of mwcomms (docs/netflow.md, section mw-console).\n"
	       "\nOptions:\n"
	       "      --server ADDR        the Netflow server, IP:PORT or an AF_UNIX /path;\n"
	       "                           default: the address published at keystore key %s\n"
	       "                           (without access to the keystore: the AF_UNIX socket\n"
	       "                           of the configuration)\n"
	       "      --sort KEY           interactive table order: id, rate, age, port, peer,\n"
	       "                           state (keys s, f change order and filter)\n"
	       "      --filter TEXT        interactive table: rows whose local or peer address\n"
	       "                           contains TEXT (\":8080\", \"10.1.2.\") or whose state\n"
	       "                           it is (new, bound, listen, estab)\n"
	       "      --guard SOCKET       mw-guard's control socket (key g, command guard);\n"
	       "                           default: guard.control_socket of the configuration\n"
	       "      --token-file FILE    the token a TCP server asks for (first line: TOKEN\n"
	       "                           or ROLE TOKEN; the file must be private, mode 0600)\n"
	       "  -k, --keystore-root DIR  local keystore root; default: common.keystore_root\n"
	       "                           of the configuration, else %s\n"
	       "      --key KEY            another keystore key (a balancer's merged stream)\n"
	       "  -c, --config FILE        configuration file; default: $MW_CONFIG, else\n"
	       "                           %s if it exists\n"
	       "      --json               monitor on, one JSON object per observation\n"
	       "      --count N            with --json: exit after N observations\n"
	       "  -i, --interactive        the interactive console even if stdout is no terminal\n"
	       "      --timeout-ms MS      connect and request timeout (default %d)\n"
	       "  -h, --help               show this help and exit\n"
	       "  -V, --version            show the version and exit\n"
	       "\nID: a socket id, decimal or 0x hex. NAME: nonblock, reuseaddr, reuseport,\n"
	       "keepalive, deferaccept, nodelay, isopen, ownerrunning, sndbuf, rcvbuf,\n"
	       "sndtimeo, rcvtimeo, sndlowat, rcvlowat, error, congctl, delack (any case).\n"
	       "VALUE: a number, on/off, or seconds (\"1.5\") for sndtimeo/rcvtimeo.\n"
	       "Exit status: 0 ok, 1 on any error (bad arguments, no server, negative status).\n"
	       "\nInteractive keys: h help, p list open sockets, m/M unmute/mute observations,\n"
	       "o/O monitor on/off, c close a socket, b/u block/unblock an address,\n"
	       "g mw-guard's recent actions, q quit.\n",
	       MWCON_NAME, MWCON_NAME, MWCON_NAME, MWCON_NAME, MWCON_NAME, MWCON_NAME, MWCON_NAME, MWCON_NAME,
	       MW_NF_KEY_PVM, MWCON_DEFAULT_ROOT, MW_DEFAULT_CONFIG, MWCON_TIMEOUT_MS);
}

/**
 * mwcon_parse_u64() - parse a decimal or 0x-hex unsigned 64-bit number
 * @s: the text
 * @out: the number
 * Return: 0 or -EINVAL
 */
int mwcon_parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;
	int base = 10;

	if (!s || !*s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		if (!isxdigit((unsigned char)s[2]))
			return -EINVAL;
	}
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Lower case without '_' and '-': "Snd_Buf" and "sndbuf" compare equal. */
static void attr_normalise(const char *in, char *out, size_t len)
{
	size_t n = 0;

	for (; *in && n + 1 < len; in++) {
		if (*in == '_' || *in == '-')
			continue;
		out[n++] = (char)tolower((unsigned char)*in);
	}
	out[n] = '\0';
}

/**
 * mwcon_attr_parse() - an attribute name or number for get/set
 * @name: the text
 * Return: the attribute, or -EINVAL
 */
int mwcon_attr_parse(const char *name)
{
	char want[32], have[32];
	uint64_t num;
	size_t i;

	if (!name || !*name || strlen(name) >= sizeof(want))
		return -EINVAL;
	if (!mwcon_parse_u64(name, &num)) {
		for (i = 0; i < NELEM(attr_settable); i++)
			if (attr_settable[i] == num)
				return (int)num;
		return -EINVAL;
	}
	attr_normalise(name, want, sizeof(want));
	for (i = 0; i < NELEM(attr_aliases); i++)
		if (!strcmp(want, attr_aliases[i].alias))
			return attr_aliases[i].attr;
	for (i = 0; i < NELEM(attr_settable); i++) {
		const char *wire = mw_nf_attr_name(attr_settable[i]);

		if (!wire)
			continue;
		attr_normalise(wire, have, sizeof(have));
		if (!strcmp(want, have))
			return attr_settable[i];
	}
	return -EINVAL;
}

/**
 * mwcon_attr_is_timeval() - is the attribute's val {sec, usec}?
 * @attr: the attribute
 * Return: true for SndTimeo and RcvTimeo
 */
bool mwcon_attr_is_timeval(uint16_t attr)
{
	return attr == MW_NF_ATTR_SNDTIMEO || attr == MW_NF_ATTR_RCVTIMEO;
}

/* "1", "1.5", "0.000001": seconds with at most 6 decimals. */
static int parse_seconds(const char *s, uint64_t val[2])
{
	const char *dot = strchr(s, '.');
	char whole[24];
	uint64_t usec = 0;
	size_t n, i;

	if (!dot)
		return mwcon_parse_u64(s, &val[0]) ? -EINVAL : (val[1] = 0, 0);
	n = (size_t)(dot - s);
	if (!n || n >= sizeof(whole) || !dot[1] || strlen(dot + 1) > 6)
		return -EINVAL;
	memcpy(whole, s, n);
	whole[n] = '\0';
	if (mwcon_parse_u64(whole, &val[0]) || whole[1] == 'x' || whole[1] == 'X')
		return -EINVAL;
	for (i = 0; i < 6; i++) {
		char ch = i < strlen(dot + 1) ? dot[1 + i] : '0';

		if (!isdigit((unsigned char)ch))
			return -EINVAL;
		usec = usec * 10 + (uint64_t)(ch - '0');
	}
	val[1] = usec;
	return 0;
}

/**
 * mwcon_value_parse() - a value for "set"
 * @attr: the attribute it is for
 * @s: the text
 * @val: the two val words
 * Return: 0 or -EINVAL
 */
int mwcon_value_parse(uint16_t attr, const char *s, uint64_t val[2])
{
	static const char *const yes[] = { "on", "true", "yes" };
	static const char *const no[] = { "off", "false", "no" };
	size_t i;

	val[0] = val[1] = 0;
	if (!s || !*s)
		return -EINVAL;
	if (mwcon_attr_is_timeval(attr))
		return parse_seconds(s, val);
	for (i = 0; i < NELEM(yes); i++) {
		if (!strcasecmp(s, yes[i]))
			return val[0] = 1, 0;
		if (!strcasecmp(s, no[i]))
			return 0;
	}
	return mwcon_parse_u64(s, &val[0]);
}

/**
 * mwcon_congctl_parse() - the congctl command's algorithm
 * @o: val, val_text and text are set
 * @s: the text
 * Return: 0 or -EINVAL
 */
int mwcon_congctl_parse(struct mwcon_opts *o, const char *s)
{
	static const struct {
		const char *name;
		uint64_t code;
	} codes[] = {
		{ "reno", MW_NF_CONGCTL_RENO },
		{ "newreno", MW_NF_CONGCTL_NEWRENO },
		{ "cubic", MW_NF_CONGCTL_CUBIC },
	};
	size_t i, n;

	o->val[0] = o->val[1] = 0;
	o->val_text = false;
	memset(o->text, 0, sizeof(o->text));
	if (!s || !*s)
		return -EINVAL;
	for (i = 0; i < NELEM(codes); i++)
		if (!strcasecmp(s, codes[i].name))
			return o->val[0] = codes[i].code, 0;
	if (!mwcon_parse_u64(s, &o->val[0]))
		return 0;
	n = strlen(s);
	if (n >= sizeof(o->text))
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '-')
			return -EINVAL;
	memcpy(o->text, s, n);
	o->val_text = true;
	return 0;
}

/**
 * mwcon_value_format() - a response value as "get" prints it
 * @attr: the attribute
 * @v0: first val word
 * @v1: second val word
 * @buf: output
 * @len: its size
 */
void mwcon_value_format(uint16_t attr, uint64_t v0, uint64_t v1, char *buf, size_t len)
{
	if (mwcon_attr_is_timeval(attr))
		snprintf(buf, len, "%llu.%06llu", (unsigned long long)v0,
			 (unsigned long long)(v1 % 1000000));
	else
		snprintf(buf, len, "%llu", (unsigned long long)v0);
}

/* How many words each command takes after its name. */
static const struct {
	const char *word;
	enum mwcon_cmd cmd;
	int nargs;
	const char *args;
} commands[] = {
	{ "close", MWCON_CMD_CLOSE, 1, "a socket ID" },
	{ "block", MWCON_CMD_BLOCK, 1, "an ADDR" },
	{ "unblock", MWCON_CMD_UNBLOCK, 1, "an ADDR" },
	{ "get", MWCON_CMD_GET, 2, "ID NAME" },
	{ "set", MWCON_CMD_SET, 3, "ID NAME VALUE" },
	{ "congctl", MWCON_CMD_CONGCTL, 1, "an algorithm NAME" },
	{ "guard", MWCON_CMD_GUARD, 0, "nothing" },
};

static int __attribute__((format(printf, 3, 4))) bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* The command words after the options: validate each argument. */
static int parse_command(struct mwcon_opts *o, int argc, char **argv, char *err, size_t errlen)
{
	const char *w = argv[0];
	size_t i;
	int k, attr;

	for (i = 0; i < NELEM(commands); i++)
		if (!strcmp(w, commands[i].word))
			break;
	if (i == NELEM(commands))
		return bad(err, errlen, "unknown command '%s' (try --help)", w);
	o->cmd = commands[i].cmd;
	o->cmd_word = commands[i].word;
	k = commands[i].nargs;
	if (argc - 1 < k)
		return bad(err, errlen, "%s: needs %s (try --help)", w, commands[i].args);
	if (argc - 1 > k)
		return bad(err, errlen, "%s: unexpected argument '%s' (try --help)", w,
			   argv[k + 1]);
	o->cmd_arg = argc > 1 ? argv[1] : NULL;
	switch (o->cmd) {
	case MWCON_CMD_CLOSE:
	case MWCON_CMD_GET:
	case MWCON_CMD_SET:
		if (mwcon_parse_u64(argv[1], &o->sock))
			return bad(err, errlen, "%s: '%s' is not a socket id (decimal or 0x hex)",
				   w, argv[1]);
		if (o->cmd == MWCON_CMD_CLOSE)
			break;
		attr = mwcon_attr_parse(argv[2]);
		if (attr < 0)
			return bad(err, errlen, "%s: unknown attribute '%s' (try --help)", w,
				   argv[2]);
		o->attr = (uint16_t)attr;
		if (o->cmd == MWCON_CMD_SET && mwcon_value_parse(o->attr, argv[3], o->val))
			return bad(err, errlen, "set: invalid value '%s' for %s", argv[3],
				   mw_nf_attr_name(o->attr));
		break;
	case MWCON_CMD_BLOCK:
	case MWCON_CMD_UNBLOCK: {
		struct mw_nf_request probe = { 0 };

		if (mw_nf_request_set_block_text(&probe, argv[1]))
			return bad(err, errlen, "%s: '%s' is not an IPv4 address (dotted quad)", w,
				   argv[1]);
		o->addr = argv[1];
		break;
	}
	case MWCON_CMD_CONGCTL:
		if (mwcon_congctl_parse(o, argv[1]))
			return bad(err, errlen,
				   "%s: '%s' is not an algorithm name (reno, cubic, ... at most 15 "
				   "of [a-z0-9_-]) or number",
				   w, argv[1]);
		break;
	default:
		break;
	}
	return 0;
}

/**
 * mwcon_parse_args() - parse the command line
 * @o: filled
 * @argc: from main()
 * @argv: from main()
 * @err: one line on failure
 * @errlen: its size
 * Return: 0 or -EINVAL
 */
int mwcon_parse_args(struct mwcon_opts *o, int argc, char **argv, char *err, size_t errlen)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "config", required_argument, NULL, 'c' },
		{ "keystore-root", required_argument, NULL, 'k' },
		{ "interactive", no_argument, NULL, 'i' },
		{ "server", required_argument, NULL, OPT_SERVER },
		{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
		{ "sort", required_argument, NULL, OPT_SORT },
		{ "filter", required_argument, NULL, OPT_FILTER },
		{ "guard", required_argument, NULL, OPT_GUARD },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, count_set = false;
	uint64_t num;
	int c;

	memset(o, 0, sizeof(*o));
	o->timeout_ms = MWCON_TIMEOUT_MS;
	opterr = 0;
	optind = 1;
	/* '+': stop at the command word, so "set 5 sndbuf ..." is never taken for options. */
	while ((c = getopt_long(argc, argv, "+:hVc:k:i", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			o->help = true;
			return 0;
		case 'V':
			o->version = true;
			return 0;
		case 'c':
			o->config = optarg;
			break;
		case 'k':
			o->ks_root = optarg;
			break;
		case 'i':
			o->interactive_forced = true;
			break;
		case OPT_SERVER:
			o->server = optarg;
			break;
		case OPT_TOKEN_FILE:
			o->token_file = optarg;
			break;
		case OPT_SORT: {
			int k;

			for (k = 0; k < MWCON_SORT_COUNT && strcmp(optarg, mwcon_sort_name(k)); k++)
				;
			if (k == MWCON_SORT_COUNT)
				return bad(err, errlen,
					   "invalid --sort '%s' (id, rate, age, port, peer, state)",
					   optarg);
			o->sort = k;
			break;
		}
		case OPT_FILTER:
			o->filter = optarg;
			break;
		case OPT_GUARD:
			o->guard = optarg;
			break;
		case OPT_KEY:
			o->key = optarg;
			break;
		case OPT_JSON:
			json = true;
			break;
		case OPT_COUNT:
			if (mwcon_parse_u64(optarg, &o->count) || !o->count)
				return bad(err, errlen, "invalid --count '%s' (a number > 0)",
					   optarg);
			count_set = true;
			break;
		case OPT_TIMEOUT:
			if (mwcon_parse_u64(optarg, &num) || !num || num > 3600000)
				return bad(err, errlen, "invalid --timeout-ms '%s' (1..3600000)",
					   optarg);
			o->timeout_ms = (int)num;
			break;
		case ':':
			return bad(err, errlen, "option '%s' needs an argument (try --help)",
				   argv[optind - 1]);
		default:
			if (optopt && optopt < 256)
				return bad(err, errlen, "unknown option '-%c' (try --help)",
					   optopt);
			return bad(err, errlen, "unknown option '%s' (try --help)",
				   argv[optind - 1]);
		}
	}
	if (count_set && !json)
		return bad(err, errlen, "--count is only for --json");
	if (json) {
		o->cmd = MWCON_CMD_JSON;
		o->cmd_word = "json";
		if (optind < argc)
			return bad(err, errlen, "unexpected argument '%s' with --json (try --help)",
				   argv[optind]);
		if (o->interactive_forced)
			return bad(err, errlen, "--json and --interactive exclude each other");
		return 0;
	}
	if (optind == argc)
		return 0;
	if (o->interactive_forced)
		return bad(err, errlen, "--interactive takes no command ('%s')", argv[optind]);
	return parse_command(o, argc - optind, argv + optind, err, errlen);
}
