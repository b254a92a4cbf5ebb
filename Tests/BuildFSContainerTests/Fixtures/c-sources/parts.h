#ifndef PARTS_H
#define PARTS_H
/* part_0 ... part_11, one per source file (part_N.c). */
#define PART(n) unsigned long part_##n(unsigned long x);
PART(0) PART(1) PART(2) PART(3) PART(4) PART(5) PART(6) PART(7) PART(8) PART(9) PART(10) PART(11)
#undef PART
#endif
