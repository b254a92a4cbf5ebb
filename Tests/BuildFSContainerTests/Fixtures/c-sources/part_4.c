#include "parts.h"
/* Part 4: a little arithmetic so the compiler has something to do. */
static const char label_4[] = "part 4 of the buildfs fixture";
unsigned long part_4(unsigned long x) {
    unsigned long h = 1469598103934665603UL ^ 4UL;
    for (unsigned i = 0; i < sizeof label_4 - 1; i++) h = (h ^ (unsigned char)label_4[i]) * 1099511628211UL;
    return h ^ (x * 4UL + 3UL);
}
