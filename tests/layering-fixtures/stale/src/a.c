/*
 * a.c - the lower file.
 *
 * Layer: 1 a
 * Calls: nothing
 */
int a_fn(int x);

int a_fn(int x)
{
    return x + 1;
}
