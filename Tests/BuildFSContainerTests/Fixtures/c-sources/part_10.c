#include "parts.h"
/* Part 10: a little arithmetic so the compiler has something to do. */
static const char label_10[] = "part 10 of the buildfs fixture";
unsigned long part_10(unsigned long x) {
    unsigned long h = 1469598103934665603UL ^ 10UL;
    for (unsigned i = 0; i < sizeof label_10 - 1; i++) h = (h ^ (unsigned char)label_10[i]) * 1099511628211UL;
    return h ^ (x * 10UL + 3UL);
}
