/* SPDX-License-Identifier: MIT */
/* ins_accf.h - accept filters: the completeness parser and a held connection */
#ifndef MW_INS_ACCF_H
#define MW_INS_ACCF_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/shield.h"
#include "ins/ins_rates.h"

/* Bytes of a held connection looked at; more without completion passes it (the app decides). */
#define INS_ACCF_PEEK_MAX 16384u

enum ins_accf_verdict {
	INS_ACCF_MORE = 0, /* incomplete: hold on */
	INS_ACCF_PASS = 1, /* complete (or not parseable: the app decides) */
};

/*
 * The parser's state between two looks at the same stream (ins_accf_parse.c).
 * @pos:  bytes of the stream already consumed
 * @st:   state of the filter's machine
 * @line: HTTP: bytes of the current header line matched against a header name
 * @hdr:  HTTP: which header the line is (0 none, 1 Content-Length, 2 Transfer-Encoding)
 * @flags: HTTP: line start / CL seen / CL bad / TE seen
 * @num:  the number being read (Content-Length, RESP lengths)
 * @need: HTTP: body bytes still wanted; RESP: bytes of the current bulk string left
 * @left: RESP: array elements still to come
 */
struct ins_accf_parser {
	uint8_t filter;
	uint8_t delim_len;
	uint8_t delim[8];
	uint8_t st;
	uint8_t line;
	uint8_t hdr;
	uint8_t flags;
	bool num_any;
	uint32_t pos;
	uint64_t num, cl, need, left;
};

/*
 * A connection an accept filter holds (ins_accf.c): not in the socket table, no id,
 * unknown to mw-pvm until it passes.  On its listener's list, oldest first.
 */
struct ins_held {
	struct ins_held *prev, *next;
	struct ins_sock *ls; /* the listener: it frees its held ones when freed */
	int fd;
	bool proxied;
	bool lowat_set; /* SO_RCVLOWAT raised: back to 1 when it passes */
	struct mw_addr peer, local;
	struct mw_shield shield; /* the listener's at accept */
	struct ins_accf_parser parser;
	struct ins_rates_ref ref; /* source/prefix entries it counts in (ins_shield_admit()) */
	struct ins_rates_in in;   /* MIN_IN_RATE: what it sent (ins_shield_in_slow()) */
	ev_io io;
	ev_timer deadline;
};

/* Per INS, in the STATUS line (docs/ins.md, "Shield"). */
struct ins_accf_stats {
	uint64_t holding;  /* held now */
	uint64_t held;	   /* ever held */
	uint64_t passed;   /* announced to mw-pvm once the filter was satisfied */
	uint64_t deadline; /* reset: the filter's deadline passed */
	uint64_t evicted;  /* reset: the oldest, to make room (hold_max) */
	uint64_t gone;	   /* closed or reset by the client, or dropped with the
			    * listener, an address block, out of memory */
};

void ins_accf_parse_init(struct ins_accf_parser *p, const struct mw_shield *sh);
int ins_accf_parse(struct ins_accf_parser *p, const uint8_t *buf, size_t len);

#endif /* MW_INS_ACCF_H */
