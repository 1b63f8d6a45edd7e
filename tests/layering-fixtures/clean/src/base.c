/*
 * base.c - the bottom of the clean fixture: a function, a thread-local variable and a table.
 *
 * Layer: 1 base
 * Calls: nothing
 */
#include "fixture.h"

__thread int base_depth;
const int base_table[4] = {1, 2, 3, 4};

int base_value(int x)
{
    return x + 1;
}
