/*
 * b.c - a Layer line without a number, and no Calls line.
 *
 * Layer: bottom
 */
int b_fn(int x);

int b_fn(int x)
{
    return x;
}
