#include "parts.h"
/* Part 11: a little arithmetic so the compiler has something to do. */
static const char label_11[] = "part 11 of the buildfs fixture";
unsigned long part_11(unsigned long x) {
    unsigned long h = 1469598103934665603UL ^ 11UL;
    for (unsigned i = 0; i < sizeof label_11 - 1; i++) h = (h ^ (unsigned char)label_11[i]) * 1099511628211UL;
    return h ^ (x * 11UL + 3UL);
}
