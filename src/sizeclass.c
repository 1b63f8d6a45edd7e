/*
 * sizeclass.c - the size classes: block size, page length and blocks per page of each.
 *
 * Layer: 2 size classes
 * Calls: nothing
 *
 * Owns: the class tables. Pure data; vt_size_class() in internal.h maps a size to its class in
 * constant time, one byte load (never a scan over the classes, as VT's lookup was).
 *
 * The rule behind the table (tests/test_sizeclass.c recomputes it independently):
 *   class 0..7     bsize = 16 * (class + 1)                       16 .. 128
 *   class 8..35    bsize = 2^(k-2) * (5 + j % 4), j = class - 8,   160 .. 16 KiB
 *                  k = 7 + j / 4                                  (four per power of two)
 *   class 36..39   24, 32, 48 and 64 KiB                          (two per power of two)
 *   class 40..47   80 .. 256 KiB, four per power of two again
 *   units          ceil(2 * bsize / VT_UNIT_SIZE) up to VT_SHORT_RUN_UNITS (8): one 32 KiB unit
 *                  up to 16 KiB blocks (four or more blocks up to 8 KiB), then pages of two
 *                  or three blocks, because a free block in a page with a live neighbour
 *                  stays resident: measured on bench/run-soak, 8 blocks per page cost 20 %
 *                  more peak RSS and half the throughput of 2 (page faults on memory that a
 *                  larger page spreads over). Above 128 KiB the block is alone, in
 *                  ceil(bsize / VT_UNIT_SIZE) units: pages of two such blocks were runs of
 *                  320 to 512 KiB, and a run that long rarely found that many contiguous free
 *                  units still resident, since the shorter pages are placed in the resident
 *                  holes. So it took fresh or purged units while resident ones lay idle, and
 *                  the purge passes then gave those back: in bench/server's waves (64 KiB
 *                  units then), such runs took 54 MiB of units not resident while about 100
 *                  resident free units lay idle, 23-34 MiB were purged in a 1.2 s run, and
 *                  the faults were 1.3x tcmalloc's; with the block alone, about 1.0x, at a
 *                  lower peak (bench/RESULTS.md). The rest of its run is never written by the
 *                  block.
 *   capacity       units * VT_UNIT_SIZE / bsize
 *
 * Why two classes per power of two between 16 and 64 KiB: a page there is two to four units
 * for two or three blocks, and a thread holds a page of every class it uses, however few of
 * its blocks are live. A thread whose blocks spread over every size (memtest churn's workers)
 * held a page of each of the eight classes that were there, mostly one free block each. With
 * four classes instead, memtest churn at 2 threads peaked 9 % lower with 12 % fewer page faults,
 * at the same speed (bench/RESULTS.md, session hh). The price is the waste of a rounded
 * request there: below a third of the block instead of a quarter. Not done above 64 KiB: not
 * measured there, and a block above 128 KiB is alone in its run, whose unwritten rest costs
 * address space, not memory.
 *
 * Every bsize is a multiple of 16, and a multiple of every power of two up to the size's
 * spacing, which is what makes aligned allocation from classes work (alloc.c).
 */
#include "internal.h"

/* clang-format off: the table as a table */
const vt_class_info_t vt_classes[VT_CLASS_COUNT] = {
    /* bsize, capacity, units */
    {16, 2048, 1},  {32, 1024, 1},  {48, 682, 1},   {64, 512, 1},   {80, 409, 1},   {96, 341, 1},
    {112, 292, 1},  {128, 256, 1},  {160, 204, 1},  {192, 170, 1},  {224, 146, 1},  {256, 128, 1},
    {320, 102, 1},  {384, 85, 1},   {448, 73, 1},   {512, 64, 1},   {640, 51, 1},   {768, 42, 1},
    {896, 36, 1},   {1024, 32, 1},  {1280, 25, 1},  {1536, 21, 1},  {1792, 18, 1},  {2048, 16, 1},
    {2560, 12, 1},  {3072, 10, 1},  {3584, 9, 1},   {4096, 8, 1},   {5120, 6, 1},   {6144, 5, 1},
    {7168, 4, 1},   {8192, 4, 1},   {10240, 3, 1},  {12288, 2, 1},  {14336, 2, 1},  {16384, 2, 1},
    {24576, 2, 2},  {32768, 2, 2},  {49152, 2, 3},  {65536, 2, 4},  {81920, 2, 5},  {98304, 2, 6},
    {114688, 2, 7}, {131072, 2, 8}, {163840, 1, 5}, {196608, 1, 6}, {229376, 1, 7}, {262144, 1, 8},
};

/* The class of every size up to 4 KiB, indexed by (size + 15) / 16: the malloc fast path's
 * class lookup for the sizes programs ask for most is one byte load. */
const uint8_t vt_small_class[VT_SMALL_TABLE_MAX / 16 + 1] = {
    0,  0,  1,  2,  3,  4,  5,  6,  7,  8,  8,  9,  9,  10, 10, 11, 11, 12, 12, 12, 12, 13, 13, 13,
    13, 14, 14, 14, 14, 15, 15, 15, 15, 16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17,
    17, 18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19, 19, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21,
    21, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 23, 23, 23, 23, 23, 23, 23,
    23, 23, 23, 23, 23, 23, 23, 23, 23, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24,
    24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 25, 25, 25, 25, 25, 25, 25,
    25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25,
    25, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26,
    26, 26, 26, 26, 26, 26, 26, 26, 26, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27,
    27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27,
};

/* The class of every size above 4 KiB, indexed by (size - 1) / 1024 - 4: every class size there
 * is a whole number of KiB, so all the sizes of one KiB share a class. */
const uint8_t vt_medium_class[(VT_SMALL_MAX >> 10) - VT_MEDIUM_FIRST_KIB] = {
    28, 29, 30, 31, 32, 32, 33, 33, 34, 34, 35, 35, 36, 36, 36, 36, 36, 36, 36, 36, 37, 37, 37,
    37, 37, 37, 37, 37, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 39, 39,
    39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41,
    42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42, 43, 43, 43, 43, 43, 43, 43,
    43, 43, 43, 43, 43, 43, 43, 43, 43, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44,
    44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 45, 45, 45, 45, 45,
    45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45,
    45, 45, 45, 45, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46,
    46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47,
    47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47,
};

/* clang-format on */

_Static_assert(sizeof(vt_classes) / sizeof(vt_classes[0]) == VT_CLASS_COUNT, "table size");
_Static_assert(sizeof(vt_medium_class) == (VT_SMALL_MAX >> 10) - VT_MEDIUM_FIRST_KIB, "table size");
