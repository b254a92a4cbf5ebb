#include "parts.h"
/* Part 7: a little arithmetic so the compiler has something to do. */
static const char label_7[] = "part 7 of the buildfs fixture";
unsigned long part_7(unsigned long x) {
    unsigned long h = 1469598103934665603UL ^ 7UL;
    for (unsigned i = 0; i < sizeof label_7 - 1; i++) h = (h ^ (unsigned char)label_7[i]) * 1099511628211UL;
    return h ^ (x * 7UL + 3UL);
}
