/*
 * low.c - a lower file that calls up into high.c: a layering violation, though its Calls line
 * names the file.
 *
 * Layer: 1 low
 * Calls: high.c
 */
int high_fn(int x);
int low_fn(int x);

int low_fn(int x)
{
    return x < 0 ? high_fn(-x) : x;
}
