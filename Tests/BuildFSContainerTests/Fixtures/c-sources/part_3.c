#include "parts.h"
/* Part 3: a little arithmetic so the compiler has something to do. */
static const char label_3[] = "part 3 of the buildfs fixture";
unsigned long part_3(unsigned long x) {
    unsigned long h = 1469598103934665603UL ^ 3UL;
    for (unsigned i = 0; i < sizeof label_3 - 1; i++) h = (h ^ (unsigned char)label_3[i]) * 1099511628211UL;
    return h ^ (x * 3UL + 3UL);
}
