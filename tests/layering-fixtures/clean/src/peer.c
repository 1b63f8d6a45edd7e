/*
 * peer.c - on the same layer as mid.c, which it calls: allowed.
 *
 * Layer: 2 middle
 * Calls: mid.c
 * Owns: nothing; a field right after the list ends it as a blank line would.
 */
#include "fixture.h"

int peer_value(int x)
{
    return mid_value(x) - 1;
}
