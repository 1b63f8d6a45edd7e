/*
 * mid.c - calls down, and uses the lower file's variables (a thread-local one too).
 *
 * Layer: 2 middle
 * Calls: base.c
 */
#include "fixture.h"

int mid_value(int x)
{
    base_depth++;
    return base_value(x) * base_table[x & 3];
}
