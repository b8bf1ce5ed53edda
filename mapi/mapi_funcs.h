/* SPDX-License-Identifier: MIT */
/* mapi_funcs.h - the function grammar, one table read by libmwmapi and by mw-flowd */
#ifndef MW_MAPI_FUNCS_H
#define MW_MAPI_FUNCS_H

#include <string.h>

#include "mapi/mapi_proto.h"

/*
 * @args: one letter per argument, in order: 's' a string (sarg), 'i' an int
 * and 'l' a long (iarg[0], iarg[1] in order).
 */
struct mw_mapi_func_desc {
	const char *name;
	enum mw_mapi_func id;
	const char *args;
};

/* One row per line; clang-format would pack them. */
/* clang-format off */
static const struct mw_mapi_func_desc mw_mapi_funcs[] = {
	{ "BPF_FILTER",   MW_MAPI_BPF_FILTER,   "s" },
	{ "PKT_COUNTER",  MW_MAPI_PKT_COUNTER,  "" },
	{ "BYTE_COUNTER", MW_MAPI_BYTE_COUNTER, "" },
	{ "TOP",          MW_MAPI_TOP,          "ii" },
	{ "THRESHOLD",    MW_MAPI_THRESHOLD,    "il" },
	{ "DIST",         MW_MAPI_DIST,         "i" },
	{ "STR_SEARCH",   MW_MAPI_STR_SEARCH,   "sii" },
	{ "SAMPLE",       MW_MAPI_SAMPLE,       "ii" },
	{ "TO_BUFFER",    MW_MAPI_TO_BUFFER,    "" },
	{ "ANONYMIZE",    MW_MAPI_ANONYMIZE,    "si" },
	{ "FANOUT",       MW_MAPI_FANOUT,       "ii" },
	{ "PORTSCAN",     MW_MAPI_PORTSCAN,     "ii" },
};
/* clang-format on */

static inline const struct mw_mapi_func_desc *mw_mapi_func_by_name(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(mw_mapi_funcs) / sizeof(mw_mapi_funcs[0]); i++)
		if (!strcmp(mw_mapi_funcs[i].name, name))
			return &mw_mapi_funcs[i];
	return NULL;
}

static inline const struct mw_mapi_func_desc *mw_mapi_func_by_id(uint32_t id)
{
	size_t i;

	for (i = 0; i < sizeof(mw_mapi_funcs) / sizeof(mw_mapi_funcs[0]); i++)
		if ((uint32_t)mw_mapi_funcs[i].id == id)
			return &mw_mapi_funcs[i];
	return NULL;
}

#endif /* MW_MAPI_FUNCS_H */
