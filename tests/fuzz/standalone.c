/* SPDX-License-Identifier: MIT */
/* standalone.c - drive a libFuzzer target without libFuzzer (gcc builds) */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Run every file of @dir once, then @iterations mutations of them (or of noise). */
int main(int argc, char **argv)
{
	static uint8_t seeds[64][4096];
	static size_t seed_len[64];
	int nseeds = 0;
	long iterations = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;

	if (argc > 2) {
		DIR *dir = opendir(argv[2]);
		struct dirent *de;

		while (dir && (de = readdir(dir)) && nseeds < 64) {
			char path[4096];
			FILE *f;

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[2], de->d_name);
			f = fopen(path, "rb");
			if (!f)
				continue;
			seed_len[nseeds] = fread(seeds[nseeds], 1, sizeof(seeds[0]), f);
			fclose(f);
			LLVMFuzzerTestOneInput(seeds[nseeds], seed_len[nseeds]);
			nseeds++;
		}
		if (dir)
			closedir(dir);
	}
	for (long i = 0; i < iterations; i++) {
		uint8_t buf[4096];
		size_t len;

		if (nseeds && (i & 1)) {
			int s = (int)(next_rand() % (uint64_t)nseeds);

			len = seed_len[s];
			memcpy(buf, seeds[s], len);
			for (int m = 0; m < 1 + (int)(next_rand() % 8) && len; m++)
				buf[next_rand() % len] = (uint8_t)next_rand();
			if (next_rand() % 4 == 0)
				len = next_rand() % (len + 1);
		} else {
			len = next_rand() % sizeof(buf);
			for (size_t k = 0; k < len; k++)
				buf[k] = (uint8_t)next_rand();
		}
		LLVMFuzzerTestOneInput(buf, len);
	}
	printf("fuzz: %ld inputs, %d seeds, no crash\n", iterations, nseeds);
	return 0;
}
