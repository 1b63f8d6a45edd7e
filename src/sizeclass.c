/*
 * sizeclass.c - the size classes: block size, page length and blocks per page of each.
 *
 * Owns: the class table. Calls: nothing. Pure data; vt_size_class() in internal.h maps a size
 * to its class in constant time (review point e: never a scan over the classes).
 *
 * The rule behind the table (tests/test_sizeclass.c recomputes it independently):
 *   class 0..7     bsize = 16 * (class + 1)                       16 .. 128
 *   class 8..51    bsize = 2^(k-2) * (5 + j % 4), j = class - 8,   160 .. 256 KiB
 *                  k = 7 + j / 4                                  (four per power of two)
 *   units          1 while bsize <= 8 KiB, else ceil(8 * bsize / 64 KiB): at least 8 blocks
 *   capacity       units * 64 KiB / bsize
 * Every bsize is a multiple of 16, and a multiple of every power of two up to the size's
 * spacing, which is what makes aligned allocation from classes work (alloc.c).
 */
#include "internal.h"

const vt_class_info_t vt_classes[VT_CLASS_COUNT] = {
    /* bsize, capacity, units */
    {16, 4096, 1},     {32, 2048, 1},     {48, 1365, 1},     {64, 1024, 1},
    {80, 819, 1},      {96, 682, 1},      {112, 585, 1},     {128, 512, 1},
    {160, 409, 1},     {192, 341, 1},     {224, 292, 1},     {256, 256, 1},
    {320, 204, 1},     {384, 170, 1},     {448, 146, 1},     {512, 128, 1},
    {640, 102, 1},     {768, 85, 1},      {896, 73, 1},      {1024, 64, 1},
    {1280, 51, 1},     {1536, 42, 1},     {1792, 36, 1},     {2048, 32, 1},
    {2560, 25, 1},     {3072, 21, 1},     {3584, 18, 1},     {4096, 16, 1},
    {5120, 12, 1},     {6144, 10, 1},     {7168, 9, 1},      {8192, 8, 1},
    {10240, 12, 2},    {12288, 10, 2},    {14336, 9, 2},     {16384, 8, 2},
    {20480, 9, 3},     {24576, 8, 3},     {28672, 9, 4},     {32768, 8, 4},
    {40960, 8, 5},     {49152, 8, 6},     {57344, 8, 7},     {65536, 8, 8},
    {81920, 8, 10},    {98304, 8, 12},    {114688, 8, 14},   {131072, 8, 16},
    {163840, 8, 20},   {196608, 8, 24},   {229376, 8, 28},   {262144, 8, 32},
};

/* The class of every size up to 4 KiB, indexed by (size + 15) / 16: the malloc fast path's
 * class lookup for the sizes programs ask for most is one byte load. */
const uint8_t vt_small_class[VT_SMALL_TABLE_MAX / 16 + 1] = {
    0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 10, 10, 11,
    11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15,
    15, 16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17,
    17, 18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19,
    19, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21,
    21, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22,
    22, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23,
    23, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24,
    24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24,
    24, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25,
    25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25,
    25, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26,
    26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26,
    26, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27,
    27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27,
    27,
};

_Static_assert(sizeof(vt_classes) / sizeof(vt_classes[0]) == VT_CLASS_COUNT, "table size");
