#include "parts.h"
/* Part 5: a little arithmetic so the compiler has something to do. */
static const char label_5[] = "part 5 of the buildfs fixture";
unsigned long part_5(unsigned long x) {
    unsigned long h = 1469598103934665603UL ^ 5UL;
    for (unsigned i = 0; i < sizeof label_5 - 1; i++) h = (h ^ (unsigned char)label_5[i]) * 1099511628211UL;
    return h ^ (x * 5UL + 3UL);
}
