/* SPDX-License-Identifier: MIT */
/* fuzz_keystore_key.c - arbitrary keys: mw_key_check must never accept one that escapes the root */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/keystore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char key[MW_KEY_MAX + 16];

	if (size >= sizeof(key))
		size = sizeof(key) - 1;
	memcpy(key, data, size);
	key[size] = '\0';
	if (mw_key_check(key) == 0) {
		/* Accepted keys are absolute, short, and free of "." / ".." / empty parts. */
		if (key[0] != '/' || strlen(key) >= MW_KEY_MAX || strstr(key, "//") ||
		    strstr(key, "/.") || key[strlen(key) - 1] == '/')
			abort();
	}
	return 0;
}
