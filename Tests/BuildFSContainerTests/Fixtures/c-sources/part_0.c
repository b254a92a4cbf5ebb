#include "parts.h"
/* Part 0: a little arithmetic so the compiler has something to do. */
static const char label_0[] = "part 0 of the buildfs fixture";
unsigned long part_0(unsigned long x) {
    unsigned long h = 1469598103934665603UL ^ 0UL;
    for (unsigned i = 0; i < sizeof label_0 - 1; i++) h = (h ^ (unsigned char)label_0[i]) * 1099511628211UL;
    return h ^ (x * 0UL + 3UL);
}
