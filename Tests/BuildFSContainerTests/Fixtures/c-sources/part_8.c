#include "parts.h"
/* Part 8: a little arithmetic so the compiler has something to do. */
static const char label_8[] = "part 8 of the buildfs fixture";
unsigned long part_8(unsigned long x) {
    unsigned long h = 1469598103934665603UL ^ 8UL;
    for (unsigned i = 0; i < sizeof label_8 - 1; i++) h = (h ^ (unsigned char)label_8[i]) * 1099511628211UL;
    return h ^ (x * 8UL + 3UL);
}
