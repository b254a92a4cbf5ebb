#include "parts.h"
/* Part 2: a little arithmetic so the compiler has something to do. */
static const char label_2[] = "part 2 of the buildfs fixture";
unsigned long part_2(unsigned long x) {
    unsigned long h = 1469598103934665603UL ^ 2UL;
    for (unsigned i = 0; i < sizeof label_2 - 1; i++) h = (h ^ (unsigned char)label_2[i]) * 1099511628211UL;
    return h ^ (x * 2UL + 3UL);
}
