/* SPDX-License-Identifier: MIT */
/* config_ints.c - give libconfig 1.5 every integer literal at its full width */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/config_ints.h"

/*
 * The scan follows libconfig 1.5's scanner (scanner.l) closely enough that an
 * L is only ever added right after a token libconfig itself reads as a
 * 32-bit integer ("[-+]?[0-9]+" or "0[xX][0-9A-Fa-f]+"), which turns it
 * into that token's 64-bit form.  Where the two scans could differ, the text
 * is already a syntax error for libconfig at the same place.
 */

struct scan {
	const char *in;
	size_t len, i;
	char *out;
	size_t size, o;
	unsigned int line;
	bool nobufs, bad;
	mw_config_bad_int_fn report;
	mw_config_include_fn include;
	void *arg;
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_name_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '*';
}

static bool is_name_char(char c)
{
	return is_name_start(c) || is_digit(c) || c == '-' || c == '_';
}

/* The byte at offset @k from the cursor, or NUL past the end. */
static char peek(const struct scan *s, size_t k)
{
	return s->i + k < s->len ? s->in[s->i + k] : '\0';
}

static void put(struct scan *s, char c)
{
	if (!s->out) { /* scan only */
		s->o++;
		return;
	}
	if (s->o >= s->size) {
		s->nobufs = true;
		return;
	}
	s->out[s->o++] = c;
}

/* Copy the byte under the cursor and step over it. */
static void copy(struct scan *s)
{
	if (s->in[s->i] == '\n')
		s->line++;
	put(s, s->in[s->i++]);
}

static void copy_n(struct scan *s, size_t n)
{
	while (n--)
		copy(s);
}

static void copy_while(struct scan *s, bool (*pred)(char))
{
	while (s->i < s->len && pred(s->in[s->i]))
		copy(s);
}

/* "#..." or "//..." up to the end of the line (the newline is left). */
static void scan_line_comment(struct scan *s)
{
	while (s->i < s->len && s->in[s->i] != '\n')
		copy(s);
}

/* "/ * ... * /" (unterminated: to the end; libconfig then says so). */
static void scan_block_comment(struct scan *s)
{
	copy(s);
	copy(s);
	while (s->i < s->len && !(s->in[s->i] == '*' && peek(s, 1) == '/'))
		copy(s);
	if (s->i < s->len) {
		copy(s);
		copy(s);
	}
}

/* "..." where a backslash takes the next byte with it.  Return: whether it was closed. */
static bool scan_string(struct scan *s)
{
	copy(s);
	while (s->i < s->len) {
		char c = s->in[s->i];

		if (c == '\\' && s->i + 1 < s->len) {
			copy(s);
			copy(s);
			continue;
		}
		copy(s);
		if (c == '"')
			return true;
	}
	return false;
}

/*
 * "@include "file"" at the start of a line: the file name is a string as
 * far as the scan goes (libconfig takes \\ and \" in it as escapes); a
 * complete one is reported to s->include.
 * Return: whether one was copied.
 */
static bool scan_include(struct scan *s)
{
	static const char word[] = "@include";
	size_t k, back = s->i;
	unsigned int line;

	while (back > 0 && (s->in[back - 1] == ' ' || s->in[back - 1] == '\t'))
		back--;
	if (back > 0 && s->in[back - 1] != '\n')
		return false;
	for (k = 0; word[k]; k++)
		if (peek(s, k) != word[k])
			return false;
	if (peek(s, k) != ' ' && peek(s, k) != '\t')
		return false;
	while (peek(s, k) == ' ' || peek(s, k) == '\t')
		k++;
	if (peek(s, k) != '"')
		return false;
	copy_n(s, k);
	k = s->i;
	line = s->line;
	if (scan_string(s) && s->include)
		s->include(s->arg, line, s->in + k + 1, s->i - k - 2);
	return true;
}

