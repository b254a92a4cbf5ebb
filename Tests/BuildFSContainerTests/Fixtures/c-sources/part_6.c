#include "parts.h"
/* Part 6: a little arithmetic so the compiler has something to do. */
static const char label_6[] = "part 6 of the buildfs fixture";
unsigned long part_6(unsigned long x) {
    unsigned long h = 1469598103934665603UL ^ 6UL;
    for (unsigned i = 0; i < sizeof label_6 - 1; i++) h = (h ^ (unsigned char)label_6[i]) * 1099511628211UL;
    return h ^ (x * 6UL + 3UL);
}
