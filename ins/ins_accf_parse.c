/* SPDX-License-Identifier: MIT */
/* ins_accf_parse.c - is a held connection's first request complete? (accept filters) */
#include <string.h>

#include "ins/ins_accf.h"

/*
 * Theory of operation
 *
 * ins_accf.c peeks at a held connection's bytes (they stay in the kernel) and
 * hands the parser the whole stream seen so far, from byte 0, each time more
 * arrived.  The parser resumes at @pos, so every byte is looked at once, and
 * says PASS once the filter's first request is complete:
 *   DATA   one byte;
 *   HTTP   a request head ending in an empty line (CRLF or bare LF), then
 *          Content-Length body bytes; with Transfer-Encoding (chunked), or a
 *          Content-Length that is not one clean number: the head;
 *   LINE   a line ending in LF, or, when the stream starts with '*', a RESP
 *          array of bulk strings, every element complete;
 *   DELIM  the delimiter (no delimiter: as DATA).
 * It never judges beyond that: what it cannot parse (a RESP array holding
 * another type, a negative length) is PASSed, for the app to refuse at once;
 * only an incomplete request is held.  Numbers saturate, nothing is indexed by
 * a value from the stream, and the state is a few fixed fields.
 */

enum {
	ST_START = 0,
	ST_HEAD,   /* HTTP: in the request head */
	ST_BODY,   /* HTTP: Content-Length bytes */
	ST_LINE,   /* LINE: up to LF */
	ST_R_ALEN, /* RESP: "*N" */
	ST_R_TYPE, /* RESP: an element's type byte */
	ST_R_BLEN, /* RESP: "$len" */
	ST_R_DATA, /* RESP: the bulk bytes and their CRLF */
	ST_DONE,
};

enum {
	F_BOL = 1 << 0,	    /* at the beginning of a line (a CR may have been seen) */
	F_REQLINE = 1 << 1, /* still in the request line: not a header */
	F_CL = 1 << 2,	    /* a Content-Length was seen */
	F_CLBAD = 1 << 3,   /* a Content-Length that is no clean number, or two that differ */
	F_TE = 1 << 4,	    /* a Transfer-Encoding was seen */
	F_INNAME = 1 << 5,  /* in a header's name (before ':') */
	F_NEG = 1 << 6,	    /* RESP: a '-' length */
	F_NUMEND = 1 << 7,  /* HTTP: Content-Length digits ended (only OWS may follow) */
};

enum {
	HDR_NONE,
	HDR_CL,
	HDR_TE
};

#define NUM_MAX (1ull << 48) /* saturate: far beyond INS_ACCF_PEEK_MAX */

static const char cl_name[] = "content-length";
static const char te_name[] = "transfer-encoding";

/**
 * ins_accf_parse_init() - a parser for a connection held under @sh
 * @p:  the parser
 * @sh: the listener's shield (filter and delimiter)
 */
void ins_accf_parse_init(struct ins_accf_parser *p, const struct mw_shield *sh)
{
	memset(p, 0, sizeof(*p));
	p->filter = sh->filter;
	if (p->filter == MW_ACCF_DELIM) {
		p->delim_len = sh->delim_len <= sizeof(p->delim) ? sh->delim_len : 0;
		memcpy(p->delim, sh->delim, p->delim_len);
		if (!p->delim_len)
			p->filter = MW_ACCF_DATA;
	}
}

static uint64_t num_push(uint64_t n, uint8_t c)
{
	n = n * 10 + (uint64_t)(c - '0');
	return n > NUM_MAX ? NUM_MAX : n;
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 'a' - 'A') : c;
}

/* One byte of a header's name: follow it against the two names that matter. */
static void http_name_byte(struct ins_accf_parser *p, uint8_t c)
{
	if (c == ':') {
		p->flags &= (uint8_t)~F_INNAME;
		if (p->hdr == HDR_CL && p->line == sizeof(cl_name) - 1) {
			p->num = 0;
			p->num_any = false;
		} else if (!(p->hdr == HDR_TE && p->line == sizeof(te_name) - 1)) {
			p->hdr = HDR_NONE;
		}
		return;
	}
	if (p->line == 0)
		p->hdr = lower(c) == 'c' ? HDR_CL : lower(c) == 't' ? HDR_TE : HDR_NONE;
	if (p->hdr == HDR_CL &&
	    (p->line >= sizeof(cl_name) - 1 || lower(c) != (uint8_t)cl_name[p->line]))
		p->hdr = HDR_NONE;
	if (p->hdr == HDR_TE &&
	    (p->line >= sizeof(te_name) - 1 || lower(c) != (uint8_t)te_name[p->line]))
		p->hdr = HDR_NONE;
	if (p->line < UINT8_MAX)
		p->line++;
}