/* Does an exponent "[eE][-+]?[0-9]+" start @k bytes past the cursor? Its length, or 0. */
static size_t exponent_at(const struct scan *s, size_t k)
{
	size_t n = 1;

	if (peek(s, k) != 'e' && peek(s, k) != 'E')
		return 0;
	if (peek(s, k + 1) == '-' || peek(s, k + 1) == '+')
		n = 2;
	if (!is_digit(peek(s, k + n)))
		return 0;
	while (is_digit(peek(s, k + n)))
		n++;
	return n;
}

/* A float: "[-+]?[0-9]*" already measured as @k bytes, then ".[0-9]*" and an exponent. */
static void scan_float(struct scan *s, size_t k)
{
	copy_n(s, k);
	if (peek(s, 0) == '.') {
		copy(s);
		copy_while(s, is_digit);
	}
	copy_n(s, exponent_at(s, 0));
}

/*
 * A number at the cursor: an optional sign, then hex or decimal digits.
 * Floats are copied; integers are measured and, outside int32, widened.
 */
static void scan_number(struct scan *s)
{
	size_t start = s->i, k = 0;
	bool neg = false, wide = false, overflow = false;
	uint64_t mag = 0;
	unsigned int line = s->line;

	if (peek(s, 0) == '-' || peek(s, 0) == '+') {
		neg = peek(s, 0) == '-';
		k = 1;
	}
	if (!k && peek(s, 0) == '0' && (peek(s, 1) == 'x' || peek(s, 1) == 'X') &&
	    hex_value(peek(s, 2)) >= 0) {
		for (k = 2; hex_value(peek(s, k)) >= 0; k++) {
			overflow |= mag >> 60 != 0;
			mag = mag << 4 | (uint64_t)hex_value(peek(s, k));
		}
	} else {
		for (; is_digit(peek(s, k)); k++) {
			unsigned int d = (unsigned int)(peek(s, k) - '0');

			overflow |= mag > (UINT64_MAX - d) / 10;
			mag = mag * 10 + d;
		}
		if (peek(s, k) == '.' || exponent_at(s, k)) {
			scan_float(s, k);
			return;
		}
	}
	copy_n(s, k);
	if (peek(s, 0) == 'L') {
		wide = true;
		copy(s);
		if (peek(s, 0) == 'L')
			copy(s);
	}
	if (overflow || mag > (uint64_t)INT64_MAX + neg) {
		s->bad = true;
		if (s->report)
			s->report(s->arg, line, s->in + start, s->i - start);
		return;
	}
	if (!wide && mag > (uint64_t)INT32_MAX + neg)
		put(s, 'L');
}

ssize_t mw_config_widen_ints(const char *in, size_t len, char *out, size_t out_size,
			     mw_config_bad_int_fn bad, mw_config_include_fn include, void *arg)
{
	struct scan s = { .in = in,
			  .len = len,
			  .out = out,
			  .size = out_size,
			  .line = 1,
			  .report = bad,
			  .include = include,
			  .arg = arg };

	while (s.i < s.len && !s.nobufs) {
		char c = s.in[s.i], next = peek(&s, 1);

		if (c == '#' || (c == '/' && next == '/'))
			scan_line_comment(&s);
		else if (c == '/' && next == '*')
			scan_block_comment(&s);
		else if (c == '"')
			(void)scan_string(&s);
		else if (c == '@' && scan_include(&s))
			continue;
		else if (is_name_start(c))
			copy_while(&s, is_name_char);
		else if (is_digit(c) || ((c == '-' || c == '+') && is_digit(next)))
			scan_number(&s);
		else if (c == '.' || ((c == '-' || c == '+') && next == '.'))
			scan_float(&s, c == '.' ? 0 : 1);
		else
			copy(&s);
	}
	if (s.nobufs)
		return -ENOBUFS;
	if (s.bad)
		return -ERANGE;
	return (ssize_t)s.o;
}
