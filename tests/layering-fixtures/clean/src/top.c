/*
 * top.c - calls every file below it; its Calls list wraps onto a second line.
 *
 * Layer: 3 top
 * Calls: base.c,
 *        mid.c, peer.c
 *
 * Prose after the blank line is not part of the list: it may say anything, even "Calls: x.c"
 * in the middle of a sentence.
 */
#include "fixture.h"

int top_value(int x);

int top_value(int x)
{
    return base_value(x) + mid_value(x) + peer_value(x);
}
