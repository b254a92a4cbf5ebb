#include "parts.h"
/* Part 9: a little arithmetic so the compiler has something to do. */
static const char label_9[] = "part 9 of the buildfs fixture";
unsigned long part_9(unsigned long x) {
    unsigned long h = 1469598103934665603UL ^ 9UL;
    for (unsigned i = 0; i < sizeof label_9 - 1; i++) h = (h ^ (unsigned char)label_9[i]) * 1099511628211UL;
    return h ^ (x * 9UL + 3UL);
}
