/*
 * a.c - no Layer line and no Calls line; calls b.c.
 */
int b_fn(int x);
int a_fn(int x);

int a_fn(int x)
{
    return b_fn(x) + 1;
}
