#include "parts.h"
/* Part 1: a little arithmetic so the compiler has something to do. */
static const char label_1[] = "part 1 of the buildfs fixture";
unsigned long part_1(unsigned long x) {
    unsigned long h = 1469598103934665603UL ^ 1UL;
    for (unsigned i = 0; i < sizeof label_1 - 1; i++) h = (h ^ (unsigned char)label_1[i]) * 1099511628211UL;
    return h ^ (x * 1UL + 3UL);
}
