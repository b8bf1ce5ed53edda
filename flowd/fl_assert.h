/* SPDX-License-Identifier: MIT */
/* fl_assert.h - FL_ASSERT(): an invariant of the flow tables that must hold, loudly */
#ifndef MW_FLOWD_ASSERT_H
#define MW_FLOWD_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

#define FL_ASSERT(cond)                                                                      \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                      \
			abort();                                                             \
		}                                                                            \
	} while (0)

#endif /* MW_FLOWD_ASSERT_H */