/* One byte of a Content-Length value: OWS, digits, OWS. */
static void http_cl_byte(struct ins_accf_parser *p, uint8_t c)
{
	if (c == ' ' || c == '\t' || c == '\r') {
		if (p->num_any)
			p->flags |= F_NUMEND;
	} else if (is_digit(c) && !(p->flags & F_NUMEND)) {
		p->num = num_push(p->num, c);
		p->num_any = true;
	} else {
		p->flags |= F_CLBAD;
	}
}

/* A header line ended: record what it said. */
static void http_line_end(struct ins_accf_parser *p)
{
	if (!(p->flags & (F_REQLINE | F_INNAME))) {
		if (p->hdr == HDR_TE)
			p->flags |= F_TE;
		if (p->hdr == HDR_CL) {
			if (!p->num_any || ((p->flags & F_CL) && p->cl != p->num))
				p->flags |= F_CLBAD;
			p->cl = p->num;
			p->flags |= F_CL;
		}
	}
	p->flags &= (uint8_t) ~(F_REQLINE | F_NUMEND);
	p->flags |= F_BOL | F_INNAME;
	p->line = 0;
	p->hdr = HDR_NONE;
}

/* The empty line: the head is complete; a body follows only with one clean Content-Length. */
static int http_head_end(struct ins_accf_parser *p)
{
	if ((p->flags & (F_TE | F_CLBAD)) || !(p->flags & F_CL) || p->cl == 0)
		return INS_ACCF_PASS;
	p->need = p->cl;
	p->st = ST_BODY;
	return INS_ACCF_MORE;
}

static int http_byte(struct ins_accf_parser *p, uint8_t c)
{
	if (c == '\n') {
		if (p->flags & F_BOL)
			return http_head_end(p);
		http_line_end(p);
		return INS_ACCF_MORE;
	}
	if (c == '\r' && (p->flags & F_BOL))
		return INS_ACCF_MORE;
	p->flags &= (uint8_t)~F_BOL;
	if (p->flags & F_REQLINE)
		return INS_ACCF_MORE;
	if (p->flags & F_INNAME)
		http_name_byte(p, c);
	else if (p->hdr == HDR_CL)
		http_cl_byte(p, c);
	return INS_ACCF_MORE;
}

/* RESP: "*N", "$len" lines; Return: PASS, MORE, or -1 while the number goes on. */
static int resp_number(struct ins_accf_parser *p, uint8_t c)
{
	if (is_digit(c)) {
		p->num = num_push(p->num, c);
		p->num_any = true;
		return -1;
	}
	if (c == '-' && !p->num_any && !(p->flags & F_NEG)) {
		p->flags |= F_NEG;
		return -1;
	}
	if (c == '\r')
		return -1;
	if (c != '\n' || !p->num_any)
		return INS_ACCF_PASS; /* not RESP: the app decides */
	return INS_ACCF_MORE;
}

/* One element of the array is complete. */
static int resp_element_done(struct ins_accf_parser *p)
{
	if (--p->left == 0)
		return INS_ACCF_PASS;
	p->st = ST_R_TYPE;
	return INS_ACCF_MORE;
}

