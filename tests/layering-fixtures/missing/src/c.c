/* c.c - no Layer or Calls line either, and nothing to call. */
int c_fn(int x);

int c_fn(int x)
{
    return -x;
}
