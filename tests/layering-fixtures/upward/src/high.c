/*
 * high.c - the upper file: calls low.c, as it may.
 *
 * Layer: 2 high
 * Calls: low.c
 */
extern int high_counter;
int high_counter;
int high_fn(int x);
int low_fn(int x);

int high_fn(int x)
{
    high_counter++;
    return low_fn(x - 1);
}