static int resp_byte(struct ins_accf_parser *p, uint8_t c)
{
	int ret;

	switch (p->st) {
	case ST_R_ALEN:
		ret = resp_number(p, c);
		if (ret != INS_ACCF_MORE)
			return ret < 0 ? INS_ACCF_MORE : ret;
		if ((p->flags & F_NEG) || p->num == 0)
			return INS_ACCF_PASS; /* null or empty array */
		p->left = p->num;
		p->st = ST_R_TYPE;
		return INS_ACCF_MORE;
	case ST_R_TYPE:
		if (c != '$')
			return INS_ACCF_PASS;
		p->num = 0;
		p->num_any = false;
		p->flags &= (uint8_t)~F_NEG;
		p->st = ST_R_BLEN;
		return INS_ACCF_MORE;
	default: /* ST_R_BLEN */
		ret = resp_number(p, c);
		if (ret != INS_ACCF_MORE)
			return ret < 0 ? INS_ACCF_MORE : ret;
		if (p->flags & F_NEG)
			return resp_element_done(p); /* null bulk string */
		p->need = p->num + 2;
		p->st = ST_R_DATA;
		return INS_ACCF_MORE;
	}
}

/* Skip up to @p->need bytes of @buf[*i..len): body or bulk bytes, not parsed. */
static void skip_need(struct ins_accf_parser *p, size_t *i, size_t len)
{
	size_t n = len - *i;

	if ((uint64_t)n > p->need)
		n = (size_t)p->need;
	p->need -= n;
	*i += n;
}

static int parse_http(struct ins_accf_parser *p, const uint8_t *buf, size_t len)
{
	size_t i = p->pos;
	int ret = INS_ACCF_MORE;

	if (p->st == ST_START) {
		p->st = ST_HEAD;
		p->flags = F_REQLINE | F_INNAME;
	}
	while (i < len && ret == INS_ACCF_MORE) {
		if (p->st == ST_BODY) {
			skip_need(p, &i, len);
			if (p->need == 0)
				ret = INS_ACCF_PASS;
			continue;
		}
		ret = http_byte(p, buf[i++]);
	}
	p->pos = (uint32_t)i;
	return ret;
}

static int parse_line(struct ins_accf_parser *p, const uint8_t *buf, size_t len)
{
	size_t i = p->pos;
	int ret = INS_ACCF_MORE;

	if (p->st == ST_START && i < len) {
		p->st = buf[i] == '*' ? ST_R_ALEN : ST_LINE;
		if (p->st == ST_R_ALEN)
			i++;
	}
	if (p->st == ST_LINE) {
		p->pos = (uint32_t)len;
		return memchr(buf + i, '\n', len - i) ? INS_ACCF_PASS : INS_ACCF_MORE;
	}
	while (i < len && ret == INS_ACCF_MORE) {
		if (p->st == ST_R_DATA) {
			skip_need(p, &i, len);
			if (p->need == 0)
				ret = resp_element_done(p);
			continue;
		}
		ret = resp_byte(p, buf[i++]);
	}
	p->pos = (uint32_t)i;
	return ret;
}

static int parse_delim(struct ins_accf_parser *p, const uint8_t *buf, size_t len)
{
	size_t from = p->pos >= p->delim_len ? p->pos - (p->delim_len - 1u) : 0;

	p->pos = (uint32_t)len;
	return memmem(buf + from, len - from, p->delim, p->delim_len) ? INS_ACCF_PASS
								      : INS_ACCF_MORE;
}

/**
 * ins_accf_parse() - is the first request in @buf complete?
 * @p:   the parser, resuming where the last call stopped
 * @buf: the stream from its first byte
 * @len: bytes in @buf (a longer stream than last time, or the same)
 * Return: INS_ACCF_PASS (then for ever) or INS_ACCF_MORE
 */
int ins_accf_parse(struct ins_accf_parser *p, const uint8_t *buf, size_t len)
{
	int ret;

	if (p->st == ST_DONE)
		return INS_ACCF_PASS;
	if (len > INS_ACCF_PEEK_MAX)
		len = INS_ACCF_PEEK_MAX;
	if (len <= p->pos)
		return INS_ACCF_MORE;
	switch (p->filter) {
	case MW_ACCF_HTTP:
		ret = parse_http(p, buf, len);
		break;
	case MW_ACCF_LINE:
		ret = parse_line(p, buf, len);
		break;
	case MW_ACCF_DELIM:
		ret = parse_delim(p, buf, len);
		break;
	default: /* DATA, and NONE never holds */
		ret = INS_ACCF_PASS;
		break;
	}
	if (ret == INS_ACCF_PASS)
		p->st = ST_DONE;
	return ret;
}
