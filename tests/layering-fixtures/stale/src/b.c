/*
 * b.c - names a.c, which it no longer calls, and a file that does not exist.
 *
 * Layer: 2 b
 * Calls: a.c, gone.c
 */
int b_fn(int x);

int b_fn(int x)
{
    return x * 2;
}
