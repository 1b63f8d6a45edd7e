/*
 * a.c - the lower file.
 *
 * Layer: 1 a
 * Calls: nothing
 */
extern int a_data;
int a_data = 3;
int a_fn(int x);

int a_fn(int x)
{
    return x * a_data;
}
