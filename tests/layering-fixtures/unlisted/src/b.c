/*
 * b.c - calls a function of a.c and reads its variable, but says it calls nothing.
 *
 * Layer: 2 b
 * Calls: nothing
 */
extern int a_data;
int a_fn(int x);
int b_fn(int x);

int b_fn(int x)
{
    return a_fn(x) + a_data;
}
